"""Verdicts: how an exercise's output is compared with the reference's, and the messages.

One judging core for both places that check an exercise: `gan_course.checks.check` in
the notebook and the autograder's parent process (`gan_course.grader.judge`).  Checks
run in layers and stop at the first that fails, so the message names one thing to fix:

    exists -> signature -> runs -> type -> dtype -> shape -> finite -> values -> mutation
"""
from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

LAYERS = ("exists", "signature", "runs", "type", "dtype", "shape", "finite", "values", "mutation")
NOT_DONE = "not done yet: replace `raise NotImplementedError()` with your code."
HINTED_LAYERS = ("values", "shape", "dtype", "finite")


@dataclass
class CheckResult:
    name: str
    passed: bool
    layer: str | None = None
    message: str = ""
    cases: int = 0

    def line(self) -> str:
        if self.passed:
            return f"✓ {self.name}: {passed_message(self.cases)}"
        return f"✗ {self.name} [{self.layer}]: {self.message}"


def passed_message(cases: int, hidden: bool = False) -> str:
    return f"all {cases} {'hidden ' if hidden else ''}test cases match the reference."


# ----------------------------------------------------------------------------- values
def to_numpy(value):
    """Tensors and variables to NumPy, recursively through lists, tuples and dicts."""
    if hasattr(value, "numpy") and callable(value.numpy):
        return value.numpy()
    if isinstance(value, dict):
        return {k: to_numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_numpy(v) for v in value)
    return value


def describe_value(value) -> str:
    value = to_numpy(value)
    if isinstance(value, np.ndarray):
        if value.size <= 6:
            return f"array({np.array2string(value, precision=4, separator=', ')}, {value.dtype})"
        return f"array(shape={value.shape}, dtype={value.dtype})"
    if isinstance(value, (list, tuple)) and len(value) > 6:
        return f"{type(value).__name__} of {len(value)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_case(case: dict) -> str:
    return ", ".join(f"{k}={describe_value(v)}" for k, v in case.items())


def _kind(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)):
        return "float"
    if isinstance(value, np.ndarray):
        return "array"
    if isinstance(value, (list, tuple)):
        return "sequence"
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, str):
        return "str"
    return type(value).__name__


