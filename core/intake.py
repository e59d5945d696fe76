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

from marshmallow import INCLUDE, Schema, ValidationError
from tortoise.models import Model
from tortoise.transactions import in_transaction

from perezvon.core import channels, enablement
from perezvon.core.batching import Batcher, settle
from perezvon.core.domains import browser_domains
from perezvon.core.models import (
    CalendarDay,
    Call,
    CallState,
    Connection,
    Department,
    DisplayStatus,
    Lead,
    NotificationRecipient,
    Office,
    OperatorNumber,
    PendingJob,
)
from perezvon.core.outages import is_data_error
from perezvon.core.queue import Job, JobQueue, attempt_job, delivery_job, notify_job, pending_rows
from perezvon.core.schedule import Hours, ScheduleError, first_attempt_at
from perezvon.core.schemas import TELEPHONY_SETTINGS, LeadSchema

if TYPE_CHECKING:
    from arq.connections import ArqRedis

    from perezvon.core.registry import Registry

log = logging.getLogger("perezvon.intake")

MAX_BATCH = 500
#: a preferred time may be this far in the past (a visitor's clock runs late: called at once) ...
PREFERRED_PAST = dt.timedelta(days=1)
#: ... and this far ahead (docs/calls.md#scheduling); outside, 422
PREFERRED_AHEAD = dt.timedelta(days=366)
PREFERRED_OUT_OF_RANGE = "Choose a time from now to a year ahead."
#: what the visitor's app shows when the site can neither call nor e-mail a lead
CANNOT_CALL_MESSAGE = "Callbacks cannot be ordered on this site right now. Please phone the company."
#: a longer delay before the first call means "e-mail the lead instead of calling" (docs/calls.md#the-59-s-rule)
MAX_CALL_DELAY_SECONDS = 59
NOTIFIED_REASON = "the delay before the call is over 59 s: the lead was e-mailed instead"
#: the admin refuses such a delay on a site nobody would be e-mailed for
DELAY_NEEDS_RECIPIENT = (
    "Over 59 s the leads are e-mailed instead of called, and this site has no notification recipient: "
    "add one on the Notifications tab first."
)
#: a site that cannot call a lead e-mails it to its recipients instead (docs/calls.md#a-site-that-cannot-call)
NO_OPERATOR_REASON = "no operator number is set for this site: the lead was e-mailed instead"
NO_HOURS_REASON = "the site's working hours have no working day: the lead was e-mailed instead"

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


#: a lead whose values the database refused although the schema let them through
CANNOT_STORE = "The lead has a value that cannot be stored."


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
    #: the app the lead comes from is switched off for the site
    APP_OFF = "app_off"
    #: the site can neither call the lead (no operator number, no working day, or a delay over
    #: 59 s) nor e-mail it to anyone (no notification recipient for it)
    CANNOT_CALL = "cannot_call"
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
    unique_window_days: int = 30
    has_operator_number: bool = True
    #: (office id, department id) of each notification recipient; None = any
    recipients: frozenset[tuple[int | None, int | None]] = frozenset()

    def has_recipient_for(self, office_id: int | None, department_id: int | None) -> bool:
        """Whether some recipient would be e-mailed about a lead with this office and department
        (the notify job's filter: a recipient without an office or department takes every one)."""
        return any(
            office in (None, office_id) and department in (None, department_id)
            for office, department in self.recipients
        )

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
    recipients = await NotificationRecipient.filter(connection_id=connection.id).values_list(
        "office_id", "department_id"
    )
    telephony = TELEPHONY_SETTINGS.load(connection.telephony or {})
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
        unique_window_days=connection.unique_window_days,
        has_operator_number=await OperatorNumber.exists(connection_id=connection.id),
        recipients=frozenset(cast("list[tuple[int | None, int | None]]", recipients)),
    )


def _preferred_in_range(preferred: dt.datetime, now: dt.datetime) -> bool:
    """Year 1 or 9999 with an offset overflows wherever it is converted (the schedule, the admin, a
    driver); a time a year ahead is a typo. Compared without converting, so nothing overflows here."""
    try:
        return now - PREFERRED_PAST <= preferred <= now + PREFERRED_AHEAD
    except OverflowError:
        return False


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


async def _earlier_leads(
    connection_ids: list[int], phones: list[str], since: dt.datetime
) -> list[tuple[int, str, dt.datetime]]:
    """(connection, phone, created) of the stored leads of these connections and phones since ``since``.

    Once per committed group, on the intake's hot path: one plain parameterised
    query, where the ORM's query builder cost the web twice the time (0.71 against
    0.39 ms for a group of 30 phones, BENCHMARKS.md). Values go through the
    model's own fields, as Tortoise's queries would.
    """
    db = Lead._meta.db
    created = Lead._meta.fields_map["created_at"]
    values: list[Any] = [*connection_ids, *phones, created.to_db_value(since, Lead)]
    if db.capabilities.dialect == "postgres":
        marks = [f"${number}" for number in range(1, len(values) + 1)]
    else:
        marks = ["?"] * len(values)
    ids, rest = marks[: len(connection_ids)], marks[len(connection_ids) :]
    sql = (
        f"SELECT connection_id, phone, created_at FROM {Lead._meta.db_table} "
        f"WHERE connection_id IN ({', '.join(ids)}) AND phone IN ({', '.join(rest[:-1])}) AND created_at >= {rest[-1]}"
    )
    _, rows = await db.execute_query(sql, values)
    return [(row[0], row[1], created.to_python_value(row[2])) for row in rows]


