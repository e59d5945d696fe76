"""The core's arq jobs. ``ctx["perezvon"]`` is the running :class:`perezvon.core.app.Perezvon`."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import sqlite3
import uuid
from collections import defaultdict
from collections.abc import Awaitable
from typing import Any

from arq import Retry
from marshmallow import ValidationError
from tortoise.transactions import in_transaction

from perezvon.core import enablement
from perezvon.core.access import addresses_without_contacts_of_many
from perezvon.core.batching import Batcher, settle
from perezvon.core.callbacks import as_event_data, utcnow
from perezvon.core.dials_first import DialsFirst
from perezvon.core.intake import NOTIFIED_REASON
from perezvon.core.masking import masked_event_data
from perezvon.core.models import Attempt, Call, Delivery, Department, NotificationRecipient, Office, PendingJob
from perezvon.core.prepared import PreparedRead
from perezvon.core.queue import delivery_job, notify_job
from perezvon.core.recordings import recording_store, signed_link
from perezvon.core.registry import CallEvent, DeliveryError, Notification
from perezvon.core.sqlite import DialsFirstSqliteClient, insert_rows

log = logging.getLogger("perezvon.jobs")

MAX_DELIVERY_TRIES = 8
#: one try of one delivery never takes longer than this (plugins time out sooner)
DELIVERY_TIMEOUT = 60.0

#: the reads of every delivery and notification, their SQL built once (core/prepared.py)
_CALLS_WITH_LEAD = PreparedRead(Call, lambda ids: Call.filter(id__in=ids).select_related("lead"), ids="id")
_CALLS_WITH_SITE = PreparedRead(
    Call, lambda ids: Call.filter(id__in=ids).select_related("lead", "connection"), ids="id"
)
_ATTEMPTS_OF = PreparedRead(Attempt, lambda ids: Attempt.filter(call_id__in=ids).order_by("number"), ids="call_id")
_RECIPIENTS_OF = PreparedRead(
    NotificationRecipient,
    lambda ids: NotificationRecipient.filter(connection_id__in=ids),
    ids="connection_id",
)


def backoff_seconds(job_try: int) -> int:
    """5 s, 10 s, 20 s ... capped at 15 minutes."""
    seconds: int = 5 * 2 ** (job_try - 1)
    return min(seconds, 900)


async def place_attempt(ctx: dict[str, Any], call_id: str, number: int) -> str:
    outcome: str = await ctx["perezvon"].engine.place_attempt(call_id, number)
    return outcome


async def sweep(ctx: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = await ctx["perezvon"].engine.sweep()
    return counts


async def recordings(ctx: dict[str, Any]) -> dict[str, int]:
    from perezvon.core.recordings import enforce

    return await enforce(ctx["perezvon"])


def delivery_label(event: str, attempt_number: int | None) -> str:
    """How one delivery is named in :attr:`CallEvent.previous`: the event, ":<n>" for attempts."""
    return event if attempt_number is None else f"{event}:{attempt_number}"


@dataclasses.dataclass
class DeliveryContext:
    """What one delivery reads before it pushes: the call with its lead and attempts, the
    integration's settings on the call's connection, and its earlier successful deliveries."""

    call: Call
    attempts: list[Attempt]
    #: None when the integration is not switched on for the connection
    settings: dict[str, Any] | None
    #: response of each earlier successful delivery of this call to this integration, by label
    previous: dict[str, str]


@dataclasses.dataclass
class _Load:
    call_id: str
    integration_key: str
    future: asyncio.Future[DeliveryContext | None]


@dataclasses.dataclass
class _LoadNotification:
    call_id: str
    future: asyncio.Future[NotificationContext | None]


@dataclasses.dataclass
class _Record:
    row: Delivery
    future: asyncio.Future[None]


@dataclasses.dataclass
class _Settle:
    job_id: str
    #: when the job is due again (it will be retried), or None: it is over
    due_at: dt.datetime | None
    future: asyncio.Future[None]


async def settle_pending(jobs: list[tuple[str, dt.datetime | None]]) -> None:
    """Mark pending jobs (:class:`PendingJob`) as over (deleted) or due again at a later time."""
    over = [job_id for job_id, due_at in jobs if due_at is None]
    again = [(job_id, due_at) for job_id, due_at in jobs if due_at is not None]
    client = PendingJob._meta.db
    if isinstance(client, DialsFirstSqliteClient):  # one trip (core/sqlite.py): the write lock held briefly
        table, due = PendingJob._meta.db_table, PendingJob._meta.fields_map["due_at"]
        changes = [(due.to_db_value(due_at, PendingJob), job_id) for job_id, due_at in again]

        def settle_all(connection: sqlite3.Connection) -> None:
            if over:
                connection.execute(f"DELETE FROM {table} WHERE job_id IN ({', '.join('?' for _ in over)})", over)
            connection.executemany(f"UPDATE {table} SET due_at = ? WHERE job_id = ?", changes)

        await client.in_one_trip(settle_all)
        return
    async with in_transaction():
        if over:
            await PendingJob.filter(job_id__in=over).delete()
        for job_id, due_at in again:
            await PendingJob.filter(job_id=job_id).update(due_at=due_at)


async def load_contexts(wanted: list[tuple[str, str]]) -> list[DeliveryContext | None]:
    """The contexts of many deliveries ``(call id, integration key)`` in four queries, whatever their number."""
    call_ids = list({call_id for call_id, _ in wanted})
    calls = {str(call.id): call for call in await _CALLS_WITH_LEAD.all(ids=call_ids)}
    if not calls:
        return [None] * len(wanted)
    attempts: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in await _ATTEMPTS_OF.all(ids=list(calls)):
        attempts[str(attempt.call_id)].append(attempt)
    keys = list({key for _, key in wanted})
    settings = await enablement.settings_of_many(
        {call.connection_id for call in calls.values()}, enablement.INTEGRATION, keys
    )
    previous: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for call_id, key, event, number, response in await Delivery.filter(
        call_id__in=list(calls), integration_key__in=keys, ok=True
    ).values_list("call_id", "integration_key", "event", "attempt_number", "response"):
        previous[str(call_id), key][delivery_label(event, number)] = response
    out: list[DeliveryContext | None] = []
    for call_id, key in wanted:
        call = calls.get(call_id)
        out.append(
            None
            if call is None
            else DeliveryContext(
                call=call,
                attempts=attempts[call_id],
                settings=settings.get((call.connection_id, key)),
                previous=previous[call_id, key],
            )
        )
    return out


async def store_deliveries(rows: list[Delivery]) -> None:
    client = Delivery._meta.db
    if isinstance(client, DialsFirstSqliteClient):  # one trip (core/sqlite.py): the write lock held briefly
        insert, values = insert_rows(rows)
        await client.in_one_trip(lambda connection: connection.executemany(insert, values))
        return
    async with in_transaction():
        await Delivery.bulk_create(rows)


@dataclasses.dataclass
class NotificationContext:
    """What one notification about a call reads before it is sent: the call with its lead and
    connection, its attempts, the connection's recipients, the lead's office and department, and
    those recipients who get the client's contacts masked."""

    call: Call
    attempts: list[Attempt]
    recipients: list[NotificationRecipient]
    office: Office | None
    department: Department | None
    #: the recipients' addresses that get client contacts masked (core/access.py)
    blind: set[str]


