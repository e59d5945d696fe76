"""Async AGI in the AMI emulator (tests/ami_emulator/agi.py) with panoramisk and raw sockets.

The Perezvon dialplan (NoOp, AGI(agi:async), Hangup()) runs in the contexts given as
``async_agi_contexts``; every expectation rests on the Asterisk source named in
docs/ami-emulator.md, section "Async AGI (the Perezvon dialplan)".
"""

from __future__ import annotations

import asyncio
import os
import urllib.parse
import wave

import panoramisk
import pytest
from ami_emulator import AmiEmulator, Behaviour, User
from ami_emulator import facts as F
from ami_emulator.agi import PEREZVON_DIALPLAN, parse_args, uri_encode

# where the shipped dialplan (plugins/asterisk/conf) runs AGI(agi:async), and the Hangup() after it
AGI_PRIORITY = str(next(p for p, (app, _) in PEREZVON_DIALPLAN.items() if app == "AGI"))
HANGUP_PRIORITY = str(int(AGI_PRIORITY) + 1)

USER, SECRET = "perezvon", "s3cret"
SPEED = 50


# ----------------------------------------------------------------------------- helpers
async def wait_until(predicate, timeout: float = 3.0, step: float = 0.005):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


def make_manager(emu: AmiEmulator, username: str = USER, secret: str = SECRET) -> panoramisk.Manager:
    manager = panoramisk.Manager(
        host="127.0.0.1",
        port=emu.port,
        username=username,
        secret=secret,
        loop=asyncio.get_running_loop(),
        ping_delay=3600,
        reconnect_timeout=0,
    )
    manager.seen = []
    manager.register_event("*", lambda mgr, event: mgr.seen.append(event))
    return manager


class Raw:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, emu: AmiEmulator) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
        await asyncio.wait_for(reader.readline(), 2)
        raw = cls(reader, writer)
        reply = await raw.action(f"Action: Login\r\nUsername: {USER}\r\nSecret: {SECRET}\r\nEvents: off\r\n\r\n")
        assert reply["Message"] == "Authentication accepted"
        return raw

    async def action(self, text: str) -> dict[str, str]:
        self.writer.write(text.encode())
        await self.writer.drain()
        data = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 2)
        return dict(line.split(": ", 1) for line in data.decode().split("\r\n") if ": " in line)

    def close(self) -> None:
        self.writer.close()


def write_wav(path, seconds: float, rate: int = 8000) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\0\0" * int(seconds * rate))


@pytest.fixture
async def emu(tmp_path):
    emulator = AmiEmulator(
        username=USER,
        secret=SECRET,
        speed=SPEED,
        async_agi_contexts=("perezvon-leg",),
        sounds_dir=str(tmp_path / "sounds"),
        monitor_dir=str(tmp_path / "monitor"),
    )
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def manager(emu):
    mgr = make_manager(emu)
    mgr.emu = emu
    await mgr.connect()
    response = await asyncio.wait_for(mgr.authenticated_future, 5)
    assert response.success
    yield mgr
    mgr.close()


def of(manager, uniqueid: str, name: str | None = None) -> list:
    events = [e for e in manager.seen if uniqueid in (e.get("Uniqueid"), e.get("DestUniqueid"))]
    return [e for e in events if name is None or e.event == name]


async def leg(
    manager, emu, number: str, channel_id: str, behaviour: Behaviour | None = None, role: str = "client"
) -> str:
    """Originate one Perezvon call leg; return its channel name once Async AGI has started."""
    emu.set_behaviour(number, behaviour or Behaviour.answers(0.1))
    _, result = await manager.send_action(
        {
            "Action": "Originate",
            "Channel": f"PJSIP/{number}@trunk",
            "Context": "perezvon-leg",
            "Exten": "s",
            "Priority": "1",
            "Async": "true",
            "ChannelId": channel_id,
            "Variable": f"PEREZVON_CALL=42,PEREZVON_LEG={role}",
        }
    )
    assert result.response == "Success", result
    await wait_until(lambda: of(manager, channel_id, "AsyncAGIStart"))
    return result.channel


async def agi(manager, channel: str, command: str, command_id: str | None = None):
    """panoramisk 1.4 takes "Added ... to queue" for the start of a list that only an event
    with SubEvent End/Exec would complete (actions.py ``multi``/``completed``); Asterisk >= 12
    sends AsyncAGIExec without ActionID, so without ``as_list=False`` the future never
    resolves (test_panoramisk_agi_action_needs_as_list_false)."""
    action = {"Action": "AGI", "Channel": channel, "Command": command}
    if command_id is not None:
        action["CommandID"] = command_id
    return await asyncio.wait_for(manager.send_action(action, as_list=False), 3)


async def results(manager, uniqueid: str, count: int, timeout: float = 3.0) -> list[str]:
    """The decoded Result of the first ``count`` AsyncAGIExec events of the channel, as sent
    (panoramisk 1.4 unquotes *and strips* a ``Result`` header itself, message.py
    ``quoted_keys``, so the trailing newline is gone from ``event.result``)."""
    await wait_until(lambda: len(of(manager, uniqueid, "AsyncAGIExec")) >= count, timeout)
    sent = [e for e in manager.emu.events_named("AsyncAGIExec") if e["Uniqueid"] == uniqueid]
    decoded = [urllib.parse.unquote(e["Result"]) for e in sent[:count]]
    assert [e.result for e in of(manager, uniqueid, "AsyncAGIExec")[:count]] == [d.strip() for d in decoded]
    return decoded


