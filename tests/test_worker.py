"""How a worker claims jobs from its queue (``perezvon.core.worker.QueueWorker``), over a real Redis.

The worker claims every job it has slots for in one Lua script instead of
arq's four round trips per job. What arq guarantees must still hold: a job
runs once even when several worker processes share a queue, a job another
process is running or one not yet due is left alone, and the slots bound how
many run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import time
import uuid

import pytest
from arq import Retry, cron
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.jobs import serialize_job
from arq.worker import func

from perezvon.core import enablement
from perezvon.core.models import Call, Delivery, Lead
from perezvon.core.queue import DELIVERIES_QUEUE, Job, JobQueue, delivery_job, wake_channel
from perezvon.core.worker import QueueWorker, build_workers
from tests.test_integrations import Service


async def finished_calls(site, count: int) -> list[Call]:
    """Calls with nothing left to dial, so only their deliveries run."""
    now = dt.datetime.now(dt.UTC)
    leads = [
        Lead(id=uuid.uuid4(), connection_id=site.id, source="api", phone=f"+7916{i:07d}", created_at=now)
        for i in range(count)
    ]
    await Lead.bulk_create(leads)
    calls = [
        Call(id=uuid.uuid4(), lead_id=lead.id, connection_id=site.id, created_at=now, state="finished")
        for lead in leads
    ]
    await Call.bulk_create(calls)
    return calls


def pushes_of(calls: list[Call]) -> list:
    return [delivery_job("webhooks", "lead_created", str(call.id)) for call in calls]


async def queued_pushes(app, site, count: int) -> list[Call]:
    """``count`` finished calls, each with its ``lead_created`` push to the webhooks queued."""
    calls = await finished_calls(site, count)
    jobs = pushes_of(calls)
    assert await JobQueue(app.redis).enqueue(jobs) == count
    return calls


async def webhooks_to(service: Service, site) -> None:
    """The site's ``lead_created`` events pushed to ``service`` (30 s to answer: some tests hold them)."""
    await enablement.enable(
        site,
        enablement.INTEGRATION,
        "webhooks",
        {"url": service.url + "/hook", "secret": "s" * 32, "events": ["lead_created"], "timeout": 30},
    )


async def run_deliveries_workers(app, how_many: int, until) -> list:
    """``how_many`` deliveries workers, as in that many worker processes, each with its own Redis
    connections, until ``until(workers)`` is true; returns the workers."""
    workers = [build_workers(app).deliveries for _ in range(how_many)]
    tasks = [asyncio.create_task(worker.async_run()) for worker in workers]
    try:
        deadline = time.monotonic() + 60
        while not await until(workers):
            assert time.monotonic() < deadline, "the deliveries did not finish in time"
            for task in tasks:
                assert not task.done(), task.exception()
            await asyncio.sleep(0.05)
    finally:
        await asyncio.gather(*(worker.close() for worker in workers))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return workers


@pytest.fixture(autouse=True)
async def queue_of_this_test(perezvon_app):
    """The deliveries queue holding only this test's jobs: other tests' retries, deferred in the
    shared queue, would fall due here and take slots and counts; they are put back afterwards."""
    redis = perezvon_app.redis
    others = await redis.zrange(DELIVERIES_QUEUE, 0, -1, withscores=True)
    if others:
        await redis.zrem(DELIVERIES_QUEUE, *(job_id for job_id, _ in others))
    yield
    if others:
        await redis.zadd(DELIVERIES_QUEUE, dict(others), nx=True)


async def test_two_worker_processes_sharing_a_queue_run_every_job_once(perezvon_app, perezvon_site, monkeypatch):
    # 60 slots each and every push held by the service: all 120 in flight at once needs both workers
    # (which here share one process's connection pool, as two processes would not)
    monkeypatch.setattr("perezvon.core.worker.DELIVERY_MAX_JOBS", 60)
    async with Service() as service:
        service.answers = ["hang"] * 120
        await webhooks_to(service, perezvon_site)
        calls = await queued_pushes(perezvon_app, perezvon_site, 120)

        async def all_done(workers) -> bool:
            if len(service.requests) >= 120:
                service.release()
            return sum(worker.jobs_complete for worker in workers) >= 120

        workers = await run_deliveries_workers(perezvon_app, 2, all_done)
        assert [worker.jobs_complete for worker in workers] == [60, 60]  # each took what its slots allow
        pushed = [request.json()["call"]["id"] for request in service.requests]
        assert sorted(pushed) == sorted(str(call.id) for call in calls)  # each call pushed exactly once
        rows = await Delivery.filter(call_id__in=[c.id for c in calls]).values_list("ok", "try_number")
        assert rows == [(True, 1)] * 120
        # none of them is left queued (the queue may hold other tests' retries, deferred for later)
        queued = [await perezvon_app.redis.zscore(DELIVERIES_QUEUE, job.job_id) for job in pushes_of(calls)]
        assert queued == [None] * 120


