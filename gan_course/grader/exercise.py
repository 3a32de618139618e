"""What runs inside an exercise's sandbox: the lab's setup, the exercise cell, the cases.

`gan_course.grader.sandbox` has already confined this process (namespaces, hard limits,
closed descriptors) when `run_student_code` starts.  The result goes down the pipe it
was given, as JSON and arrays (never a pickle); the parent judges it.  The audit hook
here is a witness, not a wall: it lets the feedback say what the code tried.
"""
from __future__ import annotations

import builtins
import copy
import io
import os
import sys
import tempfile
import traceback

import numpy as np

from gan_course import i18n
from gan_course.grader.wire import encode, pack_result
from gan_course.i18n import N_, _

CELL_FILENAME = "<exercise cell>"
SETUP_FILENAME = "<lab setup>"
OUTPUT_CAP = 20_000  # characters of printed output kept per exercise

# Reported as tampering (the operating system already stops what matters): the
# grader's audit hook is a witness, not a wall.
REFUSED_EVENTS = {
    "subprocess.Popen": N_("starting another program"),
    "os.system": N_("starting another program"),
    "os.exec": N_("starting another program"),
    "os.posix_spawn": N_("starting another program"),
    "os.spawn": N_("starting another program"),
    "pty.spawn": N_("starting another program"),
    "os.killpg": N_("sending signals to other processes"),
    "ctypes.dlopen": N_("loading C libraries with ctypes"),
    "ctypes.dlsym": N_("calling C functions with ctypes"),
    "gc.get_objects": N_("searching the interpreter's objects"),
    "gc.get_referrers": N_("searching the interpreter's objects"),
    "sys.addaudithook": N_("changing the grader's audit hook"),
}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


# ----------------------------------------------------------------------------- the runner
class CappedWriter(io.TextIOBase):
    """stdout for submitted code: keeps the first `cap` characters, counts the rest."""

    def __init__(self, fd: int, cap: int):
        self.fd, self.cap, self.kept, self.dropped = fd, cap, 0, 0

    def writable(self):
        return True

    def write(self, text):
        text = str(text)
        room = self.cap - self.kept
        if room > 0:
            part = text[:room]
            try:
                os.write(self.fd, part.encode("utf-8", "replace"))
            except OSError:
                pass
            self.kept += len(part)
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False

    def fileno(self):
        return self.fd


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def make_audit_hook(workdir: str, protected: tuple, refusals: list, proc_pid: int):
    """A witness: records what submitted code tried that grading forbids, and refuses it.

    The sandbox (namespaces, a read-only view, hard limits) is what stops it; this hook
    only lets the feedback say "tried to ..." instead of a bare error.
    """
    realpath, fsdecode, fspath = os.path.realpath, os.fsdecode, os.fspath
    own_pid = os.getpid()

    def resolve(path):
        try:
            return realpath(fsdecode(fspath(path)))
        except Exception:  # noqa: BLE001
            return None

    def refuse(what):
        refusals.append(what[:300])
        raise PermissionError(_("not allowed while grading: {what}").format(what=what))

    def hook(event, args, _workdir=workdir):
        if event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            if isinstance(path, int) or path is None:
                return
            where = resolve(path)
            if where is None:
                return
            writing = (isinstance(flags, int) and flags & WRITE_FLAGS) or (
                isinstance(mode, str) and any(c in mode for c in "wax+")
            )
            if _inside(where, _workdir):
                return
            parts = where.split(os.sep)
            if len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit() and int(parts[2]) != proc_pid:
                refuse(_("opening {path} (another process's files, in a folder the grader protects)").format(path=where))
            if any(_inside(where, p) for p in protected):
                refuse((_("writing {path} (a folder the grader protects)") if writing
                        else _("opening {path} (a folder the grader protects)")).format(path=where))
            if writing and where != "/dev/null" and not _inside(where, _workdir):
                refuse(_("writing {path} (outside the exercise's working folder)").format(path=where))
        elif event in ("os.listdir", "os.scandir", "glob.glob", "glob.glob/2"):
            if args and isinstance(args[0], (str, bytes)):
                where = resolve(args[0])
                if where is not None and any(_inside(where, p) for p in protected):
                    refuse(_("looking into {path} (a folder the grader protects)").format(path=where))
        elif event == "os.kill":
            if args and args[0] not in (own_pid, 0):
                refuse(_("sending a signal to process {pid}").format(pid=args[0]))
        elif event in ("os.fork", "os.forkpty"):
            refusals.append(_("starting another process"))  # allowed: it dies with the exercise
        elif event in REFUSED_EVENTS:
            refuse(_(REFUSED_EVENTS[event]))

    return hook


