"""Interface translations: gettext catalogs compiled in memory, one locale per request.

The catalogs are `locales/<lang>/LC_MESSAGES/messages.po`, made and updated by
`scripts/i18n.sh`; English is the source language, so it has none. No .mo file is built:
each .po is compiled in memory the first time it is needed and kept for the process.
"""

from __future__ import annotations

import gettext as gettext_module
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from fastapi import Request

from app.principal import Principal
from app.services.preferences import INTERFACE_LANGUAGES, SOURCE_LANGUAGE

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"
TEMPLATE_PATH = LOCALES_DIR / f"{DOMAIN}.pot"
TRANSLATED_LANGUAGES = tuple(code for code in INTERFACE_LANGUAGES if code != SOURCE_LANGUAGE)
LANGUAGE_NAMES = {"en": "English", "th": "ไทย", "id": "Bahasa Indonesia", "vi": "Tiếng Việt"}
"""Each interface language in its own name, as the picker shows it."""

_PLACEHOLDER = re.compile(r"%(?:\(\w+\))?[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa%]")
_locale: ContextVar[str] = ContextVar("prefstack_ui_locale", default=SOURCE_LANGUAGE)


def po_path(language: str) -> Path:
    """Where the catalog of `language` lives."""
    return LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(language: str) -> Catalog:
    """The parsed .po catalog of a translated language."""
    with po_path(language).open("rb") as handle:
        return read_po(handle, locale=language, domain=DOMAIN)


@cache
def translations(language: str) -> gettext_module.NullTranslations:
    """The compiled translations of `language` (the source language translates to itself)."""
    if language not in TRANSLATED_LANGUAGES:
        return gettext_module.NullTranslations()
    compiled = BytesIO()
    write_mo(compiled, read_catalog(language))  # fuzzy entries are left out until reviewed
    compiled.seek(0)
    return Translations(fp=compiled, domain=DOMAIN)


def load_catalogs() -> None:
    """Compile every catalog now, so a broken .po fails at startup instead of on a page."""
    for language in TRANSLATED_LANGUAGES:
        translations(language)


def current_language() -> str:
    """The interface language of the page being rendered."""
    return _locale.get()


@contextmanager
def activate(language: str) -> Iterator[None]:
    """Translate into `language` inside the block (templates and `gettext` read it)."""
    token = _locale.set(language if language in INTERFACE_LANGUAGES else SOURCE_LANGUAGE)
    try:
        yield
    finally:
        _locale.reset(token)


def gettext(message: str) -> str:
    """`message` in the current interface language."""
    return translations(_locale.get()).gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """The singular or plural form for `count`, in the current interface language."""
    return translations(_locale.get()).ngettext(singular, plural, count)


def best_match(accept_language: str | None) -> str | None:
    """The interface language an Accept-Language header prefers most, or None."""
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            weighted.append((-quality, position, tag.strip().lower()))
    for _quality, _position, tag in sorted(weighted):
        primary = tag.split("-", 1)[0]
        if primary in INTERFACE_LANGUAGES:
            return primary
    return None


def request_language(request: Request) -> str:
    """The caller's stored choice, else the browser's best match, else English."""
    principal: Principal | None = getattr(request.state, "principal", None)
    stored = principal.user.ui_language if principal is not None else None
    if stored is not None and stored in INTERFACE_LANGUAGES:
        return stored
    return best_match(request.headers.get("accept-language")) or SOURCE_LANGUAGE


def placeholders(text: str) -> set[str]:
    """The %-placeholders of a message, such as `%(label)s` (a literal `%%` is none)."""
    return {match.group(0) for match in _PLACEHOLDER.finditer(text) if match.group(0) != "%%"}


def has_stray_percent(text: str) -> bool:
    """Whether `text` has a % that is neither a placeholder nor `%%` (gettext would fail on it)."""
    return "%" in _PLACEHOLDER.sub("", text)


def _forms(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """A message's id or translation as its forms (one, or singular and plurals)."""
    if isinstance(value, str):
        return (value,)
    return tuple(value or ())


def catalog_problems(language: str) -> list[str]:
    """What keeps the `language` catalog from being complete: missing, fuzzy or mismatched entries."""
    if not TEMPLATE_PATH.is_file():
        return [f"{TEMPLATE_PATH} is missing: run scripts/i18n.sh"]
    if not po_path(language).is_file():
        return [f"{po_path(language)} is missing: run scripts/i18n.sh"]
    with TEMPLATE_PATH.open("rb") as handle:
        expected = {message.id for message in read_po(handle) if message.id}
    problems: list[str] = []
    for message in read_catalog(language):
        if not message.id:
            continue
        expected.discard(message.id)
        sources, strings = _forms(message.id), _forms(message.string)
        where = f"{language}: {sources[0]!r}"
        if message.fuzzy:
            problems.append(f"{where} is marked fuzzy: review the translation, then drop the flag")
        if not strings or not all(strings):
            problems.append(f"{where} has no translation")
            continue
        wanted = placeholders(sources[-1])
        for string in strings:
            if placeholders(string) != wanted:
                problems.append(f"{where}: placeholders {sorted(placeholders(string))} should be {sorted(wanted)}")
            if has_stray_percent(string):
                problems.append(f"{where}: write a literal percent sign as %%")
    problems.extend(f"{language}: {missing!r} is not in the catalog: run scripts/i18n.sh" for missing in expected)
    return problems


def main() -> int:
    """`python -m annotation_ui.i18n`: print what is incomplete in every catalog; exit 1 if anything is."""
    problems = [problem for language in TRANSLATED_LANGUAGES for problem in catalog_problems(language)]
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