async def test_a_job_running_elsewhere_or_not_yet_due_is_left_in_the_queue(perezvon_app, perezvon_site):
    async with Service() as service:
        await webhooks_to(service, perezvon_site)
        due, running_elsewhere, later = await finished_calls(perezvon_site, 3)
        redis = perezvon_app.redis
        elsewhere_job = delivery_job("webhooks", "lead_created", str(running_elsewhere.id))
        later_job = dataclasses.replace(
            delivery_job("webhooks", "lead_created", str(later.id)),
            run_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        )
        due_job = delivery_job("webhooks", "lead_created", str(due.id))
        await JobQueue(redis).enqueue([due_job, elsewhere_job, later_job])
        # another worker process has claimed this one (arq's mark, with arq's expiry)
        await redis.psetex(in_progress_key_prefix + elsewhere_job.job_id, 60_000, b"1")
        polls_after_it = 0

        async def due_one_finished_and_polled_on(_workers) -> bool:
            # finished: arq took it off the queue and dropped its in-progress mark (its Delivery row is
            # stored before that); counting the worker's completed jobs instead would also count other
            # tests' retries that fell due in this shared queue
            nonlocal polls_after_it
            finished = (
                await redis.zscore(DELIVERIES_QUEUE, due_job.job_id) is None
                and not await redis.exists(in_progress_key_prefix + due_job.job_id)
                and await Delivery.filter(call_id=due.id).exists()
            )
            polls_after_it += finished
            return polls_after_it > 6  # several more polls (0.05 s apart): the other two must still not start

        await run_deliveries_workers(perezvon_app, 1, due_one_finished_and_polled_on)
        rows = await Delivery.filter(call_id__in=[due.id, running_elsewhere.id, later.id]).values_list(
            "call_id", "ok", "try_number", "response"
        )
        assert [(call_id, ok, try_number) for call_id, ok, try_number, _ in rows] == [(due.id, True, 1)], rows
        assert [request.json()["call"]["id"] for request in service.requests] == [str(due.id)]
        assert await redis.zscore(DELIVERIES_QUEUE, elsewhere_job.job_id) is not None
        assert await redis.zscore(DELIVERIES_QUEUE, later_job.job_id) is not None
        await redis.delete(in_progress_key_prefix + elsewhere_job.job_id)


async def test_no_more_jobs_run_at_once_than_the_worker_has_slots(perezvon_app, perezvon_site, monkeypatch):
    monkeypatch.setattr("perezvon.core.worker.DELIVERY_MAX_JOBS", 5)
    async with Service() as service:
        service.answers = ["hang"] * 20
        await webhooks_to(service, perezvon_site)
        calls = await queued_pushes(perezvon_app, perezvon_site, 20)
        while_hung: list[int] = []

        async def all_delivered_after_five_hung(_workers) -> bool:
            if len(service.requests) >= 5 and not service.released.is_set():
                await asyncio.sleep(0.3)  # several polls with every slot taken by a hung push
                while_hung.append(len(service.requests))
                service.release()
            return await Delivery.filter(call_id__in=[c.id for c in calls]).count() >= 20

        await run_deliveries_workers(perezvon_app, 1, all_delivered_after_five_hung)
        assert while_hung == [5]  # no sixth push started while five held the slots
        assert len(service.requests) == 20


