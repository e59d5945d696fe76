"""The Asterisk backend against the AMI emulator: every leg status of docs/calls.md#leg-statuses, both directions,
every DTMF command, recordings, and the link's faults (drop, silence, refused login,
lost Originate answer, missing dialplan).

The emulator (tests/ami_emulator, docs/ami-emulator.md) speaks AMI over a real TCP
socket and runs the shipped ``perezvon-leg`` context's Async AGI; the announcements
are real eSpeak NG audio whose length the emulator plays out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import types
import uuid
import wave
from pathlib import Path

import pytest
from ami_emulator import AmiEmulator, Behaviour, CallHandle, Dtmf, User

from perezvon.core.registry import AttemptPlan, AttemptProgress, Direction, LegStatus, Registry
from perezvon.core.schemas import TelephonySettingsSchema
from perezvon.plugins.asterisk.backend import AsteriskTelephony
from perezvon.plugins.asterisk.link import LinkDown
from perezvon.plugins.asterisk.schemas import AsteriskSettings
from perezvon.plugins.speech.engine import EspeakEngine

SPEED = 20  # emulated phones and Asterisk run 20x faster than life
SECRET = "s3cret-for-tests"
OPERATOR = "+74951234567"
CLIENT = "+79161234567"
#: what the scenario waits for, in real seconds: short, so the suite stays quick
FAST = {
    "extension_delay_seconds": 0,
    "operator_ivr_delay_seconds": 0,
    "client_ivr_delay_seconds": 0,
    "operator_speak_seconds": 3,
    "dtmf_wait_seconds": 2,
    "ring_timeout_seconds": 5,
}
HOSTILE_NAME = 'Иван"; Hangup(); \nAction: Originate <script>'


class Progress(AttemptProgress):
    def __init__(self) -> None:
        self.dialled: list[str] = []

    async def leg_dialled(self, leg: str) -> None:
        self.dialled.append(leg)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    registry = Registry()
    registry.add_speech(EspeakEngine(tmp_path_factory.mktemp("speech-cache")))
    return registry


#: the AMI user the plugin ships: the tests run with exactly its permissions
SHIPPED_USER = User.from_manager_conf(
    (Path(__file__).parent.parent / "plugins/asterisk/conf/manager_perezvon.conf").read_text(), SECRET
)


@pytest.fixture
async def emulator():
    emu = AmiEmulator(
        username="perezvon",
        secret=SECRET,
        speed=SPEED,
        async_agi_contexts={"perezvon-leg"},
        users={"perezvon": SHIPPED_USER},
    )
    await emu.start()
    yield emu
    await emu.stop()


def make_backend(emu: AmiEmulator, registry: Registry, tmp_path: Path, **overrides) -> AsteriskTelephony:
    settings = AsteriskSettings().load(
        {
            "host": "127.0.0.1",
            "port": emu.port,
            "username": "perezvon",
            "secret": SECRET,
            "ping_interval_seconds": 0.2,
            "ping_timeout_seconds": 0.3,
            "reconnect_min_seconds": 0.05,
            "reconnect_max_seconds": 0.4,
            "connect_wait_seconds": 3,
            "answer_wait_seconds": 2,
            **overrides,
        }
    )
    return AsteriskTelephony(settings, types.SimpleNamespace(data_dir=tmp_path), registry)


@pytest.fixture
async def backend(emulator, speech, tmp_path):
    telephony = make_backend(emulator, speech, tmp_path)
    await telephony.start()
    await telephony.link.wait_up(5)
    yield telephony
    await telephony.stop()


def plan(direction: str = Direction.OPERATOR_FIRST, *, extension: str = "", **telephony) -> AttemptPlan:
    return AttemptPlan(
        call_id=str(uuid.uuid4()),
        attempt_number=1,
        direction=direction,
        operator_number=OPERATOR,
        operator_extension=extension,
        client_number=CLIENT,
        caller_id_to_operator=CLIENT,
        caller_id_to_client="",
        operator_text=f"Заявка с сайта пример точка ру. Клиент {HOSTILE_NAME}. Нажмите 1, чтобы позвонить клиенту.",
        client_text="Здравствуйте! Оставайтесь на линии, соединяем с оператором.",
        telephony=TelephonySettingsSchema().load({**FAST, "first_direction": direction, **telephony}),
    )


def operator_presses(*digits: str, start: float = 40.0, hangup_after: float | None = 400.0) -> Behaviour:
    """An operator who answers and presses ``digits`` well after the announcement has played."""
    return Behaviour.answers(
        1.0, hangup_after=hangup_after, dtmf=[Dtmf(start + 12 * i, d) for i, d in enumerate(digits)]
    )


def agi_commands(emu: AmiEmulator, leg: str) -> list[str]:
    channel = next(
        (c.name for c in emu.hungup_channels + list(emu.channels.values()) if c.uniqueid.endswith(leg)), None
    )
    return [a.get_ci("Command") for a in emu.actions("AGI") if a.get_ci("Channel") == channel]


async def run(backend: AsteriskTelephony, attempt: AttemptPlan, progress: Progress | None = None):
    return await asyncio.wait_for(backend.place_attempt(attempt, progress or Progress()), 60)


# --------------------------------------------------------------------------- operator first
async def test_a_callback_rings_the_operator_announces_then_joins_the_client(emulator, backend):
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1"))
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=60))
    progress = Progress()
    outcome = await run(backend, plan(), progress)

    assert (outcome.operator_status, outcome.client_status) == (200, 200)
    assert progress.dialled == ["operator", "client"]
    assert 1 <= outcome.conversation_seconds <= 6  # 60 s nominal at 20x, plus AMD
    originates = emulator.actions("Originate")
    assert [o.get_ci("Channel") for o in originates] == ["PJSIP/74951234567@trunk", "PJSIP/79161234567@trunk"]
    assert {o.get_ci("Context") for o in originates} == {"perezvon-leg"}
    assert [o.get_ci("Async") for o in originates] == ["true", "true"]
    assert originates[0].get_ci("CallerID") == "79161234567"  # the operator sees the client's number
    assert originates[0].get_ci("ChannelId").endswith("o") and originates[1].get_ci("ChannelId").endswith("c")
    operator_commands = agi_commands(emulator, "o")
    assert operator_commands[0].startswith("STREAM FILE ") and operator_commands[0].endswith(' ""')
    assert any(c.startswith("EXEC MixMonitor ") for c in operator_commands)
    client_name = next(c.name for c in emulator.hungup_channels if c.uniqueid.endswith("c"))
    assert f"EXEC Bridge {client_name},x" in operator_commands
    assert operator_commands[-1] == "GET VARIABLE BRIDGERESULT"
    assert "EXEC AMD" in agi_commands(emulator, "c")
    # the recording is in the platform's storage, a real WAV of about the talk time
    assert outcome.recording is not None and outcome.recording.is_relative_to(backend.data_dir / "recordings")
    with wave.open(str(outcome.recording)) as recording:
        seconds = recording.getnframes() / recording.getframerate()
    assert 40 <= seconds <= 70  # nominal seconds, as the emulated Asterisk wrote them
    assert not emulator.channels  # nothing left up


async def test_the_announcement_is_real_audio_played_to_its_end(emulator, backend):
    emulator.set_behaviour(OPERATOR[1:], operator_presses("2"))  # cancels: only the announcement matters
    await run(backend, plan())
    stream = next(c for c in agi_commands(emulator, "o") if c.startswith("STREAM FILE"))
    path = Path(stream.split()[2] + ".wav")
    assert path.parent == backend.sounds_dir
    with wave.open(str(path)) as audio:
        assert (audio.getframerate(), audio.getnchannels(), audio.getsampwidth()) == (8000, 1, 2)
        assert 3 < audio.getnframes() / 8000 < 30  # a sentence of Russian speech
    execs = [e for e in emulator.events_named("AsyncAGIExec") if "STREAM" not in e.get("Result", "")]
    assert any("endpos%3D" in e.get("Result", "") for e in execs)  # played to the end, not refused


@pytest.mark.parametrize(
    ("behaviour", "status"),
    [
        (Behaviour.busy(), 486),
        (Behaviour.unavailable(), 480),
        (Behaviour.declines(1.0), 603),
        (Behaviour.unallocated(), 404),
        (Behaviour.no_answer(), 480),
        (Behaviour.congestion(), 503),
        (Behaviour.rejects(408), 408),
        (Behaviour.rejects(487, ring_after=0.2), 487),
    ],
)
async def test_an_operator_leg_that_fails_gives_its_sip_status(emulator, backend, behaviour, status):
    emulator.set_behaviour(OPERATOR[1:], behaviour)
    outcome = await run(backend, plan())
    assert (outcome.operator_status, outcome.client_status) == (status, None)
    assert len(emulator.actions("Originate")) == 1  # the client is never rung


@pytest.mark.parametrize(
    ("behaviour", "status"),
    [
        (Behaviour.busy(), 486),
        (Behaviour.unavailable(), 480),
        (Behaviour.declines(1.0), 603),
        (Behaviour.unallocated(), 404),
        (Behaviour.no_answer(), 480),
    ],
)
async def test_a_client_leg_that_fails_gives_its_sip_status(emulator, backend, behaviour, status):
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1"))
    emulator.set_behaviour(CLIENT[1:], behaviour)
    outcome = await run(backend, plan())
    assert (outcome.operator_status, outcome.client_status) == (200, status)
    assert not emulator.channels


async def test_older_asterisk_without_techcause_maps_the_q850_cause(speech, tmp_path):
    emu = AmiEmulator(
        username="perezvon",
        secret=SECRET,
        speed=SPEED,
        asterisk_version=(20, 5, 0),
        async_agi_contexts={"perezvon-leg"},
    )
    await emu.start()
    telephony = make_backend(emu, speech, tmp_path)
    await telephony.start()
    try:
        for behaviour, status in (
            (Behaviour.busy(), 486),
            (Behaviour.declines(1.0), 603),
            (Behaviour.no_answer(), 480),
            (Behaviour.unallocated(), 404),
            (Behaviour.rejects(408), 408),
        ):
            emu.set_behaviour(OPERATOR[1:], behaviour)
            outcome = await run(telephony, plan())
            assert outcome.operator_status == status, behaviour
        assert all("TechCause" not in e for e in emu.events_named("Hangup"))
    finally:
        await telephony.stop()
        await emu.stop()


async def test_cancel_client_key_ends_with_201(emulator, backend):
    emulator.set_behaviour(OPERATOR[1:], operator_presses("2"))
    outcome = await run(backend, plan())
    assert (outcome.operator_status, outcome.client_status) == (201, None)
    assert len(emulator.actions("Originate")) == 1


async def test_repeat_info_plays_the_announcement_again(emulator, backend):
    emulator.set_behaviour(OPERATOR[1:], operator_presses("0", "1", start=30))
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=10))
    outcome = await run(backend, plan(operator_speak_seconds=5))
    assert (outcome.operator_status, outcome.client_status) == (200, 200)
    streams = [c for c in agi_commands(emulator, "o") if c.startswith("STREAM FILE")]
    assert len(streams) == 2 and streams[0] == streams[1]


async def test_no_key_in_the_speak_time_gives_202_when_interrupting(emulator, backend):
    emulator.set_behaviour(OPERATOR[1:], operator_presses())
    outcome = await run(backend, plan(operator_speak_seconds=1))
    assert (outcome.operator_status, outcome.client_status) == (202, None)


async def test_no_key_without_interrupt_goes_on_to_the_client(emulator, backend):
    emulator.set_behaviour(OPERATOR[1:], operator_presses())
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=30))  # past the greeting
    outcome = await run(backend, plan(operator_speak_seconds=1, interrupt_operator_call=False))
    assert (outcome.operator_status, outcome.client_status) == (200, 200)


async def test_the_extension_is_sent_as_dtmf_to_the_operator(emulator, backend):
    emulator.set_behaviour(OPERATOR[1:], operator_presses("2"))
    await run(backend, plan(extension="123#"))
    assert agi_commands(emulator, "o")[0] == "EXEC SendDTMF 123#"
    sent = [e["Digit"] for e in emulator.events_named("DTMFEnd") if e["Direction"] == "Sent"]
    assert sent == ["1", "2", "3", "#"]


async def test_the_call_tracking_tag_is_sent_as_dtmf_after_the_extension(emulator, backend):
    emulator.set_behaviour(OPERATOR[1:], operator_presses("2"))
    await run(backend, dataclasses.replace(plan(extension="105"), operator_dtmf_tag="12"))
    assert agi_commands(emulator, "o")[:2] == ["EXEC SendDTMF 105", "EXEC SendDTMF 12"]
    sent = [e["Digit"] for e in emulator.events_named("DTMFEnd") if e["Direction"] == "Sent"]
    assert sent == ["1", "0", "5", "1", "2"]  # what Calltouch hears on the line


async def test_operator_first_greets_the_client_before_the_bridge(emulator, backend):
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1"))
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=30))
    outcome = await run(backend, plan())
    assert (outcome.operator_status, outcome.client_status) == (200, 200)
    client = agi_commands(emulator, "c")
    greeting = next(i for i, c in enumerate(client) if c.startswith("STREAM FILE "))
    assert client.index("EXEC AMD") < greeting  # a person answered, then hears the "to the client" parts
    assert any(c.startswith("EXEC Bridge ") for c in agi_commands(emulator, "o"))  # then both are joined


async def test_a_tag_asterisk_would_misread_is_never_sent(emulator, backend):
    # "1,9" would reach SendDTMF as the digit 1 and a 9 ms pause; a tag is digits, * and # only
    emulator.set_behaviour(OPERATOR[1:], operator_presses("2"))
    await run(backend, dataclasses.replace(plan(), operator_dtmf_tag="1,9"))
    assert not [c for c in agi_commands(emulator, "o") if c.startswith("EXEC SendDTMF")]
    assert not [e for e in emulator.events_named("DTMFEnd") if e["Direction"] == "Sent"]


async def test_a_client_voicemail_gives_203(emulator, backend):
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1"))
    emulator.set_behaviour(CLIENT[1:], Behaviour.answering_machine(1.0))
    outcome = await run(backend, plan())
    assert (outcome.operator_status, outcome.client_status) == (200, 203)
    assert not any(c.startswith("EXEC Bridge") for c in agi_commands(emulator, "o"))


async def test_voicemail_detection_off_joins_whoever_answered(emulator, backend):
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1"))
    emulator.set_behaviour(CLIENT[1:], Behaviour.answering_machine(1.0, hangup_after=10))
    outcome = await run(backend, plan(detect_voicemail=False))
    assert (outcome.operator_status, outcome.client_status) == (200, 200)
    assert "EXEC AMD" not in agi_commands(emulator, "c")


async def test_the_operator_hanging_up_while_the_client_rings_gives_204(emulator, backend):
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1", hangup_after=60))
    emulator.set_behaviour(CLIENT[1:], Behaviour.no_answer())
    outcome = await run(backend, plan(ring_timeout_seconds=30))
    assert (outcome.operator_status, outcome.client_status) == (204, 487)
    assert not emulator.channels  # the ringing client leg was cancelled


async def test_the_operator_hanging_up_during_the_announcement_gives_204(emulator, backend):
    emulator.set_behaviour(OPERATOR[1:], Behaviour.answers(1.0, hangup_after=1.5))
    outcome = await run(backend, plan())
    assert (outcome.operator_status, outcome.client_status) == (204, None)


async def test_the_client_hanging_up_ends_the_conversation(emulator, backend):
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1"))
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=30))
    outcome = await run(backend, plan(record=False))
    assert (outcome.operator_status, outcome.client_status) == (200, 200)
    assert outcome.recording is None
    assert not any(c.startswith("EXEC MixMonitor") for c in agi_commands(emulator, "o"))
    assert not emulator.channels


async def test_the_client_hanging_up_as_the_recording_starts_is_the_client_leaving(emulator, backend):
    """A hang-up between the recording's start and the join: nobody talked, and the attempt says who
    left (it used to escape the scenario as a failure of the telephony backend)."""
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1"))
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=400))
    add_command = emulator.agi.add_command

    def client_leaves_at_mixmonitor(name: str, command: str, command_id: str) -> str | None:
        if not command.startswith("EXEC MixMonitor"):
            return add_command(name, command, command_id)
        client = next(c for c in emulator.channels.values() if c.uniqueid.endswith("c"))
        CallHandle(emulator, client).hangup()  # the far end's BYE
        # a busy PBX: the command is queued (the action's answer is Success) and runs a moment later,
        # so the client's Hangup reaches the backend while it waits for the command's result
        asyncio.get_running_loop().call_later(0.2, add_command, name, command, command_id)
        return None

    emulator.agi.add_command = client_leaves_at_mixmonitor
    outcome = await run(backend, plan(record=True))
    assert (outcome.operator_status, outcome.client_status) == (200, 204)
    assert outcome.conversation_seconds == 0
    assert not any(c.startswith("EXEC Bridge") for c in agi_commands(emulator, "o"))
    assert not emulator.channels


# --------------------------------------------------------------------------- client first
async def test_client_first_rings_the_client_then_the_operator(emulator, backend):
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=400))
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1", start=30, hangup_after=60))
    progress = Progress()
    outcome = await run(backend, plan(Direction.CLIENT_FIRST), progress)
    assert (outcome.operator_status, outcome.client_status) == (200, 200)
    assert progress.dialled == ["client", "operator"]
    assert agi_commands(emulator, "c")[0] == "EXEC AMD"
    assert any(c.startswith("STREAM FILE") for c in agi_commands(emulator, "c"))  # "stay on the line"
    assert not emulator.channels


async def test_client_first_cancel_operator_key_gives_201(emulator, backend):
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=400, dtmf=[Dtmf(40, "9")]))
    outcome = await run(
        backend, plan(Direction.CLIENT_FIRST, cancel_operator={"on": True, "key": "9"}, dtmf_wait_seconds=5)
    )
    assert (outcome.operator_status, outcome.client_status) == (None, 201)
    assert len(emulator.actions("Originate")) == 1


async def test_client_first_client_leaving_while_the_operator_rings_gives_204(emulator, backend):
    # the client's announcement ends ~8 s (nominal) after the answer; the operator rings from then on
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=20))
    emulator.set_behaviour(OPERATOR[1:], Behaviour.no_answer())
    outcome = await run(backend, plan(Direction.CLIENT_FIRST, ring_timeout_seconds=30))
    assert (outcome.operator_status, outcome.client_status) == (487, 204)


@pytest.mark.parametrize(
    ("behaviour", "status"),
    [(Behaviour.busy(), 486), (Behaviour.no_answer(), 480), (Behaviour.answering_machine(1.0), 203)],
)
async def test_client_first_client_failures(emulator, backend, behaviour, status):
    emulator.set_behaviour(CLIENT[1:], behaviour)
    outcome = await run(backend, plan(Direction.CLIENT_FIRST))
    assert (outcome.operator_status, outcome.client_status) == (None, status)


async def test_client_first_operator_busy(emulator, backend):
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=400))
    emulator.set_behaviour(OPERATOR[1:], Behaviour.busy())
    outcome = await run(backend, plan(Direction.CLIENT_FIRST))
    assert (outcome.operator_status, outcome.client_status) == (486, 200)
    assert not emulator.channels  # the waiting client is not left on the line


# --------------------------------------------------------------------------- announcements and waiting
RECORDED = "Внимание! Разговор записывается."


def streams(emu: AmiEmulator, leg: str) -> list[str]:
    return [c for c in agi_commands(emu, leg) if c.startswith("STREAM FILE ")]


async def notice_file(backend: AsteriskTelephony) -> str:
    return f'STREAM FILE {await backend.sound(RECORDED, "female")} ""'


@pytest.mark.parametrize(
    ("who", "operator_hears", "client_hears"),
    [("operator", True, False), ("client", False, True), ("both", True, True), ("nobody", False, False)],
)
async def test_the_recorded_call_notice_is_played_to_whom_it_is_for(
    emulator, backend, who, operator_hears, client_hears
):
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1"))
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=60))
    attempt = dataclasses.replace(plan(recorded_notice=who), recorded_notice="" if who == "nobody" else RECORDED)
    outcome = await run(backend, attempt)
    assert (outcome.operator_status, outcome.client_status) == (200, 200)
    notice = await notice_file(backend)
    operator, client = agi_commands(emulator, "o"), agi_commands(emulator, "c")
    assert (notice in operator, notice in client) == (operator_hears, client_hears)
    bridge = next(i for i, c in enumerate(operator) if c.startswith("EXEC Bridge "))
    if operator_hears:  # after the details, before the two are joined
        assert streams(emulator, "o")[-1] == notice and operator.index(notice) < bridge
    if client_hears:  # after the greeting
        assert streams(emulator, "c")[-1] == notice and len(streams(emulator, "c")) == 2
    played = [e for e in emulator.events_named("AGIExecEnd") if e["Command"] == notice]
    assert len(played) == operator_hears + client_hears and all(e["ResultCode"] == "200" for e in played)


async def test_the_recorded_call_notice_in_client_first(emulator, backend):
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=400))
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1", start=30, hangup_after=60))
    attempt = dataclasses.replace(plan(Direction.CLIENT_FIRST, recorded_notice="client"), recorded_notice=RECORDED)
    outcome = await run(backend, attempt)
    assert (outcome.operator_status, outcome.client_status) == (200, 200)
    notice = await notice_file(backend)
    assert streams(emulator, "c")[-1] == notice  # after "stay on the line", before the bridge
    assert notice not in agi_commands(emulator, "o")


async def test_client_first_plays_hold_music_to_the_client_while_the_operator_is_rung(emulator, backend):
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=400))
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1", start=30, hangup_after=60))
    progress = Progress()
    outcome = await run(backend, plan(Direction.CLIENT_FIRST, hold_music=True, hold_music_class="sales"), progress)
    assert (outcome.operator_status, outcome.client_status) == (200, 200)
    client = agi_commands(emulator, "c")
    # after "stay on the line", the music until just before the bridge; never on the operator
    assert client[-2:] == ["SET MUSIC ON sales", "SET MUSIC OFF"]
    assert client.index("SET MUSIC ON sales") > client.index(streams(emulator, "c")[-1])
    assert not [c for c in agi_commands(emulator, "o") if c.startswith("SET MUSIC")]
    # the emulated Asterisk has no "sales" class: it played "default", from before the
    # operator's Originate to after the operator's key
    (music,) = emulator.agi.music
    assert (music["class"], music["asked"], music["stopped_by"]) == ("default", "sales", "SET MUSIC OFF")
    names = [e["Event"] for e in emulator.events if e["Event"] in ("MusicOnHoldStart", "MusicOnHoldStop", "DTMFEnd")]
    assert names[0] == "MusicOnHoldStart" and names[-1] == "MusicOnHoldStop" and "DTMFEnd" in names
    operator_originate = emulator.actions("Originate")[1]
    started = next(e for e in emulator.events if e["Event"] == "MusicOnHoldStart")
    assert emulator.events.index(started) < next(
        i
        for i, e in enumerate(emulator.events)
        if e["Event"] == "Newchannel" and e.get("Uniqueid") == operator_originate.get_ci("ChannelId")
    )
    assert progress.dialled == ["client", "operator"]


async def test_hold_music_and_notice_together_in_client_first(emulator, backend):
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=400))
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1", start=30, hangup_after=60))
    attempt = dataclasses.replace(
        plan(Direction.CLIENT_FIRST, hold_music=True, recorded_notice="both"), recorded_notice=RECORDED
    )
    outcome = await run(backend, attempt)
    assert (outcome.operator_status, outcome.client_status) == (200, 200)
    notice = await notice_file(backend)
    assert agi_commands(emulator, "c")[-3:] == ["SET MUSIC ON default", "SET MUSIC OFF", notice]
    assert notice in agi_commands(emulator, "o")
    assert [m["class"] for m in emulator.agi.music] == ["default"]


async def test_hold_music_off_and_operator_first_play_no_music(emulator, backend):
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=400))
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1", start=30, hangup_after=60))
    outcome = await run(backend, plan(Direction.CLIENT_FIRST))
    assert (outcome.operator_status, outcome.client_status) == (200, 200)
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1"))
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=30))
    outcome = await run(backend, plan(hold_music=True))  # operator-first: the client never waits alone
    assert (outcome.operator_status, outcome.client_status) == (200, 200)
    assert not [a for a in emulator.actions("AGI") if a.get_ci("Command").startswith("SET MUSIC")]
    assert not emulator.events_named("MusicOnHoldStart")


async def test_a_music_class_asterisk_would_misread_is_never_sent(emulator, backend):
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=400))
    emulator.set_behaviour(OPERATOR[1:], Behaviour.busy())
    attempt = plan(Direction.CLIENT_FIRST, hold_music=True)
    attempt.telephony["hold_music_class"] = "default\nAction: Originate"  # past the settings' check
    outcome = await run(backend, attempt)
    assert (outcome.operator_status, outcome.client_status) == (486, 200)
    assert not [a for a in emulator.actions("AGI") if a.get_ci("Command").startswith("SET MUSIC")]
    assert len(emulator.actions("Originate")) == 2


async def test_the_client_leaving_during_the_hold_music_still_gives_487_204(emulator, backend):
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=20))
    emulator.set_behaviour(OPERATOR[1:], Behaviour.no_answer())
    outcome = await run(backend, plan(Direction.CLIENT_FIRST, ring_timeout_seconds=30, hold_music=True))
    assert (outcome.operator_status, outcome.client_status) == (487, 204)
    assert [m["stopped_by"] for m in emulator.agi.music] == ["hangup"]
    assert not emulator.channels


async def test_the_operator_busy_while_the_client_holds_ends_the_music_with_the_call(emulator, backend):
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=400))
    emulator.set_behaviour(OPERATOR[1:], Behaviour.busy())
    outcome = await run(backend, plan(Direction.CLIENT_FIRST, hold_music=True))
    assert (outcome.operator_status, outcome.client_status) == (486, 200)
    assert [m["stopped_by"] for m in emulator.agi.music] == ["hangup"]
    assert not emulator.channels


# --------------------------------------------------------------------------- safety
async def test_no_visitor_text_reaches_asterisk(emulator, backend):
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1"))
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=5))
    await run(backend, plan())
    sent = "\n".join("\n".join(a.lines) for a in emulator.received_actions)
    for fragment in ("Иван", "Hangup()", "<script>", "сайта"):
        assert fragment not in sent
    assert emulator.events_named("UserEvent") == []


async def test_a_number_that_is_not_e164_is_never_dialled(emulator, backend):
    attempt = plan()
    attempt = AttemptPlan(**{**attempt.__dict__, "operator_number": "+7495,Hangup"})
    outcome = await run(backend, attempt)
    assert outcome.operator_status == LegStatus.SERVER_ERROR and "not a dialable" in outcome.note
    assert emulator.actions("Originate") == []


# --------------------------------------------------------------------------- faults
async def test_a_link_drop_mid_call_ends_the_attempt_clearly_and_cleans_up_after_reconnect(emulator, backend):
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1"))
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=4000))
    task = asyncio.create_task(run(backend, plan()))
    while not any(a.get_ci("Command", "").startswith("EXEC Bridge") for a in emulator.actions("AGI")):
        await asyncio.sleep(0.02)  # the two are talking
    emulator.drop_link()
    outcome = await task
    assert outcome.operator_status == LegStatus.SERVER_ERROR and "lost" in outcome.note
    await backend.link.wait_up(5)
    for _ in range(100):  # the abandoned legs are hung up once the link is back
        if not emulator.channels:
            break
        await asyncio.sleep(0.05)
    assert not emulator.channels
    assert len(emulator.actions("Originate")) == 2


async def test_an_originate_whose_answer_was_lost_is_never_sent_twice(emulator, backend):
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1"))
    emulator.drop_link_before_response("Originate")
    outcome = await run(backend, plan())
    assert outcome.operator_status == LegStatus.SERVER_ERROR
    await backend.link.wait_up(5)
    await asyncio.sleep(0.5)  # time for panoramisk to re-send, if it were going to
    assert len(emulator.actions("Originate")) == 1
    for _ in range(100):
        if not emulator.channels:
            break
        await asyncio.sleep(0.05)
    assert not emulator.channels  # the call that did start was hung up after the reconnect


async def test_a_busy_link_whose_ping_answers_come_late_is_not_taken_for_silent(emulator, backend):
    """Thousands of channels: the Ping's answer queues behind their events. A late answer while
    events keep arriving is a busy link, not a silent one; dropping it ended every call on it."""
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1"))
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=60))
    emulator.ping_delay = 1.0  # over three times the backend's ping_timeout (0.3 s)

    async def busy() -> None:
        while True:
            emulator.emit_user_event("Busy")
            await asyncio.sleep(0.05)

    chatter = asyncio.create_task(busy())
    try:
        outcome = await run(backend, plan())
    finally:
        chatter.cancel()
    assert (outcome.operator_status, outcome.client_status) == (200, 200), outcome.note
    assert 1 <= outcome.conversation_seconds <= 6  # the whole conversation, not cut by a reconnect
    assert await backend.health() is None
    emulator.ping_delay = 0.0


async def test_a_silent_link_is_detected_and_reconnected(emulator, backend):
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1"))
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=4000))
    task = asyncio.create_task(run(backend, plan()))
    while len(emulator.channels) < 2:
        await asyncio.sleep(0.02)
    emulator.go_silent()
    outcome = await task  # ends within ping interval + timeout, not when the call would
    assert outcome.operator_status == LegStatus.SERVER_ERROR and "silent" in outcome.note
    assert "silent" in (await backend.health())
    emulator.resume()
    await backend.link.wait_up(5)
    assert await backend.health() is None


async def test_an_action_without_an_answer_ends_at_its_timeout_or_at_once_when_the_link_drops(
    emulator, speech, tmp_path
):
    """The wait for an action's Response: named after the action at its timeout; ended at once,
    with the link's reason, when the connection drops meanwhile; nothing left pending either way."""
    telephony = make_backend(emulator, speech, tmp_path, ping_interval_seconds=60, ping_timeout_seconds=60)
    await telephony.start()
    link = telephony.link
    try:
        await link.wait_up(5)
        emulator.go_silent()  # reads nothing, answers nothing; no ping of ours notices within the test
        with pytest.raises(LinkDown, match=r"^no answer to Ping in 0\.3 s$"):
            await link.send({"Action": "Ping"}, timeout=0.3)
        assert not link._unanswered

        loop = asyncio.get_running_loop()
        sending = asyncio.create_task(link.send({"Action": "Ping"}, timeout=30))
        await asyncio.sleep(0.2)
        assert not sending.done() and len(link._unanswered) == 1
        dropped_at = loop.time()
        emulator.drop_link()
        with pytest.raises(LinkDown, match="was lost"):
            await asyncio.wait_for(sending, 5)
        assert loop.time() - dropped_at < 2  # not the 30 s of its timeout
        assert not link._unanswered

        emulator.resume()
        await link.wait_up(5)
        assert (await link.send({"Action": "Ping"}, timeout=5))["Response"] == "Success"
        assert not link._unanswered
    finally:
        emulator.resume()
        await telephony.stop()


