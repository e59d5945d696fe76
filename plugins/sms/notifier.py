"""Operators' alerts by SMS (docs/sms.md, "Alerts to operators").

The core's notifications name e-mail addresses (the connection's notification recipients).
An address gets an SMS only when a user with that e-mail has a phone on record -- the number
the user signs in with (:func:`perezvon.api.phones_of_users`); the others are left to the
e-mail notifier. Each text is sent once per notification and number, whatever the retries.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from perezvon.api import HttpPush, Notification, Notifier, compiled_translations, phones_of_users
from perezvon.plugins.sms.providers import provider_for
from perezvon.plugins.sms.sending import send_once

log = logging.getLogger("perezvon.plugins.sms")
LOCALE_DIR = Path(__file__).with_name("locales")
#: English msgids; the Russian texts are in the plugin's catalog
TEXTS = {
    "call_succeeded": "Callback done: {phone}, {site}",
    "call_failed": "Callback failed: {phone}, {site}. Call the visitor back",
    "lead_delayed": "New lead to call: {phone}, {site}",
}


def alert_text(notification: Notification, locale: str) -> str | None:
    template = TEXTS.get(notification.kind)
    if template is None:
        return None
    data = notification.data
    values = {
        "phone": (data.get("lead") or {}).get("phone", ""),
        "site": (data.get("connection") or {}).get("domain", ""),
    }
    return str(compiled_translations(LOCALE_DIR, locale).gettext(template)).format(**values)


class SmsNotifier(Notifier):
    key = "sms"

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self.http = HttpPush()

    def __repr__(self) -> str:  # the settings hold keys
        return f"SmsNotifier(provider={self.settings.get('provider')!r})"

    async def send(self, notification: Notification) -> None:
        body = alert_text(notification, self.settings.get("language", "ru"))
        if body is None:
            return
        phones = await phones_of_users(notification.recipients)
        connection_id = (notification.data.get("connection") or {}).get("id")
        provider = provider_for(self.settings, self.http)
        for phone in sorted(set(phones.values())):
            key = f"alert:{notification.kind}:{notification.subject_id}:{phone}"
            outcome = await send_once(provider, key, connection_id=connection_id, kind="alert", phone=phone, text=body)
            log.info("sms alert %s to a recipient: %s", notification.kind, outcome[:80])