async def test_jobs_claimed_as_the_worker_stops_are_left_for_the_next_worker(perezvon_app, perezvon_site, monkeypatch):
    """A stop that lands between the claim and the start must not leave arq's in-progress marks
    behind: they would keep every other worker off those jobs for the job timeout (five minutes)."""
    async with Service() as service:
        await webhooks_to(service, perezvon_site)
        calls = await queued_pushes(perezvon_app, perezvon_site, 3)
        redis = perezvon_app.redis
        claimed, replied = asyncio.Event(), asyncio.Event()
        real_claim = QueueWorker._claim_jobs

        async def claim_then_stall(worker, job_ids):
            result = await real_claim(worker, job_ids)
            claimed.set()
            await replied.wait()  # the script has run; its reply arrives after the stop
            return result

        monkeypatch.setattr(QueueWorker, "_claim_jobs", claim_then_stall)
        worker = build_workers(perezvon_app).deliveries
        task = asyncio.create_task(worker.async_run())
        await asyncio.wait_for(claimed.wait(), 10)
        job_ids = [delivery_job("webhooks", "lead_created", str(c.id)).job_id for c in calls]
        marks = [in_progress_key_prefix + job_id for job_id in job_ids]
        assert await redis.exists(*marks) == 3  # the script did claim them
        closing = asyncio.create_task(worker.close())
        await asyncio.sleep(0.05)
        replied.set()
        await closing
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert await redis.exists(*marks) == 0
        scores = [await redis.zscore(DELIVERIES_QUEUE, job_id) for job_id in job_ids]
        assert all(score is not None and score <= time.time() * 1000 for score in scores)  # still queued, due now
        assert service.requests == []

        monkeypatch.setattr(QueueWorker, "_claim_jobs", real_claim)

        async def all_delivered(_workers) -> bool:
            return await Delivery.filter(call_id__in=[c.id for c in calls], ok=True).count() == 3

        await run_deliveries_workers(perezvon_app, 1, all_delivered)  # at once, not in five minutes
        assert len(service.requests) == 3


def recording_worker(
    app, queue: str, record, poll_delay: float, *, idle_poll: float = 30, wakes: bool = True, **kwargs
) -> QueueWorker:
    """A worker of ``queue`` that listens on its wake channel and runs ``test.record`` (``record``).

    By default it polls on its own only every 30 s: what runs sooner was announced.
    """
    return QueueWorker(
        functions=[func(record, name="test.record")],
        queue_name=queue,
        redis_pool=app.redis,
        poll_delay=poll_delay,
        idle_poll=idle_poll,
        wakes=wakes,
        handle_signals=False,
        **kwargs,
    )


async def until_subscribed(app, queue: str, listeners: int) -> None:
    """Wait until ``listeners`` workers listen on the queue's wake channel."""
    deadline = time.monotonic() + 10
    while (await app.redis.pubsub_numsub(wake_channel(queue)))[0][1] < listeners:
        assert time.monotonic() < deadline, "the workers never subscribed"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(app, *workers: QueueWorker):
    """The workers running (and listening) for the block; stopped, and their test queue dropped, after."""
    tasks = [asyncio.create_task(worker.async_run()) for worker in workers]
    try:
        await until_subscribed(app, workers[0].queue_name, len(workers))
        await asyncio.sleep(0.1)  # the first poll is over: from here on each polls only when it must
        yield tasks
    finally:
        await asyncio.gather(*(worker.close() for worker in workers))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await app.redis.delete(workers[0].queue_name)


async def put_unannounced(app, queue: str, name: str) -> float:
    """``test.record(name)`` put on the queue due now as plain arq would, without a word on the wake channel."""
    now = time.time()
    job_id = f"{queue}:{name}"
    await app.redis.set(job_key_prefix + job_id, serialize_job("test.record", (name,), {}, None, int(now * 1000)))
    await app.redis.zadd(queue, {job_id: int(now * 1000)})
    return now


async def ran_within(ran: dict[str, float], name: str, seconds: float, tasks) -> bool:
    deadline = time.monotonic() + seconds
    while name not in ran and time.monotonic() < deadline:
        for task in tasks:
            assert not task.done(), task.exception()
        await asyncio.sleep(0.01)
    return name in ran


async def test_a_job_due_now_starts_before_the_workers_next_poll(perezvon_app):
    """An enqueue announces the jobs it adds due now on the queue's wake channel (``core/queue.py``)
    and the worker starts them at once; a job due later is announced with its time and runs then; a
    job nobody announced waits for the idle poll; after its Redis connection is cut, the worker
    listens again by itself."""
    queue = f"test-wakes:{uuid.uuid4().hex}"
    ran: dict[str, float] = {}

    async def record(ctx, name: str) -> None:
        ran[name] = time.time()

    # without a wake, nothing would run for half a minute after the first poll
    worker = recording_worker(perezvon_app, queue, record, poll_delay=0.02, idle_poll=30)
    jobs = JobQueue(perezvon_app.redis)
    async with running(perezvon_app, worker) as tasks:
        queued_at = time.time()
        await jobs.enqueue([Job("test.record", ("now",), f"{queue}:now", queue=queue)])
        assert await ran_within(ran, "now", 2, tasks), "a job due now waited for the next poll"
        assert ran["now"] - queued_at < 1

        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.4)
        await jobs.enqueue([Job("test.record", ("later",), f"{queue}:later", later, queue=queue)])
        assert await ran_within(ran, "later", 3, tasks), "a job due later waited for the idle poll"
        # when it fell due (its score is in whole ms, so it may fall due up to 1 ms early), not at the idle poll
        assert later.timestamp() - 0.01 <= ran["later"] < later.timestamp() + 1

        # put on the queue without a word: only the idle poll (30 s) would find it
        await put_unannounced(perezvon_app, queue, "unannounced")
        assert not await ran_within(ran, "unannounced", 1, tasks)

        # the listener's connection is cut (as by a Redis restart): it subscribes again and wakes again
        await perezvon_app.redis.client_kill_filter(_type="pubsub")
        await until_subscribed(perezvon_app, queue, 1)
        await jobs.enqueue([Job("test.record", ("again",), f"{queue}:again", queue=queue)])
        assert await ran_within(ran, "again", 2, tasks)


