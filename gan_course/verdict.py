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

from gan_course.i18n import N_, _

LAYERS = ("exists", "signature", "runs", "type", "dtype", "shape", "finite", "values", "mutation")
# The layers' names as a student reads them in a ✗ line (marked for translation).
LAYER_NAMES = (N_("exists"), N_("signature"), N_("runs"), N_("type"), N_("dtype"), N_("shape"), N_("finite"),
               N_("values"), N_("mutation"))
NOT_DONE = N_("not done yet: replace `raise NotImplementedError()` with your code.")
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
            return _("✓ {name}: {message}").format(name=self.name, message=passed_message(self.cases))
        return _("✗ {name} [{layer}]: {message}").format(name=self.name, layer=_(self.layer), message=self.message)


def passed_message(cases: int, hidden: bool = False) -> str:
    if hidden:
        return _("all {cases} hidden test cases match the reference.").format(cases=cases)
    return _("all {cases} test cases match the reference.").format(cases=cases)


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


def value_kind(value) -> str:
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
    at = _(" in {where}").format(where=where) if where else ""
    ek, gk = value_kind(expected), value_kind(got)

    # A 0-d array or NumPy scalar stands for a Python number (tf.reduce_mean returns one).
    if ek in ("int", "float", "bool") and gk == "array" and got.ndim == 0:
        got, gk = got[()], value_kind(got[()])
    if ek == "float" and gk == "int":
        gk = "float"  # an exact integer answer to a float question is fine

    if ek == "sequence":
        if gk != "sequence":
            return "type", _("returned {got}{at}; expected a {kind} of {n} items.").format(
                got=describe_value(got), at=at, kind=type(expected).__name__, n=len(expected))
        if len(got) != len(expected):
            return "shape", _("returned {n} items{at}; expected {want}.").format(n=len(got), at=at, want=len(expected))
        for i, (e, g) in enumerate(zip(expected, got)):
            problem = compare(e, g, rtol, atol, strict_dtype, where=_("item {i}").format(i=i) + at)
            if problem:
                return problem
        return None
    if ek == "dict":
        if gk != "dict":
            return "type", _("returned {got}{at}; expected a dict.").format(got=describe_value(got), at=at)
        for key in expected:
            if key not in got:
                return "type", _("missing key {key}{at}.").format(key=repr(key), at=at)
            problem = compare(expected[key], got[key], rtol, atol, strict_dtype, where=f"{key}{at}")
            if problem:
                return problem
        return None
    if ek == "str":
        if got != expected:
            return "values", _("got {got}{at}; expected {want}.").format(got=describe_value(got), at=at, want=repr(expected))
        return None
    if ek != gk:
        if ek == "array" and gk == "sequence":
            return "type", _("returned a {kind}{at}; return a NumPy array or a tensor (np.asarray / tf.convert_to_tensor).").format(
                kind=type(got).__name__, at=at)
        if ek == "array" and gk in ("int", "float", "bool") and expected.ndim == 0:
            got, gk = np.asarray(got), "array"
        else:
            want = {"array": _("an array or tensor"), "sequence": _("a tuple")}.get(ek, _("a {kind}").format(kind=ek))
            return "type", _("returned {got}{at}; expected {want}.").format(got=describe_value(got), at=at, want=want)

    if ek == "array":
        if strict_dtype and got.dtype != expected.dtype:
            return "dtype", _("dtype is {got}{at}; expected {want} (cast with tf.cast or .astype).").format(
                got=got.dtype, at=at, want=expected.dtype)
        if not strict_dtype and got.dtype.kind != expected.dtype.kind and not (
            got.dtype.kind in "fc" and expected.dtype.kind in "fc"
        ):
            return "dtype", _("dtype is {got}{at}; expected a {kind}-kind dtype like {want}.").format(
                got=got.dtype, at=at, kind=expected.dtype.kind, want=expected.dtype)
        if got.shape != expected.shape:
            return "shape", _("shape is {got}{at}; expected {want}.").format(got=got.shape, at=at, want=expected.shape)
        if got.dtype.kind in "fc" and not np.all(np.isfinite(got)):
            bad = np.argwhere(~np.isfinite(got))[0]
            return "finite", _("contains {value} at index {index}{at}: look for a log of 0 or a division by 0.").format(
                value=got[tuple(bad)], index=tuple(int(b) for b in bad), at=at)
        if got.dtype.kind in "fcb" or expected.dtype.kind in "fc":
            e = expected.astype(np.float64)
            g = got.astype(np.float64)
            if not np.allclose(g, e, rtol=rtol, atol=atol):
                diff = np.abs(g - e)
                idx = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.ndim else ()
                return "values", _(
                    "values differ{at}: largest difference {diff:.4g} at index {index} (yours {got:.6g}, expected {want:.6g})."
                ).format(at=at, diff=float(diff[idx]), index=tuple(int(i) for i in idx), got=float(g[idx]), want=float(e[idx]))
        elif not np.array_equal(got, expected):
            idx = tuple(int(i) for i in np.argwhere(got != expected)[0])
            return "values", _("values differ{at} at index {index}: yours {got}, expected {want}.").format(
                at=at, index=idx, got=got[idx], want=expected[idx])
        return None
    if ek == "float":
        if not np.isfinite(got):
            return "finite", _("returned {got}{at}: look for a log of 0 or a division by 0.").format(got=got, at=at)
        if not np.isclose(float(got), float(expected), rtol=rtol, atol=atol):
            return "values", _("returned {got:.6g}{at}; expected {want:.6g}.").format(got=float(got), at=at, want=float(expected))
        return None
    if got != expected:
        return "values", _("returned {got}{at}; expected {want}.").format(got=describe_value(got), at=at, want=repr(expected))
    return None