def _err(err: BaseException, source: str | None = None, filename: str = CELL_FILENAME) -> dict:
    """An exception as JSON: type, message, the cell line it came from, and NameError's name."""
    info = {"type": type(err).__name__[:100], "message": str(err)[:2000]}
    if isinstance(err, SyntaxError):
        info["message"] = str(err.msg)[:2000]
        info["line"] = err.lineno if isinstance(err.lineno, int) else None
        info["text"] = (err.text or "").strip()[:200]
    else:
        frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == filename]
        if frames:
            info["line"] = frames[-1].lineno
            if source is not None:
                lines = source.split("\n")
                if frames[-1].lineno and 0 < frames[-1].lineno <= len(lines):
                    info["text"] = lines[frames[-1].lineno - 1].strip()[:200]
    if isinstance(err, NameError) and isinstance(getattr(err, "name", None), str):
        info["name"] = err.name
    if isinstance(err, SystemExit):
        info["message"] = f"SystemExit({err.code!r})"[:2000]
    return info


def prepare_source(source: str) -> str:
    """Comment out IPython magics and shell lines (`%time`, `!ls`), keeping line numbers."""
    out = []
    for line in source.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            out.append(line[: len(line) - len(stripped)] + "pass  # " + stripped)
        else:
            out.append(line)
    return "\n".join(out)


def _defined_callables(namespace: dict, before: set) -> list[str]:
    return sorted(k for k, v in namespace.items() if k not in before and callable(v) and not k.startswith("__"))[:50]


GUARDED_HELPERS = (
    ("numpy", ("allclose", "isclose", "array_equal", "array_equiv")),
    ("numpy.testing", ("assert_allclose", "assert_array_equal")),
    ("gan_course.checks", ("compare", "run_checks", "run_case", "to_numpy")),
    ("gan_course.verdict", ("compare", "case_problem", "to_numpy")),
)


def _helpers() -> dict:
    found = {}
    for module_name, names in GUARDED_HELPERS:
        module = sys.modules.get(module_name)
        for name in names:
            if module is not None and hasattr(module, name):
                found[f"{module_name}.{name}"] = getattr(module, name)
    return found


class _Stop(Exception):
    """Ends a run early; the reason is already in its result."""


def _quiet_checks():
    """`gc.check(...)` left in an exercise cell returns the cell's own function, silently."""
    import gan_course
    from gan_course import checks

    def check(name, namespace=None):
        if callable(name):
            return name
        return (namespace if namespace is not None else sys._getframe(1).f_globals).get(name)

    checks.check = gan_course.check = check


def _earlier_stub(name: str):
    def missing(*args, **kwargs):
        raise RuntimeError(
            _("this exercise calls `{name}`, an earlier exercise, and your notebook's `{name}` could not be run: "
              "fix it first").format(name=name)
        )

    missing.__name__ = name
    return missing


def run_student_code(job, exercise, result_fd: int, progress_fd: int, workdir: str) -> None:
    """The runner, already confined: the setup, the cell and the function on every hidden input.

    Messages made here (a signature that does not fit, what the audit hook refused) are in
    the language of the student's notebook (``job["lang"]``)."""
    with i18n.using(job.get("lang")):
        i18n.translation()  # compiled now, before the audit hook watches every file opened
        _run_student_code(job, exercise, result_fd, progress_fd, workdir)


