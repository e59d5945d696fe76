"""Operator lines over the real worker, database and Redis with the simulator: hunt, round-robin,
limits, waiting for a free line, limits shared by two engines, the wait's bound, the failing count
and the admin's settings (docs/calls.md#operator-lines)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid

import pytest
from test_admin_helpers import login, make_user

from perezvon.core import lines
from perezvon.core.callbacks import CallbackEngine
from perezvon.core.models import Attempt, Call, CallState, Connection, Office, OperatorNumber, Project
from perezvon.core.testing import ROUND_THE_CLOCK

EN = {"Accept-Language": "en"}
NO_REDIALS: dict[str, dict[str, dict[str, object]]] = {"operator_first": {}}


@pytest.fixture
def long_calls(perezvon_app, monkeypatch):
    """Calls long enough (~0.5 s of real time) for several to be on the lines at once."""
    backend = perezvon_app.host.registry.telephony["simulator"]
    monkeypatch.setattr(backend, "talk_seconds", 1000)
    return backend


async def _site(
    phones: list[str], *, limit: int = 0, strategy: str = "hunt", wait: int = 300, **connection_fields
) -> Connection:
    project = await Project.create(name="Lines")
    connection = await Connection.create(
        project=project,
        domain=f"lines-{uuid.uuid4().hex[:10]}.example",
        schedule=ROUND_THE_CLOCK,
        line_strategy=strategy,
        line_wait_seconds=wait,
        redial_matrix=NO_REDIALS,
        **connection_fields,
    )
    for order, phone in enumerate(phones):
        await OperatorNumber.create(connection=connection, phone=phone, max_calls=limit, sort_order=order)
    return connection


async def _leads(client, site: Connection, phones: list[str]) -> list[str]:
    async def one(phone: str) -> str:
        answer = await client.post("/api/v1/leads", json={"token": site.token, "phone": phone, "consent": True})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["call_id"])

    return list(await asyncio.gather(*(one(p) for p in phones)))


async def _attempts(call_ids: list[str]) -> list[Attempt]:
    return await Attempt.filter(call_id__in=call_ids).order_by("started_at")


def _overlaps(attempts: list[Attempt]) -> int:
    """The most calls any one number carried at once, from the attempts' start and end times."""
    most = 0
    by_number: dict[str, list[tuple[float, int]]] = {}
    for a in attempts:
        assert a.ended_at is not None
        by_number.setdefault(a.operator_number, []).extend(
            [(a.started_at.timestamp(), 1), (a.ended_at.timestamp(), -1)]
        )
    for events in by_number.values():
        now = 0
        for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at the same time
            now += step
            most = max(most, now)
    return most


async def test_hunt_rings_the_first_number_with_a_free_line(perezvon_client, perezvon_run_jobs, new_phone):
    numbers = ["+74951110001", "+74951110002", "+74951110003"]
    site = await _site(numbers)
    for _ in range(3):  # one at a time: with every line free, hunt always takes the first
        [call_id] = await _leads(perezvon_client, site, [new_phone()])
        await perezvon_run_jobs()
        attempt = await Attempt.get(call_id=call_id)
        assert (attempt.operator_number, attempt.operator_status, attempt.client_status) == (numbers[0], 200, 200)


async def test_round_robin_rings_the_next_number_each_time(perezvon_client, perezvon_run_jobs, new_phone):
    numbers = ["+74951120001", "+74951120002", "+74951120003"]
    site = await _site(numbers, strategy="round_robin")
    rung = []
    for _ in range(4):
        [call_id] = await _leads(perezvon_client, site, [new_phone()])
        await perezvon_run_jobs()
        rung.append((await Attempt.get(call_id=call_id)).operator_number)
    assert rung == [numbers[0], numbers[1], numbers[2], numbers[0]]


async def test_a_line_at_its_limit_is_skipped(perezvon_app, perezvon_client, perezvon_run_jobs, new_phone):
    numbers = ["+74951130001", "+74951130002"]
    site = await _site(numbers, limit=1)
    first = await OperatorNumber.get(connection_id=site.id, phone=numbers[0])
    # another worker's call holds the first number's only line
    await perezvon_app.redis.zadd(lines.lease_key(first.id), {"elsewhere:1": time.time() + 30})
    try:
        [call_id] = await _leads(perezvon_client, site, [new_phone()])
        await perezvon_run_jobs()
    finally:
        await perezvon_app.redis.delete(lines.lease_key(first.id))
    attempt = await Attempt.get(call_id=call_id)
    assert (attempt.operator_number, attempt.operator_status) == (numbers[1], 200)