async def hung_up(manager, uniqueid: str):
    await wait_until(lambda: of(manager, uniqueid, "Hangup"))
    return of(manager, uniqueid, "Hangup")[0]


# ------------------------------------------------------------------- pure functions
def test_uri_encode_keeps_only_alphanumerics_and_marks():
    # main/utils.c ast_uri_encode() with ast_uri_http = AST_URI_UNRESERVED
    assert uri_encode("agi_request: async\n") == "agi_request%3A%20async%0A"
    assert uri_encode("-_.!~*'()az09AZ") == "-_.!~*'()az09AZ"
    assert uri_encode("a/b@c;d=e&f+g,h$i?j") == "a%2Fb%40c%3Bd%3De%26f%2Bg%2Ch%24i%3Fj"
    assert uri_encode("я") == "%D1%8F"
    assert len(uri_encode(":" * 1000)) == 2046  # stops before overflowing 2048 with the NUL


def test_parse_args_like_res_agi():
    assert parse_args('STREAM FILE hello ""') == ["STREAM", "FILE", "hello", ""]
    assert parse_args('SET  VARIABLE\tX "a b c"') == ["SET", "VARIABLE", "X", "a b c"]
    assert parse_args(r"EXEC Playback a\ b") == ["EXEC", "Playback", "a b"]
    assert parse_args(r"SET VARIABLE Q \"x\"") == ["SET", "VARIABLE", "Q", '"x"']
    assert parse_args('EXEC MixMonitor "/tmp/a b.wav",b') == ["EXEC", "MixMonitor", "/tmp/a b.wav,b"]


# --------------------------------------------------------------- starting Async AGI
async def test_async_agi_starts_after_the_answer_with_the_environment(emu, manager):
    channel = await leg(manager, emu, "79160000001", "leg-1", role="operator")
    stream = of(manager, "leg-1")
    names = [e.event for e in stream]
    assert names.index("DialEnd") < names.index("AsyncAGIStart")
    start = stream[names.index("AsyncAGIStart")]
    assert start.privilege == "agi,all"
    assert (start.context, start.exten, start.priority) == ("perezvon-leg", "s", AGI_PRIORITY)
    assert start.env.startswith("agi_request%3A%20async%0Aagi_channel%3A%20PJSIP%2Ftrunk-")
    env = urllib.parse.unquote(start.env)
    assert env.endswith("\n\n")
    lines = dict(
        line.split(": ", 1) if ": " in line else (line.rstrip(":"), "") for line in env.strip("\n").split("\n")
    )
    assert list(lines)[:6] == ["agi_request", "agi_channel", "agi_language", "agi_type", "agi_uniqueid", "agi_version"]
    assert lines["agi_channel"] == channel and lines["agi_uniqueid"] == "leg-1"
    assert (lines["agi_language"], lines["agi_type"], lines["agi_version"]) == ("en", "PJSIP", "22.8.0")
    assert (lines["agi_callerid"], lines["agi_calleridname"], lines["agi_callingpres"]) == ("unknown", "unknown", "67")
    assert (lines["agi_context"], lines["agi_extension"], lines["agi_priority"]) == ("perezvon-leg", "s", AGI_PRIORITY)
    assert lines["agi_enhanced"] == "0.0" and lines["agi_accountcode"] == ""
    assert lines["agi_threadid"].isdigit()
    # the variables of the Originate are there for GET VARIABLE
    await agi(manager, channel, "GET VARIABLE PEREZVON_LEG")
    assert await results(manager, "leg-1", 1) == ["200 result=1 (operator)\n"]


async def test_spontaneous_amd_does_not_fire_inside_async_agi(emu, manager):
    await leg(manager, emu, "79160000002", "leg-2", Behaviour.answering_machine(0.1, amd_after=0.2, hangup_after=1.0))
    await hung_up(manager, "leg-2")
    assert not [e for e in of(manager, "leg-2", "VarSet") if e.variable.startswith("AMD")]
    assert not of(manager, "leg-2", "UserEvent")


# -------------------------------------------------------------------- the AGI action
async def test_agi_action_errors(emu, manager):
    reply = await manager.send_action({"Action": "AGI", "Channel": "PJSIP/x"}, as_list=False)
    assert (reply.response, reply.message) == ("Error", "Both, Channel and Command are *required*")
    reply = await manager.send_action({"Action": "AGI", "Command": "NOOP"}, as_list=False)
    assert reply.message == "Both, Channel and Command are *required*"
    reply = await agi(manager, "PJSIP/nope-00000009", "NOOP")
    assert (reply.response, reply.message) == ("Error", "Channel PJSIP/nope-00000009 does not exist.")
    # a channel outside the Async AGI contexts has no AsyncAGI datastore
    emu.set_behaviour("79160000003", Behaviour.answers(0.1))
    _, result = await manager.send_action(
        {
            "Action": "Originate",
            "Channel": "PJSIP/79160000003@trunk",
            "Context": "other",
            "Exten": "s",
            "Priority": "1",
            "Async": "true",
            "ChannelId": "plain-1",
        }
    )
    reply = await agi(manager, result.channel.lower(), "NOOP")  # names are case-insensitive
    assert reply.message == f"Failed to add AGI command to channel {result.channel} queue"
    # ast_channel_get_by_name() also takes a uniqueid
    await leg(manager, emu, "79160000004", "leg-4")
    reply = await agi(manager, "leg-4", "NOOP")
    assert (reply.response, reply.message) == ("Success", "Added AGI command to queue")
    assert await results(manager, "leg-4", 1) == ["200 result=0\n"]


