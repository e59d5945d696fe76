"""The AMI emulator (tests/ami_emulator) against the real panoramisk client and raw sockets.

What each expectation rests on (Asterisk source file and function) is in
docs/ami-emulator.md; the comments here name it briefly.
"""

from __future__ import annotations

import asyncio
import hashlib
import re

import panoramisk
import pytest
from ami_emulator import AmdEvent, AmiEmulator, Behaviour, Dtmf, User, UserEventSpec
from ami_emulator import facts as F

USER, SECRET = "perezvon", "s3cret"
TRUNK = "PJSIP/{}@trunk"


# ----------------------------------------------------------------------------- helpers
async def wait_until(predicate, timeout: float = 3.0, step: float = 0.005):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


def make_manager(emu: AmiEmulator, secret: str = SECRET, **config) -> panoramisk.Manager:
    config.setdefault("ping_delay", 3600)  # no background pings unless a test wants them
    config.setdefault("reconnect_timeout", 0)
    manager = panoramisk.Manager(
        host="127.0.0.1", port=emu.port, username=USER, secret=secret, loop=asyncio.get_running_loop(), **config
    )
    manager.seen = []
    manager.register_event("*", lambda mgr, event: mgr.seen.append(event))
    return manager


async def login(manager: panoramisk.Manager):
    await manager.connect()
    return await asyncio.wait_for(manager.authenticated_future, 5)


