"""English and Simplified Chinese: the language choice, the library's catalogue, the Chinese
notebooks (same code, complete and current translations, the glossary's terms), CJK figures."""
from __future__ import annotations

import ast
import csv
import json
import re
import warnings
from pathlib import Path

import nbformat
import numpy as np
import polib
import pytest

from gan_course import checks, i18n, nbtranslate
from gan_course.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent
CATALOGUES = ROOT / "i18n"
LIBRARY_PO = i18n.catalogue_path("zh")
HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def lang(monkeypatch):
    """Set the language for one test (GAN_COURSE_LANG), restoring the automatic choice after."""
    def use(value):
        monkeypatch.setenv(i18n.ENV_LANG, value)
    monkeypatch.delenv(i18n.ENV_LANG, raising=False)
    i18n.set_language(None)
    yield use
    i18n.set_language(None)


# ----------------------------------------------------------------------------- choosing the language
def test_language_order(lang, monkeypatch, tmp_path):
    for key in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE", "JPY_SESSION_NAME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    assert i18n.language() == "en"
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert i18n.language() == "zh"  # the locale
    zh_folder = tmp_path / "labs" / "zh"
    zh_folder.mkdir(parents=True)
    notebook = nbformat.v4.new_notebook()
    nbformat.write(notebook, tmp_path / "labs" / "01_x.ipynb")
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "labs" / "01_x.ipynb"))
    assert i18n.language() == "en"  # the notebook's language beats the locale
    notebook.metadata["gan_course"] = {"lab": "01", "language": "zh"}
    nbformat.write(notebook, zh_folder / "01_x.ipynb")
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    monkeypatch.setenv("JPY_SESSION_NAME", "zh/01_x.ipynb")  # relative, as Jupyter gives it
    monkeypatch.chdir(zh_folder)
    assert i18n.language() == "zh"
    monkeypatch.delenv("JPY_SESSION_NAME")
    assert i18n.language() == "zh"  # a kernel started in labs/zh/ (nbval)
    i18n.set_language("en")
    assert i18n.language() == "en"  # set in the process (the grader, per submission)
    lang("zh-CN")
    assert i18n.language() == "zh"  # GAN_COURSE_LANG beats everything
    lang("fr")
    with pytest.raises(ValueError, match="GAN_COURSE_LANG"):
        i18n.language()


def test_feedback_in_the_language_of_each_notebook(lang):
    """What the grader does per student: the notebook's language for that student's messages."""
    lang("en")
    zh_nb = {"metadata": {"gan_course": {"lab": "01", "language": "zh"}}}
    with i18n.using(i18n.notebook_language(zh_nb)):
        assert i18n._(checks.MSG_FALLBACK).startswith("→ 本实验")
        with i18n.using(i18n.notebook_language({"metadata": {}})):
            assert i18n._(checks.MSG_FALLBACK).startswith("→ The rest")
    assert i18n.language() == "en"


def test_notebook_language():
    nb = nbformat.read(ROOT / "solutions" / "01_gan_intuition.ipynb", as_version=4)
    assert i18n.notebook_language(nb) == "en"
    zh = ROOT / "labs" / "zh" / "01_gan_intuition.ipynb"
    if zh.exists():
        assert i18n.notebook_language(json.loads(zh.read_text())) == "zh"


# ----------------------------------------------------------------------------- the library's catalogue
def _marked_messages() -> dict[str, str]:
    from babel.messages.extract import extract_from_dir

    found = {}
    for filename, _, message, _, _ in extract_from_dir(
            str(ROOT / "gan_course"), method_map=[("**.py", "python")],
            keywords={"_": None, "N_": None, "ngettext": (1, 2)}):
        for text in (message if isinstance(message, tuple) else (message,)):
            if text:
                found[text] = filename
    return found


def _translations(entry) -> list[str]:
    """An entry's Chinese: its msgstr, or every form of a plural entry (ngettext)."""
    if entry.msgid_plural:
        return list(entry.msgstr_plural.values()) if all(entry.msgstr_plural.values()) else []
    return [entry.msgstr] if entry.msgstr else []