async def test_agi_action_needs_the_agi_write_permission(tmp_path):
    emu = AmiEmulator(
        username=USER,
        secret=SECRET,
        speed=SPEED,
        async_agi_contexts=("perezvon-leg",),
        users={"noagi": User("pw", write=F.CALL | F.ORIGINATE)},
    )
    await emu.start()
    mgr = make_manager(emu, "noagi", "pw")
    try:
        await mgr.connect()
        await asyncio.wait_for(mgr.authenticated_future, 5)
        reply = await agi(mgr, "leg-x", "NOOP")
        assert (reply.response, reply.message) == ("Error", "Permission denied")
    finally:
        mgr.close()
        await emu.stop()


async def test_panoramisk_agi_action_needs_as_list_false(emu, manager):
    channel = await leg(manager, emu, "79160000019", "leg-19")
    # a dict with a "Command" key becomes actions.Command, which adds a CommandID; the
    # AsyncAGIExec carries it back and panoramisk hands it to the still pending action
    future = manager.send_action({"Action": "AGI", "Channel": channel, "Command": "NOOP"})
    await wait_until(lambda: emu.events_named("AsyncAGIExec"))
    await asyncio.sleep(0.05)
    assert emu.events_named("AsyncAGIExec")[0]["CommandId"].startswith("command/")
    assert not future.done()  # the reply came, the command ran; the future still waits
    assert not of(manager, "leg-19", "AsyncAGIExec")  # ... and swallowed the event
    future.cancel()
    # send_agi_command(as_list=False) does not help: protocol.send() overwrites the action's
    # as_list with send_action()'s default None (ami_protocol.py ``data.as_list = as_list``)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(manager.send_agi_command(channel, "NOOP"), 0.3)
    reply = await asyncio.wait_for(
        manager.send_action({"Action": "AGI", "Channel": channel, "Command": "NOOP"}, as_list=False), 2
    )
    assert reply.message == "Added AGI command to queue"
    await wait_until(lambda: of(manager, "leg-19", "AsyncAGIExec"))  # now it is an event


async def test_raw_agi_replies(emu, manager):
    channel = await leg(manager, emu, "79160000005", "leg-5")
    raw = await Raw.open(emu)
    reply = await raw.action(
        f"Action: AGI\r\nActionID: a1\r\nChannel: {channel}\r\nCommand: NOOP\r\nCommandID: c1\r\n\r\n"
    )
    assert reply == {"Response": "Success", "ActionID": "a1", "Message": "Added AGI command to queue"}
    reply = await raw.action("Action: AGI\r\nActionID: a2\r\nChannel: \r\nCommand: NOOP\r\n\r\n")
    assert reply == {"Response": "Error", "ActionID": "a2", "Message": "Both, Channel and Command are *required*"}
    reply = await raw.action(f"Action: AGI\r\nChannel: {channel}\r\nCommand: NOOP\r\n\r\n")
    assert reply == {"Response": "Success", "Message": "Added AGI command to queue"}
    raw.close()
    await wait_until(lambda: len(of(manager, "leg-5", "AsyncAGIExec")) == 2)
    first, second = of(manager, "leg-5", "AsyncAGIExec")
    assert first.commandid == "c1"
    assert "CommandId" not in second  # only when the action had a CommandID


# ---------------------------------------------------------------------- commands
async def test_commands_run_in_order_and_report_each(emu, manager):
    channel = await leg(manager, emu, "79160000006", "leg-6")
    commands = [
        ("NOOP", "n1"),
        ("answer", None),
        ('SET VARIABLE GREETING "hello world"', "s1"),
        ("get variable GREETING", "g1"),
        ("GET VARIABLE MISSING", None),
        ("GET VARIABLE UNIQUEID", None),
        ("SAY NONSENSE", "u1"),
        ("STREAM FILE onlyone", "e1"),
        ("GET", None),
    ]
    for command, command_id in commands:
        reply = await agi(manager, channel, command, command_id)
        assert reply.message == "Added AGI command to queue"
    got = await results(manager, "leg-6", len(commands))
    assert got[:7] == [
        "200 result=0\n",
        "200 result=0\n",
        "200 result=1\n",
        "200 result=1 (hello world)\n",
        "200 result=0\n",
        "200 result=1 (leg-6)\n",
        "510 Invalid or unknown command\n",
    ]
    assert got[7].startswith("520-Invalid command syntax.  Proper usage follows:\nSTREAM FILE")
    assert got[7].endswith("\n520 End of proper usage.\n")
    assert got[8] == "510 Invalid or unknown command\n"
    execs = of(manager, "leg-6", "AsyncAGIExec")
    ids = [e.get("CommandId") for e in execs]  # panoramisk made up the missing ones
    assert [i if c else i.startswith("command/") for i, (_, c) in zip(ids, commands)] == [
        c or True for _, c in commands
    ]
    assert all(e.privilege == "agi,all" for e in execs)
    assert [(e.variable, e.value) for e in of(manager, "leg-6", "VarSet")][-1] == ("GREETING", "hello world")
    # agi_handle_command() publishes AGIExecStart/AGIExecEnd around each command
    ends = of(manager, "leg-6", "AGIExecEnd")
    assert [(e.resultcode, e.result) for e in ends][6:8] == [("510", "Invalid or unknown command"), ("520", "Usage")]
    assert of(manager, "leg-6", "AGIExecStart")[0].command == "NOOP"
    # on the wire the Result is URL-encoded, trailing newline included
    assert [e["Result"] for e in emu.events_named("AsyncAGIExec")][0] == "200%20result%3D0%0A"
    assert execs[0].result == "200 result=0"  # panoramisk decoded and stripped it


