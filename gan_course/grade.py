"""The autograder: a folder of submissions in, a grade sheet and per-student feedback out.

    gan-course grade SUBMISSIONS --out DIR [--lab NN] [--workers N] [--require-sandbox]

SUBMISSIONS holds one notebook per student (``alice.ipynb``) or one folder per student
(``alice/02_conv_arithmetic.ipynb``); the student's name is the file's or the folder's.
The lab comes from the notebooks' metadata (``metadata.gan_course.lab``) or ``--lab``;
the reference is the lab's notebook in the course's ``solutions/``.

The stages, one module each in `gan_course.grader`:

*read*  Every entry of the folder is graded or reported; files are opened safely
(regular files only, size and nesting caps, any encoding).  A folder with several
notebooks is graded on the one of the batch's lab, and the feedback says which.

*locate*  An exercise cell is the cell whose first line is ``# EXERCISE: name`` (then,
failing that, whose metadata names it, or which defines the function); never a cell id
or a position.  The lab's **setup code** is every top-level import and every
``NAME = module.setup(...)`` line before the solution notebook's first exercise.  An
exercise runs after the setup code and the notebook's own earlier exercises, nothing
else: a NameError from another cell's global says so.

*run*  Each exercise of each submission runs in an operating-system sandbox
(bubblewrap, then namespaces of its own: no network, its own PID space, a private
size-capped tmpfs, hard limits, no view of the solutions, expected values, other
submissions or the output folder).  The reference solution runs in a process of its
own.  One warm worker per parallel slot imports TensorFlow once and forks per notebook
and per exercise (`bench/grade_speed.py`).

*judge*  Here, in the parent: what came back is checked against a schema, then compared
with the reference's outputs on hidden inputs (a seed per student and exercise, drawn
fresh per run and recorded) by the same verdict code as `gc.check`.

*report*  grades.csv, results.json (with ``"sandbox": true/false``) and feedback/.

Languages: each student's outcomes and feedback are built inside ``with
i18n.using(that student's language):``, the language of the notebook
(``metadata.gan_course.language``), so a class with both editions gets each student's
feedback in their own; what is printed for the instructor follows the instructor's
language (`GAN_COURSE_LANG`, else the locale).
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import Empty, Queue

import numpy as np

from gan_course import i18n
from gan_course.grader import run as runner
from gan_course.grader.judge import STATUSES, Outcome, judge, reference_expected  # noqa: F401 - re-exported
from gan_course.grader.locate import Located, locate_exercises, setup_code  # noqa: F401
from gan_course.grader.read import (  # noqa: F401
    Cell,
    GradeError,
    NotebookError,
    Submission,
    choose_lab,
    course_root,
    find_submissions,
    lab_number,
    pick_notebooks,
    read_candidates,
    read_notebook,
    read_notebook_and_language,
    solution_notebook,
)
from gan_course.grader.report import GradeReport, feedback_markdown, summary, write_outputs  # noqa: F401
from gan_course.grader.exercise import OUTPUT_CAP
from gan_course.i18n import _
from gan_course.release import exercise_name  # noqa: F401

DEFAULT_TIMEOUT = 60.0
DEFAULT_MEMORY_MB = 2048


def student_seed(batch_seed: int, student: str, exercise: str) -> int:
    words = [batch_seed, zlib.crc32(student.encode("utf-8", "replace")), zlib.crc32(exercise.encode())]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def note_earlier_failures(names: list[str], located: dict, outcomes: dict) -> None:
    """An exercise that calls an earlier one runs with the student's own: say so when that one failed."""
    for i, name in enumerate(names):
        if name not in located or outcomes[name].status == "pass":
            continue
        for earlier in names[:i]:
            if outcomes[earlier].status != "pass" and re.search(rf"\b{re.escape(earlier)}\s*\(", located[name].source):
                outcomes[name].notes.append(
                    _("this exercise calls your `{earlier}`, which did not pass: fix `{earlier}` first, "
                      "its mistakes may show up here too.").format(earlier=earlier)
                )


