"""Translated editions of the notebooks: one source (solutions/), one catalogue per lab.

A lab's catalogue is a gettext ``.po`` file, ``i18n/<lang>/NN_name.po``.  Each entry's
``msgid`` is the English text it translates, exactly as it stands in the solution
notebook, and its reference (``#: NN_name.ipynb:cell-id``) names the cell it comes from.
What needs an entry (a *unit*):

* **markdown**: every block of a markdown cell (blocks are separated by blank lines; a
  fenced code block is one block) that has words outside its formulas and inline code.
  A block of display math alone stays as it is.
* **comments** in code cells, except the markers the tools read (``# EXERCISE:``,
  ``# NBVAL_...``, ``### BEGIN/END SOLUTION``, ``noqa``, ``type:``, ``pragma``).
* **strings** in code cells that a student reads: docstrings; string literals in the
  arguments of a call that shows text (`print`, titles, axis labels, `text`,
  `show_images`, ...) or in a keyword argument that names text (``title=``,
  ``label=``, ``xlabel=``, ``description=`` ...); and any literal that reads like prose
  (two words or more).  A literal used as a subscript (``row["real baseline"]``, a key
  being read) is never a unit.  A plain string's msgid is its value; an f-string's
  msgid is its source as written (``msgctxt "f-string"``), and its translation must be
  an f-string with the same expressions.  An entry whose msgstr equals its msgid keeps
  the English on purpose (a dictionary key the library reads, a name).

`check_catalogue` reports, naming lab, cell and entry, every unit with no translation
(*missing*), every entry whose English is no longer in the source (*stale*: the English
changed after it was translated), fuzzy entries (a translation of an older English
text, left by `update_catalogue`) and f-string translations that do not fit their code.
Code itself is never forked: only the text of comments and string literals changes, and
tests/test_i18n.py checks that every translated code cell has the English cell's syntax
tree once strings are set aside.
"""
from __future__ import annotations

import ast
import difflib
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

FSTRING = "f-string"
MARKERS = re.compile(r"^#+\s*(EXERCISE:|NBVAL_|BEGIN SOLUTION|END SOLUTION|noqa|type:|pragma|fmt:)")
# Calls whose positional arguments are text a student reads.
DISPLAY_CALLS = {"print", "set_title", "title", "suptitle", "set_suptitle", "set_xlabel", "set_ylabel", "xlabel",
                 "ylabel", "text", "annotate", "show_images", "Markdown", "HTML", "tqdm", "warn"}
# Keyword arguments (of any call) that hold text a student reads.
DISPLAY_KEYWORDS = {"title", "label", "xlabel", "ylabel", "description", "desc", "caption", "suptitle", "labels",
                    "titles", "header"}
WORDS = re.compile(r"[A-Za-z]{2,}")
PROSE = re.compile(r"[A-Za-z]{2,}[^\sA-Za-z]*\s+[^\s]*[A-Za-z]")


@dataclass(frozen=True)
class Unit:
    """One piece of English a translation must cover."""

    kind: str  # "markdown", "comment", "string", "docstring" or "fstring"
    msgid: str
    cell: str  # the cell's id
    index: int  # the cell's position (for messages only)

    @property
    def msgctxt(self) -> str | None:
        return FSTRING if self.kind == "fstring" else None

    @property
    def key(self) -> tuple[str | None, str]:
        return self.msgctxt, self.msgid


# ----------------------------------------------------------------------------- markdown
_MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]*\$|`[^`\n]*`|<[^>\n]*>|\(https?://[^)\s]*\)", re.S)


def markdown_blocks(source: str) -> list[str]:
    """The blocks of a markdown cell and the blank-line runs between them, in order:
    joining the list gives the source back.  A fenced code block stays one block."""
    parts = re.split(r"(\n[ \t]*\n(?:[ \t]*\n)*)", source)
    merged: list[str] = []
    open_fence = False
    for part in parts:
        if open_fence:
            merged[-1] += part
        else:
            merged.append(part)
        if not part.strip() or part.startswith("\n") and not part.strip():
            continue
        fences = sum(1 for line in part.split("\n") if line.lstrip().startswith("```"))
        if fences % 2:
            open_fence = not open_fence
    return merged


def needs_translation(block: str) -> bool:
    if not block.strip() or block.lstrip().startswith("```"):
        return False
    return bool(WORDS.search(_MATH.sub(" ", block)))


