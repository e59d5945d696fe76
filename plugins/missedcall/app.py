"""Missed calls: an inbound call nobody answered becomes a lead (docs/calls.md#missed-calls-become-leads).

The PBX reports the call through the telephony backend (the Asterisk hook, docs/asterisk.md#inbound-calls);
the core finds the connections of the dialled number and hands the call here when no callback of the
caller is already waiting there. This plugin is both the lead source and an application, so each
connection switches it on and off like the widget: off (the default), a missed call is only logged.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from marshmallow import Schema

from perezvon.api import (
    Application,
    Connection,
    InboundCall,
    IntakeError,
    Lead,
    LeadIntake,
    LeadRow,
    LeadSource,
    MissedCallSource,
    PluginKind,
    compiled_translations,
    plugin_is_on,
)

log = logging.getLogger("perezvon.missedcall")

CATALOG = Path(__file__).with_name("locales")
#: the key of the lead source, the application and the missed-call source
KEY = "missedcall"

#: nobody offered the caller an office or a department: the intake takes the lead without them
LEAD_SOURCE = LeadSource(key=KEY, title="Пропущенный звонок", calltouch_code=16, visitor_chooses=False)


class MissedCallSettings(Schema):
    """Per-connection settings: none. Which calls are this site's is the dialled number's business
    (its operator numbers, its custom operator number: docs/calls.md#the-client-called-in)."""


class MissedCallApp(Application):
    """Nothing runs on the site; the switch says whether this site's missed calls are called back."""

    key = KEY
    #: English msgids; Russian in locales/ru
    title = "Missed calls"
    description = (
        "Inbound calls to this site's numbers that nobody answered become callbacks. Needs the PBX's "
        "inbound-call hook (docs/asterisk.md)."
    )
    summary = "Missed inbound calls become callbacks."
    lead_source = KEY
    settings_schema = MissedCallSettings
    client_script = None

    def lead_rows(self, lead: Lead, locale: str) -> list[LeadRow]:
        dialled = str((lead.extra or {}).get("dialled") or "")
        if not dialled:
            return []
        label = str(compiled_translations(CATALOG, locale).gettext("Number called"))
        return [LeadRow(label, dialled)]


class MissedCalls(MissedCallSource):
    """Hands a missed inbound call to the intake as a lead of this source."""

    key = KEY

    async def take(
        self, call: InboundCall, *, phone: str, dialled: str, connection: Connection, intake: LeadIntake
    ) -> None:
        if not await plugin_is_on(connection, PluginKind.APPLICATION, KEY):
            log.info("missed call from %s to connection %s: the missed-call app is off there", phone, connection.id)
            return
        lead: dict[str, Any] = {
            "token": connection.token,
            "phone": phone,
            # the caller rang the company themselves: calling that number back is what they asked for
            "consent": True,
            "source": KEY,
            # the number the client rang (the call page shows it); the PBX's own codes stay in the log
            "extra": {"dialled": dialled},
        }
        try:
            accepted = await intake.submit(lead, client_ip=None)
        except IntakeError as refused:
            log.warning(
                "missed call from %s to connection %s refused by the intake: %s", phone, connection.id, refused.errors
            )
            return
        log.info(
            "missed call from %s: lead %s, call %s on connection %s",
            phone,
            accepted.lead_id,
            accepted.call_id,
            connection.id,
        )
