"""A protocol-level emulator of Asterisk's Manager Interface (AMI) over real TCP.

It is written from Asterisk's own source (main/manager.c, main/dial.c, main/pbx.c,
main/channel.c, main/manager_channels.c, channels/chan_pjsip.c, res/res_pjsip.c,
branch ``releases/20``/``releases/22``) and says no where Asterisk says no.  Async AGI and
the Perezvon dialplan (res/res_agi.c and the applications it runs) live in agi.py.  What
it emulates, what it does not, and the source of every behaviour: docs/ami-emulator.md.

Usage::

    emu = AmiEmulator(username="perezvon", secret="s3cret", speed=50)
    emu.set_behaviour("79161234567", Behaviour.busy())
    await emu.start()                      # emu.port is the ephemeral port
    ...                                    # point panoramisk at 127.0.0.1:emu.port
    await emu.stop()
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import facts as F
from .agi import AsyncAgi
from .scenarios import AmdEvent, Behaviour, Dtmf, UserEventSpec

log = logging.getLogger(__name__)

__all__ = ["ActionRecord", "AmiEmulator", "CallHandle", "Channel", "EventRecord", "User"]

CRLF = "\r\n"


# --------------------------------------------------------------------------------------
# Small parsers that mirror C library behaviour Asterisk relies on
# --------------------------------------------------------------------------------------
def _skip_blanks(value: str) -> str:
    """ast_skip_blanks(): drop leading characters below '!' (spaces, tabs, controls)."""
    i = 0
    while i < len(value) and ord(value[i]) < 33:
        i += 1
    return value[i:]


_SCAN_INT = re.compile(r"[ \t\n\r\f\v]*([+-]?\d+)")


def _scan_int(value: str, *, unsigned: bool = False) -> int | None:
    """sscanf(value, "%30d"): leading blanks, a sign, at least one digit; the rest is ignored."""
    match = _SCAN_INT.match(value)
    if not match:
        return None
    text = match.group(1)[:30]
    if unsigned and text.startswith("-"):
        return None
    return int(text)


def _separate_args(text: str, delim: str = ",", max_args: int = 64) -> list[str]:
    """The splitting rules of ast_app_separate_args() (AST_STANDARD_APP_ARGS): the delimiter
    does not split inside (), [] or double quotes; quotes and backslashes are removed."""
    args: list[str] = []
    current: list[str] = []
    paren = bracket = 0
    quote = False
    i = 0
    while i < len(text):
        ch = text[i]
        if len(args) >= max_args - 1:  # the last slot takes the rest verbatim
            current.append(text[i:])
            break
        if ch == "(":
            paren += 1
        elif ch == ")":
            paren = max(0, paren - 1)
        elif ch == "[":
            bracket += 1
        elif ch == "]":
            bracket = max(0, bracket - 1)
        elif ch == '"':
            quote = not quote
            i += 1
            continue
        elif ch == "\\":
            i += 1
            if i < len(text):
                current.append(text[i])
            i += 1
            continue
        elif ch == delim and not paren and not quote and not bracket:
            args.append("".join(current))
            current = []
            i += 1
            if i == len(text):
                args.append("")
            continue
        current.append(ch)
        i += 1
    if current:
        args.append("".join(current))
    return args


def _parse_callerid(value: str) -> tuple[str, str]:
    """(name, number) the way ast_callerid_parse() + ast_shrink_phone_number() read a CallerID."""
    text = value.strip()
    quoted = len(text) >= 2 and text[0] == '"' and text[-1] == '"'
    if quoted:
        text = text[1:-1]
    if "<" in text:
        start = text.rfind("<")
        number = text[start + 1 :]
        end = number.rfind(">")
        if end >= 0:
            number = number[:end]
        name = text[:start].strip()
        if len(name) >= 2 and name[0] == '"' and name[-1] == '"':
            name = name[1:-1]
    else:
        shrunk = "".join(ch for ch in text if ch not in "( )-")
        if not quoted and shrunk and all(ch in "0123456789*#+" for ch in shrunk):
            name, number = "", shrunk
        else:
            name, number = text, ""
    number = "".join(ch for ch in number if ch not in "( )-")
    return name, number


def _exten_matches(pattern: str, exten: str) -> bool:
    """Dialplan extension matching: literal, or a ``_`` pattern with X Z N [..] . !"""
    if not pattern.startswith("_"):
        return pattern == exten
    regex = []
    body = pattern[1:]
    i = 0
    while i < len(body):
        ch = body[i]
        upper = ch.upper()
        if upper == "X":
            regex.append("[0-9]")
        elif upper == "Z":
            regex.append("[1-9]")
        elif upper == "N":
            regex.append("[2-9]")
        elif ch == "[":
            end = body.find("]", i)
            if end < 0:
                return False
            regex.append("[" + re.sub(r"([\\^])", r"\\\1", body[i + 1 : end]) + "]")
            i = end
        elif ch == ".":
            regex.append(".+")
        elif ch == "!":
            regex.append(".*")
        elif ch == "-":
            pass
        else:
            regex.append(re.escape(ch))
        i += 1
    return re.fullmatch("".join(regex), exten) is not None


def _instring(big: str, small: str) -> bool:
    """ast_instring(big, small, ','), quirks included (a segment matches a label it prefixes)."""
    val = big
    while True:
        comma = val.find(",")
        if comma < 0:
            return val == small
        segment = val[:comma]
        if len(small) >= len(segment) and small[: len(segment)] == segment:
            return True
        val = val[comma + 1 :]
        if not val:
            return False


def _get_perm(text: str) -> int:
    result = 0
    for bit, label in (*F.PERMISSION_LABELS, (0, "none")):
        if _instring(text, label):
            result |= bit
    return result


def _strings_to_mask(text: str) -> int:
    """strings_to_mask(): -1 for empty, a number as such, off=0, on=everything, else labels."""
    if not text:
        return -1
    if text.isdigit():
        return int(text)
    if F.ast_false(text):
        return 0
    if F.ast_true(text):
        return F.EVERY_PERMISSION
    return _get_perm(text)


# --------------------------------------------------------------------------------------
# Records handed to tests
# --------------------------------------------------------------------------------------
class ActionRecord(dict):
    """One message as the emulator received it: header name (as spelled) -> value, a list
    when the header was repeated.  ``session`` numbers the TCP connection, ``lines`` holds
    the raw header lines (lines without a colon included)."""

    def __init__(self, session: int, lines: list[str]):
        super().__init__()
        self.session = session
        self.lines = list(lines)
        self.at = time.monotonic()
        lowered: dict[str, str] = {}
        for line in lines:
            if ":" not in line:
                continue
            key, value = line.split(":", 1)
            value = _skip_blanks(value)
            first = lowered.setdefault(key.lower(), key)
            if first in self:
                old = self[first]
                self[first] = (old if isinstance(old, list) else [old]) + [value]
            else:
                self[first] = value

    def get_ci(self, key: str, default: Any = None) -> Any:
        for name, value in self.items():
            if name.lower() == key.lower():
                return value
        return default

    @property
    def action(self) -> str:
        return str(self.get_ci("Action", ""))


class EventRecord(dict):
    """An event as emitted (before per-session filtering): header -> value, in order."""

    def __init__(self, name: str, category: int, fields: list[tuple[str, str]]):
        super().__init__()
        self.name = name
        self.category = category
        self["Event"] = name
        for key, value in fields:
            self[key] = value
        self.at = time.monotonic()


@dataclass
class User:
    """A manager.conf user.  Permissions are EVENT_FLAG bit sets (facts.py)."""

    secret: str
    read: int = F.EVERY_PERMISSION
    write: int = F.EVERY_PERMISSION
    allow_multiple_login: bool = True

    @classmethod
    def from_manager_conf(cls, text: str, secret: str) -> User:
        """The permissions of the (first) user section of a manager.conf file, with ``secret``."""
        read = write = 0
        for line in text.splitlines():
            key, _, value = line.split(";", 1)[0].partition("=")
            if key.strip() == "read":
                read = F.permission_mask(value)
            elif key.strip() == "write":
                write = F.permission_mask(value)
        return cls(secret, read=read, write=write)


# --------------------------------------------------------------------------------------
# Channels and calls
# --------------------------------------------------------------------------------------
@dataclass(eq=False)
class Channel:
    name: str
    uniqueid: str
    tech: str
    data: str
    number: str
    behaviour: Behaviour
    action_id: str = ""
    linkedid: str = ""
    state: int = F.STATE_DOWN
    caller_num: str = ""
    caller_name: str = ""
    connected_num: str = ""
    connected_name: str = ""
    language: str = "en"
    accountcode: str = ""
    context: str = "default"
    exten: str = "s"
    priority: int = 1
    application: str = "AppDial2"
    app_data: str = "(Outgoing Line)"
    variables: dict[str, str] = field(default_factory=dict)
    created: float = field(default_factory=time.monotonic)
    answered: bool = False
    remote_reject: bool = False
    hungup: bool = False
    hangup_cause: int = 0
    tech_cause: int = 0
    requested_hangup: asyncio.Event = field(default_factory=asyncio.Event)
    requested_cause: int = 0
    tasks: set[asyncio.Task] = field(default_factory=set)
    # the dialplan (agi.py): the PBX task owns the hangup while it runs
    pbx: asyncio.Task | None = None
    agi: Any = None  # the AsyncAGI datastore (agi.AgiQueue) once AGI ran
    bridge: Any = None
    dtmf_listeners: list[Callable[[str, str], None]] = field(default_factory=list)
    recordings: list[dict[str, Any]] = field(default_factory=list)
    music: dict[str, Any] | None = None  # the music on hold playing (agi.py moh_start), if any

    def fields(self, prefix: str = "") -> list[tuple[str, str]]:
        """ast_manager_build_channel_state_string_prefix() (main/manager_channels.c)."""
        p = prefix
        return [
            (f"{p}Channel", self.name),
            (f"{p}ChannelState", str(self.state)),
            (f"{p}ChannelStateDesc", F.STATE_TEXT.get(self.state, "Unknown")),
            (f"{p}CallerIDNum", self.caller_num or "<unknown>"),
            (f"{p}CallerIDName", F.escape_c(self.caller_name) or "<unknown>"),
            (f"{p}ConnectedLineNum", self.connected_num or "<unknown>"),
            (f"{p}ConnectedLineName", F.escape_c(self.connected_name) or "<unknown>"),
            (f"{p}Language", self.language),
            (f"{p}AccountCode", self.accountcode),
            (f"{p}Context", self.context),
            (f"{p}Exten", self.exten),
            (f"{p}Priority", str(self.priority)),
            (f"{p}Uniqueid", self.uniqueid),
            (f"{p}Linkedid", self.linkedid or self.uniqueid),
        ]


@dataclass
class _Request:
    """An accepted Originate, as fast_originate() receives it."""

    tech: str
    data: str
    context: str
    exten: str
    priority: int
    app: str
    appdata: str
    cid_name: str
    cid_num: str
    account: str
    timeout_ms: int
    channel_id: str
    other_channel_id: str
    variables: list[tuple[str, str]]
    action_id: str


@dataclass
class _Outcome:
    answered: bool
    reason: int
    channel: Channel | None
    finish: Callable[[], None] | None = None


class CallHandle:
    """What a ``Behaviour.script`` gets: the answered channel and things the far end or the
    dialplan can do on it."""

    def __init__(self, emulator: AmiEmulator, channel: Channel):
        self.emulator = emulator
        self.channel = channel

    @property
    def up(self) -> bool:
        return not self.channel.hungup

    async def sleep(self, seconds: float) -> None:
        await self.emulator._sleep(seconds)

    async def dtmf(
        self, digits: str, *, gap: float = 0.25, duration_ms: int = 120, direction: str = "Received"
    ) -> None:
        for i, digit in enumerate(digits):
            if i:
                await self.sleep(gap)
            if not self.up:
                return
            await self.emulator._dtmf(self.channel, Dtmf(0, digit, duration_ms, direction))

    def user_event(self, name: str, **headers: str) -> None:
        if self.up:
            self.emulator._user_event(self.channel, name, headers)

    def set_var(self, name: str, value: str) -> None:
        if self.up:
            self.emulator._set_var(self.channel, name, value)

    def hangup(self, cause: int | None = None) -> None:
        """The far end hangs up (BYE): cause defaults to the emulator's ``bye_cause``."""
        if self.up:
            self.emulator._remote_hangup(self.channel, self.emulator.bye_cause if cause is None else cause)


