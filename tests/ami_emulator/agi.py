"""Async AGI for the AMI emulator: the Perezvon dialplan and the ``AGI`` manager action.

The Perezvon Asterisk plugin ships its dialplan in
``plugins/asterisk/conf/extensions_perezvon.conf`` (``NoOp``, ``Set(TIMEOUT(absolute)=...)``,
``AGI(agi:async)``, ``Hangup()``). Every context named in
``AmiEmulator(async_agi_contexts=...)`` runs the priorities read from that file on an
answered originated channel.  Everything here is copied from
Asterisk's source (branch ``releases/20``, commit 842100ea81; ``releases/22`` and
master agree for the parts used): ``res/res_agi.c`` (``launch_asyncagi()``,
``setup_env()``, ``action_add_agi_cmd()``, ``agi_handle_command()``,
``parse_args()``, ``find_command()`` and the ``handle_*`` commands),
``main/utils.c`` (``ast_uri_encode()``), ``main/file.c`` (where sound files are
looked for), ``apps/app_amd.c``, ``apps/app_mixmonitor.c``, ``apps/app_senddtmf.c``
+ ``main/app.c`` ``dtmf_stream()``, ``apps/app_playback.c``, ``main/pbx_builtins.c``
(``Wait``, ``Hangup``), ``res/res_musiconhold.c`` (``local_ast_moh_start()``,
``local_ast_moh_stop()``, the generators' release), ``main/features.c`` ``bridge_exec()``, ``main/bridge.c``
``ast_bridge_add_channel()``, ``main/bridge_after.c``, ``main/channel.c``
``ast_channel_yank()``/``channel_do_masquerade()``, ``main/manager_bridges.c``.
docs/ami-emulator.md, section "Async AGI (the Perezvon dialplan)", says what is and
is not emulated.
"""

from __future__ import annotations

import asyncio
import collections
import io
import itertools
import logging
import os
import random
import time
import uuid
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import facts as F
from .scenarios import Dtmf

if TYPE_CHECKING:  # pragma: no cover
    from .server import AmiEmulator, Channel

log = logging.getLogger(__name__)

__all__ = ["PEREZVON_DIALPLAN", "AsyncAgi", "parse_args", "uri_encode"]

SHIPPED_DIALPLAN = Path(__file__).resolve().parents[2] / "plugins" / "asterisk" / "conf" / "extensions_perezvon.conf"


def load_dialplan(path: Path, exten: str = "s") -> dict[int, tuple[str, str]]:
    """Extension ``exten`` of the one context in an extensions.conf file: priority -> (app, data).

    Enough of pbx_config's syntax for the shipped file: ``exten => s,1,App(data)``,
    ``same => n,App(data)``, ``;`` comments. Variables in the data are not substituted.
    """
    steps: dict[int, tuple[str, str]] = {}
    current, priority = None, 0
    for raw in path.read_text().splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line or line.startswith("["):
            continue
        kind, _, rest = line.partition("=>")
        kind, rest = kind.strip(), rest.strip()
        if kind == "exten":
            current, number, command = (part.strip() for part in rest.split(",", 2))
            priority = int(number)
        elif kind == "same":
            number, command = (part.strip() for part in rest.split(",", 1))
            priority = priority + 1 if number == "n" else int(number)
        else:
            continue
        if current != exten:
            continue
        app, _, data = command.partition("(")
        steps[priority] = (app.strip(), data[:-1] if data.endswith(")") else data)
    return steps


# The dialplan every Async AGI context runs: priority -> (application, data) -- the file the
# plugin ships (docs/asterisk.md), so the tests run exactly what an administrator installs.
PEREZVON_DIALPLAN = (
    load_dialplan(SHIPPED_DIALPLAN)
    if SHIPPED_DIALPLAN.exists()
    else {1: ("NoOp", "Perezvon call leg"), 2: ("AGI", "agi:async"), 3: ("Hangup", "")}
)

# res/res_agi.c: handler return codes and launch_asyncagi() outcomes
RESULT_SUCCESS, RESULT_SHOWUSAGE, RESULT_FAILURE, ASYNC_AGI_BREAK = 0, 1, 2, 3
AGI_SUCCESS, AGI_FAILURE, AGI_HANGUP = "SUCCESS", "FAILURE", "HANGUP"

AGI_BUF_SIZE = 1024  # launch_asyncagi(): read() of the handler's reply
AMI_BUF_SIZE = 2048  # ast_uri_encode() output buffer
MAX_ARGS = 128
AST_SOFTHANGUP_EXPLICIT = 0x10  # include/asterisk/channel.h; the Cause of SoftHangupRequest
DEFAULT_EMULATE_DTMF_DURATION = 100  # AST_DEFAULT_EMULATE_DTMF_DURATION (ms)

# main/file.c: the formats an 8 kHz channel would read, in the order the emulator tries them
SOUND_EXTENSIONS = (".wav", ".sln", ".ulaw", ".alaw", ".gsm", ".wav16")

_URI_KEEP = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()")


