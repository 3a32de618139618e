"""Judging, in the trusted parent: a status and one message per exercise of each submission.

The child's result is first checked against the schema (`wire.unpack_result`); then the
layers run in the verdict module's order, with the verdict module's messages (the same
ones `gc.check` prints in the notebook).

Statuses: ``pass``; ``fail`` (ran, but not right: not done, wrong name or signature,
wrong values, mutated input, tampering); ``error`` (the code crashed: an exception, a
syntax error, sys.exit, the memory limit, a killed process, an unreadable notebook, a
result that is not one); ``timeout``; ``missing`` (no cell for the exercise).

Every message is built in the current language: the grader judges each submission inside
``with i18n.using(its language):``.  Statuses and check names stay English in results.json
(machine-readable); the feedback shows them translated (`status_name`, `check_name`).
"""
from __future__ import annotations

import re
import signal
from dataclasses import dataclass, field

import numpy as np

from gan_course import verdict
from gan_course.i18n import N_, _
from gan_course.grader.locate import Located, assigned_names
from gan_course.grader.read import Submission
from gan_course.grader.wire import SchemaError, decode, unpack_result

STATUSES = ("pass", "fail", "error", "timeout", "missing")
# The statuses and the grader's own checks (besides the verdict's layers) as a student reads them.
STATUS_NAMES = (N_("pass"), N_("fail"), N_("error"), N_("timeout"), N_("missing"))
CHECK_NAMES = (N_("notebook"), N_("cell"), N_("setup"), N_("memory"), N_("time"), N_("result"), N_("tampering"),
               N_("grader"))
RESULTS_OUTPUT_CHARS = 2000


@dataclass
class Outcome:
    status: str
    points: float = 0.0
    check: str | None = None
    message: str = ""
    seed: int | None = None
    notes: list[str] = field(default_factory=list)
    output: str = ""
    seconds: float | None = None

    def as_dict(self) -> dict:
        return {
            "status": self.status, "points": self.points, "check": self.check, "message": self.message,
            "seed": self.seed, "notes": self.notes, "seconds": self.seconds,
            "output": self.output[:RESULTS_OUTPUT_CHARS],
        }


def status_name(status: str) -> str:
    """A status in the current language (results.json keeps the English word)."""
    return _(status) if status in STATUSES else status


def check_name(check: str) -> str:
    """A check's name in the current language (results.json keeps the English word)."""
    return _(check) if check in verdict.LAYERS or check in CHECK_NAMES else check


def signal_name(number) -> str:
    try:
        return signal.Signals(int(number)).name
    except (ValueError, TypeError):
        return _("signal {number}").format(number=number)


def _where(stage: str) -> str:
    found = re.fullmatch(r"case (\d+) of (\d+)", stage)
    if found:
        return _("your function was running (test case {index} of {count})").format(
            index=found.group(1), count=found.group(2))
    if stage.startswith("case"):
        return _("your function was running (test cases)")
    return {"setup": _("the lab's setup code was running"), "cell": _("the exercise cell was running")}.get(
        stage, _("the exercise was starting")
    )


def expected_by_seed(meta, arrays) -> dict:
    """seed -> [(ran, expected value) per case] from the reference's result."""
    by_seed = {}
    for run in meta.get("runs", []):
        by_seed[run["seed"]] = [
            (True, decode(e["output"], arrays)) if "output" in e and "describe_error" not in e else (False, None)
            for e in run["cases"]
        ]
    return by_seed


def reference_expected(name: str, got) -> tuple[dict | None, str | None]:
    """The reference's expected values for one exercise, or why there are none."""
    header, blob = got if got else (None, b"")
    try:
        meta, arrays = unpack_result(blob)
    except SchemaError as err:
        detail = _(" (it timed out)") if header and header.get("timed_out") else f" ({err})"
        return None, _("the reference solution of `{name}` could not be run{detail}; tell the instructor.").format(
            name=name, detail=detail)
    problem = meta.get("error") or meta.get("internal")
    if problem or meta.get("missing") is not None or meta.get("signature"):
        detail = f" ({problem.get('type')}: {problem.get('message')})" if problem else ""
        return None, _("the reference solution of `{name}` could not be run{detail}; tell the instructor.").format(
            name=name, detail=detail)
    return expected_by_seed(meta, arrays), None