def compare(expected, got, rtol=1e-5, atol=1e-6, strict_dtype=True, where="") -> tuple[str, str] | None:
    """Compare an output with the reference's; return (layer, message) or None when equal."""
    expected, got = to_numpy(expected), to_numpy(got)
    at = f" in {where}" if where else ""
    ek, gk = _kind(expected), _kind(got)

    # A 0-d array or NumPy scalar stands for a Python number (tf.reduce_mean returns one).
    if ek in ("int", "float", "bool") and gk == "array" and got.ndim == 0:
        got, gk = got[()], _kind(got[()])
    if ek == "float" and gk == "int":
        gk = "float"  # an exact integer answer to a float question is fine

    if ek == "sequence":
        if gk != "sequence":
            return "type", f"returned {describe_value(got)}{at}; expected a {type(expected).__name__} of {len(expected)} items."
        if len(got) != len(expected):
            return "shape", f"returned {len(got)} items{at}; expected {len(expected)}."
        for i, (e, g) in enumerate(zip(expected, got)):
            problem = compare(e, g, rtol, atol, strict_dtype, where=f"item {i}{at}")
            if problem:
                return problem
        return None
    if ek == "dict":
        if gk != "dict":
            return "type", f"returned {describe_value(got)}{at}; expected a dict."
        for key in expected:
            if key not in got:
                return "type", f"missing key {key!r}{at}."
            problem = compare(expected[key], got[key], rtol, atol, strict_dtype, where=f"{key}{at}")
            if problem:
                return problem
        return None
    if ek == "str":
        if got != expected:
            return "values", f"got {describe_value(got)}{at}; expected {expected!r}."
        return None
    if ek != gk:
        if ek == "array" and gk == "sequence":
            return "type", f"returned a {type(got).__name__}{at}; return a NumPy array or a tensor (np.asarray / tf.convert_to_tensor)."
        if ek == "array" and gk in ("int", "float", "bool") and expected.ndim == 0:
            got, gk = np.asarray(got), "array"
        else:
            want = {"array": "an array or tensor", "sequence": "a tuple"}.get(ek, f"a {ek}")
            return "type", f"returned {describe_value(got)}{at}; expected {want}."

    if ek == "array":
        if strict_dtype and got.dtype != expected.dtype:
            return "dtype", f"dtype is {got.dtype}{at}; expected {expected.dtype} (cast with tf.cast or .astype)."
        if not strict_dtype and got.dtype.kind != expected.dtype.kind and not (
            got.dtype.kind in "fc" and expected.dtype.kind in "fc"
        ):
            return "dtype", f"dtype is {got.dtype}{at}; expected a {expected.dtype.kind}-kind dtype like {expected.dtype}."
        if got.shape != expected.shape:
            return "shape", f"shape is {got.shape}{at}; expected {expected.shape}."
        if got.dtype.kind in "fc" and not np.all(np.isfinite(got)):
            bad = np.argwhere(~np.isfinite(got))[0]
            return "finite", f"contains {got[tuple(bad)]} at index {tuple(int(b) for b in bad)}{at}: look for a log of 0 or a division by 0."
        if got.dtype.kind in "fcb" or expected.dtype.kind in "fc":
            e = expected.astype(np.float64)
            g = got.astype(np.float64)
            if not np.allclose(g, e, rtol=rtol, atol=atol):
                diff = np.abs(g - e)
                idx = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.ndim else ()
                return "values", (
                    f"values differ{at}: largest difference {float(diff[idx]):.4g} at index "
                    f"{tuple(int(i) for i in idx)} (yours {float(g[idx]):.6g}, expected {float(e[idx]):.6g})."
                )
        elif not np.array_equal(got, expected):
            idx = tuple(int(i) for i in np.argwhere(got != expected)[0])
            return "values", f"values differ{at} at index {idx}: yours {got[idx]}, expected {expected[idx]}."
        return None
    if ek == "float":
        if not np.isfinite(got):
            return "finite", f"returned {got}{at}: look for a log of 0 or a division by 0."
        if not np.isclose(float(got), float(expected), rtol=rtol, atol=atol):
            return "values", f"returned {float(got):.6g}{at}; expected {float(expected):.6g}."
        return None
    if got != expected:
        return "values", f"returned {describe_value(got)}{at}; expected {expected!r}."
    return None


# ----------------------------------------------------------------------------- inputs
def _snapshot(case: dict) -> dict:
    return {k: copy.deepcopy(to_numpy(v)) for k, v in case.items()}


def _mutated(case: dict, before: dict) -> str | None:
    for key, old in before.items():
        new = to_numpy(case[key])
        if isinstance(old, np.ndarray):
            if not isinstance(new, np.ndarray) or new.shape != old.shape or not np.array_equal(new, old, equal_nan=True):
                return key
        elif isinstance(old, (list, dict)) and new != old:
            return key
    return None


def _has_tensors(case: dict) -> bool:
    return any(hasattr(v, "numpy") for v in case.values())


def signature_problem(name: str, fn: Callable, case: dict) -> str | None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        sig.bind(**case)
    except TypeError:
        return (
            f"{name}{sig} cannot be called with ({', '.join(case)}): keep the parameter names "
            "given in the exercise."
        )
    return None


# ----------------------------------------------------------------------------- messages
def missing_message(name: str, kind: str | None = None, defined=(), in_notebook: bool = False) -> str:
    """The `exists` layer: no function of that name (or not a function)."""
    import difflib

    if kind:
        return f"`{name}` is a {kind}, not a function: define it with `def {name}(...)`."
    if in_notebook:
        return f"no function named `{name}`: run the exercise cell that defines it."
    defined = list(defined)
    close = difflib.get_close_matches(name, defined, n=1, cutoff=0.5)
    if close:
        return f"the exercise cell defines no function named `{name}`; it defines `{close[0]}`: did you rename it? Keep the name `{name}`."
    if defined:
        return f"the exercise cell defines no function named `{name}` (it defines {', '.join(f'`{d}`' for d in defined)}); keep the name given in the exercise."
    return f"the exercise cell defines no function named `{name}`."


def mutation_message(key) -> str:
    return f"changed its input {key!r} in place; work on a copy (x = x.copy() or tf ops)."


