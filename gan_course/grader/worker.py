"""The sandbox's side of the grader: a warm worker that forks a process per notebook.

`gan-course grade` starts one worker per parallel slot, inside bubblewrap (see
`gan_course.grader.run`): ``python -m gan_course.grader.worker``.  The worker imports the
lab's libraries once (TensorFlow costs seconds), then for each notebook it is sent forks
a *notebook process* that reads the job (so the warm worker never holds any student's
code or results) and runs every exercise in a sandbox of its own
(`gan_course.grader.sandbox`), relaying each result to the parent as frames: a JSON
header, then the result's bytes, then ``{"done": exit code}``.
"""
from __future__ import annotations

import ast
import json
import os
import sys
import traceback

from gan_course.grader.sandbox import PR_SET_DUMPABLE, prctl, run_exercise
from gan_course.grader.wire import read_exact, read_frame_blocking, write_json

SETUP_FILENAME = "<lab setup>"


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
    # The catalogues of the students' languages, compiled once (messages made in a child).
    from gan_course import i18n

    for lang in warm.get("languages", []):
        try:
            i18n.translation(lang)
        except Exception:  # noqa: BLE001 - the child compiles it, or speaks English
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
