"""Dials first (``perezvon.core.dials_first``): a worker process's pushes wait while it places a callback.

The gate's own rules are checked directly; then over a real worker, Redis, database and
HTTP service: a push queued while a callback is being placed goes out only once that
placing ends, and every attempt -- dialled, refused, or with no operator number -- ends
its placing, so nothing is held back for good.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from tortoise.transactions import in_transaction

from perezvon.core import dials_first
from perezvon.core.dials_first import DialsFirst, FirstInLine, on_the_dial_path
from perezvon.core.models import Call, OperatorNumber
from perezvon.core.queue import JobQueue
from perezvon.core.recordings import keep_recording
from perezvon.core.sqlite import DialsFirstSqliteClient
from tests.test_integrations import Service
from tests.test_worker import finished_calls, pushes_of, queue_of_this_test, webhooks_to

__all__ = ["queue_of_this_test"]  # the fixture, used by the worker test below too


async def test_nothing_waits_while_nothing_is_placed():
    gate = DialsFirst()
    started = time.monotonic()
    await gate.wait()
    assert time.monotonic() - started < 0.01


async def test_an_open_gate_lets_a_few_through_per_loop_turn_and_the_rest_in_order(monkeypatch):
    """A thousand calls ending in the same second must not run their work in one turn of the loop."""
    monkeypatch.setattr(dials_first, "RELEASED_AT_ONCE", 3)
    gate = DialsFirst()
    turn = 0
    went: list[tuple[int, int]] = []  # (push, the loop turn it went on)

    async def count_turns() -> None:
        nonlocal turn
        while True:
            await asyncio.sleep(0)
            turn += 1

    async def push(number: int) -> None:
        await gate.wait()
        went.append((number, turn))

    counter = asyncio.create_task(count_turns())
    await asyncio.gather(*(push(n) for n in range(10)))
    counter.cancel()
    assert [number for number, _ in went] == list(range(10))  # in the order they came
    per_turn: dict[int, int] = {}
    for _, on_turn in went:
        per_turn[on_turn] = per_turn.get(on_turn, 0) + 1
    assert max(per_turn.values()) <= 3
    assert len(per_turn) >= 4  # 10 pushes, 3 a turn
    # once they are through, the next one passes at once again
    started = time.monotonic()
    await gate.wait()
    assert time.monotonic() - started < 0.01


async def test_keeping_a_recording_waits_for_the_dial_of_its_process(tmp_path):
    """A backend hands over its recording once the call is over: inside an attempt that waits
    its turn behind the callbacks being placed; outside one (a bare backend) it does not wait."""
    gate = DialsFirst()
    source = tmp_path / "pbx.wav"
    source.write_bytes(b"RIFF....WAVE")
    placing = gate.placing()

    async def attempt() -> Path | None:
        dials_first.current_gate.set(gate)  # as the engine does in the attempt's task
        return await keep_recording(source, tmp_path, "call-1", 1, settle_seconds=0)

    kept = asyncio.create_task(attempt())
    await asyncio.sleep(0.1)
    assert not kept.done() and source.exists()  # held while the dial is being placed
    placing.done()
    target = await kept
    assert target is not None and target.read_bytes() == b"RIFF....WAVE" and not source.exists()
    outside = tmp_path / "other.wav"
    outside.write_bytes(b"RIFF")
    other = gate.placing()
    assert await asyncio.wait_for(keep_recording(outside, tmp_path, "call-2", 1, settle_seconds=0), 1)
    other.done()


async def test_waiters_go_when_the_last_placing_ends_a_few_per_loop_turn_in_order(monkeypatch):
    monkeypatch.setattr(dials_first, "RELEASED_AT_ONCE", 2)
    gate = DialsFirst()
    first, second = gate.placing(), gate.placing()
    went: list[int] = []

    async def push(number: int) -> None:
        await gate.wait()
        went.append(number)

    pushes = [asyncio.create_task(push(n)) for n in range(5)]
    await asyncio.sleep(0.05)
    assert went == [] and gate.placing_now == 2
    first.done()
    first.done()  # a second done() of the same placing changes nothing
    await asyncio.sleep(0.05)
    assert went == [] and gate.placing_now == 1
    second.done()
    await asyncio.sleep(0)  # the release is scheduled, not run inside done()
    assert went == []
    await asyncio.gather(*pushes)
    assert went == [0, 1, 2, 3, 4]
    assert gate.placing_now == 0


async def test_a_new_placing_holds_the_waiters_not_yet_let_go(monkeypatch):
    monkeypatch.setattr(dials_first, "RELEASED_AT_ONCE", 1)
    gate = DialsFirst()
    placing = gate.placing()
    went: list[int] = []

    async def push(number: int) -> None:
        await gate.wait()
        went.append(number)

    pushes = [asyncio.create_task(push(n)) for n in range(4)]
    await asyncio.sleep(0.01)
    placing.done()
    await asyncio.sleep(0)  # one loop turn: the first waiter is let go
    await asyncio.sleep(0)
    again = gate.placing()
    await asyncio.sleep(0.05)
    assert 1 <= len(went) < 4  # the rest wait for the new dial
    again.done()
    await asyncio.gather(*pushes)
    assert went == [0, 1, 2, 3]


async def test_a_wait_is_bounded(monkeypatch):
    monkeypatch.setattr(dials_first, "MAX_WAIT_SECONDS", 0.1)
    gate = DialsFirst()
    placing = gate.placing()
    started = time.monotonic()
    await gate.wait()
    waited = time.monotonic() - started
    assert 0.09 <= waited < 0.5
    # the waiter that gave up does not hold the next one once the placing is over
    placing.done()
    started = time.monotonic()
    await gate.wait()
    assert time.monotonic() - started < 0.05


async def test_a_push_waits_for_the_callback_being_placed(perezvon_app, perezvon_site, perezvon_run_jobs):
    async with Service() as service:
        await webhooks_to(service, perezvon_site)
        [call] = await finished_calls(perezvon_site, 1)
        placing = perezvon_app.dials_first.placing()  # as the callbacks worker does for an attempt
        try:
            await JobQueue(perezvon_app.redis).enqueue(pushes_of([call]))
            running = asyncio.create_task(perezvon_run_jobs())
            await asyncio.sleep(0.6)  # well past the worker's pick-up, short of the 1 s bound
            assert service.requests == []
        finally:
            placing.done()
        released_at = time.monotonic()
        await service.wait_for(1, timeout=5)
        assert time.monotonic() - released_at < 0.5
        await running
    assert [request.json()["call"]["id"] for request in service.requests] == [str(call.id)]


async def test_every_attempt_ends_its_placing(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone
):
    from tests.test_callbacks import post_lead

    dialled = await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    assert (await Call.get(id=dialled["call_id"])).display_status == "successful"
    assert perezvon_app.dials_first.placing_now == 0
    # its number removed once the lead is in: the attempt ends before any leg is dialled (the site is this test's)
    undialled = await post_lead(perezvon_client, perezvon_site, new_phone())
    await OperatorNumber.filter(connection_id=perezvon_site.id).delete()
    await perezvon_run_jobs()
    call = await Call.get(id=undialled["call_id"])
    assert call.attempts_made == 1 and call.state == "finished"
    assert perezvon_app.dials_first.placing_now == 0


async def test_the_dial_path_goes_first_in_line_for_the_lock():
    lock = FirstInLine()
    order: list[str] = []

    async def take(name: str, dial_path: bool) -> None:
        on_the_dial_path.set(dial_path)  # this task's own context
        async with lock:
            order.append(name)
            await asyncio.sleep(0.01)

    await lock.acquire()
    tasks = [asyncio.create_task(take(name, name.startswith("dial"))) for name in ("push1", "push2", "dial1", "push3")]
    await asyncio.sleep(0.01)
    tasks.append(asyncio.create_task(take("dial2", True)))
    await asyncio.sleep(0.01)
    lock.release()
    await asyncio.gather(*tasks)
    assert order == ["dial1", "dial2", "push1", "push2", "push3"]
    assert not lock.locked()


async def test_a_waiter_cancelled_in_line_or_as_it_is_handed_the_lock_passes_it_on():
    lock = FirstInLine()
    await lock.acquire()
    cancelled_in_line = asyncio.create_task(lock.acquire())
    handed_then_cancelled = asyncio.create_task(lock.acquire())
    last = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0)
    cancelled_in_line.cancel()
    await asyncio.gather(cancelled_in_line, return_exceptions=True)
    lock.release()  # goes to the second waiter ...
    handed_then_cancelled.cancel()  # ... which is cancelled before it runs: the lock must reach the last one
    await asyncio.gather(handed_then_cancelled, return_exceptions=True)
    assert await asyncio.wait_for(last, 1) is True and lock.locked()
    lock.release()
    assert not lock.locked()
    with pytest.raises(RuntimeError):
        lock.release()


async def test_the_sqlite_connection_serves_the_dial_path_first(perezvon_app):
    from tortoise import connections

    client = connections.get("default")
    if not isinstance(client, DialsFirstSqliteClient):
        pytest.skip("PostgreSQL: its pool has no one lock to jump")
    order: list[str] = []

    async def query(name: str, dial_path: bool) -> None:
        on_the_dial_path.set(dial_path)
        await client.execute_query("SELECT 1")
        order.append(name)

    async with in_transaction():  # holds the connection while the others line up
        tasks = [asyncio.create_task(query(f"push{i}", False)) for i in range(20)]
        await asyncio.sleep(0.01)
        tasks.append(asyncio.create_task(query("dial", True)))
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    assert order[0] == "dial" and sorted(order[1:]) == sorted(f"push{i}" for i in range(20))


async def test_the_postgres_pool_serves_the_dial_path_first(perezvon_app):
    from tortoise import connections

    from perezvon.core.pg import AsyncpgClient

    client = connections.get("default")
    if not isinstance(client, AsyncpgClient):
        pytest.skip("SQLite: one connection, checked above")
    await client.execute_query("SELECT 1")  # the pool exists
    pool = client._pool
    # every connection taken, as by pushes in flight -- all of them by this test: a query of another
    # task (work an earlier test left running) would otherwise hand its slot to the first waiter as
    # soon as it ended, before the dial had lined up
    held = [await pool.acquire() for _ in range(pool._slots._slots)]
    assert pool._slots.locked()
    order: list[str] = []

    async def query(name: str, dial_path: bool) -> None:
        on_the_dial_path.set(dial_path)
        await client.execute_query("SELECT 1")
        order.append(name)

    tasks = [asyncio.create_task(query(f"push{i}", False)) for i in range(10)]
    await asyncio.sleep(0.01)
    tasks.append(asyncio.create_task(query("dial", True)))
    await asyncio.sleep(0.01)
    assert order == []
    for connection in held:
        await pool.release(connection)
    await asyncio.gather(*tasks)
    assert order[0] == "dial" and len(order) == 11


async def test_a_postgres_connection_given_back_costs_no_reset_query_but_an_open_transaction_is_rolled_back(
    perezvon_app,
):
    from tortoise import connections

    from perezvon.core.pg import AsyncpgClient

    client = connections.get("default")
    if not isinstance(client, AsyncpgClient):
        pytest.skip("SQLite: no pool")
    await client.execute_query("SELECT 1")  # the pool exists
    pool = client._pool
    sent: list[str] = []
    connection = await pool.acquire()
    connection.add_query_logger(lambda record: sent.append(record.query))
    try:
        await connection.fetchval("SELECT 1")
        await pool.release(connection)  # as Tortoise gives it back after each query
        assert sent == ["SELECT 1"]  # not asyncpg's "SELECT pg_advisory_unlock_all(); ... RESET ALL"
        connection = await pool.acquire()
        await connection.execute("BEGIN")
        await connection.execute("CREATE TEMPORARY TABLE left_open (n int)")
        await pool.release(connection)  # a transaction left open: rolled back, never handed on
        assert sent[-1] == "ROLLBACK"
        connection = await pool.acquire()
        assert not connection.is_in_transaction()
        assert await connection.fetchval("SELECT to_regclass('pg_temp.left_open')") is None
    finally:
        await pool.release(connection)
