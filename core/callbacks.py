"""The callback engine: runs attempts through the active telephony backend.

One arq job starts one attempt (``core.place_attempt(call_id, number)``).
The job first *claims* the attempt with a conditional update, so a job that
runs twice (re-queued by the sweep, retried by arq) does nothing the second
time; the call then runs as a task of the engine while the job ends. After the attempt the redial matrix decides: another attempt at a time
inside working hours, or the call's final status, tags, integration pushes
and notifications.

A worker marks the calls it is dialling as alive in Redis every few seconds;
the sweep resolves calls that are "dialling" with no live worker (killed
mid-call) as interrupted and sends them through the redial matrix, and
re-queues calls whose next attempt is due but whose job went missing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from arq.constants import in_progress_key_prefix
from tortoise.expressions import F
from tortoise.models import Model

from perezvon.core import announcements, claims, enablement, endings, lines, redial, scenario, schedule
from perezvon.core.batching import Batcher, settle
from perezvon.core.dials_first import DialsFirst, Placing, current_gate, on_the_dial_path
from perezvon.core.models import (
    REASON_LENGTH,
    Attempt,
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
from perezvon.core.phones import InvalidPhone, normalise
from perezvon.core.prepared import PreparedRead, PreparedValues
from perezvon.core.queue import (
    DELIVERY_WORKERS_KEY,
    Job,
    JobQueue,
    attempt_job,
    delivery_job,
    job_of,
    notify_job,
    pending_rows,
)
from perezvon.core.recordings import recording_store
from perezvon.core.registry import (
    ATTEMPT_FINISHED,
    CALL_FINISHED,
    AttemptOutcome,
    AttemptPlan,
    AttemptProgress,
    Direction,
    LegStatus,
    RecordedNotice,
    TelephonyBackend,
)
from perezvon.core.schemas import ANNOUNCEMENT_SETTINGS, TELEPHONY_SETTINGS
from perezvon.core.statuses import classify

if TYPE_CHECKING:
    from arq.connections import ArqRedis

    from perezvon.core.registry import Registry
    from perezvon.core.settings import Settings

log = logging.getLogger("perezvon.callbacks")

ALIVE_TTL = 30  # seconds a worker's "I am dialling this call" mark lives without renewal
ALIVE_EVERY = 5
#: each worker's heartbeat (backend health, calls in flight) for /healthz
WORKERS_KEY = "pv:workers"
WORKER_STALE_SECONDS = 20
#: a call dialling this long with no live worker is resolved as interrupted
ORPHAN_GRACE = dt.timedelta(seconds=ALIVE_TTL)
INTERRUPTED = "attempt interrupted: the worker stopped during the call"
#: how long the "leg being dialled" note lives (longer than any attempt's ringing)
LEG_KEY_TTL = 3600
#: an attempt job this far past its due time while its call is still unclaimed is held by a dead claim
STALE_CLAIM = dt.timedelta(seconds=60)

#: the reads of every attempt, their SQL built once (core/prepared.py)
_CALL_WITH_SITE = PreparedRead(
    Call, lambda call_id: Call.filter(id=call_id).select_related("lead", "connection").limit(1), call_id="id"
)
_SITE_LINES = PreparedRead(
    OperatorNumber,
    lambda connection_id: OperatorNumber.filter(connection_id=connection_id, office_id=None),
    connection_id="connection_id",
)
_ANY_LINES = PreparedRead(
    OperatorNumber,
    lambda connection_id: OperatorNumber.filter(connection_id=connection_id),
    connection_id="connection_id",
)
#: which of the sites of calls just ended have someone to tell
_NOTIFIED_SITES = PreparedValues(
    NotificationRecipient,
    lambda ids: NotificationRecipient.filter(connection_id__in=ids).distinct().values_list("connection_id"),
    ids="connection_id",
)
#: a pending push or notification this far past its due time has lost its job (a running one ends
#: well within it: a push is given 60 s, core/jobs.py); the sweep queues it again
PENDING_GRACE = dt.timedelta(seconds=120)
#: a pending job queued again this many times is left alone (it keeps failing on something else)
MAX_REQUEUES = 30
#: an attempt job running this long after its due time checks the working hours again
LATE_AFTER = dt.timedelta(seconds=60)
#: what a call-tracking DTMF tag may hold
DTMF_TAG = re.compile(r"[0-9*#]{1,16}")
#: seconds between two looks for a free operator line while a callback waits for one (a line this
#: process gives back wakes its waiters at once; this is for the lines other processes give back)
LINE_POLL = 0.5
#: a waiting call's due time is kept this far ahead, renewed while it waits: the sweep queues it
#: again (keeping its place in the waiting line) only once the process waiting for it has stopped
LINE_HOLD = dt.timedelta(seconds=15)
LINE_HOLD_EVERY = 5.0
#: an operator leg that ended with one of these was answered (docs/calls.md#operator-lines)
ANSWERED = (LegStatus.OK, LegStatus.CANCELLED_BY_DTMF, LegStatus.OPERATOR_NO_KEY, LegStatus.PARTY_LEFT)
ALL_LINES_BUSY = "every operator line stayed busy"
#: the most attempt endings written in one transaction, and how long the first of them waits for
#: company: calls ending within this of each other share their statements (core/endings.py). A
#: group of 200 held the database for 200-320 ms while the process's dials waited (BENCHMARKS.md)
ENDINGS_AT_ONCE = 32
ENDINGS_LINGER = 0.02


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


#: KEYS: the alive marks to set again; ARGV[1]: their lifetime in seconds
_RENEW_MARKS = """
for _, key in ipairs(KEYS) do
    redis.call('SET', key, '1', 'EX', ARGV[1])
