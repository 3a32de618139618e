"""Submissions in: which files are whose, opened safely, read as notebooks.

A file is opened without following links and without blocking (a named pipe cannot
hang the batch), must be a regular file under a size cap, and its JSON under a nesting
cap; any encoding with a byte-order mark is accepted, any stray bytes or lone
surrogates become U+FFFD.  Every entry of the folder is either graded or reported:
dot names, links, empty folders and other files are listed, never silently dropped.

Each submission's language is its notebook's (``metadata.gan_course.language``: the
Chinese edition's notebooks say ``"zh"``); what is said about a file that cannot be read
as a notebook is said in the instructor's language, the only one known then.
"""
from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from gan_course import i18n
from gan_course.i18n import _, ngettext
from gan_course.grader.wire import json_depth
from gan_course.release import exercise_name

NOTEBOOK_BYTES = 50 * 2**20  # a notebook with its outputs (figures, a GIF) fits
MAX_JSON_DEPTH = 64
JUPYTER_FOLDERS = (".ipynb_checkpoints",)


class GradeError(RuntimeError):
    """The batch cannot be graded at all (no lab, no solutions): the message says why."""


class NotebookError(ValueError):
    """A submission that cannot be read as a notebook."""


@dataclass
class Cell:
    index: int
    cell_type: str
    source: str
    exercise: str | None  # from the marker line, else from the cell's metadata
    marked: bool = True  # the marker line is there (False: only the cell's metadata names it)


@dataclass
class Submission:
    student: str
    path: Path | None
    cells: list[Cell] = field(default_factory=list)
    lab: str | None = None
    problem: str | None = None  # why the notebook could not be read
    safe: str = ""  # the student's name as a file name
    notes: list[str] = field(default_factory=list)  # about the submission as a whole
    candidates: list = field(default_factory=list)  # (path, cells, lab) for folders with several notebooks
    lang: str | None = None  # the notebook's language ("en", "zh"); None until it is read
    passed: list[str] = field(default_factory=list)  # files of the student's folder not graded (links)


def clean_text(text: str) -> str:
    """Text that encodes as UTF-8: lone surrogates (from JSON escapes or file names) become U+FFFD."""
    return re.sub("[\ud800-\udfff]", "\ufffd", text) if isinstance(text, str) else ""


def display_name(name: str) -> str:
    """A file name as text: undecodable bytes and control characters replaced."""
    name = os.fsencode(name).decode("utf-8", "replace")
    return re.sub(r"[\x00-\x1f\x7f]", "?", name)


def read_bytes_safely(path: Path, cap: int = NOTEBOOK_BYTES) -> bytes:
    """A regular file's bytes: never a link, a pipe or a device; at most `cap` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as err:
        if os.path.islink(path):
            raise NotebookError(_("is a symbolic link; the grader does not follow links: submit the notebook file itself")) from None
        raise NotebookError(_("could not be opened ({reason})").format(reason=err.strerror)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            if stat.S_ISFIFO(info.st_mode):
                raise NotebookError(_("is a named pipe (FIFO), not a notebook file"))
            if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
                raise NotebookError(_("is a device, not a notebook file"))
            raise NotebookError(_("is not a regular file, not a notebook file"))
        if info.st_size > cap:
            raise NotebookError(_("is {size:.1f} MiB, more than a notebook may be ({cap} MiB): clear its outputs").format(
                size=info.st_size / 2**20, cap=cap // 2**20))
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, 2**20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                raise NotebookError(_("is more than {cap} MiB: clear its outputs").format(cap=cap // 2**20))
        return b"".join(chunks)
    finally:
        os.close(fd)


def _decode(data: bytes) -> str:
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            try:
                text = data.decode(codec)
                json.loads(text)
                return text
            except (UnicodeDecodeError, ValueError, RecursionError):
                break
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotebookError(_("is not a notebook: the file is not text (UTF-8)")) from None


def read_notebook(path: Path) -> tuple[list[Cell], str | None]:
    """The cells of a notebook and its lab number; NotebookError if it is not a notebook."""
    cells, lab, _lang = read_notebook_and_language(path)
    return cells, lab


def _language(meta: dict) -> str:
    """The notebook's language from its metadata ('en' when it says nothing usable)."""
    try:
        return i18n.notebook_language({"metadata": meta})
    except (AttributeError, TypeError):
        return "en"


