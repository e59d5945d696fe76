"""The worker: attempts through the simulator, the chain, tags, durability, integrations."""

import asyncio
import datetime as dt

import pytest

from perezvon.core import enablement
from perezvon.core.callbacks import INTERRUPTED, CallbackEngine
from perezvon.core.models import Attempt, Call, CallState, Delivery, Lead, OperatorNumber
from perezvon.core.registry import DeliveryError, Integration
from perezvon.core.schemas import Schema
from perezvon.core.sqlite import DialsFirstSqliteClient

EVERY_REDIAL_AT_ONCE = {
    "operator_first": {str(n): {"*-*": {"period": 0, "direction": "operator_first"}} for n in range(2, 6)}
}


async def post_lead(client, site, phone, **extra):
    response = await client.post("/api/v1/leads", json={"token": site.token, "phone": phone, "consent": True, **extra})
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_lead_is_called_back_and_tagged(perezvon_client, perezvon_site, perezvon_run_jobs, new_phone):
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    call = await Call.get(id=created["call_id"])
    assert (call.state, call.display_status) == (CallState.FINISHED, "successful")
    assert call.attempts_made == 1 and call.duration_seconds == 130
    assert call.is_unique is True and call.is_target is True  # 130 s >= 120 s target
    attempt = await Attempt.get(call_id=call.id)
    assert (attempt.operator_status, attempt.client_status) == (200, 200)
    assert attempt.direction == "operator_first" and attempt.backend == "simulator"
    assert attempt.operator_number == "+74951234567"
    assert attempt.reason == "the callback took place"
    assert attempt.started_at <= attempt.dialled_at <= attempt.ended_at
    state = (await perezvon_client.get(f"/api/v1/calls/{call.id}/state", params={"token": perezvon_site.token})).json()
    assert state == {
        "status": "successful",
        "phase": "finished",
        "leg": None,
        "attempts": 1,
        "next_attempt_at": None,
        "finished": True,
        "tags": {"unique": True, "target": True},
    }


async def test_the_state_says_which_leg_is_being_rung(perezvon_app, perezvon_client, perezvon_site, new_phone):
    from perezvon.core.callbacks import _Progress, leg_key

    created = await post_lead(perezvon_client, perezvon_site, new_phone())  # no worker runs: it stays queued
    call_id = created["call_id"]
    state_url = f"/api/v1/calls/{call_id}/state"
    await Call.filter(id=call_id).update(state=CallState.DIALLING, attempts_made=2)
    attempt = await Attempt.create(
        call_id=call_id, number=2, direction="operator_first", backend="simulator", started_at=dt.datetime.now(dt.UTC)
    )
    progress = _Progress(attempt, perezvon_app.redis)
    states = []
    for leg in ("operator", "client"):
        await progress.leg_dialled(leg)
        states.append((await perezvon_client.get(state_url, params={"token": perezvon_site.token})).json())
    assert [(s["phase"], s["leg"]) for s in states] == [("calling", "operator"), ("calling", "client")]
    await perezvon_app.redis.set(leg_key(call_id), "1:client")  # a note left by the previous attempt
    stale = (await perezvon_client.get(state_url, params={"token": perezvon_site.token})).json()
    assert (stale["phase"], stale["leg"]) == ("calling", None)
    await Call.filter(id=call_id).update(state=CallState.FINISHED)


async def test_a_phone_seen_within_the_window_is_a_repeat(perezvon_client, perezvon_site, perezvon_run_jobs, new_phone):
    phone = new_phone()
    await Lead.create(
        connection=perezvon_site, source="api", phone=phone, created_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    )
    created = await post_lead(perezvon_client, perezvon_site, phone)
    await perezvon_run_jobs()
    assert (await Call.get(id=created["call_id"])).is_unique is False