async def test_a_stop_that_comes_with_an_answer_is_not_lost(emulator, speech, tmp_path, monkeypatch):
    """Cancelling a wait for an action's Response in the loop turn its answer arrives in ends the wait
    (asyncio.wait_for returned the answer instead on Python 3.11: the watchdog, cancelled by stop()
    just as a Ping was answered, pinged on, and stop() waited for it forever)."""
    telephony = make_backend(emulator, speech, tmp_path, ping_interval_seconds=60, ping_timeout_seconds=60)
    await telephony.start()
    link = telephony.link
    try:
        await link.wait_up(5)
        answer = asyncio.get_running_loop().create_future()
        monkeypatch.setattr(link.manager, "send_action", lambda action, as_list=False: answer)
        waiting = asyncio.create_task(link.send({"Action": "Ping"}, timeout=30))
        await asyncio.sleep(0)  # it waits for the answer now
        answer.set_result({"Response": "Success"})
        waiting.cancel()  # the same turn: the answer is in, and the stop
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert not link._unanswered
    finally:
        monkeypatch.undo()
        await asyncio.wait_for(telephony.stop(), 5)


async def test_the_installed_dialplan_is_checked_at_login(emulator, backend):
    assert await backend.health() is None
    checks = emulator.actions("ShowDialPlan")
    assert [c.get_ci("Context") for c in checks] == ["perezvon-leg"]