def read_notebook_and_language(path: Path) -> tuple[list[Cell], str | None, str]:
    """The cells of a notebook, its lab number and its language; NotebookError if it is not a notebook."""
    text = _decode(read_bytes_safely(Path(path)))
    if json_depth(text) > MAX_JSON_DEPTH:
        raise NotebookError(_("is not a notebook: its JSON is nested more than {depth} levels deep").format(
            depth=MAX_JSON_DEPTH))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise NotebookError(
            _("is not a notebook: not valid JSON ({error}: line {line}, column {column}); "
              "was it saved from Jupyter (File > Save and Export Notebook As > Notebook)?").format(
                error=err.msg, line=err.lineno, column=err.colno)
        ) from None
    except (ValueError, RecursionError) as err:
        raise NotebookError(_("is not a notebook: not valid JSON ({error})").format(error=type(err).__name__)) from None
    if isinstance(data, dict) and "worksheets" in data:  # an nbformat 3 notebook: upgrade it
        try:
            import nbformat

            data = json.loads(nbformat.writes(nbformat.reads(text, as_version=4)))
        except Exception:  # noqa: BLE001 - reported below as not a notebook
            pass
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise NotebookError(_("is JSON but not a Jupyter notebook (it has no list of cells)"))
    cells = []
    for index, cell in enumerate(data["cells"]):
        if not isinstance(cell, dict):
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(part for part in source if isinstance(part, str))
        source = clean_text(source if isinstance(source, str) else "")
        meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        tagged = meta.get("gan_course", {}).get("exercise") if isinstance(meta.get("gan_course"), dict) else None
        marker = exercise_name(source)
        name = marker or (clean_text(tagged) if isinstance(tagged, str) else None)
        kind = cell.get("cell_type", "code")
        cells.append(Cell(index, clean_text(kind) if isinstance(kind, str) else "code", source, name, marker is not None))
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    lab = meta.get("gan_course", {}).get("lab") if isinstance(meta.get("gan_course"), dict) else None
    return cells, lab_number(lab), _language(meta)


def lab_number(lab) -> str | None:
    if lab is None or isinstance(lab, (dict, list)):
        return None
    text = clean_text(str(lab)).strip()[:20]
    return text.zfill(2) if text.isdigit() else (text or None)


def safe_name(name: str, taken: set) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "student"
    safe, n = base, 2
    while safe.lower() in taken:
        safe, n = f"{base}_{n}", n + 1
    taken.add(safe.lower())
    return safe


def _notebooks_in(folder: Path) -> tuple[list[Path], list[str]]:
    """Regular .ipynb files under a student's folder (links not followed) and what was passed over."""
    found, passed = [], []
    for here, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in JUPYTER_FOLDERS)
        for name in sorted(files):
            path = Path(here) / name
            if not name.endswith(".ipynb"):
                continue
            if path.is_symlink():
                passed.append(display_name(str(path.relative_to(folder))))
            else:
                found.append(path)
    return found, passed


def find_submissions(folder: Path) -> tuple[list[Submission], list[str]]:
    """One Submission per student (a notebook or a folder), and the entries that are not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GradeError(_("{folder} is not a folder of submissions").format(folder=folder))
    subs, skipped, taken, names_seen = [], [], set(), set()
    for entry in sorted(folder.iterdir(), key=lambda p: os.fsencode(p.name).lower()):
        shown = display_name(entry.name)
        if entry.name in JUPYTER_FOLDERS:
            skipped.append(_("{name}/ (Jupyter's checkpoints)").format(name=shown))
            continue
        if entry.is_symlink():
            if entry.name.endswith(".ipynb"):
                sub = Submission(shown[:-6], entry)  # reading it says why not (O_NOFOLLOW)
            elif entry.is_dir():
                sub = Submission(shown, None)
                sub.problem = _("is a symbolic link; the grader does not follow links: submit the folder itself")
            else:
                skipped.append(_("{name} (a symbolic link, not followed)").format(name=shown))
                continue
        elif entry.is_dir():
            notebooks, passed = _notebooks_in(entry)
            sub = Submission(shown, None)
            if not notebooks:
                sub.problem = _("has no notebook (.ipynb) in it") + (
                    _(" ({files})").format(files=_passed(passed)) if passed else "")
            else:
                sub.candidates = notebooks
                sub.passed = passed  # said once the notebook's language is known (`note_passed`)
        elif entry.name.endswith(".ipynb"):
            sub = Submission(shown[:-6], entry)
        else:
            skipped.append(_("{name} (not a notebook)").format(name=shown))
            continue
        if sub.student.lower() in names_seen:  # alice.ipynb beside a folder alice/
            sub.student = shown
        names_seen.add(sub.student.lower())
        sub.safe = safe_name(sub.student, taken)
        if sub.path is not None:
            _read_into(sub, sub.path)
        subs.append(sub)
    return subs, skipped


def _passed(passed: list[str]) -> str:
    return "; ".join(_("{name} (a symbolic link, not followed)").format(name=p) for p in passed)


def note_passed(sub: Submission) -> None:
    """Say which files of the student's folder were not graded (in the current language)."""
    if sub.passed:
        sub.notes.append(_("not graded: {files}.").format(files=_passed(sub.passed)))
        sub.passed = []