# ----------------------------------------------------------------------------- code
def _comments(source: str):
    """(row, col, text after the '#') of every comment that is text, not a marker."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return []
    found = []
    for tok in tokens:
        if tok.type == tokenize.COMMENT and not MARKERS.match(tok.string) and WORDS.search(tok.string):
            text = tok.string.lstrip("#").strip()
            found.append((tok.start, tok.end, text))
    return found


def _parents(tree):
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    return parents


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _in_display(node, parents) -> bool:
    child, parent = node, parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.keyword):
            return parent.arg in DISPLAY_KEYWORDS
        if isinstance(parent, ast.Call):
            if child is parent.func:
                return False
            return child in parent.args and _call_name(parent) in DISPLAY_CALLS
        if isinstance(parent, (ast.stmt, ast.Subscript, ast.Lambda, ast.comprehension)):
            return False
        child, parent = parent, parents.get(parent)
    return False


def _docstrings(tree) -> set:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                found.add(first.value)
    return found


def _strings(source: str):
    """(node, kind, msgid) of every string literal that is text (see the module's docstring)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    parents, docstrings, inner = _parents(tree), _docstrings(tree), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            inner.update(n for n in ast.walk(node) if n is not node)
    found = []
    for node in ast.walk(tree):
        if node in inner:
            continue
        if node in docstrings:
            found.append((node, "docstring", inspect_cleandoc(node.value)))
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.Subscript) and parent.slice is node:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if WORDS.search(text) and (PROSE.search(text) or _in_display(node, parents)):
                found.append((node, "string", text))
        elif isinstance(node, ast.JoinedStr):
            literal = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            if WORDS.search(literal) and (PROSE.search(literal) or _in_display(node, parents)):
                found.append((node, "fstring", ast.get_source_segment(source, node)))
    found.sort(key=lambda item: (item[0].lineno, item[0].col_offset))
    return found


def inspect_cleandoc(text: str) -> str:
    import inspect

    return inspect.cleandoc(text)


def cell_units(cell, index: int) -> list[Unit]:
    cid = cell.get("id") or f"cell-{index}"
    if cell.cell_type == "markdown":
        return [Unit("markdown", b, cid, index) for b in markdown_blocks(cell.source) if needs_translation(b)]
    if cell.cell_type != "code":
        return []
    units = [(start, Unit("comment", text, cid, index)) for start, _, text in _comments(cell.source)]
    units += [((node.lineno, node.col_offset), Unit(kind, msgid, cid, index)) for node, kind, msgid in _strings(cell.source)]
    return [unit for _, unit in sorted(units, key=lambda item: item[0])]


def notebook_units(nb) -> list[Unit]:
    units = []
    for index, cell in enumerate(nb.cells):
        units += cell_units(cell, index)
    return units


# ----------------------------------------------------------------------------- translating
def _offsets(source: str):
    """Character offset of (line, column) positions; ast columns are UTF-8 bytes, tokenize's characters."""
    lines = source.split("\n")
    starts, total = [], 0
    for line in lines:
        starts.append(total)
        total += len(line) + 1

    def char(row, col):
        return starts[row - 1] + col

    def byte(row, col):
        return starts[row - 1] + len(lines[row - 1].encode("utf-8")[:col].decode("utf-8", "replace"))

    return char, byte


def _quote(value: str, original: str) -> str:
    """A literal of `value` in the original's quote style."""
    prefix = re.match(r"^[rRbBuU]*", original).group(0).replace("r", "").replace("R", "")
    quote = '"' if '"' in original[:4] or "'" not in original[:4] else "'"
    if original.lstrip("rRbBuU").startswith(quote * 3):
        body = value.replace("\\", "\\\\").replace(quote * 3, "\\" + quote * 3)
        return f"{prefix}{quote * 3}{body}{quote * 3}"
    body = value.replace("\\", "\\\\").replace(quote, "\\" + quote).replace("\n", "\\n").replace("\t", "\\t")
    return f"{prefix}{quote}{body}{quote}"


def _docstring_literal(text: str, node, source_lines: list[str]) -> str:
    indent = " " * node.col_offset
    lines = text.split("\n")
    body = "\n".join([lines[0]] + [indent + line if line.strip() else "" for line in lines[1:]])
    original_end = source_lines[node.end_lineno - 1][: node.end_col_offset]
    closing_alone = node.end_lineno > node.lineno and original_end.strip() in ('"""', "'''")
    if closing_alone:
        body += "\n" + indent
    return '"""' + body.replace('"""', '\\"""') + '"""'


