"""What the grader writes: grades.csv, results.json and feedback/STUDENT.md.

Student text (names, printed output, error messages that quote code) is escaped before
it reaches Markdown, and spreadsheet formula prefixes are neutralised in grades.csv.

Each student's feedback is in the language of that student's notebook (``Submission.lang``,
also ``"language"`` in results.json); grades.csv and results.json's keys and status words
stay English for programs to read; the summary printed for the instructor follows the
instructor's language.
"""
from __future__ import annotations

import csv
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from gan_course import i18n
from gan_course.grader.judge import STATUSES, check_name, status_name
from gan_course.i18n import _

FEEDBACK_OUTPUT_LINES = 30
STATUS_MARK = {"pass": "✓", "fail": "✗", "error": "✗", "timeout": "⏱", "missing": "?"}
_MARKDOWN_SPECIAL = re.compile(r"([\\*_\[\]<>#|~])")


def escape_markdown(text: str) -> str:
    """Plain text that renders as itself: no emphasis, headings, links, HTML or table cells."""
    text = str(text).replace("\r", " ").replace("\n", " ").replace("&", "&amp;")
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text).replace("`", "\\`")
    return re.sub(r"^(\s*)([-+=]|\d+(?=[.)]))", r"\1\\\2", text)


def escape_message(text: str) -> str:
    """A message with `code spans` kept as code and everything else escaped; one line."""
    text = str(text).replace("\r", " ").replace("\n", " ")
    parts = re.split(r"(`[^`\n]+`)", text)
    return "".join(p if p.startswith("`") and p.endswith("`") and len(p) > 1 else escape_markdown(p) for p in parts)


def fence(lines: list[str]) -> tuple[str, str]:
    longest = max([len(m) for line in lines for m in re.findall(r"`+|~+", line)] + [2])
    mark = "`" * (longest + 1)
    return mark + "text", mark


def spreadsheet_safe(value: str) -> str:
    """A cell no spreadsheet reads as a formula (=, +, -, @, tab or CR first)."""
    value = str(value)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _percent(total: float, maximum: float) -> str:
    return f"{100 * total / maximum:.0f}%" if maximum else "-"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def feedback_markdown(student: str, lab: str, names: list[str], outcomes: dict, maximum: float,
                      notes: list[str] | None = None) -> str:
    """A student's feedback, in the current language (`grade` calls it inside ``i18n.using``)."""
    total = sum(o.points for o in outcomes.values())
    lines = [
        _("# Lab {lab} feedback for {student}").format(lab=lab, student=escape_markdown(student)),
        "",
        _("**Score: {total:g} / {maximum:g}** ({percent})").format(
            total=total, maximum=maximum, percent=_percent(total, maximum)),
        "",
    ]
    if notes:
        lines += [_("Notes on your submission:")] + [f"- {escape_message(_capital(n))}" for n in notes] + [""]
    lines += [_("| Exercise | Result | Points |"), "|---|---|---|"]
    for name in names:
        o = outcomes[name]
        lines.append(f"| `{name}` | {STATUS_MARK[o.status]} {status_name(o.status)} | {o.points:g} |")
    lines.append("")
    for name in names:
        o = outcomes[name]
        lines += [_("## {mark} `{name}`: {status}").format(mark=STATUS_MARK[o.status], name=name,
                                                          status=status_name(o.status)), ""]
        if o.status == "pass":
            lines.append(escape_message(_capital(o.message)))
        else:
            lines.append(_("**Check that failed:** {check}").format(check=escape_markdown(check_name(o.check)))
                         if o.check else "")
            lines += ["", escape_message(_capital(o.message))]
        if o.notes:
            lines += ["", _("Notes:")] + [f"- {escape_message(_capital(n))}" for n in o.notes]
        if o.output.strip() and o.status != "pass":
            shown = o.output.strip("\n").split("\n")
            cut = len(shown) > FEEDBACK_OUTPUT_LINES
            shown = shown[:FEEDBACK_OUTPUT_LINES]
            start, end = fence(shown)
            lines += ["", _("What it printed (first lines):") if cut else _("What it printed:"), "", start, *shown, end]
        lines.append("")
    lines += [
        "---",
        _("Each exercise was run on its own, after the lab's setup code only, on hidden test inputs "
          "(including a batch of 1 and odd sizes), and compared with the course's solution. "
          "Run the lab's check cell (`gc.check(...)`) to see the same kind of message while you work."),
        "",
    ]
    return "\n".join(lines)


