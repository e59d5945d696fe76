"""A pool of PBXs (docs/asterisk.md#a-pool-of-pbxs) against two AMI emulators over real sockets:
calls spread by free capacity, a PBX going silent, refusing the login or killed mid-call is
taken out of rotation (its attempts interrupted, the next attempt on the other) and put back
when it answers again, a caller ID its trunk owns keeps a call on it, and no call is ever
dialled on both PBXs at once."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import types
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ami_emulator import AmiEmulator, Behaviour, Dtmf, User
from marshmallow import ValidationError

from perezvon.core.registry import AttemptPlan, AttemptProgress, Direction, LegStatus, Registry
from perezvon.core.schemas import TelephonySettingsSchema
from perezvon.plugins.asterisk.backend import AsteriskTelephony
from perezvon.plugins.asterisk.schemas import AsteriskSettings
from perezvon.plugins.speech.engine import EspeakEngine

SPEED = 20
SECRET = "s3cret-for-pool"
OPERATOR = "+74951234567"
CLIENT = "+79161234567"
OWNED = "+74950000001"  # a caller ID the trunk of PBX "a" owns
FAST = {
    "extension_delay_seconds": 0,
    "operator_ivr_delay_seconds": 0,
    "client_ivr_delay_seconds": 0,
    "operator_speak_seconds": 3,
    "dtmf_wait_seconds": 2,
    "ring_timeout_seconds": 5,
}
SHIPPED_USER = User.from_manager_conf(
    (Path(__file__).parent.parent / "plugins/asterisk/conf/manager_perezvon.conf").read_text(), SECRET
)


class Progress(AttemptProgress):
    async def leg_dialled(self, leg: str) -> None:
        pass


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    registry = Registry()
    registry.add_speech(EspeakEngine(tmp_path_factory.mktemp("speech-cache")))
    return registry


def new_emulator(port: int = 0) -> AmiEmulator:
    emu = AmiEmulator(
        port=port,
        username="perezvon",
        secret=SECRET,
        speed=SPEED,
        async_agi_contexts={"perezvon-leg"},
        users={"perezvon": SHIPPED_USER},
    )
    # the operator answers and presses 1 after the announcement; the client talks a while
    emu.set_behaviour(OPERATOR[1:], Behaviour.answers(1.0, hangup_after=400, dtmf=[Dtmf(40.0, "1")]))
    emu.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=60))
    return emu


@pytest.fixture
async def emulators() -> AsyncIterator[list[AmiEmulator]]:
    emus = [new_emulator(), new_emulator()]
    for emu in emus:
        await emu.start()
    yield emus
    for emu in emus:
        await emu.stop()


def make_pool(emus: list[AmiEmulator], speech: Registry, tmp_path: Path, servers: list[dict], **overrides):
    settings = AsteriskSettings().load(
        {
            "servers": [
                {"host": "127.0.0.1", "port": emu.port, "username": "perezvon", "secret": SECRET, **server}
                for emu, server in zip(emus, servers, strict=True)
            ],
            "ping_interval_seconds": 0.2,
            "ping_timeout_seconds": 0.3,
            "reconnect_min_seconds": 0.05,
            "reconnect_max_seconds": 0.4,
            "connect_wait_seconds": 3,
            "answer_wait_seconds": 2,
            **overrides,
        }
    )
    return AsteriskTelephony(settings, types.SimpleNamespace(data_dir=tmp_path), speech)


@contextlib.asynccontextmanager
async def running(backend: AsteriskTelephony, *, wait_for: tuple[str, ...] = ("a", "b")):
    await backend.start()
    try:
        for pbx in backend.pool.pbxs:
            if pbx.name in wait_for:
                await pbx.link.wait_up(5)
        yield backend
    finally:
        await backend.stop()


def plan(*, call_id: str | None = None, attempt: int = 1, caller_id_to_client: str = "") -> AttemptPlan:
    return AttemptPlan(
        call_id=call_id or str(uuid.uuid4()),
        attempt_number=attempt,
        direction=Direction.OPERATOR_FIRST,
        operator_number=OPERATOR,
        operator_extension="",
        client_number=CLIENT,
        caller_id_to_operator=CLIENT,
        caller_id_to_client=caller_id_to_client,
        operator_text="Заявка с сайта. Нажмите 1, чтобы позвонить клиенту.",
        client_text="Здравствуйте! Соединяем с оператором.",
        telephony=TelephonySettingsSchema().load({**FAST, "first_direction": Direction.OPERATOR_FIRST}),
    )


async def run(backend: AsteriskTelephony, attempt: AttemptPlan):
    return await asyncio.wait_for(backend.place_attempt(attempt, Progress()), 60)


def call_key(channel_id: str) -> str:
    """``pv-<worker>-<call>-<attempt><leg>`` -> the call's part."""
    return channel_id.split("-")[2]