# ----------------------------------------------------------------------------- inputs
def snapshot(case: dict) -> dict:
    return {k: copy.deepcopy(to_numpy(v)) for k, v in case.items()}


def mutated_key(case: dict, before: dict) -> str | None:
    for key, old in before.items():
        new = to_numpy(case[key])
        if isinstance(old, np.ndarray):
            if not isinstance(new, np.ndarray) or new.shape != old.shape or not np.array_equal(new, old, equal_nan=True):
                return key
        elif isinstance(old, (list, dict)) and new != old:
            return key
    return None


def has_tensors(case: dict) -> bool:
    return any(hasattr(v, "numpy") for v in case.values())


def signature_problem(name: str, fn: Callable, case: dict) -> str | None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        sig.bind(**case)
    except TypeError:
        return _("{name}{signature} cannot be called with ({arguments}): keep the parameter names given in the exercise.").format(
            name=name, signature=sig, arguments=", ".join(case))
    return None


# ----------------------------------------------------------------------------- messages
def missing_message(name: str, kind: str | None = None, defined=(), in_notebook: bool = False) -> str:
    """The `exists` layer: no function of that name (or not a function)."""
    import difflib

    if kind:
        return _("`{name}` is a {kind}, not a function: define it with `def {name}(...)`.").format(name=name, kind=kind)
    if in_notebook:
        return _("no function named `{name}`: run the exercise cell that defines it.").format(name=name)
    defined = list(defined)
    close = difflib.get_close_matches(name, defined, n=1, cutoff=0.5)
    if close:
        return _("the exercise cell defines no function named `{name}`; it defines `{other}`: did you rename it? "
                 "Keep the name `{name}`.").format(name=name, other=close[0])
    if defined:
        return _("the exercise cell defines no function named `{name}` (it defines {defined}); keep the name given "
                 "in the exercise.").format(name=name, defined=", ".join(f"`{d}`" for d in defined))
    return _("the exercise cell defines no function named `{name}`.").format(name=name)


def mutation_message(key) -> str:
    return _("changed its input {key} in place; work on a copy (x = x.copy() or tf ops).").format(key=repr(key))


