"""The autograder (`gan-course grade`): every bad submission is graded, reported and survived.

Most tests grade a tiny NumPy-only lab ("99", three exercises) built here in a temporary
course folder, so that a whole batch of fixtures (tests/fixtures/submissions/, one
notebook per kind of bad input) grades in seconds.  The tests at the end grade the real
labs' solutions and untouched student copies when they exist.
"""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from gan_course.grader import run as runner
from gan_course.grader import wire
from gan_course.grader.report import escape_markdown
from gan_course import checks, grade, i18n
from gan_course.release import release_notebook

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "submissions"
LAB = "99"
TIMEOUT = 5.0
MEMORY_MB = 1024

TINY_LAB_MODULE = '''\
"""A tiny lab for the autograder's tests: three NumPy exercises (contracts; answers in solutions/)."""
import numpy as np

from gan_course.checks import exercise


def _matrices(rng):
    return [{"x": rng.normal(size=shape).astype(np.float32)} for shape in [(1, 3), (2, 5), (7, 1), (3, 4), (5, 9)]]


def _pairs(rng):
    shapes = [(1,), (3,), (2, 5), (7, 3), (1, 9)]
    return [{"a": rng.normal(size=s), "b": rng.normal(size=s)} for s in shapes]


def _integers(rng):
    return [{"x": rng.integers(-5, 6, size=n)} for n in (1, 2, 7, 10, 33)]


@exercise("99", cases=_matrices, hint="subtract each row's mean, divide by its standard deviation plus 1e-6")
def standardize_rows(x):
    """The answer is in the solution notebook only."""
    raise NotImplementedError()


@exercise("99", cases=_pairs)
def add_arrays(a, b):
    raise NotImplementedError()


@exercise("99", cases=_integers)
def count_positive(x):
    raise NotImplementedError()
'''

SETUP_CELL = "import numpy as np\nimport gan_course as gc\nimport tiny_lab"
EXERCISES = {
    "standardize_rows": '''\
# EXERCISE: standardize_rows
def standardize_rows(x):
    """Shift each row of x to mean 0 and scale it to standard deviation 1 (float32).

    Add 1e-6 to the standard deviation so that a constant row stays finite.
    """
    ### BEGIN SOLUTION
    mean = x.mean(axis=1, keepdims=True)
    std = x.std(axis=1, keepdims=True)
    return ((x - mean) / (std + 1e-6)).astype(np.float32)
    ### END SOLUTION''',
    "add_arrays": '''\
# EXERCISE: add_arrays
def add_arrays(a, b):
    """Return a + b without changing a or b."""
    ### BEGIN SOLUTION
    return a + b
    ### END SOLUTION''',
    "count_positive": '''\
# EXERCISE: count_positive
def count_positive(x):
    """How many entries of x are greater than 0, as a Python int."""
    ### BEGIN SOLUTION
    return int(np.sum(x > 0))
    ### END SOLUTION''',
}
NAMES = list(EXERCISES)