async def test_a_busy_client_is_redialled_by_the_matrix_then_given_up(
    perezvon_client, perezvon_site, perezvon_run_jobs, new_phone
):
    perezvon_site.redial_matrix = EVERY_REDIAL_AT_ONCE
    await perezvon_site.save()
    created = await post_lead(perezvon_client, perezvon_site, new_phone("0486"))
    await perezvon_run_jobs()
    call = await Call.get(id=created["call_id"])
    attempts = await Attempt.filter(call_id=call.id).order_by("number")
    assert [a.number for a in attempts] == [1, 2, 3, 4, 5]  # the first call and four redials
    assert all((a.operator_status, a.client_status) == (200, 486) for a in attempts)
    assert (call.state, call.display_status, call.is_target) == (CallState.FINISHED, "unsuccessful", False)
    assert call.reason == "the subscriber could not be reached in time: busy"


async def test_the_default_matrix_waits_before_a_redial(perezvon_client, perezvon_site, perezvon_run_jobs, new_phone):
    created = await post_lead(perezvon_client, perezvon_site, new_phone("0486"))
    await perezvon_run_jobs()
    call = await Call.get(id=created["call_id"])
    assert call.state == CallState.SCHEDULED and call.attempts_made == 1
    wait = (call.next_attempt_at - dt.datetime.now(dt.UTC)).total_seconds()
    assert 170 < wait <= 180  # "200-486": 180 s
    assert call.next_direction == "operator_first"


async def test_cancel_by_dtmf_always_aborts(perezvon_client, perezvon_site, perezvon_run_jobs, new_phone):
    perezvon_site.redial_matrix = EVERY_REDIAL_AT_ONCE
    await perezvon_site.save()
    created = await post_lead(perezvon_client, perezvon_site, new_phone("0201"))
    await perezvon_run_jobs()
    call = await Call.get(id=created["call_id"])
    assert (call.state, call.display_status, call.attempts_made) == (CallState.FINISHED, "cancelled", 1)


async def test_a_site_whose_operator_numbers_went_away_fails_clearly(
    perezvon_client, perezvon_site, perezvon_run_jobs, new_phone
):
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    # deleted after the lead came (a new lead would be e-mailed or refused: tests/test_switches.py)
    await OperatorNumber.filter(connection_id=perezvon_site.id).delete()
    await perezvon_run_jobs()
    call = await Call.get(id=created["call_id"])
    assert (call.state, call.display_status) == (CallState.FINISHED, "failed")
    assert call.reason == "no operator number is set for this site"


async def test_a_backend_error_becomes_a_status_and_a_redial(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, monkeypatch
):
    backend = perezvon_app.host.telephony_backend()

    async def broken(plan, progress):
        raise ConnectionError("PBX link lost")

    monkeypatch.setattr(backend, "place_attempt", broken)
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    attempt = await Attempt.get(call_id=created["call_id"], number=1)
    assert attempt.operator_status == 500 and attempt.display_status == "failed"
    assert "PBX link lost" in attempt.reason
    call = await Call.get(id=created["call_id"])
    assert call.state == CallState.SCHEDULED  # the matrix gives it another try


async def test_an_attempt_is_placed_once_however_often_its_job_runs(
    perezvon_app, perezvon_client, perezvon_site, new_phone
):
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    engine = CallbackEngine(
        backend=perezvon_app.host.telephony_backend(), registry=perezvon_app.host.registry, redis=perezvon_app.redis
    )
    first = await engine.place_attempt(created["call_id"], 1)
    second = await engine.place_attempt(created["call_id"], 1)
    assert first == "attempt 1 started" and second.startswith("skipped")
    assert await engine.drain(10)
    assert await Attempt.filter(call_id=created["call_id"]).count() == 1
    assert (await Call.get(id=created["call_id"])).display_status == "successful"