async def test_hangup_command_ends_async_agi_before_the_hangup(emu, manager):
    channel = await leg(manager, emu, "79160000007", "leg-7")
    await agi(manager, channel, "HANGUP", "h1")
    await agi(manager, channel, "NOOP", "never")
    hangup = await hung_up(manager, "leg-7")
    names = [e.event for e in of(manager, "leg-7")]
    tail = names[names.index("SoftHangupRequest") :]
    assert tail == ["SoftHangupRequest", "AGIExecEnd", "AsyncAGIExec", "AsyncAGIEnd", "VarSet", "Hangup"]
    assert of(manager, "leg-7", "SoftHangupRequest")[0].cause == "16"  # AST_SOFTHANGUP_EXPLICIT
    assert await results(manager, "leg-7", 1) == ["200 result=1\n"]
    assert len(of(manager, "leg-7", "AsyncAGIExec")) == 1  # the queued NOOP is dropped
    assert (of(manager, "leg-7", "VarSet")[-1].variable, of(manager, "leg-7", "VarSet")[-1].value) == (
        "AGISTATUS",
        "HANGUP",
    )
    assert hangup.cause == "0"  # ast_softhangup() sets no cause (as an AMI Hangup without Cause)
    reply = await agi(manager, channel, "NOOP")
    assert reply.message == f"Channel {channel} does not exist."


async def test_asyncagi_break_goes_on_to_hangup(emu, manager):
    channel = await leg(manager, emu, "79160000008", "leg-8")
    await agi(manager, channel, "ASYNCAGI BREAK")
    hangup = await hung_up(manager, "leg-8")
    assert await results(manager, "leg-8", 1) == ["200 result=0\n"]
    names = [e.event for e in of(manager, "leg-8")]
    assert names.index("AsyncAGIEnd") < names.index("Hangup")
    assert [e.value for e in of(manager, "leg-8", "VarSet") if e.variable == "AGISTATUS"] == ["SUCCESS"]
    assert (hangup.cause, hangup.priority) == ("16", HANGUP_PRIORITY)  # the Hangup() line


@pytest.mark.parametrize("how", ["bye", "ami"])
async def test_hangup_while_idle_in_async_agi(emu, manager, how):
    channel = await leg(manager, emu, "79160000009", f"leg-9{how}")
    if how == "bye":
        emu.far_end_hangup(channel)
    else:
        reply = await manager.send_action({"Action": "Hangup", "Channel": channel, "Cause": "17"})
        assert reply.message == "Channel Hungup"
    hangup = await hung_up(manager, f"leg-9{how}")
    names = [e.event for e in of(manager, f"leg-9{how}")]
    assert names.index("AsyncAGIEnd") < names.index("Hangup")
    assert hangup.cause == ("16" if how == "bye" else "17")


# ------------------------------------------------------------------ playing files
async def test_stream_file_plays_a_real_wav(emu, manager, tmp_path):
    write_wav(tmp_path / "sounds" / "en" / "perezvon" / "hello.wav", 2.0)
    write_wav(tmp_path / "abs" / "beep.wav", 0.5)
    channel = await leg(manager, emu, "79160000010", "leg-10")
    started = asyncio.get_running_loop().time()
    await agi(manager, channel, 'STREAM FILE perezvon/hello ""')
    await agi(manager, channel, f'STREAM FILE {tmp_path / "abs" / "beep"} "" 1000')
    got = await results(manager, "leg-10", 2)
    assert got == ["200 result=0 endpos=16000\n", "200 result=0 endpos=4000\n"]
    assert asyncio.get_running_loop().time() - started >= (2.0 + 0.375) / SPEED * 0.9
    assert [e.value for e in of(manager, "leg-10", "VarSet") if e.variable == "PLAYBACKSTATUS"] == [
        "SUCCESS",
        "SUCCESS",
    ]