def _python_path(env: dict) -> list[str]:
    return [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]


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
    require_sandbox: bool = False,
) -> GradeReport:
    """Grade every submission in `submissions`; write grades.csv, results.json and feedback/ to `out`."""
    from gan_course import checks

    started = time.monotonic()
    out = Path(out).resolve()
    root = Path(root).resolve() if root is not None else course_root()
    subs, skipped = find_submissions(Path(submissions))
    read_candidates(subs)
    lab = choose_lab(subs, lab_number(lab) if lab else None)
    pick_notebooks(subs, lab)
    instructor = i18n.language()
    for sub in subs:  # a notebook that could not be read: its problem was said in the instructor's language
        sub.lang = sub.lang or instructor
    if lab not in checks.LAB_MODULES:
        raise GradeError(_("lab {lab} has no registered exercises (known labs: {labs})").format(
            lab=lab, labs=", ".join(sorted(checks.LAB_MODULES))))
    solution = solution_notebook(root, lab)
    try:
        solution_cells = read_notebook(solution)[0]
    except NotebookError as err:
        raise GradeError(_("the solution notebook {path} {problem}").format(path=solution, problem=err)) from None
    names = list(dict.fromkeys(c.exercise for c in solution_cells if c.exercise and c.cell_type == "code"))
    if not names:
        raise GradeError(_("{path} has no exercise cells (`# EXERCISE: name`)").format(path=solution))
    reference_sources = {n: locate_exercises(solution_cells, [n])[n].source for n in names}
    setup = setup_code(solution_cells)
    batch_seed = secrets.randbits(32) if seed is None else int(seed)

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
    python_path = [p for p in _python_path(env) if os.path.realpath(p) != os.path.realpath(package_parent)]
    env["PYTHONPATH"] = os.pathsep.join([package_parent] + python_path)

    private = Path(tempfile.mkdtemp(prefix="gan-course-grade-"))
    forbidden = [str(root / "solutions"), str(out), str(Path(submissions).resolve()), str(private)]
    sandboxed, why_not = runner.sandbox_status(python_path, forbidden, env)
    if not sandboxed:
        if require_sandbox:
            shutil.rmtree(private, ignore_errors=True)
            raise GradeError(_("no sandbox: {why}; refusing to grade (--require-sandbox)").format(why=why_not))
        print("gan-course grade: " + _("no sandbox ({why}); each exercise runs in a separate process with hard "
                                       "limits only: submitted code can read what this user can read.").format(why=why_not),
              file=sys.stderr)

    out.mkdir(parents=True, exist_ok=True)
    env["GAN_COURSE_GRADE_SCRATCH"] = str(private)
    limits = {"timeout": float(timeout), "memory_mb": int(memory_mb), "output_cap": OUTPUT_CAP, "lab": lab}
    located = {}
    for sub in subs:
        with i18n.using(sub.lang):
            try:
                located[sub.student] = locate_exercises(sub.cells, names) if sub.problem is None else {}
            except Exception as err:  # noqa: BLE001 - one submission never stops the batch
                sub.problem = _("could not be read as a notebook ({error})").format(error=type(err).__name__)
                located[sub.student] = {}
    seeds = {(s.student, n): student_seed(batch_seed, s.student, n) for s in subs for n in names}
    # The worker imports these once, before it forks: the lab's module, and TensorFlow and
    # Keras when the setup calls gc.setup() (which imports them in every child otherwise).
    modules = [checks.LAB_MODULES[lab]] + (["tensorflow", "keras"] if ".setup(" in setup else [])
    base = {
        "setup_code": setup, "timeout": limits["timeout"], "memory_mb": limits["memory_mb"],
        "output_cap": limits["output_cap"], "protected": forbidden, "scratch": str(private),
    }

    jobs = []
    reference_job = dict(base, role="reference")
    reference_job["exercises"] = [
        dict(name=n, source=reference_sources[n], earlier=[[e, reference_sources[e]] for e in names[:i]],
             seeds=sorted({seeds[(s.student, n)] for s in subs if n in located[s.student]}))
        for i, n in enumerate(names)
    ]
    jobs.append(("_reference", reference_job))
    for sub in subs:
        if sub.problem is not None or not located[sub.student]:
            continue
        mine = located[sub.student]
        job = dict(base, role="student", lang=sub.lang)  # messages made in the child (a signature) in the student's language
        job["exercises"] = [
            dict(name=n, source=mine[n].source, earlier=[[e, mine[e].source] for e in names[:i] if e in mine],
                 seeds=[seeds[(sub.student, n)]])
            for i, n in enumerate(names) if n in mine
        ]
        jobs.append((sub.student, job))

    workers = max(1, int(workers or os.cpu_count() or 1))
    from tqdm.auto import tqdm

    warm = {"setup_code": setup, "modules": modules, "languages": sorted({s.lang for s in subs} - {"en"})}
    queue = Queue()
    for who, job in jobs:  # the reference first: it runs on a fresh worker, before any student's code
        runs = len(job["exercises"]) * (max(1, len(subs)) if who == "_reference" else 1)
        queue.put((who, job, runner.WORKER_START_SECONDS + runs * (limits["timeout"] + 5)))
    bar = tqdm(total=len(jobs), desc=f"grading lab {lab}", unit="notebook", disable=not progress)
    received: dict = {}

    def slot_loop(number: int):
        slot = runner.WorkerSlot(warm, private / f"worker-{number}.log", env, sandboxed, python_path, forbidden, number)
        try:
            while True:
                try:
                    who, job, limit = queue.get_nowait()
                except Empty:
                    return
                # The reference too runs sandboxed (trusted code, but nothing is lost), as the
                # first job of a fresh worker: no student's code has run in that slot yet.
                try:
                    received[who] = slot.run(dict(job, isolate=sandboxed), limit)
                except Exception:  # noqa: BLE001 - one submission never stops the batch
                    slot.close(kill=True)
                    received[who] = {}
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
                _("{notebook} has exercise cells the library does not register: {names} "
                  "(add @exercise to {module})").format(
                    notebook=solution.name, names=", ".join(unknown), module=checks.LAB_MODULES[lab])
            )
        exercises = {n: registered[n] for n in names}
        for n, ex in exercises.items():
            count = len(ex.cases(np.random.default_rng(0)))
            if count < 5:
                print("gan-course grade: " + _("`{name}` has only {count} test case(s); the course asks for at least 5.").format(
                    name=n, count=count), file=sys.stderr)
        expected, reference_problems = {}, {}
        for n in names:
            expected[n], reference_problems[n] = reference_expected(n, received.get("_reference", {}).get(n))
            if reference_problems[n]:
                print(f"gan-course grade: {reference_problems[n]}", file=sys.stderr)

        def reference_problem(n: str) -> str | None:
            """The reference's problem with exercise `n`, in the current language (rare: said again per language)."""
            if not reference_problems[n] or i18n.language() == instructor:
                return reference_problems[n]
            return reference_expected(n, received.get("_reference", {}).get(n))[1]

        outcomes = {}
        for sub in subs:
            outcomes[sub.student] = {}
            got = received.get(sub.student, {})
            with i18n.using(sub.lang):  # everything this student reads, in the language of their notebook
                for n in names:
                    try:
                        outcomes[sub.student][n] = judge(
                            exercises[n], n, sub, located[sub.student].get(n), seeds[(sub.student, n)], got.get(n),
                            expected.get(n), reference_problem(n), limits,
                        )
                    except Exception as err:  # noqa: BLE001 - one submission never stops the batch
                        outcomes[sub.student][n] = Outcome(
                            "error", check="grader", seed=seeds[(sub.student, n)],
                            message=_("the grader could not judge this exercise ({kind}: {error}); tell the "
                                      "instructor.").format(kind=type(err).__name__, error=err),
                        )
                note_earlier_failures(names, located[sub.student], outcomes[sub.student])
    finally:
        if not keep_work:
            shutil.rmtree(private, ignore_errors=True)

    report = GradeReport(
        lab, names, {n: exercises[n].points for n in names}, outcomes, time.monotonic() - started, batch_seed, out, subs,
        sandbox=sandboxed, sandbox_note="" if sandboxed else why_not, skipped=skipped,
    )
    write_outputs(report, subs, solution)
    return report


def main(args) -> int:
    """`gan-course grade` (see cli.py)."""
    try:
        report = grade(
            args.submissions, args.out, lab=args.lab, workers=args.workers, timeout=args.timeout,
            memory_mb=args.memory, seed=args.seed, require_sandbox=getattr(args, "require_sandbox", False),
        )
    except GradeError as err:
        print(f"gan-course grade: {err}", file=sys.stderr)
        return 2
    print(summary(report, report.submissions))
    return 0