async def test_claims_racing_for_one_attempt_start_it_once(perezvon_app, perezvon_client, perezvon_site, new_phone):
    """The claim (core/claims.py) marks the call and inserts the attempt in one trip: of several
    engines claiming the same attempt at once, one wins, and the row it wrote is whole."""
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    engines = [
        CallbackEngine(
            backend=perezvon_app.host.telephony_backend(), registry=perezvon_app.host.registry, redis=perezvon_app.redis
        )
        for _ in range(4)
    ]
    results = await asyncio.gather(*(engine.place_attempt(created["call_id"], 1) for engine in engines))
    assert sorted(results) == ["attempt 1 started"] + ["skipped: already placed or no longer due"] * 3
    [attempt] = await Attempt.filter(call_id=created["call_id"])
    assert (attempt.number, attempt.direction, attempt.backend) == (1, "operator_first", "simulator")
    assert attempt.started_at is not None and attempt.started_at.tzinfo is not None
    assert attempt.operator_number.startswith("+") and attempt.display_status in ("pending", "successful")
    for engine in engines:
        assert await engine.drain(10)
    call = await Call.get(id=created["call_id"])
    assert (call.attempts_made, call.display_status) == (1, "successful")
    assert (await Attempt.get(id=attempt.id)).display_status == "successful"


async def test_claims_and_dial_moments_arriving_at_once_are_written_together_each_call_once(
    perezvon_app, perezvon_client, perezvon_site, new_phone, monkeypatch
):
    """One engine starting many attempts at once writes their claims (on SQLite) and their dial
    moments in groups (core/claims.py ``AttemptStarts``); each claim is still guarded on its own, so
    the same attempt asked for twice in one group starts once."""
    created = [await post_lead(perezvon_client, perezvon_site, new_phone()) for _ in range(12)]
    engine = CallbackEngine(
        backend=perezvon_app.host.telephony_backend(), registry=perezvon_app.host.registry, redis=perezvon_app.redis
    )
    groups: dict[str, list[int]] = {"claims": [], "dialled": []}
    for name, batcher in (("claims", engine.starts._claims), ("dialled", engine.starts._dialled)):
        process = batcher.process

        async def counted(batch, process=process, name=name):
            groups[name].append(len(batch))
            await process(batch)

        monkeypatch.setattr(batcher, "process", counted)
    call_ids = [c["call_id"] for c in created]
    results = await asyncio.gather(*(engine.place_attempt(call_id, 1) for call_id in call_ids + call_ids[:3]))
    assert sorted(results) == ["attempt 1 started"] * 12 + ["skipped: already placed or no longer due"] * 3
    assert await engine.drain(10)
    await engine.starts.close()
    attempts = await Attempt.filter(call_id__in=call_ids)
    assert len(attempts) == 12 and all(a.number == 1 for a in attempts)
    assert all(a.started_at <= a.dialled_at <= a.ended_at for a in attempts)
    assert sum(groups["dialled"]) == 12 and max(groups["dialled"]) > 1, groups
    if isinstance(Call._meta.db, DialsFirstSqliteClient):
        assert sum(groups["claims"]) == 15 and max(groups["claims"]) > 1, groups
    else:  # PostgreSQL claims concurrently, each in its one statement
        assert groups["claims"] == []
    for call in await Call.filter(id__in=call_ids):
        assert (call.attempts_made, call.display_status) == (1, "successful")


async def test_the_sweep_requeues_a_call_whose_job_was_lost(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone
):
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    job_id = f"attempt:{created['call_id']}:1"
    for _ in range(100):  # the intake queues jobs just after it answers
        if await perezvon_app.redis.zscore("arq:queue", job_id) is not None:
            break
        await asyncio.sleep(0.01)
    # what a Redis restart does to a queued job
    await perezvon_app.redis.delete(f"arq:job:{job_id}")
    await perezvon_app.redis.zrem("arq:queue", job_id)
    engine = CallbackEngine(
        backend=perezvon_app.host.telephony_backend(), registry=perezvon_app.host.registry, redis=perezvon_app.redis
    )
    swept = await engine.sweep()
    assert swept["requeued"] >= 1
    assert await perezvon_app.redis.zscore("arq:queue", job_id) is not None
    await perezvon_run_jobs()
    assert (await Call.get(id=created["call_id"])).display_status == "successful"