def case_problem(expected, got, case: dict, ex, mutated_key=None) -> tuple[str, str] | None:
    """(layer, message) for one test case, or None: compare, then the input-mutation check.

    The message ends with the case's inputs and, for value-like layers, the exercise's hint.
    """
    try:
        problem = compare(expected, got, rtol=ex.rtol, atol=ex.atol, strict_dtype=ex.strict_dtype)
    except Exception as err:  # noqa: BLE001 - an odd value must not stop the check
        problem = ("type", f"returned a value that cannot be compared ({type(err).__name__}: {err}).")
    if problem is None and mutated_key is not None:
        problem = ("mutation", mutation_message(mutated_key))
    if problem is None:
        return None
    layer, message = problem
    return layer, finish(f"{message} Inputs: {describe_case(case)}.", layer, ex)


def finish(message: str, layer: str, ex) -> str:
    hint = getattr(ex, "hint", "")
    if hint and layer in HINTED_LAYERS:
        return f"{message} Hint: {hint}"
    return message


def error_info(err: BaseException) -> dict:
    """An exception as the data `explain_error` reads (what the grader's child sends too)."""
    info = {"type": type(err).__name__, "message": str(err)[:2000]}
    if isinstance(err, NameError) and getattr(err, "name", None):
        info["name"] = err.name
    if isinstance(err, SystemExit):
        info["message"] = f"SystemExit({err.code!r})"
    return info


def explain_error(info: dict, name: str, other_cells=(), memory_mb: int | None = None,
                  in_cell: bool = False) -> tuple[str, str, str]:
    """(status, layer, message) for an exception raised by the exercise's code."""
    kind, text = str(info.get("type", "Exception")), str(info.get("message", ""))
    line, code = info.get("line"), info.get("text")
    at = f" (line {line}: `{code}`)" if line and code else (f" (line {line})" if line else "")
    place = "the exercise cell" if in_cell else f"`{name}`"
    layer = "cell" if in_cell else "runs"
    if kind == "NotImplementedError":
        return "fail", "runs", NOT_DONE
    if kind in ("SyntaxError", "IndentationError", "TabError"):
        return "error", "cell", f"{kind} in the exercise cell, line {line}: {text}" + (f": `{code}`" if code else "") + "."
    if kind == "SystemExit":
        return "error", layer, (
            f"{place} calls sys.exit() or exit(), which stops Python{at}: remove the call "
            "(return a value, or raise an exception)."
        )
    if kind == "MemoryError":
        limit = f": each exercise may use {memory_mb} MiB" if memory_mb else ""
        return "error", "memory", f"{place} ran out of memory{at}{limit}. Look for an array far larger than the inputs."
    if kind == "EOFError" and "EOF when reading a line" in text:
        return "error", layer, (
            f"{place} calls input(){at}, but grading has no keyboard (stdin is closed): "
            "take values from the function's arguments instead."
        )
    if kind == "NameError" and info.get("name"):
        missing = info["name"]
        if missing in other_cells:
            return "error", layer, (
                f"`{missing}` is not defined{at}: it comes from another cell of your notebook. The grader "
                "runs each exercise cell on its own, after only the lab's setup code (the imports), so "
                f"define or import `{missing}` inside the exercise cell."
            )
        return "error", layer, (
            f"NameError: name `{missing}` is not defined{at}. The grader runs each exercise cell with only "
            "the lab's setup code (the imports): define or import everything the cell needs inside it."
        )
    return "error", layer, f"{place} raised {kind}: {text}{at}."


def run_case(ex, fn: Callable, case: dict) -> tuple[Any, tuple[str, str] | None]:
    """Call `fn` on one case; return (output, problem) where problem is (layer, message)."""
    args = copy.deepcopy(case) if not _has_tensors(case) else dict(case)
    before = _snapshot(args)
    try:
        out = fn(**args)
    except Exception as err:  # the student's error is the message
        _, layer, message = explain_error(error_info(err), ex.name)
        if layer == "runs" and message != NOT_DONE:
            message = f"{message} Inputs: {describe_case(case)}."
        return None, (layer, message)
    key = _mutated(args, before)
    if key is not None:
        return out, ("mutation", mutation_message(key))
    return out, None
