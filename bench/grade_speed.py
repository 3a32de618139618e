"""How long `gan-course grade` takes for a class: 30 submissions of one lab.

    python bench/grade_speed.py [--lab NN] [--students 30] [--workers 2]

With --lab, the submissions are copies of the lab's solution (full marks) and of its
untouched student notebook (not done), two to one.  Without it (or while the lab is not
written yet) a stand-in lab is graded whose setup imports TensorFlow and calls
`gc.setup()` like the real labs and whose three exercises run TensorFlow ops, so the
figure includes what dominates a real run: one TensorFlow import per submission.
Prints the wall time, the time per submission and the status counts, once per mode:
``sandbox`` (bubblewrap, namespaces per exercise: what `gan-course grade` uses where it
can) and ``process`` (the fallback: separate processes and hard limits only), back to
back on the same submissions, so that the sandbox's cost is measured in one run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gan_course import checks, grade  # noqa: E402
from gan_course.release import release_notebook  # noqa: E402

STANDIN_LAB = "98"
STANDIN_MODULE = '''\
"""A stand-in lab for the grading benchmark: three TensorFlow exercises."""
import numpy as np
import tensorflow as tf

from gan_course.checks import exercise


def _images(rng):
    return [{"x": rng.normal(size=(n, h, h, 1)).astype(np.float32), "k": rng.normal(size=(3, 3, 1, 2)).astype(np.float32)}
            for n, h in [(1, 5), (2, 8), (3, 7), (1, 9), (4, 6)]]


def _logits(rng):
    return [{"logits": rng.normal(size=n).astype(np.float32)} for n in (1, 2, 7, 16, 33)]


@exercise("98", cases=_images)
def conv_same(x, k):
    return tf.nn.conv2d(x, k, strides=1, padding="SAME").numpy()


@exercise("98", cases=_logits)
def bce_real(logits):
    return float(tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(logits), logits)))


@exercise("98", cases=_images)
def conv_valid_shape(x, k):
    return tuple(int(d) for d in tf.nn.conv2d(x, k, strides=1, padding="VALID").shape)
'''
STANDIN_EXERCISES = {
    "conv_same": "def conv_same(x, k):\n    ### BEGIN SOLUTION\n    return tf.nn.conv2d(x, k, strides=1, padding='SAME').numpy()\n    ### END SOLUTION",
    "bce_real": "def bce_real(logits):\n    ### BEGIN SOLUTION\n    return float(tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(logits), logits)))\n    ### END SOLUTION",  # noqa: E501
    "conv_valid_shape": "def conv_valid_shape(x, k):\n    ### BEGIN SOLUTION\n    return tuple(int(d) for d in tf.nn.conv2d(x, k, strides=1, padding='VALID').shape)\n    ### END SOLUTION",  # noqa: E501
}


def standin_course(folder: Path) -> Path:
    """A course folder holding the stand-in lab's solution; its module importable by workers."""
    (folder / "solutions").mkdir(parents=True)
    (folder / "lib").mkdir()
    (folder / "lib" / "bench_lab.py").write_text(STANDIN_MODULE)
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"gan_course": {"lab": STANDIN_LAB}, "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nb.cells = [nbformat.v4.new_code_cell("import numpy as np\nimport tensorflow as tf\nimport gan_course as gc\nimport bench_lab\nP = gc.setup()")]
    for name, source in STANDIN_EXERCISES.items():
        nb.cells += [nbformat.v4.new_code_cell(f"# EXERCISE: {name}\n{source}"), nbformat.v4.new_code_cell(f"{name} = gc.check('{name}')")]
    nbformat.write(nb, folder / "solutions" / f"{STANDIN_LAB}_standin.ipynb")
    sys.path.insert(0, str(folder / "lib"))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [str(folder / "lib"), os.environ.get("PYTHONPATH", "")] if p)
    checks.LAB_MODULES[STANDIN_LAB] = "bench_lab"
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lab", help="a real lab (01, 02, ...); default: the stand-in lab")
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--modes", default="sandbox,process", help="comma-separated: sandbox, process")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="grade-bench-") as tmp:
        tmp = Path(tmp)
        if args.lab:
            root = ROOT
            solution = grade.solution_notebook(ROOT, args.lab)
        else:
            root = standin_course(tmp / "course")
            solution = grade.solution_notebook(root, STANDIN_LAB)
        solved = nbformat.read(solution, as_version=4)
        untouched = release_notebook(solved)
        subs = tmp / "submissions"
        subs.mkdir()
        for i in range(args.students):
            nbformat.write(untouched if i % 3 == 2 else solved, subs / f"student{i:02d}.ipynb")

        seconds = {}
        for mode in args.modes.split(","):
            if mode == "process":
                os.environ["GAN_COURSE_SANDBOX"] = "off"
            else:
                os.environ.pop("GAN_COURSE_SANDBOX", None)
            started = time.perf_counter()
            report = grade.grade(subs, tmp / "out", workers=args.workers, root=root, timeout=args.timeout, progress=False)
            seconds[mode] = time.perf_counter() - started
            counts = Counter(o.status for per in report.outcomes.values() for o in per.values())
            lab = report.lab + ("" if args.lab else " (stand-in: TensorFlow setup, 3 TF exercises)")
            print(
                f"[{mode}: sandbox={report.sandbox}] graded {args.students} submissions of lab {lab} with "
                f"{args.workers} workers on {os.cpu_count()} cores in {seconds[mode]:.1f} s "
                f"({seconds[mode] / args.students:.2f} s per submission); statuses: {dict(counts)}"
            )
            shutil.rmtree(tmp / "out", ignore_errors=True)
        if "sandbox" in seconds and "process" in seconds:
            print(f"sandbox / process: {seconds['sandbox'] / seconds['process']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
