"""The layered exercise checks: each layer catches its own mistake, with its own message."""
import numpy as np
import pytest

from gan_course import checks
from gan_course.checks import ExerciseFailed, compare, exercise, run_checks


def _cases(rng):
    return [{"x": rng.normal(size=(n, 3)).astype(np.float32)} for n in (1, 4, 7, 2, 5)]


@exercise("99", cases=_cases, hint="sum over the last axis")
def row_sum(x):
    return x.sum(axis=-1)


EX = checks.REGISTRY["row_sum"]
CASES = _cases(np.random.default_rng(1))


def _mutating(x):
    x += 1
    return (x - 1).sum(axis=-1)


@pytest.mark.parametrize(
    "fn, layer",
    [
        (None, "exists"),
        (3, "exists"),
        (lambda y: y, "signature"),
        (lambda x: (_ for _ in ()).throw(NotImplementedError()), "runs"),
        (lambda x: x[10], "runs"),
        (lambda x: list(x.sum(-1)), "type"),
        (lambda x: x.sum(-1).astype(np.float64), "dtype"),
        (lambda x: x.sum(0), "shape"),
        (lambda x: x.sum(-1) * np.float32(np.inf), "finite"),
        (lambda x: x.sum(-1) + 1, "values"),
        (_mutating, "mutation"),
    ],
)
def test_each_layer_reports_its_mistake(fn, layer):
    result = run_checks(EX, fn, CASES)
    assert not result.passed
    assert result.layer == layer, result.line()
    assert result.line().startswith("✗ row_sum [")


def test_correct_function_and_tensor_output_pass():
    import tensorflow as tf

    assert run_checks(EX, row_sum, CASES).passed
    assert run_checks(EX, lambda x: tf.reduce_sum(x, axis=-1), CASES).passed


def test_not_done_message_says_what_to_do():
    def stub(x):
        raise NotImplementedError()

    assert "replace `raise NotImplementedError()`" in run_checks(EX, stub, CASES).message


def test_value_message_names_inputs_and_hint():
    message = run_checks(EX, lambda x: x.sum(-1) + 1, CASES).message
    assert "largest difference" in message and "Inputs: x=" in message and "Hint: sum over" in message


def test_check_falls_back_to_reference_and_strict_mode_raises(monkeypatch, capsys):
    namespace = {"row_sum": lambda x: x.sum(0)}
    monkeypatch.delenv(checks.ENV_STRICT, raising=False)
    chosen = checks.check("row_sum", namespace)
    out = capsys.readouterr().out
    assert chosen is row_sum
    assert "✗ row_sum" in out and "course's reference" in out
    monkeypatch.setenv(checks.ENV_STRICT, "1")
    with pytest.raises(ExerciseFailed):
        checks.check("row_sum", namespace)


def test_check_returns_student_function_on_success(capsys):
    def mine(x):
        return np.sum(x, axis=-1)

    assert checks.check("row_sum", {"row_sum": mine}) is mine
    assert "✓ row_sum: all 5 test cases" in capsys.readouterr().out


def test_check_finds_name_in_callers_globals(capsys):
    # No namespace given: `row_sum` is looked up in this module's globals.
    assert checks.check("row_sum") is row_sum
    assert "✓ row_sum" in capsys.readouterr().out


def test_unknown_exercise_suggests_the_closest_name():
    with pytest.raises(KeyError, match="Did you mean 'row_sum'"):
        checks.get_exercise("row_summ")


def test_compare_handles_scalars_sequences_and_dicts():
    assert compare(3, np.int64(3)) is None
    assert compare(2.0, np.array(2.0, np.float32)) is None
    assert compare(3, 4)[0] == "values"
    assert compare(1.5, "1.5")[0] == "type"
    assert compare((1, np.ones(2)), (1, np.ones(3)))[0] == "shape"
    assert "item 1" in compare((1, np.ones(2)), (1, np.zeros(2)))[1]
    assert compare({"a": 1}, {"b": 1})[0] == "type"
    assert compare(np.ones(3, np.int32), np.array([1, 2, 1], np.int32))[0] == "values"
    assert compare(np.ones(2, np.float32), np.ones(2, np.float64), strict_dtype=False) is None
