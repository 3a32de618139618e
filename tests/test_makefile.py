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



def _dry_run(*targets):
    out = subprocess.run(["make", "-n", "-s", *targets], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.replace("\\\n", " ")


def _gpu_run(script):
    (line,) = [line for line in script.splitlines() if "GAN_COURSE_PROFILE=gpu" in line]
    words = line.split()
    settings = dict(word.split("=", 1) for word in words if word.startswith("GAN_COURSE_"))
    assert settings["GAN_COURSE_ALLOW_STANDIN"] == "1" and settings["GAN_COURSE_STRICT"] == "1"
    assert 0 < float(settings["GAN_COURSE_STEPS_SCALE"]) < 1
    assert settings["GAN_COURSE_OUT"] == "$out" and "out=$(mktemp -d)" in line  # a fresh folder: nothing resumes
    assert "--nbval" in words
    return {Path(word).name.split("_")[0] for word in words if word.startswith("solutions/")}, line


ENGLISH_LABS = {p.name.split("_")[0] for p in (ROOT / "solutions").glob("*.ipynb")}


def test_notebooks_gpu_runs_every_english_solution_with_scaled_steps():
    labs, line = _gpu_run(_dry_run("notebooks-gpu"))
    assert labs == ENGLISH_LABS and len(labs) == 7
    assert all(f"solutions/{lab}_*.ipynb" in line.split() for lab in labs)  # English only, not solutions/zh/


def test_ci_runs_the_gpu_profile_and_names_every_lab_it_leaves_out():
    script = _dry_run("test")
    labs, _ = _gpu_run(script)
    assert labs and labs <= ENGLISH_LABS
    (note,) = [line for line in script.splitlines() if "are left to" in line]
    left_out = set(note.split("labs ")[2].split(" are left")[0].split())
    assert left_out == ENGLISH_LABS - labs and "make notebooks-gpu" in note
