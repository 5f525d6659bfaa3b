"""UI strings in English and Danish: one JSON file, ``translations.json``, with a table per language.

>>> translate("da", "page_catalog")
'Katalog'
>>> translate("en", "app_status_title", id="A-7")
'Application A-7'
"""

from __future__ import annotations

import json
import string
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "placeholders", "translate", "translations"]

LANGUAGES = ("en", "da")
DEFAULT_LANGUAGE = "en"
_FILE = Path(__file__).with_name("translations.json")


@cache
def translations() -> dict[str, dict[str, str]]:
    """Every language's table ``key -> text`` (read once)."""
    data: dict[str, dict[str, str]] = json.loads(_FILE.read_text(encoding="utf-8"))
    return data


def translate(lang: str, key: str, **values: Any) -> str:
    """The text of ``key`` in ``lang`` (English if the language is unknown), formatted with ``values``.

    An unknown key is returned as it is, so a missing string shows up on screen instead of failing;
    the test suite checks that every key used in the code exists in both languages.
    """
    table = translations().get(lang) or translations()[DEFAULT_LANGUAGE]
    text = table.get(key, key)
    return text.format(**values) if values else text


def placeholders(text: str) -> set[str]:
    """The ``{name}`` fields of a format string."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}
