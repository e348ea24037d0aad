"""A very small template renderer: no dependency, HTML-escaped by default.

Syntax in viewer/templates/*.html: `{{t.key}}` is the translated string for key,
`{{name}}` an escaped value, `{{!name}}` a value already rendered as HTML.
"""

from __future__ import annotations

import html
import re
from functools import cache
from pathlib import Path

from viewer.i18n import translate

TEMPLATES_DIR = Path(__file__).parent / "templates"
_PLACEHOLDER = re.compile(r"\{\{(!?)([a-zA-Z0-9_.]+)\}\}")


@cache
def _source(name: str) -> str:
    return (TEMPLATES_DIR / name).read_text(encoding="utf-8")


def escape(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def render(name: str, language: str, **values: object) -> str:
    def sub(match: re.Match[str]) -> str:
        raw, key = match.group(1), match.group(2)
        if key.startswith("t."):
            return escape(translate(language, key[2:]))
        if key not in values:
            raise KeyError(f"template {name}: no value for {key}")
        return str(values[key]) if raw else escape(values[key])

    return _PLACEHOLDER.sub(sub, _source(name))
