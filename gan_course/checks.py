"""Exercises: the registry, the layered checks and the in-notebook `check` call.

An exercise is a reference function registered with `@exercise(lab, cases=...)` in the
module of the lesson that teaches it.  The same registry serves the in-notebook check
(one call per exercise, instant feedback) and the autograder (hidden seeds, separate
processes).  Checks run in layers and stop at the first that fails, so the message
names one thing to fix:

    exists -> signature -> runs -> type -> dtype -> shape -> finite -> values -> mutation
"""
from __future__ import annotations

import copy
import difflib
import importlib
import inspect
import os
import sys
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

LAYERS = ("exists", "signature", "runs", "type", "dtype", "shape", "finite", "values", "mutation")
ENV_STRICT = "GAN_COURSE_STRICT"

# Lab number -> module whose import registers that lab's exercises.
LAB_MODULES = {
    "01": "gan_course.intuition",
    "02": "gan_course.conv",
    "03": "gan_course.dcgan",
    "04": "gan_course.faces",
    "05": "gan_course.infogan",
    "06": "gan_course.biggan",
    "07": "gan_course.own_images",
}

REGISTRY: dict[str, "Exercise"] = {}


class ExerciseFailed(AssertionError):
    """Raised by `check` in strict mode (the solutions in CI) when a check fails."""


@dataclass
class Exercise:
    name: str
    lab: str
    reference: Callable
    cases: Callable[[np.random.Generator], list]
    hint: str = ""
    rtol: float = 1e-5
    atol: float = 1e-6
    points: int = 1
    strict_dtype: bool = True
    # Turns an output into comparable values (for example a Keras model into its layer
    # kinds, parameter count and a forward pass with fixed weights).
    describe: Callable[[Any, dict], Any] | None = None
    # Extra arguments the reference needs but the student never writes (rare).
    doc: str = field(default="", repr=False)


@dataclass
class CheckResult:
    name: str
    passed: bool
    layer: str | None = None
    message: str = ""
    cases: int = 0

    def line(self) -> str:
        if self.passed:
            return f"✓ {self.name}: all {self.cases} test cases match the reference."
        return f"✗ {self.name} [{self.layer}]: {self.message}"


def exercise(lab: str, cases, **options):
    """Register the decorated function as the reference solution of an exercise."""

    def register(fn):
        REGISTRY[fn.__name__] = Exercise(
            name=fn.__name__, lab=lab, reference=fn, cases=cases, doc=fn.__doc__ or "", **options
        )
        return fn

    return register


def load_lab(lab: str) -> list[Exercise]:
    """Import a lab's module(s) and return its exercises in registration order."""
    importlib.import_module(LAB_MODULES[lab])
    return [ex for ex in REGISTRY.values() if ex.lab == lab]


def get_exercise(name: str) -> Exercise:
    if name not in REGISTRY:
        for module in LAB_MODULES.values():
            importlib.import_module(module)
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=1)
        extra = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"No exercise called {name!r}.{extra}")
    return REGISTRY[name]


def reference(name: str) -> Callable:
    """The course's reference implementation of an exercise (what the lab falls back to)."""
    return get_exercise(name).reference


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
            return "values", f"got {got!r}{at}; expected {expected!r}."
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
        return "values", f"returned {got!r}{at}; expected {expected!r}."
    return None


# ----------------------------------------------------------------------------- running
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


def run_case(ex: Exercise, fn: Callable, case: dict) -> tuple[Any, tuple[str, str] | None]:
    """Call `fn` on one case; return (output, problem) where problem is (layer, message)."""
    args = copy.deepcopy(case) if not _has_tensors(case) else dict(case)
    before = _snapshot(args)
    try:
        out = fn(**args)
    except NotImplementedError:
        return None, ("runs", "not done yet: replace `raise NotImplementedError()` with your code.")
    except Exception as err:  # the student's error is the message
        return None, ("runs", f"raised {type(err).__name__}: {err} (inputs: {describe_case(case)}).")
    key = _mutated(args, before)
    if key is not None:
        return out, ("mutation", f"changed its input {key!r} in place; work on a copy (x = x.copy() or tf ops).")
    return out, None


def _has_tensors(case: dict) -> bool:
    return any(hasattr(v, "numpy") for v in case.values())


def run_checks(ex: Exercise, fn, cases: list[dict]) -> CheckResult:
    name = ex.name
    if fn is None:
        return CheckResult(name, False, "exists", f"no function named {name!r}: run the exercise cell that defines it.")
    if not callable(fn):
        return CheckResult(name, False, "exists", f"{name} is a {type(fn).__name__}, not a function.")
    if cases:
        problem = signature_problem(name, fn, cases[0])
        if problem:
            return CheckResult(name, False, "signature", problem)
    for case in cases:
        expected = ex.reference(**copy.deepcopy(case) if not _has_tensors(case) else dict(case))
        got, problem = run_case(ex, fn, case)
        if problem is None:
            if ex.describe is not None:
                expected, got = ex.describe(expected, case), ex.describe(got, case)
            problem = compare(expected, got, ex.rtol, ex.atol, ex.strict_dtype)
            if problem is not None:
                layer, message = problem
                problem = (layer, f"{message} Inputs: {describe_case(case)}.")
        if problem is not None:
            layer, message = problem
            if ex.hint and layer in ("values", "shape", "dtype", "finite"):
                message = f"{message} Hint: {ex.hint}"
            return CheckResult(name, False, layer, message, len(cases))
    return CheckResult(name, True, None, "", len(cases))


def notebook_cases(ex: Exercise) -> list[dict]:
    """The cases a notebook check uses: fixed per exercise, unlike the grader's hidden seeds."""
    return ex.cases(np.random.default_rng(zlib.crc32(ex.name.encode())))


def strict_mode() -> bool:
    return os.environ.get(ENV_STRICT, "").strip() not in ("", "0", "false", "no")


def check(name, namespace: dict | None = None):
    """Check an exercise and return the function the rest of the lab should use.

    `name` is the exercise's name (looked up in the caller's namespace) or the function
    itself.  On success the student's function comes back; otherwise the course's
    reference does, with a one-line note, so the lab still runs.  Under
    GAN_COURSE_STRICT=1 a failure raises instead (CI runs the solutions this way).
    """
    if callable(name):
        fn, name = name, name.__name__
    else:
        if namespace is None:
            namespace = sys._getframe(1).f_globals
        fn = namespace.get(name)
    ex = get_exercise(name)
    result = run_checks(ex, fn, notebook_cases(ex))
    print(result.line())
    if result.passed:
        return fn
    if strict_mode():
        raise ExerciseFailed(result.line())
    print(f"→ The rest of this lab uses the course's reference {name} so that every cell below runs.")
    return ex.reference
