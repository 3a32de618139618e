"""TensorFlow's start-up notices kept out of a lab's first cell.

`TF_CPP_MIN_LOG_LEVEL` (set in `gan_course/__init__.py`, 3 unless the reader set it) should
keep TensorFlow's C++ logs out of the notebook, but TensorFlow 2.21 writes its oneDNN notice
through absl before it reads the variable (tensorflow/tensorflow#100442): two red lines at the
top of every lab.  No library filters what a C++ library writes to the process's stderr, so
`import_tensorflow` does it here: it imports TensorFlow with file descriptor 2 captured, then
passes on every line that the variable lets through.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile

# absl's prefix: severity letter, month and day, time (TensorFlow's start-up lines carry
# "00:00:<seconds since 1970>"), thread, file:line]
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] ")
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}


def min_log_level() -> int:
    """TF_CPP_MIN_LOG_LEVEL as TensorFlow reads it: 0 (everything) to 3 (fatal errors only)."""
    try:
        return min(max(int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")), 0), 3)
    except ValueError:
        return 0


def filter_startup_log(text: str, level: int) -> str:
    """The lines of `text` that TF_CPP_MIN_LOG_LEVEL=`level` lets through: absl records below
    the level and absl's own preamble (a warning) go; everything else stays, in order.

    A record is its prefixed line and the lines after it up to the next record or preamble
    (cpu_feature_guard's notice takes two lines); text before the first record is kept."""
    kept = []
    dropping = False
    for line in text.splitlines(keepends=True):
        match = _ABSL_LINE.match(line)
        if line.rstrip("\r\n") == _ABSL_PREAMBLE:
            dropping = level >= _SEVERITY["W"]
        elif match:
            dropping = _SEVERITY[match.group(1)] < level
        if not dropping:
            kept.append(line)
    return "".join(kept)


def import_tensorflow():
    """`import tensorflow`, its start-up notices filtered by TF_CPP_MIN_LOG_LEVEL; returns the module."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no file descriptor 2 to capture: import as it is
        import tensorflow

        return tensorflow
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            passed = filter_startup_log(captured.read().decode("utf-8", "replace"), min_log_level())
            if passed:
                sys.stderr.write(passed)
                sys.stderr.flush()
    return tensorflow
