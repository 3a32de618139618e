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

# The comparison and its messages live in one module, shared with the autograder.
from gan_course.verdict import (  # noqa: F401 - re-exported
    LAYERS,
    CheckResult,
    _has_tensors,
    _kind,
    _mutated,
    _snapshot,
    case_problem,
    compare,
    describe_case,
    describe_value,
    missing_message,
    run_case,
    signature_problem,
    to_numpy,
)

ENV_STRICT = "GAN_COURSE_STRICT"

# Lab number -> module whose import registers that lab's exercises.
LAB_MODULES = {
    "01": "gan_course.intuition",
    "02": "gan_course.conv",
    "03": "gan_course.dcgan",
    "04": "gan_course.faces",
    "05": "gan_course.infogan",
    "06": "gan_course.biggan",
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


# ----------------------------------------------------------------------------- running
def run_checks(ex: Exercise, fn, cases: list[dict]) -> CheckResult:
    name = ex.name
    if fn is None:
        return CheckResult(name, False, "exists", missing_message(name, in_notebook=True))
    if not callable(fn):
        return CheckResult(name, False, "exists", missing_message(name, kind=type(fn).__name__))
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
            problem = case_problem(expected, got, case, ex)
        elif problem[0] == "mutation":
            problem = ("mutation", f"{problem[1]} Inputs: {describe_case(case)}.")
        if problem is not None:
            return CheckResult(name, False, problem[0], problem[1], len(cases))
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