class Raw:
    """A raw AMI connection, for protocol details panoramisk hides."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, banner: bytes):
        self.reader, self.writer, self.banner = reader, writer, banner

    @classmethod
    async def open(cls, emu: AmiEmulator, *, login: bool = False, events: str = "off") -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
        banner = await asyncio.wait_for(reader.readline(), 2)
        raw = cls(reader, writer, banner)
        if login:
            await raw.send(f"Action: Login\r\nUsername: {USER}\r\nSecret: {SECRET}\r\nEvents: {events}\r\n\r\n")
            assert (await raw.message())["Message"] == "Authentication accepted"
        return raw

    async def send(self, text: str | bytes) -> None:
        self.writer.write(text.encode() if isinstance(text, str) else text)
        await self.writer.drain()

    async def block(self, timeout: float = 2.0) -> str:
        data = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        return data.decode()

    async def message(self, timeout: float = 2.0) -> dict[str, str]:
        text = await self.block(timeout)
        fields: dict[str, str] = {}
        for line in text.split("\r\n"):
            if ": " in line:
                key, value = line.split(": ", 1)
                fields.setdefault(key, value)
        return fields

    async def action(self, text: str, timeout: float = 2.0) -> dict[str, str]:
        await self.send(text)
        return await self.message(timeout)

    async def closed(self, timeout: float = 2.0) -> bool:
        try:
            data = await asyncio.wait_for(self.reader.read(), timeout)
        except ConnectionError:
            return True
        return data == b""

    def close(self) -> None:
        self.writer.close()


def originate(number: str, **extra) -> dict[str, str]:
    action = {
        "Action": "Originate",
        "Channel": TRUNK.format(number),
        "Context": "perezvon",
        "Exten": "s",
        "Priority": "1",
        "Async": "true",
        "Timeout": "30000",
    }
    action.update(extra)
    return action


def events_for(manager: panoramisk.Manager, uniqueid: str) -> list:
    return [e for e in manager.seen if uniqueid in (e.get("Uniqueid"), e.get("DestUniqueid"))]


@pytest.fixture
async def emu():
    emulator = AmiEmulator(username=USER, secret=SECRET, speed=50)
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def manager(emu):
    mgr = make_manager(emu)
    response = await login(mgr)
    assert response.success
    yield mgr
    mgr.close()


# ----------------------------------------------------------------- banner and login
async def test_banner_is_the_ami_version_line(emu):
    raw = await Raw.open(emu)
    assert raw.banner == b"Asterisk Call Manager/11.0.0\r\n"  # Asterisk 22: AMI_VERSION 11.0.0
    raw.close()
    old = AmiEmulator(username=USER, secret=SECRET, asterisk_version=(18, 20, 0), reason_model="chan_sip")
    await old.start()
    try:
        raw = await Raw.open(old)
        assert raw.banner == b"Asterisk Call Manager/7.0.3\r\n"
        raw.close()
    finally:
        await old.stop()


async def test_panoramisk_logs_in_and_reads_the_version(emu, manager):
    assert manager.authenticated
    assert manager.protocol.version == "11.0.0"
    # action_login(): FullyBooted follows a successful login when system events are on
    await wait_until(lambda: any(e.event == "FullyBooted" for e in manager.seen))
    login_action = emu.actions("Login")[0]
    assert login_action["Username"] == USER and login_action["Events"] == "on"


async def test_wrong_secret_is_refused_and_the_connection_closed(emu):
    raw = await Raw.open(emu)
    started = asyncio.get_running_loop().time()
    reply = await raw.action("Action: Login\r\nActionID: L1\r\nUsername: perezvon\r\nSecret: nope\r\n\r\n")
    assert reply == {"Response": "Error", "ActionID": "L1", "Message": "Authentication failed"}
    assert asyncio.get_running_loop().time() - started >= 1.0 / emu.speed * 0.9  # sleep(1) first
    assert await raw.closed()


async def test_wrong_secret_with_panoramisk(emu):
    mgr = make_manager(emu, secret="wrong")
    response = await login(mgr)
    mgr.close()
    assert response.response == "Error" and response.message == "Authentication failed"
    assert not mgr.authenticated


async def test_unknown_user_and_missing_username_fail_alike(emu):
    for body in ("Username: nobody\r\nSecret: x\r\n", "Secret: s3cret\r\n"):
        raw = await Raw.open(emu)
        reply = await raw.action(f"Action: Login\r\n{body}\r\n")
        assert reply["Message"] == "Authentication failed"
        assert await raw.closed()


async def test_md5_challenge_login(emu):
    raw = await Raw.open(emu)
    reply = await raw.action("Action: Challenge\r\nAuthType: md5\r\nActionID: c\r\n\r\n")
    assert reply["Response"] == "Success" and reply["ActionID"] == "c"
    key = hashlib.md5((reply["Challenge"] + SECRET).encode()).hexdigest()
    reply = await raw.action(f"Action: Login\r\nAuthType: MD5\r\nUsername: {USER}\r\nKey: {key}\r\nEvents: off\r\n\r\n")
    assert reply["Message"] == "Authentication accepted"
    reply = await raw.action("Action: Challenge\r\n\r\n")
    assert reply["Message"] == "Must specify AuthType"
    raw.close()


async def test_second_login_on_a_session_is_acknowledged(emu):
    raw = await Raw.open(emu, login=True)
    reply = await raw.action(f"Action: Login\r\nUsername: {USER}\r\nSecret: whatever\r\n\r\n")
    assert reply == {"Response": "Success", "Message": "Already authenticated"}
    raw.close()


async def test_everything_but_login_logoff_challenge_needs_a_login(emu):
    raw = await Raw.open(emu)
    for action in ("Ping", "Originate", "NoSuchThing", "Events"):
        reply = await raw.action(f"Action: {action}\r\nActionID: {action}-1\r\n\r\n")
        assert reply == {"Response": "Error", "ActionID": f"{action}-1", "Message": "Permission denied"}
    reply = await raw.action("Action: Logoff\r\nActionID: bye\r\n\r\n")
    assert reply == {"Response": "Goodbye", "ActionID": "bye", "Message": "Thanks for all the fish."}
    assert await raw.closed()


async def test_unauthenticated_connection_times_out():
    emu = AmiEmulator(username=USER, secret=SECRET, speed=100)  # authtimeout 30 s -> 0.3 s
    await emu.start()
    try:
        raw = await Raw.open(emu)
        assert await raw.closed(timeout=2)
    finally:
        await emu.stop()


# ---------------------------------------------------------------------- framing
async def test_action_ids_are_echoed_and_keys_are_case_insensitive(emu):
    raw = await Raw.open(emu, login=True)
    reply = await raw.action("action: ping\r\nACTIONID: abc-1\r\n\r\n")
    assert reply["Response"] == "Success" and reply["ActionID"] == "abc-1" and reply["Ping"] == "Pong"
    assert re.fullmatch(r"\d+\.\d{6}", reply["Timestamp"])
    # no ActionID sent -> none echoed
    await raw.send("Action: Ping\r\n\r\n")
    assert "ActionID" not in await raw.block()
    # bare LF line ends are accepted too (get_input)
    reply = await raw.action("Action: Ping\nActionID: lf\n\n")
    assert reply["ActionID"] == "lf" and reply["Ping"] == "Pong"
    raw.close()


async def test_unknown_action_after_login(emu):
    raw = await Raw.open(emu, login=True)
    reply = await raw.action("Action: Frobnicate\r\nActionID: 7\r\n\r\n")
    assert reply == {
        "Response": "Error",
        "ActionID": "7",
        "Message": "Invalid/unknown command: Frobnicate. Use Action: ListCommands to show available commands.",
    }
    # trailing blanks are part of the value (only leading blanks are skipped)
    reply = await raw.action("Action: Ping \r\n\r\n")
    assert reply["Message"].startswith("Invalid/unknown command: Ping . ")
    raw.close()


async def test_malformed_headers(emu):
    raw = await Raw.open(emu, login=True)
    # a line without a colon is kept but never matches a header: it is ignored
    reply = await raw.action("Action: Ping\r\nthis line has no colon\r\nActionID: 9\r\n\r\n")
    assert reply["Ping"] == "Pong" and reply["ActionID"] == "9"
    # a blank before the colon makes it another header name
    reply = await raw.action("Action : Ping\r\nActionID: 10\r\n\r\n")
    assert reply == {"Response": "Error", "ActionID": "10", "Message": "Missing action in request"}
    # an empty line alone is an empty message
    reply = await raw.action("\r\n")
    assert reply == {"Response": "Error", "Message": "Missing action in request"}
    # no space after the colon is fine
    reply = await raw.action("Action:Ping\r\nActionID:11\r\n\r\n")
    assert reply["ActionID"] == "11" and reply["Ping"] == "Pong"
    raw.close()


async def test_line_too_long_and_too_many_headers(emu):
    raw = await Raw.open(emu, login=True)
    reply = await raw.action("Action: Ping\r\nActionID: long\r\nX-Filler: " + "y" * 2000 + "\r\n\r\n")
    assert reply["Message"] == "Failed to parse message: line too long"
    assert reply["ActionID"] == "long"
    reply = await raw.action("Action: Ping\r\nActionID: ok\r\nX-Filler: " + "y" * 1000 + "\r\n\r\n")
    assert reply["Ping"] == "Pong"  # 1010 bytes + CRLF fit the 1024-byte buffer
    many = "".join(f"X-H{i}: {i}\r\n" for i in range(130))
    reply = await raw.action(f"Action: Ping\r\nActionID: many\r\n{many}\r\n")
    assert reply["Message"] == "Too many lines in message or allocation failure"
    assert reply["ActionID"] == "many"
    reply = await raw.action("Action: Ping\r\nActionID: after\r\n\r\n")
    assert reply["Ping"] == "Pong"
    raw.close()


async def test_events_off_at_login_and_events_action(emu):
    emu.set_behaviour("100", Behaviour.answers(0.2, hangup_after=0.2))
    raw = await Raw.open(emu, login=True, events="off")
    reply = await raw.action(
        "Action: Originate\r\nActionID: o\r\nChannel: PJSIP/100@trunk\r\n"
        "Context: perezvon\r\nExten: s\r\nPriority: 1\r\nAsync: yes\r\n\r\n"
    )
    assert reply["Message"] == "Originate successfully queued"
    await wait_until(lambda: emu.events_named("Hangup"))
    reply = await raw.action("Action: Ping\r\nActionID: p\r\n\r\n")
    assert reply["ActionID"] == "p"  # nothing queued before the Pong: no events were sent
    reply = await raw.action("Action: Events\r\nActionID: e\r\nEventMask: call\r\n\r\n")
    assert reply == {"Response": "Success", "ActionID": "e", "Events": "On"}
    reply = await raw.action("Action: Events\r\nEventMask: off\r\n\r\n")
    assert reply == {"Response": "Success", "Events": "Off"}
    reply = await raw.action("Action: Events\r\n\r\n")
    assert reply == {"Response": "Error", "Message": "Invalid event mask"}
    raw.close()


async def test_event_mask_limits_classes(emu):
    emu.set_behaviour("100", Behaviour.answers(0.2, hangup_after=0.5, dtmf=[Dtmf(0.1, "5")]))
    mgr = make_manager(emu, events="dtmf")
    await login(mgr)
    future = mgr.send_action(originate("100"))
    # wait for what the client must see (under load it lags the emulator), then for strays
    await wait_until(lambda: emu.events_named("Hangup") and {"DTMFBegin", "DTMFEnd"} <= {e.event for e in mgr.seen})
    await asyncio.sleep(0.05)
    mgr.close()
    assert {e.event for e in mgr.seen} == {"DTMFBegin", "DTMFEnd"}  # no FullyBooted, no call events
    # OriginateResponse is a "call" event: filtered out, so panoramisk's future never resolves
    assert not future.done()


# ------------------------------------------------------------------ Originate checks
@pytest.mark.parametrize(
    "headers, message",
    [
        ({"Channel": ""}, "Channel not specified"),
        ({"Channel": "trunk-without-tech"}, "Invalid channel"),
        ({"Timeout": "soon"}, "Invalid timeout"),
        ({"Priority": "start"}, "Invalid priority"),  # labels need a dialplan
        ({"ChannelId": "x" * 150}, "Uniqueid length exceeds maximum of 149\n"),
        ({"Async": "false", "Priority": "", "Exten": ""}, "Originate with 'Exten' requires 'Context' and 'Priority'"),
        ({"Exten": "", "Context": ""}, "Extension does not exist."),  # Priority 1 but nowhere to go
        ({"Application": "System", "Data": "rm -rf /"}, "Originate Access Forbidden: app or data blacklisted"),
        ({"Application": "Playback", "Data": "${SHELL(id)}"}, "Originate Access Forbidden: app or data blacklisted"),
    ],
)
async def test_originate_validation(emu, headers, message):
    emu.users[USER].write = F.EVERY_PERMISSION & ~F.SYSTEM  # a normal user, not "system"
    raw = await Raw.open(emu, login=True)
    action = originate("100", ActionID="v")
    action.update(headers)
    text = "".join(f"{k}: {v}\r\n" for k, v in action.items()) + "\r\n"
    await raw.send(text)
    block = await raw.block()
    assert block == f"Response: Error\r\nActionID: v\r\nMessage: {message}\r\n\r\n"
    assert not emu.events_named("Newchannel")
    raw.close()


async def test_originate_needs_the_originate_write_permission(emu):
    emu.users["reader"] = User("pw", write=F.CALL | F.SYSTEM)
    raw = await Raw.open(emu)
    await raw.action("Action: Login\r\nUsername: reader\r\nSecret: pw\r\nEvents: off\r\n\r\n")
    reply = await raw.action("Action: Originate\r\nChannel: PJSIP/1@trunk\r\nApplication: Wait\r\n\r\n")
    assert reply["Message"] == "Permission denied"
    raw.close()


async def test_extension_must_exist_in_the_dialplan():
    emu = AmiEmulator(username=USER, secret=SECRET, speed=50, dialplan={"perezvon": ["s", "_X."], "other": ["100"]})
    await emu.start()
    try:
        raw = await Raw.open(emu, login=True)
        reply = await raw.action(
            "Action: Originate\r\nChannel: PJSIP/1@trunk\r\nContext: nowhere\r\n"
            "Exten: s\r\nPriority: 1\r\nAsync: true\r\n\r\n"
        )
        assert reply["Message"] == "Extension does not exist."
        reply = await raw.action(
            "Action: Originate\r\nChannel: PJSIP/1@trunk\r\nContext: perezvon\r\n"
            "Exten: 79161234567\r\nPriority: 1\r\nAsync: true\r\n\r\n"
        )
        assert reply["Message"] == "Originate successfully queued"
        raw.close()
    finally:
        await emu.stop()


async def test_async_originate_without_a_destination_is_accepted(emu):
    # action_originate() only insists on Exten/Context/Priority for a synchronous Originate
    raw = await Raw.open(emu, login=True)
    reply = await raw.action("Action: Originate\r\nChannel: PJSIP/1@trunk\r\nAsync: 1\r\n\r\n")
    assert reply["Message"] == "Originate successfully queued"
    raw.close()


# ------------------------------------------------------------- calls and their events
async def test_answered_call_event_stream(emu, manager):
    emu.set_behaviour("79161234567", Behaviour.answers(1.0, hangup_after=2.0))
    responses = await manager.send_action(
        originate(
            "79161234567",
            ChannelId="lead-42-op",
            CallerID='"Perezvon" <74951234567>',
            Variable=["LEAD=42,LEG=operator", "ATTEMPT=1"],
        )
    )
    response, result = responses
    assert response.response == "Success" and response.message == "Originate successfully queued"
    assert result.event == "OriginateResponse"
    assert result.response == "Success" and result.reason == "4"
    assert result.actionid == response.actionid
    assert result.uniqueid == "lead-42-op"  # ChannelId honoured
    assert re.fullmatch(r"PJSIP/trunk-[0-9a-f]{8}", result.channel)
    assert (result.context, result.exten, result.calleridnum, result.calleridname) == (
        "perezvon",
        "s",
        "74951234567",
        "Perezvon",
    )
    await wait_until(lambda: any(e.event == "Hangup" for e in events_for(manager, "lead-42-op")))
    stream = events_for(manager, "lead-42-op")
    names = [e.event for e in stream]
    assert names[0] == "Newchannel" and stream[0].channelstate == "0"
    # astman_get_variables() hands them over in reverse order
    assert [(e.variable, e.value) for e in stream if e.event == "VarSet"] == [
        ("ATTEMPT", "1"),
        ("LEG", "operator"),
        ("LEAD", "42"),
    ]
    assert names.index("DialBegin") < names.index("DialState") < names.index("DialEnd")
    states = [(e.channelstate, e.channelstatedesc) for e in stream if e.event == "Newstate"]
    assert states == [("5", "Ringing"), ("6", "Up")]
    assert [e.dialstatus for e in stream if e.event == "DialEnd"] == ["ANSWER"]
    assert stream[names.index("DialBegin")].dialstring == "79161234567@trunk"
    hangup = stream[-1]
    assert hangup.event == "Hangup" and hangup.cause == "16" and hangup["Cause-txt"] == "Normal Clearing"
    assert hangup.context == "perezvon" and hangup.exten == "s"  # the dialplan took over
    assert names[-2] == "HangupRequest"
    # the OriginateResponse went to the action's future, not to the event callbacks
    assert "OriginateResponse" not in names


FAILURES_PJSIP = [
    # behaviour,                    cause, cause text,                  reason, DialEnd status
    (Behaviour.busy(), 17, "User busy", 0, "BUSY"),
    (Behaviour.declines(0.3), 21, "Call Rejected", 0, "NOANSWER"),
    (Behaviour.unallocated(), 1, "Unallocated (unassigned) number", 0, "NOANSWER"),
    (Behaviour.congestion(), 34, "Circuit/channel congestion", 0, "CONGESTION"),
    (Behaviour.unavailable(), 19, "User alerting, no answer", 0, "NOANSWER"),
    (Behaviour.rejects(408, 0.2), 18, "No user responding", 0, "NOANSWER"),
]


@pytest.mark.parametrize("behaviour, cause, text, reason, status", FAILURES_PJSIP)
async def test_rejections_with_chan_pjsip(emu, manager, behaviour, cause, text, reason, status):
    emu.set_behaviour("79160000001", behaviour)
    response, result = await manager.send_action(originate("79160000001", ChannelId="fail-1"))
    assert result.response == "Failure" and result.reason == str(reason)
    # no channel comes back: the requested dial string and the ChannelId (or "<unknown>")
    assert result.channel == "PJSIP/79160000001@trunk" and result.uniqueid == "fail-1"
    await wait_until(lambda: any(e.event == "Hangup" for e in events_for(manager, "fail-1")))
    stream = events_for(manager, "fail-1")
    hangup = [e for e in stream if e.event == "Hangup"][0]
    assert (hangup.cause, hangup["Cause-txt"]) == (str(cause), text)
    assert hangup.techcause == str(behaviour.reject_code)  # Asterisk 22.7+
    assert [e.dialstatus for e in stream if e.event == "DialEnd"] == [status]
    assert [e.cause for e in stream if e.event == "HangupRequest"] == [str(cause)]


FAILURES_CHAN_SIP = [
    (Behaviour.busy(), 17, 5, "BUSY"),
    (Behaviour.declines(0.3), 21, 5, "BUSY"),  # as observed on a real Asterisk with chan_sip
    (Behaviour.unavailable(), 19, 5, "BUSY"),
    (Behaviour.unallocated(), 1, 0, "NOANSWER"),
    (Behaviour.congestion(), 34, 8, "CONGESTION"),
]


@pytest.mark.parametrize("behaviour, cause, reason, status", FAILURES_CHAN_SIP)
async def test_rejections_with_chan_sip(behaviour, cause, reason, status):
    emu = AmiEmulator(username=USER, secret=SECRET, speed=50, asterisk_version=(18, 20, 0), reason_model="chan_sip")
    emu.set_behaviour("79160000002", behaviour)
    await emu.start()
    mgr = make_manager(emu)
    try:
        await login(mgr)
        _, result = await mgr.send_action(originate("79160000002", Channel="SIP/trunk/79160000002"))
        assert result.response == "Failure" and result.reason == str(reason)
        await wait_until(lambda: any(e.event == "Hangup" for e in mgr.seen))
        hangup = [e for e in mgr.seen if e.event == "Hangup"][0]
        assert hangup.cause == str(cause) and "TechCause" not in hangup
        assert [e.dialstatus for e in mgr.seen if e.event == "DialEnd"] == [status]
    finally:
        mgr.close()
        await emu.stop()


@pytest.mark.parametrize("version, cause", [((22, 8, 0), 19), ((22, 7, 0), 0), ((20, 18, 0), 19), ((21, 12, 0), 0)])
async def test_no_answer_times_out_with_reason_3(version, cause):
    emu = AmiEmulator(username=USER, secret=SECRET, speed=50, asterisk_version=version)
    emu.set_behaviour("79160000003", Behaviour.no_answer())
    await emu.start()
    mgr = make_manager(emu)
    try:
        await login(mgr)
        _, result = await mgr.send_action(originate("79160000003", Timeout="20000"))
        assert result.response == "Failure" and result.reason == "3"
        await wait_until(lambda: any(e.event == "Hangup" for e in mgr.seen))
        hangup = [e for e in mgr.seen if e.event == "Hangup"][0]
        assert hangup.cause == str(cause)
        names = [e.event for e in mgr.seen]
        assert "DialEnd" not in names and "HangupRequest" not in names  # handle_timeout_trip()
        assert [e.channelstatedesc for e in mgr.seen if e.event == "Newstate"] == ["Ringing"]
    finally:
        mgr.close()
        await emu.stop()


async def test_unknown_endpoint_fails_without_a_channel(emu, manager):
    _, result = await manager.send_action(originate("1", Channel="PJSIP/79161234567@nosuchtrunk"))
    assert (result.response, result.reason, result.uniqueid) == ("Failure", "0", "<unknown>")
    _, result = await manager.send_action(originate("1", Channel="Dahdi/g1/79161234567"))
    assert (result.response, result.reason) == ("Failure", "0")
    assert not emu.events_named("Newchannel")


async def test_channel_id_in_use_fails(emu, manager):
    emu.set_behaviour("500", Behaviour.answers(0.1))
    _, first = await manager.send_action(originate("500", ChannelId="same"))
    assert first.reason == "4"
    _, second = await manager.send_action(originate("500", ChannelId="same"))
    assert (second.response, second.reason, second.uniqueid) == ("Failure", "0", "same")
    assert len(emu.events_named("Newchannel")) == 1


async def test_dtmf_events(emu, manager):
    emu.set_behaviour(
        "600", Behaviour.answers(0.2, hangup_after=20.0, dtmf=Dtmf.sequence("1#", start=0.5, gap=0.5, duration_ms=150))
    )
    _, result = await manager.send_action(originate("600", ChannelId="dtmf-1"))
    await wait_until(lambda: sum(e.event == "DTMFEnd" for e in manager.seen) == 2)
    dtmf = [e for e in events_for(manager, "dtmf-1") if e.event.startswith("DTMF")]
    assert [(e.event, e.digit, e.direction) for e in dtmf] == [
        ("DTMFBegin", "1", "Received"),
        ("DTMFEnd", "1", "Received"),
        ("DTMFBegin", "#", "Received"),
        ("DTMFEnd", "#", "Received"),
    ]
    assert [e.durationms for e in dtmf if e.event == "DTMFEnd"] == ["150", "150"]
    assert dtmf[0].privilege == "dtmf,all"
    # Asterisk -> phone digits through the PlayDTMF action come out as Sent.  Its reply
    # "DTMF successfully queued" trips panoramisk 1.4 unless the action has an Async key
    # (see test_panoramisk_needs_async_on_successfully_queued_replies).
    reply = await manager.send_action({"Action": "PlayDTMF", "Channel": result.channel, "Digit": "7", "Async": "false"})
    assert reply.message == "DTMF successfully queued"
    await wait_until(lambda: any(e.event == "DTMFEnd" and e.direction == "Sent" for e in manager.seen))
    reply = await manager.send_action({"Action": "PlayDTMF", "Channel": "PJSIP/nope-1", "Digit": "7"})
    assert reply.message == "Channel not found"


async def test_answering_machine_reported_by_the_dialplan_shape(emu, manager):
    emu.set_behaviour("700", Behaviour.answering_machine(0.2, amd_after=0.5, hangup_after=1.0))
    await manager.send_action(originate("700", ChannelId="amd-1"))
    await wait_until(lambda: any(e.event == "Hangup" for e in events_for(manager, "amd-1")))
    stream = events_for(manager, "amd-1")
    assert [(e.variable, e.value) for e in stream if e.event == "VarSet"] == [
        ("AMDSTATUS", "MACHINE"),
        ("AMDCAUSE", "LONGGREETING-1600-1500"),
    ]
    user = [e for e in stream if e.event == "UserEvent"]
    assert [(u.userevent, u.status, u.cause) for u in user] == [("PerezvonAMD", "MACHINE", "LONGGREETING-1600-1500")]


async def test_amd_event_shape_is_configurable():
    emu = AmiEmulator(
        username=USER,
        secret=SECRET,
        speed=50,
        amd_event=AmdEvent(name="CallbackAMD", status_header="AmdStatus", cause_header=None, extra={"Leg": "client"}),
    )
    emu.set_behaviour(
        "701",
        Behaviour.human(
            0.1, amd_after=0.2, hangup_after=0.5, user_events=[UserEventSpec(0.3, "Stage", {"Step": "ivr"})]
        ),
    )
    await emu.start()
    mgr = make_manager(emu)
    try:
        await login(mgr)
        await mgr.send_action(originate("701"))
        await wait_until(lambda: any(e.event == "Hangup" for e in mgr.seen))
        user = [e for e in mgr.seen if e.event == "UserEvent"]
        assert [(u.userevent, u.amdstatus, u.leg, u.step) for u in user] == [
            ("CallbackAMD", "HUMAN", "client", ""),
            ("Stage", "", "", "ivr"),
        ]
        assert "Cause" not in user[0]
    finally:
        mgr.close()
        await emu.stop()


async def test_scripted_far_end(emu, manager):
    async def script(call):
        await call.sleep(0.2)
        await call.dtmf("42", gap=0.1)
        call.user_event("PerezvonStage", Stage="bridged")
        await call.sleep(0.2)
        call.hangup(cause=17)

    emu.set_behaviour("800", Behaviour.answers(0.1, script=script))
    await manager.send_action(originate("800", ChannelId="script-1"))
    await wait_until(lambda: any(e.event == "Hangup" for e in events_for(manager, "script-1")))
    stream = events_for(manager, "script-1")
    assert [e.digit for e in stream if e.event == "DTMFEnd"] == ["4", "2"]
    assert [e.stage for e in stream if e.event == "UserEvent"] == ["bridged"]
    assert [e.cause for e in stream if e.event == "Hangup"] == ["17"]


async def test_ami_hangup(emu, manager):
    emu.set_behaviour("900", Behaviour.answers(0.1))
    _, result = await manager.send_action(originate("900"))
    reply = await manager.send_action({"Action": "Hangup", "Channel": result.channel, "Cause": "16"})
    assert reply.message == "Channel Hungup"
    await wait_until(lambda: any(e.event == "Hangup" for e in manager.seen))
    assert [e.cause for e in manager.seen if e.event == "Hangup"] == ["16"]
    reply = await manager.send_action({"Action": "Hangup", "Channel": result.channel})
    assert reply.response == "Error" and reply.message == "No such channel"
    reply = await manager.send_action({"Action": "Hangup"})
    assert reply.message == "No channel specified"


async def test_ami_hangup_while_ringing_fails_the_originate(emu, manager):
    emu.set_behaviour("901", Behaviour.no_answer())
    future = manager.send_action(originate("901", ChannelId="ring-1"))
    await wait_until(lambda: any(e.event == "DialState" for e in manager.seen))
    reply = await manager.send_action({"Action": "Hangup", "Channel": "ring-1"})  # by uniqueid
    assert reply.message == "Channel Hungup"
    _, result = await asyncio.wait_for(future, 2)
    assert (result.response, result.reason) == ("Failure", "0")
    assert [e.cause for e in manager.seen if e.event == "Hangup"] == ["0"]


async def test_hangup_by_regex_is_a_list(emu, manager):
    emu.set_behaviour("902", Behaviour.answers(0.1))
    await manager.send_action(originate("902"))
    await manager.send_action(originate("902"))
    replies = await manager.send_action({"Action": "Hangup", "Channel": "/^PJSIP/trunk-/"})
    assert replies[0].eventlist == "start" and replies[-1].event == "ChannelsHungupListComplete"
    assert replies[-1].listitems == "2"
    assert len([r for r in replies if r.event == "ChannelHungup"]) == 2


async def test_synchronous_originate_blocks_the_session(emu):
    emu.set_behaviour("110", Behaviour.busy(0.5))
    emu.set_behaviour("111", Behaviour.answers(0.5, hangup_after=1))
    raw = await Raw.open(emu, login=True, events="on")
    await raw.message()  # FullyBooted
    await raw.send(
        "Action: Originate\r\nActionID: s1\r\nChannel: PJSIP/110@trunk\r\nApplication: Wait\r\nData: 1\r\n\r\n"
    )
    await raw.send("Action: Ping\r\nActionID: p1\r\n\r\n")
    first = await raw.message()
    assert first == {"Response": "Error", "ActionID": "s1", "Message": "Originate failed"}
    # the call's events waited for the response; the Ping waited for the Originate
    following = [await raw.message() for _ in range(6)]
    assert [m.get("Event") for m in following[:5]] == ["Newchannel", "DialBegin", "HangupRequest", "DialEnd", "Hangup"]
    assert following[5].get("ActionID") == "p1"
    assert not emu.events_named("OriginateResponse")  # only Async sends one
    reply = await raw.action(
        "Action: Originate\r\nActionID: s2\r\nChannel: PJSIP/111@trunk\r\n"
        "Context: perezvon\r\nExten: s\r\nPriority: 1\r\n\r\n"
    )
    assert reply["Message"] == "Originate successfully queued"
    raw.close()


async def test_originate_response_may_come_before_the_hangup():
    emu = AmiEmulator(username=USER, secret=SECRET, speed=50, originate_response_first=True)
    emu.set_behaviour("120", Behaviour.busy())
    await emu.start()
    try:
        raw = await Raw.open(emu, login=True, events="call")
        await raw.send(
            "Action: Originate\r\nActionID: r\r\nChannel: PJSIP/120@trunk\r\n"
            "Context: perezvon\r\nExten: s\r\nPriority: 1\r\nAsync: true\r\n\r\n"
        )
        names = [(await raw.message()).get("Event") for _ in range(7)]
        assert names == [None, "Newchannel", "DialBegin", "HangupRequest", "OriginateResponse", "DialEnd", "Hangup"]
        raw.close()
    finally:
        await emu.stop()


async def test_originate_response_goes_to_every_session(emu, manager):
    emu.set_behaviour("130", Behaviour.answers(0.1, hangup_after=0.1))
    watcher = await Raw.open(emu, login=True, events="call")
    _, result = await manager.send_action(originate("130", ActionID="mine"))
    blocks = []
    while not blocks or "Event: Hangup\r\n" not in blocks[-1]:
        blocks.append(await watcher.block())
    assert any("Event: OriginateResponse" in b and "ActionID: mine" in b for b in blocks)
    watcher.close()


async def test_list_response_with_panoramisk(emu, manager):
    emu.set_behaviour("140", Behaviour.answers(0.1))
    _, result = await manager.send_action(originate("140"))
    replies = await manager.send_action({"Action": "CoreShowChannels"})
    assert replies[0].response == "Success" and replies[0].eventlist == "start"
    assert replies[0].message == "Channels will follow"
    assert [r.event for r in replies[1:]] == ["CoreShowChannel", "CoreShowChannelsComplete"]
    assert replies[1].channel == result.channel and replies[1].channelstatedesc == "Up"
    assert replies[-1].listitems == "1"


async def test_setvar_getvar_userevent(emu, manager):
    emu.set_behaviour("150", Behaviour.answers(0.1))
    _, result = await manager.send_action(originate("150"))
    reply = await manager.send_action(
        {"Action": "Setvar", "Channel": result.channel, "Variable": "LEAD_ID", "Value": "42"}
    )
    assert reply.message == "Variable Set"
    reply = await manager.send_action({"Action": "Getvar", "Channel": result.channel, "Variable": "LEAD_ID"})
    assert (reply.response, reply.variable, reply.value) == ("Success", "LEAD_ID", "42")
    reply = await manager.send_action({"Action": "Getvar", "Channel": "PJSIP/none-1", "Variable": "X"})
    assert reply.message == "No such channel"
    reply = await manager.send_action({"Action": "UserEvent", "UserEvent": "Ping", "Lead": "42"})
    assert reply.message == "Event Sent"
    await wait_until(lambda: any(e.event == "UserEvent" for e in manager.seen))
    event = [e for e in manager.seen if e.event == "UserEvent"][0]
    assert event.userevent == "Ping" and event.lead == "42"


# ----------------------------------------------------------------------------- faults
async def test_drop_link_makes_panoramisk_reconnect(emu):
    logins = []
    mgr = make_manager(emu, on_login=lambda m: logins.append(m))
    await login(mgr)
    await wait_until(lambda: len(logins) == 1)
    emu.drop_link()
    await wait_until(lambda: len(logins) == 2)  # panoramisk 1.4 reconnects by itself
    assert emu.connections == 2 and len(emu.actions("Login")) == 2
    reply = await asyncio.wait_for(mgr.send_action({"Action": "Ping"}), 2)
    assert reply.ping == "Pong"
    mgr.close()


async def test_drop_link_with_listener_down(emu):
    logins = []
    mgr = make_manager(emu, on_login=lambda m: logins.append(m))
    await login(mgr)
    emu.drop_link(down_for=0.3)
    await asyncio.sleep(0.15)
    assert len(logins) == 1 and emu.connections == 1  # refused while down
    await wait_until(lambda: len(logins) == 2, timeout=5)
    mgr.close()


async def test_a_lost_response_makes_panoramisk_send_the_originate_twice(emu):
    """The hazard of a lost Originate answer (docs/asterisk.md), reproduced: Asterisk ran the Originate, the
    link died before the response, panoramisk re-sent it after FullyBooted -> two calls,
    and the future resolves with the *first* call's OriginateResponse (same ActionID)."""
    emu.set_behaviour("160", Behaviour.answers(5.0))
    logins = []
    mgr = make_manager(emu, on_login=lambda m: logins.append(m))
    await login(mgr)
    emu.drop_link_before_response("Originate")
    response, result = await asyncio.wait_for(mgr.send_action(originate("160")), 5)
    assert response.message == "Originate successfully queued" and result.reason == "4"
    originates = emu.actions("Originate")
    assert len(originates) == 2 and len(logins) == 2
    assert originates[0]["ActionID"] == originates[1]["ActionID"]  # same action, twice
    assert originates[0].session != originates[1].session
    first, second = emu.events_named("Newchannel")  # two calls placed
    assert result.uniqueid == first["Uniqueid"] != second["Uniqueid"]
    mgr.close()