@pytest.mark.parametrize("pbx", ["answers", "unreachable"])
async def test_the_sweep_resolves_a_call_left_dialling_by_a_killed_worker(
    perezvon_app, perezvon_client, perezvon_site, new_phone, monkeypatch, pbx
):
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    call_id = created["call_id"]
    # a worker claimed the attempt and died: no "alive" mark is renewed
    await Call.filter(id=call_id).update(state=CallState.DIALLING, attempts_made=1)
    await Attempt.create(
        call_id=call_id,
        number=1,
        direction="operator_first",
        operator_number="+74951234567",
        started_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2),
    )
    backend = perezvon_app.host.telephony_backend()
    asked = []

    async def end_interrupted(cid: str, number: int) -> int:
        asked.append((cid, number))
        if pbx == "unreachable":
            raise ConnectionError("the PBX is down")
        return 2

    monkeypatch.setattr(backend, "end_interrupted", end_interrupted)
    engine = CallbackEngine(backend=backend, registry=perezvon_app.host.registry, redis=perezvon_app.redis)
    swept = await engine.sweep()
    assert swept["orphans"] >= 1
    # the backend was asked to end the legs the dead worker left (tests/test_asterisk.py does it for real);
    # a PBX that cannot be asked does not keep the call from being resolved
    assert (call_id, 1) in asked
    attempt = await Attempt.get(call_id=call_id, number=1)
    assert attempt.ended_at is not None and attempt.reason == INTERRUPTED and attempt.operator_status == 500
    call = await Call.get(id=call_id)
    assert call.state == CallState.SCHEDULED and call.next_attempt_at is not None  # redialled by the matrix
    again = await engine.sweep()  # a second sweep finds nothing more to do for it
    assert await Attempt.filter(call_id=call_id).count() == 1 and again["orphans"] == 0


async def test_a_live_call_is_not_taken_for_an_orphan(perezvon_app, perezvon_client, perezvon_site, new_phone):
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    call_id = created["call_id"]
    await Call.filter(id=call_id).update(state=CallState.DIALLING, attempts_made=1)
    await Attempt.create(
        call_id=call_id,
        number=1,
        direction="operator_first",
        started_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2),
    )
    await perezvon_app.redis.set(f"pv:alive:{call_id}", "1", ex=30)  # another worker is on it
    engine = CallbackEngine(
        backend=perezvon_app.host.telephony_backend(), registry=perezvon_app.host.registry, redis=perezvon_app.redis
    )
    await engine.sweep()
    assert (await Call.get(id=call_id)).state == CallState.DIALLING


class RecordingIntegration(Integration):
    key = "recorder"
    title = "Records events"
    settings_schema = Schema

    def __init__(self, fail: DeliveryError | None = None):
        self.events = []
        self.fail = fail

    async def on_lead_created(self, event):
        if self.fail:
            raise self.fail
        self.events.append((event.event, event.lead["phone"]))
        return "ok 1"

    async def on_call_finished(self, event):
        self.events.append((event.event, event.call["display_status"]))
        return "ok 2"


@pytest.fixture
def integration(perezvon_app):
    registry = perezvon_app.host.registry
    made = []

    def install(obj):
        registry.current_plugin = "tests"
        registry.add_integration(obj)
        made.append(obj.key)
        return obj

    yield install
    for key in made:
        registry.integrations.pop(key)
        registry.owner.pop(("integration", key))


async def test_integrations_get_lead_and_result_once_each(
    perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, integration
):
    recorder = integration(RecordingIntegration())
    await enablement.enable(perezvon_site, enablement.INTEGRATION, "recorder")
    phone = new_phone()
    created = await post_lead(perezvon_client, perezvon_site, phone)
    await perezvon_run_jobs()
    assert sorted(recorder.events) == [("call_finished", "successful"), ("lead_created", phone)]
    deliveries = await Delivery.filter(call_id=created["call_id"]).order_by("event")
    assert [(d.event, d.ok, d.response) for d in deliveries] == [
        ("call_finished", True, "ok 2"),
        ("lead_created", True, "ok 1"),
    ]