def tiny_solution_notebook():
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
        "gan_course": {"lab": LAB},
    }
    cells = [nbformat.v4.new_markdown_cell("# Lab 99: a tiny lab"), nbformat.v4.new_code_cell(SETUP_CELL)]
    cells.append(nbformat.v4.new_code_cell("data = np.arange(6.0).reshape(2, 3)\nprint(data)"))
    for name, source in EXERCISES.items():
        cells += [
            nbformat.v4.new_markdown_cell(f"Write `{name}`."),
            nbformat.v4.new_code_cell(source),
            nbformat.v4.new_code_cell(f'{name} = gc.check("{name}")'),
        ]
    nb.cells = cells
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course folder with the tiny lab's solutions; the lab's module importable by workers."""
    root = tmp_path_factory.mktemp("course")
    (root / "solutions").mkdir()
    (root / "lib").mkdir()
    (root / "lib" / "tiny_lab.py").write_text(TINY_LAB_MODULE)
    nbformat.write(tiny_solution_notebook(), root / "solutions" / f"{LAB}_tiny.ipynb")
    patch = pytest.MonkeyPatch()
    patch.setitem(checks.LAB_MODULES, LAB, "tiny_lab")
    patch.syspath_prepend(str(root / "lib"))
    patch.setenv("PYTHONPATH", str(root / "lib"))
    yield root
    patch.undo()
    for name in NAMES:
        checks.REGISTRY.pop(name, None)
    sys.modules.pop("tiny_lab", None)


def run_grade(course, submissions, out, **options):
    options = {"lab": None, "workers": 2, "root": course, "timeout": TIMEOUT, "memory_mb": MEMORY_MB,
               "seed": 1234, "progress": False} | options
    return grade.grade(submissions, out, **options)


def results_of(out) -> dict:
    return json.loads((Path(out) / "results.json").read_text())["students"]


# ----------------------------------------------------------------------------- the fixtures batch
def sandbox_usable(course) -> bool:
    return runner.sandbox_status([str(course / "lib")], [str(course / "solutions")], dict(os.environ))[0]


HOSTILE = sorted(p.stem for p in FIXTURES.glob("hostile_*.ipynb"))


def add_odd_entries(submissions: Path) -> None:
    """Entries that cannot be committed, or that would trip git: made here, at run time."""
    good = (FIXTURES / "good.ipynb").read_bytes()
    os.mkfifo(submissions / "fifo.ipynb")  # opening it for reading would wait forever
    os.symlink("/dev/zero", submissions / "zero.ipynb")
    (submissions / os.fsdecode(b"caf\xe9.ipynb")).write_bytes(good)  # not UTF-8
    (submissions / "=1+2.ipynb").write_bytes(good)
    (submissions / ".hidden.ipynb").write_bytes(good)
    (submissions / ".ipynb_checkpoints").mkdir()
    (submissions / "notes.txt").write_text("not a notebook")
    (submissions / "empty_folder").mkdir()
    (submissions / "deep_json.ipynb").write_text("[" * 100_000 + "]" * 100_000)
    two = submissions / "two_notebooks"
    two.mkdir()
    (two / "99_tiny.ipynb").write_bytes(good)
    other = json.loads(good)
    other["metadata"]["gan_course"]["lab"] = "98"
    (two / "98_other.ipynb").write_text(json.dumps(other))


@pytest.fixture(scope="module")
def fixture_batch(course, tmp_path_factory):
    """Every fixture graded in one batch: the batch must survive all of them together."""
    base = tmp_path_factory.mktemp("batch")
    submissions, out = base / "submissions", base / "out"
    submissions.mkdir()
    sandboxed = sandbox_usable(course)
    for path in FIXTURES.glob("*.ipynb"):
        if path.stem in HOSTILE and not sandboxed:
            continue  # these attack the machine itself: graded only inside the sandbox
        text = path.read_text(encoding="utf-8", errors="replace")
        # Some attacks need a real path: the grade folder and the solutions, as a student who knows them.
        text = (text.replace("@OUT@", str(out)).replace("@SOLUTIONS@", str(course / "solutions"))
                .replace("@SUBMISSIONS@", str(submissions)))
        (submissions / path.name).write_text(text, encoding="utf-8")
    add_odd_entries(submissions)
    report = run_grade(course, submissions, out)
    return report, results_of(out), out


def sandboxed_only(batch):
    if not batch[0].sandbox:
        pytest.skip(f"no sandbox here ({batch[0].sandbox_note}): the hostile fixtures were not graded")


def outcome(batch, student, name):
    return batch[1][student]["exercises"][name]


def assert_outcome(batch, student, name, status, check=None, *words):
    got = outcome(batch, student, name)
    assert got["status"] == status, got
    if check is not None:
        assert got["check"] == check, got
    text = (got["message"] + " " + " ".join(got["notes"])).lower()
    for word in words:
        assert word.lower() in text, (word, got)
    return got


def test_good_submission_gets_full_marks(fixture_batch):
    report, results, out = fixture_batch
    assert results["good"]["total"] == results["good"]["max"] == 3
    for name in NAMES:
        got = assert_outcome(fixture_batch, "good", name, "pass")
        assert got["seed"] is not None and got["points"] == 1


@pytest.mark.parametrize(
    "student, status, check, words",
    [
        ("not_json", "error", "notebook", ["not valid JSON"]),
        ("not_a_notebook", "error", "notebook", ["not a Jupyter notebook"]),
        ("empty_notebook", "missing", "exists", ["empty"]),
    ],
)
def test_unreadable_notebooks_are_reported_on_every_exercise(fixture_batch, student, status, check, words):
    for name in NAMES:
        assert_outcome(fixture_batch, student, name, status, check, *words)
    assert fixture_batch[1][student]["total"] == 0


def test_syntax_error_in_one_exercise_leaves_the_others_graded(fixture_batch):
    assert_outcome(fixture_batch, "syntax_error", "standardize_rows", "error", "cell", "SyntaxError", "line 3")
    assert_outcome(fixture_batch, "syntax_error", "add_arrays", "pass")
    assert_outcome(fixture_batch, "syntax_error", "count_positive", "pass")


def test_infinite_loop_times_out(fixture_batch):
    assert_outcome(fixture_batch, "infinite_loop", "add_arrays", "timeout", "time", f"{TIMEOUT:g} s", "endless loop")
    assert_outcome(fixture_batch, "infinite_loop", "count_positive", "pass")


def test_memory_bomb_hits_the_memory_limit(fixture_batch):
    assert_outcome(fixture_batch, "memory_bomb", "count_positive", "error", "memory", f"{MEMORY_MB} MiB")
    assert_outcome(fixture_batch, "memory_bomb", "add_arrays", "pass")


@pytest.mark.parametrize(
    "student, name, check, words",
    [
        ("sys_exit", "standardize_rows", "runs", ["sys.exit()"]),
        ("exit_builtin", "add_arrays", "cell", ["sys.exit() or exit()"]),
        ("os_exit", "standardize_rows", "runs", ["exit code 0", "os._exit()"]),
        ("killed", "count_positive", "runs", ["SIGKILL"]),
        ("calls_input", "count_positive", "runs", ["input()", "stdin is closed"]),
        ("notebook_global", "add_arrays", "runs", ["`offset`", "another cell"]),
    ],
)
def test_code_that_stops_or_escapes_python_is_an_error(fixture_batch, student, name, check, words):
    assert_outcome(fixture_batch, student, name, "error", check, *words)
    others = [n for n in NAMES if n != name]
    assert all(outcome(fixture_batch, student, n)["status"] == "pass" for n in others)


def test_moved_cells(fixture_batch):
    assert_outcome(fixture_batch, "deleted_cell", "add_arrays", "missing", "exists", "# EXERCISE: add_arrays")
    assert_outcome(fixture_batch, "duplicated_cell", "count_positive", "pass", None, "appears 2 times")
    assert_outcome(fixture_batch, "markdown_cell", "standardize_rows", "pass", None, "turned into a markdown cell")
    assert_outcome(fixture_batch, "reordered", "count_positive", "pass", None, "out of the lab's order")
    assert_outcome(fixture_batch, "marker_deleted", "add_arrays", "pass", None, "line `# EXERCISE: add_arrays` is missing")
    assert_outcome(fixture_batch, "check_in_cell", "add_arrays", "pass")  # a check call left in the cell is harmless


@pytest.mark.parametrize(
    "student, name, check, words",
    [
        ("renamed_function", "add_arrays", "exists", ["`add_array`", "did you rename it"]),
        ("wrong_shape", "standardize_rows", "shape", ["shape is", "expected", "Hint"]),
        ("wrong_dtype", "standardize_rows", "dtype", ["float64", "expected float32"]),
        ("nan_inf", "standardize_rows", "finite", ["nan", "division by 0"]),
        ("mutated_input", "add_arrays", "mutation", ["'a'", "in place"]),
        ("wrong_values", "count_positive", "values", ["expected", "Inputs: x="]),
        ("not_done", "add_arrays", "runs", ["not done yet"]),
    ],
)
def test_wrong_answers_fail_with_the_first_failing_check(fixture_batch, student, name, check, words):
    assert_outcome(fixture_batch, student, name, "fail", check, *words)


def test_output_is_capped_and_stderr_ignored(fixture_batch):
    assert_outcome(fixture_batch, "huge_print", "count_positive", "pass", None, "only the first")
    assert fixture_batch[1]["huge_print"]["total"] == 3
    assert_outcome(fixture_batch, "stderr_noise", "add_arrays", "pass")
    assert "noise noise" not in (fixture_batch[2] / "feedback" / "stderr_noise.md").read_text()


@pytest.mark.parametrize(
    "student, name, words",
    [
        ("tamper_allclose", "standardize_rows", ["replaced `numpy.allclose`"]),
        ("tamper_write_grades", "add_arrays", ["writing", "grades.csv"]),
        ("tamper_read_solutions", "count_positive", ["a folder the grader protects"]),
        ("tamper_kill_grader", "add_arrays", ["sending a signal to process"]),
        ("tamper_subprocess", "count_positive", ["starting another program"]),
        ("tamper_proc", "standardize_rows", ["/proc/", "a folder the grader protects"]),
    ],
)
def test_tampering_is_caught_and_scores_zero(fixture_batch, student, name, words):
    got = assert_outcome(fixture_batch, student, name, "fail", "tampering", *words)
    assert got["points"] == 0


@pytest.mark.parametrize("student", ["uses_reference", "calls_reference"])
def test_the_library_holds_no_answer_to_borrow(fixture_batch, student):
    # The library's exercise functions are contracts: importing or calling one is "not done".
    got = assert_outcome(fixture_batch, student, "count_positive", "fail", "runs", "not done yet")
    assert got["points"] == 0


def test_tampering_changes_no_other_grade(fixture_batch):
    out = fixture_batch[2]
    rows = {row["student"]: row for row in csv.DictReader(open(out / "grades.csv"))}
    assert rows["good"]["total"] == "3"
    assert rows["tamper_write_grades"]["total"] == "2"


def test_outputs_cover_every_student(fixture_batch):
    report, results, out = fixture_batch
    students = sorted(p.stem for p in FIXTURES.glob("*.ipynb") if report.sandbox or p.stem not in HOSTILE)
    students += ["fifo", "zero", "caf\ufffd", "=1+2", ".hidden", "empty_folder", "deep_json", "two_notebooks"]
    assert sorted(results) == sorted(students)
    rows = list(csv.DictReader(open(out / "grades.csv", encoding="utf-8")))
    assert len(rows) == len(students)
    assert set(rows[0]) == {"student", *NAMES, "total", "max"}
    for student in students:
        text = (out / results[student]["feedback"]).read_text()
        assert text.startswith(f"# Lab {LAB} feedback for {escape_markdown(student)}")
        assert str(results[student]["exercises"]["add_arrays"]["seed"]) not in text  # seeds stay hidden
    summary = grade.summary(report, report.submissions)
    assert f"Graded {len(students)} submission(s) of lab {LAB}" in summary


# ----------------------------------------------------------------------------- hostile and odd submissions
ATTACKED = {"hostile_pidfd_kill": ["add_arrays"], "hostile_forged_fd": ["count_positive"],
            "hostile_rlimit": ["standardize_rows"], "hostile_disk": ["count_positive"],
            "hostile_fork_bomb": ["count_positive"], "hostile_proc_memory": ["standardize_rows"]}


@pytest.mark.parametrize("student", HOSTILE)
def test_a_submission_with_no_code_scores_zero_whatever_it_does(fixture_batch, student):
    sandboxed_only(fixture_batch)
    for name in ATTACKED.get(student, NAMES):
        assert outcome(fixture_batch, student, name)["points"] == 0, (name, outcome(fixture_batch, student, name))


def test_the_sandbox_shows_no_solutions_output_or_submissions(fixture_batch):
    sandboxed_only(fixture_batch)
    got = assert_outcome(fixture_batch, "hostile_look_around", "count_positive", "fail", "type", "returned None")
    assert "visible: [False, False, False, False, False]" in got["output"]
    assert "grader files: []" in got["output"]  # the grader's private folder and its results are not there
    got = assert_outcome(fixture_batch, "hostile_clear_hooks", "add_arrays", "fail", "type", "returned None")
    assert "No such file or directory" in got["output"] and "99_tiny" not in got["output"]


def test_other_processes_memory_and_files_stay_closed(fixture_batch):
    sandboxed_only(fixture_batch)
    got = assert_outcome(fixture_batch, "hostile_proc_memory", "standardize_rows", "fail", "type", "returned None")
    assert "done looking" in got["output"] and "opened" not in got["output"], got["output"]


def test_patching_the_worker_forges_nothing(fixture_batch):
    sandboxed_only(fixture_batch)
    for name in NAMES:
        assert_outcome(fixture_batch, "hostile_patch_worker", name, "error", "result", "not a result")


def test_a_forged_result_on_an_inherited_descriptor_is_that_students_error(fixture_batch):
    sandboxed_only(fixture_batch)
    assert_outcome(fixture_batch, "hostile_forged_fd", "count_positive", "error", "result", "not a result")
    assert_outcome(fixture_batch, "hostile_forged_fd", "add_arrays", "pass")


def test_killing_with_pidfd_reaches_only_itself(fixture_batch):
    sandboxed_only(fixture_batch)
    assert_outcome(fixture_batch, "hostile_pidfd_kill", "add_arrays", "error", "runs", "SIGKILL")
    assert fixture_batch[1]["good"]["total"] == 3


def test_forked_processes_die_with_the_exercise(fixture_batch):
    sandboxed_only(fixture_batch)
    assert_outcome(fixture_batch, "hostile_fork_survivor", "add_arrays", "fail", "tampering", "starting another process")
    left = subprocess.run(["pgrep", "-f", "sleep 1234.5"], capture_output=True, text=True).stdout.split()
    assert left == [], left


def test_processes_are_capped_and_die_with_the_exercise(fixture_batch):
    sandboxed_only(fixture_batch)
    got = assert_outcome(fixture_batch, "hostile_fork_bomb", "count_positive", "fail", "tampering", "starting another process")
    group = runner.make_pids_cgroup("gan-course-grade-probe")
    runner.remove_cgroup(group)
    if group is not None:
        assert "fork refused after" in got["output"], got  # the slot's pids cgroup


def test_limits_are_hard(fixture_batch):
    sandboxed_only(fixture_batch)
    assert_outcome(fixture_batch, "hostile_rlimit", "standardize_rows", "error", "runs", "ValueError", "not allowed to raise")
    assert_outcome(fixture_batch, "hostile_disk", "count_positive", "error", "runs", "File too large")


@pytest.mark.parametrize(
    "student, words",
    [
        ("fifo", ["a named pipe"]),
        ("zero", ["symbolic link"]),
        ("deep_json", ["nested more than 64 levels"]),
        ("empty_folder", ["has no notebook"]),
    ],
)
def test_files_that_are_not_notebooks_are_reported(fixture_batch, student, words):
    for name in NAMES:
        assert_outcome(fixture_batch, student, name, "error", "notebook", *words)


def test_odd_names_and_encodings_still_grade(fixture_batch):
    results = fixture_batch[1]
    for student in ("caf\ufffd", "=1+2", ".hidden", "lone_surrogate"):
        assert results[student]["total"] == 3, (student, results[student])
    rows = {row["student"]: row for row in csv.DictReader(open(fixture_batch[2] / "grades.csv", encoding="utf-8"))}
    assert rows["'=1+2"]["total"] == "3"  # a spreadsheet reads it as text, not a formula
    assert "=1+2" not in rows
    skipped = json.loads((fixture_batch[2] / "results.json").read_text())["skipped"]
    assert any(".ipynb_checkpoints" in s for s in skipped) and any("notes.txt" in s for s in skipped)


def test_lone_surrogates_from_a_child_are_that_students_text_only(fixture_batch):
    got = assert_outcome(fixture_batch, "surrogate_message", "add_arrays", "error", "runs", "ValueError", "a lone surrogate")
    assert "\ufffd" in got["message"]
    assert "a lone surrogate" in (fixture_batch[2] / "feedback" / "surrogate_message.md").read_text(encoding="utf-8")


def test_a_scratch_copy_never_shadows_the_marked_cell(fixture_batch):
    assert_outcome(fixture_batch, "scratch_copy", "add_arrays", "pass", None, "in its metadata but not the line")


def test_two_notebooks_in_a_folder_grade_the_batchs_lab(fixture_batch):
    got = fixture_batch[1]["two_notebooks"]
    assert got["total"] == 3 and got["notebook"].endswith("99_tiny.ipynb")
    assert any("graded `99_tiny.ipynb` (lab 99), not `98_other.ipynb`" in n for n in got["notes"])


def rendered_outside_code(markdown: str) -> str:
    """The Markdown a reader sees as formatted text: fenced blocks and code spans removed."""
    import re

    kept, fence = [], None
    for line in markdown.split("\n"):
        mark = re.match(r"^(`{3,})", line)
        if fence is None and mark:
            fence = mark.group(1)
        elif fence is not None and line.strip() == fence:
            fence = None
        elif fence is None:
            kept.append(re.sub(r"`[^`]+`", "", line.replace("\\`", "")))
    return "\n".join(kept)


def test_feedback_escapes_student_text(fixture_batch):
    assert_outcome(fixture_batch, "markdown_injection", "count_positive", "error", "runs", "ValueError")
    text = (fixture_batch[2] / "feedback" / "markdown_injection.md").read_text()
    assert text.split("\n")[2] == "**Score: 2 / 3** (67%)"
    shown = rendered_outside_code(text)
    assert shown.count("**Score:") == 1
    assert "<img" not in shown.replace("\\<", "") and "](javascript" not in shown.replace("\\]", "")
    assert "\n# All" not in shown
    assert "````text" in text  # the printed ``` cannot close the block that shows it


# ----------------------------------------------------------------------------- whole-lab runs
def test_solutions_score_full_and_untouched_lab_scores_zero_without_errors(course, tmp_path):
    subs = tmp_path / "subs"
    (subs / "teacher").mkdir(parents=True)  # one folder per student also works
    shutil.copy(course / "solutions" / f"{LAB}_tiny.ipynb", subs / "teacher" / f"{LAB}_tiny.ipynb")
    nbformat.write(release_notebook(tiny_solution_notebook()), subs / "untouched.ipynb")
    run_grade(course, subs, tmp_path / "out", seed=None)
    results = results_of(tmp_path / "out")
    assert results["teacher"]["total"] == 3
    for name in NAMES:
        got = results["untouched"]["exercises"][name]
        assert (got["status"], got["check"], got["points"]) == ("fail", "runs", 0)
        assert "not done yet" in got["message"]


def test_hidden_inputs_change_with_the_seed_and_are_recorded(course, tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(FIXTURES / "good.ipynb", subs / "a.ipynb")
    shutil.copy(FIXTURES / "good.ipynb", subs / "b.ipynb")
    run_grade(course, subs, tmp_path / "out", seed=None)
    results = results_of(tmp_path / "out")
    seeds = {results[s]["exercises"]["add_arrays"]["seed"] for s in ("a", "b")}
    assert len(seeds) == 2
    assert grade.student_seed(7, "a", "add_arrays") == grade.student_seed(7, "a", "add_arrays")


def test_lab_comes_from_the_option_when_metadata_is_missing(course, tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    nb = json.loads((FIXTURES / "good.ipynb").read_text())
    nb["metadata"].pop("gan_course")
    (subs / "anon.ipynb").write_text(json.dumps(nb))
    with pytest.raises(grade.GradeError, match="--lab"):
        run_grade(course, subs, tmp_path / "out")
    run_grade(course, subs, tmp_path / "out", lab=LAB)
    assert results_of(tmp_path / "out")["anon"]["total"] == 3


def test_same_names_and_other_labs_are_kept_apart(course, tmp_path):
    subs = tmp_path / "subs"
    (subs / "alice").mkdir(parents=True)
    shutil.copy(FIXTURES / "good.ipynb", subs / "alice.ipynb")
    nb = json.loads((FIXTURES / "good.ipynb").read_text())
    nb["metadata"]["gan_course"]["lab"] = "98"
    nb["cells"] = [c for c in nb["cells"] if "EXERCISE" not in "".join(c["source"])]
    (subs / "alice" / "98_other.ipynb").write_text(json.dumps(nb))
    with pytest.raises(grade.GradeError, match="several labs"):
        run_grade(course, subs, tmp_path / "out")
    run_grade(course, subs, tmp_path / "out", lab=LAB)
    results = results_of(tmp_path / "out")
    assert results["alice.ipynb"]["total"] == 3
    got = results["alice"]["exercises"]["add_arrays"]
    assert got["status"] == "missing" and "lab 98's, not lab 99's" in got["message"]
    assert (tmp_path / "out" / "feedback" / "alice.md").exists() and (tmp_path / "out" / "feedback" / "alice.ipynb.md").exists()


def test_cli_grades_and_prints_a_summary(course, tmp_path, capsys, monkeypatch):
    from gan_course import cli

    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(FIXTURES / "good.ipynb", subs / "zoe.ipynb")
    monkeypatch.chdir(course)  # the course folder: its solutions/ is the reference
    code = cli.main(["grade", str(subs), "--out", str(tmp_path / "out"), "--workers", "1", "--timeout", "10"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "zoe" in printed and "3/3" in printed and "wrote grades.csv" in printed
    assert (tmp_path / "out" / "feedback" / "zoe.md").exists()


# ----------------------------------------------------------------------------- with and without the sandbox
def test_without_a_sandbox_grading_falls_back_and_says_so(course, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(runner.ENV_SANDBOX, "off")
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("good", "killed", "infinite_loop", "tamper_write_grades", "hostile_disk"):
        text = (FIXTURES / f"{name}.ipynb").read_text().replace("@OUT@", str(tmp_path / "out"))
        (subs / f"{name}.ipynb").write_text(text)
    report = run_grade(course, subs, tmp_path / "out")
    assert "no sandbox" in capsys.readouterr().err
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["sandbox"] is False and report.sandbox is False
    results = data["students"]
    assert results["good"]["total"] == 3
    assert results["killed"]["exercises"]["count_positive"]["status"] == "error"
    assert results["infinite_loop"]["exercises"]["add_arrays"]["status"] == "timeout"
    assert results["tamper_write_grades"]["exercises"]["add_arrays"]["check"] == "tampering"
    disk = results["hostile_disk"]["exercises"]["count_positive"]  # its own folder, under the hard file-size limit
    assert (disk["status"], disk["check"]) == ("error", "runs") and "File too large" in disk["message"]
    with pytest.raises(grade.GradeError, match="--require-sandbox"):
        run_grade(course, subs, tmp_path / "out2", require_sandbox=True)


def test_the_sandbox_is_used_where_it_can_run(course, tmp_path):
    if not sandbox_usable(course):
        pytest.skip("bubblewrap cannot run here: the fallback is tested above")
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(FIXTURES / "good.ipynb", subs / "good.ipynb")
    report = run_grade(course, subs, tmp_path / "out", require_sandbox=True)
    assert report.sandbox is True
    assert json.loads((tmp_path / "out" / "results.json").read_text())["sandbox"] is True


def test_bwrap_binds_no_solutions(tmp_path):
    course = tmp_path / "course"
    (course / "solutions").mkdir(parents=True)
    (course / "lib").mkdir()
    args = runner.bwrap_command([str(course), str(course / "lib")], [str(course / "solutions")])
    sources = [args[i + 1] for i, a in enumerate(args) if a in ("--ro-bind", "--bind", "--ro-bind-try")]
    assert str(course / "lib") in sources
    assert not any(str(course) == src or src.startswith(str(course / "solutions")) for src in sources)
    assert "--unshare-all" in args and "--die-with-parent" in args and "--cap-drop" in args


# ----------------------------------------------------------------------------- pieces
def cells(*sources, kinds=None):
    kinds = kinds or ["code"] * len(sources)
    return [grade.Cell(i, k, s, grade.exercise_name(s)) for i, (s, k) in enumerate(zip(sources, kinds))]


def test_setup_code_keeps_imports_and_setup_calls_before_the_first_exercise():
    got = grade.setup_code(cells(
        "%matplotlib inline\nimport numpy as np\nimport gan_course as gc\nP = gc.setup()\ndata = np.ones(3)",
        "from scipy import signal\nplot(data)",
        "# EXERCISE: f\ndef f(): pass",
        "import late",
    ))
    assert got.split("\n")[:-1] == ["import numpy as np", "import gan_course as gc", "P = gc.setup()", "from scipy import signal"]


def test_locate_prefers_the_last_code_copy_and_explains():
    found = grade.locate_exercises(
        cells("# EXERCISE: f\ndef f(): return 1", "# EXERCISE: f\ndef f(): return 2", "# EXERCISE: f\ntext",
              kinds=["code", "code", "markdown"]),
        ["f", "g"],
    )
    assert found["f"].source.endswith("return 2") and "appears 3 times" in found["f"].notes[0]
    assert "g" not in found


def test_read_notebook_reasons(tmp_path):
    bad = tmp_path / "x.ipynb"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(grade.NotebookError, match="not text"):
        grade.read_notebook(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(grade.NotebookError, match="not a Jupyter notebook"):
        grade.read_notebook(bad)


def test_read_notebook_takes_utf16_and_cleans_surrogates(tmp_path):
    nb = json.loads((FIXTURES / "good.ipynb").read_text())
    nb["cells"][2]["source"] = ["# EXERCISE: standardize_rows\n", "x = '\ud800'\n"]
    path = tmp_path / "w.ipynb"
    path.write_bytes(json.dumps(nb).encode("utf-16"))  # with its byte-order mark, as Windows tools write
    got, lab = grade.read_notebook(path)
    assert lab == "99" and got[2].exercise == "standardize_rows" and "\ufffd" in got[2].source


def test_an_exercise_that_calls_a_failed_earlier_one_says_so():
    located = {"f": grade.Located("def f(): ...", 1), "g": grade.Located("def g(x):\n    return f(x) + 1", 2)}
    outcomes = {"f": grade.Outcome("fail", check="values"), "g": grade.Outcome("fail", check="values")}
    grade.note_earlier_failures(["f", "g"], located, outcomes)
    assert "calls your `f`, which did not pass" in outcomes["g"].notes[0] and not outcomes["f"].notes


def test_values_cross_as_arrays_never_as_pickles():
    value = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": (1, 2.5, np.int64(3)), "nan": float("nan"),
             "obj": np.array([object()], dtype=object), 3: [None, "s", True]}
    arrays = {}
    meta = {"runs": [{"seed": 1, "cases": [{"output": wire.encode(value, arrays)}]}]}
    got_meta, got_arrays = wire.unpack_result(wire.pack_result(meta, arrays))  # np.load(allow_pickle=False) inside
    got = wire.decode(got_meta["runs"][0]["cases"][0]["output"], got_arrays)
    assert got["w"].dtype == np.float32 and np.array_equal(got["w"], value["w"])
    assert got["n"] == (1, 2.5, 3) and isinstance(got["n"][2], np.int64)
    assert np.isnan(got["nan"]) and got[3] == [None, "s", True]
    assert isinstance(got["obj"], wire.Opaque) and "objects" in repr(got["obj"])


def test_notebook_check_and_grader_share_one_verdict():
    from gan_course import verdict

    def cases(rng):
        return [{"x": rng.normal(size=n).astype(np.float32)} for n in (1, 3, 4, 7, 9)]

    ex = checks.Exercise("double_it", "99", contract=lambda x: 2 * x, cases=cases, hint="multiply by 2", inline=True)
    case = cases(np.random.default_rng(0))[0]
    wrong = lambda x: 3 * x  # noqa: E731
    in_notebook = checks.run_checks(ex, wrong, [case])
    in_grader = verdict.case_problem(2 * case["x"], wrong(**case), case, ex)
    assert (in_notebook.layer, in_notebook.message) == in_grader
    assert in_grader[1].endswith("Hint: multiply by 2")

    def not_done(x):
        raise NotImplementedError()

    assert checks.run_checks(ex, not_done, [case]).message == verdict.NOT_DONE
    assert verdict.explain_error({"type": "NotImplementedError", "message": ""}, "double_it") == ("fail", "runs", verdict.NOT_DONE)
    assert checks.compare is verdict.compare and checks.CheckResult is verdict.CheckResult


def test_feedback_reads_well():
    outcomes = {
        "f": grade.Outcome("pass", 1, None, "all 5 hidden test cases match the reference."),
        "g": grade.Outcome("fail", 0, "shape", "shape is (3,); expected (3, 1).", notes=["moved"], output="hello\n"),
    }
    text = grade.feedback_markdown("ann", "02", ["f", "g"], outcomes, 2)
    assert "**Score: 1 / 2** (50%)" in text
    assert "| `g` | ✗ fail | 0 |" in text
    assert "**Check that failed:** shape" in text and "hello" in text and "- Moved" in text


# ----------------------------------------------------------------------------- languages
HAN = re.compile(r"[\u4e00-\u9fff]")


def _with_wrong_count(language: str):
    """The tiny lab's solution in `language`, with count_positive off by one (a `values` failure)."""
    nb = tiny_solution_notebook()
    nb.metadata["gan_course"]["language"] = language
    for cell in nb.cells:
        if cell.source.startswith("# EXERCISE: count_positive"):
            cell.source = cell.source.replace("return int(np.sum(x > 0))", "return int(np.sum(x > 0)) + 1")
    return nb