async def load_notification_contexts(call_ids: list[str]) -> list[NotificationContext | None]:
    """The contexts of notifications about many calls: six queries whatever their number, and two for
    each recipient who is a user without staff rights (their access, core/access.py)."""
    # the attempts are read by the calls' ids, not prefetched: a prefetched relation refers back to
    # its call, a cycle that outlives the job
    calls = {str(c.id): c for c in await _CALLS_WITH_SITE.all(ids=list(set(call_ids)))}
    if not calls:
        return [None] * len(call_ids)
    attempts: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in await _ATTEMPTS_OF.all(ids=list(calls)):
        attempts[str(attempt.call_id)].append(attempt)
    recipients: dict[int, list[NotificationRecipient]] = defaultdict(list)
    connection_ids = {call.connection_id for call in calls.values()}
    for recipient in await _RECIPIENTS_OF.all(ids=list(connection_ids)):
        recipients[recipient.connection_id].append(recipient)
    office_ids = {call.lead.office_id for call in calls.values() if call.lead.office_id}
    department_ids = {call.lead.department_id for call in calls.values() if call.lead.department_id}
    offices = {o.id: o for o in await Office.filter(id__in=list(office_ids))} if office_ids else {}
    departments = {d.id: d for d in await Department.filter(id__in=list(department_ids))} if department_ids else {}
    blind = await addresses_without_contacts_of_many(
        {connection_id: [r.email for r in recipients[connection_id]] for connection_id in connection_ids}
    )
    out: list[NotificationContext | None] = []
    for call_id in call_ids:
        call = calls.get(call_id)
        out.append(
            None
            if call is None
            else NotificationContext(
                call=call,
                attempts=attempts[call_id],
                recipients=recipients[call.connection_id],
                office=offices.get(call.lead.office_id) if call.lead.office_id else None,
                department=departments.get(call.lead.department_id) if call.lead.department_id else None,
                blind=blind.get(call.connection_id, set()),
            )
        )
    return out