def translate_code(source: str, lookup) -> str:
    """`source` with the text of its comments and string literals replaced by `lookup(unit kind, msgid)`
    (None: keep the English)."""
    char, byte = _offsets(source)
    edits = []
    for (row, col), (erow, ecol), text in _comments(source):
        new = lookup("comment", text)
        if new is not None and new != text:
            original = source[char(row, col): char(erow, ecol)]
            lead = re.match(r"^#+\s*", original).group(0)
            edits.append((char(row, col), char(erow, ecol), lead + new.replace("\n", " ")))
    lines = source.split("\n")
    for node, kind, msgid in _strings(source):
        new = lookup(kind, msgid)
        if new is None or new == msgid:
            continue
        start, end = byte(node.lineno, node.col_offset), byte(node.end_lineno, node.end_col_offset)
        if kind == "fstring":
            literal = new
        elif kind == "docstring":
            literal = _docstring_literal(new, node, lines)
        else:
            literal = _quote(new, source[start:end])
        edits.append((start, end, literal))
    for start, end, text in sorted(edits, reverse=True):
        source = source[:start] + text + source[end:]
    return source


def translate_markdown(source: str, lookup) -> str:
    out = []
    for block in markdown_blocks(source):
        new = lookup("markdown", block) if needs_translation(block) else None
        out.append(block if new is None else new)
    return "".join(out)


def fstring_problem(msgid: str, msgstr: str) -> str | None:
    """Why an f-string translation does not fit its English (None: it fits)."""
    # In parentheses: an f-string continued over several lines is one expression there.
    try:
        new = ast.parse(f"(\n{msgstr.strip()}\n)", mode="eval").body
    except SyntaxError as err:
        return f"is not valid Python ({err.msg})"
    if not isinstance(new, ast.JoinedStr):
        return "is not an f-string"
    if code_shape(f"(\n{msgid}\n)") != code_shape(f"(\n{msgstr.strip()}\n)"):
        return "does not have the English f-string's {expressions}"
    return None


def code_shape(source: str) -> str:
    """The syntax tree of a code cell with strings set aside (comments are not in it): two
    editions of a cell must have the same shape."""
    tree = ast.parse(source)

    class Blank(ast.NodeTransformer):
        def visit_Constant(self, node):
            return ast.Constant("") if isinstance(node.value, str) else node

        def visit_JoinedStr(self, node):
            values = sorted((v for v in node.values if not isinstance(v, ast.Constant)), key=ast.dump)
            return ast.JoinedStr(values=[self.visit(v) for v in values])

    return ast.dump(Blank().visit(tree), include_attributes=False)


# ----------------------------------------------------------------------------- catalogues
def catalogue_path(catalogues: Path, lang: str, notebook: Path) -> Path:
    return Path(catalogues) / lang / (Path(notebook).stem + ".po")


def read_catalogue(path: Path):
    import polib

    return polib.pofile(str(path), wrapwidth=0)


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return json_quote(text if len(text) <= width else text[: width - 1] + "…")


def json_quote(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)


def entry_cells(entry) -> list[str]:
    """The cell ids in an entry's references (``#: NN_name.ipynb:cell-id``; polib keeps a
    reference whose part after the colon is not a line number whole)."""
    cells = []
    for path, line in entry.occurrences:
        cells.append(line if line else path.rpartition(":")[2])
    return cells


def lookup_from(po):
    """A `lookup(kind, msgid)` over a catalogue's finished entries."""
    table = {}
    for entry in po:
        if entry.obsolete or entry.fuzzy or not entry.msgstr:
            continue
        table[(entry.msgctxt, entry.msgid)] = entry.msgstr

    def lookup(kind, msgid):
        return table.get((FSTRING if kind == "fstring" else None, msgid))

    return lookup