def test_every_marked_message_has_a_chinese_entry():
    po = polib.pofile(str(LIBRARY_PO))
    translated = {text: e for e in po if _translations(e) and not e.fuzzy and not e.obsolete
                  for text in (e.msgid, e.msgid_plural) if text}
    missing = [f"{where}: {text!r}" for text, where in _marked_messages().items() if text not in translated]
    assert not missing, ("messages with no Chinese entry in "
                         f"{LIBRARY_PO.relative_to(ROOT)} (run `make messages`, then translate):\n" + "\n".join(missing))


def _placeholders(text: str) -> list[str]:
    names = sorted(re.findall(r"\{[^{}]*\}", text))
    return names + sorted(re.findall(r"%\(\w+\)\w|%[sdr]", text))


def test_chinese_messages_keep_their_placeholders():
    for entry in polib.pofile(str(LIBRARY_PO)):
        for text in _translations(entry):
            assert _placeholders(text) == _placeholders(entry.msgid_plural or entry.msgid), entry.msgid


def _wrong_double(x):
    return x * 3


def _double_exercise():
    def double(x):
        return x * 2

    return checks.Exercise(name="double", lab="00", contract=double, inline=True, hint="multiply by 2",
                           cases=lambda rng: [{"x": np.arange(3, dtype=np.float32)}])


def test_a_failed_check_speaks_the_students_language(lang):
    ex = _double_exercise()
    cases = ex.cases(None)
    lang("en")
    english = checks.run_checks(ex, _wrong_double, cases).line()
    assert english.startswith("✗ double [values]: values differ")
    lang("zh")
    chinese = checks.run_checks(ex, _wrong_double, cases).line()
    assert chinese.startswith("✗ double [数值]：数值不一致") and "提示" in chinese and "输入" in chinese, chinese
    assert checks.run_checks(ex, ex.contract, cases).line() == "✓ double：全部 1 个测试用例都与参考答案一致。"
    assert "尚未完成" in checks.run_checks(ex, _not_done, cases).line()
    assert "本实验后面的部分改用课程的参考答案" in i18n._(checks.MSG_FALLBACK)


def _not_done(x):
    raise NotImplementedError()


def test_cli_help_and_errors_in_chinese(lang, capsys):
    lang("zh")
    with pytest.raises(SystemExit):
        cli_main(["release", "--help"])
    out = capsys.readouterr().out
    assert "用法" in out and "只检查 labs/ 是否同步" in out
    with pytest.raises(SystemExit):
        cli_main(["no-such-command"])
    assert "错误" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the Chinese notebooks
def _editions():
    for folder in ("labs", "solutions"):
        for path in sorted((ROOT / folder / "zh").glob("[0-9][0-9]_*.ipynb")):
            yield pytest.param(path, ROOT / folder / path.name, id=f"{folder}/zh/{path.name}")


@pytest.mark.parametrize("zh_path, en_path", list(_editions()))
def test_chinese_code_cells_have_the_english_syntax_tree(zh_path, en_path):
    zh, en = nbformat.read(zh_path, as_version=4), nbformat.read(en_path, as_version=4)
    assert [c.get("id") for c in zh.cells] == [c.get("id") for c in en.cells]
    assert zh.metadata["gan_course"]["language"] == "zh"
    for zh_cell, en_cell in zip(zh.cells, en.cells):
        assert zh_cell.cell_type == en_cell.cell_type
        if en_cell.cell_type == "code":
            assert nbtranslate.code_shape(zh_cell.source) == nbtranslate.code_shape(en_cell.source), (
                f"{zh_path.name} cell {en_cell.get('id')}: the code differs from the English cell's, not only its text")
            first = en_cell.source.split("\n", 1)[0]
            if first.startswith("# EXERCISE:"):
                assert zh_cell.source.split("\n", 1)[0] == first  # the grader finds exercises by the marker
        elif en_cell.cell_type == "markdown" and nbtranslate.notebook_units(nbformat.v4.new_notebook(cells=[en_cell])):
            assert HAN.search(zh_cell.source), f"{zh_path.name} cell {en_cell.get('id')} is still in English"