class DeliveryBatches:
    """The reads and writes of the delivery and notification jobs running at once, done for all of them together.

    Each delivery reads its call, lead, attempts, settings and earlier
    deliveries, and stores one row per try. Done one job at a time that is six
    queries and, on SQLite, one synced commit per delivery; grouped like the
    intake's leads (:class:`perezvon.core.batching.Batcher`) it is four reads per group
    and one commit per group of rows. Each job still waits until its own row
    is committed before it ends, so no try goes unrecorded. While one group's
    queries run, the jobs starting behind it gather into the next group.
    A notification's reads (:func:`load_notification_contexts`) and the end of
    either job (its :class:`PendingJob` settled) are grouped the same way.
    """

    def __init__(self, max_batch: int = 500, dials_first: DialsFirst | None = None) -> None:
        #: each group waits for the callbacks being placed in this process (core/dials_first.py)
        self.dials_first = dials_first or DialsFirst()
        self.loads: Batcher[_Load] = Batcher(self._load, name="perezvon-delivery-loads", max_batch=max_batch)
        self.notification_loads: Batcher[_LoadNotification] = Batcher(
            self._load_notifications, name="perezvon-notification-loads", max_batch=max_batch
        )
        self.records: Batcher[_Record] = Batcher(self._record, name="perezvon-delivery-records", max_batch=max_batch)
        self.settles: Batcher[_Settle] = Batcher(self._settle, name="perezvon-delivery-settles", max_batch=max_batch)

    async def _load(self, batch: list[_Load]) -> None:
        await self.dials_first.wait()
        for item, context in zip(batch, await load_contexts([(i.call_id, i.integration_key) for i in batch])):
            settle(item.future, context)

    async def _load_notifications(self, batch: list[_LoadNotification]) -> None:
        await self.dials_first.wait()
        for item, context in zip(batch, await load_notification_contexts([i.call_id for i in batch])):
            settle(item.future, context)

    async def _record(self, batch: list[_Record]) -> None:
        await self.dials_first.wait()
        await store_deliveries([item.row for item in batch])
        for item in batch:
            settle(item.future)

    async def _settle(self, batch: list[_Settle]) -> None:
        await self.dials_first.wait()
        await settle_pending([(item.job_id, item.due_at) for item in batch])
        for item in batch:
            settle(item.future)

    async def load(self, call_id: str, integration_key: str) -> DeliveryContext | None:
        context: DeliveryContext | None = await self.loads.submit(
            _Load(call_id, integration_key, asyncio.get_running_loop().create_future())
        )
        return context

    async def load_notification(self, call_id: str) -> NotificationContext | None:
        context: NotificationContext | None = await self.notification_loads.submit(
            _LoadNotification(call_id, asyncio.get_running_loop().create_future())
        )
        return context

    async def record(self, row: Delivery) -> None:
        await self.records.submit(_Record(row, asyncio.get_running_loop().create_future()))

    async def settle(self, job_id: str, due_at: dt.datetime | None) -> None:
        await self.settles.submit(_Settle(job_id, due_at, asyncio.get_running_loop().create_future()))

    async def close(self) -> None:
        await self.loads.close()
        await self.notification_loads.close()
        await self.records.close()
        await self.settles.close()


