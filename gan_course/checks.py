"""Exercises: the registry of contracts, the layered checks and the in-notebook `check` call.

An exercise is registered in the module of the lesson that teaches it with
`@exercise(lab, cases=...)` on a *contract*: a function with the exercise's name,
signature and instructions (its docstring) and no body.  The library holds no answer.
The reference answer is the exercise cell of the lab's solution notebook,
``solutions/NN_*.ipynb``, loaded from there when that folder is present (a clone of the
repository, CI, the instructor's image).  Where it is absent (a student's image, an
installed wheel on its own) `check` compares with the expected outputs that
`gan-course release` writes beside the labs for a fixed set of public cases; the
grader's hidden cases never leave the instructor's machine.

The same registry serves the in-notebook check (one call per exercise, instant
feedback) and the autograder (hidden seeds, separate processes).  Checks run in layers
and stop at the first that fails, so the message names one thing to fix:

    exists -> signature -> runs -> type -> dtype -> shape -> finite -> values -> mutation
"""
from __future__ import annotations

import ast
import copy
import difflib
import functools
import hashlib
import importlib
import inspect
import json
import os
import sys
import textwrap
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gan_course import i18n
from gan_course.i18n import N_, _
# The comparison and its messages live in one module, shared with the autograder.
from gan_course.verdict import (  # noqa: F401 - re-exported
    LAYER_NAMES,
    LAYERS,
    CheckResult,
    has_tensors,
    value_kind,
    mutated_key,
    snapshot,
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
# Where the solution notebooks are; set to an empty value to act as a student's machine.
ENV_SOLUTIONS = "GAN_COURSE_SOLUTIONS"
# Where the released labs' expected outputs are (default: found beside the labs).
ENV_EXPECTED = "GAN_COURSE_EXPECTED"
EXPECTED_FOLDER = "expected"
EXPECTED_FORMAT = 1

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


class SolutionsUnavailable(LookupError):
    """The reference answers are asked for where `solutions/` is not present."""


class ExerciseUnfinished(RuntimeError):
    """A cell needs an exercise that has not passed its check (and no reference is here).

    IPython shows only this one line instead of a traceback (`_render_traceback_`).
    """

    def _render_traceback_(self):
        return [str(self)]


# ----------------------------------------------------------------------------- messages
MSG_NEEDS_EXERCISE = N_(
    "✗ This cell needs the exercise `{name}`{section}, which has not passed its check yet: "
    "finish it there and run its check cell again."
)
MSG_FALLBACK = N_("→ The rest of this lab uses the course's reference {name} so that every cell below runs.")
MSG_NO_FALLBACK = N_("→ Cells below that need {name} stop with a note until it passes.")
MSG_NO_SOLUTIONS = N_(
    "the reference answer of `{name}` is in the course's solutions/ folder, which is not on this machine "
    "(set {env} to its path on an instructor's machine)."
)
MSG_NO_EXPECTED = N_(
    "✗ {name}: cannot check here: neither the course's solutions/ nor the released expected outputs "
    "({folder}/{lab}.npz beside the labs) were found. Ask your instructor for the labs' expected/ folder."
)
MSG_STALE_EXPECTED = N_(
    "✗ {name}: cannot check here: the expected outputs in {path} were written for other test inputs "
    "(another version of the course). Ask your instructor to run `gan-course release` again."
)


@dataclass
class Exercise:
    name: str
    lab: str
    contract: Callable
    cases: Callable[[np.random.Generator], list]
    hint: str = ""
    rtol: float = 1e-5
    atol: float = 1e-6
    points: int = 1
    strict_dtype: bool = True
    # Turns an output into comparable values (for example a Keras model into its layer
    # kinds, parameter count and a forward pass with fixed weights).
    describe: Callable[[Any, dict], Any] | None = None
    # Checks the arguments of a library call before the implementation runs (input rules
    # are part of the contract; the student's function is never asked to enforce them),
    # and may return some of them in their normal form.
    validate: Callable[..., None] | None = None
    doc: str = field(default="", repr=False)
    # Only for exercises that are not the course's (the library's own tests): a contract
    # with a body is its own reference.  Every course exercise is a bare contract, and
    # tests/test_answers.py keeps it so.
    inline: bool = False

    @property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.contract)

    @property
    def reference(self) -> Callable:
        """The answer, from the lab's solution notebook (SolutionsUnavailable without it)."""
        if self.inline:
            return self.contract
        return load_references(self.lab)[self.name]