async def test_stream_file_of_a_missing_file_ends_async_agi(emu, manager):
    channel = await leg(manager, emu, "79160000011", "leg-11")
    await agi(manager, channel, 'STREAM FILE no-such-file "" 80')
    await agi(manager, channel, "NOOP")
    hangup = await hung_up(manager, "leg-11")
    assert await results(manager, "leg-11", 1) == ["200 result=-1 endpos=80\n"]
    assert len(of(manager, "leg-11", "AsyncAGIExec")) == 1
    assert [e.value for e in of(manager, "leg-11", "VarSet") if e.variable == "AGISTATUS"] == ["FAILURE"]
    names = [e.event for e in of(manager, "leg-11")]
    assert names.index("AsyncAGIEnd") < names.index("Hangup")
    assert hangup.cause == "16"


async def test_an_escape_digit_stops_playback(emu, manager, tmp_path):
    write_wav(tmp_path / "sounds" / "long.wav", 20.0)
    channel = await leg(manager, emu, "79160000012", "leg-12")
    await agi(manager, channel, "STREAM FILE long #5")
    await wait_until(lambda: emu.events_named("AGIExecStart"))
    for digit in "1#":  # the phone presses 1 (not an escape digit), then #
        await manager.send_action(
            {"Action": "PlayDTMF", "Channel": channel, "Digit": digit, "Receive": "true", "Async": "false"}
        )
        await wait_until(lambda: any(e.digit == digit for e in of(manager, "leg-12", "DTMFEnd")))
    [result] = await results(manager, "leg-12", 1)
    code, endpos = result.split()[1:]
    assert code == "result=35"  # '#' (the '1' is not an escape digit)
    assert 0 < int(endpos.split("=")[1]) < 8000 * 20
    assert [e.digit for e in of(manager, "leg-12", "DTMFEnd")][:2] == ["1", "#"]
    assert [e.value for e in of(manager, "leg-12", "VarSet") if e.variable == "PLAYBACKSTATUS"] == ["FAILED"]


async def test_hangup_while_streaming(emu, manager, tmp_path):
    write_wav(tmp_path / "sounds" / "long.wav", 20.0)
    channel = await leg(manager, emu, "79160000013", "leg-13", Behaviour.answers(0.1, hangup_after=2.0))
    await agi(manager, channel, 'STREAM FILE long ""')
    await agi(manager, channel, "NOOP")
    hangup = await hung_up(manager, "leg-13")
    [result] = await results(manager, "leg-13", 1)
    assert result.startswith("200 result=-1 endpos=") and result.endswith("\n")
    assert 0 < int(result.split("=")[2]) < 8000 * 20
    assert len(of(manager, "leg-13", "AsyncAGIExec")) == 1
    names = [e.event for e in of(manager, "leg-13")]
    assert names.index("AsyncAGIExec") < names.index("AsyncAGIEnd") < names.index("Hangup")
    assert hangup.cause == "16"


async def test_exec_playback_wait_and_unknown_application(emu, manager, tmp_path):
    write_wav(tmp_path / "sounds" / "short.wav", 0.2)
    channel = await leg(manager, emu, "79160000014", "leg-14")
    for command in ("EXEC Playback short", "EXEC Playback nothing-here", "EXEC Wait 0.5", "EXEC NoSuchApp foo", "EXEC"):
        await agi(manager, channel, command)
    got = await results(manager, "leg-14", 5)
    assert got[:4] == ["200 result=0\n", "200 result=0\n", "200 result=0\n", "200 result=-2\n"]
    assert got[4].startswith("520-")
    assert [e.value for e in of(manager, "leg-14", "VarSet") if e.variable == "PLAYBACKSTATUS"] == ["SUCCESS", "FAILED"]


# ------------------------------------------------------------------ applications
@pytest.mark.parametrize(
    "behaviour, status, cause",
    [
        (Behaviour.answering_machine(0.1, amd_after=1.0, hangup_after=None), "MACHINE", "LONGGREETING-1600-1500"),
        (Behaviour.human(0.1, amd_after=1.0), "HUMAN", "HUMAN-800-800"),
        (Behaviour.answers(0.1), "HUMAN", "HUMAN-800-800"),
    ],
)
async def test_exec_amd(emu, manager, behaviour, status, cause):
    channel = await leg(manager, emu, "79160000015", "leg-15", behaviour)
    started = asyncio.get_running_loop().time()
    await agi(manager, channel, "EXEC AMD", "amd")
    assert await results(manager, "leg-15", 1) == ["200 result=0\n"]
    assert asyncio.get_running_loop().time() - started >= 1.0 / SPEED * 0.9
    assert [(e.variable, e.value) for e in of(manager, "leg-15", "VarSet")][-2:] == [
        ("AMDSTATUS", status),
        ("AMDCAUSE", cause),
    ]
    assert not of(manager, "leg-15", "UserEvent")


async def test_exec_senddtmf(emu, manager):
    channel = await leg(manager, emu, "79160000016", "leg-16")
    started = asyncio.get_running_loop().time()
    await agi(manager, channel, "EXEC SendDTMF 1w#,,150")
    assert await results(manager, "leg-16", 1) == ["200 result=0\n"]
    # 100 quiet + 150 + 250 + 500 + 150 + 250 ms
    assert asyncio.get_running_loop().time() - started >= 1.4 / SPEED * 0.9
    dtmf = [(e.event, e.digit, e.direction) for e in of(manager, "leg-16") if e.event.startswith("DTMF")]
    assert dtmf == [
        ("DTMFBegin", "1", "Sent"),
        ("DTMFEnd", "1", "Sent"),
        ("DTMFBegin", "#", "Sent"),
        ("DTMFEnd", "#", "Sent"),
    ]
    assert {e.durationms for e in of(manager, "leg-16", "DTMFEnd")} == {"150"}