def judge(ex, name: str, sub: Submission, located: Located | None, seed: int, got, expected: dict | None,
          reference_problem: str | None, limits: dict) -> Outcome:
    """The outcome of one exercise of one submission, from what its process sent back."""
    points = float(getattr(ex, "points", 1))
    if sub.problem is not None:
        name_shown = sub.path.name if sub.path else f"{sub.student}/"
        end = "" if sub.problem.endswith(("?", ".", "？", "。")) else _(".")
        return Outcome("error", check="notebook", message=_("`{file}` {problem}{end}").format(
            file=name_shown, problem=sub.problem, end=end))
    if located is None:
        if not sub.cells:
            return Outcome("missing", check="exists", message=_("your notebook is empty: it has no cells."))
        other_lab = (_("this notebook is lab {lab}'s, not lab {wanted}'s: ").format(lab=sub.lab, wanted=limits["lab"])
                     if sub.lab and sub.lab != limits["lab"] else "")
        return Outcome(
            "missing", check="exists",
            message=_("{other_lab}no cell starts with `# EXERCISE: {name}`: the exercise cell was deleted or its "
                      "first line changed. Copy the cell back from the lab and put your code in it.").format(
                other_lab=other_lab, name=name),
        )
    out = Outcome("error", seed=seed, notes=list(located.notes))
    if not got:
        out.check, out.message = "runs", _("the grading process for your notebook stopped before this exercise ran.")
        return out
    header, blob = got
    out.output = str(header.get("output", ""))[:verdict_output_cap(limits)]
    seconds = header.get("seconds")
    out.seconds = float(seconds) if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else None
    stage = str(header.get("last_stage", ""))
    if header.get("timed_out") is True or header.get("signal") == signal.SIGXCPU:
        out.status, out.check = "timeout", "time"
        out.message = _(
            "did not finish within the time limit of {seconds:g} s; it was stopped while "
            "{where}. Look for an endless loop (a `while` whose condition never turns false)."
        ).format(seconds=limits["timeout"], where=_where(stage))
        return out
    if header.get("signal"):
        out.check = "runs"
        out.message = _(
            "the exercise's process was killed by {signal} while {where} "
            "(os.kill, or a crash inside compiled code); grading carried on without it."
        ).format(signal=signal_name(header["signal"]), where=_where(stage))
        return out
    if not blob:
        out.check = "runs"
        if header.get("result_bytes", 0):
            out.check = "memory"
            out.message = _("`{name}` returned a result too large to compare (over 64 MiB).").format(name=name)
            return out
        out.message = _(
            "the exercise's process ended (exit code {code}) while {where}, before the "
            "grader got a result: a call to os._exit()? Return a value instead."
        ).format(code=header.get("exit"), where=_where(stage))
        return out
    try:
        meta, arrays = unpack_result(blob)
    except SchemaError as err:
        out.check = "result"
        out.message = _("the exercise's process sent back something that is not a result ({error}); it was not "
                        "graded.").format(error=err)
        return out
    dropped = meta.get("stdout_dropped", 0)
    output_bytes = header.get("output_bytes", 0) if isinstance(header.get("output_bytes"), int) else 0
    if dropped or output_bytes > limits["output_cap"]:
        printed = max(output_bytes, len(out.output) + dropped)
        out.notes.append(_("it printed {printed:,} characters; only the first {kept:,} were kept.").format(
            printed=printed, kept=limits["output_cap"]))
    if meta.get("internal"):
        out.check = "grader"
        out.message = _("the grader itself failed on this exercise ({kind}: {text}); tell the instructor.").format(
            kind=meta["internal"].get("type"), text=meta["internal"].get("message"))
        return out

    # Tampering first: a refused action also surfaces as an error in the code.
    tampering = [_("tried {what}").format(what=what) for what in meta.get("refusals", [])]
    for helper in meta.get("replaced", []):
        tampering.append(_("replaced `{helper}` (the grader compares in its own process, so this changes "
                           "nothing)").format(helper=helper))
    if tampering:
        out.status, out.check = "fail", "tampering"
        out.message = _("; ").join(dict.fromkeys(tampering)) + _(".")
        return out

    other_cells = set()
    for cell in sub.cells:
        if cell.cell_type == "code" and cell.index != located.cell:
            other_cells |= assigned_names(cell.source)
    if meta.get("earlier_failed"):
        out.notes.append(
            _("earlier exercise(s) this one may call could not be run from your notebook: {names}.").format(
                names=_(", ").join(f"`{n}`" for n in meta["earlier_failed"]))
        )
    if meta.get("error"):
        if meta.get("stage") == "setup":
            out.check = "setup"
            out.message = _("the lab's setup code failed ({kind}: {text}); tell the instructor.").format(
                kind=meta["error"].get("type"), text=meta["error"].get("message"))
            return out
        out.status, out.check, out.message = verdict.explain_error(meta["error"], name, other_cells, limits["memory_mb"], True)
        return out
    if meta.get("missing") is not None:
        out.status, out.check = "fail", "exists"
        out.message = verdict.missing_message(name, meta["missing"].get("kind"), meta["missing"].get("defined", []))
        return out
    if meta.get("signature"):
        out.status, out.check, out.message = "fail", "signature", meta["signature"]
        return out
    if reference_problem:
        out.check, out.message = "grader", reference_problem
        return out

    cases = ex.cases(np.random.default_rng(seed))
    runs = {run["seed"]: run["cases"] for run in meta.get("runs", [])}
    got_cases = runs.get(seed, [])
    expected_cases = expected.get(seed) if expected else None
    if expected_cases is None:
        out.check, out.message = "grader", _("the reference solution gave no result for these inputs; tell the instructor.")
        return out
    for index, case in enumerate(cases):
        if index >= len(got_cases):
            out.check, out.message = "runs", _("the grader received no result for some test cases; tell the instructor.")
            return out
        entry = got_cases[index]
        inputs = _(" Inputs: {inputs}.").format(inputs=verdict.describe_case(case))
        if "error" in entry:
            out.status, out.check, out.message = verdict.explain_error(entry["error"], name, other_cells, limits["memory_mb"], False)
            if out.check == "runs" and out.status == "error":
                out.message += inputs
            return out
        if "describe_error" in entry:
            info = entry["describe_error"]
            out.status, out.check = "fail", "type"
            out.message = _("the result could not be read as the exercise expects ({kind}: {text}).{inputs}").format(
                kind=info.get("type"), text=info.get("message"), inputs=inputs)
            return out
        reference_ok, expected_value = expected_cases[index] if index < len(expected_cases) else (False, None)
        if not reference_ok:
            out.check, out.message = "grader", _("the reference solution failed on these inputs; tell the instructor.")
            return out
        try:
            got_value = decode(entry.get("output"), arrays)
            after = decode(entry.get("after"), arrays)
            key = None
            if isinstance(after, dict):
                try:
                    key = verdict.mutated_key(after, verdict.snapshot(case))
                except Exception:  # noqa: BLE001 - an input that cannot be compared was changed
                    key = next(iter(case), None)
            problem = verdict.case_problem(expected_value, got_value, case, ex, key)
        except SchemaError as err:
            problem = ("type", _("returned a value the grader cannot read ({error}).{inputs}").format(error=err, inputs=inputs))
        if problem is not None:
            out.status, (out.check, out.message) = "fail", problem
            return out
    out.status, out.check, out.points = "pass", None, points
    out.message = verdict.passed_message(len(cases), hidden=True)
    return out


def verdict_output_cap(limits: dict) -> int:
    return int(limits.get("output_cap", 20_000))