class _Unbatched:
    """The same reads and writes for one job run on its own (a test calling :func:`deliver`)."""

    @staticmethod
    async def load(call_id: str, integration_key: str) -> DeliveryContext | None:
        return (await load_contexts([(call_id, integration_key)]))[0]

    @staticmethod
    async def load_notification(call_id: str) -> NotificationContext | None:
        return (await load_notification_contexts([call_id]))[0]

    @staticmethod
    async def record(row: Delivery) -> None:
        await store_deliveries([row])

    @staticmethod
    async def settle(job_id: str, due_at: dt.datetime | None) -> None:
        await settle_pending([(job_id, due_at)])


async def _settling(batches: Any, job_id: str, job: Awaitable[str]) -> str:
    """Run a push or notification job, then mark its :class:`PendingJob` over, or due again on a retry.

    An error other than a retry (the database went away) leaves it pending:
    the sweep queues it again (``CallbackEngine.sweep``).
    """
    try:
        outcome = await job
    except Retry as retry:
        await batches.settle(job_id, utcnow() + dt.timedelta(milliseconds=retry.defer_score or 0))
        raise
    await batches.settle(job_id, None)
    return outcome


async def deliver(
    ctx: dict[str, Any], integration_key: str, event: str, call_id: str, attempt_number: int | None = None
) -> str:
    """Push one event of one call to one integration; idempotent, retried with back-off.

    Every try is stored as a :class:`Delivery` row (time, status, response
    excerpt, and when the next try is due), which the admin shows per call.
    """
    batches = ctx.get("deliveries") or _Unbatched
    job_id = delivery_job(integration_key, event, call_id, attempt_number).job_id
    return await _settling(batches, job_id, _deliver(ctx, batches, integration_key, event, call_id, attempt_number))


async def _deliver(
    ctx: dict[str, Any], batches: Any, integration_key: str, event: str, call_id: str, attempt_number: int | None
) -> str:
    app = ctx["perezvon"]
    integration = app.host.registry.integrations.get(integration_key)
    if integration is None:
        return "skipped: integration not installed or call gone"
    context = await batches.load(call_id, integration_key)
    if context is None:
        return "skipped: integration not installed or call gone"
    if context.settings is None:
        return "skipped: integration switched off"
    call, previous = context.call, context.previous
    label = delivery_label(event, attempt_number)
    if label in previous:
        return "skipped: already delivered"
    attempt = None
    if attempt_number is not None:
        attempt = next((a for a in context.attempts if a.number == attempt_number), None)
        if attempt is None:
            return "skipped: attempt gone"
    job_try = ctx.get("job_try", 1)

    async def record(ok: bool, *, status: int | None = None, response: str = "", retry_in: int | None = None) -> None:
        now = utcnow()
        await batches.record(
            Delivery(
                call_id=call.id,
                integration_key=integration_key,
                event=event,
                attempt_number=attempt_number,
                try_number=job_try,
                ok=ok,
                status=status,
                response=response[:500],
                created_at=now,
                next_try_at=now + dt.timedelta(seconds=retry_in) if retry_in is not None else None,
            )
        )

    try:
        settings = enablement.validated(integration, context.settings)
    except ValidationError as exc:  # saved before a schema change: trying again cannot help (core/enablement.py)
        await record(False, response=enablement.invalid_message(integration, exc))
        return "failed: invalid settings"
    payload = CallEvent(
        event=event,
        connection_id=call.connection_id,
        settings=settings,
        lead=as_event_data(call.lead),
        call=as_event_data(call),
        attempts=[as_event_data(a) for a in context.attempts],
        attempt=as_event_data(attempt) if attempt is not None else None,
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"perezvon:{label}:{call.id}")),
        previous=previous,
    )
    retry_in = backoff_seconds(job_try) if job_try < MAX_DELIVERY_TRIES else None
    await app.dials_first.wait()  # a request and the plugin's own queries: after this process's dials
    try:
        # a handler that hangs past its own timeouts must not hold the job for arq's 5 minutes
        response = await asyncio.wait_for(integration.handler(event)(payload), DELIVERY_TIMEOUT)
    except DeliveryError as exc:
        retry_in = retry_in if exc.retry else None
        await record(False, status=exc.status, response=exc.response or str(exc), retry_in=retry_in)
        log.warning("delivery %s %s of call %s failed (try %d): %s", integration_key, label, call_id, job_try, exc)
        if retry_in is not None:
            raise Retry(defer=retry_in) from exc
        return f"failed: {exc}"
    except Exception as exc:  # a timeout or an unexpected error is treated like a network error: try again
        reason = (
            f"no answer within {DELIVERY_TIMEOUT:g} s"
            if isinstance(exc, TimeoutError)
            else (f"{type(exc).__name__}: {exc}")
        )
        await record(False, response=reason, retry_in=retry_in)
        log.warning("delivery %s %s of call %s failed (try %d): %s", integration_key, label, call_id, job_try, reason)
        if retry_in is not None:
            raise Retry(defer=retry_in) from exc
        return f"failed: {reason}"
    if response is None:  # nothing to send for this connection (e.g. an event it does not subscribe to)
        return "skipped: nothing to send"
    await record(True, response=response)
    return "delivered"


