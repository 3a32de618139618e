"""The sandbox's side of the grader: a warm worker, and one process per exercise.

`gan-course grade` starts one worker per parallel slot, inside bubblewrap (see
`gan_course.grader.run`): ``python -m gan_course.grader.worker``.  The worker imports the
lab's libraries once (TensorFlow costs seconds), then for each notebook it is sent forks
a *notebook process* that reads the job (so the warm worker never holds any student's
code or results), and that process runs every exercise in an *exercise sandbox* of its
own:

    notebook process
      └ exercise process: new user, mount, PID, IPC and UTS namespaces; a fresh
        size-capped tmpfs on /tmp (the only writable place); PR_SET_PDEATHSIG
          └ init (PID 1 of the new PID namespace): waits, and when it ends the kernel
            kills every process the exercise started
              └ runner: sheds its capabilities (one more user namespace), takes hard
                limits (soft = hard: CPU time, address space, file size, open files),
                closes every descriptor but its own three pipes, and only then runs
                the lab's setup code, the exercise cell and the function.

The runner's result (JSON + arrays as .npz, never a pickle) goes down a pipe of its own
to the notebook process, which relays it to the parent with the exit status, the
printed output (capped) and the last stage reached.  The parent checks it against a
schema and compares; nothing the runner does can reach another exercise or student.

Without a sandbox (``--no-isolate``: no bubblewrap, or a container without user
namespaces) the same chain runs without the namespaces: separate processes, hard
limits, a private folder, a subreaper that kills what the exercise left behind.
"""
from __future__ import annotations

import ast
import builtins
import copy
import ctypes
import io
import json
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback

import numpy as np

from gan_course.grader.wire import encode, pack_result, read_exact, read_frame_blocking, write_json, write_frame

OUTPUT_CAP = 20_000  # characters of printed output kept per exercise
FILE_SIZE_LIMIT = 64 * 2**20  # no file an exercise writes may grow past this
TMPFS_BYTES = 64 * 2**20  # the exercise's private /tmp
OPEN_FILES = 256
CELL_FILENAME = "<exercise cell>"
SETUP_FILENAME = "<lab setup>"

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID = 0x10000000, 0x20000000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 2, 4, 0x4000, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 1, 4, 36

# Reported as tampering (the operating system already stops what matters): the
# grader's audit hook is a witness, not a wall.
REFUSED_EVENTS = {
    "subprocess.Popen": "starting another program",
    "os.system": "starting another program",
    "os.exec": "starting another program",
    "os.posix_spawn": "starting another program",
    "os.spawn": "starting another program",
    "pty.spawn": "starting another program",
    "os.killpg": "sending signals to other processes",
    "ctypes.dlopen": "loading C libraries with ctypes",
    "ctypes.dlsym": "calling C functions with ctypes",
    "gc.get_objects": "searching the interpreter's objects",
    "gc.get_referrers": "searching the interpreter's objects",
    "sys.addaudithook": "changing the grader's audit hook",
}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

_libc = None


def libc():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
        _libc.unshare.argtypes = [ctypes.c_int]
    return _libc


