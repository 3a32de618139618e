"""`gan-course download` and `gan-course release` with good and wrong arguments."""
from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

from gan_course import data
from gan_course.cli import main

SECRET = "secret_answer"  # appears only inside the solution block
WORKED = "worked example for instructors"  # appears only in a cell tagged `solution`

EXERCISE = '''# EXERCISE: double
def double(x):
    """Return twice `x`."""
    ### BEGIN SOLUTION
    secret_answer = x * 2
    return secret_answer
    ### END SOLUTION
'''


def solution_notebook(exercise_source: str = EXERCISE) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = nbformat.from_dict({
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python", "version": "3.11.2", "mimetype": "text/x-python"},
        "gan_course": {"lab": "01"},
        "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}},
        "toc": {"number_sections": True},
    })
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Lab 01\nDouble a number.", metadata={"editable": False}),
        nbformat.v4.new_code_cell("import math", metadata={"collapsed": True, "scrolled": True,
                                                           "execution": {"iopub.status.busy": "2024"}}),
        nbformat.v4.new_code_cell(exercise_source, metadata={"tags": ["exercise-cell"]}),
        nbformat.v4.new_code_cell(f"print('{WORKED}')", metadata={"tags": ["solution"]}),
        nbformat.v4.new_code_cell("double(2)", metadata={"tags": ["raises-exception", "my-own-tag"]}),
    ]
    return nb


@pytest.fixture
def course(tmp_path):
    """A tiny course folder: solutions/01_double.ipynb and an empty labs/."""
    (tmp_path / "solutions").mkdir()
    nbformat.write(solution_notebook(), tmp_path / "solutions" / "01_double.ipynb")
    (tmp_path / "labs").mkdir()
    return tmp_path


def release_args(course, *extra):
    return ["release", "--solutions", str(course / "solutions"), "--labs", str(course / "labs"), *extra]


def run_module(course, *args):
    return subprocess.run([sys.executable, "-m", "gan_course", *args], cwd=course,
                          capture_output=True, text=True, timeout=120)


# ----------------------------------------------------------------------------- download
def test_download_unknown_dataset_exits_2_and_lists_known(capsys):
    assert main(["download", "nosuchset"]) == 2
    err = capsys.readouterr().err
    assert "nosuchset" in err
    for name in data.DATASETS:
        assert name in err


def test_download_with_one_unknown_name_fetches_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(data.ENV_DATA, str(tmp_path))
    fetched = []
    monkeypatch.setattr(data, "download", lambda name, **kw: fetched.append(name))
    assert main(["download", "mnist", "nosuchset"]) == 2
    assert fetched == []


def test_download_offline_exits_1_with_where_to_put_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(data.ENV_DATA, str(tmp_path))
    monkeypatch.setenv(data.ENV_OFFLINE, "1")
    assert main(["download", "mnist"]) == 1
    err = capsys.readouterr().err
    assert "mnist.npz" in err and f"Put the file at {tmp_path / 'mnist' / 'mnist.npz'}" in err


def test_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["release", "--bogus"])
    assert exit_.value.code == 2
    assert "--bogus" in capsys.readouterr().err


# ----------------------------------------------------------------------------- release
def test_release_then_check_passes(course, capsys):
    assert main(release_args(course)) == 0
    assert (course / "labs" / "01_double.ipynb").is_file()
    assert main(release_args(course, "--check")) == 0
    assert "matches" in capsys.readouterr().out
    # Releasing again changes nothing.
    before = (course / "labs" / "01_double.ipynb").read_text()
    assert main(release_args(course)) == 0
    assert (course / "labs" / "01_double.ipynb").read_text() == before


def test_check_fails_on_a_missing_lab(course, capsys):
    assert main(release_args(course, "--check")) == 1
    err = capsys.readouterr().err
    assert "01_double.ipynb: missing" in err


def test_check_names_a_hand_edited_lab(course, capsys):
    assert main(release_args(course)) == 0
    lab = course / "labs" / "01_double.ipynb"
    nb = nbformat.read(lab, as_version=4)
    nb.cells[0].source += "\nA note typed into the lab by hand."
    nbformat.write(nb, lab)
    capsys.readouterr()
    assert main(release_args(course, "--check")) == 1
    err = capsys.readouterr().err
    assert f"{lab}: differs from its solution" in err
    assert "out of sync" in err


