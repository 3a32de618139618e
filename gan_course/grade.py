"""The autograder: a folder of submissions in, a grade sheet and per-student feedback out.

    gan-course grade SUBMISSIONS --out DIR [--lab NN] [--workers N]

SUBMISSIONS holds one notebook per student (``alice.ipynb``) or one folder per student
(``alice/02_conv_arithmetic.ipynb``); the student's name is the file's or the folder's.
The lab comes from the notebook's metadata (``metadata.gan_course.lab``) or ``--lab``;
the reference is the lab's notebook in the course's ``solutions/``.

How an exercise is graded
-------------------------
*Finding it.*  An exercise cell is the cell whose first line is ``# EXERCISE: name``
(or whose metadata says ``gan_course.exercise``); never a cell id or a position.  A
duplicated cell is graded from its last copy, a cell turned into markdown is graded as
code, a cell whose marker line was deleted is found by the function it defines; each
case is reported in the feedback.

*What it runs with.*  The lab's **setup code**: every top-level import, and every
``NAME = module.setup(...)`` line (``P = gc.setup()``), in the code cells of the
solution notebook before its first exercise.  Then the names of the earlier exercises,
bound to the course's references (as a failed check cell binds them in the notebook).
Nothing else from the student's notebook: an exercise that leans on another cell's
global fails with a NameError and a message that says so.

*Where it runs.*  In a process of its own (see `gan_course._grade_worker`), with a time
limit, a memory limit, stdin closed, output captured and capped, a working folder of its
own, and an audit hook that refuses reading the solutions or the grade output, writing
outside the working folder and starting programs.  The reference solution runs in
another process.  Both return arrays and JSON, never pickles.

*How fast.*  One warm worker per parallel slot imports the lab's libraries (TensorFlow)
once and forks a process per notebook, and from it one per exercise; TensorFlow is
imported, not initialised, before the forks, and grading runs on the CPU.  30
submissions of a lab take about a minute on 2 cores (`bench/grade_speed.py`).

*How it is compared.*  On hidden inputs: the exercise's ``cases(rng)`` with a seed per
student and exercise (drawn fresh per run, recorded in results.json).  Here, in the
parent, with `gan_course.checks.compare`, layer by layer; the first failing check is
the message.

Statuses: ``pass``; ``fail`` (ran, but not right: not done, wrong name or signature,
wrong values, mutated input, tampering); ``error`` (the code crashed: an exception,
a syntax error, sys.exit, the memory limit, a killed process, an unreadable notebook);
``timeout``; ``missing`` (no cell for the exercise).
"""
from __future__ import annotations

import ast
import csv
import difflib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue

import nbformat
import numpy as np

from gan_course import _grade_worker as worker
from gan_course.release import exercise_name

STATUSES = ("pass", "fail", "error", "timeout", "missing")
DEFAULT_TIMEOUT = 60.0
DEFAULT_MEMORY_MB = 2048
FEEDBACK_OUTPUT_LINES = 30
RESULTS_OUTPUT_CHARS = 2000
WORKER_START_SECONDS = 120  # importing TensorFlow on a busy machine, with room to spare


class GradeError(RuntimeError):
    """The batch cannot be graded at all (no lab, no solutions): the message says why."""


# ----------------------------------------------------------------------------- notebooks
class NotebookError(ValueError):
    """A submission that cannot be read as a notebook."""


@dataclass
class Cell:
    index: int
    cell_type: str
    source: str
    exercise: str | None  # from the marker line, else from the cell's metadata


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):
        source = "".join(str(part) for part in source)
    return source if isinstance(source, str) else ""