def _run_student_code(job, exercise, result_fd: int, progress_fd: int, workdir: str) -> None:
    student = job["role"] == "student"
    sys.stdin = open(os.devnull)  # input() then ends at once with EOFError
    sys.stdout = sys.__stdout__ = CappedWriter(1, job["output_cap"])
    sys.stderr = sys.__stderr__ = CappedWriter(2, 0)
    tempfile.tempdir = workdir

    def progress(stage):
        try:
            os.write(progress_fd, (stage + "\n").encode())
        except OSError:
            pass

    from gan_course import checks

    meta: dict = {"stage": "start", "runs": [], "tampering": []}
    arrays: dict = {}
    refusals: list = []
    helpers: dict = {}
    name = exercise["name"]
    source = prepare_source(exercise["source"])
    try:
        ex = checks.get_exercise(name)
        progress("cases")
        all_cases = [(seed, ex.cases(np.random.default_rng(seed))) for seed in exercise["seeds"]]
        if "tensorflow" in sys.modules:
            try:
                tf = sys.modules["tensorflow"]
                tf.config.threading.set_intra_op_parallelism_threads(1)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except Exception:  # noqa: BLE001 - already initialised: keep its threads
                pass
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        progress("setup")
        meta["stage"] = "setup"
        captured = sys.stdout
        sys.stdout = sys.stderr  # the setup's own lines (the profile banner) are not the student's output
        try:
            exec(compile(job["setup_code"], SETUP_FILENAME, "exec"), namespace)
        except BaseException as err:  # noqa: BLE001 - reported, never raised
            meta["error"] = _err(err, job["setup_code"], SETUP_FILENAME)
            raise _Stop from None
        finally:
            sys.stdout = captured
        if student:
            _quiet_checks()
            helpers = _helpers()
            protected = tuple(os.path.realpath(p) for p in job.get("protected", []))
            try:  # this process as /proc numbers it (the sandbox's /proc is its slot's PID namespace)
                proc_pid = int(os.readlink("/proc/self"))
            except (OSError, ValueError):
                proc_pid = os.getpid()
            sys.addaudithook(make_audit_hook(os.path.realpath(workdir), protected, refusals, proc_pid))
        # In the notebook an earlier exercise's name is bound by its check cell: here it is
        # this notebook's own earlier exercise (the reference's, for the reference).
        failed_earlier = []
        for earlier, earlier_source in exercise.get("earlier", []):
            scope = {"__name__": "__main__", "__builtins__": builtins}
            scope.update({k: v for k, v in namespace.items() if not k.startswith("__")})
            try:
                exec(compile(prepare_source(earlier_source), f"<exercise {earlier}>", "exec"), scope)
                fn = scope.get(earlier)
            except BaseException:  # noqa: BLE001
                fn = None
            if not callable(fn):
                fn = _earlier_stub(earlier)
                failed_earlier.append(earlier)
            namespace[earlier] = fn
        if failed_earlier:
            meta["earlier_failed"] = failed_earlier
        before = set(namespace)
        progress("cell")
        meta["stage"] = "cell"
        try:
            exec(compile(source, CELL_FILENAME, "exec"), namespace)
        except BaseException as err:  # noqa: BLE001
            meta["error"] = _err(err, source)
            raise _Stop from None
        meta["stage"] = "function"
        fn = namespace.get(name)
        if fn is None or not callable(fn):
            meta["missing"] = {"defined": _defined_callables(namespace, before),
                               "kind": None if fn is None else type(fn).__name__[:100]}
            raise _Stop
        first_case = all_cases[0][1][0] if all_cases and all_cases[0][1] else None
        if first_case is not None:
            problem = checks.signature_problem(name, fn, first_case)
            if problem:
                meta["signature"] = problem[:2000]
                raise _Stop
        meta["stage"] = "cases"
        for seed, cases in all_cases:
            run = {"seed": seed, "cases": []}
            meta["runs"].append(run)
            for index, case in enumerate(cases):
                progress(f"case {index + 1} of {len(cases)}")
                args = copy.deepcopy(case) if not checks.has_tensors(case) else dict(case)
                entry: dict = {}
                try:
                    out = fn(**args)
                    if ex.describe is not None:
                        try:
                            out = ex.describe(out, case)
                        except Exception as err:  # noqa: BLE001
                            entry["describe_error"] = _err(err)
                            out = None
                    entry["output"] = encode(out, arrays)
                except BaseException as err:  # noqa: BLE001 - SystemExit included
                    entry["error"] = _err(err, source)
                entry["after"] = encode(checks.to_numpy(args), arrays)
                run["cases"].append(entry)
                if "error" in entry and student:
                    break  # the first error is the message; later cases add nothing
        meta["stage"] = "done"
    except _Stop:
        pass
    except BaseException as err:  # noqa: BLE001 - a failure of the grader's own code
        meta["internal"] = _err(err) | {"traceback": traceback.format_exc()[-3000:]}
    if student:
        meta["refusals"] = list(dict.fromkeys(refusals))[:20]
        current = _helpers()
        meta["replaced"] = sorted(k for k, v in helpers.items() if current.get(k) is not v)
    meta["stdout_dropped"] = sys.stdout.dropped if isinstance(sys.stdout, CappedWriter) else 0
    try:
        data = pack_result(meta, arrays)
    except BaseException:  # noqa: BLE001 - out of memory, say: report it small
        data = pack_result({"stage": meta.get("stage", "start"), "internal": {"type": "MemoryError", "message": "the result could not be packed"}}, {})
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(result_fd, view):]
    except OSError:
        pass
    os._exit(0)