async def test_a_pbx_that_never_answers_the_login_is_named_and_retried(emulator, speech, tmp_path):
    emulator.go_silent()  # TCP is accepted, nothing is ever said
    telephony = make_backend(emulator, speech, tmp_path, connect_wait_seconds=0.5)
    await telephony.start()
    try:
        for _ in range(100):
            if "did not answer the AMI login" in (await telephony.health()):
                break
            await asyncio.sleep(0.05)
        assert "accepted the connection but did not answer the AMI login" in await telephony.health()
        emulator.resume()
        await telephony.link.wait_up(5)  # the reconnect after the abort finds it talking again
        assert await telephony.health() is None
    finally:
        await telephony.stop()


async def test_asterisk_restarting_mid_call_ends_the_attempt(emulator, backend):
    emulator.set_behaviour(OPERATOR[1:], operator_presses())
    task = asyncio.create_task(run(backend, plan(operator_speak_seconds=30)))
    while not emulator.channels:
        await asyncio.sleep(0.02)
    emulator.shutdown(restart=True, down_for=0.3)
    outcome = await task
    assert outcome.operator_status == LegStatus.SERVER_ERROR and "lost" in outcome.note
    await backend.link.wait_up(5)


async def test_a_leg_orphaned_while_the_login_is_in_progress_is_hung_up_once_the_link_is_up(emulator, backend):
    """The login hangs up the orphans it finds before the link counts as up; a leg orphaned in that
    window (the call's own hang-up saw the link not up yet) is hung up as soon as the link is up --
    not left holding the line until the next login, which may be hours away."""
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1"))
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=4000))
    task = asyncio.create_task(run(backend, plan()))
    while not any(a.get_ci("Command", "").startswith("EXEC Bridge") for a in emulator.actions("AGI")):
        await asyncio.sleep(0.02)
    held = sorted(channel.uniqueid for channel in emulator.channels.values())
    assert len(held) == 2
    backend.link.up.clear()  # logged in, its on-up steps done, not yet "up": the window
    for channel_id in held:
        backend.orphan(channel_id)
    await asyncio.sleep(0.3)
    assert sorted(channel.uniqueid for channel in emulator.channels.values()) == held  # not while logging in
    backend.link.up.set()
    for _ in range(100):
        if not emulator.channels:
            break
        await asyncio.sleep(0.02)
    assert not emulator.channels and not backend.orphans
    assert {c.hangup_cause for c in emulator.hungup_channels if c.uniqueid in held} == {16}
    await asyncio.gather(task, return_exceptions=True)


