"""Checking a plugin's settings against the real service, safely, for the admin.

A plugin (an integration or an application) may define ``async def check(settings)``
(:meth:`perezvon.core.registry.Integration.check`): it asks the service whether it
accepts the settings and raises :class:`perezvon.core.registry.CheckFailed` with
the fields it refused. :func:`check_settings` is the one way the core runs it:
its time is bounded, a network error or a timeout becomes a clear message, any
other exception from plugin code is logged and becomes a message (the admin never
gets a 500), and no secret setting appears in a message or in the log line.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

from perezvon.core.enablement import secret_fields
from perezvon.core.i18n import DEFAULT_LOCALE, compiled_translations, gettext
from perezvon.core.integrations import redact
from perezvon.core.outgoing import AddressNotAllowed, describe
from perezvon.core.registry import Application, CheckFailed, CheckMessage, DeliveryError, Integration

logger = logging.getLogger(__name__)

#: how long a check may take in all, in seconds: the admin waits for it on "save"
CHECK_SECONDS = 10.0
NOT_A_FIELD = CheckFailed.NOT_A_FIELD
#: what the admin reads when a setting's address is refused by the outgoing guard (perezvon.core.outgoing)
ADDRESS_NOT_ALLOWED = (
    "%(host)s leads to %(address)s, an address inside a private network: only public addresses are reached "
    "(the server's administrator can allow a network with PEREZVON_OUTGOING_ALLOW)."
)

Plugin = Integration | Application


def can_check(plugin: Plugin) -> bool:
    """Whether the plugin's class defines its own ``check`` (else there is nothing to run or show)."""
    own = getattr(type(plugin), "check", None)
    return own is not None and own not in (Integration.check, Application.check)


async def check_settings(
    plugin: Plugin, settings: dict[str, Any], *, locale: str = DEFAULT_LOCALE, timeout: float = CHECK_SECONDS
) -> dict[str, list[str]]:
    """Run ``plugin.check(settings)``: ``{}`` when the service accepts them, else field -> messages.

    ``settings`` are the validated per-connection settings (secrets included).
    Messages are in ``locale``; ``"_schema"`` holds those about no one field.
    """
    secrets = _secret_values(plugin, settings)
    try:
        async with asyncio.timeout(timeout):
            await plugin.check(settings)
    except CheckFailed as refused:
        return _translated(plugin, refused.errors, locale, secrets)
    except TimeoutError:
        return _one(
            "The service did not answer within %(seconds)s s. Try again later.", locale, secrets, seconds=f"{timeout:g}"
        )
    except DeliveryError as failed:
        msgid, params = _delivery_message(failed)
        return _one(msgid, locale, secrets, **params)
    except Exception:  # noqa: BLE001 - plugin code: whatever it raises, the admin gets a message
        logger.error(
            "the check of plugin %r failed:\n%s",
            getattr(plugin, "key", type(plugin).__name__),
            redact(traceback.format_exc(), secrets),
        )
        return _one("The check failed inside Perezvon; the details are in the server log.", locale, secrets)
    return {}


def _delivery_message(failed: DeliveryError) -> tuple[str, dict[str, Any]]:
    """What an unmapped failure of :class:`perezvon.core.integrations.HttpPush` means to an admin."""
    if isinstance(failed, AddressNotAllowed):
        return ADDRESS_NOT_ALLOWED, describe(failed)
    if failed.timed_out:
        return "The service did not answer in time. Try again later.", {}
    if failed.status is None:
        return "The service could not be reached. Check its address and the server's network.", {}
    if failed.status >= 500 or failed.status == 429:
        return "The service answered %(status)s (a failure on its side). Try again later.", {"status": failed.status}
    return "The service refused the request (%(status)s).", {"status": failed.status}


def _secret_values(plugin: Plugin, settings: dict[str, Any]) -> list[str]:
    schema = getattr(plugin, "settings_schema", None)
    names = secret_fields(schema) if schema is not None else set()
    return [str(settings[name]) for name in names if settings.get(name)]


def _one(msgid: str, locale: str, secrets: list[str], **params: Any) -> dict[str, list[str]]:
    return {NOT_A_FIELD: [_text(None, (msgid, params), locale, secrets)]}


def _translated(
    plugin: Plugin, errors: dict[str, list[CheckMessage]], locale: str, secrets: list[str]
) -> dict[str, list[str]]:
    """The plugin's messages translated; those about a field its schema lacks go under ``"_schema"``."""
    schema = getattr(plugin, "settings_schema", None)
    known = set(schema().fields) if schema is not None else set()
    result: dict[str, list[str]] = {}
    for field, messages in errors.items():
        if not messages:
            continue
        target = field if field in known else NOT_A_FIELD
        result.setdefault(target, []).extend(_text(plugin, message, locale, secrets) for message in messages)
    if not result:  # a refusal without a reason still refuses
        return _one("The service refused these settings.", locale, secrets)
    return result


def _text(plugin: Plugin | None, message: CheckMessage, locale: str, secrets: list[str]) -> str:
    msgid, params = (message, {}) if isinstance(message, str) else message
    text = _plugin_catalog(plugin, locale).gettext(msgid) if plugin is not None else msgid
    if text == msgid:
        text = gettext(msgid, locale)
    if params:
        try:
            text = text % params
        except (KeyError, TypeError, ValueError):  # a placeholder the params lack: show the text as it is
            pass
    return redact(text, secrets)


def _plugin_catalog(plugin: Plugin, locale: str) -> Any:
    """The catalog in ``locales/`` next to the module that defines the plugin's class."""
    module = sys.modules.get(type(plugin).__module__)
    path = getattr(module, "__file__", None)
    locale_dir = Path(path).with_name("locales") if path else Path("/nonexistent")
    return compiled_translations(locale_dir, locale)