@dataclasses.dataclass
class _Pending:
    lead: dict[str, Any]
    call: dict[str, Any]
    accepted: Accepted
    unique_window_days: int
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
        self._insert_pending = RowInserter(PendingJob)
        self._schema = LeadSchema()
        self._extra_schemas: dict[str, Schema] = {}
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
        apps = self._apps_taking(data["source"])
        if apps and not apps & site.apps:  # the app's own leads stop when it is switched off
            raise IntakeError(IntakeReason.APP_OFF, {"source": ["This app is switched off for this site."]})
        errors: dict[str, Any] = {}
        extra_schema = self._extra_schema(data["source"])
        if extra_schema is not None:
            try:
                data["extra"] = extra_schema.load(data["extra"], unknown=INCLUDE)
            except ValidationError as exc:
                errors["extra"] = exc.messages
        # a choice the visitor never saw (a site's own form, e-mailed) cannot be required of them
        chose = self.registry.lead_sources[data["source"]].visitor_chooses
        for field, allowed, required in (
            ("office_id", site.offices, site.offices_required),
            ("department_id", site.departments, site.departments_required),
        ):
            value = data[field]
            if value is None and required and chose:
                errors[field] = ["Choose one."]
            elif value is not None and value not in allowed:
                errors[field] = ["Not one of this site's choices."]
        now = now or dt.datetime.now(dt.UTC)
        if data["preferred_at"] is not None and not _preferred_in_range(data["preferred_at"], now):
            errors["preferred_at"] = [PREFERRED_OUT_OF_RANGE]
        if errors:
            raise IntakeError(IntakeReason.INVALID, errors)

        # A lead nobody can call is e-mailed to the recipients instead; with nobody to e-mail it
        # is refused, so the visitor knows at once (docs/calls.md#a-site-that-cannot-call).
        instead = None
        if site.first_call_delay > MAX_CALL_DELAY_SECONDS:
            instead = NOTIFIED_REASON
        elif not site.has_operator_number:
            instead = NO_OPERATOR_REASON
        try:
            scheduled_at = first_attempt_at(
                site.hours, now, delay_seconds=site.first_call_delay, preferred_at=data["preferred_at"]
            )
        except ScheduleError as exc:
            log.error("connection %s: %s; the lead cannot be called", site.id, exc)
            scheduled_at = now + dt.timedelta(seconds=site.first_call_delay)
            instead = instead or NO_HOURS_REASON
        if instead is not None and not site.has_recipient_for(data["office_id"], data["department_id"]):
            raise IntakeError(IntakeReason.CANNOT_CALL, {"_schema": [CANNOT_CALL_MESSAGE]})
        if (
            instead is None
            and scheduled_at > now + dt.timedelta(seconds=site.first_call_delay)
            and site.offhours_spread
        ):
            scheduled_at = await self._spread(site, scheduled_at)
        return await self._commit(self._prepare(data, site, now, scheduled_at, client_ip, instead))

    def _extra_schema(self, source: str) -> Schema | None:
        """The source's ``extra_schema``, made once (the registry is complete when leads come)."""
        schema = self._extra_schemas.get(source)
        if schema is None and (declared := self.registry.lead_sources[source].extra_schema) is not None:
            schema = self._extra_schemas[source] = declared()
        return schema

    def _apps_taking(self, source: str) -> frozenset[str]:
        """The applications whose leads come as ``source`` (none for the API or a source without an app)."""
        return frozenset(key for key, app in self.registry.applications.items() if app.lead_source == source)

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
        self,
        data: dict[str, Any],
        site: Site,
        now: dt.datetime,
        scheduled_at: dt.datetime,
        client_ip: str | None,
        instead: str | None = None,
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
        if instead is not None:  # e-mailed instead of called
            call.update(
                state=CallState.NOTIFIED,
                display_status=DisplayStatus.NOTIFIED,
                reason=instead,
                next_attempt_at=None,
                next_direction=None,
                finished_at=now,
            )
            jobs = [notify_job(key, "lead_delayed", call_id) for key in self.registry.notifiers]
        else:
            jobs = [attempt_job(call_id, 1, scheduled_at)]
            jobs += [
                notify_job(key, "lead_created", call_id)
                for key, n in self.registry.notifiers.items()
                if n.wants_new_leads()
            ]
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
            unique_window_days=site.unique_window_days,
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
        try:
            await self._write_fresh(fresh)
        finally:  # after the fresh ones: a repeat within this very group finds its lead stored
            if duplicates:
                await self._answer_duplicates(duplicates)

    async def _write_fresh(self, fresh: list[_Pending]) -> None:
        if not fresh:
            return
        try:
            await self._tag_unique(fresh)
        except Exception as exc:  # the database is down: nobody in the group can be stored now
            log.error("could not read the earlier leads of %d leads: %s", len(fresh), exc)
            stored: list[_Pending] = []
            refused = [(item, self._refusal(exc)) for item in fresh]
        else:
            stored, refused = await self._store(fresh)
            if refused and not stored and len(fresh) > 1:
                # Not one row of the group could be written, each on its own: the database (or a bug of
                # ours) is at fault, not every visitor's input -- they are told to try again, not 422.
                unavailable = self._refusal(ConnectionError("no row of the group could be stored"))
                refused = [(item, unavailable) for item, _ in refused]
        if refused:
            try:  # a refused lead is not a duplicate of anything: the visitor may send it again corrected
                await self.redis.delete(*[item.dup_key for item, _ in refused])
            except Exception:  # the duplicate keys expire by themselves
                pass
        for item, error in refused:
            settle(item.future, error=error)
        if not stored:
            return
        # committed is durable: answer now, and queue the jobs while the next group is written
        for item in stored:
            settle(item.future, item.accepted)
        task = asyncio.create_task(self._enqueue([job for item in stored for job in item.jobs]))
        self._enqueueing.add(task)
        task.add_done_callback(self._enqueueing.discard)

    async def _store(self, group: list[_Pending]) -> tuple[list[_Pending], list[tuple[_Pending, IntakeError]]]:
        """Write the group in one transaction; when the database refuses its values, find the rows at fault.

        The group is split in halves and each half written on its own, down to
        single rows, so a row the database refuses (a value the edge let
        through) costs only its own visitor a refusal; the others are stored.
        A failure that is not about the values (the database is down) is not
        split: everyone in the group is answered "try again" at once.
        Returns (stored, refused with their errors).
        """
        try:
            await self._insert(group)
            return group, []
        except Exception as exc:
            if len(group) == 1 or not is_data_error(exc):
                log.error("could not store %d lead(s): %s", len(group), exc)
                refusal = self._refusal(exc)
                return [], [(item, refusal) for item in group]
            log.warning(
                "the database refused a value in a group of %d leads (%s); storing it in halves", len(group), exc
            )
        middle = len(group) // 2
        first_stored, first_refused = await self._store(group[:middle])
        second_stored, second_refused = await self._store(group[middle:])
        return first_stored + second_stored, first_refused + second_refused

    async def _insert(self, group: list[_Pending]) -> None:
        async with in_transaction():
            await self._insert_leads.execute([item.lead for item in group])
            await self._insert_calls.execute([item.call for item in group])
            # pushes and notifications are known to the sweep even if their enqueue is lost (new ids: no
            # conflict is possible, so the plain bulk insert serves instead of remember's bulk_create)
            pending = pending_rows([job for item in group for job in item.jobs], dt.datetime.now(dt.UTC))
            if pending:
                await self._insert_pending.execute(pending)

    @staticmethod
    def _refusal(exc: Exception) -> IntakeError:
        """One lead the database would not take: its data (422), or the database is down (503, try again)."""
        if is_data_error(exc):
            return IntakeError(IntakeReason.INVALID, {"_schema": [CANNOT_STORE]})
        return IntakeError(IntakeReason.UNAVAILABLE, {"_schema": ["The lead could not be stored, try again."]})

    async def _tag_unique(self, batch: list[_Pending]) -> None:
        """*repeat* when the same connection had a lead from the same phone within its unique window
        before this one, else *unique* -- set as the lead is stored, whatever happens to the call
        next (docs/calls.md#automatic-tags). One query for the whole group."""
        earliest = min(item.lead["created_at"] - dt.timedelta(days=item.unique_window_days) for item in batch)
        seen: dict[tuple[int, str], list[dt.datetime]] = {}
        for connection_id, phone, created_at in await _earlier_leads(
            list({item.lead["connection_id"] for item in batch}), list({item.lead["phone"] for item in batch}), earliest
        ):
            seen.setdefault((connection_id, phone), []).append(created_at)
        for item in batch:  # leads of the same group count too
            seen.setdefault((item.lead["connection_id"], item.lead["phone"]), []).append(item.lead["created_at"])
        for item in batch:
            lead = item.lead
            since = lead["created_at"] - dt.timedelta(days=item.unique_window_days)
            earlier = seen[lead["connection_id"], lead["phone"]]
            item.call["is_unique"] = not any(since <= at < lead["created_at"] for at in earlier)

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
