"""The trusted parent's side of running exercises: sandboxes, warm worker slots, frames in.

Each parallel slot is one warm worker (`gan_course.grader.worker`) started inside
bubblewrap:

    bwrap --unshare-all --die-with-parent --new-session --cap-drop ALL
          --uid 65534 --gid 65534 --hostname grading
          --ro-bind /usr /usr  (and /lib*, /bin, /sbin as the host has them)
          --ro-bind-try /etc/ld.so.cache ... (a few files the C libraries read)
          --ro-bind PYTHON PYTHON        (the interpreter and its environment)
          --ro-bind .../gan_course /opt/gan-course/gan_course   (the package alone)
          --ro-bind DIR /opt/gan-course/pathN  (each PYTHONPATH folder that shows no
                                          solutions, output or submissions: the lab's modules)
          --proc /proc --dev /dev --remount-ro /dev
          --size 16M --tmpfs /run/grading --remount-ro / --chdir /run/grading
          python -m gan_course.grader.worker

so a worker sees no network, no course folder, no solutions, no other submission and no
output folder, and has nowhere to write but its own small tmpfs (`wire.PRIVATE_DIR`).  When the parent runs as
root and the cgroup v1 or v2 pids controller is writable, each slot also gets a pids
cgroup (`pids.max`), a hard cap on processes that no user namespace can lift.  Every
exercise then gets namespaces of its own inside the slot (see `gan_course.grader.sandbox`).

Where bubblewrap cannot run, grading falls back to separate processes with hard limits
(``"sandbox": false`` in results.json); ``--require-sandbox`` refuses instead.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

from gan_course.grader.wire import FRAME_CAP, PRIVATE_DIR, SchemaError
from gan_course.i18n import _

ENV_SANDBOX = "GAN_COURSE_SANDBOX"  # "off": process isolation only (to test the fallback)
WORKER_START_SECONDS = 120  # importing TensorFlow on a busy machine, with room to spare
WORKER_TMP_BYTES = 16 * 2**20
MAX_PIDS_PER_SLOT = 512
SANDBOX_ROOT = "/opt/gan-course"


class SandboxUnavailable(RuntimeError):
    pass


# ----------------------------------------------------------------------------- the sandbox
def _python_roots() -> list[str]:
    roots = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    roots.add(os.path.realpath(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))))
    # A venv's bin/python is a link into the base interpreter: both must be visible.
    roots.add(os.path.dirname(os.path.dirname(os.path.abspath(sys.executable))))
    return sorted(r for r in roots if r and r != "/")


def _hides_solutions(folder: str, forbidden: list[str]) -> bool:
    """True when binding `folder` shows none of the forbidden places (solutions, output, submissions)."""
    folder = os.path.realpath(folder)
    for bad in forbidden:
        bad = os.path.realpath(bad)
        if bad == folder or bad.startswith(folder.rstrip(os.sep) + os.sep) or folder.startswith(bad.rstrip(os.sep) + os.sep):
            return False
    return not os.path.isdir(os.path.join(folder, "solutions"))


def bwrap_command(python_path: list[str], forbidden: list[str]) -> list[str]:
    """bubblewrap's arguments for a worker slot (see the module's docstring)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--uid", "65534", "--gid", "65534", "--hostname", "grading", "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for name in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "fonts", "matplotlibrc"):
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    bound = set()
    for root in _python_roots():
        if not root.startswith("/usr/") and _hides_solutions(root, forbidden):
            args += ["--ro-bind", root, root]
            bound.add(root)
    args += ["--ro-bind", package, f"{SANDBOX_ROOT}/gan_course"]
    for index, folder in enumerate(sandbox_python_path(python_path, forbidden)):
        args += ["--ro-bind", folder[0], folder[1]]
    args += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
             "--size", str(WORKER_TMP_BYTES), "--tmpfs", PRIVATE_DIR, "--remount-ro", "/", "--chdir", PRIVATE_DIR]
    return args