async def test_a_channel_id_refuses_the_resent_duplicate(emu):
    """With a ChannelId the re-sent Originate fails while the first channel lives -- and
    panoramisk hands that refusal to the caller, although the first call goes on."""
    emu.set_behaviour("161", Behaviour.answers(5.0))
    logins = []
    mgr = make_manager(emu, on_login=lambda m: logins.append(m))
    await login(mgr)
    emu.drop_link_before_response("Originate")
    _, result = await asyncio.wait_for(mgr.send_action(originate("161", ChannelId="lead-7-1")), 5)
    assert (result.response, result.reason, result.uniqueid) == ("Failure", "0", "lead-7-1")
    assert len(emu.actions("Originate")) == 2 and len(emu.events_named("Newchannel")) == 1
    await wait_until(lambda: any(e.event == "Newstate" and e.channelstatedesc == "Up" for e in mgr.seen))
    mgr.close()


async def test_an_answered_originate_is_not_resent_and_its_future_hangs(emu):
    """After the first response panoramisk never re-sends, and never resolves the future."""
    emu.set_behaviour("170", Behaviour.answers(5.0))
    logins = []
    mgr = make_manager(emu, on_login=lambda m: logins.append(m))
    await login(mgr)
    future = mgr.send_action(originate("170"))
    await wait_until(lambda: any(e.name == "DialBegin" for e in emu.events))
    await asyncio.sleep(0.02)  # the "queued" response has been read
    emu.drop_link()
    await wait_until(lambda: len(logins) == 2)
    await wait_until(lambda: emu.events_named("OriginateResponse"))
    await asyncio.sleep(0.1)
    assert len(emu.actions("Originate")) == 1
    assert not future.done()
    mgr.close()