async def test_legs_left_by_a_killed_worker_are_hung_up_by_the_sweep_of_another(emulator, backend, speech, tmp_path):
    """A killed worker cannot hang up: its legs wait in Async AGI, holding the lines. When the
    core's sweep (in another worker) resolves that attempt as interrupted, the other worker's
    backend finds the attempt's legs by their ids and ends them; its own calls go on."""
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1"))
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=4000))
    killed = plan()
    task = asyncio.create_task(run(backend, killed))
    while not any(a.get_ci("Command", "").startswith("EXEC Bridge") for a in emulator.actions("AGI")):
        await asyncio.sleep(0.02)  # the two are talking through the worker about to die
    await backend.link.stop()  # like SIGKILL: the AMI session is gone, nothing is hung up
    await asyncio.gather(task, return_exceptions=True)
    left = {channel.uniqueid for channel in emulator.channels.values()}
    assert len(left) == 2

    other = make_backend(emulator, speech, tmp_path)
    await other.start()
    await other.link.wait_up(5)
    try:
        emulator.set_behaviour("79160000002", Behaviour.human(1.0, hangup_after=60))
        live_call = asyncio.create_task(run(other, dataclasses.replace(plan(), client_number="+79160000002")))
        while len(emulator.channels) < 4:  # the other worker's own call is up too
            await asyncio.sleep(0.02)
        assert await other.end_interrupted(killed.call_id, killed.attempt_number) == 2
        assert await other.end_interrupted(killed.call_id, killed.attempt_number) == 0  # nothing more
        assert not left & {channel.uniqueid for channel in emulator.channels.values()}
        ended = [c for c in emulator.hungup_channels if c.uniqueid in left]
        assert len(ended) == 2 and {c.hangup_cause for c in ended} == {16}
        outcome = await live_call  # untouched: it ends the ordinary way
        assert (outcome.operator_status, outcome.client_status) == (200, 200)
    finally:
        await other.stop()


