"""Judging, in the trusted parent: a status and one message per exercise of each submission.

The child's result is first checked against the schema (`wire.unpack_result`); then the
layers run in the verdict module's order, with the verdict module's messages (the same
ones `gc.check` prints in the notebook).

Statuses: ``pass``; ``fail`` (ran, but not right: not done, wrong name or signature,
wrong values, mutated input, tampering); ``error`` (the code crashed: an exception, a
syntax error, sys.exit, the memory limit, a killed process, an unreadable notebook, a
result that is not one); ``timeout``; ``missing`` (no cell for the exercise).
"""
from __future__ import annotations

import signal
from dataclasses import dataclass, field

import numpy as np

from gan_course import verdict
from gan_course.grader.locate import Located, assigned_names
from gan_course.grader.read import Submission
from gan_course.grader.wire import SchemaError, decode, unpack_result

STATUSES = ("pass", "fail", "error", "timeout", "missing")
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


def signal_name(number) -> str:
    try:
        return signal.Signals(int(number)).name
    except (ValueError, TypeError):
        return f"signal {number}"


def _where(stage: str) -> str:
    if stage.startswith("case"):
        return f"your function was running ({stage.replace('case', 'test case')})"
    return {"setup": "the lab's setup code was running", "cell": "the exercise cell was running"}.get(
        stage, "the exercise was starting"
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
        detail = " (it timed out)" if header and header.get("timed_out") else f" ({err})"
        return None, f"the reference solution of `{name}` could not be run{detail}; tell the instructor."
    problem = meta.get("error") or meta.get("internal")
    if problem or meta.get("missing") is not None or meta.get("signature"):
        detail = f" ({problem.get('type')}: {problem.get('message')})" if problem else ""
        return None, f"the reference solution of `{name}` could not be run{detail}; tell the instructor."
    return expected_by_seed(meta, arrays), None


def judge(ex, name: str, sub: Submission, located: Located | None, seed: int, got, expected: dict | None,
          reference_problem: str | None, limits: dict) -> Outcome:
    """The outcome of one exercise of one submission, from what its process sent back."""
    points = float(getattr(ex, "points", 1))
    if sub.problem is not None:
        name_shown = sub.path.name if sub.path else f"{sub.student}/"
        end = "" if sub.problem.endswith(("?", ".")) else "."
        return Outcome("error", check="notebook", message=f"`{name_shown}` {sub.problem}{end}")
    if located is None:
        if not sub.cells:
            return Outcome("missing", check="exists", message="your notebook is empty: it has no cells.")
        other_lab = f"this notebook is lab {sub.lab}'s, not lab {limits['lab']}'s: " if sub.lab and sub.lab != limits["lab"] else ""
        return Outcome(
            "missing", check="exists",
            message=f"{other_lab}no cell starts with `# EXERCISE: {name}`: the exercise cell was deleted or its "
            "first line changed. Copy the cell back from the lab and put your code in it.",
        )
    out = Outcome("error", seed=seed, notes=list(located.notes))
    if not got:
        out.check, out.message = "runs", "the grading process for your notebook stopped before this exercise ran."
        return out
    header, blob = got
    out.output = str(header.get("output", ""))[:verdict_output_cap(limits)]
    seconds = header.get("seconds")
    out.seconds = float(seconds) if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else None
    stage = str(header.get("last_stage", ""))
    if header.get("timed_out") is True or header.get("signal") == signal.SIGXCPU:
        out.status, out.check = "timeout", "time"
        out.message = (
            f"did not finish within the time limit of {limits['timeout']:g} s; it was stopped while "
            f"{_where(stage)}. Look for an endless loop (a `while` whose condition never turns false)."
        )
        return out
    if header.get("signal"):
        out.check = "runs"
        out.message = (
            f"the exercise's process was killed by {signal_name(header['signal'])} while {_where(stage)} "
            "(os.kill, or a crash inside compiled code); grading carried on without it."
        )
        return out
    if not blob:
        out.check = "runs"
        if header.get("result_bytes", 0):
            out.check = "memory"
            out.message = f"`{name}` returned a result too large to compare (over 64 MiB)."
            return out
        out.message = (
            f"the exercise's process ended (exit code {header.get('exit')}) while {_where(stage)}, before the "
            "grader got a result: a call to os._exit()? Return a value instead."
        )
        return out
    try:
        meta, arrays = unpack_result(blob)
    except SchemaError as err:
        out.check = "result"
        out.message = f"the exercise's process sent back something that is not a result ({err}); it was not graded."
        return out
    dropped = meta.get("stdout_dropped", 0)
    output_bytes = header.get("output_bytes", 0) if isinstance(header.get("output_bytes"), int) else 0
    if dropped or output_bytes > limits["output_cap"]:
        printed = max(output_bytes, len(out.output) + dropped)
        out.notes.append(f"it printed {printed:,} characters; only the first {limits['output_cap']:,} were kept.")
    if meta.get("internal"):
        out.check = "grader"
        out.message = f"the grader itself failed on this exercise ({meta['internal'].get('type')}: {meta['internal'].get('message')}); tell the instructor."
        return out

    # Tampering first: a refused action also surfaces as an error in the code.
    tampering = [f"tried {what}" for what in meta.get("refusals", [])]
    for helper in meta.get("replaced", []):
        tampering.append(f"replaced `{helper}` (the grader compares in its own process, so this changes nothing)")
    if tampering:
        out.status, out.check = "fail", "tampering"
        out.message = "; ".join(dict.fromkeys(tampering)) + "."
        return out

    other_cells = set()
    for cell in sub.cells:
        if cell.cell_type == "code" and cell.index != located.cell:
            other_cells |= assigned_names(cell.source)
    if meta.get("earlier_failed"):
        out.notes.append(
            "earlier exercise(s) this one may call could not be run from your notebook: "
            + ", ".join(f"`{n}`" for n in meta["earlier_failed"]) + "."
        )
    if meta.get("error"):
        if meta.get("stage") == "setup":
            out.check = "setup"
            out.message = f"the lab's setup code failed ({meta['error'].get('type')}: {meta['error'].get('message')}); tell the instructor."
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
        out.check, out.message = "grader", "the reference solution gave no result for these inputs; tell the instructor."
        return out
    for index, case in enumerate(cases):
        if index >= len(got_cases):
            out.check, out.message = "runs", "the grader received no result for some test cases; tell the instructor."
            return out
        entry = got_cases[index]
        inputs = f" Inputs: {verdict.describe_case(case)}."
        if "error" in entry:
            out.status, out.check, out.message = verdict.explain_error(entry["error"], name, other_cells, limits["memory_mb"], False)
            if out.check == "runs" and out.status == "error":
                out.message += inputs
            return out
        if "describe_error" in entry:
            info = entry["describe_error"]
            out.status, out.check = "fail", "type"
            out.message = f"the result could not be read as the exercise expects ({info.get('type')}: {info.get('message')}).{inputs}"
            return out
        reference_ok, expected_value = expected_cases[index] if index < len(expected_cases) else (False, None)
        if not reference_ok:
            out.check, out.message = "grader", "the reference solution failed on these inputs; tell the instructor."
            return out
        try:
            got_value = decode(entry.get("output"), arrays)
            after = decode(entry.get("after"), arrays)
            key = None
            if isinstance(after, dict):
                try:
                    key = verdict._mutated(after, verdict._snapshot(case))
                except Exception:  # noqa: BLE001 - an input that cannot be compared was changed
                    key = next(iter(case), None)
            problem = verdict.case_problem(expected_value, got_value, case, ex, key)
        except SchemaError as err:
            problem = ("type", f"returned a value the grader cannot read ({err}).{inputs}")
        if problem is not None:
            out.status, (out.check, out.message) = "fail", problem
            return out
    out.status, out.check, out.points = "pass", None, points
    out.message = verdict.passed_message(len(cases), hidden=True)
    return out


def verdict_output_cap(limits: dict) -> int:
    return int(limits.get("output_cap", 20_000))
