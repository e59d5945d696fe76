"""Operator lines through the Asterisk backend over the AMI emulator (docs/calls.md#operator-lines):
hunt, round-robin and ring-all; a line at its limit is skipped; with every line busy a callback
waits and is placed when one frees.

The real jobs run (``perezvon_run_jobs``: the arq workers and the callback engine), with the worker's
telephony backend the Asterisk plugin logged in to the emulator (tests/ami_emulator,
docs/ami-emulator.md) over a real socket. What the tests read is what the emulated Asterisk saw:
its Originate actions and the channels it made and hung up, in the order it made them.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from ami_emulator import AmiEmulator, Behaviour
from test_asterisk import FAST, SECRET, SHIPPED_USER, SPEED, make_backend, operator_presses
from test_operator_lines import _leads
from test_operator_lines import _site as lines_site

from perezvon.core import lines
from perezvon.core.models import Attempt, Call, CallState, Connection, OperatorNumber

NO_REDIALS: dict[str, dict[str, dict[str, object]]] = {"operator_first": {}}


@pytest.fixture
async def emulator(perezvon_app, tmp_path, monkeypatch):
    """The emulated Asterisk, and the worker's telephony backend logged in to it: every
    ``perezvon_run_jobs`` starts a fresh Asterisk backend, as a worker process would."""
    emu = AmiEmulator(
        username="perezvon",
        secret=SECRET,
        speed=SPEED,
        async_agi_contexts={"perezvon-leg"},
        users={"perezvon": SHIPPED_USER},
        # the clients: answer, are heard as people, and stay until the operator hangs up
        default_behaviour=Behaviour.human(1.0, hangup_after=600),
    )
    await emu.start()
    monkeypatch.setattr(
        perezvon_app.host, "telephony_backend", lambda: make_backend(emu, perezvon_app.host.registry, tmp_path)
    )
    yield emu
    await emu.stop()


def operator_numbers(count: int) -> list[str]:
    """Operator numbers no other test's site or emulator uses (the test DB is shared in a session)."""
    base = uuid.uuid4().int % 10**5
    return [f"+749512{base:05d}{i}" for i in range(count)]


def talks(seconds: float) -> Behaviour:
    """An operator who answers, presses 1 (call the client) and hangs up ``seconds`` (nominal) after answering."""
    return operator_presses("1", start=20.0, hangup_after=seconds)


async def _site(phones: list[str], *, limit: int = 0, strategy: str = "hunt") -> Connection:
    return await lines_site(phones, limit=limit, strategy=strategy, telephony=FAST)


def legs(emu: AmiEmulator, numbers: list[str]) -> list[tuple[str, float, float]]:
    """Every channel the emulator made to one of ``numbers``, in the order it made them:
    (the number as dialled with its +, when it was made, when it was hung up)."""
    wanted = {n.lstrip("+") for n in numbers}
    made = {e["Uniqueid"]: e.at for e in emu.events_named("Newchannel")}
    gone = {e["Uniqueid"]: e.at for e in emu.events_named("Hangup")}
    assert not emu.channels, "a channel was left up"
    found = [("+" + c.number, made[c.uniqueid], gone[c.uniqueid]) for c in emu.hungup_channels if c.number in wanted]
    return sorted(found, key=lambda leg: leg[1])


def live_operators(emu: AmiEmulator, numbers: list[str]) -> int:
    """How many channels to ``numbers`` are up (answered and not hung up) now."""
    wanted = {n.lstrip("+") for n in numbers}
    return sum(1 for c in emu.channels.values() if c.number in wanted and c.answered)


def most_at_once(found: list[tuple[str, float, float]]) -> dict[str, int]:
    """The most channels each number carried at the same time."""
    most: dict[str, int] = {}
    for number in {n for n, _, _ in found}:
        # an end before a start at the same instant
        events = sorted([(s, 1) for n, s, _ in found if n == number] + [(e, -1) for n, _, e in found if n == number])
        now = 0
        for _, step in events:
            now += step
            most[number] = max(most.get(number, 0), now)
    return most


def dialled(emu: AmiEmulator) -> list[str]:
    """The numbers of the emulator's Originate actions, in the order it received them."""
    return ["+" + o.get_ci("Channel").removeprefix("PJSIP/").split("@")[0] for o in emu.actions("Originate")]


