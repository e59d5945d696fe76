"""The admin's texts: English message ids, Russian first (``locales/ru``), English second.

The language is the user's choice (a cookie set by the language switch), else
``Accept-Language``, else Russian. Templates use ``_()``; Python code uses
:func:`translate`. Marshmallow errors are translated through the core's
catalog first (``perezvon.core.i18n``), then the admin's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from gettext import NullTranslations
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, PackageLoader, PrefixLoader, select_autoescape

from perezvon.core import i18n as core_i18n

LOCALE_DIR = Path(__file__).with_name("locales")
LOCALES = core_i18n.LOCALES
LANG_COOKIE = "pz_lang"


def translations(locale: str) -> NullTranslations:
    return core_i18n.compiled_translations(LOCALE_DIR, locale)


def translate(message: str, locale: str, **values: Any) -> str:
    text = translations(locale).gettext(message)
    if text == message:
        text = core_i18n.translate_message(message, locale)
    return text % values if values else text


def plugin_text(plugin: object, locale: str) -> Callable[[str], str]:
    """How a plugin's texts (its settings' labels and help, its title) are translated: through the
    plugin's own catalog (``locales/`` in its package, found by convention), else the admin's."""

    def text(message: str) -> str:
        translated = core_i18n.plugin_gettext(plugin, message, locale)
        return translated if translated != message else translate(message, locale)

    return text


def translate_errors(errors: Any, locale: str) -> Any:
    if isinstance(errors, dict):
        return {key: translate_errors(value, locale) for key, value in errors.items()}
    if isinstance(errors, list):
        return [translate_errors(item, locale) for item in errors]
    if isinstance(errors, str):
        return translate(errors, locale)
    return errors


def pick_locale(request) -> str:
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LOCALES:
        return chosen
    return core_i18n.negotiate(request.headers.get("accept-language"))


def plugin_template_packages(host: Any) -> tuple[tuple[str, str], ...]:
    """(plugin, package) of each enabled plugin with a ``templates/`` folder."""
    return tuple(sorted((name, package) for name, (package, _) in host.plugin_folders("templates").items()))


@functools.cache
def environment(locale: str, plugin_templates: tuple[tuple[str, str], ...] = ()) -> Environment:
    """The admin's templates, and each plugin's ``templates/`` under its name:
    ``"mail/x.html"`` is ``<the mail plugin's package>/templates/x.html``."""
    plugins = PrefixLoader({name: PackageLoader(package, "templates") for name, package in plugin_templates})
    env = Environment(
        loader=ChoiceLoader([PackageLoader("perezvon.web.admin", "templates"), plugins]),
        autoescape=select_autoescape(["html"], default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # the templates ship with the package: no stat() of each file at every page
    )
    env.install_gettext_translations(translations(locale), newstyle=True)
    env.globals["locale"] = locale
    from perezvon.web.admin import labels

    env.globals.update(
        status_label=lambda code: labels.STATUS.get(code, code),
        auto_tag_label=lambda code: labels.AUTO_TAG.get(code, code),
        direction_label=lambda code: labels.DIRECTION.get(code, code or ""),
        channel_label=lambda code: labels.CHANNEL.get(code, code),
        grant_label=lambda code: labels.GRANT.get(code, code),
        trigger_label=lambda code: labels.TRIGGER.get(code, code),
        visit_label=lambda key: labels.VISIT.get(key, key),
        weekdays=labels.WEEKDAYS,
        trigger_codes=labels.TRIGGER,
        # messages that may come from the core's catalog too (schema errors, reasons)
        tr=lambda message: translate(message, locale),
    )
    return env
