"""The library's language: English or Simplified Chinese, and `_()` for its messages.

The language is, in this order:

0. inside ``with using(lang):``, that language (the grader, per student);
1. `GAN_COURSE_LANG` (``en`` or ``zh``; ``zh_CN``, ``zh-CN`` and ``zh-Hans`` mean ``zh``);
2. the language set in this process with `set_language` (the grader sets each
   submission's language this way);
3. the notebook's language: a notebook that Jupyter runs names itself in the kernel's
   environment (`JPY_SESSION_NAME`), and a notebook of the Chinese edition lives in a
   ``zh/`` folder (``labs/zh/``, ``solutions/zh/``) and says so in its metadata
   (``metadata.gan_course.language``); a kernel started in such a folder (nbval, a
   kernel without a session name) counts too;
4. the locale (``LC_ALL``, ``LC_MESSAGES``, ``LANG``, ``LANGUAGE``);
5. English.

Messages are marked the gettext way: ``_("text")`` where the text is used, ``N_("text")``
where a constant is defined (translated later, at the point of use, with ``_(CONSTANT)``),
``ngettext(singular, plural, n)`` for counts.  Babel extracts them (``make messages``) into
``gan_course/locale/gan_course.pot``; the Chinese catalogue is
``gan_course/locale/zh_CN/LC_MESSAGES/gan_course.po``.

The ``.po`` file is the only thing shipped: it is compiled in memory with polib the first
time a message is asked for in Chinese.  A compiled ``.mo`` beside it would be a second copy
that can go stale without anyone noticing; compiling a catalogue of a few hundred messages
takes milliseconds.
"""
from __future__ import annotations

import contextlib
import gettext
import io
import json
import locale as _locale
import os
from pathlib import Path

ENV_LANG = "GAN_COURSE_LANG"
LANGUAGES = ("en", "zh")
DOMAIN = "gan_course"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
# The folder name of the Chinese edition (labs/zh/, solutions/zh/).
EDITION_FOLDERS = {"zh": "zh"}

_chosen: str | None = None
_forced: str | None = None  # set by `using` for a block
_translations: dict[str, gettext.NullTranslations] = {}


def normalize(value: str | None) -> str | None:
    """'zh_CN.UTF-8', 'zh-CN', 'zh-Hans', 'zh' -> 'zh'; 'en_US', 'C', 'POSIX' -> 'en'; junk -> None."""
    if not value:
        return None
    value = value.strip().split(".")[0].split("@")[0].replace("-", "_").lower()
    if value.startswith("zh"):
        return "zh"
    if value.startswith("en") or value in ("c", "posix"):
        return "en"
    return None


def set_language(lang: str | None) -> None:
    """Choose the language for this process (None: back to the automatic choice)."""
    global _chosen
    if lang is not None and normalize(lang) is None:
        raise ValueError(f"unknown language {lang!r}; use one of {', '.join(LANGUAGES)}")
    _chosen = normalize(lang)


@contextlib.contextmanager
def using(lang: str | None):
    """Messages in `lang` inside the block, whatever the environment says: the grader writes
    each student's feedback in the language of that student's notebook::

        with i18n.using(i18n.notebook_language(nb)):
            text = feedback_markdown(...)
    """
    global _forced
    before = _forced
    _forced = normalize(lang) if lang else None
    try:
        yield
    finally:
        _forced = before


def notebook_language(nb) -> str:
    """The language of a notebook (an nbformat node or its JSON dict): 'zh' or 'en'."""
    meta = nb.get("metadata", {}) if hasattr(nb, "get") else {}
    return normalize(meta.get("gan_course", {}).get("language")) or "en"


_SESSIONS: dict[tuple[str, str], str | None] = {}


def _session_language() -> str | None:
    """The language of the notebook this kernel runs, when Jupyter or the folder says (looked
    up once per notebook and folder: every message asks)."""
    key = (os.environ.get("JPY_SESSION_NAME", "").strip(), os.getcwd())
    if key not in _SESSIONS:
        _SESSIONS[key] = _find_session_language(key[0])
    return _SESSIONS[key]


def _find_session_language(session: str) -> str | None:
    if session:
        # Jupyter gives the notebook's path relative to its root; the kernel runs in its folder.
        for path in (Path(session), Path.cwd() / Path(session).name):
            try:
                with open(path, encoding="utf-8") as f:
                    return notebook_language(json.load(f))
            except (OSError, ValueError, AttributeError):
                continue
        if Path(session).parent.name in EDITION_FOLDERS.values():
            return "zh"
        return None
    if Path.cwd().name in EDITION_FOLDERS.values():
        return "zh"
    return None


def _locale_language() -> str | None:
    for key in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        found = normalize(os.environ.get(key, "").split(":")[0])
        if found:
            return found
    try:
        return normalize(_locale.getlocale(_locale.LC_MESSAGES)[0])
    except (AttributeError, ValueError):  # pragma: no cover - LC_MESSAGES is missing on Windows
        return None


def language() -> str:
    """The language messages are printed in now: 'en' or 'zh' (see the module's docstring)."""
    if _forced:
        return _forced
    env = os.environ.get(ENV_LANG, "").strip()
    if env:
        found = normalize(env)
        if found is None:
            raise ValueError(f"{ENV_LANG}={env!r} is not a language; use one of {', '.join(LANGUAGES)}")
        return found
    return _chosen or _session_language() or _locale_language() or "en"


def catalogue_path(lang: str) -> Path:
    return LOCALE_DIR / {"zh": "zh_CN"}.get(lang, lang) / "LC_MESSAGES" / f"{DOMAIN}.po"


def translation(lang: str | None = None) -> gettext.NullTranslations:
    """The gettext translation object of a language (English: messages as written)."""
    lang = normalize(lang) or language()
    if lang not in _translations:
        if lang == "en":
            _translations[lang] = gettext.NullTranslations()
        else:
            import polib

            po = polib.pofile(str(catalogue_path(lang)))
            # Only finished entries: a fuzzy one translates an older English text.
            for entry in po:
                if entry.fuzzy:
                    entry.msgstr = ""
                    entry.msgstr_plural = {k: "" for k in entry.msgstr_plural}
            _translations[lang] = gettext.GNUTranslations(io.BytesIO(po.to_binary()))
    return _translations[lang]


def _(message: str) -> str:
    """`message` in the current language."""
    return translation().gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translation().ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a constant for extraction; `_()` translates it where it is used."""
    return message


gettext_ = _
