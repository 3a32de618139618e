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

from gan_course.i18n import N_, _

LAYERS = ("exists", "signature", "runs", "type", "dtype", "shape", "finite", "values", "mutation")
# The layers' names as a student reads them in a ✗ line (marked for translation).
LAYER_NAMES = (N_("exists"), N_("signature"), N_("runs"), N_("type"), N_("dtype"), N_("shape"), N_("finite"),
               N_("values"), N_("mutation"))
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


@dataclass
class CheckResult:
    name: str
    passed: bool
    layer: str | None = None
    message: str = ""
    cases: int = 0

    def line(self) -> str:
        if self.passed:
            return _("✓ {name}: all {cases} test cases match the reference.").format(name=self.name, cases=self.cases)
        return _("✗ {name} [{layer}]: {message}").format(name=self.name, layer=_(self.layer), message=self.message)


class Contract:
    """What the library keeps of an exercise: name, signature and instructions.

    Library code that needs the exercise's function calls the contract, which runs
    `implementation(name)`: the reference where the solutions are present, otherwise the
    student's function once it has passed `check`.
    """

    def __init__(self, fn: Callable, lab: str, validate: Callable[..., None] | None = None):
        functools.update_wrapper(self, fn)
        self.lab, self._validate = lab, validate

    def __call__(self, *args, **kwargs):
        if self._validate is not None:
            bound = inspect.signature(self).bind(*args, **kwargs)
            bound.apply_defaults()
            # A validator may also return arguments in their normal form ("SAME" -> "same").
            normal = self._validate(**bound.arguments)
            if isinstance(normal, dict):
                bound.arguments.update(normal)
            args, kwargs = bound.args, bound.kwargs
        return implementation(self.__name__)(*args, **kwargs)

    def __repr__(self):
        return f"<exercise {self.__name__}{inspect.signature(self)} of lab {self.lab}>"


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
    at = _(" in {where}").format(where=where) if where else ""
    ek, gk = _kind(expected), _kind(got)

    # A 0-d array or NumPy scalar stands for a Python number (tf.reduce_mean returns one).
    if ek in ("int", "float", "bool") and gk == "array" and got.ndim == 0:
        got, gk = got[()], _kind(got[()])
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
            return "values", _("got {got}{at}; expected {want}.").format(got=repr(got), at=at, want=repr(expected))
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
        return "values", _("returned {got}{at}; expected {want}.").format(got=repr(got), at=at, want=repr(expected))
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
        return _("{name}{signature} cannot be called with ({arguments}): keep the parameter names given in the exercise.").format(
            name=name, signature=sig, arguments=", ".join(case))
    return None


def run_case(ex: Exercise, fn: Callable, case: dict) -> tuple[Any, tuple[str, str] | None]:
    """Call `fn` on one case; return (output, problem) where problem is (layer, message)."""
    args = copy.deepcopy(case) if not _has_tensors(case) else dict(case)
    before = _snapshot(args)
    try:
        out = fn(**args)
    except NotImplementedError:
        return None, ("runs", _("not done yet: replace `raise NotImplementedError()` with your code."))
    except Exception as err:  # the student's error is the message
        return None, ("runs", _("raised {error}: {message} (inputs: {inputs}).").format(
            error=type(err).__name__, message=err, inputs=describe_case(case)))
    key = _mutated(args, before)
    if key is not None:
        return out, ("mutation", _("changed its input {key} in place; work on a copy (x = x.copy() or tf ops).").format(key=repr(key)))
    return out, None


def _has_tensors(case: dict) -> bool:
    return any(hasattr(v, "numpy") for v in case.values())


def run_checks(ex: Exercise, fn, cases: list[dict], expected: list | None = None) -> CheckResult:
    """Check `fn` on `cases` against the reference, or against `expected` outputs
    (already described with `ex.describe`) where the reference is not here."""
    name = ex.name
    if fn is None:
        return CheckResult(name, False, "exists", _("no function named {name}: run the exercise cell that defines it.").format(name=repr(name)))
    if not callable(fn):
        return CheckResult(name, False, "exists", _("{name} is a {kind}, not a function.").format(name=name, kind=type(fn).__name__))
    if cases:
        problem = signature_problem(name, fn, cases[0])
        if problem:
            return CheckResult(name, False, "signature", problem)
    for index, case in enumerate(cases):
        if expected is None:
            want = ex.reference(**copy.deepcopy(case) if not _has_tensors(case) else dict(case))
            if ex.describe is not None:
                want = ex.describe(want, case)
        else:
            want = expected[index]
        got, problem = run_case(ex, fn, case)
        if problem is None:
            if ex.describe is not None:
                got = ex.describe(got, case)
            problem = compare(want, got, ex.rtol, ex.atol, ex.strict_dtype)
            if problem is not None:
                layer, message = problem
                problem = (layer, _("{message} Inputs: {inputs}.").format(message=message, inputs=describe_case(case)))
        if problem is not None:
            layer, message = problem
            if ex.hint and layer in ("values", "shape", "dtype", "finite"):
                message = _("{message} Hint: {hint}").format(message=message, hint=_(ex.hint))
            return CheckResult(name, False, layer, message, len(cases))
    return CheckResult(name, True, None, "", len(cases))


def notebook_cases(ex: Exercise) -> list[dict]:
    """The cases a notebook check uses: fixed per exercise, unlike the grader's hidden seeds."""
    return ex.cases(np.random.default_rng(zlib.crc32(ex.name.encode())))


def strict_mode() -> bool:
    return os.environ.get(ENV_STRICT, "").strip() not in ("", "0", "false", "no")


# ----------------------------------------------------------------------------- expected outputs
def _fingerprint(values) -> str:
    """A digest of encoded values: the same inputs give the same digest on any machine."""
    from gan_course._grade_worker import encode

    arrays: dict = {}
    meta = encode(values, arrays)
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def expected_outputs(lab: str, folder: Path | None = None, sections: dict[str, str] | None = None) -> tuple[dict, dict]:
    """(meta, arrays) of a lab's expected outputs on its public cases, from the references
    in the solution notebook of `folder` (default: the course's solutions/)."""
    from gan_course._grade_worker import encode

    references = load_references(lab, folder)
    arrays: dict = {}
    entries = {}
    for ex in load_lab(lab):
        cases = notebook_cases(ex)
        outputs = []
        for case in cases:
            out = references[ex.name](**copy.deepcopy(case) if not _has_tensors(case) else dict(case))
            outputs.append(ex.describe(out, case) if ex.describe is not None else to_numpy(out))
        entries[ex.name] = {
            "inputs": _fingerprint(cases),
            "outputs": encode(outputs, arrays),
            "section": (sections or {}).get(ex.name, ""),
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
    from gan_course._grade_worker import read_npz

    meta, arrays = read_npz(path)
    meta["arrays"] = arrays
    return meta


def _expected_for(ex: Exercise, cases: list[dict]) -> tuple[list | None, str | None]:
    """(expected outputs, None) from the released file, or (None, the line that says why not)."""
    from gan_course._grade_worker import decode

    path = expected_path(ex.lab)
    if path is None:
        return None, _(MSG_NO_EXPECTED).format(name=ex.name, folder=EXPECTED_FOLDER, lab=ex.lab)
    try:
        meta = read_expected(path)
        entry = meta["exercises"][ex.name]
    except (OSError, ValueError, KeyError):
        return None, _(MSG_STALE_EXPECTED).format(name=ex.name, path=path)
    _SECTIONS[ex.name] = entry.get("section", "")
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