def read_notebook(path: Path) -> tuple[list[Cell], str | None]:
    """The cells of a notebook and its lab number; NotebookError if it is not a notebook."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise NotebookError("is not a notebook: the file is not text (UTF-8)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise NotebookError(
            f"is not a notebook: not valid JSON ({err.msg}: line {err.lineno}, column {err.colno}); "
            "was it saved from Jupyter (File > Save and Export Notebook As > Notebook)?"
        ) from None
    if isinstance(data, dict) and "worksheets" in data:  # an nbformat 3 notebook: upgrade it
        try:
            data = json.loads(nbformat.writes(nbformat.reads(text, as_version=4)))
        except Exception:  # noqa: BLE001 - reported below as not a notebook
            pass
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise NotebookError("is JSON but not a Jupyter notebook (it has no list of cells)")
    cells = []
    for index, cell in enumerate(data["cells"]):
        if not isinstance(cell, dict):
            continue
        source = _source(cell)
        meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        tagged = meta.get("gan_course", {}).get("exercise") if isinstance(meta.get("gan_course"), dict) else None
        name = exercise_name(source) or (tagged if isinstance(tagged, str) else None)
        cells.append(Cell(index, str(cell.get("cell_type", "code")), source, name))
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    lab = meta.get("gan_course", {}).get("lab") if isinstance(meta.get("gan_course"), dict) else None
    return cells, _lab_number(lab)


def _lab_number(lab) -> str | None:
    if lab is None:
        return None
    text = str(lab).strip()
    return text.zfill(2) if text.isdigit() else (text or None)


def _defines(source: str, name: str) -> bool:
    try:
        tree = ast.parse(worker.prepare_source(source))
    except SyntaxError:
        return re.search(rf"^\s*def\s+{re.escape(name)}\s*\(", source, re.M) is not None
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name for n in tree.body)


def _assigned_names(source: str) -> set[str]:
    """Top-level names a cell binds (to explain a NameError that comes from another cell)."""
    try:
        tree = ast.parse(worker.prepare_source(source))
    except SyntaxError:
        return set(re.findall(r"^([A-Za-z_]\w*)\s*=", source, re.M))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        else:
            for target in ast.walk(node):
                if isinstance(target, ast.Name) and isinstance(target.ctx, ast.Store):
                    names.add(target.id)
    return names


@dataclass
class Located:
    source: str
    cell: int
    notes: list[str] = field(default_factory=list)


def locate_exercises(cells: list[Cell], names: list[str]) -> dict[str, Located]:
    """Each exercise's cell (by marker or metadata, never by position), with notes on oddities."""
    found: dict[str, Located] = {}
    for name in names:
        tagged = [c for c in cells if c.exercise == name]
        code = [c for c in tagged if c.cell_type == "code"]
        notes = []
        if code:
            chosen = code[-1]
        elif tagged:
            chosen = tagged[-1]
            notes.append(
                f"the exercise cell was turned into a {chosen.cell_type} cell, so it never ran in your "
                "notebook; it was graded as code. Change it back to a Code cell (Esc, then Y)."
            )
        else:
            defining = [c for c in cells if c.cell_type == "code" and _defines(c.source, name)]
            if not defining:
                continue
            chosen = defining[-1]
            notes.append(
                f"the line `# EXERCISE: {name}` is missing; graded cell {chosen.index + 1}, which defines "
                f"`{name}`. Keep the marker line as the first line of the cell."
            )
        if len(tagged) > 1:
            where = ", ".join(str(c.index + 1) for c in tagged)
            notes.append(
                f"this exercise appears {len(tagged)} times (cells {where}); the last "
                f"{'code ' if code else ''}cell (cell {chosen.index + 1}) was graded. Delete the other copies."
            )
        found[name] = Located(chosen.source, chosen.index, notes)
    # Re-ordered cells grade as usual; say so, since the notebook no longer reads in order.
    previous = None
    for name in names:
        if name not in found:
            continue
        if previous is not None and found[name].cell < found[previous].cell:
            found[name].notes.append(
                f"this cell comes before `{previous}` in your notebook, out of the lab's order "
                "(graded as usual; cells run top to bottom, so keep the lab's order)."
            )
        previous = name
    return found


def setup_code(cells: list[Cell]) -> str:
    """The lab's setup code: imports and `NAME = module.setup(...)` lines before the first exercise."""
    lines = []
    for cell in cells:
        if cell.exercise is not None:
            break
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(worker.prepare_source(cell.source))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)) or _is_setup_call(node):
                lines.append(ast.unparse(node))
    return "\n".join(lines) + "\n"


def _is_setup_call(node) -> bool:
    value = node.value if isinstance(node, (ast.Assign, ast.Expr)) else None
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr == "setup"
        and isinstance(value.func.value, ast.Name)
    )


# ----------------------------------------------------------------------------- submissions
@dataclass
class Submission:
    student: str
    path: Path | None
    cells: list[Cell] = field(default_factory=list)
    lab: str | None = None
    problem: str | None = None  # why the notebook could not be read
    safe: str = ""  # the student's name as a file name


def _safe_name(name: str, taken: set) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "student"
    safe, n = base, 2
    while safe.lower() in taken:
        safe, n = f"{base}_{n}", n + 1
    taken.add(safe.lower())
    return safe