end
return #KEYS
"""


def _alive_key(call_id: str) -> str:
    return f"pv:alive:{call_id}"


def hours_of(connection: Connection, calendar: list[CalendarDay] | None = None) -> schedule.Hours:
    return schedule.Hours(
        timezone=connection.timezone,
        weekly=connection.schedule,
        # a day that is not a holiday has both times (the admin's calendar form requires them)
        overrides={
            d.date: (None if d.kind == "holiday" else cast("tuple[str, str]", (d.opens, d.closes)))
            for d in calendar or []
        },
    )


async def working_hours(connection: Connection) -> schedule.Hours:
    """The connection's hours with its calendar. (Read by connection id: ``connection.calendar``
    would keep a relation object on the connection that refers back to it, a reference cycle.)"""
    return hours_of(connection, await CalendarDay.filter(connection_id=connection.id))


def leg_key(call_id: str) -> str:
    """Redis key: which leg the call's current attempt is ringing, ``"<attempt>:<leg>"`` (the visitor's
    closing screen says "calling the operator" / "calling you" from it)."""
    return f"pv:leg:{call_id}"


class _Progress(AttemptProgress):
    def __init__(
        self,
        attempt: Attempt,
        redis: ArqRedis | None = None,
        placing: Placing | None = None,
        *,
        answered: Callable[[str, str], Awaitable[None]] | None = None,
        starts: claims.AttemptStarts | None = None,
    ) -> None:
        self.attempt = attempt
        self.redis = redis
        self.placing = placing
        self.answered = answered
        self.starts = starts

    async def operator_answered(self, number: str) -> None:
        if self.answered is not None:  # ring-all: the other lines are free again
            await self.answered(str(self.attempt.call_id), number)

    async def leg_dialled(self, leg: str) -> None:
        if self.placing is not None:  # dialled: the pushes held back for it may go on
            self.placing.done()
        if self.redis is not None:
            try:
                await self.redis.set(leg_key(str(self.attempt.call_id)), f"{self.attempt.number}:{leg}", ex=LEG_KEY_TTL)
            except Exception as exc:  # only the visitor's screen is less precise
                log.warning("could not note the leg being dialled: %s", exc)
        if self.attempt.dialled_at is None:
            self.attempt.dialled_at = utcnow()
            if self.starts is not None:  # with the others dialled meanwhile
                await self.starts.dialled(self.attempt)
            else:
                await Attempt.filter(id=self.attempt.id).update(dialled_at=self.attempt.dialled_at)


@dataclasses.dataclass(eq=False)
class _Ending:
    """An attempt that ended, waiting to be written with the others (:meth:`CallbackEngine._write_endings`)."""

    rows: endings.EndingRows
    connection_id: int
    final: bool
    successful: bool
    next_attempt: Job | None
    future: asyncio.Future[bool]
    jobs: list[Job] = dataclasses.field(default_factory=list)


class CallbackEngine:
    def __init__(
        self,
        *,
        backend: TelephonyBackend,
        registry: Registry,
        redis: ArqRedis,
        settings: Settings | None = None,
        dials_first: DialsFirst | None = None,
    ) -> None:
        self.backend = backend
        self.dials_first = dials_first or DialsFirst()
        self.settings = settings
        self.registry = registry
        self.redis = redis
        self.queue = JobQueue(redis)
        self.in_flight: set[str] = set()
        #: the calls in flight whose alive mark the keep-alive has set (only theirs need removing)
        self._marked: set[str] = set()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self._alive_task: asyncio.Task[None] | None = None
        #: one sweep at a time per process: sweeps queued up during an outage all start when it ends
        self._sweeping = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.lines = lines.Lines(redis)
        #: the claims (on SQLite) and dial moments of the attempts started here, written in groups
        self.starts = claims.AttemptStarts()
        self._renew_marks = redis.register_script(_RENEW_MARKS)
        #: the leases of the attempts in progress here, by call id (renewed with the alive marks)
        self._rung: dict[str, list[tuple[OperatorNumber, lines.Lease]]] = {}
        #: the calls this process waits a free operator line for, and their tasks
        self._waiting: dict[str, asyncio.Task[None]] = {}
        #: set when this process gives back a line of the group (then replaced): wakes its waiters
        self._freed: dict[str, asyncio.Event] = {}
        #: attempts that ended, written together (core/endings.py)
        self._endings: Batcher[_Ending] = Batcher(
            self._write_endings, name="perezvon-endings", max_batch=ENDINGS_AT_ONCE, linger_seconds=ENDINGS_LINGER
        )

    # --- keeping the "alive" marks fresh -------------------------------------------

    def start(self) -> None:
        self._alive_task = asyncio.create_task(self._keep_alive(), name="perezvon-alive")

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Let the attempts in progress end (up to ``grace_seconds``), then interrupt
        the rest: each is recorded and goes through the redial matrix."""
        for waiter in list(self._waiting.values()):  # their calls stay scheduled: the sweep queues them again
            waiter.cancel()
        await asyncio.gather(*self._waiting.values(), return_exceptions=True)
        if not await self.drain(grace_seconds):
            log.warning("interrupting %d attempts in progress", len(self._tasks))
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._endings.close(ConnectionError("the worker stopped"))  # every attempt above has ended
        await self.starts.close()
        if self._alive_task:
            self._alive_task.cancel()
            await asyncio.gather(self._alive_task, return_exceptions=True)
        try:
            await self.redis.hdel(WORKERS_KEY, self.worker_id)  # type: ignore[misc]  # redis-py: sync or async
        except Exception:  # stale entries are ignored by /healthz anyway
            pass

    async def _keep_alive(self) -> None:
        while True:
            try:
                health = await self.backend.health()
                await self.redis.hset(
                    WORKERS_KEY,
                    self.worker_id,
                    json.dumps(
                        {
                            "worker": self.worker_id,
                            "at": time.time(),
                            "backend": self.backend.key,
                            "telephony": health or "ok",
                            "pbxs": self.backend.servers(),
                            "in_flight": len(self.in_flight),
                        }
                    ),
                )  # type: ignore[misc]  # redis-py types hset for its sync and async clients at once
                # a chunk per script call: thousands of marks (one SET each through a pipeline took
                # 30 ms of this loop for 5,000) renewed without holding the loop, or Redis, for long
                calls = list(self.in_flight)
                in_flight = [_alive_key(call_id) for call_id in calls]
                for start in range(0, len(in_flight), lines.RENEW_CHUNK):
                    await self._renew_marks(keys=in_flight[start : start + lines.RENEW_CHUNK], args=[ALIVE_TTL])
                    self._marked.update(calls[start : start + lines.RENEW_CHUNK])
                await self.lines.renew([lease for held in self._rung.values() for _, lease in held])
            except Exception as exc:  # Redis blip: the marks are renewed next round
                log.warning("could not renew in-flight marks: %s", exc)
            await asyncio.sleep(ALIVE_EVERY)

    def _no_longer_in_flight(self, call_id: str) -> list[str]:
        """Forget the call here; the alive mark to remove from Redis, if the keep-alive set one."""
        self.in_flight.discard(call_id)
        if call_id in self._marked:
            self._marked.discard(call_id)
            return [_alive_key(call_id)]
        return []

    # --- one attempt ------------------------------------------------------------------

    async def place_attempt(self, call_id: str, number: int, *, taken: lines.Taken | None = None) -> str:
        """Claim attempt ``number`` of a call and start it; returns at once.

        The attempt itself runs as a task of this engine, not inside the arq
        job: a call lasts minutes, and arq re-checks every running job on every
        poll, so holding jobs for whole calls would slow the pick-up of new
        leads as calls pile up.
        """
        placing = self.dials_first.placing()  # until the first leg is dialled (core/dials_first.py)
        # this job's task and the attempt's task it starts go first in line for the database
        on_the_dial_path.set(True)
        started = ""
        try:
            started = await self._claim_attempt(call_id, number, placing, taken)
        finally:
            if not started.startswith("attempt"):
                placing.done()
        return started

    async def _claim_attempt(
        self, call_id: str, number: int, placing: Placing, taken: lines.Taken | None = None
    ) -> str:
        """Claim and start the attempt; ``taken``: the lines a waiting callback has just taken."""
        try:
            return await self._claim_with_line(call_id, number, placing, taken)
        except BaseException:
            if taken is not None and call_id not in self._rung:  # taken, and not handed to an attempt
                await asyncio.shield(self.lines.give_back(*taken.leases))
            raise

    async def _claim_with_line(self, call_id: str, number: int, placing: Placing, taken: lines.Taken | None) -> str:
        leases = taken.leases if taken is not None else []
        # one query with its lead and connection joined (each round trip waits for the connection and a loop turn)
        call = await _CALL_WITH_SITE.first(call_id=call_id)
        if call is None or call.state != CallState.SCHEDULED or call.attempts_made != number - 1:
            await self.lines.give_back(*leases)
            return "skipped: already placed or no longer due"
        waiting = await self._must_wait(call, number)
        if waiting:
            await self.lines.give_back(*leases)
            return waiting
        rung: list[OperatorNumber] = taken.numbers if taken is not None else []
        gave_up = False
        if not rung:
            group, numbers, strategy = await self._line_group(call.connection, call.lead)
            if numbers:
                taken = await self._take_line(call_id, number, group, numbers, strategy)
                rung, leases = taken.numbers, taken.leases
                if not rung:
                    if time.time() - taken.waiting_since < call.connection.line_wait_seconds:
                        return await self._wait_for_line(call, number, group, numbers, strategy)
                    # waited long enough: the attempt ends as "operator busy" and the matrix decides
                    await self.lines.leave(group, call_id)
                    rung, gave_up = [numbers[(number - 1) % len(numbers)]], True
        operator = rung[0] if rung else None
        attempt = Attempt(
            call_id=call.id,
            number=number,
            direction=call.next_direction or call.first_direction,
            backend=self.backend.key,
            operator_number=operator.phone if operator else "",
            started_at=utcnow(),
        )
        if not await self.starts.claim(call_id, number, attempt):  # the call's update and the row: one trip
            await self.lines.give_back(*leases)
            return "skipped: already placed or no longer due"
        call.state, call.attempts_made, call.next_attempt_at = CallState.DIALLING, number, None
        if leases:
            self._rung[call_id] = list(zip(rung, leases))
        task = asyncio.create_task(
            self._run_attempt(call, attempt, operator, placing, gave_up=gave_up, rung=rung),
            name=f"attempt:{call_id}:{number}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # No round trip for the alive mark here: the keep-alive sets it within ALIVE_EVERY, well inside
        # the ORPHAN_GRACE the sweep leaves a call after its attempt's start (the attempt's claim).
        self.in_flight.add(call_id)
        return f"attempt {number} started"

    async def _give_back(self, call_id: str, keep: str = "", *, marks: Sequence[str] = ()) -> None:
        """Give back the call's operator lines, all but the number ``keep`` (ring-all's answered line);
        ``marks``: alive marks removed in the same round trip."""
        held = self._rung.get(call_id, [])
        back = [lease for number, lease in held if number.phone != keep or not keep]
        if keep:
            self._rung[call_id] = [(n, lease) for n, lease in held if n.phone == keep]
        else:
            self._rung.pop(call_id, None)
        if not back and not marks:
            return
        try:
            await self.lines.give_back(*back, also_delete=marks)
        except Exception as exc:  # the leases lapse by themselves, and the marks
            log.warning("call %s: operator lines not given back: %s", call_id, exc)
        if not back:
            return
        freed = self._freed.pop(back[0].group, None)
        if freed is not None:  # this process's callbacks waiting for the group look now
            freed.set()

    async def _must_wait(self, call: Call, number: int) -> str | None:
        """Why a due attempt is not placed now, or None (docs/calls.md#switched-off).

        * The connection is switched off: the call is *held* -- left scheduled, not
          claimed, not failed. The sweep does not re-queue held calls; once the
          connection is on again it queues them, oldest due time first.
        * The job runs late (a held call released, a worker that was down) and the
          site is closed now: the attempt moves to the next opening (the sweep
          queues it then) rather than ring someone at night.
        """
        connection: Connection = call.connection
        if not connection.is_on:
            return "held: the connection is switched off"
        now = utcnow()
        if call.next_attempt_at is None or now - call.next_attempt_at < LATE_AFTER:
            return None  # placed inside working hours by the intake or the matrix
        try:
            opening = schedule.redial_at(await working_hours(connection), now)
        except schedule.ScheduleError:  # broken hours never stop a call
            return None
        if opening <= now:
            return None
        moved = await Call.filter(id=call.id, state=CallState.SCHEDULED, attempts_made=number - 1).update(
            next_attempt_at=opening
        )
        return f"waiting: the site is closed, moved to {opening.isoformat()}" if moved else None

    async def _take_line(
        self, call_id: str, number: int, group: str, numbers: list[OperatorNumber], strategy: str
    ) -> lines.Taken:
        """Attempt ``number``'s lines by the group's strategy, or its place in the group's wait."""
        return await self.lines.take(
            numbers,
            group=group,
            strategy=strategy,
            waiter=call_id,
            lease_id=f"{call_id}:{number}",
            hunt_start=number - 1,  # redials begin their hunt one number further, as they always rotated
        )

    async def _wait_for_line(
        self, call: Call, number: int, group: str, numbers: list[OperatorNumber], strategy: str
    ) -> str:
        """Every line is at its limit: keep the call scheduled and look again until one frees
        (docs/calls.md#operator-lines). One waiting task per call and process."""
        call_id = str(call.id)
        if call_id in self._waiting:  # this process waits for it already (and keeps its due time ahead)
            return "waiting: every operator line is busy"
        held = await Call.filter(id=call.id, state=CallState.SCHEDULED, attempts_made=number - 1).update(
            next_attempt_at=utcnow() + LINE_HOLD
        )
        if not held:
            return "skipped: already placed or no longer due"
        self.in_flight.add(call_id)  # a waiting call counts as work in progress (drain, tests)
        self._waiting[call_id] = asyncio.create_task(
            self._keep_waiting(call_id, number, group, numbers, strategy, call.connection.line_wait_seconds),
            name=f"waiting:{call_id}:{number}",
        )
        return "waiting: every operator line is busy"

    async def _keep_waiting(
        self, call_id: str, number: int, group: str, numbers: list[OperatorNumber], strategy: str, bound: int
    ) -> None:
        """Look for a free line whenever one is given back here, else every :data:`LINE_POLL` s; only
        Redis is asked until a line is taken (the database is written every :data:`LINE_HOLD_EVERY` s)."""
        loop = asyncio.get_running_loop()
        held_at = loop.time()
        started = False
        try:
            while True:
                freed = self._freed.setdefault(group, asyncio.Event())
                try:
                    # not wait_for: on Python 3.11 it loses a cancellation that comes as the line frees
                    async with asyncio.timeout(LINE_POLL):
                        await freed.wait()
                except TimeoutError:
                    pass
                try:
                    if loop.time() - held_at >= LINE_HOLD_EVERY:
                        held_at = loop.time()
                        held = await Call.filter(
                            id=call_id, state=CallState.SCHEDULED, attempts_made=number - 1
                        ).update(next_attempt_at=utcnow() + LINE_HOLD)
                        if not held:  # placed by another process, or cancelled
                            await self.lines.leave(group, call_id)
                            return
                    taken = await self._take_line(call_id, number, group, numbers, strategy)
                    if taken.number is None and time.time() - taken.waiting_since < bound:
                        continue
                    # a line, or waited long enough: the claim places the attempt or gives up
                    self._waiting.pop(call_id, None)
                    result = await self.place_attempt(call_id, number, taken=taken if taken.number else None)
                except Exception as exc:  # a database or Redis blip: look again
                    log.warning("call %s: looking for a free operator line failed: %s", call_id, exc)
                    self._waiting[call_id] = cast("asyncio.Task[None]", asyncio.current_task())
                    continue
                # its attempt's task (or a new waiting task) keeps the call in flight now
                started = result.startswith("attempt") or call_id in self._waiting
                if not started:  # held, moved to the next opening, or placed elsewhere: no place kept
                    await self.lines.leave(group, call_id)
                return
        finally:
            if self._waiting.get(call_id) is asyncio.current_task():
                self._waiting.pop(call_id, None)
            if not started:
                self._no_longer_in_flight(call_id)  # a mark set meanwhile lapses by itself

    async def _run_attempt(
        self,
        call: Call,
        attempt: Attempt,
        operator: OperatorNumber | None,
        placing: Placing | None = None,
        *,
        gave_up: bool = False,
        rung: list[OperatorNumber] | None = None,
    ) -> None:
        current_gate.set(self.dials_first)  # this task's own context: what runs after the call waits its turn
        try:
            if operator is None:
                outcome = AttemptOutcome(None, None, note="no operator number is set for this site")
            elif gave_up:  # nothing dialled: every line stayed at its limit for the connection's wait
                outcome = AttemptOutcome(LegStatus.BUSY, None, note=ALL_LINES_BUSY)
            else:
                outcome = await self._run_backend(
                    call, call.lead, call.connection, attempt, operator, placing, rung=rung or [operator]
                )
            if placing is not None:
                placing.done()  # it ended without a leg dialled (a refusal, an error)
            on_the_dial_path.set(False)  # this task's own context: the results wait their turn
            # a call that ended writes its results after the new dials of this process
            await self.dials_first.wait()
            if call.is_unique is None:  # the intake tags every lead it stores; calls made before it did
                await self._tag_unique(call, call.lead, call.connection)
            await self.finish_attempt(call, attempt, outcome, line=self._line_counted(operator, rung, outcome, gave_up))
        except asyncio.CancelledError:
            # the worker is stopping: record it now rather than leave the call "dialling"
            await asyncio.shield(
                self.finish_attempt(call, attempt, AttemptOutcome(LegStatus.SERVER_ERROR, None, note=INTERRUPTED))
            )
            raise
        except Exception:  # e.g. the database went away: the sweep resolves the call later
            log.exception("call %s attempt %s could not be completed", call.id, attempt.number)
        finally:
            if placing is not None:
                placing.done()
            # the lines and the alive mark in one round trip
            await self._give_back(str(call.id), marks=self._no_longer_in_flight(str(call.id)))

    @staticmethod
    def _line_counted(
        operator: OperatorNumber | None, rung: list[OperatorNumber] | None, outcome: AttemptOutcome, gave_up: bool
    ) -> OperatorNumber | None:
        """The operator number whose run of unanswered attempts this one counts in (shown as failing in
        the admin; the reports plugin alerts the site's full-access users, docs/notifications.md)."""
        if operator is None or gave_up or outcome.operator_status is None:  # no operator was dialled
            return None
        answered = [n for n in rung or [] if outcome.operator_number and n.phone == outcome.operator_number]
        if answered:  # ring-all: only the line that answered can be said to work
            return answered[0]
        return operator if len(rung or []) < 2 else None

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait for the attempts in progress; True when none is left."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        return not self._tasks

    async def _run_backend(
        self,
        call: Call,
        lead: Lead,
        connection: Connection,
        attempt: Attempt,
        operator: OperatorNumber,
        placing: Placing | None = None,
        *,
        rung: list[OperatorNumber],
    ) -> AttemptOutcome:
        try:
            plan = await build_plan(
                call,
                lead,
                connection,
                attempt,
                operator,
                ring_all=rung if len(rung) > 1 else [],
                dtmf_tag=await self._dtmf_tag(connection.id, lead.source),
                details=_spoken_details(self.registry, lead),
            )
            progress = _Progress(attempt, self.redis, placing, answered=self._give_back, starts=self.starts)
            return await self.backend.place_attempt(plan, progress)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a backend bug or a lost PBX link: a clear status, then the matrix
            log.exception("telephony backend %s failed on call %s", self.backend.key, call.id)
            return AttemptOutcome(LegStatus.SERVER_ERROR, None, note=f"telephony backend error: {exc}")

    async def _dtmf_tag(self, connection_id: int, source: str) -> str:
        """The call-tracking tags of the integrations on for the connection (Calltouch's per-app code)."""
        tags = []
        for key in sorted((await enablement.keys_on(connection_id))[enablement.INTEGRATION]):
            integration = self.registry.integrations.get(key)
            tag = integration.operator_dtmf(source) if integration is not None else ""
            if tag and DTMF_TAG.fullmatch(tag):
                tags.append(tag)
            elif tag:
                log.warning("integration %s: DTMF tag %r is not digits, * or #; not sent", key, tag)
        return "w".join(tags)  # w: half a second between two services' tags

    async def _line_group(self, connection: Connection, lead: Lead) -> tuple[str, list[OperatorNumber], str]:
        """The lines a lead's callback may ring, their group's key and strategy
        (docs/calls.md#operator-lines): the office's own numbers first (with the office's
        strategy, if it has one), else the connection's."""
        strategy = connection.line_strategy
        if lead.office_id:
            numbers = await OperatorNumber.filter(connection_id=connection.id, office_id=lead.office_id).all()
            if numbers:
                office = await Office.get_or_none(id=lead.office_id)
                if office is not None and office.line_strategy:
                    strategy = office.line_strategy
                return lines.group_key(connection.id, lead.office_id), numbers, self._can_ring(strategy)
        numbers = await _SITE_LINES.all(connection_id=connection.id)
        if not numbers:
            numbers = await _ANY_LINES.all(connection_id=connection.id)
        return lines.group_key(connection.id, None), numbers, self._can_ring(strategy)

    def _can_ring(self, strategy: str) -> str:
        """The strategy as this backend can play it: one that cannot ring all at once hunts."""
        return lines.HUNT if strategy == lines.RING_ALL and not self.backend.rings_all else strategy

    async def _tag_unique(self, call: Call, lead: Lead, connection: Connection) -> None:
        since = lead.created_at - dt.timedelta(days=connection.unique_window_days)
        earlier = await Lead.filter(
            connection_id=connection.id, phone=lead.phone, created_at__gte=since, created_at__lt=lead.created_at
        ).exists()
        call.is_unique = not earlier
        await Call.filter(id=call.id).update(is_unique=call.is_unique)

    # --- after an attempt --------------------------------------------------------------

    async def finish_attempt(
        self, call: Call, attempt: Attempt, outcome: AttemptOutcome, *, line: OperatorNumber | None = None
    ) -> None:
        """Record the attempt's outcome and what follows it: the next attempt, or the call's end.

        ``line``: the operator number the attempt counts for in its run of unanswered
        attempts (none for a ring-all attempt nobody answered). The ending is written
        with the others that end meanwhile (:meth:`_write_endings`)."""
        connection: Connection = call.connection
        now = utcnow()
        display, reason = classify(outcome.operator_status, outcome.client_status, attempt.direction)
        if outcome.note and outcome.operator_status in (None, LegStatus.SERVER_ERROR):
            reason = outcome.note[:REASON_LENGTH]
        attempt.ended_at = now
        attempt.operator_status = outcome.operator_status
        attempt.client_status = outcome.client_status
        attempt.duration_seconds = outcome.conversation_seconds
        attempt.display_status = display
        attempt.reason = reason
        attempt.recording = str(outcome.recording or "")
        if outcome.operator_number:  # ring-all: the line that answered is the attempt's number
            attempt.operator_number = outcome.operator_number
        if outcome.recording and self.settings is not None:
            try:  # into the deployment's store (S3 uploads it); a failure keeps the local file
                attempt.recording, attempt.recording_bytes = await recording_store(self.settings).adopt(
                    Path(outcome.recording)
                )
            except Exception as exc:
                log.warning("call %s: recording kept locally, the store refused it: %s", call.id, exc)

        step = None
        if attempt.operator_number:  # no operator number: redialling cannot help
            step = redial.next_step(
                connection.redial_matrix,
                chain_started=call.first_direction,
                next_number=attempt.number + 1,
                operator=outcome.operator_status,
                client=outcome.client_status,
            )
        values: dict[str, Any] = dict.fromkeys(name for name, _ in endings.CALL_COLUMNS)
        values.update(reason=reason, operator_number=attempt.operator_number)
        next_attempt: Job | None = None
        successful = display == DisplayStatus.SUCCESSFUL
        if step is not None:
            due = now + dt.timedelta(seconds=step.period_seconds)
            try:
                due = schedule.redial_at(await working_hours(connection), due)
            except schedule.ScheduleError as exc:  # broken hours: redial on the matrix's time
                log.error("connection %s: %s", connection.id, exc)
            values.update(state=CallState.SCHEDULED, next_attempt_at=due, next_direction=step.direction)
            next_attempt = attempt_job(str(call.id), attempt.number + 1, due)
        else:
            values.update(
                state=CallState.FINISHED,
                display_status=display,
                duration_seconds=outcome.conversation_seconds if successful else 0,
                is_target=successful and outcome.conversation_seconds >= connection.target_call_seconds,
                # a failed manual attempt after a recorded conversation keeps that recording reachable
                # (docs/calls.md#call-again); in a chain the call has none before its final attempt
                recording=attempt.recording or call.recording,
                finished_at=now,
            )
        ending = _Ending(
            rows=endings.EndingRows(
                call_id=str(call.id),
                number=attempt.number,
                call=values,
                attempt_id=str(attempt.id),
                attempt={name: getattr(attempt, name) for name, _ in endings.ATTEMPT_COLUMNS},
                line=None if line is None else (line.id, outcome.operator_status in ANSWERED),
            ),
            connection_id=call.connection_id,
            final=step is None,
            successful=successful,
            next_attempt=next_attempt,
            future=asyncio.get_running_loop().create_future(),
        )
        changed = await self._endings.submit(ending)
        if changed:
            return
        # someone else (the sweep, a second worker) resolved it first
        if outcome.note == INTERRUPTED:  # two sweeps (or a sweep and a stop) raced: harmless
            log.info("call %s attempt %s was already resolved", call.id, attempt.number)
        else:  # the attempt was still on the line when a sweep took it for an orphan
            log.warning(
                "call %s attempt %s ended after another worker had resolved it as interrupted", call.id, attempt.number
            )

    async def _write_endings(self, batch: list[_Ending]) -> None:
        """Write the endings that arrived together in one transaction, then queue what they call for."""
        on_the_dial_path.set(False)  # this writer's own context: the dials' database turns come first
        await self.dials_first.wait()
        now = utcnow()
        enabled = await enablement.keys_on_many({e.connection_id for e in batch}, enablement.INTEGRATION)
        finals = {e.connection_id for e in batch if e.final}
        notified: set[int] = set()
        if finals and self.registry.notifiers:
            notified = {connection_id for (connection_id,) in await _NOTIFIED_SITES.all(ids=list(finals))}
        for ending in batch:
            ending.jobs = self._jobs_after(ending, enabled.get(ending.connection_id, []), notified)
        changed = await self._store_endings(batch, now)
        jobs = [job for e in batch if e.rows.call_id in changed for job in e.jobs]
        try:
            await self.queue.enqueue(jobs)
        except Exception as exc:  # the sweep re-queues due attempts and the pending jobs written with them
            log.warning("the follow-up jobs of %d ended attempts were not queued (%s)", len(changed), exc)

    async def _store_endings(self, batch: list[_Ending], now: dt.datetime) -> set[str]:
        """One transaction for the group; the ids of the calls it changed. When the database refuses
        a value, the group is written in halves, so only the ending at fault fails (its call is
        resolved by the sweep); an outage fails them all at once."""
        # pushes and notifications survive a lost enqueue: the sweep finds them in pending_jobs
        pending = [(e.rows.call_id, PendingJob(**row)) for e in batch for row in pending_rows(e.jobs, now)]
        try:
            changed = await endings.write_endings([e.rows for e in batch], pending)
        except Exception as exc:
            if len(batch) == 1 or not is_data_error(exc):
                for ending in batch:
                    settle(ending.future, error=exc)
                return set()
            log.warning(
                "the database refused a value among %d ended attempts (%s); writing them in halves", len(batch), exc
            )
            middle = len(batch) // 2
            return await self._store_endings(batch[:middle], now) | await self._store_endings(batch[middle:], now)
        for ending in batch:
            settle(ending.future, ending.rows.call_id in changed)
        return changed

    def _jobs_after(self, ending: _Ending, enabled: list[str], notified: set[int]) -> list[Job]:
        """The next attempt, or the pushes and notifications of the call's end; the attempt's pushes."""
        integrations = [(key, self.registry.integrations[key]) for key in enabled if key in self.registry.integrations]
        call_id, number = ending.rows.call_id, ending.rows.number
        jobs = [
            delivery_job(key, ATTEMPT_FINISHED, call_id, number)
            for key, i in integrations
            if i.handles(ATTEMPT_FINISHED)
        ]
        if ending.next_attempt is not None:
            jobs.append(ending.next_attempt)
        if ending.final:
            jobs += [delivery_job(key, CALL_FINISHED, call_id) for key, i in integrations if i.handles(CALL_FINISHED)]
            if ending.connection_id in notified:
                kind = "call_succeeded" if ending.successful else "call_failed"
                jobs += [notify_job(key, kind, call_id) for key in self.registry.notifiers]
        return jobs

    # --- durability -----------------------------------------------------------------

    async def sweep(self, now: dt.datetime | None = None) -> dict[str, int]:
        """Re-queue every due job that went missing; resolve calls orphaned mid-attempt.

        * due attempts of ``scheduled`` calls (their state says they are due), and
          an attempt job held by a claim that outlived its worker (see :meth:`_free_stale_claims`);
        * pushes and notifications still recorded as pending (:class:`PendingJob`)
          well past their due time, i.e. whose job was lost;
        * calls ``dialling`` with no live worker are resolved as interrupted.

        Every job keeps its id, so one still queued is not queued twice, and a
        job runs at most once at a time (arq's in-progress mark, and for attempts
        the call's claim in the database).
        """
        if self._sweeping.locked():
            return {"requeued": 0, "stale_claims": 0, "followups": 0, "orphans": 0}
        async with self._sweeping:
            return await self._sweep(now or utcnow())

    async def _sweep(self, now: dt.datetime) -> dict[str, int]:
        due = (  # held calls (connection switched off) wait; released ones go oldest first
            await Call.filter(state=CallState.SCHEDULED, next_attempt_at__lte=now, connection__is_on=True)
            .order_by("next_attempt_at")
            .limit(5000)
            .values_list("id", "attempts_made", "next_attempt_at")
        )
        attempts = [attempt_job(str(cid), made + 1, at) for cid, made, at in due]
        freed = await self._free_stale_claims([job for job, (_, _, at) in zip(attempts, due) if at < now - STALE_CLAIM])
        requeued = await self.queue.enqueue(attempts)
        followups = await self._requeue_pending(now)

        dialling = await Call.filter(state=CallState.DIALLING).limit(5000).values_list("id", "attempts_made")
        orphans = 0
        candidates = [(str(cid), made) for cid, made in dialling if str(cid) not in self.in_flight]
        if candidates and await self._marks_trustworthy():
            marks = await self.redis.mget([_alive_key(cid) for cid, _ in candidates])
            unmarked = [(cid, made) for (cid, made), mark in zip(candidates, marks) if mark is None]
            for start in range(0, len(unmarked), ENDINGS_AT_ONCE):  # together: their endings share a group
                chunk = unmarked[start : start + ENDINGS_AT_ONCE]
                orphans += sum(await asyncio.gather(*(self._resolve_orphan(cid, made, now) for cid, made in chunk)))
        if requeued or orphans or followups or freed:
            log.info(
                "sweep: %d attempts re-queued (%d stale claims freed), %d pushes or notifications re-queued, "
                "%d interrupted calls resolved",
                requeued,
                freed,
                followups,
                orphans,
            )
        return {
            "requeued": requeued,
            "stale_claims": freed,
            "followups": followups,
            "orphans": orphans,
        }

    async def _free_stale_claims(self, overdue: list[Job]) -> int:
        """Drop arq's in-progress marks on attempt jobs long overdue whose call is still unclaimed.

        A worker killed between claiming a job in Redis and running it leaves the
        mark for the job timeout plus ten seconds (hours, for attempts), and no
        other worker would take the job meanwhile. Dropping it is safe: an attempt
        job dials only after claiming the call in the database, so a second run
        of the same job does nothing.
        """
        if not overdue:
            return 0
        keys = [in_progress_key_prefix + job.job_id for job in overdue]
        marked = [key for key, exists in zip(keys, await self.redis.mget(keys)) if exists is not None]
        if marked:
            await self.redis.delete(*marked)
            log.warning("sweep: %d attempt jobs were held by a stopped worker's claim; freed", len(marked))
        return len(marked)

    async def _requeue_pending(self, now: dt.datetime) -> int:
        """Queue again the pushes and notifications still pending well past their due time."""
        rows = (
            await PendingJob.filter(due_at__lte=now - PENDING_GRACE, requeued__lt=MAX_REQUEUES)
            .order_by("due_at")
            .limit(5000)
        )
        if not rows:
            return 0
        added = await self.queue.enqueue_new([job_of(row) for row in rows])
        if added:  # queued again: give the job a grace period of its own before the next look
            await PendingJob.filter(job_id__in=added).update(requeued=F("requeued") + 1, due_at=now)
        return len(added)

    async def _marks_trustworthy(self) -> bool:
        """Whether a missing alive mark means a stopped worker, not a Redis that restarted empty.

        A restarted Redis has lost every mark; the workers still dialling write
        theirs again within :data:`ALIVE_EVERY` seconds. Until a mark's lifetime
        has passed since Redis started, a missing mark proves nothing, and
        resolving the call would let a second attempt ring while the first is
        still on the line. (An engine that is not running, as a test drives it,
        keeps no marks of its own and only sweeps when told to.)
        """
        if self._alive_task is None:
            return True
        try:
            uptime = int((await self.redis.info("server")).get("uptime_in_seconds", ALIVE_TTL))
        except Exception:  # cannot tell: the next sweep looks again
            return False
        return uptime >= ALIVE_TTL

    async def _resolve_orphan(self, call_id: str, number: int, now: dt.datetime) -> bool:
        attempt = await Attempt.get_or_none(call_id=call_id, number=number)
        if attempt is None or attempt.ended_at is not None or now - attempt.started_at < ORPHAN_GRACE:
            return False
        try:  # legs the stopped worker left on the PBX would otherwise hold the operator's line
            ended = await self.backend.end_interrupted(call_id, number)
        except Exception:
            log.exception("could not end what the PBX still holds for call %s attempt %d", call_id, number)
        else:
            if ended:
                log.info("call %s attempt %d: ended %d channel(s) a stopped worker left", call_id, number, ended)
        call = await Call.get(id=call_id).prefetch_related("connection")
        await self.finish_attempt(call, attempt, AttemptOutcome(LegStatus.SERVER_ERROR, None, note=INTERRUPTED))
        return True


def _spoken_details(registry: Registry, lead: Lead) -> str:
    """What the lead's app says of it to the operator (Application.spoken_details); "" when it fails."""
    for app in registry.applications.values():
        if app.lead_source == lead.source:
            try:
                return app.spoken_details(lead)
            except Exception:
                log.exception("application %s could not describe lead %s", app.key, lead.id)
    return ""


async def build_plan(
    call: Call,
    lead: Lead,
    connection: Connection,
    attempt: Attempt,
    operator: OperatorNumber,
    *,
    dtmf_tag: str = "",
    details: str = "",
    ring_all: list[OperatorNumber] | None = None,
) -> AttemptPlan:
    """The attempt as the backend must play it: settings, caller ids and what the robot says."""
    telephony = TELEPHONY_SETTINGS.load(connection.telephony or {})
    spoken = ANNOUNCEMENT_SETTINGS.load(connection.announcements or {})
    office = await Office.get_or_none(id=lead.office_id) if lead.office_id else None
    department = await Department.get_or_none(id=lead.department_id) if lead.department_id else None
    facts = announcements.LeadFacts(
        site=connection.name or connection.domain,
        office=office.name if office else "",
        department=department.name if department else "",
        client_name=lead.name,
        rule=(lead.visit or {}).get("rule", ""),
        details=details,
    )
    if attempt.direction == Direction.CLIENT_FIRST:
        command, action = telephony["connect"], "соединиться с клиентом"
    else:
        command, action = telephony["call_client"], "позвонить клиенту"
    prompt = announcements.key_prompt(command["key"], action) if command["on"] else ""
    client_text = announcements.for_client(facts, spoken)
    if attempt.direction != Direction.CLIENT_FIRST and not announcements.has_client_parts(facts, spoken):
        client_text = ""  # nothing switched on for the client: the operator greets them
    to_operator, to_client = scenario.choose_caller_ids(
        telephony, client=lead.phone, operator=operator.phone, displayed_on_site=_e164_or_blank(lead.displayed_phone)
    )
    return AttemptPlan(
        call_id=str(call.id),
        attempt_number=attempt.number,
        direction=attempt.direction,
        operator_number=operator.phone,
        operator_extension=operator.extension,
        client_number=lead.phone,
        caller_id_to_operator=to_operator,
        caller_id_to_client=to_client,
        operator_text=announcements.for_operator(facts, spoken, key_prompt=prompt),
        client_text=client_text,
        telephony=telephony,
        operator_dtmf_tag=dtmf_tag,
        ring_all=tuple((n.phone, n.extension) for n in ring_all or []),
        # nobody is told a call is recorded that is not (docs/calls.md#announcements-and-waiting)
        recorded_notice=(
            announcements.RECORDED_NOTICE
            if telephony["record"] and telephony["recorded_notice"] != RecordedNotice.NOBODY
            else ""
        ),
    )


def _e164_or_blank(displayed: str) -> str:
    try:
        return normalise(displayed) if displayed else ""
    except InvalidPhone:
        return ""


def event_field_names(model: type[Model]) -> list[str]:
    """The fields an event carries: the model's columns, foreign keys as their ids."""
    meta = model._meta
    return sorted(name for name in meta.fields_db_projection if name not in meta.fk_fields) + sorted(
        f"{fk}_id" for fk in meta.fk_fields
    )


def as_event_data(obj: Any) -> dict[str, Any]:
    """A model's fields as plain JSON-able values, for integrations and webhooks."""
    out: dict[str, Any] = {}
    for name in event_field_names(type(obj)):
        value = getattr(obj, name)
        if isinstance(value, (dt.datetime, dt.date)):
            value = value.isoformat()
        elif value is not None and not isinstance(value, (int, float, str, bool, list, dict)):
            value = str(value)
        out[name] = value
    return out


def fresh_beats(beats: Mapping[Any, Any], now: float | None = None) -> list[dict[str, Any]]:
    """The heartbeats of a heartbeat hash (``{"worker", "at", ...}`` as JSON) written within
    :data:`WORKER_STALE_SECONDS`, freshest first; one that cannot be read is left out."""
    now = time.time() if now is None else now
    fresh = []
    for raw in beats.values():
        try:
            beat = json.loads(raw)
            at = float(beat.get("at", 0)) if isinstance(beat, dict) else None
        except (TypeError, ValueError):
            continue
        if at is not None and now - at < WORKER_STALE_SECONDS:
            fresh.append(beat)
    return sorted(fresh, key=lambda beat: float(beat["at"]), reverse=True)


async def worker_processes(redis: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The live processes that place calls and those that send pushes and notifications (their
    fresh heartbeats, ``core/worker.py``), in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(WORKERS_KEY)
        pipe.hgetall(DELIVERY_WORKERS_KEY)
        calls, deliveries = await pipe.execute()
    now = time.time()
    return fresh_beats(calls, now), fresh_beats(deliveries, now)


async def telephony_states(redis: Any) -> list[str]:
    """What each live worker's telephony backend says of itself (``"ok"`` or the backend's reason),
    read from the heartbeats the workers write every few seconds (the same ``/healthz`` shows);
    an empty list when no worker has written one within ``WORKER_STALE_SECONDS``."""
    return [str(beat.get("telephony") or "ok") for beat in fresh_beats(await redis.hgetall(WORKERS_KEY))]


async def telephony_servers(redis: Any) -> list[dict[str, Any]]:
    """Each PBX of the telephony backend and its state (``TelephonyBackend.servers``), as the
    freshest worker heartbeat says; an empty list when the backend has none or no worker wrote one."""
    beats = fresh_beats(await redis.hgetall(WORKERS_KEY))
    servers = beats[0].get("pbxs") if beats else None
    return [s for s in servers if isinstance(s, dict)] if isinstance(servers, list) else []