def uri_encode(text: str | bytes, buflen: int = AMI_BUF_SIZE) -> str:
    """ast_uri_encode(text, buf, buflen, ast_uri_http): alphanumerics and the RFC 2396 marks
    ``-_.!~*'()`` stay, every other byte becomes ``%XX`` (upper case); the output stops
    before overflowing ``buflen`` (one byte is the terminating NUL)."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    out: list[str] = []
    length = 0
    for byte in data:
        if length >= buflen - 1:
            break
        ch = chr(byte)
        if ch in _URI_KEEP:
            out.append(ch)
            length += 1
        else:
            if length >= buflen - 3:
                break
            out.append(f"%{byte:02X}")
            length += 3
    return "".join(out)


def parse_args(line: str) -> list[str]:
    """res_agi.c parse_args(): words split on blanks and tabs; double quotes group (and start
    a word when opened after whitespace); a backslash makes the next character literal; at
    most MAX_ARGS - 1 words."""
    argv: list[str] = []
    current: list[str] | None = None
    quoted = escaped = False
    whitespace = True

    def start() -> None:
        nonlocal current
        if current is not None:
            argv.append("".join(current))
        current = []

    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:
                start()
                whitespace = False
            escaped = False
            continue
        if ch in " \t" and not quoted and not escaped:
            whitespace = True
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if whitespace:
            if len(argv) + (current is not None) >= MAX_ARGS - 1:
                escaped = False
                continue
            start()
            whitespace = False
        assert current is not None
        current.append(ch)
        escaped = False
    if current is not None:
        argv.append("".join(current))
    return argv


# res_agi.c commands[] (the ones emulated), in registration order, with a short usage line
# (the real usage text is the command's whole XML documentation).
_COMMANDS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("answer",), "_cmd_answer", "ANSWER"),
    (("asyncagi", "break"), "_cmd_break", "ASYNCAGI BREAK"),
    (("exec",), "_cmd_exec", "EXEC <application> <options>"),
    (("get", "variable"), "_cmd_get_variable", "GET VARIABLE <variablename>"),
    (("hangup",), "_cmd_hangup", "HANGUP [<channelname>]"),
    (("noop",), "_cmd_noop", "NOOP"),
    (("set", "music"), "_cmd_set_music", "SET MUSIC <on|off> <class>"),
    (("set", "variable"), "_cmd_set_variable", "SET VARIABLE <variablename> <value>"),
    (("stream", "file"), "_cmd_stream_file", "STREAM FILE <filename> <escape_digits> [<sample offset>]"),
)


def find_command(argv: list[str]) -> tuple[tuple[str, ...], str, str] | None:
    """find_command(cmds, 0): every word of the command must equal (strcasecmp) the word at
    the same place; extra words are the arguments; fewer words than the command has is no
    match."""
    for entry in _COMMANDS:
        words = entry[0]
        if len(argv) < len(words):
            continue
        if all(a.lower() == w for a, w in zip(argv, words)):
            return entry
    return None


def _parse_timelen(text: str, default_unit: str) -> int | None:
    """ast_app_parse_timelen(): a number with an optional unit (ms, s, m, h); the result in ms."""
    text = text.strip()
    units = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000}
    number, unit = text, default_unit
    for suffix in ("ms", "h", "m", "s"):
        if text.lower().endswith(suffix):
            number, unit = text[: -len(suffix)], suffix
            break
    try:
        value = float(number)
    except ValueError:
        return None
    return int(value * units[unit])


def _app_options(text: str) -> set[str]:
    """ast_app_parse_options(): option letters; ``x(arg)`` arguments are skipped."""
    letters: set[str] = set()
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif not depth:
            letters.add(ch)
    return letters


def sound_info(path: str) -> tuple[int, int]:
    """(samples, rate) of a sound file as Asterisk's format modules count them."""
    if path.endswith((".wav", ".wav16")):
        with wave.open(path, "rb") as wav:
            return wav.getnframes(), wav.getframerate()
    size = os.path.getsize(path)
    if path.endswith(".sln"):
        return size // 2, 8000
    if path.endswith(".gsm"):
        return size // 33 * 160, 8000
    return size, 8000  # ulaw / alaw: a byte a sample


def _write_silent_wav(path: str, rate: int, frames: int) -> None:
    """A WAV (mono, 16-bit) of ``frames`` frames of silence, as MixMonitor leaves it at the hangup.

    Asterisk writes a recording frame by frame from a thread of its own while the call lasts; the
    emulator writes it at the end. The samples of silence are zeros, so the file is sized rather than
    written: a thousand long calls ending together would otherwise write gigabytes at once, and the
    emulator's loop (its AMI answers with it) would wait on the disk, which Asterisk's never does.
    """
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:  # (closing patches the buffer down to no frames: not used)
        wav.setparams((1, 2, rate, frames, "NONE", "not compressed"))
        wav.writeframesraw(b"")  # the header, sized for ``frames`` by the wave module
        header = buffer.getvalue()
    with open(path, "wb") as out:
        out.write(header)
        out.truncate(len(header) + 2 * frames)  # the samples: zeros, a sparse file


