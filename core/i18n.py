"""Translations: Russian first, English second (Babel catalogs under core/locales).

Message ids in the source are English. Where a message is written for a
person, the language is chosen from ``Accept-Language`` (:func:`negotiate`;
Russian when nothing matches) and passed to :func:`gettext`.
"""

from __future__ import annotations

import functools
import gettext as gettext_module
import io
import re
import sys
from pathlib import Path
from typing import Any

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALES = ("ru", "en")
DEFAULT_LOCALE = "ru"
_LOCALE_DIR = Path(__file__).with_name("locales")


@functools.cache
def _catalog(locale: str) -> dict[str, str]:
    """msgid -> translation, read from the .po file (no compile step needed)."""
    path = _LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return {}
    with open(path, "rb") as fh:
        catalog = read_po(fh, locale=locale)
    return {
        m.id: m.string for m in catalog if m.id and isinstance(m.id, str) and m.string and isinstance(m.string, str)
    }


@functools.cache
def compiled_translations(locale_dir: Path, locale: str) -> gettext_module.NullTranslations:
    """The catalog ``<locale_dir>/<locale>/LC_MESSAGES/messages.po``, compiled in memory, for
    gettext-style users (Jinja2's i18n extension); English has none: its ids are the text."""
    path = locale_dir / locale / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return gettext_module.NullTranslations()
    with open(path, "rb") as fh:
        catalog = read_po(fh, locale=locale)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


def gettext(message: str, locale: str = DEFAULT_LOCALE) -> str:
    return _catalog(locale).get(message, message)


# --- a plugin's own catalog, found by convention ------------------------------------------------


@functools.cache
def _locale_dir_of_module(module_name: str) -> Path | None:
    module = sys.modules.get(module_name)
    path = Path(getattr(module, "__file__", None) or "")
    if not path.name:
        return None
    folder = path.parent
    while True:  # beside the module, else in an enclosing folder of the same package
        if (folder / "locales").is_dir():
            return folder / "locales"
        if not (folder.parent / "__init__.py").exists():
            return None
        folder = folder.parent


def plugin_locale_dir(plugin: object) -> Path | None:
    """The ``locales/`` folder of the package that defines ``plugin`` (an Application, an
    Integration, ...): beside the module of its class, or in an enclosing folder of that package.
    No registration: a plugin that ships ``locales/ru/LC_MESSAGES/messages.po`` is translated."""
    cls = plugin if isinstance(plugin, type) else type(plugin)
    return _locale_dir_of_module(cls.__module__)


def plugin_gettext(plugin: object, message: str, locale: str = DEFAULT_LOCALE) -> str:
    """``message`` (an English msgid) through the plugin's own catalog, else the core's."""
    folder = plugin_locale_dir(plugin)
    if folder is not None:
        text = compiled_translations(folder, locale).gettext(message)
        if text != message:
            return text
    return gettext(message, locale)


_ = gettext


def negotiate(accept_language: str | None) -> str:
    if not accept_language:
        return DEFAULT_LOCALE
    preferred = []
    for part in accept_language.split(","):
        tag = part.split(";")[0].strip().replace("-", "_")
        if tag and tag != "*":
            preferred.append(tag)
    return str(Locale.negotiate(preferred, LOCALES, sep="_") or DEFAULT_LOCALE)


#: marshmallow's messages with values in them (``Range``, ``Length``, ``OneOf``, ``Equal``, ``ContainsOnly``)
#: arrive formatted; each is matched here and translated through its template, a message id with
#: ``%(name)s`` placeholders in the catalog
_FORMATTED_TEMPLATES = (
    "Must be greater than or equal to %(min)s and less than or equal to %(max)s.",
    "Must be greater than %(min)s and less than %(max)s.",
    "Must be greater than or equal to %(min)s and less than %(max)s.",
    "Must be greater than %(min)s and less than or equal to %(max)s.",
    "Must be greater than or equal to %(min)s.",
    "Must be greater than %(min)s.",
    "Must be less than or equal to %(max)s.",
    "Must be less than %(max)s.",
    "Shorter than minimum length %(min)s.",
    "Longer than maximum length %(max)s.",
    "Length must be between %(min)s and %(max)s.",
    "Length must be %(equal)s.",
    "Must be one of: %(choices)s.",
    "Must be equal to %(other)s.",
    "One or more of the choices you made was not in: %(choices)s.",
)


def _placeholder_pattern(found: re.Match[str]) -> str:
    name = found.group(1)
    return f"(?P<{name}>.+)" if name == "choices" else f"(?P<{name}>\\S+)"


_FORMATTED = [
    # a bound or a length has no spaces; a list of choices has
    (re.compile("^" + re.sub(r"%\\\((\w+)\\\)s", _placeholder_pattern, re.escape(template)) + "$"), template)
    for template in _FORMATTED_TEMPLATES
]


def translate_message(message: str, locale: str = DEFAULT_LOCALE) -> str:
    """``message`` from the core's catalog; a marshmallow message with values through its template."""
    text = gettext(message, locale)
    if text != message or locale == "en":
        return text
    for pattern, template in _FORMATTED:
        found = pattern.match(message)
        if found:
            return gettext(template, locale) % found.groupdict()
    return message


def translate_errors(errors: Any, locale: str = DEFAULT_LOCALE) -> Any:
    """Translate every message of a marshmallow-style errors dict."""
    if isinstance(errors, dict):
        return {key: translate_errors(value, locale) for key, value in errors.items()}
    if isinstance(errors, list):
        return [translate_errors(item, locale) for item in errors]
    if isinstance(errors, str):
        return translate_message(errors, locale)
    return errors
