"""The autograder's worker: warm once, then grade notebooks, every exercise in its own process.

`gan-course grade` starts one worker per parallel slot with
``python -m gan_course._grade_worker --serve WARM.json``.  The worker imports the lab's
libraries once (TensorFlow costs seconds) and then, for each notebook it is handed,
forks a child that grades that notebook (the job file is read only after the fork, so
the warm worker holds nothing of any submission); that child forks one grandchild per
exercise.  Every exercise thus gets a process of its own, with its own limits, and
nothing it does survives into the next one.  Neither the worker nor the notebook's
child runs submitted code or sees an expected value.

An exercise's process, in order: takes its limits (address space, CPU time, file size),
moves into a working folder of its own, closes stdin, sends stdout to a capped file,
builds the hidden inputs from the seed, runs the lab's setup code, and only then (for a
student) installs an audit hook that cannot be removed and runs the exercise cell and
the function.  What it returns crosses back as one ``.npz`` (arrays, plus the rest as
JSON): never a pickle.  The parent compares; nothing the child does to NumPy or to the
course's checks can change the comparison.
"""
from __future__ import annotations

import ast
import builtins
import copy
import io
import json
import os
import resource
import signal
import sys
import time
import traceback

import numpy as np

OUTPUT_CAP = 20_000  # characters of printed output kept per exercise
FILE_SIZE_LIMIT = 256 * 2**20  # no file a child writes may grow past this
CELL_FILENAME = "<exercise cell>"
SETUP_FILENAME = "<lab setup>"