async def test_a_4xx_integration_failure_is_stored_not_retried_and_never_delays_the_call(
    perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, integration
):
    integration(
        RecordingIntegration(
            fail=DeliveryError("bad counter id", retry=False, status=400, response='{"error": "bad counter"}')
        )
    )
    await enablement.enable(perezvon_site, enablement.INTEGRATION, "recorder")
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    assert (await Call.get(id=created["call_id"])).display_status == "successful"
    failed = await Delivery.get(call_id=created["call_id"], event="lead_created")
    assert (failed.ok, failed.status, failed.try_number) == (False, 400, 1)
    assert failed.response == '{"error": "bad counter"}'


async def test_stopping_the_engine_records_calls_in_progress(
    perezvon_app, perezvon_client, perezvon_site, new_phone, monkeypatch
):
    backend = perezvon_app.host.telephony_backend()

    async def endless(plan, progress):
        await progress.leg_dialled("operator")
        await asyncio.sleep(3600)

    monkeypatch.setattr(backend, "place_attempt", endless)
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    engine = CallbackEngine(backend=backend, registry=perezvon_app.host.registry, redis=perezvon_app.redis)
    assert await engine.place_attempt(created["call_id"], 1) == "attempt 1 started"
    for _ in range(100):
        if (await Attempt.get(call_id=created["call_id"])).dialled_at:
            break
        await asyncio.sleep(0.01)
    await engine.stop(grace_seconds=0.1)
    attempt = await Attempt.get(call_id=created["call_id"])
    assert attempt.reason == INTERRUPTED and attempt.ended_at is not None
    assert (await Call.get(id=created["call_id"])).state == CallState.SCHEDULED  # the matrix redials it
    assert await perezvon_app.redis.get(f"pv:alive:{created['call_id']}") is None


async def test_the_keep_alive_marks_an_attempt_and_its_end_removes_the_mark_with_its_line(
    perezvon_app, perezvon_client, perezvon_site, new_phone, monkeypatch
):
    """No round trip of its own marks a call in flight: the keep-alive sets the mark (well inside the
    sweep's grace), and the attempt's end removes it in the trip that gives its operator line back."""
    from perezvon.core import callbacks, lines
    from perezvon.core.registry import AttemptOutcome, LegStatus

    backend = perezvon_app.host.telephony_backend()
    hang_up = asyncio.Event()

    async def held(plan, progress):
        await progress.leg_dialled("operator")
        await hang_up.wait()
        return AttemptOutcome(LegStatus.TIMEOUT, None)

    monkeypatch.setattr(backend, "place_attempt", held)
    monkeypatch.setattr(callbacks, "ALIVE_EVERY", 0.05)
    redis = perezvon_app.redis
    operator = await OperatorNumber.filter(connection_id=perezvon_site.id).first()
    await OperatorNumber.filter(id=operator.id).update(max_calls=1)  # a line with a lease
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    call_id, mark = created["call_id"], f"pv:alive:{created['call_id']}"
    engine = CallbackEngine(backend=backend, registry=perezvon_app.host.registry, redis=redis)
    assert await engine.place_attempt(call_id, 1) == "attempt 1 started"
    assert call_id in engine.in_flight and await redis.get(mark) is None
    assert await redis.zscore(lines.lease_key(operator.id), f"{call_id}:1") is not None
    engine.start()
    try:
        for _ in range(100):
            if await redis.get(mark):
                break
            await asyncio.sleep(0.02)
        assert 25 < await redis.ttl(mark) <= callbacks.ALIVE_TTL
        hang_up.set()
        for _ in range(200):
            if call_id not in engine.in_flight:
                break
            await asyncio.sleep(0.02)
        assert call_id not in engine.in_flight
        assert await redis.get(mark) is None
        assert await redis.zscore(lines.lease_key(operator.id), f"{call_id}:1") is None
        assert (await Attempt.get(call_id=call_id, number=1)).ended_at is not None
    finally:
        hang_up.set()
        await engine.stop(grace_seconds=1)