async def test_exec_mixmonitor_writes_the_recording_at_hangup(emu, manager, tmp_path):
    channel = await leg(manager, emu, "79160000017", "leg-17", Behaviour.answers(0.1, hangup_after=3.0))
    target = tmp_path / "rec" / "2026" / "call-42.wav"  # the directory does not exist yet
    await agi(manager, channel, f"EXEC MixMonitor {target}")
    await agi(manager, channel, "EXEC MixMonitor relative/op.wav")
    assert await results(manager, "leg-17", 2) == ["200 result=0\n", "200 result=0\n"]
    assert target.parent.is_dir()  # ast_mkdir() in filename_parse()
    assert [e.value for e in of(manager, "leg-17", "VarSet") if e.variable == "MIXMONITOR_FILENAME"] == [
        str(target),
        f"{tmp_path}/monitor/relative/op.wav",
    ]
    assert len(of(manager, "leg-17", "MixMonitorStart")) == 2
    await hung_up(manager, "leg-17")
    for path in (target, tmp_path / "monitor" / "relative" / "op.wav"):
        await wait_until(lambda: path.exists())
        with wave.open(str(path)) as wav:
            assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
            seconds = wav.getnframes() / 8000
        assert 1.0 < seconds < 4.5  # up for 3 nominal seconds in all


# ------------------------------------------------------------------------ Bridge
async def two_legs(manager, emu, suffix: str, operator: Behaviour | None = None, client: Behaviour | None = None):
    op = await leg(manager, emu, f"7916100{suffix}1", f"op-{suffix}", operator, role="operator")
    cl = await leg(manager, emu, f"7916100{suffix}2", f"cl-{suffix}", client, role="client")
    return op, cl


async def test_bridge_to_a_missing_channel_and_to_itself(emu, manager):
    channel = await leg(manager, emu, "79160000018", "leg-18")
    await agi(manager, channel, "EXEC Bridge PJSIP/nobody-1234")
    await agi(manager, channel, f"EXEC Bridge {channel}")
    assert await results(manager, "leg-18", 2) == ["200 result=0\n", "200 result=0\n"]
    assert [e.value for e in of(manager, "leg-18", "VarSet") if e.variable == "BRIDGERESULT"] == ["NONEXISTENT", "LOOP"]
    assert not [e for e in manager.seen if e.event.startswith("Bridge")]


async def test_bridge_with_x_when_the_caller_hangs_up(emu, manager):
    op, cl = await two_legs(manager, emu, "01")
    await agi(manager, op, f"EXEC Bridge {cl},x", "bridge")
    await wait_until(lambda: len([e for e in manager.seen if e.event == "BridgeEnter"]) == 2)
    create = [e for e in manager.seen if e.event == "BridgeCreate"][0]
    assert (create.bridgetype, create.bridgetechnology, create.bridgenumchannels) == ("basic", "simple_bridge", "0")
    enters = [e for e in manager.seen if e.event == "BridgeEnter"]
    assert [(e.uniqueid, e.bridgenumchannels) for e in enters] == [("cl-01", "1"), ("op-01", "2")]
    assert enters[0].channel == cl  # the yanked leg keeps name and uniqueid
    # the yank: a Surrogate/ channel with a new uniqueid ends the old Async AGI and hangs up
    surrogate = [e for e in manager.seen if e.event == "Newchannel" and e.channel == f"Surrogate/{cl}"]
    assert len(surrogate) == 1 and surrogate[0].uniqueid not in ("cl-01", "op-01")
    zombie = of(manager, surrogate[0].uniqueid)
    assert [e.event for e in zombie] == ["Newchannel", "AsyncAGIEnd", "VarSet", "Hangup"]
    assert not of(manager, "cl-01", "AsyncAGIEnd")
    emu.far_end_hangup(op)
    op_hangup = await hung_up(manager, "op-01")
    cl_hangup = await hung_up(manager, "cl-01")
    assert await results(manager, "op-01", 1) == ["200 result=0\n"]
    assert of(manager, "op-01", "AsyncAGIExec")[0].commandid == "bridge"
    names = [e.event for e in manager.seen]
    assert names.index("BridgeLeave") < names.index("BridgeDestroy")
    assert [e.bridgenumchannels for e in manager.seen if e.event == "BridgeLeave"] == ["1", "0"]
    assert (op_hangup.cause, cl_hangup.cause) == ("16", "16")
    assert not of(manager, "cl-01", "AsyncAGIStart")[1:]