# A student's process may not start programs, load C libraries or walk the heap
# looking for the grader's objects.
REFUSED_EVENTS = {
    "subprocess.Popen": "starting another program",
    "os.system": "starting another program",
    "os.exec": "starting another program",
    "os.posix_spawn": "starting another program",
    "os.spawn": "starting another program",
    "os.fork": "starting another process",
    "os.forkpty": "starting another process",
    "pty.spawn": "starting another program",
    "os.killpg": "sending signals to other processes",
    "ctypes.dlopen": "loading C libraries with ctypes",
    "ctypes.dlsym": "calling C functions with ctypes",
    "gc.get_objects": "searching the interpreter's objects",
    "gc.get_referrers": "searching the interpreter's objects",
    "gc.get_referents": "searching the interpreter's objects",
}
# Events whose path arguments must all lie inside the child's working folder.
WRITE_EVENTS = {
    "os.rename", "os.remove", "os.mkdir", "os.rmdir", "os.symlink", "os.link", "os.truncate",
    "os.chmod", "os.chown", "os.utime", "os.chflags", "os.lchflags", "os.lchmod", "os.lchown",
    "shutil.rmtree", "shutil.copyfile", "shutil.copymode", "shutil.copystat", "shutil.move",
    "shutil.make_archive", "shutil.unpack_archive",
}
READ_DIR_EVENTS = {"os.listdir", "os.scandir", "glob.glob", "glob.glob/2", "os.chdir"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


# ----------------------------------------------------------------------------- values
class Opaque:
    """Something that could not cross as an array (a model, a function, ...)."""

    def __init__(self, kind: str, text: str):
        self.kind, self.text = kind, text

    def __repr__(self):
        return self.text

    def __eq__(self, other):
        return isinstance(other, Opaque) and (self.kind, self.text) == (other.kind, other.text)


def encode(value, arrays: dict, depth: int = 0):
    """A JSON-able description of `value`; arrays go into `arrays` (saved with np.savez)."""
    if depth > 20:
        return {"__opaque__": "nested", "text": "a structure nested too deeply"}
    if hasattr(value, "numpy") and callable(value.numpy) and not isinstance(value, np.ndarray):
        try:
            value = value.numpy()
        except Exception:  # a symbolic tensor: leave it opaque
            pass
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value if abs(value) < 2**53 else {"__bigint__": str(value)}
    if isinstance(value, float):
        return value if np.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.hasobject or array.dtype.kind == "V":
            return {"__opaque__": "object array", "text": f"an array of Python objects (dtype {array.dtype})"}
        key = f"a{len(arrays)}"
        arrays[key] = array
        return {"__array__" if isinstance(value, np.ndarray) else "__scalar__": key}
    if isinstance(value, (list, tuple)):
        items = [encode(v, arrays, depth + 1) for v in value]
        return items if isinstance(value, list) else {"__tuple__": items}
    if isinstance(value, dict):
        return {"__dict__": [[encode(k, arrays, depth + 1), encode(v, arrays, depth + 1)] for k, v in value.items()]}
    text = f"a {type(value).__module__}.{type(value).__qualname__} object"
    return {"__opaque__": type(value).__name__, "text": text}


def decode(obj, arrays):
    """The inverse of `encode` (the parent's side)."""
    if isinstance(obj, list):
        return [decode(v, arrays) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__array__" in obj:
        return arrays[obj["__array__"]]
    if "__scalar__" in obj:
        return arrays[obj["__scalar__"]][()]
    if "__tuple__" in obj:
        return tuple(decode(v, arrays) for v in obj["__tuple__"])
    if "__dict__" in obj:
        return {_hashable(decode(k, arrays)): decode(v, arrays) for k, v in obj["__dict__"]}
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__bigint__" in obj:
        return int(obj["__bigint__"])
    if "__opaque__" in obj:
        return Opaque(obj["__opaque__"], obj["text"])
    return obj


def _hashable(key):
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    if isinstance(key, np.ndarray):
        return key.item() if key.ndim == 0 else tuple(key.tolist())
    return key


def write_npz(fd: int, meta: dict, arrays: dict) -> None:
    """Write the result to an already open file: JSON meta as bytes plus the arrays."""
    buffer = io.BytesIO()
    payload = dict(arrays)
    payload["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(buffer, **payload)
    data = buffer.getvalue()
    os.lseek(fd, 0, os.SEEK_SET)
    os.ftruncate(fd, 0)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_npz(path) -> tuple[dict, dict]:
    """(meta, arrays) from a child's result file; never unpickles."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    return meta, arrays


# ----------------------------------------------------------------------------- sandbox
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
            os.write(self.fd, part.encode("utf-8", "replace"))
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


def make_audit_hook(workdir: str, protected: tuple, allowed_inside: tuple, refusals: list, own_pid: int):
    """An audit hook that keeps submitted code in its working folder.

    `protected` folders (the solutions, the grade output, the grader's private files)
    may not be read or listed; nothing outside `workdir` may be written; see
    REFUSED_EVENTS for the rest.  Each refusal is recorded (the parent reports it as
    tampering) and raised as PermissionError where the student's code asked.
    """
    realpath, fsdecode, fspath = os.path.realpath, os.fsdecode, os.fspath

    def resolve(path):
        try:
            return realpath(fsdecode(fspath(path)))
        except Exception:
            return None

    def refuse(what):
        refusals.append(what)
        raise PermissionError(f"not allowed while grading: {what}")

    def readable(path):
        if path is None:
            return True
        if any(_inside(path, a) for a in allowed_inside):
            return True
        parts = path.split(os.sep)
        if len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit() and int(parts[2]) != own_pid:
            return False  # another process's memory, files and environment
        return not any(_inside(path, p) for p in protected)

    def hook(event, args, _workdir=workdir):
        if event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            if isinstance(path, int) or path is None:
                return
            where = resolve(path)
            writing = (isinstance(flags, int) and flags & WRITE_FLAGS) or (
                isinstance(mode, str) and any(c in mode for c in "wax+")
            )
            if not readable(where):
                refuse(f"{'writing' if writing else 'opening'} {where} (a folder the grader protects)")
            if writing and where not in ("/dev/null",) and not _inside(where, _workdir):
                refuse(f"writing {where} (outside the exercise's working folder)")
        elif event in READ_DIR_EVENTS:
            if args and not isinstance(args[0], int) and args[0] is not None and not readable(resolve(args[0])):
                refuse(f"looking into {resolve(args[0])} (a folder the grader protects)")
        elif event in WRITE_EVENTS:
            for arg in args:
                if isinstance(arg, (str, bytes)) or hasattr(arg, "__fspath__"):
                    where = resolve(arg)
                    if where is not None and not _inside(where, _workdir):
                        refuse(f"{event} on {where} (outside the exercise's working folder)")
        elif event == "os.kill":
            if args and args[0] != own_pid:
                refuse(f"sending a signal to process {args[0]}")
        elif event in REFUSED_EVENTS:
            refuse(REFUSED_EVENTS[event])
        elif event == "object.__setattr__" and args and args[0] is hook:
            refuse("changing the grader's functions")

    return hook


def _limit(kind, soft):
    _, hard = resource.getrlimit(kind)
    soft = int(soft) if hard == resource.RLIM_INFINITY else min(int(soft), hard)
    resource.setrlimit(kind, (soft, hard))


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


# ----------------------------------------------------------------------------- a child
def _err(err: BaseException, source: str | None = None, filename: str = CELL_FILENAME) -> dict:
    """An exception as JSON: type, message, the cell line it came from, and NameError's name."""
    info = {"type": type(err).__name__, "message": str(err)[:2000]}
    if isinstance(err, SyntaxError):
        info["message"] = str(err.msg)[:2000]
        info["line"] = err.lineno
        info["text"] = (err.text or "").strip()[:200]
    else:
        frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == filename]
        if frames:
            info["line"] = frames[-1].lineno
            if source is not None:
                lines = source.split("\n")
                if 0 < frames[-1].lineno <= len(lines):
                    info["text"] = lines[frames[-1].lineno - 1].strip()[:200]
    if isinstance(err, NameError) and getattr(err, "name", None):
        info["name"] = err.name
    if isinstance(err, SystemExit):
        info["message"] = f"SystemExit({err.code!r})"
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
    return sorted(k for k, v in namespace.items() if k not in before and callable(v) and not k.startswith("__"))


GUARDED_HELPERS = (
    ("numpy", ("allclose", "isclose", "array_equal", "array_equiv")),
    ("numpy.testing", ("assert_allclose", "assert_array_equal")),
    ("gan_course.checks", ("compare", "run_checks", "run_case", "check", "to_numpy", "_mutated")),
)


def _helpers() -> dict:
    found = {}
    for module_name, names in GUARDED_HELPERS + ((__name__, ("encode", "write_npz")),):
        module = sys.modules.get(module_name)
        for name in names:
            if module is not None and hasattr(module, name):
                found[f"{module_name}.{name}"] = getattr(module, name)
    return found


def run_child(job: dict, exercise: dict) -> None:
    """Body of one forked child: run one exercise on its seeds and write the result."""
    from gan_course import checks

    student = job["role"] == "student"
    workdir = exercise["workdir"]
    os.makedirs(workdir, exist_ok=True)
    result_fd = os.open(exercise["result"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    progress_fd = os.open(exercise["result"] + ".progress", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    out_fd = os.open(exercise["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err_fd = os.open(exercise["output"] + ".stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    sys.stdin = open(os.devnull)  # input() then ends at once with EOFError
    sys.stdout = sys.__stdout__ = CappedWriter(1, job["output_cap"])
    sys.stderr = sys.__stderr__ = CappedWriter(2, job["output_cap"])
    os.chdir(workdir)
    import tempfile

    tempfile.tempdir = workdir
    os.environ.update({"TMPDIR": workdir, "MPLCONFIGDIR": workdir, "GAN_COURSE_OUT": os.path.join(workdir, "outputs")})

    seeds = exercise["seeds"]
    seconds = job["timeout"] * (1 if student else max(1, len(seeds)))
    _limit(resource.RLIMIT_CPU, seconds + 2)
    _limit(resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT)
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_AS, _address_space() + job["memory_mb"] * 2**20)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-big write fails instead of killing

    def progress(stage):
        os.write(progress_fd, (stage + "\n").encode())

    meta: dict = {"stage": "start", "runs": [], "tampering": []}
    arrays: dict = {}
    refusals: list = []
    helpers: dict = {}
    reference_code = None
    name = exercise["name"]
    try:
        ex = checks.get_exercise(name)
        progress("cases")
        all_cases = [(seed, ex.cases(np.random.default_rng(seed))) for seed in seeds]
        if "tensorflow" in sys.modules:
            # One thread per op: workers already run in parallel, and every thread's
            # stack and malloc arena would count against the memory limit.
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
            raise _Stop
        finally:
            sys.stdout = captured
        if student:
            # From here on the code is the student's.  Calling the course's reference
            # instead of writing the function is caught: every alias of the reference
            # (imported names, gc.reference) shares one function object, whose code is
            # swapped for a tripwire.
            reference_code = _trip_reference(ex.reference, meta)
            _quiet_checks()
            helpers = _helpers()
            sys.addaudithook(
                make_audit_hook(
                    os.path.realpath(workdir),
                    tuple(os.path.realpath(p) for p in job["protected"]),
                    (os.path.realpath(workdir),),
                    refusals,
                    os.getpid(),
                )
            )
        for earlier in exercise.get("earlier", []):
            # In the notebook an earlier exercise's name is bound by its check cell; here
            # it is the course's reference, so one exercise never depends on another.
            try:
                namespace[earlier] = checks.get_exercise(earlier).reference
            except KeyError:
                pass
        before = set(namespace)
        progress("cell")
        meta["stage"] = "cell"
        source = prepare_source(exercise["source"])
        try:
            exec(compile(source, CELL_FILENAME, "exec"), namespace)
        except BaseException as err:  # noqa: BLE001
            meta["error"] = _err(err, source)
            raise _Stop
        meta["stage"] = "function"
        fn = namespace.get(name)
        if fn is None or not callable(fn):
            meta["missing"] = {
                "defined": _defined_callables(namespace, before),
                "kind": None if fn is None else type(fn).__name__,
            }
            raise _Stop
        if student and reference_code is not None and _is_reference(fn, ex.reference, reference_code):
            meta["tampering"].append("uses the course's reference")
            raise _Stop
        first_case = all_cases[0][1][0] if all_cases and all_cases[0][1] else None
        if first_case is not None:
            problem = checks.signature_problem(name, fn, first_case)
            if problem:
                meta["signature"] = problem
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
        meta["refusals"] = list(refusals)
        current = _helpers()
        meta["replaced"] = sorted(k for k, v in helpers.items() if current.get(k) is not v)
        if meta.get("tripped_in") == "cases":  # called from the student's function, not a test line in the cell
            meta["tampering"].append("uses the course's reference")
    meta["stdout_dropped"] = sys.stdout.dropped if isinstance(sys.stdout, CappedWriter) else 0
    try:
        write_npz(result_fd, meta, arrays)
    except OSError:  # past the file-size limit: say so instead of crashing
        write_npz(result_fd, {"stage": meta["stage"], "too_large": True, "tampering": []}, {})
    os.close(result_fd)
    os._exit(0)


class _Stop(Exception):
    """Ends a child's run early; the reason is already in its result."""


def _trip_reference(reference, meta):
    """Swap the reference's code for a tripwire that records the call and raises."""
    code = getattr(reference, "__code__", None)
    if code is None or code.co_freevars:
        return code
    # The tripwire cannot close over `meta` (the reference has no free variables to
    # hold it), so it finds its record in the reference module's globals.
    reference.__globals__["__grader_trip__"] = meta
    scratch: dict = {}
    exec(compile(TRIPWIRE, code.co_filename, "exec"), scratch)
    reference.__code__ = scratch["tripwire"].__code__
    return code


TRIPWIRE = (
    "def tripwire(*args, **kwargs):\n"
    "    __grader_trip__.setdefault('tripped_in', __grader_trip__.get('stage'))\n"
    "    raise RuntimeError(\"the course's reference is not available while grading: write the function yourself\")\n"
)


def _quiet_checks():
    """`gc.check(...)` left in an exercise cell returns the cell's own function, silently.

    In the notebook it compares with the reference; while grading the reference is a
    tripwire, and the comparison is the parent's job.
    """
    import gan_course
    from gan_course import checks

    def check(name, namespace=None):
        if callable(name):
            return name
        return (namespace if namespace is not None else sys._getframe(1).f_globals).get(name)

    checks.check = gan_course.check = check


def _is_reference(fn, reference, reference_code) -> bool:
    if fn is reference:
        return True
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    return code is reference_code or (
        code.co_filename == reference_code.co_filename and code.co_name == reference_code.co_name
    )


# ----------------------------------------------------------------------------- the worker
def warm_up(job: dict) -> None:
    """Import what the children will need, once: the setup code's imports and the lab."""
    import importlib

    try:
        tree = ast.parse(job["setup_code"])
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    imports = ast.Module(body=[n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], type_ignores=[])
    try:
        exec(compile(imports, SETUP_FILENAME, "exec"), {})
    except Exception:  # the child reports it properly
        pass
    for module in job.get("modules", []):
        try:
            importlib.import_module(module)
        except Exception:
            pass
    # Answers that libraries compute once and cache, here rather than in a child where
    # the audit hook would refuse how they are computed (`uname -p`, a subprocess).
    import platform

    platform.processor()


def wait_child(pid: int, timeout: float) -> tuple[int | None, int | None, bool]:
    """Wait for a child up to `timeout` s; kill it after that. Returns (exit code, signal, timed out)."""
    deadline = time.monotonic() + timeout
    pidfd = None
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pass
    import select

    timed_out = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            break
        if pidfd is not None:
            select.select([pidfd], [], [], min(left, 1.0))
        else:
            time.sleep(min(left, 0.01))
    if pidfd is not None:
        os.close(pidfd)
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status), timed_out
    return os.WEXITSTATUS(status), None, timed_out


def read_head(path: str, cap: int) -> tuple[str, int]:
    try:
        with open(path, "rb") as f:
            head = f.read(cap * 4 + 64)
        size = os.path.getsize(path)
    except OSError:
        return "", 0
    return head.decode("utf-8", "replace")[:cap], size


def run_job(job_path: str) -> int:
    """Grade one notebook: each exercise in a forked child; write the worker's report."""
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    report = []
    for exercise in job["exercises"]:
        started = time.monotonic()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                run_child(job, exercise)
            finally:
                os._exit(70)
        limit = job["timeout"] * (1 if job["role"] == "student" else max(1, len(exercise["seeds"])))
        code, sig, timed_out = wait_child(pid, limit)
        output, size = read_head(exercise["output"], job["output_cap"])
        try:
            with open(exercise["result"] + ".progress", encoding="utf-8") as f:
                stages = [line for line in f.read().split("\n") if line]
        except OSError:
            stages = []
        report.append(
            {
                "name": exercise["name"],
                "exit": code,
                "signal": sig,
                "timed_out": timed_out,
                "seconds": round(time.monotonic() - started, 3),
                "output": output,
                "output_bytes": size,
                "last_stage": stages[-1] if stages else "",
            }
        )
        # Written after every exercise, so that what was graded survives a crash.
        with open(job["report"], "w", encoding="utf-8") as f:
            json.dump(report, f)
    return 0


def serve(warm: dict) -> int:
    """Warm once, then grade the notebooks whose job files arrive on stdin, one at a time.

    Each job runs in a child forked from this warm process, so it starts with the
    libraries imported but holds nothing of any other job: the job file is read only
    after the fork.  One line back on stdout per job: ``done EXIT_CODE``.
    """
    warm_up(warm)
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # nothing a job prints can garble the protocol
    for line in sys.stdin:
        job_path = line.strip()
        if not job_path:
            continue
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                protocol.close()
                code = run_job(job_path)
            except BaseException:  # noqa: BLE001 - reported through the exit code
                traceback.print_exc()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        protocol.write(f"done {os.waitstatus_to_exitcode(status)}\n")
    return 0


def main(argv=None) -> int:
    """``--serve WARM.json`` (the grader's workers) or ``JOB.json`` (one notebook, for debugging)."""
    argv = sys.argv[1:] if argv is None else argv
    # `python -m` puts the start folder first on sys.path; imports in a child would then
    # list the grader's private folder, which the audit hook refuses.
    start = os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", start)]
    if argv[0] == "--serve":
        with open(argv[1], encoding="utf-8") as f:
            return serve(json.load(f))
    with open(argv[0], encoding="utf-8") as f:
        warm_up(json.load(f))
    return run_job(argv[0])


if __name__ == "__main__":
    raise SystemExit(main())
