"""Where each exercise is in a notebook, and the lab's setup code.

An exercise cell is the cell whose first line is ``# EXERCISE: name``; a cell that only
carries the exercise in its metadata (Jupyter copies metadata with a cell, so a scratch
copy keeps it) is used only when no cell has the marker line.  Never a cell id or a
position.  Every oddity is reported in the feedback.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from gan_course.grader.read import Cell
from gan_course.i18n import _, ngettext
from gan_course.grader.exercise import prepare_source


@dataclass
class Located:
    source: str
    cell: int
    notes: list[str] = field(default_factory=list)


def _parse(source: str):
    try:
        return ast.parse(prepare_source(source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def defines(source: str, name: str) -> bool:
    tree = _parse(source)
    if tree is None:
        return re.search(rf"^\s*def\s+{re.escape(name)}\s*\(", source, re.M) is not None
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name for n in tree.body)


def assigned_names(source: str) -> set[str]:
    """Top-level names a cell binds (to explain a NameError that comes from another cell)."""
    tree = _parse(source)
    if tree is None:
        return set(re.findall(r"^([A-Za-z_]\w*)\s*=", source, re.M))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        else:
            for target in ast.walk(node):
                if isinstance(target, ast.Name) and isinstance(target.ctx, ast.Store):
                    names.add(target.id)
    return names


def locate_exercises(cells: list[Cell], names: list[str]) -> dict[str, Located]:
    """Each exercise's cell (by its marker line first, then metadata), with notes on oddities."""
    found: dict[str, Located] = {}
    for name in names:
        tagged = [c for c in cells if c.exercise == name]
        marked = [c for c in tagged if c.marked]
        pool = marked or tagged
        code = [c for c in pool if c.cell_type == "code"]
        notes = []
        if code:
            chosen = code[-1]
        elif pool:
            chosen = pool[-1]
            notes.append(
                _("the exercise cell was turned into a {kind} cell, so it never ran in your "
                  "notebook; it was graded as code. Change it back to a Code cell (Esc, then Y).").format(
                    kind=chosen.cell_type)
            )
        else:
            defining = [c for c in cells if c.cell_type == "code" and defines(c.source, name)]
            if not defining:
                continue
            chosen = defining[-1]
            notes.append(
                _("the line `# EXERCISE: {name}` is missing; graded cell {cell}, which defines "
                  "`{name}`. Keep the marker line as the first line of the cell.").format(
                    name=name, cell=chosen.index + 1)
            )
        if len(marked) > 1:
            where = ", ".join(str(c.index + 1) for c in marked)
            last = (_("the last code cell (cell {cell}) was graded") if code
                    else _("the last cell (cell {cell}) was graded")).format(cell=chosen.index + 1)
            notes.append(
                _("this exercise appears {count} times (cells {cells}); {graded}. Delete the other copies.").format(
                    count=len(marked), cells=where, graded=last)
            )
        copies = [c for c in tagged if not c.marked and c is not chosen]
        if copies and marked:
            where = ", ".join(str(c.index + 1) for c in copies)
            notes.append(
                ngettext("cell {cells} carries this exercise in its metadata but not the line `# EXERCISE: {name}` "
                         "(a copy of the cell?); cell {cell}, which has the line, was graded.",
                         "cells {cells} carry this exercise in its metadata but not the line `# EXERCISE: {name}` "
                         "(a copy of the cell?); cell {cell}, which has the line, was graded.",
                         len(copies)).format(cells=where, name=name, cell=chosen.index + 1)
            )
        found[name] = Located(chosen.source, chosen.index, notes)
    # Re-ordered cells grade as usual; say so, since the notebook no longer reads in order.
    previous = None
    for name in names:
        if name not in found:
            continue
        if previous is not None and found[name].cell < found[previous].cell:
            found[name].notes.append(
                _("this cell comes before `{previous}` in your notebook, out of the lab's order "
                  "(graded as usual; cells run top to bottom, so keep the lab's order).").format(previous=previous)
            )
        previous = name
    return found


def setup_code(cells: list[Cell]) -> str:
    """The lab's setup code: imports and `NAME = module.setup(...)` lines before the first exercise."""
    lines = []
    for cell in cells:
        if cell.exercise is not None:
            break
        if cell.cell_type != "code":
            continue
        tree = _parse(cell.source)
        if tree is None:
            continue
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)) or _is_setup_call(node):
                lines.append(ast.unparse(node))
    return "\n".join(lines) + "\n"


def _is_setup_call(node) -> bool:
    value = node.value if isinstance(node, (ast.Assign, ast.Expr)) else None
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr == "setup"
        and isinstance(value.func.value, ast.Name)
    )