def find_submissions(folder: Path, lab: str | None = None) -> list[Submission]:
    """One Submission per student: each `*.ipynb` file and each folder holding a notebook."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GradeError(f"{folder} is not a folder of submissions")
    subs, taken, names_seen = [], set(), set()
    for entry in sorted(folder.iterdir(), key=lambda p: p.name.lower()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            notebooks = sorted(
                p for p in entry.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
            )
            sub = Submission(entry.name, None)
            if not notebooks:
                sub.problem = "has no notebook (.ipynb) in it"
            elif len(notebooks) == 1:
                sub.path = notebooks[0]
            else:
                matching = [p for p in notebooks if lab and p.name.startswith(f"{lab}_")]
                sub.path = (matching or notebooks)[0]
        elif entry.suffix == ".ipynb":
            sub = Submission(entry.stem, entry)
        else:
            continue
        if sub.student.lower() in names_seen:  # alice.ipynb beside a folder alice/
            sub.student = entry.name
        names_seen.add(sub.student.lower())
        sub.safe = _safe_name(sub.student, taken)
        if sub.path is not None:
            try:
                sub.cells, sub.lab = read_notebook(sub.path)
            except NotebookError as err:
                sub.problem = str(err)
            except OSError as err:
                sub.problem = f"could not be read ({err.strerror})"
        subs.append(sub)
    return subs


def course_root() -> Path:
    """The course folder: the current directory if it holds solutions/, else the repository."""
    from gan_course.cli import _root

    return _root()


def solution_notebook(root: Path, lab: str) -> Path:
    found = sorted((Path(root) / "solutions").glob(f"{lab}_*.ipynb"))
    if not found:
        raise GradeError(f"no solution notebook for lab {lab}: expected {Path(root) / 'solutions'}/{lab}_*.ipynb")
    return found[0]


def _choose_lab(subs: list[Submission], lab: str | None) -> str:
    if lab:
        return _lab_number(lab)
    labs = [s.lab for s in subs if s.lab]
    if not labs:
        raise GradeError("no notebook says which lab it is (metadata gan_course.lab): pass --lab NN")
    counts = {lab: labs.count(lab) for lab in sorted(set(labs))}
    best = max(counts.values())
    if list(counts.values()).count(best) > 1:
        found = ", ".join(f"lab {k}: {v}" for k, v in counts.items())
        raise GradeError(f"the notebooks belong to several labs ({found}): pass --lab NN")
    return max(counts, key=counts.get)


def student_seed(batch_seed: int, student: str, exercise: str) -> int:
    words = [batch_seed, zlib.crc32(student.encode()), zlib.crc32(exercise.encode())]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


# ----------------------------------------------------------------------------- running
class WorkerSlot:
    """One warm worker process (`_grade_worker --serve`): imports the lab once, grades many notebooks.

    Every notebook it grades runs in a child forked from it after the imports, and
    every exercise in a grandchild, so TensorFlow is imported once per slot, not once
    per submission, while no two submissions ever share a process.
    """

    def __init__(self, warm_path: Path, log_path: Path, env: dict, cwd: Path):
        self.args = [sys.executable, "-m", "gan_course._grade_worker", "--serve", str(warm_path)]
        self.log_path, self.env, self.cwd = log_path, env, cwd
        self.proc = None

    def _start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=self.env,
            cwd=self.cwd, start_new_session=True, text=True, bufsize=1,
        )
        log.close()

    def run(self, job_path: Path, limit: float) -> bool:
        """Grade one notebook; False when the worker had to be killed (it is restarted for the next)."""
        import select

        if self.proc is None or self.proc.poll() is not None:
            self._start()
        try:
            self.proc.stdin.write(f"{job_path}\n")
            self.proc.stdin.flush()
            ready, _, _ = select.select([self.proc.stdout], [], [], limit)
            if ready and self.proc.stdout.readline().startswith("done"):
                return True
        except (BrokenPipeError, OSError):
            pass
        self.close(kill=True)
        return False

    def close(self, kill: bool = False):
        if self.proc is None:
            return
        if not kill:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                kill = True
        if kill:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.proc = None


def _load_result(path: str):
    try:
        if os.path.getsize(path) == 0:
            return None, None
        return worker.read_npz(path)
    except Exception:  # noqa: BLE001 - missing, cut short or garbled: no result
        return None, None


def _read_report(path: Path) -> dict:
    try:
        return {entry["name"]: entry for entry in json.loads(path.read_text(encoding="utf-8"))}
    except (OSError, ValueError):
        return {}


# ----------------------------------------------------------------------------- judging
@dataclass
class Outcome:
    status: str
    points: float = 0.0
    check: str | None = None
    message: str = ""
    seed: int | None = None
    notes: list[str] = field(default_factory=list)
    output: str = ""
    seconds: float | None = None

    def as_dict(self) -> dict:
        return {
            "status": self.status, "points": self.points, "check": self.check, "message": self.message,
            "seed": self.seed, "notes": self.notes, "seconds": self.seconds,
            "output": self.output[:RESULTS_OUTPUT_CHARS],
        }


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _where(stage: str) -> str:
    if stage.startswith("case"):
        return f"your function was running ({stage.replace('case', 'test case')})"
    return {"setup": "the lab's setup code was running", "cell": "the exercise cell was running"}.get(
        stage, "the exercise was starting"
    )


def explain_error(info: dict, name: str, other_cells: set, memory_mb: int, in_cell: bool) -> tuple[str, str, str]:
    """(status, check, message) for an exception the student's code raised."""
    kind, text = info.get("type", "Exception"), info.get("message", "")
    at = f" (line {info['line']}: `{info['text']}`)" if info.get("line") and info.get("text") else (
        f" (line {info['line']})" if info.get("line") else ""
    )
    place = "the exercise cell" if in_cell else f"`{name}`"
    check = "cell" if in_cell else "runs"
    if kind == "NotImplementedError":
        return "fail", "runs", "not done yet: replace `raise NotImplementedError()` with your code."
    if kind == "SyntaxError" or kind == "IndentationError" or kind == "TabError":
        return "error", "cell", f"{kind} in the exercise cell, line {info.get('line')}: {text}" + (
            f": `{info['text']}`" if info.get("text") else ""
        ) + "."
    if kind == "SystemExit":
        return "error", check, (
            f"{place} calls sys.exit() or exit(), which stops Python{at}: remove the call "
            "(return a value, or raise an exception)."
        )
    if kind == "MemoryError":
        return "error", "memory", (
            f"{place} ran out of memory{at}: each exercise may use {memory_mb} MiB. "
            "Look for an array far larger than the inputs."
        )
    if kind == "EOFError" and "EOF when reading a line" in text:
        return "error", check, (
            f"{place} calls input(){at}, but grading has no keyboard (stdin is closed): "
            "take values from the function's arguments instead."
        )
    if kind == "NameError" and info.get("name"):
        missing = info["name"]
        if missing in other_cells:
            return "error", check, (
                f"`{missing}` is not defined{at}: it comes from another cell of your notebook. The grader "
                "runs each exercise cell on its own, after only the lab's setup code (the imports), so "
                f"define or import `{missing}` inside the exercise cell."
            )
        return "error", check, (
            f"NameError: name `{missing}` is not defined{at}. The grader runs each exercise cell with only "
            "the lab's setup code (the imports): define or import everything the cell needs inside it."
        )
    return "error", check, f"{place} raised {kind}: {text}{at}."