def case_problem(expected, got, case: dict, ex, mutated_key=None) -> tuple[str, str] | None:
    """(layer, message) for one test case, or None: compare, then the input-mutation check.

    The message ends with the case's inputs and, for value-like layers, the exercise's hint.
    """
    try:
        problem = compare(expected, got, rtol=ex.rtol, atol=ex.atol, strict_dtype=ex.strict_dtype)
    except Exception as err:  # noqa: BLE001 - an odd value must not stop the check
        problem = ("type", _("returned a value that cannot be compared ({error}: {message}).").format(
            error=type(err).__name__, message=err))
    if problem is None and mutated_key is not None:
        problem = ("mutation", mutation_message(mutated_key))
    if problem is None:
        return None
    layer, message = problem
    return layer, finish(_("{message} Inputs: {inputs}.").format(message=message, inputs=describe_case(case)), layer, ex)


def finish(message: str, layer: str, ex) -> str:
    hint = getattr(ex, "hint", "")
    if hint and layer in HINTED_LAYERS:
        return _("{message} Hint: {hint}").format(message=message, hint=_(hint))
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
    at = (_(" (line {line}: `{code}`)").format(line=line, code=code) if line and code
          else (_(" (line {line})").format(line=line) if line else ""))
    place = _("the exercise cell") if in_cell else f"`{name}`"
    layer = "cell" if in_cell else "runs"
    if kind == "NotImplementedError":
        return "fail", "runs", _(NOT_DONE)
    if kind in ("SyntaxError", "IndentationError", "TabError"):
        return "error", "cell", _("{kind} in the exercise cell, line {line}: {text}").format(
            kind=kind, line=line, text=text) + (f": `{code}`" if code else "") + "."
    if kind == "SystemExit":
        return "error", layer, _("{place} calls sys.exit() or exit(), which stops Python{at}: remove the call "
                                 "(return a value, or raise an exception).").format(place=place, at=at)
    if kind == "MemoryError":
        limit = _(": each exercise may use {memory} MiB").format(memory=memory_mb) if memory_mb else ""
        return "error", "memory", _("{place} ran out of memory{at}{limit}. Look for an array far larger than the "
                                    "inputs.").format(place=place, at=at, limit=limit)
    if kind == "EOFError" and "EOF when reading a line" in text:
        return "error", layer, _("{place} calls input(){at}, but grading has no keyboard (stdin is closed): "
                                 "take values from the function's arguments instead.").format(place=place, at=at)
    if kind == "NameError" and info.get("name"):
        missing = info["name"]
        if missing in other_cells:
            return "error", layer, _(
                "`{missing}` is not defined{at}: it comes from another cell of your notebook. The grader "
                "runs each exercise cell on its own, after only the lab's setup code (the imports), so "
                "define or import `{missing}` inside the exercise cell.").format(missing=missing, at=at)
        return "error", layer, _(
            "NameError: name `{missing}` is not defined{at}. The grader runs each exercise cell with only "
            "the lab's setup code (the imports): define or import everything the cell needs inside it."
        ).format(missing=missing, at=at)
    return "error", layer, _("{place} raised {kind}: {text}{at}.").format(place=place, kind=kind, text=text, at=at)


def run_case(ex, fn: Callable, case: dict) -> tuple[Any, tuple[str, str] | None]:
    """Call `fn` on one case; return (output, problem) where problem is (layer, message)."""
    args = copy.deepcopy(case) if not has_tensors(case) else dict(case)
    before = snapshot(args)
    try:
        out = fn(**args)
    except Exception as err:  # the student's error is the message
        _status, layer, message = explain_error(error_info(err), ex.name)
        if layer == "runs" and message != _(NOT_DONE):
            message = _("{message} Inputs: {inputs}.").format(message=message, inputs=describe_case(case))
        return None, (layer, message)
    key = mutated_key(args, before)
    if key is not None:
        return out, ("mutation", mutation_message(key))
    return out, None
