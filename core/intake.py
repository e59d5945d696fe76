"""Lead intake: validate, guard, persist Lead + Call, queue the first attempt.

Every lead source ends here (the HTTP API, the site-forms mail server, a
third-party plugin). A lead is durable once :meth:`LeadIntake.submit`
returns: its rows are committed before its job is queued, and the worker's
sweep re-queues any call whose job went missing.

Leads are committed in groups: concurrent submissions wait a moment for the
single writer task, which guards the whole group in Redis with one script
(rate limit per client IP, the same phone on the same connection within the
duplicate window returns the existing lead), writes all of it in one
transaction and queues all of it in one round trip. Each caller still gets
its own answer, and only after its rows are on disk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from marshmallow import ValidationError
from tortoise.models import Model
from tortoise.transactions import in_transaction

from perezvon.core import channels, enablement
from perezvon.core.batching import Batcher, settle
from perezvon.core.domains import browser_domains
from perezvon.core.models import CalendarDay, Call, CallState, Connection, Department, DisplayStatus, Lead, Office
from perezvon.core.queue import Job, JobQueue, attempt_job, delivery_job, notify_job, remember
from perezvon.core.schedule import Hours, ScheduleError, first_attempt_at
from perezvon.core.schemas import LeadSchema, TelephonySettingsSchema

if TYPE_CHECKING:
    from arq.connections import ArqRedis

    from perezvon.core.registry import Registry

log = logging.getLogger("perezvon.intake")

MAX_BATCH = 500
#: a longer delay before the first call means "e-mail the lead instead of calling" (docs/calls.md#the-59-s-rule)
MAX_CALL_DELAY_SECONDS = 59
NOTIFIED_REASON = "the delay before the call is over 59 s: the lead was e-mailed instead"

# KEYS: per lead its rate key and duplicate key. ARGV: rate ttl, duplicate ttl, then per
# lead its limit (0 = not limited) and the value to remember it by.
_GUARD = """
local rate_ttl, dup_ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS / 2 do
  local rate_key, dup_key = KEYS[2 * i - 1], KEYS[2 * i]
  local limit, value = tonumber(ARGV[1 + 2 * i]), ARGV[2 + 2 * i]
  local existing = redis.call('GET', dup_key)
  if existing then
    out[i] = existing
  else
    local n = 0
    if limit > 0 then
      n = redis.call('INCR', rate_key)
      if n == 1 then redis.call('EXPIRE', rate_key, rate_ttl) end
    end
    if limit > 0 and n > limit then
      out[i] = '!rate'
    else
      redis.call('SET', dup_key, value, 'EX', dup_ttl)
      out[i] = '!new'
    end
  end
end
return out
"""


class IntakeReason(enum.StrEnum):
    """Why the intake refused a lead. Each lead source answers its own way: the HTTP API
    with a status code (web/api/leads.py), the site-forms SMTP intake with a message
    status or a "try again later" (plugins/siteforms/delivery.py)."""

    #: the payload is not a JSON object
    MALFORMED = "malformed"
    #: a field is missing or wrong (the errors say which), the lead source is unknown,
    #: or the office/department is not one of the site's
    INVALID = "invalid"
    #: no site has this token
    SITE_UNKNOWN = "site_unknown"
    #: the site's callbacks are switched off
    SITE_OFF = "site_off"
    #: a browser sent the site's token from a domain that is not the site's
    FOREIGN_ORIGIN = "foreign_origin"
    #: too many leads from one visitor's address in a minute
    RATE_LIMITED = "rate_limited"
    #: the lead could not be stored now; the same lead may be sent again later
    UNAVAILABLE = "unavailable"


class IntakeError(Exception):
    """A lead refused: the :class:`IntakeReason` and ``{field: [messages]}`` (English message ids)."""

    def __init__(self, reason: IntakeReason, errors: dict[str, list[str]]):
        super().__init__(f"{reason}: {errors}")
        self.reason = IntakeReason(reason)
        self.errors = errors


@dataclasses.dataclass(frozen=True)
class Accepted:
    lead_id: str
    call_id: str
    scheduled_at: str
    duplicate: bool = False

    def encode(self) -> str:
        return f"{self.lead_id}|{self.call_id}|{self.scheduled_at}"

    @classmethod
    def decode(cls, value: bytes | str) -> Accepted:
        text = value.decode() if isinstance(value, bytes) else value
        lead_id, call_id, scheduled_at = text.split("|")
        return cls(lead_id, call_id, scheduled_at, duplicate=True)


@dataclasses.dataclass(frozen=True)
class Site:
    """What the intake needs to know about a connection, cached briefly."""

    id: int
    token: str
    is_on: bool
    domains: tuple[str, ...]
    hours: Hours
    offices: frozenset[int]
    offices_required: bool
    departments: frozenset[int]
    departments_required: bool
    first_direction: str
    first_call_delay: int
    offhours_spread: int
    apps: frozenset[str]
    integrations: tuple[str, ...]

    def allows_origin(self, origin: str | None) -> bool:
        """No Origin (a server-side client) is allowed; a browser's must be one of our domains."""
        if origin is None:
            return True
        host = (urlsplit(origin).hostname or "").lower()
        return any(host == d or host.endswith("." + d) for d in self.domains)