@pytest.mark.parametrize("strategy", ["hunt", "round_robin"])
async def test_with_every_line_busy_callbacks_wait_and_are_placed_in_turn(
    perezvon_client, perezvon_run_jobs, long_calls, new_phone, strategy
):
    numbers = ["+74951140001", "+74951140002"]
    site = await _site(numbers, limit=1, strategy=strategy)
    call_ids = await _leads(perezvon_client, site, [new_phone() for _ in range(6)])
    await perezvon_run_jobs(60)
    calls = await Call.filter(id__in=call_ids)
    assert {(c.state, c.display_status, c.attempts_made) for c in calls} == {(CallState.FINISHED, "successful", 1)}
    attempts = await _attempts(call_ids)
    assert len(attempts) == 6 and {a.operator_status for a in attempts} == {200}
    assert {a.operator_number for a in attempts} == set(numbers)
    assert _overlaps(attempts) == 1  # never two calls on a line
    # only two lines: the later callbacks started after earlier ones had ended (they waited, not failed)
    assert attempts[-1].started_at >= min(a.ended_at for a in attempts[:2] if a.ended_at)


async def test_limits_hold_across_two_engines(perezvon_app, perezvon_client, long_calls, new_phone):
    """Two worker engines (as two processes would be) share the count of calls on a line."""
    numbers = ["+74951150001"]
    site = await _site(numbers, limit=1)
    call_ids = []
    for _ in range(4):  # stored, not queued: the two engines below place them
        answer = await perezvon_client.post(
            "/api/v1/leads", json={"token": site.token, "phone": new_phone(), "consent": True}
        )
        call_ids.append(str(answer.json()["call_id"]))
    engines = [
        CallbackEngine(backend=long_calls, registry=perezvon_app.host.registry, redis=perezvon_app.redis)
        for _ in range(2)
    ]
    try:
        started = await asyncio.gather(
            *(engines[i % 2].place_attempt(call_id, 1) for i, call_id in enumerate(call_ids))
        )
        assert sorted(s.split(":")[0] for s in started) == ["attempt 1 started", "waiting", "waiting", "waiting"]
        deadline = time.monotonic() + 30
        while await Call.filter(id__in=call_ids, state=CallState.FINISHED).count() < 4:
            assert time.monotonic() < deadline, "the waiting callbacks were not placed"
            await asyncio.sleep(0.05)
        for engine in engines:
            await engine.drain(10)
    finally:
        for engine in engines:
            await engine.stop(1)
    attempts = await _attempts(call_ids)
    assert len(attempts) == 4 and {a.operator_status for a in attempts} == {200}
    assert _overlaps(attempts) == 1


async def test_a_callback_waits_only_so_long(perezvon_app, perezvon_client, perezvon_run_jobs, new_phone):
    site = await _site(["+74951160001"], limit=1, wait=0)
    number = await OperatorNumber.get(connection_id=site.id)
    await perezvon_app.redis.zadd(lines.lease_key(number.id), {"elsewhere:1": time.time() + 30})
    try:
        [call_id] = await _leads(perezvon_client, site, [new_phone()])
        await perezvon_run_jobs()
    finally:
        await perezvon_app.redis.delete(lines.lease_key(number.id))
    attempt = await Attempt.get(call_id=call_id)
    assert (attempt.operator_status, attempt.client_status, attempt.dialled_at) == (486, None, None)
    assert attempt.display_status == "failed" and "busy" in attempt.reason, attempt.reason
    call = await Call.get(id=call_id)  # the redial matrix decides, as for any busy operator
    assert call.state in (CallState.SCHEDULED, CallState.FINISHED) and call.attempts_made == 1
    await Call.filter(id=call_id).update(state=CallState.FINISHED)  # no redial in a later test


async def test_an_office_strategy_overrides_the_connection(perezvon_client, perezvon_run_jobs, new_phone):
    site = await _site(["+74951170001"])
    office = await Office.create(connection=site, name="Север", line_strategy="round_robin")
    await OperatorNumber.create(connection=site, office=office, phone="+74951170011", sort_order=0)
    await OperatorNumber.create(connection=site, office=office, phone="+74951170012", sort_order=1)
    rung = []
    for _ in range(2):
        answer = await perezvon_client.post(
            "/api/v1/leads",
            json={"token": site.token, "phone": new_phone(), "consent": True, "office_id": office.id},
        )
        assert answer.status_code == 201, answer.text
        await perezvon_run_jobs()
        rung.append((await Attempt.get(call_id=answer.json()["call_id"])).operator_number)
    assert rung == ["+74951170011", "+74951170012"]