def test_check_flags_a_lab_without_solution(course, capsys):
    assert main(release_args(course)) == 0
    nbformat.write(nbformat.v4.new_notebook(), course / "labs" / "07_orphan.ipynb")
    assert main(release_args(course, "--check")) == 1
    assert "07_orphan.ipynb: has no solution notebook" in capsys.readouterr().err


def test_release_check_through_python_dash_m(course):
    assert run_module(course, *release_args(course)).returncode == 0
    synced = run_module(course, "release", "--check")  # defaults: ./solutions and ./labs
    assert synced.returncode == 0, synced.stderr
    assert "matches" in synced.stdout
    lab = course / "labs" / "01_double.ipynb"
    lab.write_text(lab.read_text().replace("Double a number.", "Double a number, by hand."))
    drifted = run_module(course, "release", "--check")
    assert drifted.returncode == 1
    assert "01_double.ipynb: differs from its solution" in drifted.stderr


def test_released_lab_keeps_no_solution_output_or_stray_metadata(course):
    assert main(release_args(course)) == 0
    text = (course / "labs" / "01_double.ipynb").read_text()
    assert SECRET not in text and WORKED not in text
    lab = nbformat.read(course / "labs" / "01_double.ipynb", as_version=4)
    nbformat.validate(lab)
    assert set(lab.metadata) == {"kernelspec", "language_info", "gan_course"}
    assert lab.metadata.language_info == {"name": "python"}
    assert lab.metadata.gan_course == {"lab": "01"}
    assert len(lab.cells) == 4  # the `solution` cell is gone
    exercise = lab.cells[2]
    assert exercise.metadata == {"gan_course": {"exercise": "double"}}
    assert exercise.source.startswith("# EXERCISE: double\ndef double(x):\n    \"\"\"Return twice `x`.\"\"\"")
    assert "    raise NotImplementedError()" in exercise.source
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    assert lab.cells[0].metadata == {} and lab.cells[1].metadata == {}
    assert lab.cells[3].metadata == {"tags": ["raises-exception"]}
    for cell in lab.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    # The stub really is a stub: the function is defined and refuses to answer.
    namespace = {}
    exec(exercise.source, namespace)
    with pytest.raises(NotImplementedError):
        namespace["double"](2)


def test_outputs_in_a_solution_are_reported_and_never_released(course, capsys):
    nb = nbformat.read(course / "solutions" / "01_double.ipynb", as_version=4)
    nb.cells[1].execution_count = 3
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="left over\n")]
    nbformat.write(nb, course / "solutions" / "01_double.ipynb")
    assert main(release_args(course)) == 1
    assert "cell 1 carries outputs" in capsys.readouterr().err
    lab = nbformat.read(course / "labs" / "01_double.ipynb", as_version=4)
    assert lab.cells[1].outputs == [] and lab.cells[1].execution_count is None


@pytest.mark.parametrize("broken, says", [
    (EXERCISE.replace("    ### END SOLUTION\n", ""), "BEGIN SOLUTION is never closed"),
    (EXERCISE.replace("    ### BEGIN SOLUTION\n", ""), "END SOLUTION without BEGIN SOLUTION"),
    (EXERCISE.replace("    return secret_answer\n", "    ### BEGIN SOLUTION\n"), "inside another solution block"),
])
def test_unbalanced_solution_block_exits_2_naming_notebook_and_cell(course, capsys, broken, says):
    nbformat.write(solution_notebook(broken), course / "solutions" / "01_double.ipynb")
    assert main(release_args(course)) == 2
    err = capsys.readouterr().err
    assert says in err
    assert "01_double.ipynb" in err and "cell 2" in err
    assert not (course / "labs" / "01_double.ipynb").exists()
    assert main(release_args(course, "--check")) == 2


def test_release_without_solutions_exits_2(tmp_path, capsys):
    (tmp_path / "solutions").mkdir()
    assert main(["release", "--solutions", str(tmp_path / "solutions"), "--labs", str(tmp_path / "labs")]) == 2
    assert "no solution notebooks" in capsys.readouterr().err