async def test_an_idle_worker_polls_only_when_a_job_falls_due_or_at_the_idle_poll(perezvon_app, monkeypatch):
    """Between announcements an idle worker reads its queue every ``idle_poll``, not every
    ``poll_delay`` as arq does; a job nobody announced still runs within ``idle_poll``; a job that
    asked for a retry is polled for when its retry falls due."""
    queue = f"test-polls:{uuid.uuid4().hex}"
    ran: dict[str, float] = {}
    tries: list[float] = []

    async def record(ctx, name: str) -> None:
        if name == "flaky":
            tries.append(time.time())
            if len(tries) == 1:
                raise Retry(defer=0.3)
        ran[name] = time.time()

    polls = 0
    real_poll = QueueWorker._poll_iteration

    async def counted_poll(worker):
        nonlocal polls
        polls += 1
        await real_poll(worker)

    monkeypatch.setattr(QueueWorker, "_poll_iteration", counted_poll)
    worker = recording_worker(perezvon_app, queue, record, poll_delay=0.02, idle_poll=0.25)
    async with running(perezvon_app, worker) as tasks:
        before = polls
        await asyncio.sleep(1.5)
        assert 3 <= polls - before <= 8  # every 0.25 s; arq's fixed beat: 75 polls

        queued_at = await put_unannounced(perezvon_app, queue, "quiet")
        assert await ran_within(ran, "quiet", 2, tasks)
        assert ran["quiet"] - queued_at < 0.6  # the idle poll found it

        worker.idle_poll = 30  # from here on only what is announced, or falls due, is polled for
        await JobQueue(perezvon_app.redis).enqueue([Job("test.record", ("flaky",), f"{queue}:flaky", queue=queue)])
        assert await ran_within(ran, "flaky", 3, tasks), "the retry waited for the idle poll"
        assert len(tries) == 2
        assert 0.3 <= tries[1] - tries[0] < 1.0


async def test_a_worker_that_does_not_start_announced_jobs_polls_for_them(perezvon_app):
    """The deliveries worker does not start announced jobs itself: the announcement brings its poll
    forward (no sooner than ``poll_delay`` after the last one), long before its idle poll."""
    queue = f"test-pokes:{uuid.uuid4().hex}"
    ran: dict[str, float] = {}

    async def record(ctx, name: str) -> None:
        ran[name] = time.time()

    worker = recording_worker(perezvon_app, queue, record, poll_delay=0.05, idle_poll=30, wakes=False)
    async with running(perezvon_app, worker) as tasks:
        queued_at = time.time()
        await JobQueue(perezvon_app.redis).enqueue([Job("test.record", ("push",), f"{queue}:push", queue=queue)])
        assert await ran_within(ran, "push", 2, tasks), "an announced job waited for the idle poll"
        assert ran["push"] - queued_at < 1


async def test_a_cron_job_runs_on_time_between_idle_polls(perezvon_app):
    """arq queues cron jobs from its poll: the worker wakes for the next one's time, whatever
    ``idle_poll`` says."""
    queue = f"test-crons:{uuid.uuid4().hex}"
    ticks: list[float] = []

    async def tick(ctx) -> None:
        ticks.append(time.time())

    worker = recording_worker(
        perezvon_app,
        queue,
        tick,
        poll_delay=0.02,
        idle_poll=30,
        cron_jobs=[cron(tick, name="test.tick", second=set(range(60)))],
    )
    async with running(perezvon_app, worker) as tasks:
        deadline = time.monotonic() + 5
        while len(ticks) < 3 and time.monotonic() < deadline:
            for task in tasks:
                assert not task.done(), task.exception()
            await asyncio.sleep(0.05)
    assert len(ticks) >= 3  # one a second
    assert all(tick - int(tick) < 0.5 for tick in ticks)  # at the top of each second, not half a minute on