async def test_a_lost_push_is_requeued_by_the_sweep_and_delivered_once(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, integration
):
    """Issue 13, item 8: the sweep re-creates integration pushes too, not only dial attempts."""
    from perezvon.core.models import PendingJob
    from perezvon.core.queue import DELIVERIES_QUEUE, delivery_job

    recorder = integration(RecordingIntegration())
    await enablement.enable(perezvon_site, enablement.INTEGRATION, "recorder")
    phone = new_phone()
    created = await post_lead(perezvon_client, perezvon_site, phone)
    job_id = delivery_job("recorder", "lead_created", created["call_id"]).job_id
    for _ in range(200):  # the intake queues jobs just after it answers
        if await perezvon_app.redis.zscore(DELIVERIES_QUEUE, job_id) is not None:
            break
        await asyncio.sleep(0.01)
    await perezvon_app.redis.delete(f"arq:job:{job_id}")  # what a Redis restart does to a queued job
    await perezvon_app.redis.zrem(DELIVERIES_QUEUE, job_id)
    await perezvon_run_jobs()
    assert recorder.events == [("call_finished", "successful")]  # the push was lost
    assert await PendingJob.filter(job_id=job_id).exists()  # ... but not forgotten

    engine = CallbackEngine(
        backend=perezvon_app.host.telephony_backend(), registry=perezvon_app.host.registry, redis=perezvon_app.redis
    )
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    assert (await engine.sweep(later))["followups"] >= 1
    assert (await engine.sweep(later))["followups"] == 0  # still queued: the same id is not queued twice
    await perezvon_run_jobs()
    assert sorted(recorder.events) == [("call_finished", "successful"), ("lead_created", phone)]
    assert not await PendingJob.filter(job_id=job_id).exists()
    assert (await engine.sweep(later + dt.timedelta(hours=1)))["followups"] == 0  # over: never again
    await perezvon_run_jobs()
    assert sorted(recorder.events) == [("call_finished", "successful"), ("lead_created", phone)]
    assert await Delivery.filter(call_id=created["call_id"], event="lead_created").count() == 1


async def dialling_call(client, site, phone, operator):
    """A new lead's call as a worker leaves it mid-attempt: dialling its first attempt on ``operator``."""
    created = await post_lead(client, site, phone)
    await Call.filter(id=created["call_id"]).update(state=CallState.DIALLING, attempts_made=1)
    attempt = await Attempt.create(
        call_id=created["call_id"],
        number=1,
        direction="operator_first",
        operator_number=operator.phone,
        started_at=dt.datetime.now(dt.UTC),
    )
    return await Call.get(id=created["call_id"]).prefetch_related("connection", "lead"), attempt