def judge(
    ex, name: str, sub: Submission, located: Located | None, seed: int, entry: dict | None,
    result: tuple, expected: dict | None, reference_problem: str | None, limits: dict,
) -> Outcome:
    """The outcome of one exercise of one submission, from the worker's report and the result file."""
    from gan_course import checks

    points = float(getattr(ex, "points", 1))
    if sub.problem is not None:
        name_shown = sub.path.name if sub.path else f"{sub.student}/"
        end = "" if sub.problem.endswith(("?", ".")) else "."
        return Outcome("error", check="notebook", message=f"`{name_shown}` {sub.problem}{end}")
    if located is None:
        if not sub.cells:
            return Outcome("missing", check="exists", message="your notebook is empty: it has no cells.")
        other_lab = f"this notebook is lab {sub.lab}'s, not lab {limits['lab']}'s: " if sub.lab != limits["lab"] else ""
        return Outcome(
            "missing", check="exists",
            message=f"{other_lab}no cell starts with `# EXERCISE: {name}`: the exercise cell was deleted or its "
            "first line changed. Copy the cell back from the lab and put your code in it.",
        )
    out = Outcome("error", seed=seed, notes=list(located.notes))
    if entry is None:
        out.check, out.message = "runs", "the grading process for your notebook stopped before this exercise ran."
        return out
    out.output, out.seconds = entry.get("output", ""), entry.get("seconds")
    stage = entry.get("last_stage", "")
    if entry.get("timed_out") or entry.get("signal") == signal.SIGXCPU:
        out.status, out.check = "timeout", "time"
        out.message = (
            f"did not finish within the time limit of {limits['timeout']:g} s; it was stopped while "
            f"{_where(stage)}. Look for an endless loop (a `while` whose condition never turns false)."
        )
        return out
    if entry.get("signal"):
        out.check = "runs"
        out.message = (
            f"the exercise's process was killed by {_signal_name(entry['signal'])} while {_where(stage)} "
            "(os.kill, or a crash inside compiled code); grading carried on without it."
        )
        return out
    meta, arrays = result
    if meta is None:
        out.check = "runs"
        out.message = (
            f"the exercise's process ended (exit code {entry.get('exit')}) while {_where(stage)}, before the "
            "grader got a result: a call to os._exit()? Return a value instead."
        )
        return out
    dropped = meta.get("stdout_dropped", 0)
    if dropped or entry.get("output_bytes", 0) > limits["output_cap"]:
        printed = max(entry.get("output_bytes", 0), len(out.output) + dropped)
        out.notes.append(
            f"it printed {printed:,} characters; only the first {limits['output_cap']:,} were kept."
        )
    if meta.get("too_large"):
        out.check = "memory"
        out.message = f"`{name}` returned a result too large to compare (over {worker.FILE_SIZE_LIMIT // 2**20} MiB)."
        return out
    if meta.get("internal"):
        out.check = "grader"
        out.message = f"the grader itself failed on this exercise ({meta['internal'].get('type')}: {meta['internal'].get('message')}); tell the instructor."
        return out

    # Tampering first: a refused file access also surfaces as an error in the code.
    tampering = []
    for what in meta.get("refusals", []):
        tampering.append(f"tried {what}")
    for helper in meta.get("replaced", []):
        tampering.append(f"replaced `{helper}` (the grader compares in its own process, so this changes nothing)")
    if "uses the course's reference" in meta.get("tampering", []):
        module = getattr(ex.reference, "__module__", "gan_course")
        tampering.append(
            f"`{name}` uses the course's reference `{module}.{name}` instead of computing the result: "
            "write the function yourself"
        )
    if tampering:
        out.status, out.check = "fail", "tampering"
        out.message = "; ".join(dict.fromkeys(tampering)) + "."
        return out

    other_cells = set()
    for cell in sub.cells:
        if cell.cell_type == "code" and cell.index != located.cell:
            other_cells |= _assigned_names(cell.source)
    if meta.get("error"):
        if meta.get("stage") == "setup":
            out.check = "setup"
            out.message = f"the lab's setup code failed ({meta['error'].get('type')}: {meta['error'].get('message')}); tell the instructor."
            return out
        out.status, out.check, out.message = explain_error(meta["error"], name, other_cells, limits["memory_mb"], True)
        return out
    if meta.get("missing") is not None:
        out.status, out.check = "fail", "exists"
        kind = meta["missing"].get("kind")
        if kind:
            out.message = f"`{name}` is a {kind}, not a function: define it with `def {name}(...)`."
        else:
            defined = meta["missing"].get("defined", [])
            close = difflib.get_close_matches(name, defined, n=1, cutoff=0.5)
            out.message = f"the exercise cell defines no function named `{name}`" + (
                f"; it defines `{close[0]}`: did you rename it? Keep the name `{name}`." if close else
                (f" (it defines {', '.join(f'`{d}`' for d in defined)}); keep the name given in the exercise." if defined else ".")
            )
        return out
    if meta.get("signature"):
        out.status, out.check, out.message = "fail", "signature", meta["signature"]
        return out
    if reference_problem:
        out.check, out.message = "grader", reference_problem
        return out

    cases = ex.cases(np.random.default_rng(seed))
    runs = {run["seed"]: run["cases"] for run in meta.get("runs", [])}
    got_cases = runs.get(seed, [])
    expected_cases = expected.get(seed) if expected else None
    if expected_cases is None:
        out.check, out.message = "grader", "the reference solution gave no result for these inputs; tell the instructor."
        return out
    for index, case in enumerate(cases):
        if index >= len(got_cases):
            out.check, out.message = "runs", "the grader received no result for some test cases; tell the instructor."
            return out
        entry_case = got_cases[index]
        inputs = f" Inputs: {checks.describe_case(case)}."
        if "error" in entry_case:
            out.status, out.check, out.message = explain_error(entry_case["error"], name, other_cells, limits["memory_mb"], False)
            if out.check == "runs" and out.status == "error":
                out.message += inputs
            return out
        if "describe_error" in entry_case:
            info = entry_case["describe_error"]
            out.status, out.check = "fail", "type"
            out.message = f"the result could not be read as the exercise expects ({info.get('type')}: {info.get('message')}).{inputs}"
            return out
        got = worker.decode(entry_case["output"], arrays)
        reference_ok, expected_value = expected_cases[index] if index < len(expected_cases) else (False, None)
        if not reference_ok:
            out.check, out.message = "grader", "the reference solution failed on these inputs; tell the instructor."
            return out
        try:
            problem = checks.compare(expected_value, got, rtol=ex.rtol, atol=ex.atol, strict_dtype=ex.strict_dtype)
        except Exception as err:  # noqa: BLE001 - an odd value must not stop the batch
            problem = ("type", f"returned a value the grader cannot compare ({type(err).__name__}: {err}).")
        if problem is None:
            after = worker.decode(entry_case["after"], arrays)
            if isinstance(after, dict):
                try:
                    key = checks._mutated(after, checks._snapshot(case))
                except Exception:  # noqa: BLE001 - an input that cannot be compared was changed
                    key = next(iter(case), None)
                if key is not None:
                    problem = ("mutation", f"changed its input {key!r} in place; work on a copy (x = x.copy() or tf ops).")
        if problem is not None:
            layer, message = problem
            out.status, out.check = "fail", layer
            out.message = f"{message}{inputs}"
            if ex.hint and layer in ("values", "shape", "dtype", "finite"):
                out.message += f" Hint: {ex.hint}"
            return out
    out.status, out.check, out.points = "pass", None, points
    out.message = f"all {len(cases)} hidden test cases match the reference."
    return out