async def test_wrong_credentials_show_in_health_and_the_attempt(emulator, speech, tmp_path):
    telephony = make_backend(emulator, speech, tmp_path, secret="wrong", connect_wait_seconds=1)
    await telephony.start()
    try:
        outcome = await run(telephony, plan())
        assert outcome.operator_status == LegStatus.UNAVAILABLE_SERVICE
        assert "refused the AMI login of 'perezvon'" in outcome.note
        assert "check username and secret" in await telephony.health()
        assert emulator.actions("Originate") == []
    finally:
        await telephony.stop()


async def test_an_unreachable_asterisk_shows_in_health_and_backs_off(speech, tmp_path):
    emu = AmiEmulator(username="perezvon", secret=SECRET, speed=SPEED, async_agi_contexts={"perezvon-leg"})
    await emu.start()
    port = emu.port
    await emu.stop()  # nothing listens there now
    telephony = make_backend(
        emu, speech, tmp_path, connect_wait_seconds=0.5, reconnect_min_seconds=0.05, reconnect_max_seconds=0.2
    )
    await telephony.start()
    try:
        outcome = await run(telephony, plan())
        assert outcome.operator_status == LegStatus.UNAVAILABLE_SERVICE and "unreachable" in outcome.note
        assert f"127.0.0.1:{port} is unreachable" in await telephony.health()
        # it keeps trying: once Asterisk is there, the link comes up by itself
        emu2 = AmiEmulator(
            port=port, username="perezvon", secret=SECRET, speed=SPEED, async_agi_contexts={"perezvon-leg"}
        )
        await emu2.start()
        try:
            await telephony.link.wait_up(5)
            assert await telephony.health() is None
        finally:
            await telephony.stop()
            await emu2.stop()
    finally:
        await telephony.stop()