def _call(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def prctl(option: int, value: int) -> None:
    libc().prctl(option, ctypes.c_ulong(value), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


# ----------------------------------------------------------------------------- the exercise sandbox
def enter_namespaces(tmpfs_bytes: int) -> None:
    """New user, mount, PID, IPC and UTS namespaces, and a fresh tmpfs on /tmp."""
    uid, gid = os.getuid(), os.getgid()
    _call(libc().unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")
    _call(libc().mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    options = f"size={tmpfs_bytes},nr_inodes=4096,mode=0700,uid={uid},gid={gid}".encode()
    _call(libc().mount(b"tmpfs", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, options), "mount tmpfs /tmp")


def shed_capabilities() -> None:
    """One more user namespace: the runner keeps no capability over its mounts or its init."""
    _call(libc().unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")


def hard_limit(kind: int, value: int) -> None:
    """soft = hard = value (or the existing hard limit, if lower): the code cannot raise it."""
    _, hard = resource.getrlimit(kind)
    value = int(value) if hard == resource.RLIM_INFINITY else min(int(value), hard)
    resource.setrlimit(kind, (value, value))


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def run_exercise(job: dict, exercise: dict, out_fd: int) -> None:
    """In the notebook process: run one exercise in its sandbox; relay what comes back."""
    isolate = job["isolate"]
    student = job["role"] == "student"
    seeds = exercise["seeds"]
    limit = job["timeout"] * (1 if student else max(1, len(seeds)))
    started = time.monotonic()
    scratch = None if isolate else tempfile.mkdtemp(prefix="exercise-", dir=job.get("scratch"))
    pipes = {name: os.pipe() for name in ("result", "output", "progress")}
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 71
        try:
            for read_end, _ in pipes.values():
                os.close(read_end)
            os.close(out_fd)
            code = exercise_process(job, exercise, {k: w for k, (_, w) in pipes.items()}, scratch, limit)
        except BaseException:  # noqa: BLE001 - reported through the exit code
            traceback.print_exc()
        finally:
            os._exit(code)
    for _, write_end in pipes.values():
        os.close(write_end)
    fds = {pipes[name][0]: name for name in pipes}
    data = {name: bytearray() for name in pipes}
    sizes = {name: 0 for name in pipes}
    caps = {"result": 96 * 2**20, "output": OUTPUT_CAP * 4 + 64, "progress": 4096}
    deadline = started + limit + 1
    timed_out, status = False, None
    while fds:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select(list(fds), [], [], min(left, 1.0))
        for fd in ready:
            chunk = os.read(fd, 2**20)
            name = fds[fd]
            if not chunk:
                os.close(fd)
                del fds[fd]
                continue
            sizes[name] += len(chunk)
            room = caps[name] - len(data[name])
            if room > 0:
                data[name] += chunk[:room]
    if timed_out:
        try:
            os.kill(pid, signal.SIGKILL)  # its init dies with it (PR_SET_PDEATHSIG), and with init every process
        except ProcessLookupError:
            pass
    _, raw = os.waitpid(pid, 0)
    for fd in fds:
        os.close(fd)
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    code = os.waitstatus_to_exitcode(raw)
    signal_number = code - 128 if code > 128 else None
    stages = [line for line in bytes(data["progress"]).decode("utf-8", "replace").split("\n") if line]
    header = {
        "name": exercise["name"],
        "exit": code if signal_number is None else None,
        "signal": signal_number,
        "timed_out": timed_out,
        "seconds": round(time.monotonic() - started, 3),
        "output": bytes(data["output"]).decode("utf-8", "replace")[:OUTPUT_CAP],
        "output_bytes": sizes["output"],
        "last_stage": stages[-1][:100] if stages else "",
        "result_bytes": sizes["result"],
    }
    write_json(out_fd, {"exercise": header})
    write_frame(out_fd, bytes(data["result"]) if sizes["result"] <= caps["result"] else b"")


def exercise_process(job, exercise, pipes, scratch, limit) -> int:
    """The exercise process: namespaces, then init, which starts the runner and outlives it."""
    if job["isolate"]:
        enter_namespaces(job.get("tmpfs_bytes", TMPFS_BYTES))
    init = os.fork()
    if init == 0:
        code = 72
        try:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if not job["isolate"]:
                prctl(PR_SET_CHILD_SUBREAPER, 1)
            code = init_process(job, exercise, pipes, scratch, limit)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        finally:
            os._exit(code)
    for fd in pipes.values():
        os.close(fd)
    _, raw = os.waitpid(init, 0)
    code = os.waitstatus_to_exitcode(raw)
    return code if code >= 0 else 128 - code


def init_process(job, exercise, pipes, scratch, limit) -> int:
    runner = os.fork()
    if runner == 0:
        try:
            run_student_code(job, exercise, pipes, scratch, limit)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        finally:
            os._exit(73)
    for fd in pipes.values():
        os.close(fd)
    code = 74
    while True:
        try:
            pid, raw = os.wait()
        except ChildProcessError:
            break
        if pid == runner:
            code = os.waitstatus_to_exitcode(raw)
            code = code if code >= 0 else 128 - code
            break
    if not job["isolate"]:
        _kill_descendants()
    return code  # in a PID namespace, every process the exercise started dies now


def _kill_descendants() -> None:
    """Without a PID namespace: this subreaper kills what the exercise left behind."""
    for _ in range(50):
        children = set()
        try:
            for task in os.listdir("/proc/self/task"):
                with open(f"/proc/self/task/{task}/children") as f:
                    children |= {int(p) for p in f.read().split()}
        except OSError:
            pass
        if not children:
            return
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return
        time.sleep(0.01)


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


def make_audit_hook(workdir: str, protected: tuple, refusals: list, own_pid: int):
    """A witness: records what submitted code tried that grading forbids, and refuses it.

    The sandbox (namespaces, a read-only view, hard limits) is what stops it; this hook
    only lets the feedback say "tried to ..." instead of a bare error.
    """
    realpath, fsdecode, fspath = os.path.realpath, os.fsdecode, os.fspath

    def resolve(path):
        try:
            return realpath(fsdecode(fspath(path)))
        except Exception:  # noqa: BLE001
            return None

    def refuse(what):
        refusals.append(what[:300])
        raise PermissionError(f"not allowed while grading: {what}")

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
            if len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit() and int(parts[2]) != own_pid:
                refuse(f"opening {where} (another process's files, in a folder the grader protects)")
            if any(_inside(where, p) for p in protected):
                refuse(f"{'writing' if writing else 'opening'} {where} (a folder the grader protects)")
            if writing and where != "/dev/null" and not _inside(where, _workdir):
                refuse(f"writing {where} (outside the exercise's working folder)")
        elif event in ("os.listdir", "os.scandir", "glob.glob", "glob.glob/2"):
            if args and isinstance(args[0], (str, bytes)):
                where = resolve(args[0])
                if where is not None and any(_inside(where, p) for p in protected):
                    refuse(f"looking into {where} (a folder the grader protects)")
        elif event == "os.kill":
            if args and args[0] not in (own_pid, 0):
                refuse(f"sending a signal to process {args[0]}")
        elif event in ("os.fork", "os.forkpty"):
            refusals.append("starting another process")  # allowed: it dies with the exercise
        elif event in REFUSED_EVENTS:
            refuse(REFUSED_EVENTS[event])

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
            f"this exercise calls `{name}`, an earlier exercise, and your notebook's `{name}` could not be run: fix it first"
        )

    missing.__name__ = name
    return missing


def run_student_code(job, exercise, pipes, scratch, limit) -> None:
    """The runner: limits, then the setup, the cell and the function on every hidden input."""
    isolate = job["isolate"]
    student = job["role"] == "student"
    if isolate:
        shed_capabilities()
    else:
        os.setsid()
    workdir = os.path.join("/tmp", "work") if isolate else scratch
    os.makedirs(workdir, exist_ok=True)
    null_fd = os.open(os.devnull, os.O_RDWR)
    os.dup2(null_fd, 0)
    os.dup2(pipes["output"], 1)
    os.dup2(null_fd, 2)
    keep = sorted({0, 1, 2, pipes["result"], pipes["progress"]})
    for low, high in zip([3] + [k + 1 for k in keep], keep + [OPEN_FILES * 64]):
        if low < high:
            os.closerange(max(low, 3), high)
    result_fd, progress_fd = pipes["result"], pipes["progress"]
    sys.stdin = open(os.devnull)  # input() then ends at once with EOFError
    sys.stdout = sys.__stdout__ = CappedWriter(1, job["output_cap"])
    sys.stderr = sys.__stderr__ = CappedWriter(2, 0)
    os.chdir(workdir)
    tempfile.tempdir = workdir
    os.environ.update({"TMPDIR": workdir, "HOME": workdir, "MPLCONFIGDIR": workdir,
                       "GAN_COURSE_OUT": os.path.join(workdir, "outputs")})

    hard_limit(resource.RLIMIT_CPU, int(limit) + 2)
    hard_limit(resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT)
    hard_limit(resource.RLIMIT_CORE, 0)
    hard_limit(resource.RLIMIT_NOFILE, OPEN_FILES)
    hard_limit(resource.RLIMIT_NPROC, job.get("max_processes", 64) + _threads())
    hard_limit(resource.RLIMIT_AS, _address_space() + job["memory_mb"] * 2**20)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-big write fails instead of killing

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
            sys.addaudithook(make_audit_hook(os.path.realpath(workdir), protected, refusals, os.getpid()))
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
                args = copy.deepcopy(case) if not checks._has_tensors(case) else dict(case)
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


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 8


# ----------------------------------------------------------------------------- the worker
def warm_up(warm: dict) -> None:
    """Import what the exercises will need, once: the setup code's imports and the lab."""
    import importlib

    try:
        tree = ast.parse(warm["setup_code"])
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    imports = ast.Module(body=[n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], type_ignores=[])
    try:
        exec(compile(imports, SETUP_FILENAME, "exec"), {})
    except Exception:  # noqa: BLE001 - the exercise reports it properly
        pass
    for module in warm.get("modules", []):
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001
            pass
    # Answers that libraries compute once and cache (`uname -p` in a subprocess).
    import platform

    platform.processor()


def run_job(job: dict, out_fd: int) -> int:
    for exercise in job["exercises"]:
        run_exercise(job, exercise, out_fd)
    return 0


def serve() -> int:
    """Warm once, then grade the notebooks whose jobs arrive on stdin, one at a time.

    Each job is read by a process forked from this warm one, so this process never holds
    any submission.  Frames back on stdout: per exercise a JSON header and the result
    bytes, then ``{"done": exit code}``.
    """
    try:
        prctl(PR_SET_DUMPABLE, 0)  # no process in the sandbox may read this one's memory
    except Exception:  # noqa: BLE001 - not Linux: the fallback has no namespaces anyway
        pass
    warm = json.loads(read_frame_blocking(0))
    warm_up(warm)
    out_fd = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # nothing a job prints can garble the protocol
    write_json(out_fd, {"ready": True})
    while True:
        head = read_exact(0, 4)
        if head is None:
            return 0
        size = int.from_bytes(head, "big")
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                job = json.loads(read_exact(0, size))
                os.close(0)
                code = run_job(job, out_fd)
            except BaseException:  # noqa: BLE001 - reported through the exit code
                traceback.print_exc()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        write_json(out_fd, {"done": os.waitstatus_to_exitcode(status)})


if __name__ == "__main__":
    # `python -m` puts the start folder first on sys.path: keep imports to the installed course.
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
    raise SystemExit(serve())
