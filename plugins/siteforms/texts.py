"""This plugin's texts for people: English message ids, Russian in ``locales/ru`` (else the core's catalog)."""

from __future__ import annotations

import functools
from gettext import NullTranslations
from pathlib import Path
from typing import Any

from perezvon.api import DEFAULT_LOCALE, compiled_translations, gettext

LOCALE_DIR = Path(__file__).with_name("locales")


@functools.cache
def _catalog(locale: str) -> NullTranslations:
    return compiled_translations(LOCALE_DIR, locale)


def text(message: str, locale: str = DEFAULT_LOCALE, **values: Any) -> str:
    """``message`` in ``locale``: this plugin's catalog, else the core's; ``%(name)s`` filled from ``values``."""
    translated = _catalog(locale).gettext(message)
    if translated == message:
        translated = gettext(message, locale)
    return translated % values if values else translated
