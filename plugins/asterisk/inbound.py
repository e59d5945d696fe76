"""Inbound calls from the PBX: the dialplan's hook, read off the AMI link (docs/asterisk.md#inbound-calls).

The dialplan pushes a hangup handler on every inbound call (``plugins/asterisk/conf/
extensions_perezvon_inbound.conf``); when the call ends it sends::

    Event: UserEvent
    ... the channel's snapshot (Uniqueid, Linkedid ...)
    UserEvent: PerezvonInbound
    Caller: 79161234567
    Dialled: 74951234567
    DialStatus: NOANSWER
    Answered:

This module turns that into a :class:`perezvon.api.InboundCall` and hands it to the core
(``backend.inbound``), which applies the rules: an answered call stops the caller's redials, a
missed one may become a lead (docs/calls.md#the-client-called-in). Why one event at the end and
not the channel events as they come: the outcome -- did a person answer? -- is known only then,
and a hangup handler runs however the dialplan reached (or did not reach) a person: ``Dial()``,
a queue, an IVR the caller left.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from perezvon.api import InboundCall

log = logging.getLogger("perezvon.asterisk.inbound")

#: the UserEvent the shipped hangup handler sends
EVENT_NAME = "PerezvonInbound"
#: what a dialplan may put in a header: far more than any phone number, less than a flood
MAX_HEADER = 64


def inbound_call(event: Any, pbx: str = "") -> InboundCall | None:
    """The inbound call a ``PerezvonInbound`` UserEvent reports, or None for any other event.

    ``pbx`` names the Asterisk (``host:port``): its ids restart with it, two PBXs may share one."""
    if event.get("Event") != "UserEvent" or event.get("UserEvent") != EVENT_NAME:
        return None
    status = str(event.get("DialStatus") or "").strip().upper()[:MAX_HEADER]
    channel = str(event.get("Linkedid") or event.get("Uniqueid") or "")[:MAX_HEADER]
    answered = status == "ANSWER" or str(event.get("Answered") or "").strip().lower() == "yes"
    return InboundCall(
        caller=str(event.get("Caller") or "").strip()[:MAX_HEADER],
        dialled=str(event.get("Dialled") or "").strip()[:MAX_HEADER],
        answered=answered,
        # the oldest channel of the call: the same id in every worker's copy of the event
        pbx_id=f"{pbx}/{channel}" if channel else "",
        status=status,
    )


class InboundWatcher:
    """Listens for the hook's UserEvent on the AMI link and reports each call to the core."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self._reporting: set[asyncio.Future[Any]] = set()

    def attach(self, manager: Any, pbx: str = "") -> None:
        """Called once a link's manager exists; panoramisk keeps it across reconnects.
        ``pbx`` (``host:port``) names the PBX of the pool whose link it is."""
        manager.register_event("UserEvent", lambda m, event: self.on_event(m, event, pbx))

    def on_event(self, _manager: Any, event: Any, pbx: str = "") -> None:
        call = inbound_call(event, pbx or f"{self.backend.link.host}:{self.backend.link.port}")
        if call is None:
            return
        sink = self.backend.inbound
        if sink is None:  # a backend run alone (no worker): nobody applies the rules
            log.debug("inbound call %s: nobody listens", call.pbx_id)
            return
        task = asyncio.ensure_future(self._report(sink, call))
        self._reporting.add(task)  # the loop holds tasks weakly
        task.add_done_callback(self._reporting.discard)

    @staticmethod
    async def _report(sink: Any, call: InboundCall) -> None:
        try:
            await sink.report(call)
        except Exception:  # the database went away, say: one inbound call is not worth the link
            log.exception("inbound call %s from %r could not be handled", call.pbx_id, call.caller)

    async def drain(self) -> None:
        """Wait for the reports in progress (the tests, and a stopping worker)."""
        if self._reporting:
            await asyncio.gather(*self._reporting, return_exceptions=True)