async def test_hunt_with_every_line_busy_the_third_callback_waits_for_the_line_that_frees(
    emulator, perezvon_app, perezvon_client, perezvon_run_jobs, new_phone
):
    first, second = numbers = operator_numbers(2)
    emulator.set_behaviour(first, talks(140))  # ~7 s real at 20x: still talking when the second is done
    emulator.set_behaviour(second, talks(50))  # ~2.5 s real
    site = await _site(numbers, limit=1)
    started = time.monotonic()
    call_ids = await _leads(perezvon_client, site, [new_phone() for _ in range(3)])
    jobs = asyncio.create_task(perezvon_run_jobs(60))
    try:
        # while both lines are busy, one callback waits for a line: it is not dialled
        waiting_key = f"pv:lines:wait:{lines.group_key(site.id, None)}"
        deadline = time.monotonic() + 20
        while not (await perezvon_app.redis.zcard(waiting_key) == 1 and live_operators(emulator, numbers) == 2):
            assert time.monotonic() < deadline, (dialled(emulator), emulator.channels)
            assert not jobs.done(), "the jobs ended before a callback waited"
            await asyncio.sleep(0.02)
        [waiter] = [w.decode() for w in await perezvon_app.redis.zrange(waiting_key, 0, -1)]
        assert sorted(n for n in dialled(emulator) if n in numbers) == numbers  # one Originate each, no third
        held = await Call.get(id=waiter)
        assert (held.state, held.attempts_made) == (CallState.SCHEDULED, 0)
        assert not await Attempt.filter(call_id=waiter).exists()
    finally:
        await jobs
    elapsed = time.monotonic() - started

    calls = await Call.filter(id__in=call_ids)
    assert {(c.state, c.display_status, c.attempts_made) for c in calls} == {(CallState.FINISHED, "successful", 1)}
    attempts = await Attempt.filter(call_id__in=call_ids).order_by("started_at")
    assert {(a.backend, a.operator_status, a.client_status) for a in attempts} == {("asterisk", 200, 200)}

    operators = legs(emulator, numbers)
    # the first two callbacks rang the two numbers at once; the third was not dialled while both
    # were busy, and then rang the number that had freed -- skipping the first, still at its limit
    assert sorted(n for n, _, _ in operators[:2]) == numbers and len(operators) == 3
    (_, first_made, first_gone) = next(leg for leg in operators if leg[0] == first)
    (_, second_made, second_gone) = next(leg for leg in operators[:2] if leg[0] == second)
    third, third_made, _ = operators[2]
    assert third == second
    assert third_made > second_gone  # it waited for the line to free ...
    assert first_made < third_made < first_gone  # ... and skipped the line still at its limit
    assert most_at_once(operators) == {first: 1, second: 1}  # never two calls on a line of limit 1
    # the Originates the emulator received, and the attempts the engine recorded, say the same
    originated = [n for n in dialled(emulator) if n in numbers]
    assert sorted(originated[:2]) == numbers and originated[2:] == [second]
    assert sorted(a.operator_number for a in attempts[:2]) == numbers and attempts[2].operator_number == second
    assert str(attempts[2].call_id) == waiter  # the callback that waited is the one placed on the freed line
    assert elapsed < 30, elapsed


async def test_round_robin_rings_the_numbers_in_turn(emulator, perezvon_client, perezvon_run_jobs, new_phone):
    numbers = operator_numbers(3)
    for number in numbers:
        emulator.set_behaviour(number, talks(600))
    site = await _site(numbers, limit=1, strategy="round_robin")
    rung = []
    for _ in range(4):  # one at a time: every line is free each time, and still the next one rings
        client = new_phone()
        emulator.set_behaviour(client, Behaviour.human(1.0, hangup_after=30))  # a short talk: the client ends it
        [call_id] = await _leads(perezvon_client, site, [client])
        await perezvon_run_jobs(30)
        attempt = await Attempt.get(call_id=call_id)
        assert (attempt.operator_status, attempt.client_status) == (200, 200)
        rung.append(attempt.operator_number)
    expected = [numbers[0], numbers[1], numbers[2], numbers[0]]
    assert rung == expected
    operators = legs(emulator, numbers)
    assert [n for n, _, _ in operators] == expected  # what the emulated Asterisk was asked to ring
    assert [n for n in dialled(emulator) if n in numbers] == expected
    assert set(most_at_once(operators).values()) == {1}


async def test_ring_all_rings_every_free_line_and_the_first_to_answer_takes_the_callback(
    emulator, perezvon_app, perezvon_client, perezvon_run_jobs, new_phone
):
    busy, answers, late, held = numbers = operator_numbers(4)
    emulator.set_behaviour(busy, Behaviour.busy())
    emulator.set_behaviour(answers, talks(60))  # answers after 1 s (nominal) and presses 1
    emulator.set_behaviour(late, Behaviour.answers(30.0))  # would answer much later
    emulator.set_behaviour(held, Behaviour.answers(0.5))  # would answer first, if it were rung
    site = await _site(numbers, limit=1, strategy="ring_all")
    at_limit = await OperatorNumber.get(connection_id=site.id, phone=held)
    # another worker's call holds the fourth number's only line
    await perezvon_app.redis.zadd(lines.lease_key(at_limit.id), {"elsewhere:1": time.time() + 60})
    client = new_phone()
    try:
        [call_id] = await _leads(perezvon_client, site, [client])
        await perezvon_run_jobs(30)
    finally:
        await perezvon_app.redis.delete(lines.lease_key(at_limit.id))

    attempt = await Attempt.get(call_id=call_id)
    assert (attempt.operator_number, attempt.operator_status, attempt.client_status) == (answers, 200, 200)
    call = await Call.get(id=call_id)
    assert (call.state, call.display_status) == (CallState.FINISHED, "successful")
    # every free line rang at once, the one at its limit did not; the client only once one answered
    # (only this test's numbers: a redial another test left queued may fall due during the run)
    assert [n for n in dialled(emulator) if n in (*numbers, client)] == [busy, answers, late, client]
    operators = legs(emulator, numbers)
    answered_gone = next(e for n, _, e in operators if n == answers)
    late_gone = next(e for n, _, e in operators if n == late)
    assert late_gone < answered_gone  # the line still ringing was hung up, not left to ring
    hangups = {(h["Uniqueid"], h["Cause"]) for h in emulator.events_named("Hangup")}
    late_channel = next(c for c in emulator.hungup_channels if c.number == late.lstrip("+"))
    assert (late_channel.uniqueid, "26") in hangups  # cause 26: answered elsewhere
    assert not late_channel.answered
    # every line is given back, and only the line that answered is said to work
    for number in await OperatorNumber.filter(connection_id=site.id):
        assert await perezvon_app.redis.zcard(lines.lease_key(number.id)) == 0, number.phone
        assert number.failures_in_row == 0, number.phone
