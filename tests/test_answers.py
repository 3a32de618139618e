"""Answers live only in solutions/: the library keeps contracts, the labs expected outputs.

- every course exercise is a bare contract (signature and docstring, no body);
- the references load from the solution notebooks;
- no run of an answer's tokens is in the wheel, in the student image's files or in labs/;
- on a machine without solutions/, `gc.check` compares with the released expected
  outputs, and a cell that needs an unfinished exercise stops with one line naming it.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest

from gan_course import checks, release

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
TOKEN = re.compile(r"\w+|[^\w\s]")
# A run this long of an answer's tokens, found anywhere else, is a copy of that answer
# (shorter runs are idioms any TensorFlow code shares: `tf.reduce_mean(tf.nn.relu(`...).
RUN = 24
# Overlaps that are known and kept, each with the reason.  Nothing else may overlap.
KNOWN_OVERLAPS = {
    # Lab 07 asks for a DCGAN generator of any size and colour; lab 03's `build_generator`,
    # which labs 03, 04 and 06 train, is built from the same Keras ladder of
    # Conv2DTranspose-BatchNormalization-ReLU lines.
    ("colour_generator", "models.py"),
}


def tokens(text: str) -> list[str]:
    return TOKEN.findall(re.sub(r"#[^\n]*", "", text))


def answer_parts(source: str) -> tuple[str, str]:
    """(the answer between the solution markers, the rest of the cell: what students see)."""
    inside, answer, rest = False, [], []
    for line in source.split("\n"):
        if release.BEGIN.match(line):
            inside = True
        elif release.END.match(line):
            inside = False
        else:
            (answer if inside else rest).append(line)
    return "\n".join(answer), "\n".join(rest)


def answers() -> list[tuple[str, list[str], str]]:
    """(exercise, answer tokens, its public instructions as one token string) for every exercise."""
    found = []
    for path in sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for _, name, source in checks.exercise_cells(nb):
            answer, rest = answer_parts(source)
            ex = checks.get_exercise(name)
            public = " ".join(tokens(f"{rest}\n{ex.doc}\n{ex.hint}"))
            found.append((name, tokens(answer), f" {public} "))
    return found


def copied_runs(text: str, answer_list, where: str = "") -> list[tuple[str, str]]:
    """(exercise, run) for every run of RUN answer tokens found in `text` that is not part
    of that exercise's public instructions (nor a known overlap with the file `where`)."""
    haystack = f" {' '.join(tokens(text))} "
    hits = []
    for name, answer, public in answer_list:
        if (name, Path(where).name) in KNOWN_OVERLAPS:
            continue
        for start in range(max(len(answer) - RUN + 1, 0)):
            run = f" {' '.join(answer[start:start + RUN])} "
            if run in haystack and run not in public:
                hits.append((name, run.strip()))
                break
    return hits


def notebook_code(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "\n".join(cell.source for cell in nb.cells)


def student_image_files() -> list[Path]:
    """The files the student image copies from the build context (every COPY that is not
    the solutions stage), after .dockerignore."""
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    files = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not line.startswith("COPY ") or "--from=" in line or "solutions/" in line:
            continue
        sources = [part for part in line.split()[1:-1] if not part.startswith("--")]
        for source in sources:
            path = ROOT / source
            found = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            files += [p for p in found if not any(p.relative_to(ROOT).match(pattern.strip("/").lstrip("*/"))
                                                   or pattern.strip("*/") in p.parts for pattern in ignored)]
    return files


@pytest.fixture(scope="module")
def answer_list():
    found = answers()
    assert len(found) >= 23 and all(len(answer) > 0 for _, answer, _ in found)
    return found


# ----------------------------------------------------------------------------- the library
def test_every_course_exercise_is_a_bare_contract():
    for lab in checks.LAB_MODULES:
        exercises = checks.load_lab(lab)
        assert exercises, lab
        for ex in exercises:
            assert not ex.inline and checks.is_contract(ex.contract), f"{ex.name} keeps an answer in the library"


def test_references_come_from_the_solution_notebooks():
    for lab in checks.LAB_MODULES:
        for ex in checks.load_lab(lab):
            code = ex.reference.__code__
            assert code.co_filename.startswith(str(SOLUTIONS)) and "[cell " in code.co_filename, ex.name


def test_the_detector_finds_a_pasted_answer_however_it_is_laid_out(answer_list, tmp_path):
    name, answer, _ = next(item for item in answer_list if item[0] == "conv_matrix")
    source = answer_parts(next(src for _, n, src in checks.exercise_cells(
        nbformat.read(SOLUTIONS / "02_conv_arithmetic.ipynb", as_version=4)) if n == "conv_matrix"))[0]
    pasted = "def helper(kernel, input_size, stride, padding):  # my own\n" + "\n".join(
        "        " + line.strip() + "   # reformatted" for line in source.split("\n"))
    assert ("conv_matrix", " ".join(answer[:RUN])) in copied_runs(pasted, answer_list)
    assert copied_runs("def helper(x):\n    return x\n", answer_list) == []


def test_no_answer_in_the_wheel(answer_list, tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path)], capture_output=True, text=True, timeout=300,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(tmp_path.glob("gan_course-*.whl"))
    hits, names = [], []
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            names.append(member)
            if member.endswith((".py", ".txt", ".json", ".md", ".ipynb")):
                hits += [(member, *hit) for hit in copied_runs(archive.read(member).decode("utf-8", "replace"),
                                                                answer_list, member)]
    assert any(n.endswith("gan_course/checks.py") for n in names)
    assert not any("solutions" in n for n in names)
    assert hits == []