async def test_jobs_announced_to_two_workers_run_once_each(perezvon_app):
    """Both workers hear every announcement and both poll; the claim lets only one of them run a job."""
    queue = f"test-wakes:{uuid.uuid4().hex}"
    runs: list[str] = []

    async def record(ctx, name: str) -> None:
        runs.append(name)

    workers = [recording_worker(perezvon_app, queue, record, poll_delay=0.05) for _ in range(2)]
    tasks = [asyncio.create_task(worker.async_run()) for worker in workers]
    try:
        await until_subscribed(perezvon_app, queue, 2)
        names = [f"job-{i}" for i in range(200)]
        jobs = JobQueue(perezvon_app.redis)
        for start in range(0, 200, 20):  # in batches, as the intake queues them
            await jobs.enqueue(
                [Job("test.record", (n,), f"{queue}:{n}", queue=queue) for n in names[start : start + 20]]
            )
        deadline = time.monotonic() + 10
        while len(runs) < 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # a second run of any of them would show by now
        assert sorted(runs) == sorted(names)  # every job, and each once
        assert sum(worker.jobs_complete for worker in workers) == 200
    finally:
        await asyncio.gather(*(worker.close() for worker in workers))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await perezvon_app.redis.delete(queue)


async def test_a_garbled_announcement_is_skipped_and_the_next_one_still_runs(perezvon_app):
    """Whatever reaches the wake channel -- bytes that are no UTF-8, NULs, ids of no job, a huge
    message -- costs nothing but a warning: the listener reads on and the next job runs."""
    queue = f"test-wakes:{uuid.uuid4().hex}"
    runs: list[str] = []

    async def record(ctx, name: str) -> None:
        runs.append(name)

    worker = recording_worker(perezvon_app, queue, record, poll_delay=30)
    task = asyncio.create_task(worker.async_run())
    try:
        await until_subscribed(perezvon_app, queue, 1)
        channel = wake_channel(queue)
        for garbage in (
            b"\xff\xfe\x00",
            b"no-such-job \x00",
            b"x" * 1_000_000,
            b"",
            "\ud800".encode("utf-8", "surrogatepass"),
        ):
            await perezvon_app.redis.publish(channel, garbage)
        await JobQueue(perezvon_app.redis).enqueue([Job("test.record", ("real",), f"{queue}:real", queue=queue)])
        deadline = time.monotonic() + 5
        while not runs and time.monotonic() < deadline:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.01)
        assert runs == ["real"]
    finally:
        await worker.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await perezvon_app.redis.delete(queue)


async def test_a_stop_while_an_announced_claim_is_answered_runs_nothing_it_then_waits_for(perezvon_app, monkeypatch):
    """The stop and the answer to an announced job's claim cross: the job must not start after the
    stop cancelled the running ones, or the stop would wait for it to finish (a call: minutes). The
    job stays queued for the next worker."""
    queue = f"test-wakes:{uuid.uuid4().hex}"

    async def record(ctx, name: str) -> None:
        await asyncio.sleep(30)  # a long job: a stop that waits for it shows

    claimed, replied = asyncio.Event(), asyncio.Event()
    real_claim = QueueWorker._claim_jobs

    async def claim_then_stall(worker, job_ids):
        result = await real_claim(worker, job_ids)
        claimed.set()
        await replied.wait()  # the script has run; its reply arrives while the stop goes on
        return result

    monkeypatch.setattr(QueueWorker, "_claim_jobs", claim_then_stall)
    worker = recording_worker(perezvon_app, queue, record, poll_delay=30)  # only the announcement starts it
    task = asyncio.create_task(worker.async_run())
    try:
        await until_subscribed(perezvon_app, queue, 1)
        await JobQueue(perezvon_app.redis).enqueue([Job("test.record", ("long",), f"{queue}:long", queue=queue)])
        await asyncio.wait_for(claimed.wait(), 10)
        asyncio.get_running_loop().call_soon(replied.set)  # the reply lands once the stop has begun
        stopping = time.monotonic()
        await asyncio.wait_for(worker.close(), 10)
        assert time.monotonic() - stopping < 5, "the stop waited for a job it let start"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await perezvon_app.redis.zscore(queue, f"{queue}:long") is not None  # left for the next worker
    await perezvon_app.redis.delete(queue, in_progress_key_prefix + f"{queue}:long")