def sandbox_python_path(python_path: list[str], forbidden: list[str]) -> list[tuple[str, str]]:
    """(host folder, sandbox folder) for each PYTHONPATH folder that shows nothing forbidden."""
    pairs, seen = [], set()
    for folder in python_path:
        real = os.path.realpath(folder)
        if os.path.isdir(real) and real not in seen and _hides_solutions(real, forbidden):
            seen.add(real)
            pairs.append((real, f"{SANDBOX_ROOT}/path{len(pairs)}"))
    return pairs


def sandbox_env(env: dict, python_path: list[str], forbidden: list[str]) -> dict:
    keep = {k: v for k, v in env.items() if k.startswith(("TF_", "GAN_COURSE_", "OMP_", "OPENBLAS_", "MKL_", "MALLOC_", "CUDA_", "KERAS_"))}
    keep.update({
        "PATH": "/usr/bin:/bin", "HOME": PRIVATE_DIR, "TMPDIR": PRIVATE_DIR, "MPLCONFIGDIR": PRIVATE_DIR,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1", "PYTHONSAFEPATH": "1",
        "PYTHONPATH": os.pathsep.join([SANDBOX_ROOT] + [inside for _, inside in sandbox_python_path(python_path, forbidden)]),
    })
    keep.pop("GAN_COURSE_DATA", None)
    keep.pop("GAN_COURSE_GRADE_SCRATCH", None)
    return keep


_PROBE = (
    "import os\n"
    "from gan_course.grader import sandbox as s\n"
    "uid, gid = os.getuid(), os.getgid()\n"
    "pid = s.fork_into_namespaces()\n"
    "if pid == 0:\n"
    "    try:\n"
    "        s.set_up_namespaces(uid, gid, 1 << 20)\n"
    "        os._exit(0 if os.getpid() == 1 else 3)\n"
    "    except BaseException as e:\n"
    "        print(e)\n"
    "        os._exit(1)\n"
    "_, status = os.waitpid(pid, 0)\n"
    "raise SystemExit(os.waitstatus_to_exitcode(status))\n"
)
_status_cache: dict = {}


def sandbox_status(python_path: list[str], forbidden: list[str], env: dict) -> tuple[bool, str]:
    """(usable, why not): whether bubblewrap and per-exercise namespaces work here."""
    if os.environ.get(ENV_SANDBOX, "").strip().lower() in ("off", "0", "no", "false"):
        return False, f"{ENV_SANDBOX}=off"
    if not sys.platform.startswith("linux"):
        return False, _("no Linux namespaces on {platform}").format(platform=sys.platform)
    if shutil.which("bwrap") is None:
        return False, _("bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap)")
    key = (tuple(python_path), tuple(forbidden))
    if key not in _status_cache:
        command = bwrap_command(python_path, forbidden) + [sys.executable, "-c", _PROBE]
        try:
            done = subprocess.run(command, env=sandbox_env(env, python_path, forbidden), capture_output=True, text=True, timeout=60)
            ok = done.returncode == 0
            why = (done.stderr.strip() or done.stdout.strip()).splitlines()
            reason = "" if ok else _("bubblewrap cannot create namespaces here ({why})").format(
                why=why[-1] if why else done.returncode)
        except (OSError, subprocess.TimeoutExpired) as err:
            ok, reason = False, _("bubblewrap did not start ({error})").format(error=err)
        _status_cache[key] = (ok, reason)
    return _status_cache[key]


# ----------------------------------------------------------------------------- cgroups
def make_pids_cgroup(name: str) -> Path | None:
    """A pids cgroup for one slot when we may create one (root, v1 or v2 pids controller)."""
    if os.geteuid() != 0:
        return None
    for base in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
        try:
            if base == Path("/sys/fs/cgroup") and "pids" not in (base / "cgroup.controllers").read_text():
                continue
            group = base / name
            group.mkdir(exist_ok=True)
            (group / "pids.max").write_text(str(MAX_PIDS_PER_SLOT))
            return group
        except OSError:
            continue
    return None