def test_the_solution_folder_holds_only_english_labs():
    """solutions/zh/ is a folder beside the solution notebooks: the reference loader and the
    release never take a Chinese notebook for a lab."""
    found = checks.solution_notebook("01", ROOT / "solutions")
    assert found.parent == ROOT / "solutions"
    assert all(p.parent.name == "solutions" for p in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def test_every_english_lab_has_a_catalogue():
    labs = sorted(p.stem for p in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    missing = [lab for lab in labs if not (CATALOGUES / "zh" / f"{lab}.po").exists()]
    assert not missing, f"no Chinese catalogue for {', '.join(missing)} (gan-course release --update-catalogues)"
    editions = sorted(p.stem for p in (ROOT / "labs" / "zh").glob("[0-9][0-9]_*.ipynb"))
    assert editions == labs


def _glossary():
    lines = [line for line in (CATALOGUES / "glossary.tsv").read_text(encoding="utf-8").splitlines()
             if line and not line.startswith("#")]
    rows = list(csv.DictReader(lines, delimiter="\t"))
    assert rows and all(r["english"] and r["chinese"] and r["source"] for r in rows)
    return rows


# Where a glossary term may stay untranslated: (catalogue, start of the msgid, English term).
GLOSSARY_EXCEPTIONS: set[tuple[str, str, str]] = set()
_CODE = re.compile(r"```.*?```|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$|\{[^{}\n]*\}|\b\w+\([^()\n]*\)|\b\w+=\S+|\w*_\w*", re.S)


def _prose(text: str) -> str:
    return _CODE.sub(" ", text)


def test_catalogues_use_the_glossary():
    glossary = _glossary()
    problems = []
    for po_path in sorted((CATALOGUES / "zh").glob("*.po")):
        for entry in polib.pofile(str(po_path)):
            if not entry.msgstr or entry.obsolete or entry.msgstr == entry.msgid:
                continue
            prose = _prose(entry.msgid)
            for row in glossary:
                pattern = (r"\b" + re.escape(row["english"]).replace(r"\ ", r"[\s-]").replace("ization", "i[sz]ation")
                           + r"(s|es)?\b")
                # A term the translation keeps verbatim is a name in code (a parameter such as `stride`).
                if (re.search(pattern, prose, re.I) and row["chinese"] not in entry.msgstr
                        and not re.search(pattern, entry.msgstr)):
                    if (po_path.name, entry.msgid[:40], row["english"]) not in GLOSSARY_EXCEPTIONS:
                        problems.append(f"{po_path.name}: {entry.msgid[:60]!r}: “{row['english']}” is "
                                        f"“{row['chinese']}”, not in {entry.msgstr[:60]!r}")
    assert not problems, "\n".join(problems)


def test_translations_keep_formulas_and_code():
    """Display math is never translated (a block of its own stays as it is, and a translated block
    carries the same formulas), and every piece of inline code of the English is in its translation."""
    problems = []
    for po_path in sorted((CATALOGUES / "zh").glob("*.po")):
        for entry in polib.pofile(str(po_path)):
            if not entry.msgstr or entry.obsolete or "markdown" not in (entry.comment or ""):
                continue
            display = re.compile(r"\$\$.*?\$\$", re.S)
            if sorted(display.findall(entry.msgid)) != sorted(display.findall(entry.msgstr)):
                problems.append(f"{po_path.name}: display math differs in {entry.msgid[:60]!r}")
            flat = " ".join(entry.msgstr.split())
            for code in re.findall(r"`[^`]+`", entry.msgid):  # (a span may run over a line break)
                if " ".join(code.split()) not in flat:
                    problems.append(f"{po_path.name}: {code} is missing from the translation of {entry.msgid[:60]!r}")
    assert not problems, "\n".join(problems)


# An ASCII comma, colon or semicolon in Chinese prose: after or before a Chinese character, or glued
# to the next word ("Chintala,2016", "**不用池化**:D"; "批大小 128,6,000 步" reads as one number).
# Thousands separators, times, URLs, and code (spans, calls, slices, tuples such as `(n,)`) are not prose.
_ASCII_IN_CHINESE = re.compile(r"[\u4e00-\u9fff][,;:]|[,;:](?=[\u4e00-\u9fff（])|[,;](?=[^\s\d)\]\"'])"
                               r"|,(?=\d)(?!\d{3}(?!\d))|(?<!\d):(?=[^\s/:=<\"')\]])")


def test_chinese_text_uses_chinese_punctuation():
    """Chinese prose takes the full-width comma, colon and semicolon."""
    paths = [LIBRARY_PO, *sorted((CATALOGUES / "zh").glob("*.po"))]
    bad = [f"{p.name}: {text[:60]!r}" for p in paths for e in polib.pofile(str(p)) for text in _translations(e)
           if HAN.search(text) and _ASCII_IN_CHINESE.search(re.sub(r"\[[^\]\n]*\]", " ", _CODE.sub(" ", text)))]
    assert not bad, "\n".join(bad)


# ----------------------------------------------------------------------------- staleness
def _course(tmp_path):
    (tmp_path / "solutions").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata = nbformat.from_dict({"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                                      "gan_course": {"lab": "09"}})
    nb.cells = [nbformat.v4.new_markdown_cell("# Lab 09\n\nThe generator draws digits.", id="intro"),
                nbformat.v4.new_code_cell('# the critic looks\nprint(f"step {1}: loss {2.0:.2f}")\nrow = {"d_loss": 1}\n'
                                          'print(row["d_loss"], "done")', id="run")]
    nbformat.write(nb, tmp_path / "solutions" / "09_demo.ipynb")
    (tmp_path / "labs").mkdir()
    return tmp_path


def _release(course, *extra):
    return cli_main(["release", "--solutions", str(course / "solutions"), "--labs", str(course / "labs"),
                     "--catalogues", str(course / "i18n"), *extra])


def _translate(po_path, table):
    po = polib.pofile(str(po_path))
    for entry in po:
        if entry.msgid in table:
            entry.msgstr = table[entry.msgid]
            if "fuzzy" in entry.flags:
                entry.flags.remove("fuzzy")
    po.save(str(po_path))


ZH = {"# Lab 09": "# 实验 09", "The generator draws digits.": "生成器画出数字。", "the critic looks": "评论家在看",
      'f"step {1}: loss {2.0:.2f}"': 'f"第 {1} 步：损失 {2.0:.2f}"', "done": "完成"}


def test_release_check_names_missing_and_stale_translations(tmp_path, capsys, lang):
    lang("en")
    course = _course(tmp_path)
    (course / "i18n").mkdir()
    assert _release(course) == 1
    err = capsys.readouterr().err
    assert "09_demo.po: missing: lab 09" in err
    assert _release(course, "--update-catalogues") == 1
    err = capsys.readouterr().err
    po_path = course / "i18n" / "zh" / "09_demo.po"
    assert "lab 09, cell intro (#0): missing translation of the markdown \"The generator draws digits.\"" in err
    assert {e.msgid for e in polib.pofile(str(po_path))} == set(ZH)  # "d_loss" is read as a key: not text
    _translate(po_path, ZH)
    assert _release(course) == 0
    assert _release(course, "--check") == 0
    capsys.readouterr()
    zh = nbformat.read(course / "labs" / "zh" / "09_demo.ipynb", as_version=4)
    assert zh.cells[0].source == "# 实验 09\n\n生成器画出数字。"
    assert zh.cells[1].source == ('# 评论家在看\nprint(f"第 {1} 步：损失 {2.0:.2f}")\nrow = {"d_loss": 1}\n'
                                  'print(row["d_loss"], "完成")')
    assert (course / "solutions" / "zh" / "09_demo.ipynb").exists()

    # The English changes after its translation: --check fails naming lab, cell and entry.
    path = course / "solutions" / "09_demo.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = "# Lab 09\n\nThe generator draws handwritten digits."
    nbformat.write(nb, path)
    assert _release(course, "--check") == 1
    err = capsys.readouterr().err
    assert ("09_demo.po: lab 09, cell intro: stale entry \"The generator draws digits.\": its English is no longer "
            "in 09_demo.ipynb") in err
    assert "cell intro (#0): missing translation of the markdown \"The generator draws handwritten digits.\"" in err
    # The update keeps the old translation as a fuzzy suggestion, which still fails the check ...
    _release(course, "--update-catalogues")
    fuzzy = [e for e in polib.pofile(str(po_path)) if e.fuzzy]
    assert [(e.msgid, e.previous_msgid, e.msgstr) for e in fuzzy] == [
        ("The generator draws handwritten digits.", "The generator draws digits.", "生成器画出数字。")]
    assert _release(course, "--check") == 1
    assert "is fuzzy: the English changed after it was translated" in capsys.readouterr().err
    # ... until the translation is revised.
    _translate(po_path, {"The generator draws handwritten digits.": "生成器画出手写数字。"})
    assert _release(course) == 0
    assert _release(course, "--check") == 0


def test_a_wrong_fstring_translation_is_reported(tmp_path, capsys, lang):
    lang("en")
    course = _course(tmp_path)
    _release(course, "--update-catalogues")
    po_path = course / "i18n" / "zh" / "09_demo.po"
    _translate(po_path, {**ZH, 'f"step {1}: loss {2.0:.2f}"': 'f"第 {3} 步"'})
    capsys.readouterr()
    assert _release(course, "--check") == 1
    assert "does not have the English f-string's {expressions}" in capsys.readouterr().err


def test_markdown_blocks_round_trip():
    source = "# Title\n\ntext\n\n\n```python\nx = 1\n\ny = 2\n```\n\n$$a$$\n"
    blocks = nbtranslate.markdown_blocks(source)
    assert "".join(blocks) == source
    assert [b for b in blocks if nbtranslate.needs_translation(b)] == ["# Title", "text"]


# ----------------------------------------------------------------------------- figures
def test_chinese_figure_has_no_missing_glyphs(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from gan_course import plotting

    def draw():
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1], label="生成器")
        ax.set(title="判别器的损失", xlabel="训练步数", ylabel="损失")
        ax.legend()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fig.savefig(tmp_path / "figure.png")
        plt.close(fig)
        return [str(w.message) for w in caught if "missing from font" in str(w.message)]

    with matplotlib.rc_context({"font.family": ["sans-serif"], "font.sans-serif": ["DejaVu Sans"]}):
        assert draw(), "the check should see boxes when no CJK font is in use"
        family = plotting.use_cjk_font()
        if family is None:
            pytest.skip("no CJK font installed (apt-get install fonts-noto-cjk)")
        missing = draw()
    assert not missing, missing


def test_doctor_reports_the_cjk_font():
    from gan_course import doctor

    finding = doctor.check_cjk_font()[0]
    assert finding.topic == "cjk font"
    assert finding.level == doctor.OK or "fonts-noto-cjk" in finding.fix


def test_no_function_shadows_the_gettext_function():
    """`_` is the translation function in the library: a function that also assigns `_` (a
    throwaway variable) would call the wrong thing."""
    clashes = []
    for path in sorted((ROOT / "gan_course").glob("*.py")):
        for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                nodes = list(ast.walk(fn))
                stores = any(isinstance(n, ast.Name) and n.id == "_" and isinstance(n.ctx, ast.Store) for n in nodes)
                calls = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "_" for n in nodes)
                if stores and calls:
                    clashes.append(f"{path.name}: {fn.name}")
    assert not clashes, clashes
