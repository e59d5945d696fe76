"""Inbound calls the PBX reports: the client called in (docs/calls.md#the-client-called-in).

A telephony backend whose PBX tells it of inbound calls (the Asterisk plugin, through a
dialplan hook: docs/asterisk.md) hands each one, once it has ended, to
:meth:`InboundCalls.report`, which the core sets as the backend's ``inbound`` before it starts.
Here the backend-neutral rules apply:

* the caller's number is read as E.164 (``phonenumbers``, as every phone in Perezvon); the
  dialled number (DID) names the connections it belongs to -- those with that number as an
  operator number or as their *custom operator number* (the number their clients are shown);
* an inbound call someone **answered** stops the redials its caller is waiting for on those
  connections: each such call is finished with its last attempt's status and the reason
  :data:`CALLED_IN`;
* an inbound call **nobody answered** leaves a waiting callback alone (it will ring the client
  anyway); from a number with no callback waiting it goes to the registered
  :class:`MissedCallSource` plugins, which make it a lead through the intake.

Every worker's PBX link sees the same event; a Redis mark per PBX call id makes one of them act.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any, ClassVar

from tortoise.transactions import in_transaction

from perezvon.core.models import (
    Attempt,
    Call,
    CallRedial,
    CallState,
    Connection,
    DisplayStatus,
    OperatorNumber,
)
from perezvon.core.phones import InvalidPhone, normalise
from perezvon.core.queue import Job, JobQueue, delivery_job, remember
from perezvon.core.registry import CALL_FINISHED

if TYPE_CHECKING:
    from arq.connections import ArqRedis

    from perezvon.core.intake import LeadIntake
    from perezvon.core.registry import Registry

log = logging.getLogger("perezvon.inbound")

#: the reason a call's redials stopped (an English msgid; Russian in core/locales)
CALLED_IN = "the client called in"
#: how long the "this PBX call was handled" mark lives: longer than any worker's events lag
SEEN_TTL_SECONDS = 24 * 3600


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass(frozen=True)
class InboundCall:
    """One ended inbound call as the PBX reported it (numbers as it gave them)."""

    caller: str
    dialled: str
    answered: bool
    #: the PBX's id of the call (Asterisk: the Linkedid): every worker sees the event, one acts on it
    pbx_id: str = ""
    #: how the PBX said it ended (Asterisk: DIALSTATUS), for the log and the lead
    status: str = ""


@dataclasses.dataclass
class InboundResult:
    """What :meth:`InboundCalls.report` did (the tests and the log read it)."""

    #: why nothing was done ("" when something was)
    ignored: str = ""
    connections: list[int] = dataclasses.field(default_factory=list)
    #: the calls whose redials stopped
    stopped: list[str] = dataclasses.field(default_factory=list)
    #: connections whose missed-call sources were given the call
    handed_to: list[int] = dataclasses.field(default_factory=list)


class MissedCallSource:
    """A lead source fed by missed inbound calls (``registry.add_missed_call_source``).

    ``take`` is awaited once per missed call and connection the call belongs to, when no
    callback of the caller is waiting there (``phone`` the caller, ``dialled`` the number they
    rang, both E.164); it hands the lead to ``intake.submit`` like any
    other source (and may decide not to, e.g. when its app is off for the connection).
    """

    key: ClassVar[str]

    async def take(
        self, call: InboundCall, *, phone: str, dialled: str, connection: Connection, intake: LeadIntake
    ) -> None:
        raise NotImplementedError  # pragma: no cover - interface


async def connections_for_number(dialled: str) -> list[Connection]:
    """The connections a dialled number (E.164) belongs to: as an operator number, or as the
    custom operator number of their telephony settings."""
    ids = set(await OperatorNumber.filter(phone=dialled).values_list("connection_id", flat=True))
    # the custom number lives in the telephony JSON, which neither database indexes the same way: read in
    # Python, two columns per connection (a few ms for thousands of sites, once per ended inbound call)
    for connection_id, telephony in await Connection.all().values_list("id", "telephony"):
        custom = str((telephony or {}).get("custom_operator_number") or "")
        if custom and _e164(custom) == dialled:
            ids.add(connection_id)
    return list(await Connection.filter(id__in=ids).order_by("id")) if ids else []


def _e164(raw: str) -> str | None:
    try:
        return normalise(raw)
    except InvalidPhone:
        return None


def _pbx_number(raw: str) -> str | None:
    """A number as PBXs write it: E.164 with or without '+' ("74951234567"), or national ("84951234567")."""
    text = (raw or "").strip()
    found = _e164(text)
    if found is None and text.isdigit() and len(text) > 10:  # "74951234567": international without '+'
        found = _e164("+" + text)
    return found


async def stop_redials(
    phone: str, connection_ids: list[int], registry: Registry, redis: Any, now: dt.datetime
) -> list[str]:
    """Finish every call of ``phone`` on these connections that waits for a redial, reason :data:`CALLED_IN`.

    Only calls with an attempt behind them: a first attempt not placed yet has no status to end
    with and stays as it is. A call being dialled right now ends by the normal rules."""
    waiting = await Call.filter(
        connection_id__in=connection_ids, state=CallState.SCHEDULED, attempts_made__gte=1, lead__phone=phone
    ).values_list("id", "connection_id", "attempts_made")
    stopped: list[str] = []
    for call_id, connection_id, made in waiting:
        if await CallRedial.exists(call_id=call_id, attempt_number=made + 1):
            log.info("call %s: the client called in, but a person asked to call again: left as asked", call_id)
            continue
        last = await Attempt.get_or_none(call_id=call_id, number=made)
        display = last.display_status if last is not None else DisplayStatus.UNSUCCESSFUL
        jobs = await _after_final(str(call_id), connection_id, registry)
        async with in_transaction():
            changed = await Call.filter(id=call_id, state=CallState.SCHEDULED, attempts_made=made).update(
                state=CallState.FINISHED,
                display_status=display,
                reason=CALLED_IN,
                next_attempt_at=None,
                next_direction=None,
                is_target=False,  # not a conversation of ours: unsuccessful calls are non-target
                finished_at=now,
            )
            if not changed:  # a redial was placed (or a person asked for one) meanwhile
                continue
            await remember(jobs, now)
        stopped.append(str(call_id))
        log.info("call %s: the client called in; its redials stop", call_id)
        if redis is not None and jobs:
            try:
                await JobQueue(redis).enqueue(jobs)
            except Exception as exc:  # remembered: the sweep queues them
                log.warning("call %s: follow-up jobs not queued (%s)", call_id, exc)
    return stopped


async def _after_final(call_id: str, connection_id: int, registry: Registry) -> list[Job]:
    """``call_finished`` to the integrations on for the connection, as after any chain that ends.

    No ``call_failed`` e-mail: it says "callback failed", and this chain did not fail -- the client
    reached the company themselves and a person answered (docs/calls.md#the-client-called-in)."""
    from perezvon.core import enablement  # the engine's own imports, kept off this module's load

    return [
        delivery_job(key, CALL_FINISHED, call_id)
        for key in sorted((await enablement.keys_on(connection_id))[enablement.INTEGRATION])
        if key in registry.integrations and registry.integrations[key].handles(CALL_FINISHED)
    ]


class InboundCalls:
    """Where a telephony backend reports the PBX's inbound calls (set as ``backend.inbound``)."""

    def __init__(self, *, registry: Registry, intake: LeadIntake | None, redis: ArqRedis | None) -> None:
        self.registry = registry
        self.intake = intake
        self.redis = redis

    async def report(self, call: InboundCall, now: dt.datetime | None = None) -> InboundResult:
        """Apply the rules to one ended inbound call; never raises for bad input (logs it)."""
        now = now or utcnow()
        phone = _pbx_number(call.caller)
        if phone is None:
            log.info("inbound call %s from %r: not a phone number; ignored", call.pbx_id or "?", call.caller)
            return InboundResult(ignored="caller")
        dialled = _pbx_number(call.dialled)
        if dialled is None:
            log.info("inbound call %s to %r: not a phone number; ignored", call.pbx_id or "?", call.dialled)
            return InboundResult(ignored="dialled")
        if call.pbx_id and not await self._first_to_see(call.pbx_id):
            return InboundResult(ignored="seen")
        connections = await connections_for_number(dialled)
        if not connections:
            log.info("inbound call %s to %s: no site has this number; ignored", call.pbx_id or "?", dialled)
            return InboundResult(ignored="number")
        result = InboundResult(connections=[c.id for c in connections])
        if call.answered:
            result.stopped = await stop_redials(phone, result.connections, self.registry, self.redis, now)
            return result
        for connection in connections:
            if await Call.filter(connection_id=connection.id, state__in=CallState.ACTIVE, lead__phone=phone).exists():
                log.info(
                    "missed inbound call from %s: a callback is already on its way on connection %s",
                    phone,
                    connection.id,
                )
                continue
            if self.intake is None:
                continue
            for source in self.registry.missed_call_sources.values():
                try:
                    await source.take(call, phone=phone, dialled=dialled, connection=connection, intake=self.intake)
                except Exception:  # one source's failure is not another's
                    log.exception("missed-call source %s failed on connection %s", source.key, connection.id)
            result.handed_to.append(connection.id)
        return result

    async def _first_to_see(self, pbx_id: str) -> bool:
        if self.redis is None:
            return True
        try:
            return bool(await self.redis.set(f"pv:inbound:{pbx_id}", "1", nx=True, ex=SEEN_TTL_SECONDS))
        except Exception as exc:  # every rule here is safe to apply twice: act rather than drop it
            log.warning("inbound call %s: could not mark it seen (%s)", pbx_id, exc)
            return True