async def test_go_silent_ping_times_out(emu, manager):
    emu.go_silent()
    future = manager.send_action({"Action": "Ping"})
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(future), 0.3)
    assert not emu.actions("Ping")  # nothing was even read
    assert manager.protocol is not None and not manager.protocol.closed  # TCP still open
    emu.resume()
    reply = await asyncio.wait_for(future, 2)
    assert reply.ping == "Pong"


async def test_go_silent_holds_events_too(emu, manager):
    emu.set_behaviour("180", Behaviour.answers(0.2, hangup_after=5.0))
    await manager.send_action(originate("180"))
    await asyncio.sleep(0)
    emu.go_silent()
    seen_before = len(manager.seen)
    await wait_until(lambda: emu.events_named("Hangup"))
    await asyncio.sleep(0.05)
    assert len(manager.seen) == seen_before
    emu.resume()
    await wait_until(lambda: any(e.event == "Hangup" for e in manager.seen))


@pytest.mark.parametrize("kind", ["sync-originate", "playdtmf"])
async def test_panoramisk_needs_async_on_successfully_queued_replies(emu, kind):
    """panoramisk 1.4 reads ``action['async']`` for any reply ending in "successfully
    queued"; without that key the KeyError kills the connection (and it reconnects)."""
    emu.set_behaviour("190", Behaviour.answers(0.1))
    logins = []
    mgr = make_manager(emu, on_login=lambda m: logins.append(m))
    await login(mgr)
    if kind == "playdtmf":
        _, result = await mgr.send_action(originate("190"))
        action = {"Action": "PlayDTMF", "Channel": result.channel, "Digit": "1"}
    else:
        action = originate("190")
        del action["Async"]
    loop = asyncio.get_running_loop()
    errors = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx.get("exception")))
    try:
        future = mgr.send_action(action)
        await wait_until(lambda: errors and len(logins) == 2, timeout=3)
    finally:
        loop.set_exception_handler(previous)
        mgr.close()
    assert isinstance(errors[0], KeyError)
    assert not future.done()


