"""solutions/ -> labs/: the student notebooks are generated, never edited by hand.

In a solution notebook an exercise is a code cell whose first line is the marker
``# EXERCISE: name``; the answer sits between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` lines.  Release keeps the marker, the signature and the docstring
(the instructions), replaces the answer with a stub, drops cells tagged ``solution``,
clears every output and keeps no metadata but the kernel's and the exercise marker's.

Beside the labs it writes ``expected/NN.npz``: each exercise's outputs on its public
test cases (the ones `gc.check` uses in the notebook), computed from the solutions.  A
student's machine has no solutions/; `gc.check` compares with these instead.  The
grader's hidden cases are drawn fresh per student and never written anywhere.

The Chinese edition comes from the same source: with a catalogue per lab
(``i18n/zh/NN_name.po``, see `gan_course.nbtranslate`) release writes ``solutions/zh/`` (the
solution notebooks translated) and ``labs/zh/`` (their student copies).  The code of every
cell is the English cell's; only markdown, comments and the strings a student reads differ.
The Chinese labs use the English labs' ``expected/`` (one folder up).
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat

from gan_course.i18n import N_

MARKER = re.compile(r"^#\s*EXERCISE:\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")
BEGIN = re.compile(r"^(\s*)###\s*BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*###\s*END SOLUTION\s*$")
CHECKED_OUTPUT = "# NBVAL_CHECK_OUTPUT"
KEPT_TAGS = {"raises-exception", "nbval-ignore-output", "nbval-skip"}
STUB_COMMENT = N_("YOUR CODE HERE: replace the next line with your solution.")
STUB = "{indent}# {comment}\n{indent}raise NotImplementedError()"
# The editions release writes beside the English notebooks, and where their catalogues are.
LANGUAGES = ("zh",)
CATALOGUES = "i18n"


class ReleaseError(ValueError):
    pass


def exercise_name(source: str) -> str | None:
    """The exercise a cell holds, from its marker line (the autograder uses this too)."""
    first = source.lstrip("\n").split("\n", 1)[0]
    match = MARKER.match(first.strip())
    return match.group(1) if match else None


def strip_solution(source: str, where: str = "", language: str = "en") -> str:
    from gan_course.i18n import translation

    stub = translation(language).gettext(STUB_COMMENT)
    out, inside, indent = [], False, ""
    for number, line in enumerate(source.split("\n"), 1):
        begin = BEGIN.match(line)
        if begin:
            if inside:
                raise ReleaseError(f"{where}: line {number}: BEGIN SOLUTION inside another solution block")
            inside, indent = True, begin.group(1)
            out.append(STUB.format(indent=indent, comment=stub))
        elif END.match(line):
            if not inside:
                raise ReleaseError(f"{where}: line {number}: END SOLUTION without BEGIN SOLUTION")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ReleaseError(f"{where}: BEGIN SOLUTION is never closed")
    return "\n".join(out)


def release_notebook(nb) -> nbformat.NotebookNode:
    """A student copy of one solution notebook."""
    new = nbformat.v4.new_notebook()
    meta = nb.metadata
    course = {key: meta["gan_course"][key] for key in ("lab", "language") if key in meta.get("gan_course", {})}
    new.metadata = nbformat.from_dict(
        {
            "kernelspec": meta.get("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"}),
            "language_info": {"name": meta.get("language_info", {}).get("name", "python")},
            **({"gan_course": course} if course else {}),
        }
    )
    language = course.get("language", "en")
    for index, cell in enumerate(nb.cells):
        tags = list(cell.get("metadata", {}).get("tags", []))
        if "solution" in tags:
            continue
        kept = {"tags": [t for t in tags if t in KEPT_TAGS]} if any(t in KEPT_TAGS for t in tags) else {}
        if cell.cell_type == "code":
            source = strip_solution(cell.source, where=f"cell {index}", language=language)
            new_cell = nbformat.v4.new_code_cell(source, metadata=kept)
            name = exercise_name(cell.source)
            if name:
                new_cell.metadata["gan_course"] = {"exercise": name}
            if cell.source.lstrip().startswith(CHECKED_OUTPUT):
                new_cell.outputs = cell.outputs
                new_cell.execution_count = cell.execution_count
        elif cell.cell_type == "markdown":
            new_cell = nbformat.v4.new_markdown_cell(cell.source, metadata=kept)
        else:
            new_cell = nbformat.v4.new_raw_cell(cell.source, metadata=kept)
        new_cell.id = cell.get("id") or f"cell-{index}"
        new.cells.append(new_cell)
    return new


def render(nb) -> str:
    return nbformat.writes(nb) + "\n"


def solution_problems(path: Path, nb) -> list[str]:
    """Outputs committed in a solution notebook are drift waiting to happen: report them."""
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count) and not cell.source.lstrip().startswith(CHECKED_OUTPUT):
            problems.append(f"{path}: cell {index} carries outputs (clear them, or start the cell with {CHECKED_OUTPUT})")
    return problems


def lab_of(path: Path, nb) -> str:
    return str(nb.metadata.get("gan_course", {}).get("lab") or Path(path).name[:2])


def exercise_sections(nb) -> dict[str, str]:
    """Exercise name -> the title of the last heading above its cell (what a student sees)."""
    sections, heading = {}, ""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.split("\n"):
                if line.startswith("#"):
                    heading = line.lstrip("#").strip()
        elif cell.cell_type == "code":
            name = exercise_name(cell.source)
            if name:
                sections[name] = heading
    return sections


def _expected_problems(target: Path, meta: dict, arrays: dict) -> list[str]:
    """What differs between the expected outputs on disk and fresh ones (values within each
    exercise's tolerance: float results may differ in the last bits between machines)."""
    from gan_course import checks
    from gan_course.grader.wire import decode

    try:
        old = checks.read_expected(target)
    except (OSError, ValueError, KeyError):
        return [f"{target}: {'missing' if not target.exists() else 'unreadable'}"]
    problems = []
    for name, entry in meta["exercises"].items():
        previous = old.get("exercises", {}).get(name)
        if previous is None:
            problems.append(f"{target}: no expected outputs for {name}")
            continue
        ex = checks.get_exercise(name)
        if previous.get("inputs") != entry["inputs"] or previous.get("sections") != entry["sections"]:
            problems.append(f"{target}: {name}: written for other test inputs or another section")
            continue
        want, have = decode(entry["outputs"], arrays), decode(previous["outputs"], old["arrays"])
        if checks.compare(want, have, ex.rtol, ex.atol, ex.strict_dtype) is not None:
            problems.append(f"{target}: {name}: outputs differ from the solution's")
    for name in old.get("exercises", {}):
        if name not in meta["exercises"]:
            problems.append(f"{target}: {name} is not an exercise of this lab")
    return problems


def release_expected(solutions: Path, labs: Path, check: bool = False, languages=()) -> list[str]:
    """Write (or, with check=True, compare) labs/expected/NN.npz for every lab with exercises."""
    from gan_course import checks
    from gan_course.grader.wire import pack_result

    problems, written = [], set()
    for src in sorted(Path(solutions).glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(src, as_version=4)
        lab = lab_of(src, nb)
        if lab not in checks.LAB_MODULES:
            continue
        registered = [ex.name for ex in checks.load_lab(lab)]
        present = {name for _, name, _ in checks.exercise_cells(nb)}
        if not present & set(registered):
            continue
        missing = [name for name in registered if name not in present]
        if missing:
            problems.append(f"{src}: no exercise cell for {', '.join(missing)} (registered for lab {lab})")
            continue
        sections = {"en": exercise_sections(nb)}
        for lang in languages:  # the section titles as each edition's students read them
            edition = Path(solutions) / lang / src.name
            if edition.is_file():
                sections[lang] = exercise_sections(nbformat.read(edition, as_version=4))
        meta, arrays = checks.expected_outputs(lab, Path(solutions), sections)
        target = Path(labs) / checks.EXPECTED_FOLDER / f"{lab}.npz"
        written.add(target.name)
        if check:
            problems += _expected_problems(target, meta, arrays)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".npz.tmp")
        tmp.write_bytes(pack_result(meta, arrays))
        tmp.replace(target)
    folder = Path(labs) / checks.EXPECTED_FOLDER
    if folder.is_dir():
        for extra in sorted(folder.glob("*.npz")):
            if extra.name not in written:
                problems.append(f"{extra}: no solution notebook has this lab's exercises")
    return problems


def _write_or_compare(target: Path, text: str, check: bool, what: str) -> list[str]:
    current = target.read_text(encoding="utf-8") if target.exists() else None
    if current == text:
        return []
    if check:
        return [f"{target}: {'missing' if current is None else what}"]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".ipynb.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return []


def release_editions(solutions: Path, labs: Path, catalogues: Path, check: bool = False,
                     update_catalogues: bool = False, languages=LANGUAGES) -> list[str]:
    """Write (or compare) solutions/<lang>/ and labs/<lang>/ from solutions/ and the catalogues, and
    list every missing, stale or fuzzy translation.  A lab without a catalogue gets no edition."""
    from gan_course import nbtranslate

    problems = []
    sources = sorted(Path(solutions).glob("[0-9][0-9]_*.ipynb"))
    for lang in languages:
        written = set()
        for src in sources:
            nb = nbformat.read(src, as_version=4)
            po_path = nbtranslate.catalogue_path(catalogues, lang, src)
            if update_catalogues and not check:
                nbtranslate.update_catalogue(nb, src, po_path, lang)
            problems += nbtranslate.check_catalogue(nb, src, po_path)
            if not po_path.exists():
                continue
            translated = nbtranslate.translate_notebook(nb, nbtranslate.read_catalogue(po_path), lang)
            try:
                student = render(release_notebook(translated))
            except ReleaseError as err:
                raise ReleaseError(f"{po_path}: {err}") from None
            written.add(src.name)
            problems += _write_or_compare(Path(solutions) / lang / src.name, render(translated), check,
                                          f"differs from {src} translated with {po_path}")
            problems += _write_or_compare(Path(labs) / lang / src.name, student, check,
                                          f"differs from {src} translated with {po_path}")
        for folder in (Path(solutions) / lang, Path(labs) / lang):
            for extra in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
                if extra.name not in written:
                    problems.append(f"{extra}: has no solution notebook with a {lang} catalogue")
    return problems


def release(solutions: Path, labs: Path, check: bool = False, catalogues: Path | None = None,
            update_catalogues: bool = False, languages=LANGUAGES) -> list[str]:
    """Write labs/ from solutions/ (and the translated editions) or, with check=True, only list what differs."""
    solutions, labs = Path(solutions), Path(labs)
    catalogues = Path(catalogues) if catalogues is not None else solutions.parent / CATALOGUES
    sources = sorted(solutions.glob("[0-9][0-9]_*.ipynb"))
    if not sources:
        raise ReleaseError(f"no solution notebooks (NN_*.ipynb) in {solutions}")
    problems, expected = [], set()
    for src in sources:
        nb = nbformat.read(src, as_version=4)
        problems += solution_problems(src, nb)
        try:
            text = render(release_notebook(nb))
        except ReleaseError as err:
            raise ReleaseError(f"{src}: {err}") from None  # which notebook, not only which cell
        target = labs / src.name
        expected.add(target.name)
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        if check:
            problems.append(f"{target}: {'missing' if current is None else 'differs from its solution'}")
        else:
            labs.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".ipynb.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(target)
    for extra in sorted(labs.glob("[0-9][0-9]_*.ipynb")):
        if extra.name not in expected:
            problems.append(f"{extra}: has no solution notebook")
    if languages and (catalogues.is_dir() or update_catalogues):
        problems += release_editions(solutions, labs, catalogues, check, update_catalogues, languages)
    # After the editions: the expected outputs name each exercise's section in every language.
    problems += release_expected(solutions, labs, check, languages)
    return problems
