"""The arq workers of a worker process: one for the callbacks, one for integration pushes.

Every ``perezvon worker`` / ``perezvon serve`` process runs two arq workers
on one event loop, each consuming its own queue (``core/queue.py``):

* the **callbacks** worker takes ``core.place_attempt`` (and plugin jobs)
  from :data:`~perezvon.core.queue.CALLBACKS_QUEUE`, runs the sweep, and owns the
  callback engine; the jobs an enqueue adds due now are announced on the
  queue's wake channel (``core/queue.py``) and it starts them at once;
* the **deliveries** worker takes ``core.deliver`` and ``core.notify`` from
  :data:`~perezvon.core.queue.DELIVERIES_QUEUE`, at most :data:`DELIVERY_MAX_JOBS` at
  once; an announcement brings its next poll forward.

Neither polls on a fixed beat: each poll also reads when the next job falls
due, and the worker sleeps until then, or until an announcement says a job was
added, or :data:`IDLE_POLL` at most (``QueueWorker._until_next_poll``).

Why two: a push waits on a service that may take seconds (or time out), and
an arq worker re-reads its queue in score order on every poll, so hundreds of
slow pushes sitting in the same queue stood between a new lead's attempt job
and the worker, and filled its job slots. With their own queue and bounded
slots, a slow or dead integration only slows the pushes behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from arq import cron
from arq.connections import create_pool
from arq.constants import in_progress_key_prefix
from arq.typing import WorkerCoroutine
from arq.utils import timestamp_ms
from arq.worker import Worker, func

from perezvon.core.app import Perezvon
from perezvon.core.dials_first import DialsFirst
from perezvon.core.integrations import close_clients
from perezvon.core.jobs import DeliveryBatches
from perezvon.core.outages import Backoff, is_outage, until_connected
from perezvon.core.queue import CALLBACKS_QUEUE, DELIVERIES_QUEUE, DELIVERY_WORKERS_KEY, wake_channel
from perezvon.core.redis import prompt, redis_settings

logger = logging.getLogger("perezvon.worker")

#: a call (ringing + talk) may last long; arq must not cancel it
ATTEMPT_TIMEOUT = 4 * 3600
#: the callbacks worker runs many calls at once: they mostly wait on the PBX
MAX_JOBS = 1000
#: the shortest gap between two polls of the callbacks worker: the jobs falling due within it start together
POLL_DELAY = 0.02
#: pushes and notifications in flight at once per process: enough to keep up with
#: services that answer in seconds, few enough that a hung one cannot swamp the process
DELIVERY_MAX_JOBS = 200
#: a delivery a few tens of ms late is fine; polling less often leaves the loop to the callbacks
DELIVERY_POLL_DELAY = 0.05
#: the longest gap between two polls when no job is known to fall due: what a job waits at most when
#: nobody announced it (an announcement lost while the listener's connection was remade, a job put
#: on the queue by plain arq, a job whose claim expired in a worker that died)
IDLE_POLL = 0.5


def _every(seconds: float) -> set[int]:
    step = max(1, int(seconds))
    return set(range(0, 60, step))


#: KEYS: the queue, then each job's in-progress key; ARGV: now (ms), the in-progress expiry (ms), then
#: each job id. Per job, what arq's ``start_jobs`` does under WATCH/MULTI: claim it unless it is
#: already running somewhere, gone from the queue, or not due yet. Returns id, score, id, score ...
_CLAIM_JOBS = """
local claimed = {}
for i = 3, #ARGV do
  local in_progress = KEYS[i - 1]
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= tonumber(ARGV[1]) and redis.call('EXISTS', in_progress) == 0 then
    redis.call('PSETEX', in_progress, ARGV[2], '1')
    claimed[#claimed + 1] = ARGV[i]
    claimed[#claimed + 1] = score
  end
end
return claimed
"""


class QueueWorker(Worker):
    """arq's worker, except in how it claims the jobs it has read from its queue.

    * It claims all the jobs it has free slots for in one atomic Lua script
      (``_CLAIM_JOBS``), where arq spends four Redis round trips on each job
      (WATCH, EXISTS, ZSCORE, MULTI/EXEC), one job after another. Jobs then
      start together, so the deliveries' shared reads and writes
      (:class:`perezvon.core.jobs.DeliveryBatches`) get whole groups rather than one
      or two jobs at a time.
    * It does not re-check the jobs it is running itself. A running job stays
      in arq's queue until it ends, and arq would check every id it reads, on
      every poll, before it reaches the new ones.

    * It does not poll on a fixed beat (:meth:`_until_next_poll`). arq polls
      every ``poll_delay``; an idle worker process polling every 20 ms spent
      30 ms of CPU a second on it (BENCHMARKS.md, "twelfth session").

    The claim itself is arq's: the same in-progress key and expiry, and a job
    that another process claimed first is skipped, so several workers can
    share a queue as with plain arq. Jobs then run through arq's ``run_job``.
    """

    def __init__(self, *args: Any, wakes: bool = False, idle_poll: float = IDLE_POLL, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._claim: Any = None  # the registered Lua script, made with the Redis pool
        #: whether this worker starts the jobs announced due now on its queue's wake channel itself
        #: (:meth:`_listen_for_wakes`); without, an announcement brings its next poll forward
        self.wakes = wakes
        #: the longest gap between polls while no job is known to fall due (:data:`IDLE_POLL`)
        self.idle_poll = idle_poll
        #: when the next job falls due (Unix time), as the last poll read it; inf: none queued
        self._known_due = 0.0
        #: the earliest due time announced since the last poll began (Unix time)
        self._announced_due = math.inf
        #: set on every announcement: the sleep between polls looks again at when to wake
        self._poke = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        #: the starts of announced jobs in progress (kept here so they are not collected mid-way)
        self._starting: set[asyncio.Task[None]] = set()

    async def main(self) -> None:
        """arq's ``main``, except that a lost Redis does not end the worker.

        arq raises out of its poll loop on the first Redis error, which ended the
        whole process ~6 s into an outage. Here the pool is made (and remade)
        with back-off, and a poll that fails on a lost connection is tried again
        after a growing wait (:class:`perezvon.core.outages.Backoff`); jobs already
        running go on. Once Redis answers again the worker takes jobs as before,
        and the sweep re-queues what the outage lost (docs/deploy.md).
        """
        if self._pool is None:
            assert self.redis_settings is not None  # arq sets it whenever no pool is given
            settings = dataclasses.replace(self.redis_settings, conn_retries=0)
            self._pool = prompt(
                await until_connected(
                    "Redis",
                    lambda: create_pool(
                        settings,
                        job_deserializer=self.job_deserializer,
                        job_serializer=self.job_serializer,
                        default_queue_name=self.queue_name,
                        expires_extra_ms=self.expires_extra_ms,
                    ),
                )
            )
        logger.info("worker for queue %s: %s", self.queue_name, ", ".join(self.functions))
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen_for_wakes(), name=f"wakes:{self.queue_name}")
        backoff = Backoff()
        while True:
            started = self.loop.time()
            try:
                await self._poll_iteration()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                delay = backoff.next()
                logger.warning(
                    "worker for queue %s: Redis does not answer (%s); trying again in %.1f s",
                    self.queue_name,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            if backoff.failures:
                logger.warning("worker for queue %s: Redis answers again; taking jobs", self.queue_name)
                backoff.reset()
            await self._until_next_poll(started)

    async def _poll_iteration(self) -> None:
        """arq's poll, except that its read of the due jobs also reads when the next one falls due.

        Both are read in one round trip. The due jobs are started as arq does; a
        cron job that arq's ``heart_beat`` queues at the end is counted in as well.
        """
        self._announced_due = math.inf  # from here on, an announcement may name a job this read misses
        self._known_due = 0.0  # unless the read says otherwise, poll again as soon as allowed
        count = self.queue_read_limit  # (arq's burst mode has no place here: :meth:`main` never ends)
        if self.allow_pick_jobs and self.job_counter < self.max_jobs:
            now = timestamp_ms()
            async with self.pool.pipeline(transaction=False) as pipe:
                pipe.zrangebyscore(self.queue_name, "-inf", now, start=self._queue_read_offset, num=count)
                pipe.zrangebyscore(self.queue_name, f"({now}", "+inf", start=0, num=1, withscores=True)
                due, upcoming = await pipe.execute()
            await self.start_jobs(due)
            if len(due) < count:  # a full read may have left due jobs behind: poll again soon
                self._known_due = upcoming[0][1] / 1000 if upcoming else math.inf
        if self.allow_abort_jobs:
            await self._cancel_aborted_jobs()
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # as arq: an error in run_job itself ends the worker
        crons_before = [cron_job.next_run for cron_job in self.cron_jobs]
        await self.heart_beat()
        for cron_job, next_run in zip(self.cron_jobs, crons_before):  # queued just now, due at its next_run
            if cron_job.next_run != next_run:  # (from None: queued due now if it runs at start-up)
                self._known_due = min(self._known_due, next_run.timestamp() if next_run else time.time())

    async def _until_next_poll(self, started: float) -> None:
        """Sleep until the next poll: when the next job falls due, as read or announced since.

        Never sooner than ``poll_delay`` after the last poll began (the jobs falling
        due within it start together), and never later than :attr:`idle_poll` (what
        nobody announced waits no longer than that), nor than the next cron job's time
        (arq's ``heart_beat`` queues cron jobs from the poll). With every slot busy, arq
        did not read the queue: the worker looks again after ``poll_delay``, as arq does.
        """
        while True:
            self._poke.clear()  # before reading the due times: an announcement from here on wakes the wait
            if self.job_counter >= self.max_jobs:
                due_in = 0.0
            else:
                due_in = min(self._known_due, self._announced_due, self._next_cron()) - time.time()
            since = self.loop.time() - started
            wait = max(self.poll_delay_s - since, min(due_in, self.idle_poll - since))
            if wait <= 0:
                return
            try:
                async with asyncio.timeout(wait):
                    await self._poke.wait()
            except TimeoutError:
                return

    def _next_cron(self) -> float:
        """When arq's ``heart_beat`` next has a cron job to queue (Unix time); inf without crons."""
        return min(
            (cron_job.next_run.timestamp() for cron_job in self.cron_jobs if cron_job.next_run), default=math.inf
        )

    def _announce(self, due: float) -> None:
        """A job falls due at ``due`` (Unix time): poll by then."""
        if due < self._announced_due:
            self._announced_due = due
            self._poke.set()

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """arq's, and a job it put back on the queue for a retry is polled for when it falls due."""
        await super().finish_job(
            job_id, finish, result_data, result_timeout_s, keep_result_forever, incr_score, keep_in_progress
        )
        if not finish and incr_score:
            self._announce(time.time())  # the next poll reads the retry's new due time

    async def _listen_for_wakes(self) -> None:
        """Act on what an enqueue announces (``core/queue.py``): the jobs it added due now, and when
        the first of those it added for later falls due.

        Why: polling alone puts 0 to :attr:`poll_delay_s` of waiting between a lead's
        201 and its dial, half a poll on average; and a poll is two round trips (read
        the queue, then claim), each waiting for a turn of a loop that may be busy. The
        message names the jobs, so a worker with :attr:`wakes` claims them straight
        away (the claim is the same atomic script as the poll's: a job the poll or
        another worker claims first is skipped); one without polls for them. A job
        added for later makes the worker poll when it falls due
        (:meth:`_until_next_poll`). A lost or late message (Redis restarting, this
        connection being remade) costs at most :attr:`idle_poll` of waiting; after a
        lost connection the listener subscribes again with back-off.
        """
        backoff = Backoff()
        while True:
            pubsub = self.pool.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(wake_channel(self.queue_name))
                backoff.reset()
                async for message in pubsub.listen():
                    if self.allow_pick_jobs:  # not once the worker is stopping
                        self._on_announcement(message["data"].split())
                raise ConnectionError("the subscription ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = backoff.next()
                logger.warning(
                    "worker for queue %s: wake-ups lost (%s), polling only; listening again in %.1f s",
                    self.queue_name,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call]

    def _on_announcement(self, words: list[bytes]) -> None:
        """One message of the wake channel: job ids due now, and ``@<ms>`` for the first job due later."""
        due_now = [word for word in words if not word.startswith(b"@")]
        for word in words:
            if word.startswith(b"@"):
                with contextlib.suppress(ValueError):  # garbled: the idle poll covers it
                    self._announce(int(word[1:]) / 1000)
        if due_now:
            if self.wakes:
                self._start_announced(due_now)
            else:
                self._announce(0.0)

    def _start_announced(self, job_ids: list[bytes]) -> None:
        """:meth:`start_jobs` for announced jobs, in a task of its own: the listener reads on."""
        task = asyncio.create_task(self.start_jobs(job_ids))
        self._starting.add(task)
        task.add_done_callback(self._announced_started)

    def _announced_started(self, task: asyncio.Task[None]) -> None:
        self._starting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Redis went away between the message and the claim: the poll finds the jobs
            logger.warning("worker for queue %s: could not start announced jobs: %s", self.queue_name, task.exception())

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        running = self.tasks
        candidates = [
            job_id for job_id in map(bytes.decode, job_ids) if (task := running.get(job_id)) is None or task.done()
        ]
        while candidates:
            # a slot for the first job (waiting for one if all are busy), then every slot free now
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:  # another start took the slots: a poll takes these later
                self.sem.release()
                self._announce(time.time())
                return
            slots, room = 1, min(len(candidates), self.max_jobs - self.job_counter)
            while slots < room and not self.sem.locked():
                await self.sem.acquire()  # returns at once: a slot is free
                slots += 1
            batch, candidates = candidates[:slots], candidates[slots:]
            self.job_counter += slots
            claim = asyncio.ensure_future(self._claim_jobs(batch))
            try:
                claimed = await asyncio.shield(claim)
            except BaseException as exc:  # Redis went away (arq's poll loop reports it) or the worker stops
                for _ in batch:
                    self._release_sem_dec_counter_on_complete()
                if isinstance(exc, asyncio.CancelledError):
                    await self._release_claims(claim)
                raise
            for job_id, score in claimed:
                task = self.loop.create_task(self.run_job(job_id, score))
                task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
                self.tasks[job_id] = task
            for _ in range(len(batch) - len(claimed)):  # running elsewhere, gone, or not due
                self._release_sem_dec_counter_on_complete()

    async def _release_claims(self, claim: asyncio.Future[list[tuple[str, int]]]) -> None:
        """Undo a claim the stop cut short: its jobs never started here.

        The script may have claimed them already; their in-progress marks would
        keep every other worker off them until the marks expire (the job timeout
        plus ten seconds: five minutes for a visitor waiting for a callback).
        """
        try:
            claimed = await asyncio.wait_for(claim, timeout=5)
            if claimed:
                await self.pool.delete(*(in_progress_key_prefix + job_id for job_id, _ in claimed))
        except Exception:  # Redis went away too: the marks expire on their own
            logger.warning("could not release the jobs claimed while stopping", exc_info=True)

    async def _claim_jobs(self, job_ids: list[str]) -> list[tuple[str, int]]:
        if self._claim is None:
            self._claim = self.pool.register_script(_CLAIM_JOBS)
        reply = await self._claim(
            keys=[self.queue_name, *(in_progress_key_prefix + job_id for job_id in job_ids)],
            args=[timestamp_ms(), int(self.in_progress_timeout_s * 1000), *job_ids],
        )
        return [(reply[i].decode(), int(float(reply[i + 1]))) for i in range(0, len(reply), 2)]

    async def close(self) -> None:
        """arq's ``close``, except that a job cancelled by the stop (or a Redis that is down) does not skip the rest.

        arq awaits the jobs it cancelled and re-raises the first cancellation, so its
        ``on_shutdown`` (the engine's drain, the delivery batchers) and the pool's close
        would not run at all. It also closes the pool while its poll loop may still use it.
        """
        # announced starts end first: one whose claim came back while the stop went on would start its jobs
        # after the running ones were cancelled, and this close would wait for those to finish
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        for starting in self._starting:  # one may wait for a slot: it gives back what it claimed (start_jobs)
            starting.cancel()
        await asyncio.gather(*self._starting, return_exceptions=True)
        self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        # the poll loop first: it may be giving back a claim the stop cut short (start_jobs)
        await asyncio.gather(*filter(None, [self.main_task]), *self.tasks.values(), return_exceptions=True)
        try:
            await self.pool.delete(self.health_check_key)
        except Exception as exc:  # stopping during a Redis outage: the key expires by itself
            if not is_outage(exc):
                raise
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await self.pool.close(close_connection_pool=True)
        self._pool = None


#: how often a deliveries worker writes its heartbeat (/healthz takes one older than 20 s for gone)
DELIVERY_HEARTBEAT_SECONDS = 5


async def _deliveries_heartbeat(app: Perezvon, worker: Worker) -> None:
    """Tell /healthz that this process sends pushes and notifications, every few seconds.

    A process that places calls says so in its own heartbeat (``CallbackEngine``);
    with the queues in processes of their own (``perezvon worker --queue``), this is
    how a deployment sees that no process is left to send what is queued.
    """
    redis = app.redis
    assert redis is not None, "the app is started"
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    try:
        while True:
            beat = {
                "worker": worker_id,
                "at": time.time(),
                "in_flight": sum(not t.done() for t in worker.tasks.values()),
            }
            try:
                await redis.hset(DELIVERY_WORKERS_KEY, worker_id, json.dumps(beat))  # type: ignore[misc]
            except Exception as exc:  # Redis away: the next beat tries again, /healthz says why
                logger.debug("deliveries heartbeat not written: %s", exc)
            await asyncio.sleep(DELIVERY_HEARTBEAT_SECONDS)
    finally:
        with contextlib.suppress(Exception):  # stale entries are ignored by /healthz anyway
            await redis.hdel(DELIVERY_WORKERS_KEY, worker_id)  # type: ignore[misc]


#: the two queues a worker process takes jobs from (``perezvon worker --queue``)
QUEUE_NAMES = ("callbacks", "deliveries")


class Workers:
    """The callbacks worker and the deliveries worker of one process, run and stopped together.

    ``running`` names the ones this process runs: both by default, or one of them when
    the pushes get a process of their own (``perezvon worker --queue``, docs/deploy.md).
    """

    def __init__(self, callbacks: Worker, deliveries: Worker, running: Collection[str] = QUEUE_NAMES) -> None:
        self.callbacks = callbacks
        self.deliveries = deliveries
        self.all = tuple(
            worker for name, worker in zip(QUEUE_NAMES, (callbacks, deliveries), strict=True) if name in running
        )

    async def async_run(self) -> None:
        """Run both until cancelled; if one of them fails, stop the other and raise its error."""
        tasks = [asyncio.create_task(worker.async_run(), name=f"arq-worker:{worker.queue_name}") for worker in self.all]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop both: jobs still running are cancelled, then each worker's shutdown runs."""
        await asyncio.gather(*(worker.close() for worker in self.all))

    def busy(self) -> bool:
        """Whether any job is running in either worker."""
        return any(not task.done() for worker in self.all for task in worker.tasks.values())

    @property
    def jobs_complete(self) -> int:
        return sum(worker.jobs_complete for worker in self.all)

    @property
    def jobs_failed(self) -> int:
        return sum(worker.jobs_failed for worker in self.all)


#: the jobs that place callbacks (or resolve them): they never wait for the dials, they are them
_PLACING_JOBS = {"core.place_attempt", "core.sweep"}


def _after_dials(dials_first: DialsFirst, job: Callable[..., Awaitable[Any]]) -> WorkerCoroutine:
    """``job`` starting only while no callback of this process is being placed (core/dials_first.py)."""

    @functools.wraps(job)
    async def after_dials(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        await dials_first.wait()
        return await job(ctx, *args, **kwargs)

    return after_dials


def build_workers(
    app: Perezvon, *, periodic_plugin_jobs: bool = True, queues: Collection[str] = QUEUE_NAMES
) -> Workers:
    """The two arq workers for ``app``; ``app`` must be started (``await app.start()``).

    Signals are left to the caller (the CLI stops web, workers and Redis in order).
    ``periodic_plugin_jobs=False`` leaves the plugins' periodic jobs unscheduled (they stay
    callable as jobs): the test fixture's short-lived workers, where a minute's tick must not
    start a digest of every test site in the middle of an unrelated test.
    ``queues`` picks the workers the process runs (:data:`QUEUE_NAMES`: both by default).
    """
    periodic: dict[str, int] = {}
    jobs = {
        name: job if name in _PLACING_JOBS else _after_dials(app.dials_first, job)
        for name, job in app.host.job_functions(periodic).items()
    }
    sweep = jobs.pop("core.sweep")
    # plugins' periodic jobs run in the deliveries worker: they read the database and talk to services,
    # and must never take a slot the calls need
    plugin_crons = [
        cron(
            jobs.pop(name),
            name=name,
            minute=set(range(0, 60, minutes)),
            second=0,
            unique=True,
            timeout=300,
        )
        for name, minutes in periodic.items()
        if periodic_plugin_jobs
    ]
    functions = [
        func(
            job,
            name=name,
            timeout=ATTEMPT_TIMEOUT if name == "core.place_attempt" else 300,
            max_tries=3 if name == "core.place_attempt" else 10,
        )
        for name, job in jobs.items()
    ]
    common: dict[str, Any] = dict(
        functions=functions,
        redis_settings=redis_settings(app.redis_url),
        handle_signals=False,
        keep_result=0,  # results are in the database; a kept result would block re-queueing a job id
        job_timeout=300,
    )

    async def start_callbacks(ctx: dict[str, Any]) -> None:
        ctx["perezvon"] = app
        await app.start_engine()

    async def stop_callbacks(ctx: dict[str, Any]) -> None:
        await app.stop_engine()

    async def start_deliveries(ctx: dict[str, Any]) -> None:
        ctx["perezvon"] = app
        ctx["deliveries"] = DeliveryBatches(dials_first=app.dials_first)
        ctx["heartbeat"] = asyncio.create_task(_deliveries_heartbeat(app, deliveries), name="deliveries-heartbeat")

    async def stop_deliveries(ctx: dict[str, Any]) -> None:
        if "heartbeat" in ctx:
            heartbeat = ctx.pop("heartbeat")
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
        if "deliveries" in ctx:
            await ctx.pop("deliveries").close()
        await close_clients()

    callbacks = QueueWorker(
        queue_name=CALLBACKS_QUEUE,
        cron_jobs=[
            cron(
                sweep,
                name="core.sweep",
                second=_every(app.settings.sweep_seconds),
                run_at_startup=True,
                unique=True,
                timeout=120,
            )
        ],
        on_startup=start_callbacks,
        on_shutdown=stop_callbacks,
        max_jobs=MAX_JOBS,
        poll_delay=POLL_DELAY,
        wakes=True,
        ctx={},
        **common,
    )
    deliveries = QueueWorker(
        queue_name=DELIVERIES_QUEUE,
        cron_jobs=plugin_crons,
        on_startup=start_deliveries,
        on_shutdown=stop_deliveries,
        max_jobs=DELIVERY_MAX_JOBS,
        poll_delay=DELIVERY_POLL_DELAY,
        ctx={},
        **common,
    )
    return Workers(callbacks, deliveries, running=queues)
