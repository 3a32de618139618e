"""`make lab` as students run it: root in the lab's containers, an ordinary user elsewhere.

`make -n` prints the commands without running them (no virtual environment is made).
"""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def lab_commands(*assignments):
    out = subprocess.run(["make", "-n", "-s", "lab", *assignments], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    jupyter = next(line for line in lines if " lab " in line and "jupyter" in line)
    return lines, jupyter.split()


def test_as_root_in_a_container_jupyterlab_allows_root_and_listens_for_the_host():
    lines, command = lab_commands("LAB_UID=0", "LAB_IP=0.0.0.0")
    assert command[0].endswith("/jupyter") and command[1] == "lab"
    assert command[2:] == ["--notebook-dir=labs", "--ip=0.0.0.0", "--port=8888", "--allow-root", "--no-browser"]
    assert any("open http://<this machine's address>:8888/lab" in line for line in lines)


def test_as_an_ordinary_user_no_allow_root():
    lines, command = lab_commands("LAB_UID=1000", "LAB_IP=localhost", "LAB_PORT=9999")
    assert command[2:] == ["--notebook-dir=labs", "--ip=localhost", "--port=9999"]
    assert any("open http://localhost:9999/lab" in line for line in lines)


def test_the_user_is_found_by_itself():
    _, command = lab_commands()
    assert ("--allow-root" in command) == (os.geteuid() == 0)