async def test_bridge_when_the_destination_hangs_up_the_caller_stays_in_agi(emu, manager):
    op, cl = await two_legs(manager, emu, "02")
    await agi(manager, op, "EXEC Bridge cl-0,x")  # a prefix of a name, else of a uniqueid
    await wait_until(lambda: len([e for e in manager.seen if e.event == "BridgeEnter"]) == 2)
    emu.far_end_hangup(cl)
    await hung_up(manager, "cl-02")
    assert await results(manager, "op-02", 1) == ["200 result=0\n"]
    assert [e.value for e in of(manager, "op-02", "VarSet") if e.variable == "BRIDGERESULT"] == ["SUCCESS"]
    await agi(manager, op, "NOOP")
    assert (await results(manager, "op-02", 2))[1] == "200 result=0\n"
    assert "op-02" in emu.channels and not of(manager, "op-02", "Hangup")
    names = [e.event for e in manager.seen]
    assert names.index("BridgeDestroy") < len(names)


async def test_bridge_without_x_sends_the_destination_to_its_next_priority(emu, manager):
    # bridge_exec() sets the after-bridge goto to the destination's own context, exten and
    # priority (the AGI line); ast_bridge_setup_after_goto() goes to priority + 1, i.e.
    # Hangup() -- not back into Async AGI.
    op, cl = await two_legs(manager, emu, "03")
    await agi(manager, op, f"EXEC Bridge {cl}")
    await wait_until(lambda: len([e for e in manager.seen if e.event == "BridgeEnter"]) == 2)
    reply = await agi(manager, cl, "NOOP")  # the datastore moved with the masquerade: queued
    assert reply.message == "Added AGI command to queue"
    await manager.send_action({"Action": "Hangup", "Channel": op, "Cause": "16"})
    cl_hangup = await hung_up(manager, "cl-03")
    assert (cl_hangup.cause, cl_hangup.priority) == ("16", HANGUP_PRIORITY)
    assert len(of(manager, "cl-03", "AsyncAGIStart")) == 1
    assert not of(manager, "cl-03", "AsyncAGIExec")


async def test_mixmonitor_b_records_only_while_bridged(emu, manager, tmp_path):
    op, cl = await two_legs(manager, emu, "04")
    await agi(manager, op, f"EXEC MixMonitor {tmp_path}/b.wav,b")
    await results(manager, "op-04", 1)
    await asyncio.sleep(2.0 / SPEED)  # not bridged yet: not recorded
    await agi(manager, op, f"EXEC Bridge {cl},x")
    await wait_until(lambda: len([e for e in manager.seen if e.event == "BridgeEnter"]) == 2)
    await asyncio.sleep(1.0 / SPEED)
    emu.far_end_hangup(cl)
    await results(manager, "op-04", 2)
    await asyncio.sleep(2.0 / SPEED)  # bridge over: not recorded
    emu.far_end_hangup(op)
    await hung_up(manager, "op-04")
    await wait_until(lambda: (tmp_path / "b.wav").exists())
    with wave.open(str(tmp_path / "b.wav")) as wav:
        seconds = wav.getnframes() / 8000
    assert 0.8 < seconds < 4.0  # ~1 s bridged; the 4 s outside the bridge are not in it


async def test_hangup_of_another_channel_and_exec_hangup(emu, manager):
    op, cl = await two_legs(manager, emu, "05")
    await agi(manager, op, f"HANGUP {cl}")
    await agi(manager, op, "HANGUP PJSIP/nobody-1")
    await agi(manager, op, "HANGUP a b")
    got = await results(manager, "op-05", 3)
    assert got[:2] == ["200 result=1\n", "200 result=-1\n"] and got[2].startswith("520-")
    assert (await hung_up(manager, "cl-05")).cause == "0"
    assert "op-05" in emu.channels
    await agi(manager, op, "EXEC Hangup 17")
    hangup = await hung_up(manager, "op-05")
    assert (await results(manager, "op-05", 4))[3] == "200 result=-1\n"
    assert hangup.cause == "17"


async def test_application_originate_does_not_run_the_dialplan(tmp_path):
    emu = AmiEmulator(username=USER, secret=SECRET, speed=SPEED, async_agi_contexts=("default",))
    emu.set_behaviour("79160000020", Behaviour.answers(0.1, hangup_after=0.5))
    await emu.start()
    mgr = make_manager(emu)
    try:
        await mgr.connect()
        await asyncio.wait_for(mgr.authenticated_future, 5)
        _, result = await mgr.send_action(
            {
                "Action": "Originate",
                "Channel": "PJSIP/79160000020@trunk",
                "Application": "Playback",
                "Data": "x",
                "Async": "true",
            }
        )
        assert result.response == "Success"
        await wait_until(lambda: emu.events_named("Hangup"))
        assert not emu.events_named("AsyncAGIStart")
    finally:
        mgr.close()
        await emu.stop()


async def test_mixmonitor_formats_follow_the_extension(emu, manager, tmp_path):
    channel = await leg(manager, emu, "79160000021", "leg-21", Behaviour.answers(0.1, hangup_after=2.0))
    for name in ("noext", "op.ulaw", "op.xyz"):
        await agi(manager, channel, f"EXEC MixMonitor {tmp_path}/f/{name}")
    await agi(manager, channel, "EXEC MixMonitor")  # no file name: -1
    got = await results(manager, "leg-21", 4)
    assert got == ["200 result=0\n"] * 3 + ["200 result=-1\n"]
    await hung_up(manager, "leg-21")
    await wait_until(lambda: (tmp_path / "f" / "noext.raw").exists())
    assert (tmp_path / "f" / "noext.raw").stat().st_size % 2 == 0
    assert set((tmp_path / "f" / "op.ulaw").read_bytes()) == {0xFF}  # ulaw silence
    assert not (tmp_path / "f" / "op.xyz").exists()  # no such format module
    assert [r["path"] for r in emu.agi.recordings] == [f"{tmp_path}/f/{n}" for n in ("noext", "op.ulaw", "op.xyz")]