def _read_into(sub: Submission, path: Path) -> None:
    try:
        sub.cells, sub.lab, sub.lang = read_notebook_and_language(path)
        sub.problem = None
    except NotebookError as err:
        sub.problem = str(err)
    except OSError as err:
        sub.problem = _("could not be read ({reason})").format(reason=err.strerror)


def read_candidates(subs: list[Submission]) -> None:
    """Read every notebook of a student's folder (the lab decides which one is graded)."""
    for sub in subs:
        if not sub.candidates:
            continue
        if len(sub.candidates) == 1:
            sub.path = sub.candidates[0]
            sub.candidates = []
            _read_into(sub, sub.path)
            with i18n.using(sub.lang):
                note_passed(sub)
            continue
        read = []
        for path in sub.candidates:
            probe = Submission(sub.student, path)
            _read_into(probe, path)
            read.append(probe)
        sub.candidates = read


def pick_notebooks(subs: list[Submission], lab: str) -> None:
    """In a folder of several notebooks, grade the one of `lab` and say which."""
    for sub in subs:
        if not sub.candidates:
            continue
        readable = [p for p in sub.candidates if p.problem is None]
        ranked = ([p for p in readable if p.lab == lab] or [p for p in readable if p.path.name.startswith(f"{lab}_")]
                  or readable or sub.candidates)
        chosen = ranked[0]
        sub.path, sub.cells, sub.lab, sub.problem = chosen.path, chosen.cells, chosen.lab, chosen.problem
        sub.lang = chosen.lang
        others = [display_name(p.path.name) for p in sub.candidates if p is not chosen]
        with i18n.using(sub.lang):
            note_passed(sub)
            sub.notes.append(
                ngettext("your folder holds {n} notebook; graded `{chosen}`{lab}, not {others}.",
                         "your folder holds {n} notebooks; graded `{chosen}`{lab}, not {others}.",
                         len(sub.candidates)).format(
                    n=len(sub.candidates), chosen=display_name(chosen.path.name),
                    lab=_(" (lab {lab})").format(lab=chosen.lab) if chosen.lab else "",
                    others=_(", ").join(f"`{o}`" for o in others))
            )
        sub.candidates = []


def choose_lab(subs: list[Submission], lab: str | None) -> str:
    if lab:
        return lab_number(lab)
    labs = [s.lab for s in subs if s.lab]
    for sub in subs:
        labs += list(dict.fromkeys(p.lab for p in sub.candidates if p.lab))
    if not labs:
        raise GradeError(_("no notebook says which lab it is (metadata gan_course.lab): pass --lab NN"))
    counts = {k: labs.count(k) for k in sorted(set(labs))}
    best = max(counts.values())
    if list(counts.values()).count(best) > 1:
        found = _(", ").join(_("lab {lab}: {count}").format(lab=k, count=v) for k, v in counts.items())
        raise GradeError(_("the notebooks belong to several labs ({found}): pass --lab NN").format(found=found))
    return max(counts, key=counts.get)


def course_root() -> Path:
    """The course folder: the current directory if it holds solutions/, else the repository."""
    here = Path.cwd()
    if (here / "solutions").is_dir():
        return here
    return Path(__file__).resolve().parent.parent.parent


def solution_notebook(root: Path, lab: str) -> Path:
    found = sorted((Path(root) / "solutions").glob(f"{lab}_*.ipynb"))
    if not found:
        raise GradeError(_("no solution notebook for lab {lab}: expected {folder}/{lab}_*.ipynb").format(
            lab=lab, folder=Path(root) / "solutions"))
    return found[0]