async def test_a_missing_dialplan_is_named_in_the_reason(speech, tmp_path):
    emu = AmiEmulator(username="perezvon", secret=SECRET, speed=SPEED, dialplan={"default": ["s"]})
    await emu.start()
    telephony = make_backend(emu, speech, tmp_path)
    await telephony.start()
    try:
        await telephony.link.wait_up(5)
        assert "Did not find context perezvon-leg: install the dialplan" in await telephony.health()
        outcome = await run(telephony, plan())
        assert outcome.operator_status == LegStatus.SERVER_ERROR
        assert "Extension does not exist" in outcome.note and "dialplan" in outcome.note
    finally:
        await telephony.stop()
        await emu.stop()


async def test_a_context_without_async_agi_is_a_clear_fault(speech, tmp_path):
    emu = AmiEmulator(username="perezvon", secret=SECRET, speed=SPEED)  # answers, but no AGI(agi:async)
    emu.set_behaviour(OPERATOR[1:], operator_presses("1"))
    await emu.start()
    telephony = make_backend(emu, speech, tmp_path, answer_wait_seconds=0.5)
    await telephony.start()
    try:
        await telephony.link.wait_up(5)
        assert "does not run AGI(agi:async)" in await telephony.health()
        outcome = await run(telephony, plan())
        assert outcome.operator_status == LegStatus.SERVER_ERROR and "Async AGI" in outcome.note
        assert not emu.channels  # the leg that answered was hung up
    finally:
        await telephony.stop()
        await emu.stop()