class Contract:
    """What the library keeps of an exercise: name, signature and instructions.

    Library code that needs the exercise's function calls the contract, which runs
    `implementation(name)`: the reference where the solutions are present, otherwise the
    student's function once it has passed `check`.
    """

    def __init__(self, fn: Callable, lab: str, validate: Callable[..., None] | None = None):
        functools.update_wrapper(self, fn)
        self.lab, self._validate = lab, validate
        self._signature = inspect.signature(fn)

    def __call__(self, *args, **kwargs):
        if self._validate is not None:
            bound = self._signature.bind(*args, **kwargs)
            bound.apply_defaults()
            # A validator may also return arguments in their normal form ("SAME" -> "same").
            normal = self._validate(**bound.arguments)
            if isinstance(normal, dict):
                bound.arguments.update(normal)
            args, kwargs = bound.args, bound.kwargs
        return implementation(self.__name__)(*args, **kwargs)

    def __repr__(self):
        return f"<exercise {self.__name__}{self._signature} of lab {self.lab}>"


def is_contract(fn: Callable) -> bool:
    """True when `fn` has a docstring and no statement besides it (no answer)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return True  # no source to look at: nothing to run either
    body = tree.body[0].body
    return len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)


def exercise(lab: str, cases, **options):
    """Register the decorated contract (signature and docstring, no body) as an exercise."""

    def register(fn):
        inline = not is_contract(fn)
        REGISTRY[fn.__name__] = Exercise(
            name=fn.__name__, lab=lab, contract=fn, cases=cases, doc=fn.__doc__ or "", inline=inline, **options
        )
        return fn if inline else Contract(fn, lab, options.get("validate"))

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


# ----------------------------------------------------------------------------- references
def _has_notebooks(folder: Path) -> bool:
    try:
        return folder.is_dir() and any(folder.glob("[0-9][0-9]_*.ipynb"))
    except OSError:
        return False


def solutions_dir() -> Path | None:
    """The course's solutions/ folder, or None where it is not present.

    `GAN_COURSE_SOLUTIONS` names it (an empty value: act as a student's machine);
    otherwise the repository beside this package, the current folder or its parent
    (a lab runs in labs/), or the home folder (the instructor's image).
    """
    key = (os.environ.get(ENV_SOLUTIONS), os.getcwd())
    if key not in _FOUND:  # library code asks on every call of an exercise: look once per place
        _FOUND[key] = _find_solutions()
    return _FOUND[key]


_FOUND: dict[tuple, Path | None] = {}


def _find_solutions() -> Path | None:
    if ENV_SOLUTIONS in os.environ:
        value = os.environ[ENV_SOLUTIONS].strip()
        return Path(value) if value and _has_notebooks(Path(value)) else None
    here = Path.cwd()
    for folder in (Path(__file__).resolve().parent.parent / "solutions", here / "solutions",
                   here.parent / "solutions", Path.home() / "solutions"):
        if _has_notebooks(folder):
            return folder
    return None


def solution_notebook(lab: str, folder: Path | None = None) -> Path:
    folder = folder or solutions_dir()
    if folder is None:
        raise SolutionsUnavailable(f"no solutions/ folder here for lab {lab}")
    found = sorted(Path(folder).glob(f"{lab}_*.ipynb"))
    if not found:
        raise SolutionsUnavailable(f"no solution notebook for lab {lab}: expected {folder}/{lab}_*.ipynb")
    return found[0]


def exercise_cells(nb) -> list[tuple[int, str, str]]:
    """(cell index, exercise name, source) of every marked exercise cell of a notebook."""
    from gan_course.release import exercise_name

    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            name = exercise_name(cell.source)
            if name:
                found.append((index, name, cell.source))
    return found


def import_statements(nb) -> str:
    """Every top-level import of a notebook's code cells: what its exercise cells may use."""
    lines = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        lines += [ast.get_source_segment(cell.source, node) for node in tree.body
                  if isinstance(node, (ast.Import, ast.ImportFrom))]
    return "\n".join(lines)


_REFERENCES: dict[tuple[str, str], dict[str, Callable]] = {}


def _run_source(source: str, filename: str, namespace: dict) -> None:
    """Run notebook code under a readable file name; its lines go into `linecache` (as
    IPython does for cells) so that tracebacks and TensorFlow's AutoGraph find them."""
    import linecache

    lines = source.splitlines(keepends=True)
    linecache.cache[filename] = (len(source), None, lines, filename)
    exec(compile(source, filename, "exec"), namespace)


def load_references(lab: str, folder: Path | None = None) -> dict[str, Callable]:
    """The reference answers of a lab: its solution notebook's exercise cells, run in order.

    Each cell runs after the notebook's imports and the earlier exercise cells (a later
    exercise may call an earlier one, as in the notebook).
    """
    import nbformat

    path = solution_notebook(lab, folder)
    key = (lab, str(path))
    if key not in _REFERENCES:
        nb = nbformat.read(path, as_version=4)
        namespace: dict = {"__name__": f"gan_course_solutions_{lab}"}
        _run_source(import_statements(nb), f"{path} (imports)", namespace)
        for index, name, source in exercise_cells(nb):
            _run_source(source, f"{path} [cell {index}]", namespace)
        _REFERENCES[key] = {name: namespace[name] for _, name, _ in exercise_cells(nb) if name in namespace}
    return _REFERENCES[key]


def reference(name: str) -> Callable:
    """The course's reference answer of an exercise (needs the course's solutions/)."""
    ex = get_exercise(name)
    try:
        return ex.reference
    except SolutionsUnavailable:
        raise SolutionsUnavailable(_(MSG_NO_SOLUTIONS).format(name=name, env=ENV_SOLUTIONS)) from None


# The student's functions that passed `check` in this process: library code uses them
# where the reference is not on the machine.
_PASSED: dict[str, Callable] = {}
_SECTIONS: dict[str, str] = {}


def implementation(name: str) -> Callable:
    """The function library code runs for an exercise: the reference where the
    solutions are present, else the student's function once it has passed its check."""
    ex = get_exercise(name)
    if solutions_dir() is not None:
        return ex.reference
    if name in _PASSED:
        return _PASSED[name]
    return Unfinished(name, _SECTIONS.get(name, ""))


class Unfinished:
    """Stands for an exercise that has not passed its check: calling it stops the cell."""

    def __init__(self, name: str, section: str = ""):
        self.__name__, self.section = name, section

    def __call__(self, *args, **kwargs):
        section = _(" (section “{section}”)").format(section=self.section) if self.section else ""
        raise ExerciseUnfinished(_(MSG_NEEDS_EXERCISE).format(name=self.__name__, section=section))

    def __repr__(self):
        return f"<unfinished exercise {self.__name__}>"


# ----------------------------------------------------------------------------- running
def run_checks(ex: Exercise, fn, cases: list[dict], expected: list | None = None) -> CheckResult:
    """Check `fn` on `cases` against the reference, or against `expected` outputs
    (already described with `ex.describe`) where the reference is not here."""
    name = ex.name
    if fn is None:
        return CheckResult(name, False, "exists", missing_message(name, in_notebook=True))
    if not callable(fn):
        return CheckResult(name, False, "exists", missing_message(name, kind=type(fn).__name__))
    if cases:
        problem = signature_problem(name, fn, cases[0])
        if problem:
            return CheckResult(name, False, "signature", problem)
    for index, case in enumerate(cases):
        if expected is None:
            want = ex.reference(**copy.deepcopy(case) if not has_tensors(case) else dict(case))
            if ex.describe is not None:
                want = ex.describe(want, case)
        else:
            want = expected[index]
        got, problem = run_case(ex, fn, case)
        if problem is None:
            if ex.describe is not None:
                got = ex.describe(got, case)
            problem = case_problem(want, got, case, ex)
        elif problem[0] == "mutation":
            problem = ("mutation", _("{message} Inputs: {inputs}.").format(message=problem[1],
                                                                          inputs=describe_case(case)))
        if problem is not None:
            return CheckResult(name, False, problem[0], problem[1], len(cases))
    return CheckResult(name, True, None, "", len(cases))


def notebook_cases(ex: Exercise) -> list[dict]:
    """The cases a notebook check uses: fixed per exercise, unlike the grader's hidden seeds."""
    return ex.cases(np.random.default_rng(zlib.crc32(ex.name.encode())))


def strict_mode() -> bool:
    return os.environ.get(ENV_STRICT, "").strip() not in ("", "0", "false", "no")


# ----------------------------------------------------------------------------- expected outputs
def _fingerprint(values) -> str:
    """A digest of encoded values: the same inputs give the same digest on any machine."""
    from gan_course.grader.wire import encode

    arrays: dict = {}
    meta = encode(values, arrays)
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def expected_outputs(lab: str, folder: Path | None = None,
                     sections: dict[str, dict[str, str]] | None = None) -> tuple[dict, dict]:
    """(meta, arrays) of a lab's expected outputs on its public cases, from the references
    in the solution notebook of `folder` (default: the course's solutions/).  `sections`:
    language -> exercise -> the title of its section in that edition."""
    from gan_course.grader.wire import encode

    references = load_references(lab, folder)
    arrays: dict = {}
    entries = {}
    for ex in load_lab(lab):
        cases = notebook_cases(ex)
        outputs = []
        for case in cases:
            out = references[ex.name](**copy.deepcopy(case) if not has_tensors(case) else dict(case))
            outputs.append(ex.describe(out, case) if ex.describe is not None else to_numpy(out))
        entries[ex.name] = {
            "inputs": _fingerprint(cases),
            "outputs": encode(outputs, arrays),
            "sections": {lang: titles.get(ex.name, "") for lang, titles in (sections or {}).items()},
        }
    return {"format": EXPECTED_FORMAT, "lab": lab, "exercises": entries}, arrays


def expected_path(lab: str) -> Path | None:
    """The released expected outputs of a lab, looked for beside the labs."""
    names = [f"{EXPECTED_FOLDER}/{lab}.npz"]
    folders = []
    if os.environ.get(ENV_EXPECTED, "").strip():
        folders.append(Path(os.environ[ENV_EXPECTED]))
        names.insert(0, f"{lab}.npz")
    here = Path.cwd()
    folders += [here, here.parent, here / "labs", Path(__file__).resolve().parent.parent / "labs", Path.home() / "labs",
                Path(os.environ.get("GAN_COURSE_HOME", "/opt/gan-lab")) / "labs"]
    for folder in folders:
        for name in names:
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def read_expected(path: Path) -> dict:
    """A released expected-outputs file: its JSON description, with its arrays under "arrays"."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    meta = json.loads(arrays.pop("__meta__").tobytes().decode("utf-8"))
    meta["arrays"] = arrays
    return meta


def _expected_for(ex: Exercise, cases: list[dict]) -> tuple[list | None, str | None]:
    """(expected outputs, None) from the released file, or (None, the line that says why not)."""
    from gan_course.grader.wire import decode

    path = expected_path(ex.lab)
    if path is None:
        return None, _(MSG_NO_EXPECTED).format(name=ex.name, folder=EXPECTED_FOLDER, lab=ex.lab)
    try:
        meta = read_expected(path)
        entry = meta["exercises"][ex.name]
    except (OSError, ValueError, KeyError):
        return None, _(MSG_STALE_EXPECTED).format(name=ex.name, path=path)
    titles = entry.get("sections", {})
    _SECTIONS[ex.name] = titles.get(i18n.language()) or titles.get("en", "")
    if entry.get("inputs") != _fingerprint(cases):
        return None, _(MSG_STALE_EXPECTED).format(name=ex.name, path=path)
    return decode(entry["outputs"], meta["arrays"]), None


# ----------------------------------------------------------------------------- the notebook's call
def check(name, namespace: dict | None = None):
    """Check an exercise and return the function the rest of the lab should use.

    `name` is the exercise's name (looked up in the caller's namespace) or the function
    itself.  On success the student's function comes back.  Otherwise, where the
    course's solutions are present, the reference does, with a one-line note, so the lab
    still runs; on a student's machine a stand-in comes back that stops, with one line
    naming the exercise, any later cell that needs it.  Under GAN_COURSE_STRICT=1 a
    failure raises instead (CI runs the solutions this way).
    """
    if callable(name) and not isinstance(name, str):
        fn, name = name, name.__name__
    else:
        if namespace is None:
            namespace = sys._getframe(1).f_globals
        fn = namespace.get(name)
    ex = get_exercise(name)
    cases = notebook_cases(ex)
    with_solutions = solutions_dir() is not None
    if with_solutions:
        result = run_checks(ex, fn, cases)
    else:
        expected, why_not = _expected_for(ex, cases)
        result = run_checks(ex, fn, cases, expected) if why_not is None else None
        if result is None:
            print(why_not)
    if result is not None:
        print(result.line())
        if result.passed:
            _PASSED[name] = fn
            return fn
        if strict_mode():
            raise ExerciseFailed(result.line())
    _PASSED.pop(name, None)
    if with_solutions:
        print(_(MSG_FALLBACK).format(name=name))
        return ex.reference
    print(_(MSG_NO_FALLBACK).format(name=name))
    return Unfinished(name, _SECTIONS.get(name, ""))