async def test_attempts_ending_together_are_written_together_and_each_keeps_its_own_outcome(
    perezvon_app, perezvon_client, perezvon_site, new_phone, monkeypatch
):
    """Endings that arrive together share their statements (core/endings.py); each still gets its own
    outcome, the matrix's next step, its jobs, and the guard against a call resolved meanwhile."""
    from perezvon.core import endings
    from perezvon.core.models import PendingJob
    from perezvon.core.registry import AttemptOutcome, LegStatus

    groups = []
    write = endings.write_endings

    async def counted(rows, pending):
        groups.append(len(rows))
        return await write(rows, pending)

    monkeypatch.setattr(endings, "write_endings", counted)
    operator = await OperatorNumber.filter(connection_id=perezvon_site.id).first()
    await OperatorNumber.filter(id=operator.id).update(failures_in_row=5)
    calls = [await dialling_call(perezvon_client, perezvon_site, new_phone(), operator) for _ in range(12)]
    resolved_meanwhile = calls[-1][0]  # e.g. by the sweep of another worker
    await Call.filter(id=resolved_meanwhile.id).update(state=CallState.FINISHED)
    answered = AttemptOutcome(LegStatus.OK, LegStatus.OK, conversation_seconds=130)
    busy = AttemptOutcome(LegStatus.OK, LegStatus.BUSY)
    unanswered = AttemptOutcome(LegStatus.TIMEOUT, None)
    outcomes = [answered] * 4 + [busy] * 4 + [unanswered] * 4
    engine = CallbackEngine(
        backend=perezvon_app.host.telephony_backend(), registry=perezvon_app.host.registry, redis=perezvon_app.redis
    )
    await asyncio.gather(
        *(
            # the busy ones count for no line here: the order of the others is fixed (a redial reads the
            # calendar before it joins the group; a call's end does not)
            engine.finish_attempt(call, attempt, outcome, line=None if outcome is busy else operator)
            for (call, attempt), outcome in zip(calls, outcomes)
        )
    )
    assert sum(groups) == 12 and len(groups) < 12  # written in groups, not one by one
    for call, attempt in calls[:4]:
        stored = await Call.get(id=call.id)
        assert stored.state == CallState.FINISHED and stored.display_status == "successful"
        assert stored.duration_seconds == 130 and stored.finished_at is not None
        ended = await Attempt.get(id=attempt.id)
        assert (ended.operator_status, ended.client_status, ended.duration_seconds) == (200, 200, 130)
    for call, attempt in calls[4:8]:  # the client was busy: the matrix redials, the call keeps no end yet
        stored = await Call.get(id=call.id)
        assert stored.state == CallState.SCHEDULED and stored.next_attempt_at is not None
        assert stored.finished_at is None and stored.display_status == "pending"
        assert (await Attempt.get(id=attempt.id)).client_status == LegStatus.BUSY
        assert await PendingJob.filter(job_id__contains=str(call.id)).count() == 0  # an attempt job: in Redis
    untouched = await Attempt.get(id=calls[-1][1].id)
    assert untouched.ended_at is None and untouched.operator_status is None  # lost its race: nothing written
    # the operator's run: the answers in the group start it again; 3 unanswered count after them (not the 4th)
    assert (await OperatorNumber.get(id=operator.id)).failures_in_row == 3


async def test_an_ending_the_database_refuses_costs_no_other_ending_of_its_group(
    perezvon_app, perezvon_client, perezvon_site, new_phone
):
    """A value the store will not hold (here a recording path longer than its column) fails its own
    ending only: the group is written again in halves."""
    from perezvon.core.registry import AttemptOutcome, LegStatus

    operator = await OperatorNumber.filter(connection_id=perezvon_site.id).first()
    calls = [await dialling_call(perezvon_client, perezvon_site, new_phone(), operator) for _ in range(6)]
    engine = CallbackEngine(
        backend=perezvon_app.host.telephony_backend(), registry=perezvon_app.host.registry, redis=perezvon_app.redis
    )
    good = AttemptOutcome(LegStatus.OK, LegStatus.OK, conversation_seconds=10)
    too_long = AttemptOutcome(LegStatus.OK, LegStatus.OK, conversation_seconds=10, recording="/r/" + "x" * 600)
    results = await asyncio.gather(
        *(
            engine.finish_attempt(call, attempt, too_long if i == 2 else good)
            for i, (call, attempt) in enumerate(calls)
        ),
        return_exceptions=True,
    )
    for i, (call, _) in enumerate(calls):
        if i != 2:
            assert results[i] is None
            assert (await Call.get(id=call.id)).state == CallState.FINISHED
    assert isinstance(results[2], Exception)  # left dialling: the sweep resolves it as interrupted
    assert (await Call.get(id=calls[2][0].id)).state == CallState.DIALLING