def test_no_answer_in_the_student_image_or_the_labs(answer_list):
    files = student_image_files()
    assert any(p.name == "checks.py" for p in files) and any(p.suffix == ".ipynb" for p in files)
    assert not any("solutions" in p.parts for p in files)
    hits = []
    for path in files:
        if path.suffix == ".ipynb":
            text = notebook_code(path)
        elif path.suffix in (".py", ".md", ".toml", ".txt", ".json", ".yml"):
            text = path.read_text(encoding="utf-8")
        else:
            continue
        hits += [(str(path.relative_to(ROOT)), *hit) for hit in copied_runs(text, answer_list, str(path))]
    assert hits == []


# ----------------------------------------------------------------------------- a student's machine
@pytest.fixture
def student_machine(monkeypatch, tmp_path):
    """No solutions/, the released expected outputs beside the labs (a copy of lab 01's)."""
    labs = tmp_path / "labs"
    (labs / "expected").mkdir(parents=True)
    shutil.copy(ROOT / "labs" / "expected" / "01.npz", labs / "expected" / "01.npz")
    monkeypatch.setenv(checks.ENV_SOLUTIONS, "")
    monkeypatch.setenv(checks.ENV_EXPECTED, str(labs / "expected"))
    monkeypatch.delenv(checks.ENV_STRICT, raising=False)
    monkeypatch.setattr(checks, "_PASSED", {})
    return labs


def test_without_solutions_the_reference_is_not_there(student_machine):
    assert checks.solutions_dir() is None
    with pytest.raises(checks.SolutionsUnavailable, match="solutions/ folder, which is not on this machine"):
        checks.reference("optimal_discriminator")


def test_without_solutions_check_compares_with_the_expected_outputs(student_machine, capsys):
    def optimal_discriminator(p_data, p_g):
        total = p_data + p_g
        return np.where(total > 0, p_data / np.where(total > 0, total, 1), 0.5).astype(p_data.dtype)

    assert checks.check("optimal_discriminator", {"optimal_discriminator": optimal_discriminator}) \
        is optimal_discriminator
    assert "✓ optimal_discriminator: all" in capsys.readouterr().out
    # Library code that needs the exercise now runs the student's function.
    from gan_course import intuition

    p = np.array([0.0, 1.0], np.float32)
    np.testing.assert_allclose(intuition.optimal_discriminator(p, p), [0.5, 0.5])


def test_without_solutions_a_wrong_answer_stops_later_cells_with_one_line(student_machine, capsys):
    def optimal_discriminator(p_data, p_g):
        return p_data / (p_data + p_g)  # nan where both are 0

    chosen = checks.check("optimal_discriminator", {"optimal_discriminator": optimal_discriminator})
    out = capsys.readouterr().out
    assert "✗ optimal_discriminator [finite]" in out and "Hint:" in out
    assert "stop with a note until it passes" in out
    from gan_course import intuition

    for call in (chosen, intuition.optimal_discriminator):
        with pytest.raises(checks.ExerciseUnfinished) as stopped:
            call(np.ones(2, np.float32), np.ones(2, np.float32))
        line = stopped.value._render_traceback_()
        assert len(line) == 1 and "`optimal_discriminator`" in line[0]
    assert "section “" in line[0]  # the heading above the exercise in the lab