# --------------------------------------------------------------------------------------
# One TCP connection
# --------------------------------------------------------------------------------------
class _Session:
    def __init__(self, emulator: AmiEmulator, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.emulator = emulator
        self.id = number
        self.reader = reader
        self.writer = writer
        self.inbuf = b""
        self.line_too_long = False
        self.authenticated = False
        self.username = ""
        self.readperm = 0
        self.writeperm = 0
        self.send_events = 0  # "Until authenticated this session will not receive events"
        self.challenge = ""
        self.busy = False
        self.pending_events: list[str] = []
        self.held: list[str] = []
        self.closed = False
        self.mute = False
        self.authstart = time.monotonic()
        self.task: asyncio.Task | None = None

    def write(self, text: str) -> None:
        if self.closed or self.mute:
            return
        if self.emulator.silent:
            self.held.append(text)
            return
        try:
            self.writer.write(text.encode("utf-8", "surrogateescape"))
        except (ConnectionError, RuntimeError):  # pragma: no cover - peer vanished
            self.closed = True

    def deliver_event(self, text: str) -> None:
        if self.busy:
            self.pending_events.append(text)
        else:
            self.write(text)

    def flush_pending(self) -> None:
        pending, self.pending_events = self.pending_events, []
        for text in pending:
            self.write(text)

    def flush_held(self) -> None:
        held, self.held = self.held, []
        for text in held:
            self.write(text)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.writer.close()
            except RuntimeError:  # pragma: no cover - loop closing
                pass

    def abort(self) -> None:
        self.closed = True
        transport = self.writer.transport
        if transport is not None and not transport.is_closing():
            transport.abort()


class _Message:
    """A received message: raw header lines, looked up like astman_get_header()."""

    def __init__(self, lines: list[str]):
        self.lines = lines

    def get(self, name: str, *, skip_empty: bool = False, last: bool = False) -> str:
        n = len(name)
        result = ""
        for line in self.lines:
            if line[:n].lower() == name.lower() and line[n : n + 1] == ":":
                value = _skip_blanks(line[n + 1 :])
                if skip_empty and not value:
                    continue
                if not last:
                    return value
                result = value
        return result

    def variables(self) -> list[tuple[str, str]]:
        """astman_get_variables(): every ``Variable:`` header, split on commas; the list comes
        back reversed (ORDER_REVERSE), which is the order Asterisk sets them in."""
        found: list[tuple[str, str]] = []
        for line in self.lines:
            if line[:9].lower() != "variable:":
                continue
            for item in _separate_args(_skip_blanks(line[9:])):
                if "=" not in item:
                    continue
                name, value = item.split("=", 1)
                if name:
                    found.append((name, value))
        found.reverse()
        return found


# --------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------
class AmiEmulator:
    """An asyncio TCP server speaking AMI as Asterisk does.

    username/secret  -- the manager.conf user (``users`` adds more).
    speed            -- every duration a phone, the network or Asterisk would take is
                        divided by this (Originate Timeout, the 1 s login-failure pause,
                        authtimeout, Behaviour times).
    asterisk_version -- (major, minor, patch); picks the banner and version-dependent
                        details (TechCause on Hangup, the cause of an unanswered dial).
    reason_model     -- "pjsip" (chan_pjsip, the only SIP driver from Asterisk 21) or
                        "chan_sip" (Asterisk <= 20 with chan_sip): how a rejected call's
                        OriginateResponse Reason comes about.
    endpoints        -- PJSIP endpoints (and chan_sip peers) that exist; dialling another
                        fails in ast_request() as Asterisk's does.
    dialplan         -- {context: [extension patterns]} for "Extension does not exist."
                        checks; ``None`` accepts every context/extension.
    async_agi_contexts -- contexts that run the Perezvon dialplan (NoOp, AGI(agi:async),
                        Hangup()) on an answered originated channel (agi.py).
    sounds_dir       -- Asterisk's <datadir>/sounds: where STREAM FILE / Playback look for
                        relative file names.
    monitor_dir      -- Asterisk's monitor directory: where MixMonitor puts relative names.
    moh_classes      -- the classes musiconhold.conf defines: what AGI SET MUSIC ON can play.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "perezvon",
        secret: str = "perezvon",
        *,
        speed: float = 1.0,
        asterisk_version: tuple[int, int, int] = (22, 8, 0),
        ami_version: str | None = None,
        reason_model: str = "pjsip",
        endpoints: Iterable[str] = ("trunk",),
        endpoint_context: str = "default",
        dialplan: Mapping[str, Iterable[str]] | None = None,
        default_behaviour: Behaviour | None = None,
        amd_event: AmdEvent = AmdEvent(),
        users: Mapping[str, User] | None = None,
        fully_booted: bool = True,
        auth_timeout: float = F.DEFAULT_AUTH_TIMEOUT,
        auth_limit: int = F.DEFAULT_AUTH_LIMIT,
        auth_fail_delay: float = 1.0,
        originate_response_first: bool = False,
        bye_cause: int = F.CAUSE_NORMAL_CLEARING,
        system_name: str | None = None,
        timestamp_events: bool = False,
        hangup_tech_cause: bool | None = None,
        timeout_cause: int | None = None,
        async_agi_contexts: Iterable[str] = (),
        sounds_dir: str = "/var/lib/asterisk/sounds",
        monitor_dir: str = "/var/spool/asterisk/monitor",
        moh_classes: Iterable[str] = ("default",),
    ):
        if reason_model not in ("pjsip", "chan_sip"):
            raise ValueError("reason_model is 'pjsip' or 'chan_sip'")
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.host = host
        self.port = port
        self._requested_port = port
        self.users: dict[str, User] = {username: User(secret)}
        if users:
            self.users.update(users)
        self.speed = float(speed)
        self.asterisk_version = tuple(asterisk_version)
        major = self.asterisk_version[0]
        self.ami_version = ami_version or F.AMI_VERSION_BY_MAJOR.get(major, "11.0.0")
        self.reason_model = reason_model
        if reason_model == "chan_sip" and major >= 21:
            raise ValueError("chan_sip was removed in Asterisk 21")
        self.endpoints = set(endpoints)
        self.endpoint_context = endpoint_context
        self.dialplan = None if dialplan is None else {c: list(p) for c, p in dialplan.items()}
        self.default_behaviour = default_behaviour or Behaviour.no_answer()
        self.behaviours: dict[str, Behaviour] = {}
        self.amd_event = amd_event
        self.fully_booted = fully_booted
        self.auth_timeout = auth_timeout
        self.auth_limit = auth_limit
        self.auth_fail_delay = auth_fail_delay
        self.originate_response_first = originate_response_first
        self.bye_cause = bye_cause
        self.system_name = system_name
        self.timestamp_events = timestamp_events
        v = self.asterisk_version
        if hangup_tech_cause is None:  # chan_pjsip TechCause: 20.17.0, 22.7.0, 23+
            hangup_tech_cause = (major == 20 and v >= (20, 17)) or (major == 22 and v >= (22, 7)) or major >= 23
        self.hangup_tech_cause = hangup_tech_cause and reason_model == "pjsip"
        if timeout_cause is None:  # main/dial.c handle_timeout_trip fix: 20.18.0, 22.8.0, 23+
            fixed = (major == 20 and v >= (20, 18)) or (major == 22 and v >= (22, 8)) or major >= 23
            timeout_cause = F.CAUSE_NO_ANSWER if fixed else F.CAUSE_NOT_DEFINED
        self.timeout_cause = timeout_cause
        self.technologies = {"pjsip", "local"} | ({"sip"} if major < 21 else set())
        self.agi = AsyncAgi(self, async_agi_contexts, sounds_dir, monitor_dir, moh_classes)

        # what tests look at
        self.received_actions: list[ActionRecord] = []
        self.events: list[EventRecord] = []
        self.channels: dict[str, Channel] = {}  # live channels by uniqueid
        #: the same channels by lower-cased name (a channel's name never changes): thousands of calls
        #: in flight made the scan of every channel on each AGI or Hangup action the emulator's hot spot
        self._by_name: dict[str, Channel] = {}
        self.hungup_channels: list[Channel] = []
        self.connections = 0

        # state
        self.silent = False
        #: a link with a backlog (thousands of channels' events on their way): each Ping's answer
        #: reaches the client this many seconds late, behind the events written meanwhile. The
        #: session is not busy meanwhile: Asterisk answered at once; the answer waits in the stream
        self.ping_delay = 0.0
        self._awake = asyncio.Event()
        self._awake.set()
        self._server: asyncio.base_events.Server | None = None
        self._sessions: set[_Session] = set()
        self._session_numbers = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()
        self._unauth = 0
        self._uniqueint = itertools.count(1)
        self._chan_idx: dict[str, itertools.count] = {}
        self._globals: dict[str, str] = {}
        self._started_at = time.monotonic()
        self._session_changed = asyncio.Condition()
        self._lose_response: set[str] = set()

    # ---------------------------------------------------------------- lifecycle --------
    async def start(self) -> None:
        self._started_at = time.monotonic()
        await self._listen(self._requested_port)

    async def _listen(self, port: int) -> None:
        self._server = await asyncio.start_server(self._on_connect, self.host, port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.abort()
            if session.task is not None:
                session.task.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 1)
            except TimeoutError:  # pragma: no cover
                pass
            self._server = None

    async def __aenter__(self) -> AmiEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------- scripting --------
    def set_behaviour(self, number: str, behaviour: Behaviour) -> None:
        """What the phone at ``number`` (as it appears in the dial string) does."""
        self.behaviours[number] = behaviour

    def behaviour_for(self, number: str) -> Behaviour:
        for key in (number, number.lstrip("+"), "+" + number):
            if key in self.behaviours:
                return self.behaviours[key]
        return self.default_behaviour

    def actions(self, name: str) -> list[ActionRecord]:
        """The received actions called ``name`` (case-insensitively)."""
        return [a for a in self.received_actions if a.action.lower() == name.lower()]

    def events_named(self, name: str) -> list[EventRecord]:
        return [e for e in self.events if e.name == name]

    def find_channel(self, name_or_uniqueid: str) -> Channel | None:
        """ast_channel_get_by_name(): a channel name (case-insensitive) or a uniqueid."""
        chan = self.channel_named(name_or_uniqueid)
        return chan if chan is not None else self.channels.get(name_or_uniqueid)

    def channel_named(self, name: str) -> Channel | None:
        """The live channel of exactly this name (case-insensitive), from the index."""
        if len(self._by_name) != len(self.channels):  # a test put a channel in ``channels`` itself
            self._by_name = {chan.name.lower(): chan for chan in self.channels.values()}
        return self._by_name.get(name.lower())

    def add_channel(self, chan: Channel) -> None:
        self.channels[chan.uniqueid] = chan
        self._by_name[chan.name.lower()] = chan

    def _remove_channel(self, chan: Channel) -> None:
        self.channels.pop(chan.uniqueid, None)
        if self._by_name.get(chan.name.lower()) is chan:
            del self._by_name[chan.name.lower()]

    @property
    def authenticated_sessions(self) -> int:
        return sum(1 for s in self._sessions if s.authenticated and not s.closed)

    async def wait_for_logins(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until ``count`` connections are logged in (e.g. after a reconnect)."""
        async with self._session_changed:
            await asyncio.wait_for(
                self._session_changed.wait_for(lambda: self.authenticated_sessions >= count), timeout
            )

    # ------------------------------------------------------------------- faults --------
    def drop_link(self, down_for: float = 0.0) -> None:
        """Abort every client connection (RST).  With ``down_for`` > 0 (real seconds) the
        listening socket is closed too, so reconnects are refused until it reopens."""
        for session in list(self._sessions):
            session.abort()
        if down_for > 0 and self._server is not None:
            self._server.close()
            port = self.port

            async def reopen() -> None:
                await asyncio.sleep(down_for)
                await self._listen(port)

            self._spawn(reopen())

    def drop_link_before_response(self, action: str) -> None:
        """The next time ``action`` arrives, Asterisk carries it out but the link dies before
        the response leaves (the client never learns the action was done)."""
        self._lose_response.add(action.lower())

    def go_silent(self) -> None:
        """Stop answering (Ping included) and stop sending events, keeping TCP open: the
        kernel still accepts connections and bytes, nothing is read or written."""
        self.silent = True
        self._awake.clear()

    def resume(self) -> None:
        """Wake up: what was held is sent, what was sent meanwhile is processed."""
        self.silent = False
        self._awake.set()
        for session in list(self._sessions):
            session.flush_held()

    def shutdown(self, *, restart: bool = True, down_for: float = 0.2) -> None:
        """Asterisk stops: a ``Shutdown`` event (system class), every session closed, every
        channel gone without further events, the port closed; with ``restart`` it listens
        again after ``down_for`` real seconds, empty."""
        self._emit(
            F.SYSTEM,
            "Shutdown",
            [("Shutdown", "Uncleanly" if self.channels else "Cleanly"), ("Restart", "True" if restart else "False")],
        )
        for chan in list(self.channels.values()):
            chan.hungup = True
            chan.requested_hangup.set()
            for task in list(chan.tasks):
                task.cancel()
        self.channels.clear()
        for session in list(self._sessions):
            session.close()
        if self._server is not None:
            self._server.close()
        if restart:
            port = self.port

            async def restart_later() -> None:
                await asyncio.sleep(down_for)
                self._started_at = time.monotonic()
                await self._listen(port)

            self._spawn(restart_later())

    def far_end_hangup(self, name_or_uniqueid: str, cause: int | None = None) -> None:
        """The far end hangs up this channel now (a BYE while up, a rejection while ringing)."""
        chan = self.find_channel(name_or_uniqueid)
        if chan is None:
            raise KeyError(name_or_uniqueid)
        if chan.answered:
            self._remote_hangup(chan, self.bye_cause if cause is None else cause)
        else:  # like a final failure response while dialling
            chan.remote_reject = True
            chan.requested_cause = F.CAUSE_NORMAL_CLEARING if cause is None else cause
            chan.requested_hangup.set()

    # ------------------------------------------------------------------ helpers --------
    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("AMI emulator task failed", exc_info=task.exception())

    async def _sleep(self, nominal: float) -> None:
        await asyncio.sleep(max(0.0, nominal) / self.speed)

    async def _notify_sessions(self) -> None:
        async with self._session_changed:
            self._session_changed.notify_all()

    # ----------------------------------------------------------------- emitting -------
    def _emit(
        self, category: int, name: str, fields: list[tuple[str, str]], raw_lines: list[str] | None = None
    ) -> EventRecord:
        """manager_event(): to every logged-in session whose read permission and event mask
        cover the whole category.  ``raw_lines`` are appended verbatim (UserEvent action)."""
        record = EventRecord(name, category, fields)
        self.events.append(record)
        head = [f"Event: {name}", f"Privilege: {F.privilege(category)}"]
        if self.timestamp_events:
            now = time.time()
            head.append(f"Timestamp: {int(now)}.{int((now % 1) * 1_000_000):06d}")
        if self.system_name:
            head.append(f"SystemName: {self.system_name}")
        body = [f"{k}: {v}" for k, v in fields] + list(raw_lines or ())
        text = CRLF.join(head + body) + CRLF + CRLF
        for session in list(self._sessions):
            if (
                session.authenticated
                and not session.closed
                and session.readperm & category == category
                and session.send_events & category == category
            ):
                session.deliver_event(text)
        return record

    @staticmethod
    def _response(m: _Message, response: str, message: str | None = None, listflag: str | None = None) -> str:
        """astman_send_response_full()."""
        lines = [f"Response: {response}"]
        action_id = m.get("ActionID")
        if action_id:
            lines.append(f"ActionID: {action_id}")
        if listflag:
            lines.append(f"EventList: {listflag}")
        if message is not None:
            lines.append(f"Message: {message}")
        return CRLF.join(lines) + CRLF + CRLF

    def _error(self, s: _Session, m: _Message, message: str) -> None:
        s.write(self._response(m, "Error", message))

    def _ack(self, s: _Session, m: _Message, message: str) -> None:
        s.write(self._response(m, "Success", message))

    # ---------------------------------------------------------------- the session -----
    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        session = _Session(self, next(self._session_numbers), reader, writer)
        session.task = asyncio.current_task()
        if self._unauth >= self.auth_limit:  # session_do(): over authlimit, closed at once
            session.close()
            return
        self._unauth += 1
        self._sessions.add(session)
        try:
            await self._awake.wait()
            session.write(f"Asterisk Call Manager/{self.ami_version}{CRLF}")
            await self._session_loop(session)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            if not session.authenticated:
                self._unauth -= 1
            session.authenticated = False
            self._sessions.discard(session)
            session.close()
            try:
                await self._notify_sessions()
            except RuntimeError:  # pragma: no cover - loop closing
                pass

    async def _read_line(self, s: _Session) -> str | None:
        """get_input(): one line ended by CRLF or LF from a 1024-byte buffer.  A buffer full
        without a line end is discarded (its last byte kept) and the message is marked
        "line too long".  None: connection closed or authentication timed out."""
        while True:
            newline = s.inbuf.find(b"\n")
            if newline >= 0:
                raw = s.inbuf[:newline]
                s.inbuf = s.inbuf[newline + 1 :]
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
                raw = raw.split(b"\0", 1)[0]  # '\0' ends the line for every later use
                return raw.decode("utf-8", "surrogateescape")
            if len(s.inbuf) >= F.INBUF_MAX:
                s.inbuf = s.inbuf[-1:]
                s.line_too_long = True
            timeout = None
            if not s.authenticated:
                timeout = self.auth_timeout / self.speed - (time.monotonic() - s.authstart)
                if timeout <= 0:
                    return None
            await self._awake.wait()
            try:
                data = await asyncio.wait_for(s.reader.read(F.INBUF_MAX - len(s.inbuf)), timeout)
            except TimeoutError:
                return None
            if not data:
                return None
            s.inbuf += data

    async def _session_loop(self, s: _Session) -> None:
        while not s.closed:
            lines: list[str] = []
            header_loss = False
            while True:
                line = await self._read_line(s)
                if line is None:
                    return
                if line == "":
                    break
                if len(lines) < F.MAX_HEADERS:
                    lines.append(line)
                else:
                    header_loss = True
            await self._awake.wait()
            if s.closed:
                return
            m = _Message(lines)
            if header_loss:
                self._error(s, m, "Too many lines in message or allocation failure")
                continue
            if s.line_too_long:
                s.line_too_long = False
                self._error(s, m, "Failed to parse message: line too long")
                continue
            s.busy = True
            try:
                keep = await self._process_message(s, m)
            finally:
                s.busy = False
            s.flush_pending()
            if not keep:
                s.close()
                return

    async def _process_message(self, s: _Session, m: _Message) -> bool:
        """process_message(): returns False when Asterisk drops the connection."""
        record = ActionRecord(s.id, m.lines)
        self.received_actions.append(record)
        action = m.get("Action", skip_empty=True)
        if not action:
            self._error(s, m, "Missing action in request")
            return True
        lowered = action.lower()
        if not s.authenticated and lowered not in ("login", "logoff", "challenge"):
            self._error(s, m, "Permission denied")
            return True
        if not s.authenticated and lowered in ("login", "challenge"):
            username = m.get("Username")
            user = self.users.get(username)
            if (
                username
                and user is not None
                and not user.allow_multiple_login
                and any(o.authenticated and o.username == username for o in self._sessions)
            ):
                await self._sleep(self.auth_fail_delay)
                self._error(s, m, "Login Already In Use")
                return False
        handler = self._ACTIONS.get(lowered)
        if handler is None:
            self._error(
                s, m, f"Invalid/unknown command: {action}. Use Action: ListCommands to show available commands."
            )
            return True
        method_name, authority = handler
        if authority and not (s.writeperm & authority):
            self._error(s, m, "Permission denied")
            return True
        if lowered in self._lose_response:
            self._lose_response.discard(lowered)
            s.mute = True  # the action runs; nothing it writes reaches the client
            await getattr(self, method_name)(s, m)
            s.abort()
            return False
        return await getattr(self, method_name)(s, m)

    # ------------------------------------------------------------------ actions -------
    _ACTIONS: dict[str, tuple[str, int]] = {
        # name: (method, write authority) -- main/manager.c __init_manager() registrations
        "login": ("_act_login", 0),
        "logoff": ("_act_logoff", 0),
        "challenge": ("_act_challenge", 0),
        "ping": ("_act_ping", 0),
        "events": ("_act_events", 0),
        "originate": ("_act_originate", F.ORIGINATE),
        "hangup": ("_act_hangup", F.SYSTEM | F.CALL),
        "setvar": ("_act_setvar", F.CALL),
        "getvar": ("_act_getvar", F.CALL | F.REPORTING),
        "userevent": ("_act_userevent", F.USER),
        "coreshowchannels": ("_act_coreshowchannels", F.SYSTEM | F.REPORTING),
        "playdtmf": ("_act_playdtmf", F.CALL),  # apps/app_senddtmf.c
        "agi": ("_act_agi", F.AGI),  # res/res_agi.c
        "showdialplan": ("_act_showdialplan", F.CONFIG | F.REPORTING),  # main/pbx.c
    }

    def _set_eventmask(self, s: _Session, text: str) -> int:
        mask = _strings_to_mask(text)
        if mask >= 0:
            s.send_events = s.readperm & mask
        return mask

    def _authenticate(self, s: _Session, m: _Message) -> bool:
        username = m.get("Username")
        if not username:
            return False
        user = self.users.get(username)
        if user is None:
            return False
        if m.get("AuthType").lower() == "md5":
            key = m.get("Key")
            if not key or not s.challenge:
                return False
            expected = hashlib.md5((s.challenge + user.secret).encode()).hexdigest()
            if key != expected:
                return False
        elif m.get("Secret") != user.secret:
            return False
        s.username = username
        s.readperm = user.read
        s.writeperm = user.write
        events = m.get("Events")
        if events:
            self._set_eventmask(s, events)
        else:
            s.send_events = s.readperm
        return True

    async def _act_login(self, s: _Session, m: _Message) -> bool:
        if s.authenticated:
            self._ack(s, m, "Already authenticated")
            return True
        if not self._authenticate(s, m):
            await self._sleep(self.auth_fail_delay)  # sleep(1) before answering
            self._error(s, m, "Authentication failed")
            return False
        s.authenticated = True
        self._unauth -= 1
        self._ack(s, m, "Authentication accepted")
        if s.send_events & F.SYSTEM and self.fully_booted:
            uptime = int(time.monotonic() - self._started_at)
            s.write(
                CRLF.join(
                    [
                        "Event: FullyBooted",
                        f"Privilege: {F.privilege(F.SYSTEM)}",
                        f"Uptime: {uptime}",
                        f"LastReload: {uptime}",
                        "Status: Fully Booted",
                    ]
                )
                + CRLF
                + CRLF
            )
        await self._notify_sessions()
        return True

    async def _act_logoff(self, s: _Session, m: _Message) -> bool:
        s.write(self._response(m, "Goodbye", "Thanks for all the fish."))
        return False

    async def _act_challenge(self, s: _Session, m: _Message) -> bool:
        if m.get("AuthType").lower() != "md5":
            self._error(s, m, "Must specify AuthType")
            return True
        if not s.challenge:
            s.challenge = str(random.randrange(1 << 31))
        s.write(self._response(m, "Success", None).rstrip(CRLF) + CRLF + f"Challenge: {s.challenge}{CRLF}{CRLF}")
        return True

    async def _act_ping(self, s: _Session, m: _Message) -> bool:
        now = time.time()
        lines = ["Response: Success"]
        if m.get("ActionID"):
            lines.append(f"ActionID: {m.get('ActionID')}")
        lines += ["Ping: Pong", f"Timestamp: {int(now)}.{int((now % 1) * 1_000_000):06d}"]
        answer = CRLF.join(lines) + CRLF + CRLF
        if self.ping_delay:
            asyncio.get_running_loop().call_later(self.ping_delay, lambda: s.closed or s.write(answer))
        else:
            s.write(answer)
        return True

    async def _act_events(self, s: _Session, m: _Message) -> bool:
        result = self._set_eventmask(s, m.get("EventMask"))
        id_text = f"ActionID: {m.get('ActionID')}{CRLF}" if m.get("ActionID") else ""
        if result > 0:
            s.write(f"Response: Success{CRLF}{id_text}Events: On{CRLF}{CRLF}")
        elif result == 0:
            s.write(f"Response: Success{CRLF}{id_text}Events: Off{CRLF}{CRLF}")
        else:
            self._error(s, m, "Invalid event mask")
        return True

    def _app_permitted(self, app: str, data: str, writeperm: int) -> bool:
        """is_originate_app_permitted(): the first matching rule decides."""
        low = app.lower()
        for word in F.ORIGINATE_APPS_NEEDING_SYSTEM:
            if word in low:
                return bool(writeperm & F.SYSTEM)
        if "queue" in low:
            parts = _separate_args(data) if data else []
            if len(parts) > 5 and parts[5]:
                return bool(writeperm & (F.AGI | F.SYSTEM))
            return True
        for word in F.ORIGINATE_DATA_NEEDING_SYSTEM:
            if data and word in data:
                return bool(writeperm & F.SYSTEM)
        return True

    def _exten_exists(self, context: str, exten: str) -> bool:
        if self.dialplan is None:
            return bool(context) and bool(exten)
        return any(_exten_matches(p, exten) for p in self.dialplan.get(context, ()))

    async def _act_originate(self, s: _Session, m: _Message) -> bool:
        name = m.get("Channel")
        exten, context, priority = m.get("Exten"), m.get("Context"), m.get("Priority")
        timeout, callerid, account = m.get("Timeout"), m.get("CallerID"), m.get("Account")
        app, appdata, async_ = m.get("Application"), m.get("Data"), m.get("Async")
        channel_id, other_id = m.get("ChannelId"), m.get("OtherChannelId")

        if len(channel_id) > F.MAX_PUBLIC_UNIQUEID or len(other_id) > F.MAX_PUBLIC_UNIQUEID:
            self._error(s, m, f"Uniqueid length exceeds maximum of {F.MAX_PUBLIC_UNIQUEID}\n")
            return True
        if not name:
            self._error(s, m, "Channel not specified")
            return True
        pi = 0
        if priority:
            parsed = _scan_int(priority)
            if parsed is None:  # a label; the emulated dialplan has none
                self._error(s, m, "Invalid priority")
                return True
            pi = parsed
        to = F.DEFAULT_ORIGINATE_TIMEOUT_MS
        if timeout:
            parsed = _scan_int(timeout)
            if parsed is None:
                self._error(s, m, "Invalid timeout")
                return True
            to = parsed
        name = name[:255]  # ast_copy_string(tmp, name, 256)
        if "/" not in name:
            self._error(s, m, "Invalid channel")
            return True
        tech, data = name.split("/", 1)
        cid_name, cid_num = _parse_callerid(callerid[:255])
        if app and not self._app_permitted(app, appdata, s.writeperm):
            self._error(s, m, "Originate Access Forbidden: app or data blacklisted")
            return True
        if pi and not self._exten_exists(context, exten):
            self._error(s, m, "Extension does not exist.")
            return True
        request = _Request(
            tech=tech,
            data=data,
            context=context,
            exten=exten,
            priority=pi,
            app=app,
            appdata=appdata,
            cid_name=cid_name,
            cid_num=cid_num,
            account=account,
            timeout_ms=to,
            channel_id=channel_id,
            other_channel_id=other_id,
            variables=m.variables(),
            action_id=m.get("ActionID"),
        )
        if F.ast_true(async_):
            self._spawn(self._fast_originate(request))
            self._ack(s, m, "Originate successfully queued")
            return True
        if not app and not pi:
            self._error(s, m, "Originate with 'Exten' requires 'Context' and 'Priority'")
            return True
        outcome = await self._place_call(request)  # the session is blocked meanwhile
        if outcome.finish:
            outcome.finish()
        if outcome.answered:
            self._ack(s, m, "Originate successfully queued")
        else:
            self._error(s, m, "Originate failed")
        return True

    async def _fast_originate(self, req: _Request) -> None:
        """fast_originate(): dial, then one OriginateResponse event for everybody."""
        outcome = await self._place_call(req)
        if outcome.finish and not self.originate_response_first:
            outcome.finish()
        chan = outcome.channel if outcome.answered else None
        fields: list[tuple[str, str]] = []
        if req.action_id:
            fields.append(("ActionID", req.action_id))
        fields += [
            ("Response", "Success" if outcome.answered else "Failure"),
            ("Channel", chan.name if chan else f"{req.tech}/{req.data}"),
        ]
        if req.app:
            fields += [("Application", req.app), ("Data", req.appdata)]
        else:
            fields += [("Context", req.context), ("Exten", req.exten)]
        fields += [
            ("Reason", str(outcome.reason)),
            ("Uniqueid", chan.uniqueid if chan else (req.channel_id or "<unknown>")),
            ("CallerIDNum", req.cid_num or "<unknown>"),
            ("CallerIDName", req.cid_name or "<unknown>"),
        ]
        self._emit(F.CALL, "OriginateResponse", fields)
        if outcome.finish and self.originate_response_first:
            outcome.finish()

    # ------------------------------------------------------------------- dialling -----
    def _resolve(self, tech: str, data: str) -> tuple[str | None, str, int]:
        """ast_request() for the supported drivers: (channel-name base or None, number, cause)."""
        low = tech.lower()
        if low not in self.technologies:
            return None, "", F.CAUSE_CHAN_NOT_IMPLEMENTED
        if low == "pjsip":  # channels/chan_pjsip.c request()
            if not data:
                return None, "", F.CAUSE_CHANNEL_UNACCEPTABLE
            if "/" in data:
                endpoint, rest = data.split("/", 1)
                number = rest
                if ":" in rest:  # a SIP URI: the user part
                    number = rest.split(":", 1)[1].split("@", 1)[0].split(";", 1)[0]
            elif data in self.endpoints:
                endpoint, number = data, data
            elif "@" in data:
                number, endpoint = data.split("@", 1)
            else:
                endpoint, number = data, data
            if not endpoint:
                return None, "", F.CAUSE_CHANNEL_UNACCEPTABLE
            if endpoint not in self.endpoints:
                return None, "", F.CAUSE_NO_ROUTE_DESTINATION
            return f"PJSIP/{endpoint}", number, 0
        if low == "sip":  # chan_sip: SIP/peer, SIP/number@peer, SIP/peer/number
            peer, number = data, data
            if "/" in data:
                peer, number = data.split("/", 1)
            elif "@" in data:
                number, peer = data.split("@", 1)
            if peer not in self.endpoints:
                return None, "", F.CAUSE_NO_ROUTE_DESTINATION
            return f"SIP/{peer}", number, 0
        # Local/exten@context[/options]
        target = data.split("/", 1)[0]
        exten, _, context = target.partition("@")
        context = context or "default"
        if not exten or (self.dialplan is not None and not self._exten_exists(context, exten)):
            return None, "", F.CAUSE_NO_ROUTE_DESTINATION
        return f"Local/{exten}@{context}", exten, 0

    def _request_failure(self, cause: int) -> int:
        """ast_dial_prerun() failed: pbx_dial_reason(AST_DIAL_RESULT_FAILED, cause)."""
        return F.reason_for_dial_cause(cause)

    def _new_channel(self, req: _Request, base: str, number: str) -> Channel:
        tech = base.split("/", 1)[0]
        counter = self._chan_idx.setdefault(tech.lower(), itertools.count(0))
        suffix = ";1" if tech == "Local" else ""
        uniqueid = req.channel_id or f"{int(time.time())}.{next(self._uniqueint)}"
        chan = Channel(
            name=f"{base}-{next(counter):08x}{suffix}",
            uniqueid=uniqueid,
            tech=tech,
            data=req.data,
            number=number,
            behaviour=self.behaviour_for(number),
            action_id=req.action_id,
            accountcode=req.account,
            context=self.endpoint_context,
        )
        chan.linkedid = chan.uniqueid
        self.add_channel(chan)
        self._emit(F.CALL, "Newchannel", chan.fields())
        return chan

    def _set_var(self, chan: Channel | None, name: str, value: str) -> None:
        if chan is None:
            self._globals[name] = value
            fields = [("Channel", "none"), ("Uniqueid", "none")]
        else:
            chan.variables[name] = value
            fields = chan.fields()
        self._emit(F.DIALPLAN, "VarSet", fields + [("Variable", name), ("Value", F.escape_c(value))])

    def _set_state(self, chan: Channel, state: int) -> None:
        if chan.state != state:
            chan.state = state
            self._emit(F.CALL, "Newstate", chan.fields())

    def _dial_event(self, chan: Channel, status: str) -> None:
        name = "DialState" if status in ("RINGING", "PROCEEDING", "PROGRESS") else "DialEnd"
        self._emit(F.CALL, name, chan.fields("Dest") + [("DialStatus", status)])

    def _hangup_request_event(self, chan: Channel) -> None:
        """ast_queue_hangup*(): HangupRequest, with Cause when the channel has one."""
        fields = chan.fields()
        if chan.hangup_cause:
            fields.append(("Cause", str(chan.hangup_cause)))
        if self.hangup_tech_cause and chan.tech_cause:
            fields.append(("TechCause", str(chan.tech_cause)))
        self._emit(F.CALL, "HangupRequest", fields)

    def _destroy(self, chan: Channel) -> None:
        """The Hangup event (channel_state_change(): the snapshot turned dead)."""
        if chan.hungup:
            return
        chan.hungup = True
        fields = chan.fields() + [("Cause", str(chan.hangup_cause)), ("Cause-txt", F.cause_text(chan.hangup_cause))]
        if self.hangup_tech_cause and chan.tech_cause:
            fields.append(("TechCause", str(chan.tech_cause)))
        self.agi.moh_stop(chan, "hangup")  # ast_hangup() releases the generator before the Hangup
        self._emit(F.CALL, "Hangup", fields)
        self._remove_channel(chan)
        self.agi.finish_recordings(chan)
        self.hungup_channels.append(chan)
        current = asyncio.current_task()
        for task in list(chan.tasks):
            if task is not current:
                task.cancel()
        chan.requested_hangup.set()

    async def _wait_or_hangup(self, chan: Channel, nominal: float | None) -> bool:
        """Sleep ``nominal`` seconds (forever if None); True if a hangup was requested."""
        if chan.requested_hangup.is_set():
            return True
        timeout = None if nominal is None else max(0.0, nominal) / self.speed
        try:
            await asyncio.wait_for(chan.requested_hangup.wait(), timeout)
            return True
        except TimeoutError:  # a Hangup that came in the same loop turn as the timer still counts
            return chan.requested_hangup.is_set()

    async def _place_call(self, req: _Request) -> _Outcome:
        """pbx_outgoing_attempt() -> ast_dial_run() -> monitor_dial(), up to the decision."""
        base, number, cause = self._resolve(req.tech, req.data)
        ids = [i for i in (req.channel_id, req.other_channel_id) if i]
        if base is not None and any(i in self.channels for i in ids):
            base, cause = None, F.CAUSE_NOT_DEFINED  # do_ids_conflict(): allocation fails
        if base is None:
            return _Outcome(False, self._request_failure(cause), None)

        chan = self._new_channel(req, base, number)
        for var_name, value in req.variables:
            self._set_var(chan, var_name, value)
        if req.cid_num or req.cid_name:
            chan.caller_num, chan.caller_name = req.cid_num, req.cid_name
            chan.connected_num, chan.connected_name = req.cid_num, req.cid_name
            self._emit(
                F.CALL, "NewCallerid", chan.fields() + [("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")]
            )
            self._emit(F.CALL, "NewConnectedLine", chan.fields())
        self._emit(F.CALL, "DialBegin", chan.fields("Dest") + [("DialString", req.data)])

        behaviour = chan.behaviour
        timeline: list[tuple[float, str]] = []
        if behaviour.ring_after is not None:
            timeline.append((behaviour.ring_after, "ring"))
        if behaviour.answer_after is not None:
            timeline.append((behaviour.answer_after, "answer"))
        elif behaviour.reject_code is not None:
            timeline.append((behaviour.reject_after, "reject"))
        timeline.sort(key=lambda item: (item[0], item[1] != "ring"))
        deadline = req.timeout_ms / 1000 if req.timeout_ms > 0 else None  # <= 0: no timeout

        elapsed = 0.0
        for at, what in timeline:
            if deadline is not None and at >= deadline:
                break
            if await self._wait_or_hangup(chan, at - elapsed):
                return self._locally_cancelled(chan)
            elapsed = at
            if what == "ring":
                self._set_state(chan, F.STATE_RINGING)
                self._dial_event(chan, "RINGING")
            elif what == "answer":
                return self._answered(chan, req)
            else:
                return self._rejected(chan, behaviour)
        if deadline is None:
            await chan.requested_hangup.wait()
            return self._locally_cancelled(chan)
        if await self._wait_or_hangup(chan, deadline - elapsed):
            return self._locally_cancelled(chan)
        # handle_timeout_trip(): no DialEnd, cause NO_ANSWER on fixed versions, Reason 3
        chan.hangup_cause = self.timeout_cause
        return _Outcome(False, F.REASON_RINGING, chan, finish=lambda: self._destroy(chan))

    def _answered(self, chan: Channel, req: _Request) -> _Outcome:
        chan.answered = True
        self._set_state(chan, F.STATE_UP)
        self._dial_event(chan, "ANSWER")
        # no clearing of requested_hangup here: Asterisk's soft-hangup flag outlives the answer
        if req.app:  # pbx_outgoing_exec(): the application runs on the answered channel
            chan.application, chan.app_data = req.app, req.appdata
        else:
            if req.context:
                chan.context = req.context
            if req.exten:
                chan.exten = req.exten
            if req.priority > 0:
                chan.priority = req.priority
            chan.application, chan.app_data = "", ""
        talk = self._spawn(self._talk(chan))
        chan.tasks.add(talk)
        return _Outcome(True, F.REASON_ANSWERED, chan)

    def _rejected(self, chan: Channel, behaviour: Behaviour) -> _Outcome:
        code = behaviour.reject_code or 0
        cause = behaviour.rejection_cause or 0
        control = F.chan_sip_control(code) if self.reason_model == "chan_sip" else None
        chan.hangup_cause = cause
        if control is not None:
            # chan_sip queued AST_CONTROL_BUSY/CONGESTION: dial.c handle_frame() publishes
            # the status, hangs the leg up and records USER_BUSY / CIRCUIT_CONGESTION.
            dial_cause = F.CAUSE_USER_BUSY if control == "BUSY" else F.CAUSE_NORMAL_CIRCUIT_CONGESTION

            def finish() -> None:
                self._dial_event(chan, control)
                self._destroy(chan)

            return _Outcome(False, F.reason_for_dial_cause(dial_cause), chan, finish)

        # chan_pjsip (and chan_sip without a control frame): session end queues a hangup
        # with the cause; ast_read() returns NULL; monitor_dial() publishes the status
        # derived from the hangup cause and drops the leg without recording a dial cause,
        # so pbx_dial_reason(UNANSWERED, 0) gives Reason 0.
        if self.reason_model == "pjsip":
            chan.tech_cause = code
        self._hangup_request_event(chan)

        def finish() -> None:
            self._dial_event(chan, F.dial_status_for_cause(chan.hangup_cause))
            self._destroy(chan)

        return _Outcome(False, F.REASON_FAILED, chan, finish)

    def _locally_cancelled(self, chan: Channel) -> _Outcome:
        """A hangup during dialling (AMI Hangup, or far_end_hangup()): ast_read() NULL."""
        if chan.hungup:  # forgotten by shutdown(): no more events, no OriginateResponse
            raise asyncio.CancelledError
        chan.hangup_cause = chan.requested_cause
        if chan.remote_reject:
            self._hangup_request_event(chan)

        def finish() -> None:
            self._dial_event(chan, F.dial_status_for_cause(chan.hangup_cause))
            self._destroy(chan)

        return _Outcome(False, F.REASON_FAILED, chan, finish)

    # --------------------------------------------------------------- the answered leg -
    async def _talk(self, chan: Channel) -> None:
        behaviour = chan.behaviour
        jobs = []
        for item in behaviour.dtmf:
            jobs.append(self._at(chan, item.at, self._dtmf, chan, item))
        for spec in behaviour.user_events:
            jobs.append(self._at(chan, spec.at, self._user_event_spec, chan, spec))
        in_dialplan = self.agi.wants(chan)
        if behaviour.amd is not None and not in_dialplan:  # AGI: only EXEC AMD runs AMD()
            jobs.append(self._at(chan, behaviour.amd_after, self._amd, chan, behaviour))
        if behaviour.script is not None:
            jobs.append(behaviour.script(CallHandle(self, chan)))
        if behaviour.hangup_after is not None:
            jobs.append(self._at(chan, behaviour.hangup_after, self._bye, chan))
        for job in jobs:
            chan.tasks.add(self._spawn(job))
        if in_dialplan:
            self.agi.start(chan)
        await chan.requested_hangup.wait()
        if chan.pbx is not None and not chan.pbx.done():
            return  # the dialplan ends Async AGI and hangs the channel up itself
        if not chan.hungup:  # an AMI Hangup on the answered channel
            chan.hangup_cause = chan.requested_cause
            self._destroy(chan)

    async def _at(self, chan: Channel, at: float, fn: Callable[..., Any], *args: Any) -> None:
        await self._sleep(at)
        if chan.hungup:
            return
        result = fn(*args)
        if asyncio.iscoroutine(result):
            await result

    def _bye(self, chan: Channel) -> None:
        self._remote_hangup(chan, self.bye_cause)

    def _remote_hangup(self, chan: Channel, cause: int) -> None:
        """The far end hung up an answered channel: HangupRequest then Hangup."""
        if chan.hungup:
            return
        chan.hangup_cause = cause
        self._hangup_request_event(chan)
        if chan.pbx is not None and not chan.pbx.done():
            chan.requested_cause = cause
            chan.requested_hangup.set()  # the dialplan sees the hangup and ends
            return
        self._destroy(chan)

    async def _dtmf(self, chan: Channel, item: Dtmf) -> None:
        base = chan.fields()
        self._emit(F.DTMF, "DTMFBegin", base + [("Digit", item.digit), ("Direction", item.direction)])
        await self._sleep(item.duration_ms / 1000)
        if chan.hungup:
            return
        self._emit(
            F.DTMF,
            "DTMFEnd",
            chan.fields()
            + [("Digit", item.digit), ("DurationMs", str(item.duration_ms)), ("Direction", item.direction)],
        )
        for listener in list(chan.dtmf_listeners):  # a playing file may stop on this digit
            listener(item.digit, item.direction)

    def emit_user_event(self, name: str) -> None:
        """A ``UserEvent`` on no channel, as the dialplan's ``UserEvent()`` sends one (a busy PBX's
        stream of events, in tests)."""
        self._user_event(None, name, {})

    def _user_event(self, chan: Channel | None, name: str, headers: Mapping[str, str]) -> None:
        fields = chan.fields() if chan is not None else []
        self._emit(F.USER, "UserEvent", fields + [("UserEvent", name)] + [(k, str(v)) for k, v in headers.items()])

    def _user_event_spec(self, chan: Channel, spec: UserEventSpec) -> None:
        self._user_event(chan, spec.name, spec.headers)

    def _amd(self, chan: Channel, behaviour: Behaviour) -> None:
        status, cause = behaviour.amd or "", behaviour.amd_result_cause
        self._set_var(chan, "AMDSTATUS", status)
        self._set_var(chan, "AMDCAUSE", cause)
        shape = self.amd_event
        if shape.name:
            headers = {shape.status_header: status}
            if shape.cause_header:
                headers[shape.cause_header] = cause
            headers.update(shape.extra)
            self._user_event(chan, shape.name, headers)

    # ---------------------------------------------------------- other actions ---------
    async def _act_hangup(self, s: _Session, m: _Message) -> bool:
        target, cause_text = m.get("Channel"), m.get("Cause")
        if not target:
            self._error(s, m, "No channel specified")
            return True
        cause = 0
        if cause_text:
            try:
                cause = int(cause_text, 10)
            except ValueError:
                cause = 0
            if not 0 <= cause <= 127:
                cause = 0  # "keep going, better to hangup without cause"
        if not target.startswith("/"):
            chan = self.find_channel(target)
            if chan is None:
                self._error(s, m, "No such channel")
                return True
            self._request_hangup(chan, cause)
            self._ack(s, m, "Channel Hungup")
            return True
        if len(target) < 2 or not target.endswith("/"):
            self._error(s, m, "Regex format invalid, Channel param should be /regex/")
            return True
        try:
            regex = re.compile(target[1:-1])
        except re.error:
            self._error(s, m, f"Regex compile failed on: {target}")
            return True
        s.write(self._response(m, "Success", "Channels hung up will follow", "start"))
        id_text = f"ActionID: {m.get('ActionID')}{CRLF}" if m.get("ActionID") else ""
        matched = 0
        for chan in list(self.channels.values()):
            if regex.search(chan.name):
                self._request_hangup(chan, cause)
                matched += 1
                s.write(f"Event: ChannelHungup{CRLF}Channel: {chan.name}{CRLF}{id_text}{CRLF}")
        s.write(
            f"Event: ChannelsHungupListComplete{CRLF}{id_text}EventList: Complete{CRLF}ListItems: {matched}{CRLF}{CRLF}"
        )
        return True

    def _request_hangup(self, chan: Channel, cause: int) -> None:
        """ast_channel_softhangup_withcause_locked(): sets the cause only when > 0."""
        if cause > 0:
            chan.requested_cause = cause
        chan.requested_hangup.set()

    async def _act_setvar(self, s: _Session, m: _Message) -> bool:
        name, variable, value = m.get("Channel"), m.get("Variable"), m.get("Value")
        if not variable:
            self._error(s, m, "No variable specified")
            return True
        chan = None
        if name:
            chan = self.find_channel(name)
            if chan is None:
                self._error(s, m, "No such channel")
                return True
        self._set_var(chan, variable, value)
        self._ack(s, m, "Variable Set")
        return True

    async def _act_getvar(self, s: _Session, m: _Message) -> bool:
        name, variable = m.get("Channel"), m.get("Variable")
        if not variable:
            self._error(s, m, "No variable specified")
            return True
        chan = None
        if name:
            chan = self.find_channel(name)
            if chan is None:
                self._error(s, m, "No such channel")
                return True
        if variable.endswith(")"):
            value = ""  # dialplan functions are not emulated
        elif chan is not None:
            value = chan.variables.get(variable, self._globals.get(variable, ""))
        else:
            value = self._globals.get(variable, "")
        head = self._response(m, "Success", None).rstrip(CRLF) + CRLF
        s.write(head + f"Variable: {variable}{CRLF}Value: {value}{CRLF}{CRLF}")
        return True

    async def _act_userevent(self, s: _Session, m: _Message) -> bool:
        name = m.get("UserEvent")
        body = [line for line in m.lines if not line.lower().startswith(("userevent:", "action:"))]
        self._ack(s, m, "Event Sent")
        self._emit(F.USER, "UserEvent", [("UserEvent", name)], raw_lines=body)
        return True

    async def _act_coreshowchannels(self, s: _Session, m: _Message) -> bool:
        id_text = f"ActionID: {m.get('ActionID')}{CRLF}" if m.get("ActionID") else ""
        s.write(self._response(m, "Success", "Channels will follow", "start"))
        count = 0
        now = time.monotonic()
        for chan in list(self.channels.values()):
            duration = int(now - chan.created)
            body = "".join(f"{k}: {v}{CRLF}" for k, v in chan.fields())
            s.write(
                f"Event: CoreShowChannel{CRLF}{id_text}{body}"
                f"Application: {chan.application}{CRLF}ApplicationData: {chan.app_data}{CRLF}"
                f"Duration: {duration // 3600:02d}:{duration % 3600 // 60:02d}:{duration % 60:02d}{CRLF}"
                f"BridgeId: {CRLF}{CRLF}"
            )
            count += 1
        s.write(
            f"Event: CoreShowChannelsComplete{CRLF}{id_text}EventList: Complete{CRLF}ListItems: {count}{CRLF}{CRLF}"
        )
        return True

    def _known_dialplan(self) -> dict[str, list[tuple[str, int, str, str]]]:
        """{context: [(extension, priority, application, data)]} as far as the emulator knows it."""
        from .agi import PEREZVON_DIALPLAN

        known: dict[str, list[tuple[str, int, str, str]]] = {}
        for context, extensions in (self.dialplan or {}).items():
            known[context] = [(exten, 1, "NoOp", "") for exten in extensions]
        for context in self.agi.contexts:
            known[context] = [("s", prio, app, data) for prio, (app, data) in sorted(PEREZVON_DIALPLAN.items())]
        return known

    async def _act_showdialplan(self, s: _Session, m: _Message) -> bool:
        """manager_show_dialplan() / manager_show_dialplan_helper(), without includes and labels.

        With ``dialplan=None`` the emulator does not know the dialplan (Originate accepts any
        context), so a context it has not been told about is shown as one ``s`` extension
        running ``NoOp()`` rather than refused."""
        context, exten = m.get("Context"), m.get("Extension")
        known = self._known_dialplan()
        if context and context not in known and self.dialplan is None:
            known[context] = [("s", 1, "NoOp", "")]
        id_text = f"ActionID: {m.get('ActionID')}{CRLF}" if m.get("ActionID") else ""
        items = extensions = priorities = contexts = 0
        found_context = found_exten = False
        chunks: list[str] = []
        for name, steps in known.items():
            if context and name != context:
                continue
            found_context = True
            contexts += 1
            seen: set[str] = set()
            for extension, priority, app, data in steps:
                if exten and not _exten_matches(extension, exten):
                    continue
                found_exten = True
                if extension not in seen:
                    seen.add(extension)
                    extensions += 1
                priorities += 1
                items += 1
                chunks.append(
                    f"Event: ListDialplan{CRLF}{id_text}Context: {name}{CRLF}Extension: {extension}{CRLF}"
                    f"Priority: {priority}{CRLF}Application: {app}{CRLF}AppData: {data}{CRLF}"
                    f"Registrar: pbx_config{CRLF}{CRLF}"
                )
        if context and not found_context:
            self._error(s, m, f"Did not find context {context}")
            return True
        if exten and not found_exten:
            self._error(
                s,
                m,
                f"Did not find extension {exten}@{context}"
                if context
                else f"Did not find extension {exten} in any context",
            )
            return True
        s.write(self._response(m, "Success", "DialPlan list will follow", "start"))  # manager_dpsendack()
        for chunk in chunks:
            s.write(chunk)
        s.write(
            f"Event: ShowDialPlanComplete{CRLF}{id_text}EventList: Complete{CRLF}ListItems: {items}{CRLF}"
            f"ListExtensions: {extensions}{CRLF}ListPriorities: {priorities}{CRLF}ListContexts: {contexts}{CRLF}"
            f"{CRLF}"
        )
        return True

    async def _act_playdtmf(self, s: _Session, m: _Message) -> bool:
        name, digit, duration = m.get("Channel"), m.get("Digit"), m.get("Duration")
        chan = self.find_channel(name) if name else None
        if chan is None:
            self._error(s, m, "Channel not found")
            return True
        if not digit:
            self._error(s, m, "No digit specified")
            return True
        duration_ms = 0
        if duration:
            parsed = _scan_int(duration, unsigned=True)
            if parsed is None:
                self._error(s, m, "Could not convert Duration parameter")
                return True
            duration_ms = parsed
        direction = "Received" if F.ast_true(m.get("Receive")) else "Sent"
        if digit[0] in F.DTMF_DIGITS:
            item = Dtmf(0, digit[0], duration_ms or 100, direction)  # 100: AST_DEFAULT_EMULATE_DTMF_DURATION
            chan.tasks.add(self._spawn(self._dtmf(chan, item)))
        self._ack(s, m, "DTMF successfully queued")
        return True

    async def _act_agi(self, s: _Session, m: _Message) -> bool:
        """action_add_agi_cmd() (res/res_agi.c)."""
        name, command, command_id = m.get("Channel"), m.get("Command"), m.get("CommandID")
        if not name or not command:
            self._error(s, m, "Both, Channel and Command are *required*")
            return True
        error = self.agi.add_command(name, command, command_id)
        if error is not None:
            self._error(s, m, error)
            return True
        self._ack(s, m, "Added AGI command to queue")
        return True