async def load_site(connection: Connection) -> Site:
    # tortoise types a flat values_list as a list of tuples
    offices = cast(
        list[int], await Office.filter(connection_id=connection.id, is_active=True).values_list("id", flat=True)
    )
    departments = cast(
        list[int], await Department.filter(connection_id=connection.id, is_active=True).values_list("id", flat=True)
    )
    calendar = await CalendarDay.filter(connection_id=connection.id).all()
    plugins_on = await enablement.keys_on(connection)  # both kinds in one query
    telephony = TelephonySettingsSchema().load(connection.telephony or {})
    return Site(
        id=connection.id,
        token=connection.token,
        is_on=connection.is_on,
        domains=tuple(browser_domains(connection.domains())),  # Origin headers carry punycode
        hours=Hours(
            timezone=connection.timezone,
            weekly=connection.schedule,
            # a day that is not a holiday has both times (the admin's calendar form requires them)
            overrides={
                d.date: (None if d.kind == "holiday" else cast("tuple[str, str]", (d.opens, d.closes)))
                for d in calendar
            },
        ),
        offices=frozenset(offices),
        offices_required=connection.offices_enabled and connection.offices_required,
        departments=frozenset(departments),
        departments_required=connection.departments_enabled and connection.departments_required,
        first_direction=telephony["first_direction"],
        first_call_delay=telephony["first_call_delay_seconds"],
        offhours_spread=connection.offhours_spread_seconds,
        apps=frozenset(plugins_on[enablement.APPLICATION]),
        integrations=tuple(sorted(plugins_on[enablement.INTEGRATION])),
    )


