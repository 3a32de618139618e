"""An exercise's sandbox, inside a worker slot: namespaces, a private tmpfs, hard limits.

For each exercise the notebook process (see `gan_course.grader.worker`) starts

    init  cloned into new user, mount, PID, IPC and UTS namespaces (PID 1 there): maps
          its user, mounts a fresh size-capped tmpfs on PRIVATE_DIR (the only writable place),
          is killed if the notebook process dies (PR_SET_PDEATHSIG); when it ends, the
          kernel kills every process left in its PID namespace
      └ runner  sheds its capabilities (one more user namespace), takes hard limits
                (soft = hard: CPU time, address space, file size, open files,
                processes), keeps only its stdout and two pipes, and runs the exercise
                (`gan_course.grader.exercise`).

The runner's result, its printed output and its progress come back through three pipes
of its own; the notebook process reads them with caps and relays them to the parent.

Without a sandbox (``isolate`` false) the same chain runs with ``fork`` instead of new
namespaces: init is a subreaper that kills what the exercise left behind, and the
working folder is a private folder of the grader's.
"""
from __future__ import annotations

import ctypes
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback

from gan_course.grader import exercise as inside
from gan_course.grader.wire import PRIVATE_DIR, write_frame, write_json

OUTPUT_CAP = inside.OUTPUT_CAP
FILE_SIZE_LIMIT = 64 * 2**20  # no file an exercise writes may grow past this
TMPFS_BYTES = 64 * 2**20  # the exercise's private tmpfs
OPEN_FILES = 256
MAX_PROCESSES = 64

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID = 0x10000000, 0x20000000
NAMESPACES = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 2, 4, 0x4000, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 1, 4, 36
SYS_CLONE = {"x86_64": 56, "aarch64": 220}

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


# ----------------------------------------------------------------------------- namespaces
def fork_into_namespaces() -> int:
    """fork(), with the child in new namespaces (clone(2) with CLONE_NEW* flags)."""
    number = SYS_CLONE.get(os.uname().machine)
    if number is None:  # the sandbox probe fails, and grading falls back to process isolation
        raise OSError(f"no clone(2) number known for {os.uname().machine}")
    api = ctypes.pythonapi
    api.PyOS_BeforeFork()
    pid = libc().syscall(ctypes.c_long(number), ctypes.c_ulong(NAMESPACES | signal.SIGCHLD), None, None, None, ctypes.c_ulong(0))
    errno = ctypes.get_errno()
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(errno, f"clone: {os.strerror(errno)}")
    return pid


def set_up_namespaces(uid: int, gid: int, tmpfs_bytes: int) -> None:
    """In the new namespaces: map this user, make mounts private, a fresh tmpfs on PRIVATE_DIR."""
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")
    _call(libc().mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    options = f"size={tmpfs_bytes},nr_inodes=4096,mode=0700,uid={uid},gid={gid}".encode()
    _call(libc().mount(b"tmpfs", PRIVATE_DIR.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options),
          f"mount tmpfs {PRIVATE_DIR}")


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


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 8


# ----------------------------------------------------------------------------- one exercise
def run_exercise(job: dict, exercise: dict, out_fd: int) -> None:
    """In the notebook process: run one exercise in its sandbox; relay what comes back."""
    isolate = job["isolate"]
    student = job["role"] == "student"
    limit = job["timeout"] * (1 if student else max(1, len(exercise["seeds"])))
    started = time.monotonic()
    scratch = None if isolate else tempfile.mkdtemp(prefix="exercise-", dir=job.get("scratch"))
    pipes = {name: os.pipe() for name in ("result", "output", "progress")}
    uid, gid = os.getuid(), os.getgid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = fork_into_namespaces() if isolate else os.fork()
    if pid == 0:
        code = 72
        try:
            for read_end, _ in pipes.values():
                os.close(read_end)
            os.close(out_fd)
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if isolate:
                set_up_namespaces(uid, gid, job.get("tmpfs_bytes", TMPFS_BYTES))
            else:
                prctl(PR_SET_CHILD_SUBREAPER, 1)
            code = init_process(job, exercise, {k: w for k, (_, w) in pipes.items()}, scratch, limit)
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
    timed_out = False
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
            os.kill(pid, signal.SIGKILL)  # init: with it dies every process of its PID namespace
        except ProcessLookupError:
            pass
    _, raw = os.waitpid(pid, 0)
    for fd in fds:
        os.close(fd)
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    code = os.waitstatus_to_exitcode(raw)
    code = code if code >= 0 else 128 - code
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


def init_process(job, exercise, pipes, scratch, limit) -> int:
    """Start the runner, wait for it (reaping orphans), return its status as an exit code."""
    runner = os.fork()
    if runner == 0:
        try:
            workdir = confine(job, pipes, scratch, limit)
            inside.run_student_code(job, exercise, pipes["result"], pipes["progress"], workdir)
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


def confine(job, pipes, scratch, limit) -> str:
    """The runner's last steps before submitted code: no capabilities, descriptors, limits."""
    isolate = job["isolate"]
    if isolate:
        shed_capabilities()
    else:
        os.setsid()
    workdir = os.path.join(PRIVATE_DIR, "work") if isolate else scratch
    os.makedirs(workdir, exist_ok=True)
    null_fd = os.open(os.devnull, os.O_RDWR)
    os.dup2(null_fd, 0)
    os.dup2(pipes["output"], 1)
    os.dup2(null_fd, 2)
    keep = sorted({0, 1, 2, pipes["result"], pipes["progress"]})
    for low, high in zip([3] + [k + 1 for k in keep], keep + [OPEN_FILES * 64]):
        if low < high:
            os.closerange(max(low, 3), high)
    os.chdir(workdir)
    os.environ.update({"TMPDIR": workdir, "HOME": workdir, "MPLCONFIGDIR": workdir,
                       "GAN_COURSE_OUT": os.path.join(workdir, "outputs")})
    hard_limit(resource.RLIMIT_CPU, int(limit) + 2)
    hard_limit(resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT)
    hard_limit(resource.RLIMIT_CORE, 0)
    hard_limit(resource.RLIMIT_NOFILE, OPEN_FILES)
    if isolate:  # counted per user namespace; without one it would count every process of this user
        hard_limit(resource.RLIMIT_NPROC, job.get("max_processes", MAX_PROCESSES) + _threads())
    hard_limit(resource.RLIMIT_AS, _address_space() + job["memory_mb"] * 2**20)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-big write fails instead of killing
    return workdir


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