async def test_sounds_asterisk_cannot_see_are_a_clear_fault(emulator, speech, tmp_path):
    telephony = make_backend(emulator, speech, tmp_path, asterisk_sounds_dir="/nonexistent/sounds")
    await telephony.start()
    emulator.set_behaviour(OPERATOR[1:], operator_presses("1"))
    try:
        await telephony.link.wait_up(5)
        outcome = await run(telephony, plan())
        assert outcome.operator_status == LegStatus.SERVER_ERROR and "could not play" in outcome.note
    finally:
        await telephony.stop()


def test_settings_refuse_a_dial_string_that_could_inject():
    errors = AsteriskSettings().validate({"username": "u", "secret": "s", "dial_string": "PJSIP/{number}@t,,Hangup"})
    assert "dial_string" in errors
    assert AsteriskSettings().validate({"username": "u", "secret": "s"}) == {}
    assert "secret" in AsteriskSettings().validate({"username": "u"})


# --------------------------------------------------------------------------- the whole product
class EmulatorThread:
    """The emulator on its own event loop, for tests that drive `perezvon serve` synchronously."""

    def __init__(self, **kwargs) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.emu = self.call(lambda: AmiEmulator(**kwargs))

    def call(self, fn):
        async def run():
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def __enter__(self) -> AmiEmulator:
        asyncio.run_coroutine_threadsafe(self.emu.start(), self.loop).result(10)
        return self.emu

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.emu.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_serve_calls_a_lead_back_through_asterisk_and_keeps_the_recording(tmp_path):
    import time

    from test_cli import demo_env, running_server

    with EmulatorThread(
        username="perezvon",
        secret=SECRET,
        speed=SPEED,
        async_agi_contexts={"perezvon-leg"},
        default_behaviour=Behaviour.human(1.0, hangup_after=40),
    ) as emu:
        emu.set_behaviour("74951234567", operator_presses("1"))
        (tmp_path / "plugins.toml").write_text(f"""
[perezvon]
telephony = "asterisk"

[plugins.asterisk]
enabled = true
port = {emu.port}
username = "perezvon"
secret = "{SECRET}"

[plugins.speech]
enabled = true
""")
        env = {**demo_env(tmp_path), "PEREZVON_PLUGINS": str(tmp_path / "plugins.toml")}
        with running_server(env, tmp_path) as (base_url, demo, client):
            deadline = time.monotonic() + 30
            while client.get(f"{base_url}/healthz").json()["telephony"] != "ok":
                assert time.monotonic() < deadline, client.get(f"{base_url}/healthz").json()
                time.sleep(0.1)
            created = client.post(
                f"{base_url}/api/v1/leads",
                headers={"Origin": "http://localhost:3000"},
                json={"token": demo["site_token"], "phone": "+7 916 555-12-34", "consent": True, "name": HOSTILE_NAME},
            )
            assert created.status_code == 201, created.text
            state_url = f"{base_url}/api/v1/calls/{created.json()['call_id']}/state"
            deadline = time.monotonic() + 40
            while not (state := client.get(state_url, params={"token": demo["site_token"]}).json())["finished"]:
                assert time.monotonic() < deadline, state
                time.sleep(0.2)
            assert state["status"] == "successful"
        assert [o.get_ci("Channel") for o in emu.actions("Originate")] == [
            "PJSIP/74951234567@trunk",
            "PJSIP/79165551234@trunk",
        ]
        import sqlite3

        db = sqlite3.connect(tmp_path / "var" / "perezvon.sqlite3")
        ((recording, backend, statuses),) = db.execute(
            "SELECT recording, backend, operator_status || '-' || client_status FROM attempts"
        ).fetchall()
        assert backend == "asterisk" and statuses == "200-200"
        assert Path(recording).is_file() and "/recordings/" in recording