async def test_a_number_failing_in_a_row_is_marked(perezvon_client, perezvon_run_jobs, new_phone):
    site = await _site(["+74951180486"])  # the simulator's operator at ...0486 is busy
    for _ in range(lines.FAILING_AFTER):
        await _leads(perezvon_client, site, [new_phone()])
        await perezvon_run_jobs()
    number = await OperatorNumber.get(connection_id=site.id)
    assert number.failures_in_row == lines.FAILING_AFTER
    await OperatorNumber.filter(id=number.id).update(phone="+74951180001")  # answers now
    await _leads(perezvon_client, site, [new_phone()])
    await perezvon_run_jobs()
    assert (await OperatorNumber.get(id=number.id)).failures_in_row == 0


async def test_the_numbers_tab_sets_limits_and_strategies(perezvon_client):
    project = await Project.create(name="Lines admin")
    site = await Connection.create(project=project, domain=f"la-{uuid.uuid4().hex[:8]}.example")
    office = await Office.create(connection=site, name="Юг")
    number = await OperatorNumber.create(connection=site, phone="+74951190001")
    csrf = await login(perezvon_client, await make_user(level="edit", connection=site))
    url = f"/connections/{site.id}/settings/numbers"
    page = await perezvon_client.get(url)
    assert "Линии операторов" in page.text and "По кругу" in page.text
    data = {"csrf_token": csrf, "action": "edit_number", "id": str(number.id), "phone": "+74951190001"}
    bad = await perezvon_client.post(url, data={**data, "max_calls": "-1"}, headers=EN)
    assert bad.status_code == 400 and "A whole number from 0 to 1000" in bad.text
    ok = await perezvon_client.post(url, data={**data, "max_calls": "2"})
    assert ok.status_code == 303 and (await OperatorNumber.get(id=number.id)).max_calls == 2
    settings = {"csrf_token": csrf, "action": "lines_settings", "line_strategy": "round_robin"}
    bad = await perezvon_client.post(url, data={**settings, "line_wait_seconds": "forever"})
    assert bad.status_code == 400 and "Целое число секунд" in bad.text
    bad = await perezvon_client.post(url, data={**settings, "line_wait_seconds": "30", "line_strategy": "random"})
    assert bad.status_code == 400
    ok = await perezvon_client.post(
        url, data={**settings, "line_wait_seconds": "30", f"office_strategy_{office.id}": "hunt"}
    )
    assert ok.status_code == 303
    saved = await Connection.get(id=site.id)
    assert (saved.line_strategy, saved.line_wait_seconds) == ("round_robin", 30)
    assert (await Office.get(id=office.id)).line_strategy == "hunt"
    page = await perezvon_client.get(url)
    assert "не больше 2 звонков одновременно" in page.text


async def test_a_waiting_callback_keeps_its_place_over_a_worker_restart(
    perezvon_app, perezvon_client, perezvon_run_jobs, long_calls, new_phone
):
    site = await _site(["+74951200001"], limit=1)
    number = await OperatorNumber.get(connection_id=site.id)
    await perezvon_app.redis.zadd(lines.lease_key(number.id), {"elsewhere:1": time.time() + 30})
    first, second = [], []
    for ids in (first, second):  # stored, not queued; arriving one after the other
        answer = await perezvon_client.post(
            "/api/v1/leads", json={"token": site.token, "phone": new_phone(), "consent": True}
        )
        ids.append(str(answer.json()["call_id"]))
    engine = CallbackEngine(backend=long_calls, registry=perezvon_app.host.registry, redis=perezvon_app.redis)
    try:
        for call_id in (first[0], second[0]):
            assert (await engine.place_attempt(call_id, 1)).startswith("waiting")
    finally:
        await engine.stop(1)  # the worker stops while both wait
    calls = await Call.filter(id__in=first + second)
    assert {(c.state, c.attempts_made) for c in calls} == {(CallState.SCHEDULED, 0)}
    assert await perezvon_app.redis.zrange(f"pv:lines:wait:{site.id}:0", 0, -1) == [
        first[0].encode(),
        second[0].encode(),
    ]
    # the line frees and the held due times pass: the sweep of a new worker queues both again
    await perezvon_app.redis.delete(lines.lease_key(number.id))
    await Call.filter(id__in=first + second).update(next_attempt_at=dt.datetime.now(dt.UTC))
    await perezvon_run_jobs(60)
    attempts = await _attempts(first + second)
    assert [str(a.call_id) for a in attempts] == first + second  # in their order of arrival
    assert {a.operator_status for a in attempts} == {200} and _overlaps(attempts) == 1