def _expected_by_seed(meta, arrays) -> dict:
    """seed -> [(ran, expected value) per case] from the reference's result."""
    by_seed = {}
    for run in meta.get("runs", []):
        by_seed[run["seed"]] = [
            (True, worker.decode(entry["output"], arrays)) if "output" in entry and "describe_error" not in entry else (False, None)
            for entry in run["cases"]
        ]
    return by_seed


# ----------------------------------------------------------------------------- writing
def _percent(total: float, maximum: float) -> str:
    return f"{100 * total / maximum:.0f}%" if maximum else "-"


STATUS_MARK = {"pass": "✓", "fail": "✗", "error": "✗", "timeout": "⏱", "missing": "?"}


def feedback_markdown(student: str, lab: str, names: list[str], outcomes: dict, maximum: float) -> str:
    total = sum(o.points for o in outcomes.values())
    lines = [
        f"# Lab {lab} feedback for {student}",
        "",
        f"**Score: {total:g} / {maximum:g}** ({_percent(total, maximum)})",
        "",
        "| Exercise | Result | Points |",
        "|---|---|---|",
    ]
    for name in names:
        o = outcomes[name]
        lines.append(f"| `{name}` | {STATUS_MARK[o.status]} {o.status} | {o.points:g} |")
    lines.append("")
    for name in names:
        o = outcomes[name]
        lines += [f"## {STATUS_MARK[o.status]} `{name}`: {o.status}", ""]
        if o.status == "pass":
            lines.append(o.message[:1].upper() + o.message[1:])
        else:
            lines.append(f"**Check that failed:** {o.check}" if o.check else "")
            lines += ["", o.message[:1].upper() + o.message[1:]]
        if o.notes:
            lines += ["", "Notes:"] + [f"- {n[:1].upper() + n[1:]}" for n in o.notes]
        if o.output.strip() and o.status != "pass":
            shown = o.output.strip("\n").split("\n")
            cut = len(shown) > FEEDBACK_OUTPUT_LINES
            shown = shown[:FEEDBACK_OUTPUT_LINES]
            lines += ["", "What it printed" + (" (first lines)" if cut else "") + ":", "", "```text", *shown, "```"]
        lines.append("")
    lines += [
        "---",
        "Each exercise was run on its own, after the lab's setup code only, on hidden test inputs "
        "(including a batch of 1 and odd sizes), and compared with the course's solution. "
        "Run the lab's check cell (`gc.check(...)`) to see the same kind of message while you work.",
        "",
    ]
    return "\n".join(lines)


