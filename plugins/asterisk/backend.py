"""The Asterisk telephony backend: the core's scenario played on a real PBX over AMI.

Each leg of an attempt is an asynchronous ``Originate`` into the shipped dialplan
context (``perezvon-leg``, docs/asterisk.md), which answers nothing itself: it
hands the answered channel to Async AGI. From then on this module drives the
leg with AGI commands sent over the same AMI link (``Action: AGI``) --
``STREAM FILE`` for announcements (the recorded-call notice too), ``SET MUSIC ON``/``OFF``
for the client's music on hold in client-first, ``EXEC SendDTMF`` for the extension,
``EXEC AMD`` for voicemail detection, ``EXEC MixMonitor`` and ``EXEC Bridge``
to record and join the legs -- and reads what happens from the events:
``OriginateResponse``, ``Hangup`` (the cause, and the SIP code in
``TechCause`` on newer versions), ``DTMFEnd``, ``AsyncAGIExec``.

Why Async AGI rather than a dialplan that does the work or FastAGI: the
scenario (:func:`perezvon.api.run_scenario`) is the same for every PBX and stays in
Python; nothing has to connect from Asterisk back to the workers (FastAGI
would need a reachable port per worker and routing each call to the worker
that placed it); one TCP connection per worker carries everything.

Nothing a visitor typed reaches Asterisk: numbers are E.164 digits checked
against a strict pattern, channel ids and file names are made here, the
announcement is an audio file named by its hash.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import shutil
import urllib.parse
from pathlib import Path
from typing import Any

from perezvon.api import (
    CLIENT,
    OPERATOR,
    AttemptOutcome,
    AttemptPlan,
    AttemptProgress,
    CallControl,
    LegHungUp,
    LegStatus,
    Registry,
    SpeechEngine,
    TelephonyBackend,
    keep_recording,
    run_scenario,
)
from perezvon.plugins.asterisk.causes import status_for_failed_leg
from perezvon.plugins.asterisk.inbound import InboundWatcher
from perezvon.plugins.asterisk.link import ActionRefused, AmiLink, LinkDown
from perezvon.plugins.asterisk.pool import Pbx, PbxPool, PoolFull

log = logging.getLogger("perezvon.asterisk")

_E164 = re.compile(r"^\+[1-9]\d{5,14}$")
_DTMF = re.compile(r"^[0-9*#wW]{1,32}$")
#: a musiconhold.conf class name, as the connection's settings allow it (core/schemas.py MUSIC_CLASS)
_MUSIC_CLASS = re.compile(r"[A-Za-z0-9_-]{1,79}")
_RESULT = re.compile(r"^(\d{3})[ -](?:result=(-?\d+))?(?:\s*\(([^)]*)\))?")


def attempt_tag(call_id: str, attempt_number: int) -> str:
    """The part of every leg id that names the attempt: ``<first 20 hex digits of the call id>-<number>``."""
    return f"{call_id.replace('-', '')[:20]}-{attempt_number}"


class TelephonyFault(Exception):
    """Something outside the scenario went wrong (link lost, dialplan missing): the attempt ends with it."""


class Leg:
    """One originated channel and what its events said."""

    def __init__(self, role: str, channel_id: str) -> None:
        loop = asyncio.get_running_loop()
        self.role = role
        self.id = channel_id
        self.name = ""
        self.originated: asyncio.Future = loop.create_future()  # (success, reason)
        self.gone: asyncio.Future = loop.create_future()  # hangup cause
        self.agi_ready: asyncio.Future = loop.create_future()
        self.tech_cause = 0
        #: the far end hung up (HangupRequest: a BYE or CANCEL), as opposed to our dialplan ending the leg
        self.far_end_left = False
        #: the leg answered: from now on its hang-up interrupts whatever the scenario waits for
        self.answered = False
        self.digits: asyncio.Queue[str] = asyncio.Queue()
        self.commands: dict[str, asyncio.Future] = {}

    def on_event(self, event: Any) -> None:
        name = event.get("Event", "")
        if name == "OriginateResponse":
            if event.get("Response") == "Success" and event.get("Channel"):
                self.name = event["Channel"]
            if not self.originated.done():
                self.originated.set_result((event.get("Response") == "Success", int(event.get("Reason") or 0)))
            return
        if event.get("Uniqueid") == self.id and event.get("Channel"):
            self.name = event["Channel"]
        if name == "AsyncAGIStart":
            if not self.agi_ready.done():
                self.agi_ready.set_result(True)
        elif name == "AsyncAGIExec":
            command_id = event.get("CommandId") or event.get("CommandID") or ""
            future = self.commands.pop(command_id, None)
            if future is not None and not future.done():
                future.set_result(urllib.parse.unquote(event.get("Result", "")))
        elif name == "HangupRequest" and event.get("Uniqueid") == self.id:
            self.far_end_left = True
        elif name == "DTMFEnd" and event.get("Direction") == "Received":
            self.digits.put_nowait(event.get("Digit", ""))
        elif name == "Hangup" and event.get("Uniqueid") == self.id:
            self.tech_cause = int(event.get("TechCause") or 0)
            if not self.gone.done():
                self.gone.set_result(int(event.get("Cause") or 0))
            for future in self.commands.values():
                if not future.done():
                    future.set_exception(LegHungUp(self.role))
            self.commands.clear()


class AsteriskCall(CallControl):
    """One attempt on Asterisk (a :class:`perezvon.api.CallControl`)."""

    def __init__(
        self, backend: AsteriskTelephony, plan: AttemptPlan, progress: AttemptProgress, pbx: Pbx | None = None
    ) -> None:
        self.backend = backend
        #: the PBX of the pool this attempt runs on (both legs: Bridge joins channels of one Asterisk)
        self.pbx = pbx or backend.pool.pbxs[0]
        self.link = self.pbx.link
        self.plan = plan
        self.progress = progress
        self.legs: dict[str, Leg] = {}
        self.fault: asyncio.Future = asyncio.get_running_loop().create_future()
        self.recording_name = ""
        self._commands = itertools.count(1)
        self._prefix = f"pv-{backend.token}-{attempt_tag(plan.call_id, plan.attempt_number)}"

    # -------------------------------------------------------------- waiting
    async def _race(self, awaitable: Any, *, watch: tuple[str, ...] | None = None, timeout: float | None = None):
        """Await ``awaitable`` unless an answered leg hangs up (LegHungUp) or the link fails (TelephonyFault)."""
        task = asyncio.ensure_future(awaitable)
        roles = tuple(self.legs) if watch is None else watch
        gone = {self.legs[r].gone: r for r in roles if r in self.legs and self.legs[r].answered}
        try:
            done, _ = await asyncio.wait(
                {task, self.fault, *gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done:
            return task.result()
        task.cancel()
        if self.fault in done:
            raise TelephonyFault(self.fault.result())
        for future, role in gone.items():
            if future in done:
                raise LegHungUp(role)
        raise TimeoutError

    def lose_link(self, why: str) -> None:
        if not self.fault.done():
            self.fault.set_result(why)

    async def _agi(self, leg: Leg, command: str) -> tuple[int, int | None, str]:
        """Run one AGI command on the leg; ``(code, result, text in parentheses)``."""
        command_id = f"{leg.id}-{next(self._commands)}"
        future = asyncio.get_running_loop().create_future()
        leg.commands[command_id] = future
        try:
            await self._race(
                self.link.send({"Action": "AGI", "Channel": leg.name, "Command": command, "CommandID": command_id})
            )
        except BaseException as exc:
            # no reply will be read: the LegHungUp a later Hangup puts in the future would go unread
            leg.commands.pop(command_id, None)
            if isinstance(exc, ActionRefused):  # the channel left Async AGI (hung up, or a broken dialplan)
                if leg.gone.done():
                    raise LegHungUp(leg.role) from None
                raise TelephonyFault(f"Asterisk refused an AGI command: {exc.message}") from None
            if isinstance(exc, LinkDown):
                raise TelephonyFault(str(exc)) from None
            raise
        reply = await self._race(future)
        match = _RESULT.match(reply)
        if not match:
            raise TelephonyFault(f"unexpected AGI reply {reply!r} to {command.split()[0]}")
        code, result, text = int(match.group(1)), match.group(2), match.group(3) or ""
        if code != 200:
            raise TelephonyFault(f"Asterisk could not run AGI {command.split()[0]}: {reply.strip()}")
        return code, (int(result) if result is not None else None), text

    # -------------------------------------------------------------- CallControl
    async def dial(self, leg_role: str, number: str, *, caller_id: str, timeout: float) -> int:
        if not _E164.match(number):
            raise TelephonyFault(f"not a dialable E.164 number: {number!r}")
        leg = Leg(leg_role, f"{self._prefix}{'o' if leg_role == OPERATOR else 'c'}")
        self.legs[leg_role] = leg
        self.link.listen(leg.id, leg.on_event)
        action = self._originate(leg, number, caller_id=caller_id, timeout=timeout)
        others = tuple(r for r in self.legs if r != leg_role)
        try:
            await self._race(self.link.send(action), watch=others)
        except ActionRefused as refused:
            hint = " -- is the perezvon dialplan installed? (docs/asterisk.md)" if "xtension" in refused.message else ""
            raise TelephonyFault(f"Asterisk refused the Originate: {refused.message}{hint}") from None
        except LinkDown as down:
            raise TelephonyFault(str(down)) from None
        # recorded once the Originate is on its way: the database never delays a dial
        await self.progress.leg_dialled(leg_role)
        # the decision: OriginateResponse (Asterisk does not order it against DialEnd/Hangup)
        try:
            answered, reason = await self._race(asyncio.shield(leg.originated), watch=others, timeout=timeout + 60)
        except TimeoutError:
            raise TelephonyFault(f"no OriginateResponse for {leg.id} in {timeout + 60:g} s") from None
        if not answered:
            try:  # the Hangup event carries the cause; a channel that never existed has none
                await self._race(asyncio.shield(leg.gone), watch=others, timeout=2.0)
            except TimeoutError:
                pass
            cause = leg.gone.result() if leg.gone.done() else None
            return status_for_failed_leg(cause, leg.tech_cause, reason)
        await self._until_in_agi(leg, others)
        # answered (even if already gone: the scenario's next step sees the hang-up and says who left)
        leg.answered = True
        return LegStatus.OK

    def _originate(self, leg: Leg, number: str, *, caller_id: str, timeout: float) -> dict[str, Any]:
        """The Originate of one leg: into the perezvon context's Async AGI, named by the leg's id."""
        action: dict[str, Any] = {
            "Action": "Originate",
            "Channel": self.pbx.dial_string(number),
            "Context": self.backend.context,
            "Exten": "s",
            "Priority": "1",
            "Timeout": str(max(1000, int(timeout * 1000))),
            "Async": "true",
            "ChannelId": leg.id,
            "Variable": [f"PEREZVON_CALL={self.plan.call_id}", f"PEREZVON_LEG={leg.role}"],
        }
        shown = caller_id or self.backend.platform_caller_id
        if shown and _E164.match(shown if shown.startswith("+") else "+" + shown):
            action["CallerID"] = shown.lstrip("+")
        return action

    async def _until_in_agi(self, leg: Leg, others: tuple[str, ...]) -> None:
        """An answered channel: the dialplan hands it to Async AGI (or it hangs up first)."""
        try:
            await self._race(
                asyncio.wait({leg.agi_ready, leg.gone}, return_when=asyncio.FIRST_COMPLETED),
                watch=others,
                timeout=self.backend.answer_wait,
            )
        except TimeoutError:
            raise TelephonyFault(
                f"the answered channel did not reach Async AGI in {self.backend.answer_wait:g} s "
                f"-- check the {self.backend.context} dialplan (docs/asterisk.md)"
            ) from None

    async def dial_all(
        self, leg_role: str, numbers: list[str], *, caller_id: str, timeout: float
    ) -> tuple[int, int | None]:
        """Ring-all (docs/calls.md#operator-lines): one Originate per number, all at once; the first
        channel that answers becomes the leg, the others are hung up with cause 26 ("answered
        elsewhere"), as Dial() does with several destinations. Leg ids: the usual one plus the
        number's position (``...o0``, ``...o1``)."""
        bad = [n for n in numbers if not _E164.match(n)]
        if bad:
            raise TelephonyFault(f"not a dialable E.164 number: {bad[0]!r}")
        role = "o" if leg_role == OPERATOR else "c"
        lines = [Leg(leg_role, f"{self._prefix}{role}{i}") for i in range(len(numbers))]
        others = tuple(r for r in self.legs if r != leg_role)
        sent: list[Leg] = []
        try:
            for leg, number in zip(lines, numbers):
                self.link.listen(leg.id, leg.on_event)
                action = self._originate(leg, number, caller_id=caller_id, timeout=timeout)
                await self._race(self.link.send(action), watch=others)
                sent.append(leg)
        except ActionRefused as refused:
            await self._cancel(sent)
            raise TelephonyFault(f"Asterisk refused the Originate: {refused.message}") from None
        except LinkDown as down:
            raise TelephonyFault(str(down)) from None
        await self.progress.leg_dialled(leg_role)
        waiting = {asyncio.shield(leg.originated): i for i, leg in enumerate(lines)}
        statuses: dict[int, int] = {}
        winner: int | None = None
        try:
            while waiting and winner is None:
                try:
                    done, _ = await self._race(
                        asyncio.wait(set(waiting), return_when=asyncio.FIRST_COMPLETED),
                        watch=others,
                        timeout=timeout + 60,
                    )
                except TimeoutError:
                    raise TelephonyFault(f"no OriginateResponse for the ring-all of {self._prefix} in time") from None
                for future in sorted(done, key=lambda f: waiting[f]):
                    i = waiting.pop(future)
                    answered, reason = future.result()
                    if answered and winner is None:
                        winner = i
                    elif not answered:
                        statuses[i] = await self._failed_status(lines[i], reason, others)
        except BaseException:
            await asyncio.shield(self._cancel(lines))
            raise
        await self._cancel([leg for i, leg in enumerate(lines) if i != winner])
        if winner is None:
            return statuses.get(0, LegStatus.UNAVAILABLE), None
        leg = self.legs[leg_role] = lines[winner]
        await self._until_in_agi(leg, others)
        leg.answered = True
        await self.progress.operator_answered(numbers[winner])
        return LegStatus.OK, winner

    async def _failed_status(self, leg: Leg, reason: int, others: tuple[str, ...]) -> int:
        try:  # the Hangup event carries the cause; a channel that never existed has none
            await self._race(asyncio.shield(leg.gone), watch=others, timeout=2.0)
        except TimeoutError:
            pass
        return status_for_failed_leg(leg.gone.result() if leg.gone.done() else None, leg.tech_cause, reason)

    async def _cancel(self, legs: list[Leg]) -> None:
        """Hang up ring-all channels that lost (still ringing, or answered a moment too late)."""
        for leg in legs:
            if leg.gone.done() or (leg.originated.done() and not leg.originated.result()[0]):
                continue
            try:
                await self.link.send({"Action": "Hangup", "Channel": leg.name or leg.id, "Cause": "26"}, timeout=5)
            except ActionRefused:  # it ended meanwhile
                pass
            except LinkDown:
                self.backend.orphan(leg.id)

    async def send_dtmf(self, leg_role: str, digits: str) -> None:
        if not _DTMF.match(digits):
            log.warning("call %s: %r is not DTMF (digits, *, #, w); not sent", self.plan.call_id, digits)
            return
        await self._agi(self.legs[leg_role], f"EXEC SendDTMF {digits}")

    async def say(self, leg_role: str, text: str, *, voice: str) -> None:
        if not text.strip():
            return
        sound = await self._race(self.backend.sound(text, voice))
        leg = self.legs[leg_role]
        _, result, _ = await self._agi(leg, f'STREAM FILE {sound} ""')
        if result is not None and result < 0:
            # -1 is also what the person hanging up during the playback gives (their
            # HangupRequest came first); otherwise the file could not be played, and
            # Asterisk's dialplan now ends the leg itself
            if leg.far_end_left:
                raise LegHungUp(leg_role)
            raise TelephonyFault(
                f"Asterisk could not play {sound}: check sounds_dir / asterisk_sounds_dir "
                f"in [plugins.asterisk] (docs/asterisk.md)"
            )

    async def start_hold_music(self, leg_role: str, music_class: str) -> None:
        # SET MUSIC starts the class's generator on the channel and answers at once; the music
        # plays while the leg idles in Async AGI. An unknown class falls back to "default" in
        # Asterisk, and a PBX with neither plays nothing -- the answer is 0 either way.
        if not _MUSIC_CLASS.fullmatch(music_class):
            log.warning("call %s: %r is not a music on hold class; no music", self.plan.call_id, music_class)
            return
        await self._agi(self.legs[leg_role], f"SET MUSIC ON {music_class}")

    async def stop_hold_music(self, leg_role: str) -> None:
        await self._agi(self.legs[leg_role], "SET MUSIC OFF")

    async def wait_key(self, leg_role: str, keys: set[str], timeout: float) -> str | None:
        leg = self.legs[leg_role]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            try:
                digit = await self._race(leg.digits.get(), timeout=left)
            except TimeoutError:
                return None
            if digit in keys:
                return digit
        return None

    async def answered_by_machine(self, leg_role: str) -> bool:
        leg = self.legs[leg_role]
        await self._agi(leg, "EXEC AMD")
        _, found, status = await self._agi(leg, "GET VARIABLE AMDSTATUS")
        return bool(found) and status == "MACHINE"

    async def pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        try:
            await self._race(asyncio.sleep(seconds), timeout=seconds + 1)
        except TimeoutError:
            pass

    async def bridge(self, *, record: bool) -> int:
        operator, client = self.legs[OPERATOR], self.legs[CLIENT]
        if record and self.backend.asterisk_recordings_dir:
            self.recording_name = f"{operator.id}.wav"
            await self._agi(operator, f"EXEC MixMonitor {self.backend.asterisk_recordings_dir}/{self.recording_name},b")
        loop = asyncio.get_running_loop()
        started = loop.time()
        # Bridge() runs on the operator's channel and yanks the client's into the bridge;
        # "x" hangs the client up when the operator leaves instead of sending it back to the dialplan
        try:
            await self._agi(operator, f"EXEC Bridge {client.name},x")
            # Bridge() returns at once when it could not join them (NONEXISTENT, FAILURE)
            _, _, result = await self._agi(operator, "GET VARIABLE BRIDGERESULT")
        except LegHungUp:  # the operator left: the conversation is over
            return round(loop.time() - started)
        if result != "SUCCESS":
            raise TelephonyFault(f"Asterisk could not join the two legs (BRIDGERESULT={result or 'unset'})")
        return round(loop.time() - started)

    async def hang_up(self) -> None:
        for leg in self.legs.values():
            if leg.gone.done():
                continue
            if not self.link.up.is_set():
                self.pbx.orphan(leg.id)
                continue
            try:
                await self.link.send({"Action": "Hangup", "Channel": leg.name or leg.id, "Cause": "16"}, timeout=5)
            except ActionRefused:  # "No such channel": it is gone already
                pass
            except LinkDown:
                self.pbx.orphan(leg.id)


class AsteriskTelephony(TelephonyBackend):
    key = "asterisk"
    title = "Asterisk (AMI + Async AGI)"
    rings_all = True

    def __init__(self, settings: dict[str, Any], core_settings: Any, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        data_dir = Path(core_settings.data_dir)
        self.data_dir = data_dir
        self.context = settings["context"]
        self.platform_caller_id = settings["platform_caller_id"]
        self.answer_wait = settings["answer_wait_seconds"]
        self.connect_wait = settings["connect_wait_seconds"]
        self.sounds_dir = Path(settings["sounds_dir"] or data_dir / "asterisk-sounds")
        self.asterisk_sounds_dir = settings["asterisk_sounds_dir"] or str(self.sounds_dir)
        self.recordings_dir = Path(settings["recordings_dir"] or data_dir / "asterisk-recordings")
        self.asterisk_recordings_dir = settings["asterisk_recordings_dir"] or str(self.recordings_dir)
        #: names this worker's channels, so after a reconnect it can tell its own
        self.token = secrets.token_hex(4)
        self._warming: set[asyncio.Future[None]] = set()  # announcements being synthesised
        #: the PBXs (plugins/asterisk/pool.py); the single-server settings are a pool of one
        self.pool = PbxPool(settings)
        self.speech: SpeechEngine | None = None  # the highest-priority engine, picked by start()
        self._sounds_in_progress: dict[tuple[str, str], asyncio.Future] = {}
        self.inbound_watcher = InboundWatcher(self)

    # the first PBX under the names of the single-server backend (one server = a pool of one)
    @property
    def link(self) -> AmiLink:
        return self.pool.pbxs[0].link

    @property
    def orphans(self) -> set[str]:
        return self.pool.pbxs[0].orphans

    @property
    def dialplan_problem(self) -> str:
        return self.pool.pbxs[0].dialplan_problem

    def orphan(self, channel_id: str) -> None:
        self.pool.pbxs[0].orphan(channel_id)

    def dial_string(self, number: str) -> str:
        return self.pool.pbxs[0].dial_string(number)

    # -------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        if not self.registry.speech:
            raise RuntimeError(
                "the asterisk backend speaks announcements through a speech engine: "
                "enable [plugins.speech] (or another speech plugin) in plugins.toml"
            )
        self.speech = max(self.registry.speech.values(), key=lambda engine: engine.priority)
        for directory in (self.sounds_dir, self.recordings_dir):
            directory.mkdir(parents=True, exist_ok=True)
        for pbx in self.pool.pbxs:
            await pbx.link.start()
            # inbound calls (plugins/asterisk/inbound.py), told apart by the PBX they came from
            self.inbound_watcher.attach(pbx.link.manager, f"{pbx.link.host}:{pbx.link.port}")

    async def stop(self) -> None:
        await asyncio.gather(*(pbx.stop() for pbx in self.pool.pbxs))
        await self.inbound_watcher.drain()

    async def health(self) -> str | None:
        problem = self.pool.health()
        return f"asterisk: {problem}" if problem else None

    def servers(self) -> list[dict[str, Any]]:
        return self.pool.states()

    async def end_interrupted(self, call_id: str, attempt_number: int) -> int:
        """Hang up the legs a stopped worker left for this attempt.

        They sit in Async AGI waiting for commands that will never come, holding the
        operator's (or the visitor's) line; the dialplan's ``TIMEOUT(absolute)`` would end
        them only after two hours. Any worker can find them: every leg id is
        ``pv-<worker token>-<attempt tag>`` plus ``o`` or ``c``.
        """
        own_legs = re.compile(
            rf"pv-[0-9a-f]+-{re.escape(attempt_tag(call_id, attempt_number))}[oc][0-9]*"
        )  # ring-all legs: o0, o1 ...
        # the stopped worker may have placed it on any PBX of the pool: ask each one in rotation
        found = await asyncio.gather(*(pbx.end_interrupted(own_legs) for pbx in self.pool.pbxs if pbx.link.up.is_set()))
        return sum(found)

    # -------------------------------------------------------------- sounds
    async def sound(self, text: str, voice: str) -> str:
        """The announcement as a file Asterisk can play; returns its path without extension (as Asterisk sees it).

        The same text asked for twice at once (prepared in advance, then needed) is made once.
        """
        key = (text, voice)
        task = self._sounds_in_progress.get(key)
        if task is None:
            task = asyncio.ensure_future(self._make_sound(text, voice))
            self._sounds_in_progress[key] = task
            task.add_done_callback(lambda _: self._sounds_in_progress.pop(key, None))
        return await asyncio.shield(task)

    async def _make_sound(self, text: str, voice: str) -> str:
        assert self.speech is not None, "start() picks the speech engine"
        made = Path(await self.speech.synthesize(text, voice))
        target = self.sounds_dir / made.name
        if not target.exists():  # copied under a temporary name, so Asterisk never plays half a file
            partial = target.with_name(f".{made.name}.{secrets.token_hex(4)}.part")
            await asyncio.to_thread(shutil.copyfile, made, partial)
            partial.replace(target)
        return f"{self.asterisk_sounds_dir}/{made.stem}"

    # -------------------------------------------------------------- attempts
    async def place_attempt(self, plan: AttemptPlan, progress: AttemptProgress) -> AttemptOutcome:
        try:
            pbx = await self.pool.acquire(plan, self.connect_wait)
        except PoolFull as full:  # up, but every line taken: the redial matrix tries again later
            return AttemptOutcome(LegStatus.UNAVAILABLE_SERVICE, None, note=f"no free line: {full}")
        except LinkDown as down:
            return AttemptOutcome(LegStatus.UNAVAILABLE_SERVICE, None, note=f"Asterisk unreachable: {down}")
        call = AsteriskCall(self, plan, progress, pbx)
        pbx.calls.add(call)
        # announcements are made while the first leg rings, not after it answers
        for text in {plan.operator_text, plan.client_text, plan.recorded_notice} - {""}:
            warming = asyncio.ensure_future(self._warm(text, plan.voice))
            # the loop holds tasks weakly: keep a reference until it is done, or it may vanish mid-synthesis
            self._warming.add(warming)
            warming.add_done_callback(self._warming.discard)
        try:
            outcome = await run_scenario(plan, call)
        except TelephonyFault as fault:
            log.warning("call %s attempt %s: %s", plan.call_id, plan.attempt_number, fault)
            outcome = AttemptOutcome(LegStatus.SERVER_ERROR, None, note=str(fault))
        finally:
            pbx.calls.discard(call)
            self.pool.release(pbx)
            for leg in call.legs.values():
                pbx.link.forget(leg.id)
        if call.recording_name:
            outcome.recording = await keep_recording(
                self.recordings_dir / call.recording_name, self.data_dir, plan.call_id, plan.attempt_number
            )
        return outcome

    async def _warm(self, text: str, voice: str) -> None:
        try:
            await self.sound(text, voice)
        except Exception:  # say() will report it on the call
            log.debug("could not prepare an announcement in advance", exc_info=True)