@dataclass
class AgiQueue:
    """The "AsyncAGI" channel datastore (add_to_agi()): it stays on the channel after Async
    AGI ends, so commands can still be queued; they run if AGI(agi:async) runs again."""

    commands: collections.deque = field(default_factory=collections.deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    active: bool = False


@dataclass(eq=False)
class Bridge:
    uniqueid: str
    channels: list = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def fields(self) -> list[tuple[str, str]]:
        """ast_manager_build_bridge_state_string_prefix() for a Bridge() application bridge."""
        return [
            ("BridgeUniqueid", self.uniqueid),
            ("BridgeType", "basic"),
            ("BridgeTechnology", "simple_bridge"),
            ("BridgeCreator", "<unknown>"),
            ("BridgeName", "<unknown>"),
            ("BridgeNumChannels", str(len(self.channels))),
            ("BridgeVideoSourceMode", "none"),
        ]


class AsyncAgi:
    """The dialplan runner, Async AGI and its applications, owned by one AmiEmulator."""

    def __init__(
        self, emulator: AmiEmulator, contexts: Any, sounds_dir: str, monitor_dir: str, moh_classes: Any = ("default",)
    ):
        self.emu = emulator
        self.contexts = frozenset(contexts)
        self.sounds_dir = sounds_dir
        self.monitor_dir = monitor_dir
        #: the classes musiconhold.conf defines (names compare case-insensitively, as ao2 finds them)
        self.moh_classes = {name.lower(): name for name in moh_classes}
        self._thread_ids = itertools.count(139_800_000_000_000, 4096)
        self.recordings: list[dict[str, Any]] = []
        #: every music on hold that played: channel, uniqueid, class, asked (the class SET MUSIC
        #: named, "" for none), and once it ended: stopped_by ("SET MUSIC OFF", "file", "hangup")
        self.music: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ the dialplan --
    def wants(self, chan: Channel) -> bool:
        """An answered Originate to Context/Exten/Priority (not to an Application) whose
        context runs the Perezvon dialplan."""
        return chan.context in self.contexts and not chan.application

    def start(self, chan: Channel, priority: int = 1) -> None:
        """__ast_pbx_run() on the answered channel, from ``priority``."""
        task = self.emu._spawn(self._pbx(chan, priority))
        chan.pbx = task
        chan.tasks.add(task)

    def _hangup_pending(self, chan: Channel) -> bool:
        return chan.hungup or chan.requested_hangup.is_set()

    async def _pbx(self, chan: Channel, priority: int) -> None:
        emu = self.emu
        while not self._hangup_pending(chan):
            step = PEREZVON_DIALPLAN.get(priority)
            if step is None:  # no such priority: the PBX ends and hangs the channel up
                break
            app, data = step
            chan.priority, chan.application, chan.app_data = priority, app, data
            if app == "AGI":
                outcome = await self.launch_asyncagi(chan)
                emu._set_var(chan, "AGISTATUS", outcome)  # agi_exec_full()
                if outcome == AGI_HANGUP:
                    break
            elif app == "Hangup":  # pbx_builtin_hangup(): the channel's cause, else 16
                chan.hangup_cause = chan.hangup_cause or F.CAUSE_NORMAL_CLEARING
                chan.requested_cause = chan.hangup_cause
                break
            priority += 1
        self._end(chan)

    def _end(self, chan: Channel) -> None:
        """ast_hangup() at the end of the PBX."""
        if chan.hungup:
            return
        if chan.requested_cause > 0:
            chan.hangup_cause = chan.requested_cause
        chan.pbx = None
        self.emu._destroy(chan)

    # ----------------------------------------------------------- launch_asyncagi() --
    def env(self, chan: Channel) -> str:
        """setup_env(chan, "async", ...) with no AGI arguments."""
        v = self.emu.asterisk_version
        has_num, has_name = bool(chan.caller_num), bool(chan.caller_name)
        # ast_party_id_presentation(): 67 (NUMBER_NOT_AVAILABLE) when nothing is valid
        pres = 0 if (has_num or has_name) else 67
        lines = [
            ("agi_request", "async"),
            ("agi_channel", chan.name),
            ("agi_language", chan.language),
            ("agi_type", chan.tech),
            ("agi_uniqueid", chan.uniqueid),
            ("agi_version", ".".join(str(x) for x in v)),
            ("agi_callerid", chan.caller_num if has_num else "unknown"),
            ("agi_calleridname", chan.caller_name if has_name else "unknown"),
            ("agi_callingpres", str(pres)),
            ("agi_callingani2", "0"),
            ("agi_callington", "0"),
            ("agi_callingtns", "0"),
            ("agi_dnid", "unknown"),
            ("agi_rdnis", "unknown"),
            ("agi_context", chan.context),
            ("agi_extension", chan.exten),
            ("agi_priority", str(chan.priority)),
            ("agi_enhanced", "0.0"),
            ("agi_accountcode", chan.accountcode),
            ("agi_threadid", str(next(self._thread_ids))),
        ]
        return "".join(f"{k}: {val}\n" for k, val in lines) + "\n"

    def _agi_event(self, name: str, chan: Channel, extra: list[tuple[str, str]]) -> None:
        """agi_channel_to_ami(): EVENT_FLAG_AGI, the channel snapshot, then the blob."""
        self.emu._emit(F.AGI, name, chan.fields() + extra)

    async def launch_asyncagi(self, chan: Channel) -> str:
        queue = chan.agi
        if queue is None:
            queue = chan.agi = AgiQueue()
        queue.active = True
        env = self.env(chan).encode()[:AGI_BUF_SIZE]
        self._agi_event("AsyncAGIStart", chan, [("Env", uri_encode(env))])
        outcome = AGI_SUCCESS
        cancelled = False
        try:
            while True:
                hungup = self._hangup_pending(chan)
                while not hungup and queue.commands:
                    line, command_id = queue.commands.popleft()
                    status, reply = await self.handle_command(chan, line)
                    extra = [("Result", uri_encode(reply.encode()[:AGI_BUF_SIZE]))]
                    if command_id:
                        extra.append(("CommandId", command_id))
                    self._agi_event("AsyncAGIExec", chan, extra)
                    hungup = self._hangup_pending(chan)
                    if status == AGI_FAILURE and not hungup:
                        outcome = AGI_FAILURE
                        return outcome
                    if status == "ASYNC":
                        return AGI_SUCCESS
                if hungup:
                    outcome = AGI_HANGUP
                    return outcome
                queue.wake.clear()
                waiters = [
                    asyncio.ensure_future(queue.wake.wait()),
                    asyncio.ensure_future(chan.requested_hangup.wait()),
                ]
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
        except asyncio.CancelledError:
            cancelled = True  # yanked (the zombie reports the end) or the emulator stopped
            raise
        finally:
            queue.active = False
            if not cancelled:
                self._agi_event("AsyncAGIEnd", chan, [])

    # ------------------------------------------------------------- AGI action -------
    def add_command(self, name: str, command: str, command_id: str) -> str | None:
        """action_add_agi_cmd() after its argument check: None on success, else the error."""
        chan = self.emu.find_channel(name)  # ast_channel_get_by_name(): name, then uniqueid
        if chan is None:
            return f"Channel {name} does not exist."[:255]
        if chan.agi is None:  # add_agi_cmd(): no AsyncAGI datastore
            return f"Failed to add AGI command to channel {chan.name} queue"[:255]
        chan.agi.commands.append((command, command_id))
        chan.agi.wake.set()
        return None

    # ---------------------------------------------------------- agi_handle_command() --
    async def handle_command(self, chan: Channel, line: str) -> tuple[str, str]:
        """Returns (AGI_SUCCESS | AGI_FAILURE | "ASYNC", the reply the handler wrote)."""
        command_id = str(random.randrange(1 << 31))  # ast_random()
        self._agi_event("AGIExecStart", chan, [("CommandId", command_id), ("Command", line)])
        argv = parse_args(line)
        entry = find_command(argv)

        def exec_end(code: int, text: str) -> None:
            self._agi_event(
                "AGIExecEnd",
                chan,
                [("CommandId", command_id), ("Command", line), ("ResultCode", str(code)), ("Result", text)],
            )

        if entry is None:
            exec_end(510, "Invalid or unknown command")
            return AGI_SUCCESS, "510 Invalid or unknown command\n"
        _, method, usage = entry
        res, reply = await getattr(self, method)(chan, argv)
        if res == RESULT_SHOWUSAGE:
            exec_end(520, "Usage")
            return AGI_SUCCESS, (
                f"520-Invalid command syntax.  Proper usage follows:\n{usage}\n520 End of proper usage.\n"
            )
        if res == RESULT_FAILURE:
            exec_end(-1, "Failure")
            return AGI_FAILURE, reply
        if res == ASYNC_AGI_BREAK:
            exec_end(200, "Success")
            return "ASYNC", reply
        if res == RESULT_SUCCESS:
            exec_end(200, "Success")
        else:
            exec_end(200, "Unknown Result")
        return AGI_SUCCESS, reply

    # --------------------------------------------------------------- commands -------
    async def _cmd_answer(self, chan: Channel, argv: list[str]) -> tuple[int, str]:
        return RESULT_SUCCESS, "200 result=0\n"  # the channel is already up

    async def _cmd_noop(self, chan: Channel, argv: list[str]) -> tuple[int, str]:
        return RESULT_SUCCESS, "200 result=0\n"

    async def _cmd_break(self, chan: Channel, argv: list[str]) -> tuple[int, str]:
        return ASYNC_AGI_BREAK, "200 result=0\n"

    def softhangup(self, chan: Channel) -> None:
        """ast_softhangup(chan, AST_SOFTHANGUP_EXPLICIT): a SoftHangupRequest whose Cause is
        the flag (16), and no hangup cause on the channel."""
        self.emu._emit(F.CALL, "SoftHangupRequest", chan.fields() + [("Cause", str(AST_SOFTHANGUP_EXPLICIT))])
        self.emu._request_hangup(chan, 0)

    async def _cmd_hangup(self, chan: Channel, argv: list[str]) -> tuple[int, str]:
        if len(argv) == 1:
            self.softhangup(chan)
            return RESULT_SUCCESS, "200 result=1\n"
        if len(argv) == 2:
            other = self.emu.find_channel(argv[1])
            if other is None:
                return RESULT_SUCCESS, "200 result=-1\n"
            self.softhangup(other)
            return RESULT_SUCCESS, "200 result=1\n"
        return RESULT_SHOWUSAGE, ""

    def _builtin_var(self, chan: Channel, name: str) -> str | None:
        """pbx_retrieve_variable(): the built-in names checked before channel variables."""
        builtins = {
            "EXTEN": chan.exten,
            "CONTEXT": chan.context,
            "PRIORITY": str(chan.priority),
            "CHANNEL": chan.name,
            "UNIQUEID": chan.uniqueid,
            "HANGUPCAUSE": str(chan.hangup_cause),
            "EPOCH": str(int(time.time())),
        }
        return builtins.get(name)

    async def _cmd_get_variable(self, chan: Channel, argv: list[str]) -> tuple[int, str]:
        if len(argv) != 3:
            return RESULT_SHOWUSAGE, ""
        name = argv[2]
        value: str | None
        if name.endswith(")"):
            value = None  # dialplan functions are not emulated: ast_func_read() fails
        else:
            value = self._builtin_var(chan, name)
            if value is None:
                value = chan.variables.get(name, self.emu._globals.get(name))
        if value is None:
            return RESULT_SUCCESS, "200 result=0\n"
        return RESULT_SUCCESS, f"200 result=1 ({value})\n"

    async def _cmd_set_variable(self, chan: Channel, argv: list[str]) -> tuple[int, str]:
        if len(argv) != 4:
            return RESULT_SHOWUSAGE, ""
        self.emu._set_var(chan, argv[2], argv[3])
        return RESULT_SUCCESS, "200 result=1\n"

    # -- music on hold -------------------------------------------------------------
    async def _cmd_set_music(self, chan: Channel, argv: list[str]) -> tuple[int, str]:
        """handle_setmusic(): fewer than 3 words is the usage; a third word starting with "on"
        (strncasecmp, 2 characters) starts the class named by the fourth (or none), one
        starting with "off" stops it, anything else does nothing; the answer is always
        ``200 result=0`` -- even when no class could be started."""
        if len(argv) < 3:
            return RESULT_SHOWUSAGE, ""
        if argv[2][:2].lower() == "on":
            self.moh_start(chan, argv[3] if len(argv) > 3 else "")
        elif argv[2][:3].lower() == "off":
            self.moh_stop(chan, "SET MUSIC OFF")
        return RESULT_SUCCESS, "200 result=0\n"

    def moh_start(self, chan: Channel, asked: str) -> bool:
        """local_ast_moh_start(chan, mclass, NULL): the class asked for if musiconhold.conf has
        it, else "default", else nothing (-1, no event). Activating the generator releases a
        generator already there first (its MusicOnHoldStop), then MusicOnHoldStart with the
        class's own name."""
        name = (self.moh_classes.get(asked.lower()) if asked else None) or self.moh_classes.get("default")
        if name is None:
            return False
        self.moh_stop(chan, "SET MUSIC ON")
        playing = {"channel": chan.name, "uniqueid": chan.uniqueid, "class": name, "asked": asked}
        chan.music = playing
        self.music.append(playing)
        self.emu._emit(F.CALL, "MusicOnHoldStart", chan.fields() + [("Class", name)])
        return True

    def moh_stop(self, chan: Channel, why: str) -> None:
        """The MOH generator's release (moh_release() / moh_files_release(): MusicOnHoldStop),
        run by ast_deactivate_generator() -- SET MUSIC OFF, a file starting to play
        (ast_openstream_full()), a new generator -- and by ast_hangup(). Nothing when no
        music plays."""
        playing = chan.music
        if playing is None:
            return
        chan.music = None
        playing["stopped_by"] = why
        self.emu._emit(F.CALL, "MusicOnHoldStop", chan.fields())

    # -- playing files ------------------------------------------------------------
    def find_sound(self, name: str, language: str) -> str | None:
        """main/file.c fileexists_core(): <lang>/<file>, then <file>, then en/<file>; a
        relative name lives under ``sounds_dir`` (build_filename())."""
        if not name:
            return None
        absolute = name.startswith("/")

        def with_lang(lang: str | None) -> str:
            if lang is None:
                return name if absolute else os.path.join(self.sounds_dir, name)
            if not absolute:  # new layout: <sounds>/<lang>/<file>
                return os.path.join(self.sounds_dir, lang, name)
            head, tail = os.path.split(name)  # old layout: the language before the basename
            return os.path.join(head, lang, tail)

        langs = [language] if language else []
        while langs and "_" in langs[-1]:
            langs.append(langs[-1].rsplit("_", 1)[0])
        candidates = [with_lang(lang) for lang in langs] + [with_lang(None)]
        if language != "en" and (not langs or langs[-1] != "en"):
            candidates.append(with_lang("en"))
        for candidate in candidates:
            for ext in SOUND_EXTENSIONS:
                if os.path.isfile(candidate + ext):
                    return candidate + ext
        return None

    async def play(self, chan: Channel, path: str, escape: str, offset: int = 0) -> tuple[int, int]:
        """ast_waitstream_full(): (result, endpos).  0 at the end, the digit's code when a
        received DTMF digit in ``escape`` ends it (on its DTMF END frame), -1 on hangup."""
        try:
            total, rate = sound_info(path)
        except (OSError, EOFError, wave.Error):
            total, rate = 0, 8000
        start = min(offset, total)
        digits: asyncio.Queue[str] = asyncio.Queue()

        def on_dtmf(digit: str, direction: str) -> None:
            if direction == "Received" and digit in escape:
                digits.put_nowait(digit)

        chan.dtmf_listeners.append(on_dtmf)
        began = time.monotonic()

        def position() -> int:
            played = (time.monotonic() - began) * self.emu.speed * rate
            return min(total, start + int(played))

        remaining = (total - start) / rate / self.emu.speed
        waiters = [asyncio.ensure_future(digits.get()), asyncio.ensure_future(chan.requested_hangup.wait())]
        try:
            done, _ = await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            chan.dtmf_listeners.remove(on_dtmf)
        if waiters[1] in done or chan.requested_hangup.is_set():
            return -1, position()
        if waiters[0] in done:
            return ord(waiters[0].result()), position()
        return 0, total  # the stream closed itself: max_length

    async def _cmd_stream_file(self, chan: Channel, argv: list[str]) -> tuple[int, str]:
        """handle_streamfile()."""
        if not 4 <= len(argv) <= 5:
            return RESULT_SHOWUSAGE, ""
        escape = argv[3]
        offset = 0
        if len(argv) > 4:
            from .server import _scan_int

            parsed = _scan_int(argv[4])
            if parsed is None:
                return RESULT_SHOWUSAGE, ""
            offset = parsed
        # ast_openstream_full() deactivates the generator before it looks for the file: music
        # on hold stops for good, even when the file is missing
        self.moh_stop(chan, "file")
        path = self.find_sound(argv[2], chan.language)
        if path is None:
            return RESULT_FAILURE, f"200 result=-1 endpos={offset}\n"
        res, endpos = await self.play(chan, path, escape, offset)
        self.emu._set_var(chan, "PLAYBACKSTATUS", "FAILED" if res else "SUCCESS")
        return (RESULT_SUCCESS if res >= 0 else RESULT_FAILURE), f"200 result={res} endpos={endpos}\n"

    # -- EXEC ---------------------------------------------------------------------
    async def _cmd_exec(self, chan: Channel, argv: list[str]) -> tuple[int, str]:
        """handle_exec(): only argv[2] reaches the application (quote data with blanks); the
        application's return value is both the result and the handler's return code."""
        if len(argv) < 2:
            return RESULT_SHOWUSAGE, ""
        app = self._APPS.get(argv[1].lower())  # pbx_findapp(): case-insensitive
        if app is None:
            log.warning("AMI emulator: application %s is not emulated (EXEC answers -2)", argv[1])
            return -2, "200 result=-2\n"
        data = argv[2] if len(argv) >= 3 else ""
        saved = chan.application, chan.app_data
        chan.application, chan.app_data = self._APP_NAMES[argv[1].lower()], data
        try:
            res = await getattr(self, app)(chan, data)
        finally:
            chan.application, chan.app_data = saved
        return res, f"200 result={res}\n"

    _APPS = {
        "amd": "_app_amd",
        "mixmonitor": "_app_mixmonitor",
        "bridge": "_app_bridge",
        "senddtmf": "_app_senddtmf",
        "wait": "_app_wait",
        "playback": "_app_playback",
        "noop": "_app_noop",
        "hangup": "_app_hangup",
        "set": "_app_set",
    }
    _APP_NAMES = {
        "amd": "AMD",
        "mixmonitor": "MixMonitor",
        "bridge": "Bridge",
        "senddtmf": "SendDTMF",
        "wait": "Wait",
        "playback": "Playback",
        "noop": "NoOp",
        "hangup": "Hangup",
        "set": "Set",
    }

    async def _sleep_or_hangup(self, chan: Channel, nominal: float) -> bool:
        """ast_safe_sleep(): True (-1) if the channel hung up meanwhile."""
        return await self.emu._wait_or_hangup(chan, nominal)

    async def _app_noop(self, chan: Channel, data: str) -> int:
        return 0

    async def _app_set(self, chan: Channel, data: str) -> int:
        if "=" in data:
            name, value = data.split("=", 1)
            self.emu._set_var(chan, name.strip(), value)
        return 0

    async def _app_hangup(self, chan: Channel, data: str) -> int:
        """pbx_builtin_hangup(): cause from data, else the channel's, else 16; returns -1."""
        from .server import _scan_int

        cause = _scan_int(data) if data else None
        cause = cause if cause and cause > 0 else (chan.hangup_cause or F.CAUSE_NORMAL_CLEARING)
        chan.hangup_cause = cause
        self.emu._request_hangup(chan, cause)
        return -1

    async def _app_wait(self, chan: Channel, data: str) -> int:
        """pbx_builtin_wait(): seconds (timelen), ast_safe_sleep()."""
        ms = _parse_timelen(data, "s") if data else None
        if ms and ms > 0 and await self._sleep_or_hangup(chan, ms / 1000):
            return -1
        return 0

    async def _app_amd(self, chan: Channel, data: str) -> int:
        """isAnsweringMachine(): AMDSTATUS and AMDCAUSE (VarSet), returns 0.  The verdict is
        the Behaviour's ``amd`` after ``amd_after`` (counted from this EXEC); a phone with no
        ``amd`` is a HUMAN after 1.5 s.  A hangup meanwhile: HANGUP with an empty cause."""
        behaviour = chan.behaviour
        if behaviour.amd is not None:
            status, cause, after = behaviour.amd, behaviour.amd_result_cause, behaviour.amd_after
        else:
            status, cause, after = "HUMAN", "HUMAN-800-800", 1.5
        if await self._sleep_or_hangup(chan, after):
            status, cause = "HANGUP", ""
        self.emu._set_var(chan, "AMDSTATUS", status)
        self.emu._set_var(chan, "AMDCAUSE", cause)
        return 0

    async def _app_senddtmf(self, chan: Channel, data: str) -> int:
        """senddtmf_exec() + dtmf_stream(): 100 ms of quiet, then each digit (duration default
        100 ms) followed by the pause (default 250 ms); w = 500 ms, W = 1 s."""
        from .server import _separate_args

        args = _separate_args(data) if data else []
        digits = args[0] if args else ""
        if not digits:
            return 0
        between = _parse_timelen(args[1], "ms") if len(args) > 1 and args[1] else 0
        duration = _parse_timelen(args[2], "ms") if len(args) > 2 and args[2] else 0
        between = between if between and between > 0 else 250
        duration = duration or DEFAULT_EMULATE_DTMF_DURATION
        if await self._sleep_or_hangup(chan, 0.1):
            return -1
        for ch in digits:
            if ch == "w":
                pause = 0.5
            elif ch == "W":
                pause = 1.0
            elif ch in "0123456789*#abcdfABCDF":
                if ch not in "fF":
                    await self.emu._dtmf(chan, Dtmf(0, ch, duration, "Sent"))
                pause = between / 1000
            else:
                continue
            if await self._sleep_or_hangup(chan, pause):
                return -1
        return 0

    async def _app_playback(self, chan: Channel, data: str) -> int:
        """playback_exec(): files separated by &; a missing one is skipped with
        PLAYBACKSTATUS=FAILED and result 0; a hangup while playing returns -1."""
        from .server import _separate_args

        if not data:
            return -1
        args = _separate_args(data)
        res, failed = 0, False
        self.moh_stop(chan, "file")  # ast_streamfile() -> ast_openstream_full(), as STREAM FILE
        for front in (f.strip() for f in (args[0] if args else "").split("&")):
            if res:
                break
            path = self.find_sound(front, chan.language)
            if path is None:
                failed = True
                continue
            res, _ = await self.play(chan, path, "")
            res = -1 if res < 0 else 0
        self.emu._set_var(chan, "PLAYBACKSTATUS", "FAILED" if failed else "SUCCESS")
        return res

    # -- MixMonitor ---------------------------------------------------------------
    def monitor_path(self, filename: str) -> str:
        """filename_parse(): relative names go under ``monitor_dir``; .wav49 becomes .WAV."""
        if not filename.startswith("/"):
            filename = f"{self.monitor_dir}/{filename}"
        if filename.endswith(".wav49"):
            filename = filename[:-6] + ".WAV"
        return filename

    async def _app_mixmonitor(self, chan: Channel, data: str) -> int:
        """mixmonitor_exec(): creates the directory (ast_mkdir), sets MIXMONITOR_FILENAME,
        MixMonitorStart, returns 0; the file is written when the recording ends (hangup)."""
        from .server import _separate_args

        args = _separate_args(data) if data else []
        filename = args[0] if args else ""
        options = _app_options(args[1]) if len(args) > 1 else set()
        if not filename:
            return -1
        path = self.monitor_path(filename)
        try:
            os.makedirs(os.path.dirname(path) or "/", mode=0o777, exist_ok=True)
        except OSError as exc:
            log.warning("AMI emulator: MixMonitor cannot create %s: %s", os.path.dirname(path), exc)
        self.emu._set_var(chan, "MIXMONITOR_FILENAME", path)
        recording = {
            "channel": chan.name,
            "uniqueid": chan.uniqueid,
            "path": path,
            "bridged_only": "b" in options,
            "seconds": 0.0,
            "since": None,
            "written": False,
        }
        if not recording["bridged_only"] or chan.bridge is not None:
            recording["since"] = time.monotonic()
        self.recordings.append(recording)
        chan.recordings.append(recording)
        self.emu._emit(F.CALL, "MixMonitorStart", chan.fields())
        return 0

    def recording_pause(self, chan: Channel) -> None:
        for rec in chan.recordings:
            if rec["bridged_only"] and rec["since"] is not None:
                rec["seconds"] += (time.monotonic() - rec["since"]) * self.emu.speed
                rec["since"] = None

    def recording_resume(self, chan: Channel) -> None:
        for rec in chan.recordings:
            if rec["bridged_only"] and rec["since"] is None:
                rec["since"] = time.monotonic()

    def finish_recordings(self, chan: Channel) -> None:
        """The audiohook ends with the channel: write what was recorded (silence) as the file
        MixMonitor would have written: WAV 8 kHz mono 16-bit, or raw signed linear."""
        for rec in chan.recordings:
            if rec["written"]:
                continue
            if rec["since"] is not None:
                rec["seconds"] += (time.monotonic() - rec["since"]) * self.emu.speed
                rec["since"] = None
            rec["written"] = True
            path = rec["path"]
            base = os.path.basename(path)
            if "." not in base:  # mixmonitor_thread(): no extension -> format "raw"
                path += ".raw"
            ext = path.rsplit(".", 1)[1]
            rate = 16000 if ext == "wav16" else 8000
            frames = int(round(rec["seconds"] * rate))
            # mixmonitor_save_prep() -> ast_writefile(name, ext): the extension picks the
            # format module; one Asterisk does not have means no file ("Cannot open").
            raw_silence = {  # a byte a sample (signed linear, zeros, is sized below instead)
                "ulaw": b"\xff",
                "ul": b"\xff",
                "pcm": b"\xff",
                "alaw": b"\xd5",
                "al": b"\xd5",
            }
            try:
                if ext in ("wav", "WAV", "wav16"):
                    _write_silent_wav(path, rate, frames)
                elif ext in ("raw", "sln"):  # signed linear silence is zeros: sized, not written
                    with open(path, "wb") as raw:
                        raw.truncate(2 * frames)
                elif ext in raw_silence:
                    with open(path, "wb") as raw:
                        raw.write(raw_silence[ext] * frames)
                elif ext == "gsm":
                    with open(path, "wb") as raw:
                        raw.write(b"\0" * (33 * (frames // 160)))
                else:
                    log.warning("AMI emulator: MixMonitor: no format for %s (Asterisk: Cannot open)", path)
                    continue
                rec["file"] = path
            except OSError as exc:
                log.warning("AMI emulator: MixMonitor cannot write %s: %s", path, exc)

    # -- Bridge -------------------------------------------------------------------
    def find_by_prefix(self, prefix: str) -> Channel | None:
        """ast_channel_get_by_name_prefix(): a case-insensitive name prefix, then a uniqueid
        prefix. Which of several matches Asterisk returns is up to its container's order; a whole
        name (what a Bridge() is given) is looked up directly, without a scan of every channel."""
        exact = self.emu.channel_named(prefix)
        if exact is not None:
            return exact
        live = list(self.emu.channels.values())
        for chan in live:
            if chan.name.lower().startswith(prefix.lower()):
                return chan
        for chan in live:
            if chan.uniqueid.lower().startswith(prefix.lower()):
                return chan
        return None

    def _yank(self, dest: Channel) -> None:
        """ast_channel_yank() + channel_do_masquerade(): a Surrogate/<name> channel is made
        (Newchannel, new uniqueid), the two swap name and uniqueid, and the old structure -
        now called Surrogate/<name> with the new uniqueid - is the zombie: its PBX thread
        sees the hangup, ends Async AGI (AsyncAGIEnd), sets AGISTATUS=HANGUP and hangs up."""
        from .server import Channel as _Channel

        emu = self.emu
        in_pbx = dest.pbx is not None and not dest.pbx.done()
        zombie = _Channel(
            name=f"Surrogate/{dest.name}",
            uniqueid=f"{int(time.time())}.{next(emu._uniqueint)}",
            tech="Surrogate",
            data="",
            number="",
            behaviour=dest.behaviour,
            accountcode=dest.accountcode,
            context=dest.context,
            exten=dest.exten,
            priority=dest.priority + (1 if in_pbx else 0),
        )
        zombie.linkedid = dest.linkedid
        emu._emit(F.CALL, "Newchannel", zombie.fields())
        was_in_agi = dest.agi is not None and dest.agi.active
        if in_pbx:
            dest.pbx.cancel()
            dest.tasks.discard(dest.pbx)
            dest.pbx = None
        if dest.agi is not None:
            dest.agi.active = False
        zombie.priority = dest.priority
        zombie.application, zombie.app_data = dest.application, dest.app_data
        if was_in_agi:
            self._agi_event("AsyncAGIEnd", zombie, [])
        if in_pbx:
            emu._set_var(zombie, "AGISTATUS", AGI_HANGUP)
        zombie.hungup = True
        emu._emit(F.CALL, "Hangup", zombie.fields() + [("Cause", "0"), ("Cause-txt", F.cause_text(0))])
        dest.priority += 1 if in_pbx else 0  # "where it should execute" (AST_FLAG_IN_AUTOLOOP)
        dest.application, dest.app_data = "", ""

    def _bridge_event(self, name: str, bridge: Bridge, chan: Channel | None = None) -> None:
        fields = bridge.fields() + (chan.fields() if chan is not None else [])
        self.emu._emit(F.CALL, name, fields)

    async def _app_bridge(self, chan: Channel, data: str) -> int:
        """bridge_exec()."""
        from .server import _separate_args

        args = _separate_args(data) if data else []
        target = args[0] if args else ""
        options = _app_options(args[1]) if len(args) > 1 else set()
        dest = self.find_by_prefix(target) if target else None
        if dest is None:
            self.emu._set_var(chan, "BRIDGERESULT", "NONEXISTENT")
            return 0
        if dest is chan:
            self.emu._set_var(chan, "BRIDGERESULT", "LOOP")
            return 0
        if dest.bridge is not None:  # moving a bridged channel is not emulated
            self.emu._set_var(chan, "BRIDGERESULT", "FAILURE")
            return 0
        kill = "x" in options and "F" not in options
        # after-bridge goto: the destination's own location, taken before the yank
        goto = None if kill else (dest.context, dest.exten, dest.priority)
        bridge = Bridge(str(uuid.uuid4()))
        self._bridge_event("BridgeCreate", bridge)
        self._yank(dest)
        for member in (dest, chan):
            bridge.channels.append(member)
            member.bridge = bridge
            self._bridge_event("BridgeEnter", bridge, member)
            self.recording_resume(member)
        peer = self.emu._spawn(self._bridged_peer(dest, bridge, goto))
        dest.pbx = peer
        dest.tasks.add(peer)
        waiters = [
            asyncio.ensure_future(chan.requested_hangup.wait()),
            asyncio.ensure_future(dest.requested_hangup.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        first, second = (chan, dest) if chan.requested_hangup.is_set() else (dest, chan)
        cause = first.requested_cause or first.hangup_cause
        for member in (first, second):
            self.recording_pause(member)
            bridge.channels.remove(member)
            member.bridge = None
            if member is second and cause and not member.hangup_cause:
                member.hangup_cause = cause  # channel_set_cause() on the dissolve
            self._bridge_event("BridgeLeave", bridge, member)
        self._bridge_event("BridgeDestroy", bridge)
        bridge.ended.set()
        self.emu._set_var(chan, "BRIDGERESULT", "SUCCESS")
        return 0

    async def _bridged_peer(self, dest: Channel, bridge: Bridge, goto: tuple[str, str, int] | None) -> None:
        """The imparted (independent) destination: when the bridge ends it hangs up if it
        hung up or the caller asked for ``x``; else ast_bridge_setup_after_goto() sends it to
        the next priority of its own location (ast_goto_if_exists(..., priority + 1))."""
        await bridge.ended.wait()
        dest.pbx = None
        if self._hangup_pending(dest) or goto is None or dest.context not in self.contexts:
            self._end(dest)
            return
        context, exten, priority = goto
        dest.context, dest.exten = context, exten
        self.start(dest, priority + 1)