class SiteDirectory:
    """Token -> :class:`Site`, cached for a few seconds so a lead costs no lookup."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        self._cache: dict[str, tuple[float, Site | None]] = {}
        self._loading: dict[str, asyncio.Future[Site | None]] = {}

    async def by_token(self, token: str) -> Site | None:
        hit = self._cache.get(token)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        if token in self._loading:  # one query however many leads wait for it
            return await asyncio.shield(self._loading[token])
        future = asyncio.get_running_loop().create_future()
        self._loading[token] = future
        try:
            connection = await Connection.get_or_none(token=token)
            site = await load_site(connection) if connection else None
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[token] = (time.monotonic() + self.ttl, site)
            future.set_result(site)
            return site
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._loading[token]

    def forget(self, token: str) -> None:
        self._cache.pop(token, None)


class RowInserter:
    """Many rows of one model in one ``executemany``, from plain dicts.

    The intake's hot path: building model instances costs more than the
    insert itself. The SQL, the column order and each value's conversion are
    Tortoise's own (the model's executor and fields), so the rows are exactly
    what ``bulk_create`` would write. Missing values take the field default.
    """

    def __init__(self, model: type[Model]) -> None:
        self.model = model
        self._prepared: tuple[Any, ...] | None = None

    def _prepare(self) -> tuple[Any, ...]:
        if self._prepared is None:  # needs the database, so on first use
            db = self.model._meta.db
            executor = db.executor_class(model=self.model, db=db)
            fields = [self.model._meta.fields_map[name] for name in executor.regular_columns_all]
            self._prepared = (executor.insert_query_all, fields)
        return self._prepared

    async def execute(self, rows: list[dict[str, Any]]) -> None:
        sql, fields = self._prepare()
        db = self.model._meta.db  # inside a transaction this is the transaction's connection
        values = []
        for row in rows:
            values.append(
                [
                    field.to_db_value(
                        row[field.model_field_name]
                        if field.model_field_name in row
                        else (field.default() if callable(field.default) else field.default),
                        None,
                    )
                    for field in fields
                ]
            )
        await db.execute_many(sql, values)


@dataclasses.dataclass
class _Pending:
    lead: dict[str, Any]
    call: dict[str, Any]
    accepted: Accepted
    jobs: list[Job]
    rate_key: str
    rate_limited: bool
    dup_key: str
    future: asyncio.Future[Accepted]


class LeadIntake:
    def __init__(
        self,
        *,
        redis: ArqRedis,
        registry: Registry,
        sites: SiteDirectory,
        leads_per_ip_per_minute: int,
        duplicate_window_seconds: int,
    ) -> None:
        self.redis = redis
        self.registry = registry
        self.sites = sites
        self.queue = JobQueue(redis)
        self.limit = leads_per_ip_per_minute
        self.duplicate_window = duplicate_window_seconds
        self._guard = redis.register_script(_GUARD)
        self._insert_leads = RowInserter(Lead)
        self._insert_calls = RowInserter(Call)
        self._schema = LeadSchema()
        self._writer = Batcher(self._write, name="perezvon-intake-writer", max_batch=MAX_BATCH)
        self._enqueueing: set[asyncio.Task[None]] = set()

    # --- the per-lead part: validate and prepare -------------------------------------

    async def submit(
        self, payload: Any, *, client_ip: str | None, origin: str | None = None, now: dt.datetime | None = None
    ) -> Accepted:
        """Validate and store one lead; raises :class:`IntakeError` when refused.

        ``client_ip`` is the visitor's address, limited per minute; ``None``
        for a trusted server-side source (the site's own mail server sends
        every form of the site from one address) -- not rate-limited.
        ``origin`` is the browser's Origin header, ``None`` for non-browsers.
        """
        if not isinstance(payload, dict):
            raise IntakeError(IntakeReason.MALFORMED, {"_schema": ["Send a JSON object."]})
        try:
            data = self._schema.load(payload)
        except ValidationError as exc:
            raise IntakeError(IntakeReason.INVALID, cast(dict[str, list[str]], exc.messages)) from None
        site = await self.sites.by_token(data["token"])
        if site is None:
            raise IntakeError(IntakeReason.SITE_UNKNOWN, {"token": ["Unknown site token."]})
        if not site.is_on:
            raise IntakeError(IntakeReason.SITE_OFF, {"token": ["Callbacks are switched off for this site."]})
        if not site.allows_origin(origin):
            raise IntakeError(
                IntakeReason.FOREIGN_ORIGIN, {"origin": ["This site token cannot be used from this site."]}
            )
        if data["source"] not in self.registry.lead_sources:
            raise IntakeError(IntakeReason.INVALID, {"source": ["Unknown lead source."]})
        errors: dict[str, list[str]] = {}
        for field, allowed, required in (
            ("office_id", site.offices, site.offices_required),
            ("department_id", site.departments, site.departments_required),
        ):
            value = data[field]
            if value is None and required:
                errors[field] = ["Choose one."]
            elif value is not None and value not in allowed:
                errors[field] = ["Not one of this site's choices."]
        if errors:
            raise IntakeError(IntakeReason.INVALID, errors)

        now = now or dt.datetime.now(dt.UTC)
        try:
            scheduled_at = first_attempt_at(
                site.hours, now, delay_seconds=site.first_call_delay, preferred_at=data["preferred_at"]
            )
        except ScheduleError as exc:  # broken settings must not cost the visitor their callback
            log.error("connection %s: %s; calling the lead without working hours", site.id, exc)
            scheduled_at = now + dt.timedelta(seconds=site.first_call_delay)
        if scheduled_at > now + dt.timedelta(seconds=site.first_call_delay) and site.offhours_spread:
            scheduled_at = await self._spread(site, scheduled_at)
        return await self._commit(self._prepare(data, site, now, scheduled_at, client_ip))

    async def _spread(self, site: Site, opening: dt.datetime) -> dt.datetime:
        """Leads waiting for the same opening (or preferred time) are called one every
        ``offhours_spread`` seconds, so the call centre is not flooded at 9:00."""
        key = f"pv:spread:{site.id}:{int(opening.timestamp())}"
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expireat(key, int(opening.timestamp()) + 86400)
                slot, _ = await pipe.execute()
        except Exception as exc:  # without Redis the leads are still called, just not spread
            log.warning("off-hours spread skipped, Redis did not answer: %s", exc)
            return opening
        spread_at = opening + dt.timedelta(seconds=(slot - 1) * site.offhours_spread)
        try:
            return site.hours.next_opening(spread_at)
        except ScheduleError:
            return spread_at

    def _prepare(
        self, data: dict[str, Any], site: Site, now: dt.datetime, scheduled_at: dt.datetime, client_ip: str | None
    ) -> _Pending:
        utm = data["utm"]
        lead = dict(
            id=uuid.uuid4(),
            connection_id=site.id,
            source=data["source"],
            phone=data["phone"],
            name=data["name"],
            office_id=data["office_id"],
            department_id=data["department_id"],
            preferred_at=data["preferred_at"],
            page_url=data["page_url"],
            referrer=data["referrer"],
            utm_source=utm["source"],
            utm_medium=utm["medium"],
            utm_campaign=utm["campaign"],
            utm_content=utm["content"],
            utm_term=utm["term"],
            channel=data["channel"]
            or channels.detect(
                page_url=data["page_url"],
                referrer=data["referrer"],
                utm_medium=utm["medium"],
                own_domains=list(site.domains),
            ),
            visitor_id=data["visitor_id"],
            visit=data["visit"],
            displayed_phone=data["displayed_phone"],
            extra=data["extra"],
            client_ip=client_ip or "",
            created_at=now,
        )
        call = dict(
            id=uuid.uuid4(),
            lead_id=lead["id"],
            connection_id=site.id,
            created_at=now,
            first_direction=site.first_direction,
            next_direction=site.first_direction,
            next_attempt_at=scheduled_at,
        )
        call_id = str(call["id"])
        accepted = Accepted(str(lead["id"]), call_id, scheduled_at.isoformat().replace("+00:00", "Z"))
        if site.first_call_delay > MAX_CALL_DELAY_SECONDS:
            call.update(
                state=CallState.NOTIFIED,
                display_status=DisplayStatus.NOTIFIED,
                reason=NOTIFIED_REASON,
                next_attempt_at=None,
                next_direction=None,
                finished_at=now,
            )
            jobs = [notify_job(key, "lead_delayed", call_id) for key in self.registry.notifiers]
        else:
            jobs = [attempt_job(call_id, 1, scheduled_at)]
        jobs += [
            delivery_job(key, "lead_created", call_id)
            for key in site.integrations
            if key in self.registry.integrations and self.registry.integrations[key].handles("lead_created")
        ]
        window = int(now.timestamp()) // 60
        return _Pending(
            lead=lead,
            call=call,
            accepted=accepted,
            jobs=jobs,
            rate_key=f"pv:rate:{client_ip}:{window}",
            rate_limited=client_ip is not None,
            dup_key=f"pv:dup:{site.id}:{lead['phone']}",
            future=asyncio.get_running_loop().create_future(),
        )

    # --- the group part: one writer commits everyone waiting ---------------------------

    async def _commit(self, pending: _Pending) -> Accepted:
        accepted: Accepted = await self._writer.submit(pending)
        return accepted

    async def _guard_batch(self, batch: list[_Pending]) -> list[str]:
        keys = [k for item in batch for k in (item.rate_key, item.dup_key)]
        args: list[Any] = [120, self.duplicate_window]
        for item in batch:
            args += [self.limit if item.rate_limited else 0, item.accepted.encode()]
        try:
            return [v.decode() if isinstance(v, bytes) else v for v in await self._guard(keys=keys, args=args)]
        except Exception as exc:  # Redis down: accept without limits rather than lose leads
            log.warning("rate limit and duplicate check skipped, Redis did not answer: %s", exc)
            return ["!new"] * len(batch)

    async def _write(self, batch: list[_Pending]) -> None:
        verdicts = await self._guard_batch(batch)
        fresh: list[_Pending] = []
        duplicates: list[tuple[_Pending, Accepted]] = []
        for item, verdict in zip(batch, verdicts):
            if verdict == "!new":
                fresh.append(item)
            elif verdict == "!rate":
                settle(
                    item.future,
                    error=IntakeError(IntakeReason.RATE_LIMITED, {"_schema": ["Too many requests, try again later."]}),
                )
            else:
                duplicates.append((item, Accepted.decode(verdict)))
        if duplicates:
            await self._answer_duplicates(duplicates)
        if not fresh:
            return
        try:
            async with in_transaction():
                await self._insert_leads.execute([item.lead for item in fresh])
                await self._insert_calls.execute([item.call for item in fresh])
                # pushes and notifications are known to the sweep even if their enqueue below is lost
                await remember([job for item in fresh for job in item.jobs], dt.datetime.now(dt.UTC))
        except Exception:
            log.exception("could not store %d leads", len(fresh))
            try:
                await self.redis.delete(*[item.dup_key for item in fresh])
            except Exception:  # the duplicate keys expire by themselves
                pass
            for item in fresh:
                settle(
                    item.future,
                    error=IntakeError(
                        IntakeReason.UNAVAILABLE, {"_schema": ["The lead could not be stored, try again."]}
                    ),
                )
            return
        # committed is durable: answer now, and queue the jobs while the next group is written
        for item in fresh:
            settle(item.future, item.accepted)
        task = asyncio.create_task(self._enqueue([job for item in fresh for job in item.jobs]))
        self._enqueueing.add(task)
        task.add_done_callback(self._enqueueing.discard)

    async def _answer_duplicates(self, duplicates: list[tuple[_Pending, Accepted]]) -> None:
        """Answer each repeat with the lead it repeats -- once that lead is stored.

        The duplicate mark is set in Redis before the first lead is committed:
        a web process killed in between (or a commit still running) leaves a mark
        for a lead that is not stored, and answering the repeat "accepted" would
        lose the visitor. Such a repeat is answered 503, so it is sent again.
        """
        try:
            stored = {
                str(call_id)
                for call_id in await Call.filter(id__in=[accepted.call_id for _, accepted in duplicates]).values_list(
                    "id", flat=True
                )
            }
        except Exception:
            log.exception("could not look up %d repeated leads", len(duplicates))
            stored = set()
        for item, accepted in duplicates:
            if accepted.call_id in stored:
                settle(item.future, accepted)
            else:
                settle(
                    item.future,
                    error=IntakeError(
                        IntakeReason.UNAVAILABLE, {"_schema": ["The lead could not be stored, try again."]}
                    ),
                )

    async def _enqueue(self, jobs: list[Job]) -> None:
        try:
            await self.queue.enqueue(jobs)
        except Exception as exc:  # the worker's sweep queues due calls it finds unqueued
            log.warning("%d jobs of stored leads not queued (%s); the sweep will queue them", len(jobs), exc)

    async def close(self) -> None:
        if self._enqueueing:  # let queued-up jobs reach Redis before the pool closes
            await asyncio.wait(set(self._enqueueing), timeout=5)
        await self._writer.close()