def remove_cgroup(group: Path | None) -> None:
    if group is None:
        return
    for _attempt in range(50):
        try:
            group.rmdir()
            return
        except OSError:
            time.sleep(0.05)


# ----------------------------------------------------------------------------- a slot
class SlotDied(RuntimeError):
    pass


class WorkerSlot:
    """One warm worker process: imports the lab once, grades many notebooks one at a time."""

    def __init__(self, warm: dict, log_path: Path, env: dict, sandboxed: bool, python_path: list[str],
                 forbidden: list[str], number: int):
        self.warm, self.log_path, self.env = warm, log_path, env
        self.sandboxed, self.python_path, self.forbidden, self.number = sandboxed, python_path, forbidden, number
        self.proc = None
        self.cgroup = None
        self.buffer = bytearray()

    def _start(self):
        worker = [sys.executable, "-m", "gan_course.grader.worker"]
        if self.sandboxed:
            self.cgroup = make_pids_cgroup(f"gan-course-grade-{os.getpid()}-{self.number}")
            command = bwrap_command(self.python_path, self.forbidden) + worker
            env = sandbox_env(self.env, self.python_path, self.forbidden)
            if self.cgroup is not None:
                # Into the cgroup before bubblewrap starts, so that no process escapes the count.
                command = ["/bin/sh", "-c", f'echo $$ > "{self.cgroup}/cgroup.procs" && exec "$@"', "sh"] + command
            cwd = "/"
        else:
            env, cwd = self.env, self.env.get("GAN_COURSE_GRADE_SCRATCH", "/")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(command if self.sandboxed else worker, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=log, env=env, cwd=cwd, start_new_session=True)
        log.close()
        self.buffer = bytearray()
        self._send(self.warm)
        ready = self._receive(time.monotonic() + WORKER_START_SECONDS)
        if not (isinstance(ready, dict) and ready.get("ready")):
            raise SlotDied("the worker did not start")

    def _send(self, obj) -> None:
        data = json.dumps(obj).encode()
        self.proc.stdin.write(struct.pack(">I", len(data)) + data)
        self.proc.stdin.flush()

    def _receive_raw(self, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()
        while True:
            if len(self.buffer) >= 4:
                (size,) = struct.unpack(">I", self.buffer[:4])
                if size > FRAME_CAP:
                    raise SlotDied(f"a frame of {size} bytes")
                if len(self.buffer) >= 4 + size:
                    frame = bytes(self.buffer[4:4 + size])
                    del self.buffer[:4 + size]
                    return frame
            left = deadline - time.monotonic()
            if left <= 0:
                raise SlotDied("timed out")
            ready, _, _ = select.select([fd], [], [], min(left, 5.0))
            if ready:
                chunk = os.read(fd, 2**20)
                if not chunk:
                    raise SlotDied("the worker ended")
                self.buffer += chunk

    def _receive(self, deadline: float):
        raw = self._receive_raw(deadline)
        try:
            return json.loads(raw)
        except ValueError:
            raise SlotDied("a frame that is not JSON") from None

    def run(self, job: dict, limit: float) -> dict:
        """Grade one notebook: {exercise name: (header, result bytes)} for what came back."""
        got: dict = {}
        deadline = time.monotonic() + limit
        try:
            if self.proc is None or self.proc.poll() is not None:
                self._start()
            self._send(job)
            while True:
                message = self._receive(deadline)
                if not isinstance(message, dict):
                    raise SlotDied("an unexpected frame")
                if "done" in message:
                    return got
                header = message.get("exercise")
                if not isinstance(header, dict) or not isinstance(header.get("name"), str):
                    raise SlotDied("an unexpected frame")
                got[header["name"]] = (header, self._receive_raw(deadline))
        except (SlotDied, SchemaError, OSError, ValueError):
            self.close(kill=True)
            return got

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
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.proc = None
        if self.cgroup is not None:
            try:
                for pid in (self.cgroup / "cgroup.procs").read_text().split():
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
            remove_cgroup(self.cgroup)
            self.cgroup = None
