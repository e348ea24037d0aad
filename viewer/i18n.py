"""Interface strings: Ukrainian by default, English as a choice per user or cookie."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from viewer.config import LANGUAGES

LOCALES_DIR = Path(__file__).parent / "locales"
LANGUAGE_COOKIE = "dozor_lang"


@cache
def catalog(language: str) -> dict[str, str]:
    if language not in LANGUAGES:
        raise KeyError(language)
    with open(LOCALES_DIR / f"{language}.json", encoding="utf-8") as f:
        data: dict[str, str] = json.load(f)
    return data


def translate(language: str, key: str, **values: object) -> str:
    """The string for key; falls back to Ukrainian, then to the key itself."""
    text = catalog(language).get(key) or catalog("uk").get(key) or key
    return text.format(**values) if values else text


def choose_language(
    user_language: str | None, cookie_language: str | None, default: str
) -> str:
    for candidate in (user_language, cookie_language):
        if candidate in LANGUAGES:
            return candidate
    return default