@dataclass
class GradeReport:
    lab: str
    names: list[str]
    points: dict
    outcomes: dict  # student -> name -> Outcome
    seconds: float
    batch_seed: int
    out: Path
    submissions: list = field(default_factory=list)
    sandbox: bool = False
    sandbox_note: str = ""
    skipped: list = field(default_factory=list)

    def total(self, student) -> float:
        return sum(o.points for o in self.outcomes[student].values())

    @property
    def maximum(self) -> float:
        return float(sum(self.points.values()))


def write_outputs(report: GradeReport, subs: list, solution: Path) -> None:
    out = report.out
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    with open(out / "grades.csv", "w", newline="", encoding="utf-8", errors="replace") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *report.names, "total", "max"])
        for sub in subs:
            o = report.outcomes[sub.student]
            writer.writerow([spreadsheet_safe(sub.student), *(f"{o[n].points:g}" for n in report.names),
                             f"{report.total(sub.student):g}", f"{report.maximum:g}"])
    results = {
        "lab": report.lab,
        "solution": solution.name,
        "batch_seed": report.batch_seed,
        "seconds": round(report.seconds, 1),
        "sandbox": report.sandbox,
        "sandbox_note": report.sandbox_note,
        "exercises": [{"name": n, "points": report.points[n]} for n in report.names],
        "skipped": report.skipped,
        "students": {
            sub.student: {
                "notebook": str(sub.path).encode("utf-8", "replace").decode("utf-8") if sub.path else None,
                "feedback": f"feedback/{sub.safe}.md",
                "language": sub.lang or i18n.language(),
                "total": report.total(sub.student),
                "max": report.maximum,
                "notes": sub.notes,
                "exercises": {n: report.outcomes[sub.student][n].as_dict() for n in report.names},
            }
            for sub in subs
        },
    }
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")  # ASCII: \u escapes
    for sub in subs:
        with i18n.using(sub.lang):
            text = feedback_markdown(sub.student, report.lab, report.names, report.outcomes[sub.student],
                                     report.maximum, sub.notes)
        (out / "feedback" / f"{sub.safe}.md").write_bytes(text.encode("utf-8", "replace"))


def _printable(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", "?", str(text))


def _columns(text: str) -> int:
    """How many terminal columns `text` takes (a Chinese character takes two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _columns(text))


def summary(report: GradeReport, subs: list) -> str:
    """The instructor's summary, in the current language (the instructor's)."""
    names = report.names
    graded = _("Graded {count} submission(s) of lab {lab} ({exercises} exercises) in {seconds:.1f} s").format(
        count=len(subs), lab=report.lab, exercises=len(names), seconds=report.seconds)
    lines = [
        graded + (_(", each exercise in a sandbox.") if report.sandbox
                  else _(", without a sandbox ({why}).").format(why=report.sandbox_note)),
        "",
    ]
    head = _("student")
    width = max([_columns(_printable(s.student)) for s in subs] + [_columns(head), 7])
    if len(subs) <= 60:
        lines.append(_("{student}  score").format(student=_pad(head, width)))
        for sub in subs:
            total = report.total(sub.student)
            marks = "".join(STATUS_MARK[report.outcomes[sub.student][n].status] for n in names)
            lines.append(f"{_pad(_printable(sub.student), width)}  {total:g}/{report.maximum:g}  {marks}")
        lines.append("")
    lines.append(_("per exercise: {statuses}").format(statuses=_(", ").join(status_name(s) for s in STATUSES)))
    for name in names:
        counts = [sum(report.outcomes[s.student][name].status == st for s in subs) for st in STATUSES]
        lines.append(f"  {name}: " + " ".join(str(c) for c in counts))
    if subs:
        mean = sum(report.total(s.student) for s in subs) / len(subs)
        lines.append(_("mean score {mean:.2f}/{maximum:g}").format(mean=mean, maximum=report.maximum))
    for entry in report.skipped:
        lines.append(_("not graded: {entry}").format(entry=_printable(entry)))
    lines.append(_("wrote grades.csv, results.json and feedback/ to {folder}").format(folder=report.out))
    return "\n".join(lines)