def check_catalogue(nb, notebook: Path, po_path: Path) -> list[str]:
    """Everything that keeps a lab's catalogue from covering its English source."""
    name = Path(notebook).name
    lab = str(nb.metadata.get("gan_course", {}).get("lab") or name[:2])
    if not Path(po_path).exists():
        return [f"{po_path}: missing: lab {lab} ({name}) has no catalogue "
                "(`gan-course release --update-catalogues` writes one to translate)"]
    po = read_catalogue(po_path)
    units = notebook_units(nb)
    keys = {u.key for u in units}
    entries = {(e.msgctxt, e.msgid): e for e in po if not e.obsolete}
    problems = []
    for unit in units:
        where = f"{po_path}: lab {lab}, cell {unit.cell} (#{unit.index})"
        entry = entries.get(unit.key)
        if entry is None or not entry.msgstr:
            problems.append(f"{where}: missing translation of the {unit.kind} {_short(unit.msgid)}")
        elif entry.fuzzy:
            before = f" (it translated {_short(entry.previous_msgid)})" if entry.previous_msgid else ""
            problems.append(f"{where}: entry {_short(unit.msgid)} is fuzzy: the English changed after it was "
                            f"translated{before}; revise the msgstr and remove the fuzzy flag")
        elif unit.kind == "fstring":
            why = fstring_problem(unit.msgid, entry.msgstr)
            if why:
                problems.append(f"{where}: the translation of {_short(unit.msgid)} {why}")
    for key, entry in entries.items():
        if key not in keys:
            cells = ", ".join(entry_cells(entry)) or "?"
            problems.append(f"{po_path}: lab {lab}, cell {cells}: stale entry {_short(entry.msgid)}: its English is "
                            f"no longer in {name} (changed after it was translated); run "
                            "`gan-course release --update-catalogues` and revise it")
    return problems


def update_catalogue(nb, notebook: Path, po_path: Path, lang: str) -> tuple[int, int, int]:
    """Bring a catalogue in line with its notebook, the way msgmerge does: new English gets an
    empty entry, or a fuzzy one carrying the old translation when it replaces a similar text of
    the same cell; entries whose English is gone become obsolete.  Returns (new, fuzzy, obsolete)."""
    import polib

    old = read_catalogue(po_path) if Path(po_path).exists() else None
    po = polib.POFile(wrapwidth=0)
    po.metadata = old.metadata if old is not None else {
        "Project-Id-Version": "gan-course", "Language": {"zh": "zh_CN"}.get(lang, lang),
        "MIME-Version": "1.0", "Content-Type": "text/plain; charset=UTF-8", "Content-Transfer-Encoding": "8bit",
    }
    previous = {(e.msgctxt, e.msgid): e for e in old if not e.obsolete} if old is not None else {}
    units = notebook_units(nb)
    keys = {u.key for u in units}
    unused = [e for k, e in previous.items() if k not in keys]
    added = fuzzy = 0
    seen = {}
    for unit in units:
        if unit.key in seen:
            if unit.cell not in entry_cells(seen[unit.key]):
                seen[unit.key].occurrences.append((Path(notebook).name, unit.cell))
            continue
        entry = previous.get(unit.key)
        if entry is not None:
            entry.occurrences = [(Path(notebook).name, unit.cell)]
        else:
            entry = polib.POEntry(msgid=unit.msgid, msgstr="", msgctxt=unit.msgctxt,
                                  occurrences=[(Path(notebook).name, unit.cell)])
            same_cell = [e for e in unused if unit.cell in entry_cells(e) and e.msgctxt == unit.msgctxt]
            best = max(same_cell, key=lambda e: difflib.SequenceMatcher(None, e.msgid, unit.msgid).ratio(), default=None)
            if best is not None and difflib.SequenceMatcher(None, best.msgid, unit.msgid).ratio() >= 0.5:
                entry.msgstr, entry.previous_msgid = best.msgstr, best.msgid
                entry.flags.append("fuzzy")
                unused.remove(best)
                fuzzy += 1
            else:
                added += 1
        entry.comment = unit.kind
        seen[unit.key] = entry
        po.append(entry)
    for entry in unused:
        if entry.msgstr:
            entry.obsolete = True
            po.append(entry)
    Path(po_path).parent.mkdir(parents=True, exist_ok=True)
    po.save(str(po_path))
    return added, fuzzy, len(unused)


# ----------------------------------------------------------------------------- editions
def translate_notebook(nb, po, lang: str):
    """A copy of a notebook with every unit that has a finished translation translated."""
    import copy

    lookup = lookup_from(po) if po is not None else (lambda kind, msgid: None)
    new = copy.deepcopy(nb)
    for cell in new.cells:
        if cell.cell_type == "markdown":
            cell.source = translate_markdown(cell.source, lookup)
        elif cell.cell_type == "code":
            cell.source = translate_code(cell.source, lookup)
    meta = dict(new.metadata.get("gan_course", {}))
    meta["language"] = lang
    new.metadata["gan_course"] = meta
    return new