async def notify(ctx: dict[str, Any], notifier_key: str, kind: str, subject_id: str) -> str:
    """Send one notification about a call through one notifier (docs/calls.md#notifications)."""
    batches = ctx.get("deliveries") or _Unbatched
    job_id = notify_job(notifier_key, kind, subject_id).job_id
    return await _settling(batches, job_id, _notify(ctx, batches, notifier_key, kind, subject_id))


async def _notify(ctx: dict[str, Any], batches: Any, notifier_key: str, kind: str, subject_id: str) -> str:
    app = ctx["perezvon"]
    notifier = app.host.registry.notifiers.get(notifier_key)
    if notifier is None:
        return "skipped"
    context: NotificationContext | None = await batches.load_notification(subject_id)
    if context is None:
        return "skipped"
    call, lead = context.call, context.call.lead
    # a lead e-mailed instead of called goes to everyone; call results to those who want them
    wanted = {"call_succeeded": "on_success", "call_failed": "on_failure"}.get(kind)
    emails = tuple(
        sorted(
            {
                r.email
                for r in context.recipients
                if (wanted is None or getattr(r, wanted))
                and (r.office_id in (None, lead.office_id))
                and (r.department_id in (None, lead.department_id))
            }
        )
    )
    if not emails:
        return "skipped: no recipients"
    office, department = context.office, context.department
    data: dict[str, Any] = {
        "connection": as_event_data(call.connection),
        "lead": as_event_data(lead),
        "call": as_event_data(call),
        "attempts": [as_event_data(a) for a in context.attempts],
        "office": {"id": office.id, "name": office.name} if office else None,
        "department": {"id": department.id, "name": department.name} if department else None,
    }
    if kind == "call_succeeded" and call.recording and recording_store(app.settings).available(call.recording):
        # a link that works without signing in, for PEREZVON_RECORDING_LINK_HOURS (docs/recordings.md)
        data["recording_url"] = signed_link(app.settings, str(call.id))
    if kind == "lead_delayed" and call.reason and call.reason != NOTIFIED_REASON:
        # not the delay: the site could not call it (docs/calls.md#a-site-that-cannot-call)
        data["reason"] = call.reason
    # users who may not see this connection's client contacts get them masked, in an e-mail of their own
    blind = context.blind.intersection(emails)
    notifications = [
        Notification(kind=kind, recipients=group, subject_id=subject_id, data=group_data)
        for group, group_data in (
            (tuple(e for e in emails if e not in blind), data),
            (tuple(e for e in emails if e in blind), masked_event_data(data) if blind else data),
        )
        if group
    ]
    job_try = ctx.get("job_try", 1)
    try:
        for notification in notifications:
            await app.dials_first.wait()  # after this process's dials (core/dials_first.py)
            await notifier.send(notification)
    except DeliveryError as exc:
        if exc.retry and job_try < MAX_DELIVERY_TRIES:
            log.warning("notifier %s failed (try %d), will retry: %s", notifier_key, job_try, exc)
            raise Retry(defer=backoff_seconds(job_try)) from exc
        log.error("notifier %s failed for good: %s", notifier_key, exc)
        return f"failed: {exc}"
    except Exception as exc:
        log.warning("notifier %s failed (try %d): %s", notifier_key, job_try, exc)
        if job_try < MAX_DELIVERY_TRIES:
            raise Retry(defer=backoff_seconds(job_try)) from exc
        raise
    return f"sent to {len(emails)}"