def attempt_key(channel_id: str) -> str:
    return channel_id.rsplit("-", 1)[0] + "-" + channel_id.rsplit("-", 1)[1][:-1]


class Watch:
    """Samples both emulators' live channels: no call may have two attempts (or one attempt on
    two PBXs) live at once, and each PBX's calls in flight stay within its capacity."""

    def __init__(self, emus: list[AmiEmulator]) -> None:
        self.emus = emus
        self.overlaps: list[str] = []
        self.peak: list[int] = [0] * len(emus)
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            seen: dict[str, set[tuple[int, str]]] = {}
            for i, emu in enumerate(self.emus):
                attempts = {attempt_key(c.uniqueid) for c in emu.channels.values() if c.uniqueid.startswith("pv-")}
                self.peak[i] = max(self.peak[i], len(attempts))
                for key in attempts:
                    seen.setdefault(call_key(key), set()).add((i, key))
            self.overlaps += [call for call, where in seen.items() if len(where) > 1]
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def originated(emu: AmiEmulator, attempt: AttemptPlan) -> int:
    tag = f"{attempt.call_id.replace('-', '')[:20]}-{attempt.attempt_number}"
    return sum(1 for a in emu.actions("Originate") if tag in a.get_ci("ChannelId", ""))


async def until(predicate, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_calls_spread_over_both_by_free_capacity(emulators, speech, tmp_path):
    a, b = emulators
    backend = make_pool(
        emulators,
        speech,
        tmp_path,
        [{"name": "a", "capacity": 3}, {"name": "b", "capacity": 1}],
        connect_wait_seconds=20,
    )
    async with running(backend):
        watch = Watch(emulators)
        plans = [plan() for _ in range(4)]
        tasks = [asyncio.ensure_future(run(backend, p)) for p in plans]
        # a fifth finds every line taken: it waits for one to free up rather than overload a PBX
        await until(lambda: sum(p.in_use for p in backend.pool.pbxs) == 4)
        assert [p.in_use for p in backend.pool.pbxs] == [3, 1]
        late = plan()
        fifth = asyncio.ensure_future(run(backend, late))
        outcomes = await asyncio.gather(*tasks, fifth)
        await watch.stop()
        assert [(o.operator_status, o.client_status, o.note) for o in outcomes] == [(200, 200, "")] * 5
        assert sorted(originated(a, p) for p in plans) == [0, 2, 2, 2]
        assert sorted(originated(b, p) for p in plans) == [0, 0, 0, 2]
        assert originated(a, late) + originated(b, late) == 2
        assert watch.peak[0] <= 3 and watch.peak[1] <= 1 and not watch.overlaps
        assert [p.in_use for p in backend.pool.pbxs] == [0, 0]
        states = {s["name"]: s for s in backend.servers()}
        assert states["a"]["state"] == states["b"]["state"] == "ok"
        assert (states["a"]["capacity"], states["b"]["capacity"]) == (3, 1)


async def test_all_lines_taken_and_no_wait_ends_as_unreachable(emulators, speech, tmp_path):
    backend = make_pool(
        emulators,
        speech,
        tmp_path,
        [{"name": "a", "capacity": 1}, {"name": "b", "capacity": 1}],
        connect_wait_seconds=0,
    )
    async with running(backend):
        first, second = asyncio.ensure_future(run(backend, plan())), asyncio.ensure_future(run(backend, plan()))
        await until(lambda: sum(p.in_use for p in backend.pool.pbxs) == 2)
        outcome = await run(backend, plan())
        assert outcome.operator_status == LegStatus.UNAVAILABLE_SERVICE
        assert "capacity" in outcome.note and "a 1/1" in outcome.note
        await asyncio.gather(first, second)


async def test_a_silent_pbx_is_taken_out_and_its_call_redialled_on_the_other(emulators, speech, tmp_path):
    a, b = emulators
    # the operator on the silent PBX hangs up after a short talk (the PBX runs on, unheard)
    a.set_behaviour(OPERATOR[1:], Behaviour.answers(1.0, hangup_after=120, dtmf=[Dtmf(40.0, "1")]))
    backend = make_pool(emulators, speech, tmp_path, [{"name": "a"}, {"name": "b"}])
    async with running(backend):
        watch = Watch(emulators)
        first = plan()
        task = asyncio.ensure_future(run(backend, first))
        await until(lambda: any(x.get_ci("Command", "").startswith("EXEC Bridge") for x in a.actions("AGI")))
        a.go_silent()
        outcome = await task  # ends within the ping interval + timeout, not when the call would
        assert outcome.operator_status == LegStatus.SERVER_ERROR
        assert "interrupted" in outcome.note and "PBX a" in outcome.note and "silent" in outcome.note
        states = {s["name"]: s for s in backend.servers()}
        # silent, then (reconnecting) "did not answer the AMI login" until it speaks again
        assert states["a"]["state"] == "down" and "answer" in states["a"]["reason"]
        assert await backend.health() is None  # b still carries calls
        # the redial matrix's next attempt comes later (its period); by then the talk on the
        # silent PBX has ended by itself (docs/asterisk.md: a partitioned PBX's calls go on)
        await until(lambda: not a.channels, timeout=20)
        again = dataclasses.replace(first, attempt_number=2)
        outcome = await run(backend, again)
        assert (outcome.operator_status, outcome.client_status) == (200, 200)
        assert originated(b, again) == 2 and originated(a, again) == 0
        a.resume()  # answers again: back in rotation
        await backend.pool.pbxs[0].link.wait_up(5)
        assert {s["name"]: s["state"] for s in backend.servers()} == {"a": "ok", "b": "ok"}
        both = [plan(), plan()]
        await asyncio.gather(*(run(backend, p) for p in both))
        assert sorted((originated(a, p), originated(b, p)) for p in both) == [(0, 2), (2, 0)]
        await watch.stop()
        assert not watch.overlaps


async def test_a_pbx_refusing_the_login_is_never_used_and_reported(emulators, speech, tmp_path):
    a, b = emulators
    backend = make_pool(emulators, speech, tmp_path, [{"name": "a"}, {"name": "b", "secret": "wrong"}])
    async with running(backend, wait_for=("a",)):
        await until(lambda: "refused the AMI login" in backend.pool.pbxs[1].link.error)
        outcomes = await asyncio.gather(*(run(backend, plan()) for _ in range(3)))
        assert all((o.operator_status, o.client_status) == (200, 200) for o in outcomes)
        assert b.actions("Originate") == [] and len(a.actions("Originate")) == 6
        assert b.actions("Login")  # it was tried, and refused ("Authentication failed")
        state = {s["name"]: s for s in backend.servers()}["b"]
        assert state["state"] == "down" and "check username and secret" in state["reason"]
        assert await backend.health() is None


async def test_a_caller_id_owned_by_a_trunk_goes_out_only_there(emulators, speech, tmp_path):
    a, b = emulators
    backend = make_pool(
        emulators,
        speech,
        tmp_path,
        [{"name": "a", "caller_ids": [OWNED]}, {"name": "b", "secret": "wrong"}],
        connect_wait_seconds=0.5,
    )
    async with running(backend, wait_for=("a",)):
        owned = plan(caller_id_to_client=OWNED)
        busy = asyncio.ensure_future(run(backend, plan()))  # a carries one call already: b would be freer
        await until(lambda: backend.pool.pbxs[0].in_use == 1)
        outcome = await run(backend, owned)
        assert (outcome.operator_status, outcome.client_status) == (200, 200)
        assert originated(a, owned) == 2
        await busy
    # the owner down: the call waits, then ends "unreachable" naming it -- never through another trunk
    backend = make_pool(
        emulators,
        speech,
        tmp_path,
        [{"name": "a", "caller_ids": [OWNED], "secret": "wrong"}, {"name": "b"}],
        connect_wait_seconds=0.5,
    )
    async with running(backend, wait_for=("b",)):
        await until(lambda: "refused" in backend.pool.pbxs[0].link.error)
        owned = plan(caller_id_to_client=OWNED)
        outcome = await run(backend, owned)
        assert outcome.operator_status == LegStatus.UNAVAILABLE_SERVICE
        assert "a: Asterisk at 127.0.0.1" in outcome.note and "refused the AMI login" in outcome.note
        assert originated(b, owned) == 0


async def test_a_pbx_killed_mid_call_is_taken_out_and_put_back_when_it_answers(emulators, speech, tmp_path):
    a, b = emulators
    backend = make_pool(emulators, speech, tmp_path, [{"name": "a"}, {"name": "b"}])
    async with running(backend):
        watch = Watch(emulators)
        first = plan()
        task = asyncio.ensure_future(run(backend, first))
        await until(lambda: any(x.get_ci("Command", "").startswith("EXEC Bridge") for x in a.actions("AGI")))
        port = a.port
        await a.stop()  # killed: its sockets reset, its calls gone with it
        watch.emus = [b]  # (the stopped emulator's table of channels is not cleared: nothing is live there)
        outcome = await task
        assert outcome.operator_status == LegStatus.SERVER_ERROR
        assert "interrupted" in outcome.note and "PBX a" in outcome.note
        assert {s["name"]: s["state"] for s in backend.servers()} == {"a": "down", "b": "ok"}
        again = dataclasses.replace(first, attempt_number=2)
        outcome = await run(backend, again)
        assert (outcome.operator_status, outcome.client_status) == (200, 200)
        assert originated(b, again) == 2
        revived = new_emulator(port)  # the PBX is back on its address
        await revived.start()
        try:
            watch.emus = [revived, b]
            await backend.pool.pbxs[0].link.wait_up(5)
            both = [plan(), plan()]
            await asyncio.gather(*(run(backend, p) for p in both))
            assert sorted((originated(revived, p), originated(b, p)) for p in both) == [(0, 2), (2, 0)]
        finally:
            await watch.stop()
            await revived.stop()
        assert not watch.overlaps


def test_settings_of_a_pool():
    one = AsteriskSettings().load({"username": "perezvon", "secret": "x"})
    assert one["servers"] == [] and one["capacity"] == 0
    pool = AsteriskSettings().load(
        {"servers": [{"name": "a", "host": "10.0.0.5", "username": "u", "secret": "s", "capacity": 200}]}
    )
    assert pool["servers"][0]["dial_string"] is None  # taken from [plugins.asterisk]
    with pytest.raises(ValidationError) as missing:
        AsteriskSettings().load({})
    assert set(missing.value.messages) == {"username"}
    server = {"host": "h", "username": "u", "secret": "s"}
    with pytest.raises(ValidationError):
        AsteriskSettings().load({"servers": [{**server, "name": "a"}, {**server, "name": "a"}]})
    with pytest.raises(ValidationError):  # one caller ID, one trunk
        AsteriskSettings().load(
            {
                "servers": [
                    {**server, "name": "a", "caller_ids": [OWNED]},
                    {**server, "name": "b", "caller_ids": [OWNED]},
                ]
            }
        )
    with pytest.raises(ValidationError):
        AsteriskSettings().load({"servers": [{**server, "name": "a", "dial_string": "PJSIP/{number}@t;x"}]})
    with pytest.raises(ValidationError):
        AsteriskSettings().load({"servers": [{**server, "name": "a", "caller_ids": ["84951234567"]}]})


def test_healthz_shows_each_pbx_of_the_pool(tmp_path):
    """`perezvon serve` with a pool of two, one refusing the login: /healthz says the telephony is
    ok (one PBX carries calls) and lists both, the refused one with its reason; a lead is called back."""
    import time

    from test_asterisk import EmulatorThread
    from test_cli import demo_env, running_server

    kwargs = {"username": "perezvon", "secret": SECRET, "speed": SPEED, "async_agi_contexts": {"perezvon-leg"}}
    with EmulatorThread(**kwargs) as good, EmulatorThread(**kwargs) as refusing:
        good.set_behaviour(OPERATOR[1:], Behaviour.answers(1.0, hangup_after=400, dtmf=[Dtmf(40.0, "1")]))
        good.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=40))
        (tmp_path / "plugins.toml").write_text(f"""
[perezvon]
telephony = "asterisk"

[plugins.asterisk]
enabled = true
ping_interval_seconds = 0.5
ping_timeout_seconds = 0.5

[[plugins.asterisk.servers]]
name = "office"
host = "127.0.0.1"
port = {refusing.port}
username = "perezvon"
secret = "not-the-secret"

[[plugins.asterisk.servers]]
name = "dc"
host = "127.0.0.1"
port = {good.port}
username = "perezvon"
secret = "{SECRET}"
capacity = 50

[plugins.speech]
enabled = true
""")
        env = {**demo_env(tmp_path), "PEREZVON_PLUGINS": str(tmp_path / "plugins.toml")}
        with running_server(env, tmp_path) as (base_url, demo, client):
            deadline = time.monotonic() + 30
            while True:
                report = client.get(f"{base_url}/healthz").json()
                pbxs = {p["name"]: p for p in report.get("pbxs") or []}
                if report["telephony"] == "ok" and "refused" in pbxs.get("office", {}).get("reason", ""):
                    break
                assert time.monotonic() < deadline, report
                time.sleep(0.1)
            assert pbxs["dc"]["state"] == "ok" and pbxs["dc"]["capacity"] == 50
            assert pbxs["dc"]["host"] == f"127.0.0.1:{good.port}"
            assert pbxs["office"]["state"] == "down" and "check username and secret" in pbxs["office"]["reason"]
            created = client.post(
                f"{base_url}/api/v1/leads",
                headers={"Origin": "http://localhost:3000"},
                json={"token": demo["site_token"], "phone": CLIENT, "consent": True},
            )
            assert created.status_code == 201, created.text
            state_url = f"{base_url}/api/v1/calls/{created.json()['call_id']}/state"
            deadline = time.monotonic() + 40
            while not (state := client.get(state_url, params={"token": demo["site_token"]}).json())["finished"]:
                assert time.monotonic() < deadline, state
                time.sleep(0.2)
            assert state["status"] == "successful"
        assert refusing.actions("Originate") == [] and len(good.actions("Originate")) == 2


async def test_one_server_with_a_capacity_is_a_pool_of_one(emulators, speech, tmp_path):
    a, _ = emulators
    settings = AsteriskSettings().load(
        {
            "port": a.port,
            "username": "perezvon",
            "secret": SECRET,
            "capacity": 1,
            "connect_wait_seconds": 0,
            "ping_interval_seconds": 0.2,
            "ping_timeout_seconds": 0.3,
        }
    )
    backend = AsteriskTelephony(settings, types.SimpleNamespace(data_dir=tmp_path), speech)
    await backend.start()
    try:
        await backend.link.wait_up(5)
        first = asyncio.ensure_future(run(backend, plan()))
        await until(lambda: backend.pool.pbxs[0].in_use == 1)
        outcome = await run(backend, plan())
        assert outcome.operator_status == LegStatus.UNAVAILABLE_SERVICE
        assert outcome.note == "no free line: Asterisk is at its capacity: 1/1 calls"
        assert ((await first).operator_status, len(a.actions("Originate"))) == (200, 2)
        assert backend.servers()[0]["name"] == "asterisk" and await backend.health() is None
    finally:
        await backend.stop()