def test_each_student_gets_feedback_in_the_language_of_their_notebook(course, tmp_path, monkeypatch):
    monkeypatch.setenv(i18n.ENV_LANG, "en")  # the instructor's language
    subs, out = tmp_path / "subs", tmp_path / "out"
    (subs / "zhao").mkdir(parents=True)
    nbformat.write(_with_wrong_count("zh"), subs / "wang.ipynb")
    nbformat.write(_with_wrong_count("en"), subs / "ann.ipynb")
    nbformat.write(_with_wrong_count("zh"), subs / "zhao" / f"{LAB}_tiny.ipynb")
    other = _with_wrong_count("zh")
    other.metadata["gan_course"]["lab"] = "98"
    nbformat.write(other, subs / "zhao" / "98_other.ipynb")
    report = run_grade(course, subs, out)
    results = results_of(out)
    assert {s: results[s]["language"] for s in results} == {"wang": "zh", "ann": "en", "zhao": "zh"}
    for student in results:  # machine-readable: English keys, statuses and checks in every language
        assert results[student]["total"] == 2
        got = results[student]["exercises"]["count_positive"]
        assert (got["status"], got["check"]) == ("fail", "values")
        assert bool(HAN.search(got["message"])) == (results[student]["language"] == "zh"), got

    chinese = (out / "feedback" / "wang.md").read_text(encoding="utf-8")
    assert chinese.startswith(f"# 实验 {LAB}：给 wang 的反馈")
    assert "**得分：2 / 3**（67%）" in chinese and "| 练习 | 结果 | 得分 |" in chinese
    assert "| `add_arrays` | ✓ 通过 | 1 |" in chinese and "## ✓ `add_arrays`：通过" in chinese
    assert "全部 5 个隐藏测试用例都与参考答案一致。" in chinese
    assert "## ✗ `count_positive`：未通过" in chinese and "**未通过的检查：** 数值" in chinese
    assert "返回了" in chinese and "输入：x=" in chinese
    assert not any(word in chinese for word in ("Score", "Check that failed", "Inputs", "hidden test"))
    folder = (out / "feedback" / "zhao.md").read_text(encoding="utf-8")
    assert f"你的文件夹中有 2 个笔记本；评分的是 `{LAB}_tiny.ipynb`（实验 {LAB}），而不是 `98_other.ipynb`。" in folder

    english = (out / "feedback" / "ann.md").read_text(encoding="utf-8")
    assert english.startswith(f"# Lab {LAB} feedback for ann") and "**Score: 2 / 3** (67%)" in english
    assert "## ✓ `add_arrays`: pass" in english and "**Check that failed:** values" in english
    assert "Inputs: x=" in english and not HAN.search(english)

    # The summary is the instructor's: English here, Chinese for a Chinese-speaking instructor.
    assert "Graded 3 submission(s)" in grade.summary(report, report.submissions)
    with i18n.using("zh"):
        assert f"已批改实验 {LAB} 的 3 份提交" in grade.summary(report, report.submissions)


