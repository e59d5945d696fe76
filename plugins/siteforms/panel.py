"""The site-forms panel on a connection's admin page (``templates/panel.html``).

It shows what a customer needs to set site forms up -- the technical address, with a copy
button and a "send a test e-mail" check -- and the e-mails that were kept without a callback
(no phone number found, or refused by the intake), with when they came, from whom, their
subject and why, so that none of them goes unseen.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from perezvon.api import Connection, IntakeReason, PanelMessage, PluginKind, plugin_is_on
from perezvon.plugins.siteforms.addresses import email_of, technical_address
from perezvon.plugins.siteforms.app import KEY
from perezvon.plugins.siteforms.check import Target, send_check
from perezvon.plugins.siteforms.delivery import NO_PHONE_FOUND, UNREADABLE
from perezvon.plugins.siteforms.models import InboundMessage, MessageStatus
from perezvon.plugins.siteforms.server import local_target
from perezvon.plugins.siteforms.texts import text

#: how many of the kept e-mails the panel lists, newest first
LISTED = 50
SEND_TEST = "send_test"

#: the intake's refusals as an admin reads them (English msgids)
REFUSALS = {
    IntakeReason.MALFORMED: "The lead could not be read.",
    IntakeReason.INVALID: "The intake found the lead's fields wrong",
    IntakeReason.SITE_UNKNOWN: "The site is unknown.",
    IntakeReason.SITE_OFF: "Callbacks were switched off for this site.",
    IntakeReason.APP_OFF: "Site forms were switched off for this site.",
    IntakeReason.CANNOT_CALL: "The site could neither call the lead nor e-mail it to anyone.",
    IntakeReason.FOREIGN_ORIGIN: "The lead came from a foreign site.",
    IntakeReason.RATE_LIMITED: "Too many leads at once.",
    IntakeReason.UNAVAILABLE: "The lead could not be stored then.",
}
#: the lead's fields as an admin reads them (English msgids)
FIELDS = {
    "phone": "Phone",
    "name": "Name",
    "office_id": "Office",
    "department_id": "Department",
    "page_url": "Page",
    "token": "Site",
}


def reason_text(error: str, locale: str) -> str:
    """A kept message's ``error`` in words: the parser's msgids, or the intake's
    ``"<reason> <field>: <messages>, ..."`` (delivery.describe) with the reason and fields named."""
    if error in (NO_PHONE_FOUND, UNREADABLE) or not error:
        return text(error or NO_PHONE_FOUND, locale)
    reason, _, details = error.partition(" ")
    if reason not in {r.value for r in IntakeReason}:
        return error
    words = text(REFUSALS[IntakeReason(reason)], locale)
    if IntakeReason(reason) not in (IntakeReason.INVALID, IntakeReason.MALFORMED):
        return words  # the reason says it all; its field (the token) means nothing to an admin
    parts = []
    for part in details.split(", "):
        field, _, messages = part.partition(": ")
        if not messages:
            continue
        said = "; ".join(text(m.strip(), locale) for m in messages.split("; "))
        parts.append(f"{text(FIELDS.get(field, field), locale)} — {said}")
    return f"{words.rstrip('.')}: {', '.join(parts)}" if parts else words


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "Europe/Moscow")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


async def panel_data(connection: Connection, *, domain: str, locale: str) -> dict[str, Any]:
    address = await technical_address(connection.id)
    zone = _zone(connection.timezone)
    rows = (
        await InboundMessage.filter(connection_id=connection.id, status__in=MessageStatus.NEED_A_LOOK)
        .order_by("-received_at")
        .limit(LISTED)
    )
    return {
        "email": email_of(address, domain),
        "accepting": connection.is_on and await plugin_is_on(connection, PluginKind.APPLICATION, KEY),
        "kept": [
            {
                "id": str(row.id),
                "received_at": _as_aware(row.received_at).astimezone(zone).strftime("%d.%m.%Y %H:%M"),
                "sender": row.mail_from,
                "subject": row.subject,
                "status": row.status_label(locale),
                "reason": reason_text(row.error, locale),
            }
            for row in rows
        ],
        "kept_total": await InboundMessage.filter(
            connection_id=connection.id, status__in=MessageStatus.NEED_A_LOOK
        ).count(),
        "zone": zone.key,
    }


def _as_aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)  # SQLite hands UTC back naive


async def panel_action(
    connection: Connection, action: str, *, settings: dict[str, Any], secret: str, locale: str
) -> list[PanelMessage]:
    if action != SEND_TEST:
        return []
    target = local_target(settings["domain"]) or Target(settings["check_host"], settings["check_port"])
    return await send_check(connection, domain=settings["domain"], secret=secret, target=target, locale=locale)
