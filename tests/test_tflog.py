"""TensorFlow's start-up notices: filtered by TF_CPP_MIN_LOG_LEVEL, everything else passed on."""
import os
import subprocess
import sys

import pytest

from gan_course.tflog import filter_startup_log

PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
INFO = ("I0000 00:00:1796124497.749961    6099 port.cc:153] oneDNN custom operations are on. You may see "
        "slightly different numerical results.\n")
INFO_TWO_LINES = ("I0000 00:00:1796124497.812345    6099 cpu_feature_guard.cc:227] This TensorFlow binary is "
                  "optimized to use available CPU instructions in performance-critical operations.\n"
                  "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild "
                  "TensorFlow with the appropriate compiler flags.\n")
WARNING = "W0000 00:00:1796124497.749961    6099 cpu_feature_guard.cc:42] a warning\n"
ERROR = "E0000 00:00:1796124497.749961    6099 cuda_dnn.cc:8579] Unable to register cuDNN factory\n"
FATAL = "F0000 00:00:1796124497.749961    6099 something.cc:1] Check failed\n"
OTHER = "/site-packages/some/module.py:12: UserWarning: printed by Python\n  import something\n"
LOG = OTHER + PREAMBLE + INFO + INFO_TWO_LINES + WARNING + ERROR + FATAL


@pytest.mark.parametrize("level, expected", [
    (0, LOG),
    (1, OTHER + WARNING + ERROR + FATAL),
    (2, OTHER + ERROR + FATAL),
    (3, OTHER + FATAL),
])
def test_each_level_drops_the_absl_lines_below_it_and_keeps_the_rest(level, expected):
    assert filter_startup_log(LOG, level) == expected


def test_lines_that_only_look_like_absl_lines_are_kept():
    text = "I think so\nI0000 no time here] x\nWARNING: something else\n"
    assert filter_startup_log(text, 3) == text


SETUP = ["-c", "from gan_course import config; config.setup(quiet=True)"]
CLI = ["-m", "gan_course", "doctor"]  # a command that loads TensorFlow (its exit status depends on the machine)


def _stderr(level: str, args) -> str:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": level, "GAN_COURSE_PROFILE": "smoke", "GAN_COURSE_OFFLINE": "1"}
    run = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300)
    assert args is CLI or run.returncode == 0, run.stderr
    return run.stderr


@pytest.mark.parametrize("args", [SETUP, CLI], ids=["lab setup", "gan-course doctor"])
def test_tensorflow_is_imported_without_its_startup_notices(args):
    """Where TensorFlow prints its oneDNN notice (2.21 on x86 Linux: tensorflow/tensorflow#100442),
    a lab's setup and the command line show nothing of it at the default level, and all of it at level 0."""
    loud = _stderr("0", args)
    if "oneDNN custom operations" not in loud:
        pytest.skip("this TensorFlow prints no oneDNN notice at start-up")
    quiet = _stderr("3", args)
    assert "oneDNN" not in quiet and "absl::InitializeLog" not in quiet, quiet