async def test_ring_all_rings_every_free_line_and_the_first_to_answer_wins(
    perezvon_app, perezvon_client, perezvon_run_jobs, new_phone, monkeypatch
):
    backend = perezvon_app.host.registry.telephony["simulator"]
    plays: list[list[tuple]] = []
    original = backend.place_attempt

    async def noted(plan, progress):
        outcome = await original(plan, progress)
        plays.append(backend.recent[-1])
        return outcome

    monkeypatch.setattr(backend, "place_attempt", noted)
    numbers = ["+74951210486", "+74951210002", "+74951210003"]  # the first is busy (the simulator's rule)
    site = await _site(numbers, strategy="ring_all")
    await OperatorNumber.filter(connection_id=site.id, phone=numbers[1]).update(extension="21")
    [call_id] = await _leads(perezvon_client, site, [new_phone()])
    await perezvon_run_jobs()
    attempt = await Attempt.get(call_id=call_id)
    assert (attempt.operator_number, attempt.operator_status, attempt.client_status) == (numbers[1], 200, 200)
    [log] = plays
    assert [e[2] for e in log if e[:2] == ("dial", "operator")] == numbers  # all three rang at once
    assert ("cancel", "operator", numbers[2]) in log  # the third was cancelled once the second answered
    assert ("dtmf", "operator", "21") in log  # the extension of the line that answered
    rung = {n.phone: n.failures_in_row for n in await OperatorNumber.filter(connection_id=site.id)}
    assert rung == {numbers[0]: 0, numbers[1]: 0, numbers[2]: 0}


async def test_ring_all_gives_back_the_lines_that_did_not_answer(
    perezvon_client, perezvon_run_jobs, long_calls, new_phone
):
    numbers = ["+74951220001", "+74951220002"]
    site = await _site(numbers, limit=1, strategy="ring_all")
    call_ids = await _leads(perezvon_client, site, [new_phone() for _ in range(2)])
    await perezvon_run_jobs(60)
    attempts = await _attempts(call_ids)
    assert {a.operator_status for a in attempts} == {200} and _overlaps(attempts) == 1
    # the second callback took the line the first one's ring-all gave back: both talked at once
    assert {a.operator_number for a in attempts} == set(numbers)
    first, second = attempts
    assert first.ended_at is not None and second.started_at < first.ended_at


async def test_ring_all_when_no_line_answers(perezvon_client, perezvon_run_jobs, new_phone):
    numbers = ["+74951230486", "+74951310486"]  # both busy
    site = await _site(numbers, strategy="ring_all")
    [call_id] = await _leads(perezvon_client, site, [new_phone()])
    await perezvon_run_jobs()
    attempt = await Attempt.get(call_id=call_id)
    # the first line's status makes the pair, and the attempt names the first line
    assert (attempt.operator_number, attempt.operator_status, attempt.client_status) == (numbers[0], 486, None)
    await Call.filter(id=call_id).update(state=CallState.FINISHED)  # no redial in a later test


async def test_thousands_of_marks_and_leases_are_renewed_in_chunks_and_a_lease_given_back_stays_gone(
    perezvon_app, monkeypatch
):
    """The engine's keep-alive renews every call's mark and every lease, more than one script call's
    worth (lines.RENEW_CHUNK), and never puts back a lease that was given back meanwhile."""
    monkeypatch.setattr(lines, "RENEW_CHUNK", 100)  # 250 calls: three calls of each script
    redis = perezvon_app.redis
    engine = CallbackEngine(
        backend=perezvon_app.host.registry.telephony["simulator"], registry=perezvon_app.host.registry, redis=redis
    )
    group = f"renew-{uuid.uuid4().hex[:8]}"
    key = lines.lease_key(10**9 + 7)
    calls = [f"renew-{uuid.uuid4().hex}" for _ in range(250)]
    soon = time.time() + 5  # as if taken 55 s ago
    await redis.zadd(key, dict.fromkeys(calls, soon))
    for call_id in calls:
        engine.in_flight.add(call_id)
        engine._rung[call_id] = [(OperatorNumber(phone="+74950000000"), lines.Lease(key, call_id, group))]
    await redis.zrem(key, calls[0])  # given back, its call not yet forgotten here
    engine.start()
    try:
        for _ in range(100):
            if await redis.exists(*(f"pv:alive:{call_id}" for call_id in calls)) == len(calls):
                break
            await asyncio.sleep(0.05)
    finally:
        await engine.stop(grace_seconds=0)
    ttls = [await redis.ttl(f"pv:alive:{call_id}") for call_id in calls]
    assert all(25 < ttl <= 30 for ttl in ttls), sorted(ttls)[:3]
    scores = dict(await redis.zrange(key, 0, -1, withscores=True))
    assert calls[0].encode() not in scores
    assert len(scores) == 249 and min(scores.values()) > soon + 50  # pushed a minute ahead
    await redis.delete(key, *(f"pv:alive:{call_id}" for call_id in calls))