async def test_shutdown_and_restart(emu):
    logins = []
    mgr = make_manager(emu, on_login=lambda m: logins.append(m))
    await login(mgr)
    emu.set_behaviour("210", Behaviour.answers(0.1))
    emu.set_behaviour("211", Behaviour.no_answer())
    await mgr.send_action(originate("210"))
    mgr.send_action(originate("211"))
    await wait_until(lambda: len(emu.channels) == 2)
    emu.shutdown(down_for=0.2)
    await wait_until(lambda: len(logins) == 2, timeout=5)
    assert [(e.shutdown, e.restart) for e in mgr.seen if e.event == "Shutdown"] == [("Uncleanly", "True")]
    replies = await mgr.send_action({"Action": "CoreShowChannels"})
    assert replies[-1].listitems == "0"  # a restarted Asterisk knows no channels
    await asyncio.sleep(0.1)
    assert len(emu.events_named("OriginateResponse")) == 1 and not emu.events_named("Hangup")
    mgr.close()


async def test_far_end_hangup_while_ringing_and_while_up(emu, manager):
    emu.set_behaviour("220", Behaviour.no_answer())
    future = manager.send_action(originate("220", ChannelId="far-1"))
    await wait_until(lambda: "far-1" in emu.channels and emu.channels["far-1"].state == F.STATE_RINGING)
    emu.far_end_hangup("far-1", cause=F.CAUSE_CALL_REJECTED)
    _, result = await asyncio.wait_for(future, 2)
    assert (result.response, result.reason) == ("Failure", "0")
    await wait_until(lambda: any(e.event == "Hangup" for e in events_for(manager, "far-1")))
    tail = [(e.event, e.get("Cause")) for e in events_for(manager, "far-1")][-3:]
    assert tail == [("HangupRequest", "21"), ("DialEnd", None), ("Hangup", "21")]

    emu.set_behaviour("221", Behaviour.answers(0.1))
    _, result = await manager.send_action(originate("221", ChannelId="far-2"))
    emu.far_end_hangup(result.channel)
    await wait_until(lambda: any(e.event == "Hangup" for e in events_for(manager, "far-2")))
    assert [e.cause for e in events_for(manager, "far-2") if e.event == "Hangup"] == ["16"]


async def test_with_events_off_panoramisk_never_resends(emu):
    """panoramisk re-sends queued actions on FullyBooted, which Asterisk only sends to a
    login whose event mask includes "system"."""
    emu.set_behaviour("230", Behaviour.answers(5.0))
    logins = []
    mgr = make_manager(emu, events="off", on_login=lambda m: logins.append(m))
    await login(mgr)
    emu.drop_link_before_response("Originate")
    future = mgr.send_action(originate("230"))
    await wait_until(lambda: len(logins) == 2)
    await asyncio.sleep(0.1)
    assert len(emu.actions("Originate")) == 1 and len(mgr.awaiting_actions) == 1
    assert not future.done()
    mgr.close()