@dataclass
class GradeReport:
    lab: str
    names: list[str]
    points: dict
    outcomes: dict  # student -> name -> Outcome
    seconds: float
    batch_seed: int
    out: Path
    submissions: list = field(default_factory=list)

    def total(self, student) -> float:
        return sum(o.points for o in self.outcomes[student].values())

    @property
    def maximum(self) -> float:
        return float(sum(self.points.values()))


def write_outputs(report: GradeReport, subs: list[Submission], solution: Path) -> None:
    out = report.out
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *report.names, "total", "max"])
        for sub in subs:
            o = report.outcomes[sub.student]
            writer.writerow([sub.student, *(f"{o[n].points:g}" for n in report.names), f"{report.total(sub.student):g}", f"{report.maximum:g}"])
    results = {
        "lab": report.lab,
        "solution": solution.name,
        "batch_seed": report.batch_seed,
        "seconds": round(report.seconds, 1),
        "exercises": [{"name": n, "points": report.points[n]} for n in report.names],
        "students": {
            sub.student: {
                "notebook": str(sub.path) if sub.path else None,
                "feedback": f"feedback/{sub.safe}.md",
                "total": report.total(sub.student),
                "max": report.maximum,
                "exercises": {n: report.outcomes[sub.student][n].as_dict() for n in report.names},
            }
            for sub in subs
        },
    }
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    for sub in subs:
        text = feedback_markdown(sub.student, report.lab, report.names, report.outcomes[sub.student], report.maximum)
        (out / "feedback" / f"{sub.safe}.md").write_text(text, encoding="utf-8")