# ----------------------------------------------------------------------------- the real labs
REAL_LABS = sorted(p for p in (ROOT / "solutions").glob("0[1-7]_*.ipynb"))


@pytest.mark.real_lab
@pytest.mark.parametrize("solution", REAL_LABS, ids=[p.stem for p in REAL_LABS])
def test_real_lab_solution_full_marks_and_untouched_lab_zero(solution, tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(solution, subs / "solution.ipynb")
    student_copy = ROOT / "labs" / solution.name
    if student_copy.exists():
        shutil.copy(student_copy, subs / "untouched.ipynb")
    else:  # not released yet: the copy `gan-course release` would write
        nbformat.write(release_notebook(nbformat.read(solution, as_version=4)), subs / "untouched.ipynb")
    # One worker: TensorFlow is imported once, and the three notebooks grade in a row.
    report = grade.grade(subs, tmp_path / "out", workers=1, root=ROOT, timeout=60, progress=False)
    results = results_of(tmp_path / "out")
    assert report.names and results["solution"]["total"] == report.maximum, results["solution"]
    for name, got in results["untouched"]["exercises"].items():
        assert (got["status"], got["check"], got["points"]) == ("fail", "runs", 0), (name, got)
        assert "not done yet" in got["message"], (name, got)


def _lab01_submission(notebook: Path) -> nbformat.NotebookNode:
    """Lab 01 as a student hands it in: `optimal_discriminator` pasted from the solution, a wrong
    `js_divergence` (ones instead of the divergence), the other exercises untouched."""
    solution = nbformat.read(ROOT / "solutions" / "01_gan_intuition.ipynb", as_version=4)
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        first = cell.source.split("\n", 1)[0]
        if first == "# EXERCISE: optimal_discriminator":
            cell.source = next(c.source for c in solution.cells if c.source.split("\n", 1)[0] == first)
        elif first == "# EXERCISE: js_divergence":
            cell.source = cell.source.replace("raise NotImplementedError()", "return np.ones(np.shape(p)[0], np.float32)")
    return nb


@pytest.mark.real_lab
@pytest.mark.skipif(not (ROOT / "labs" / "zh" / "01_gan_intuition.ipynb").exists(), reason="no Chinese lab 01")
def test_real_lab_chinese_and_english_twins_get_feedback_in_their_language(tmp_path, monkeypatch):
    monkeypatch.delenv(i18n.ENV_LANG, raising=False)
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    nbformat.write(_lab01_submission(ROOT / "labs" / "zh" / "01_gan_intuition.ipynb"), subs / "li_hua.ipynb")
    nbformat.write(_lab01_submission(ROOT / "labs" / "01_gan_intuition.ipynb"), subs / "alice.ipynb")
    with i18n.using("en"):  # the instructor's language
        grade.grade(subs, out, workers=1, root=ROOT, timeout=60, progress=False)
    results = results_of(out)
    assert (results["li_hua"]["language"], results["alice"]["language"]) == ("zh", "en")
    for student in ("li_hua", "alice"):
        got = results[student]["exercises"]
        assert got["optimal_discriminator"]["status"] == "pass", got
        assert (got["js_divergence"]["status"], got["js_divergence"]["check"]) == ("fail", "values"), got
        assert results[student]["total"] == 1

    chinese = (out / "feedback" / "li_hua.md").read_text(encoding="utf-8")
    assert chinese.startswith("# 实验 01：给 li\\_hua 的反馈")
    assert "## ✓ `optimal_discriminator`：通过" in chinese
    assert "## ✗ `js_divergence`：未通过" in chinese and "**未通过的检查：** 数值" in chinese
    assert "数值不一致" in chinese and "提示：" in chinese
    assert "**未通过的检查：** 运行" in chinese and "尚未完成" in chinese
    english = (out / "feedback" / "alice.md").read_text(encoding="utf-8")
    assert "## ✓ `optimal_discriminator`: pass" in english
    assert "**Check that failed:** values" in english and "Values differ" in english and "Not done yet" in english
    assert not HAN.search(english)