async def test_showdialplan_lists_the_shipped_context_and_refuses_an_unknown_one():
    emu = AmiEmulator(
        username="perezvon", secret="s3cret", async_agi_contexts=("perezvon-leg",), dialplan={"default": ["s", "_X."]}
    )
    await emu.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
        await reader.readline()
        writer.write(b"Action: Login\r\nUsername: perezvon\r\nSecret: s3cret\r\nEvents: off\r\n\r\n")
        writer.write(b"Action: ShowDialPlan\r\nActionID: d1\r\nContext: perezvon-leg\r\n\r\n")
        writer.write(b"Action: ShowDialPlan\r\nActionID: d2\r\nContext: nowhere\r\n\r\n")
        text = ""
        while "Did not find context nowhere" not in text:
            text += (await asyncio.wait_for(reader.read(65536), 5)).decode()
        writer.close()
    finally:
        await emu.stop()
    listing = text.split("ActionID: d1", 1)[1]
    assert "EventList: start\r\nMessage: DialPlan list will follow" in listing
    steps = [(p, app) for p, (app, _) in sorted(PEREZVON_DIALPLAN.items())]
    for priority, app in steps:
        assert f"Extension: s\r\nPriority: {priority}\r\nApplication: {app}\r\n" in listing
    assert (
        f"Event: ShowDialPlanComplete\r\nActionID: d1\r\nEventList: Complete\r\n"
        f"ListItems: {len(steps)}\r\nListExtensions: 1\r\nListPriorities: {len(steps)}\r\nListContexts: 1"
    ) in text
    assert "Response: Error\r\nActionID: d2\r\nMessage: Did not find context nowhere" in text


# ------------------------------------------------------------------ music on hold
async def test_set_music_like_res_agi(emu, manager, tmp_path):
    write_wav(tmp_path / "sounds" / "beep.wav", 0.2)
    channel = await leg(manager, emu, "79160000040", "leg-40")
    commands = [
        "SET MUSIC",  # too few words: the usage
        "SET MUSIC ON",  # no class: "default"
        "set music on jazz",  # a class musiconhold.conf lacks: "default" again (a new generator)
        "SET MUSIC OFF",
        "SET MUSIC OFF",  # nothing plays: no event
        "SET MUSIC maybe",  # neither on nor off: nothing, still 0
        "SET MUSIC ONWARDS Default",  # strncasecmp(.., "on", 2); the class found case-insensitively
        'STREAM FILE beep ""',  # a file stops the music for good
    ]
    for command in commands:
        await agi(manager, channel, command)
    got = await results(manager, "leg-40", len(commands))
    assert got[0].startswith("520-Invalid command syntax.  Proper usage follows:\nSET MUSIC")
    assert got[1:7] == ["200 result=0\n"] * 6
    assert got[7] == "200 result=0 endpos=1600\n"
    starts = of(manager, "leg-40", "MusicOnHoldStart")
    assert [e["Class"] for e in starts] == ["default", "default", "default"]
    assert len(of(manager, "leg-40", "MusicOnHoldStop")) == 3  # replaced, OFF, the file
    assert [(m["asked"], m["stopped_by"]) for m in emu.agi.music] == [
        ("", "SET MUSIC ON"),
        ("jazz", "SET MUSIC OFF"),
        ("Default", "file"),
    ]
    assert all(e.privilege == "call,all" for e in starts)


async def test_set_music_without_the_class_plays_nothing_and_hangup_stops_it(tmp_path):
    emulator = AmiEmulator(
        username=USER,
        secret=SECRET,
        speed=SPEED,
        async_agi_contexts=("perezvon-leg",),
        moh_classes=("waiting",),  # no "default"
    )
    await emulator.start()
    mgr = make_manager(emulator)
    mgr.emu = emulator
    await mgr.connect()
    try:
        assert (await asyncio.wait_for(mgr.authenticated_future, 5)).success
        channel = await leg(mgr, emulator, "79160000041", "leg-41")
        await agi(mgr, channel, "SET MUSIC ON jazz")  # unknown, and no default: -1 inside, 0 outside
        await agi(mgr, channel, "SET MUSIC ON WAITING")
        assert await results(mgr, "leg-41", 2) == ["200 result=0\n", "200 result=0\n"]
        assert [e["Class"] for e in of(mgr, "leg-41", "MusicOnHoldStart")] == ["waiting"]
        emulator.far_end_hangup(channel, 16)
        await hung_up(mgr, "leg-41")
        names = [e.event for e in of(mgr, "leg-41")]
        assert names.index("MusicOnHoldStop") < names.index("Hangup")
        assert [m["stopped_by"] for m in emulator.agi.music] == ["hangup"]
    finally:
        mgr.close()
        await emulator.stop()