def test_without_solutions_or_expected_outputs_check_says_why(student_machine, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(checks.ENV_EXPECTED, str(tmp_path / "nowhere"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(checks, "expected_path", lambda lab: None)
    checks.check("js_divergence", {"js_divergence": lambda p, q: p})
    assert "cannot check here" in capsys.readouterr().out


def test_expected_outputs_written_for_other_inputs_are_refused(student_machine, monkeypatch, capsys):
    monkeypatch.setattr(checks, "_fingerprint", lambda values: "another version")
    chosen = checks.check("js_divergence", {"js_divergence": lambda p, q: p})
    assert "written for other test inputs" in capsys.readouterr().out
    assert isinstance(chosen, checks.Unfinished)


# ----------------------------------------------------------------------------- release
def test_release_check_covers_the_expected_outputs(tmp_path):
    solutions, labs = tmp_path / "solutions", tmp_path / "labs"
    solutions.mkdir()
    shutil.copy(SOLUTIONS / "01_gan_intuition.ipynb", solutions)
    assert release.release(solutions, labs) == []
    assert (labs / "expected" / "01.npz").is_file()
    assert release.release(solutions, labs, check=True) == []
    # A hand-edited value is caught...
    meta, arrays = checks.read_expected(labs / "expected" / "01.npz"), None
    arrays = meta.pop("arrays")
    entry = meta["exercises"]["js_divergence"]
    key = entry["outputs"][0]["__array__"]
    arrays[key] = arrays[key] + 1
    from gan_course.grader.wire import pack_result

    (labs / "expected" / "01.npz").write_bytes(pack_result(meta, arrays))
    problems = release.release(solutions, labs, check=True)
    assert any("01.npz: js_divergence: outputs differ" in p for p in problems), problems
    # ... and so is a missing file.
    (labs / "expected" / "01.npz").unlink()
    assert any("01.npz: missing" in p for p in release.release(solutions, labs, check=True))


def test_an_untouched_lab_on_a_students_machine_stops_at_the_first_cell_that_needs_an_exercise(tmp_path):
    """Lab 02 as a student gets it (no solutions/, expected outputs beside the lab): the
    first cell that uses an unfinished exercise stops with one line naming it."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    labs = tmp_path / "labs"
    (labs / "expected").mkdir(parents=True)
    shutil.copy(ROOT / "labs" / "02_conv_arithmetic.ipynb", labs)
    shutil.copy(ROOT / "labs" / "expected" / "02.npz", labs / "expected")
    nb = nbformat.read(labs / "02_conv_arithmetic.ipynb", as_version=4)
    env = {checks.ENV_SOLUTIONS: "", "GAN_COURSE_PROFILE": "smoke", "GAN_COURSE_OUT": str(tmp_path / "out")}
    import os

    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(labs)}})
        with pytest.raises(CellExecutionError):
            client.execute()
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    executed = [cell for cell in nb.cells if cell.cell_type == "code" and cell.get("outputs")]
    printed = "".join(out.get("text", "") for cell in executed for out in cell.outputs if out.output_type == "stream")
    assert "✗ conv_output_size [runs]: not done yet" in printed
    assert "stop with a note until it passes" in printed
    errors = [out for cell in executed for out in cell.outputs if out.output_type == "error"]
    assert len(errors) == 1
    assert errors[0].ename == "ExerciseUnfinished"
    assert errors[0].traceback == [errors[0].traceback[0]] and "`conv_output_size`" in errors[0].traceback[0]


def test_the_stop_line_names_the_section_as_the_students_edition_calls_it(student_machine, monkeypatch):
    monkeypatch.setenv("GAN_COURSE_LANG", "zh")
    checks.check("optimal_discriminator", {"optimal_discriminator": lambda p_data, p_g: p_data})
    with pytest.raises(checks.ExerciseUnfinished) as stopped:
        checks.implementation("optimal_discriminator")(np.ones(2, np.float32), np.ones(2, np.float32))
    line = str(stopped.value)
    assert "`optimal_discriminator`" in line and re.search(r"[\u4e00-\u9fff]", line)
    meta = checks.read_expected(ROOT / "labs" / "expected" / "01.npz")
    titles = meta["exercises"]["optimal_discriminator"]["sections"]
    assert titles["zh"] and titles["zh"] != titles["en"] and titles["zh"] in line