def summary(report: GradeReport, subs: list[Submission]) -> str:
    names = report.names
    lines = [
        f"Graded {len(subs)} submission(s) of lab {report.lab} ({len(names)} exercises) in {report.seconds:.1f} s.",
        "",
    ]
    width = max([len(s.student) for s in subs] + [7])
    if len(subs) <= 60:
        lines.append(f"{'student':<{width}}  score")
        for sub in subs:
            total = report.total(sub.student)
            marks = "".join(STATUS_MARK[report.outcomes[sub.student][n].status] for n in names)
            lines.append(f"{sub.student:<{width}}  {total:g}/{report.maximum:g}  {marks}")
        lines.append("")
    lines.append("per exercise: " + ", ".join(STATUSES))
    for name in names:
        counts = [sum(report.outcomes[s.student][name].status == st for s in subs) for st in STATUSES]
        lines.append(f"  {name}: " + " ".join(str(c) for c in counts))
    if subs:
        mean = sum(report.total(s.student) for s in subs) / len(subs)
        lines.append(f"mean score {mean:.2f}/{report.maximum:g}")
    lines.append(f"wrote grades.csv, results.json and feedback/ to {report.out}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the batch
def grade(
    submissions,
    out,
    lab: str | None = None,
    workers: int | None = None,
    root=None,
    timeout: float = DEFAULT_TIMEOUT,
    memory_mb: int = DEFAULT_MEMORY_MB,
    seed: int | None = None,
    progress: bool = True,
    keep_work: bool = False,
) -> GradeReport:
    """Grade every submission in `submissions`; write grades.csv, results.json and feedback/ to `out`."""
    from gan_course import checks

    started = time.monotonic()
    out = Path(out).resolve()
    root = Path(root).resolve() if root is not None else course_root()
    subs = find_submissions(Path(submissions), _lab_number(lab))
    lab = _choose_lab(subs, lab)
    if lab not in checks.LAB_MODULES:
        raise GradeError(f"lab {lab} has no registered exercises (known labs: {', '.join(sorted(checks.LAB_MODULES))})")
    solution = solution_notebook(root, lab)
    solution_cells, _ = read_notebook(solution)
    names = list(dict.fromkeys(c.exercise for c in solution_cells if c.exercise and c.cell_type == "code"))
    if not names:
        raise GradeError(f"{solution} has no exercise cells (`# EXERCISE: name`)")
    reference_sources = {n: locate_exercises(solution_cells, [n])[n].source for n in names}
    setup = setup_code(solution_cells)
    batch_seed = secrets.randbits(32) if seed is None else int(seed)
    out.mkdir(parents=True, exist_ok=True)

    private = Path(tempfile.mkdtemp(prefix="gan-course-grade-"))
    limits = {"timeout": float(timeout), "memory_mb": int(memory_mb), "output_cap": worker.OUTPUT_CAP, "lab": lab}
    protected = [str(root / "solutions"), str(Path(__file__).resolve().parent.parent / "solutions"), str(out), str(private)]
    for sub in subs:
        if sub.path is not None and sub.problem is None:
            sub.lab = sub.lab or lab
    located = {s.student: locate_exercises(s.cells, names) if s.problem is None else {} for s in subs}
    seeds = {(s.student, n): student_seed(batch_seed, s.student, n) for s in subs for n in names}
    # The worker imports these once, before it forks: the lab's module, and TensorFlow and
    # Keras when the setup calls gc.setup() (which imports them in every child otherwise).
    modules = [checks.LAB_MODULES[lab]] + (["tensorflow", "keras"] if ".setup(" in setup else [])
    base = {
        "setup_code": setup, "modules": modules, "timeout": limits["timeout"],
        "memory_mb": limits["memory_mb"], "output_cap": limits["output_cap"], "protected": protected,
    }

    def paths(who: str, name: str) -> dict:
        (private / "work" / who / name).mkdir(parents=True, exist_ok=True)
        (private / "results" / who).mkdir(parents=True, exist_ok=True)
        return {
            "workdir": str(private / "work" / who / name),
            "result": str(private / "results" / who / f"{name}.npz"),
            "output": str(private / "results" / who / f"{name}.out"),
        }

    jobs = []
    reference_job = dict(base, role="reference", report=str(private / "results" / "_reference.json"), cwd=str(private / "work"))
    reference_job["exercises"] = [
        dict(paths("_reference", n), name=n, source=reference_sources[n], earlier=names[:i],
             seeds=sorted({seeds[(s.student, n)] for s in subs if n in located[s.student]}))
        for i, n in enumerate(names)
    ]
    jobs.append(("_reference", reference_job))
    for sub in subs:
        if sub.problem is not None or not located[sub.student]:
            continue
        job = dict(base, role="student", report=str(private / "results" / f"{sub.safe}.json"), cwd=str(private / "work"))
        job["exercises"] = [
            dict(paths(sub.safe, n), name=n, source=located[sub.student][n].source, earlier=names[:i],
                 seeds=[seeds[(sub.student, n)]])
            for i, n in enumerate(names) if n in located[sub.student]
        ]
        jobs.append((sub.safe, job))

    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Exercises are small functions: grade them on the CPU, where every child starts in
    # a fraction of a second, instead of opening a GPU context per exercise.
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    env.setdefault("GAN_COURSE_PROFILE", "smoke")
    # One thread per child (the workers are the parallelism), and few malloc arenas, so
    # that the address-space limit measures the student's arrays, not thread overhead.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, "1")
    env.setdefault("MALLOC_ARENA_MAX", "2")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    package_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [package_parent, env.get("PYTHONPATH", "")] if p)

    workers = max(1, int(workers or os.cpu_count() or 1))
    from tqdm.auto import tqdm

    warm_path = private / "warm.json"
    warm_path.write_text(json.dumps({"setup_code": setup, "modules": base["modules"]}), encoding="utf-8")
    queue = Queue()
    for who, job in jobs:
        job_path = private / f"job-{who}.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        runs = len(job["exercises"]) * (max(1, len(subs)) if who == "_reference" else 1)
        queue.put((job_path, WORKER_START_SECONDS + runs * (limits["timeout"] + 5)))
    bar = tqdm(total=len(jobs), desc=f"grading lab {lab}", unit="notebook", disable=not progress)

    def slot_loop(number: int):
        slot = WorkerSlot(warm_path, private / f"worker-{number}.log", env, private / "work")
        try:
            while True:
                try:
                    job_path, limit = queue.get_nowait()
                except Empty:
                    return
                slot.run(job_path, limit)
                bar.update(1)
        finally:
            slot.close()

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(slot_loop, n) for n in range(min(workers, len(jobs)))]:
                future.result()
        bar.close()

        # Only now, with every submitted process gone, do expected values enter memory.
        registered = {ex.name: ex for ex in checks.load_lab(lab)}
        unknown = [n for n in names if n not in registered]
        if unknown:
            raise GradeError(
                f"{solution.name} has exercise cells the library does not register: {', '.join(unknown)} "
                f"(add @exercise to {checks.LAB_MODULES[lab]})"
            )
        exercises = {n: registered[n] for n in names}
        for n, ex in exercises.items():
            count = len(ex.cases(np.random.default_rng(0)))
            if count < 5:
                print(f"gan-course grade: `{n}` has only {count} test case(s); the course asks for at least 5.", file=sys.stderr)
        reference_report = _read_report(private / "results" / "_reference.json")
        expected, reference_problems = {}, {}
        for n in names:
            meta, arrays = _load_result(reference_job["exercises"][names.index(n)]["result"])
            problem = None
            entry = reference_report.get(n)
            if meta is None or meta.get("error") or meta.get("internal") or meta.get("missing") or meta.get("signature"):
                detail = ""
                if meta is not None:
                    info = meta.get("error") or meta.get("internal") or {}
                    detail = f" ({info.get('type')}: {info.get('message')})" if info else ""
                elif entry is not None and entry.get("timed_out"):
                    detail = " (it timed out)"
                problem = f"the reference solution of `{n}` could not be run{detail}; tell the instructor."
                print(f"gan-course grade: {problem}", file=sys.stderr)
            else:
                expected[n] = _expected_by_seed(meta, arrays)
            reference_problems[n] = problem

        outcomes = {}
        for sub in subs:
            report = _read_report(private / "results" / f"{sub.safe}.json")
            outcomes[sub.student] = {}
            for n in names:
                where = located[sub.student].get(n)
                result = _load_result(str(private / "results" / sub.safe / f"{n}.npz")) if where else (None, None)
                outcomes[sub.student][n] = judge(
                    exercises[n], n, sub, where, seeds[(sub.student, n)], report.get(n), result,
                    expected.get(n), reference_problems[n], limits,
                )
    finally:
        if not keep_work:
            shutil.rmtree(private, ignore_errors=True)

    report = GradeReport(
        lab, names, {n: exercises[n].points for n in names}, outcomes, time.monotonic() - started, batch_seed, out, subs
    )
    write_outputs(report, subs, solution)
    return report


def main(args) -> int:
    """`gan-course grade` (see cli.py)."""
    try:
        report = grade(
            args.submissions, args.out, lab=args.lab, workers=args.workers, timeout=args.timeout,
            memory_mb=args.memory, seed=args.seed,
        )
    except GradeError as err:
        print(f"gan-course grade: {err}", file=sys.stderr)
        return 2
    print(summary(report, report.submissions))
    return 0
