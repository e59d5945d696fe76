"""A simulated PBX for demos and tests -- it dials nobody.

It plays the core's scenario (:func:`perezvon.api.run_scenario`) against simulated phones.
Each leg "rings" and then answers, unless a rule in plugins.toml says the
phone at that number (matched by its ending) gives another status -- busy
486, no answer 480, declined 603 ... -- presses other keys, hangs up after a
while, or is an answering machine. Operators press ``operator_presses`` when
asked. Time runs ``speed`` times faster than a real call, so a demo call ends
in seconds.

When the scenario bridges the two legs with ``record=True`` (the connection
records its calls), the simulator "records" the conversation: a short, valid
WAV file (8 kHz, 16-bit mono; a quiet 440 Hz tone) one second long per
simulated second of talk, at most :data:`RECORDING_MAX_SECONDS`. Like a PBX's
file it is written to a temporary file and handed to the platform's
:func:`perezvon.api.keep_recording`, which moves it into the recording storage
under the data dir; the attempt's outcome carries the stored path, so the
admin's player and every integration (Bitrix24's attachRecord, amoCRM's call
note ...) see a real recording on the demo.

The client's hold music (client-first) is logged as ``("hold music on", leg,
class)`` and ``("hold music off", leg)``; the recorded-call notice is a
``("say", leg, text, voice)`` like every announcement.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import os
import tempfile
import wave
from pathlib import Path
from typing import Any

from perezvon.api import (
    AttemptOutcome,
    AttemptPlan,
    AttemptProgress,
    CallControl,
    LegHungUp,
    LegStatus,
    TelephonyBackend,
    keep_recording,
    run_scenario,
)

#: simulated seconds a person takes to press a key once asked
KEY_DELAY = 1.0
#: simulated speaking rate of the announcement voice, characters per second
SPEECH_RATE = 15.0
#: the longest recording the simulator writes, in seconds of audio
RECORDING_MAX_SECONDS = 5.0
#: the shortest one (a conversation cut at once still leaves a playable file)
RECORDING_MIN_SECONDS = 0.5
RECORDING_RATE = 8000  # Hz, as a telephone line


@functools.cache
def _one_second_of_tone() -> bytes:
    """A second of a quiet 440 Hz tone: a whole number of cycles, so seconds of it join without a click."""
    amplitude = 1000  # of 32767: quiet
    return b"".join(
        int(amplitude * math.sin(2 * math.pi * 440 * n / RECORDING_RATE)).to_bytes(2, "little", signed=True)
        for n in range(RECORDING_RATE)
    )


def write_recording(path: Path, seconds: float) -> None:
    """A valid WAV of ``seconds`` of a quiet 440 Hz tone (8 kHz, 16-bit mono).

    The tone is computed once per process: computed per call it took tens of ms of
    CPU (and the GIL), which a burst of ending calls took from the event loop.
    """
    frames = int(RECORDING_RATE * seconds)
    second = _one_second_of_tone()
    samples = (second * (frames // RECORDING_RATE + 1))[: frames * 2]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RECORDING_RATE)
        out.writeframes(samples)


def record_to_temporary_file(call_id: str, seconds: float) -> Path:
    """:func:`write_recording` into a new temporary file (as a PBX leaves one); its path."""
    fd, name = tempfile.mkstemp(prefix=f"simulator-{call_id}-", suffix=".wav")
    os.close(fd)
    path = Path(name)
    write_recording(path, seconds)
    return path


@dataclasses.dataclass
class Phone:
    status: int = LegStatus.OK
    presses: str = ""
    hangs_up_after: float | None = None
    machine: bool = False


class SimulatedCall(CallControl):
    """One attempt against simulated phones; records what happened for tests and logs."""

    def __init__(self, backend: SimulatedTelephony, plan: AttemptPlan, progress: AttemptProgress) -> None:
        self.backend = backend
        self.plan = plan
        self.progress = progress
        self.phones: dict[str, Phone] = {}
        self.hangup_at: dict[str, float] = {}
        self.log: list[tuple[Any, ...]] = []
        #: the temporary file bridge() recorded into, handed to the storage after the attempt
        self.recording: Path | None = None

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def _wait(self, simulated_seconds: float, legs: tuple[str, ...] = ("operator", "client")) -> None:
        """Let simulated time pass; a leg whose person hangs up meanwhile raises LegHungUp."""
        end = self._now() + simulated_seconds / self.backend.speed
        first = min(((at, leg) for leg, at in self.hangup_at.items() if leg in legs), default=None)
        if first and first[0] <= end:
            await asyncio.sleep(max(0.0, first[0] - self._now()))
            self.log.append(("hung up", first[1]))
            raise LegHungUp(first[1])
        await asyncio.sleep(max(0.0, end - self._now()))

    async def dial(self, leg: str, number: str, *, caller_id: str, timeout: float) -> int:
        self.log.append(("dial", leg, number, caller_id))
        await self.progress.leg_dialled(leg)
        phone = self.backend.phone(leg, number)
        self.phones[leg] = phone
        await self._wait(min(self.backend.ring_seconds, timeout), legs=tuple(self.hangup_at))
        if phone.status == LegStatus.OK and phone.hangs_up_after is not None:
            self.hangup_at[leg] = self._now() + phone.hangs_up_after / self.backend.speed
        return phone.status

    async def dial_all(self, leg: str, numbers: list[str], *, caller_id: str, timeout: float) -> tuple[int, int | None]:
        """Ring-all: every phone rings the same time; the first in order that answers takes the
        call and the others are cancelled (logged ``("cancel", leg, number)``)."""
        for number in numbers:
            self.log.append(("dial", leg, number, caller_id))
        await self.progress.leg_dialled(leg)
        phones = [self.backend.phone(leg, number) for number in numbers]
        await self._wait(min(self.backend.ring_seconds, timeout), legs=tuple(self.hangup_at))
        answered = next((i for i, phone in enumerate(phones) if phone.status == LegStatus.OK), None)
        for i, number in enumerate(numbers):
            if i != answered and phones[i].status == LegStatus.OK:
                self.log.append(("cancel", leg, number))
        if answered is None:
            return phones[0].status, None
        phone = self.phones[leg] = phones[answered]
        if phone.hangs_up_after is not None:
            self.hangup_at[leg] = self._now() + phone.hangs_up_after / self.backend.speed
        await self.progress.operator_answered(numbers[answered])
        return LegStatus.OK, answered

    async def send_dtmf(self, leg: str, digits: str) -> None:
        self.log.append(("dtmf", leg, digits))

    async def say(self, leg: str, text: str, *, voice: str) -> None:
        self.log.append(("say", leg, text, voice))
        await self._wait(len(text) / SPEECH_RATE)

    async def start_hold_music(self, leg: str, music_class: str) -> None:
        self.log.append(("hold music on", leg, music_class))

    async def stop_hold_music(self, leg: str) -> None:
        self.log.append(("hold music off", leg))

    async def wait_key(self, leg: str, keys: set[str], timeout: float) -> str | None:
        phone = self.phones[leg]
        if phone.presses:
            key, phone.presses = phone.presses[0], phone.presses[1:]
            if key in keys and timeout >= KEY_DELAY:
                await self._wait(KEY_DELAY)
                self.log.append(("key", leg, key))
                return key
        await self._wait(timeout)
        return None

    async def answered_by_machine(self, leg: str) -> bool:
        return self.phones[leg].machine

    async def pause(self, seconds: float) -> None:
        await self._wait(seconds)

    async def bridge(self, *, record: bool) -> int:
        start = self._now()
        talk = self.backend.talk_seconds
        try:
            await self._wait(talk)
        except LegHungUp:  # someone ended the conversation early: that is its length
            talk = min(talk, round((self._now() - start) * self.backend.speed))
        self.log.append(("bridge", talk, record))
        if record and self.backend.data_dir is not None:
            seconds = max(RECORDING_MIN_SECONDS, min(float(talk), RECORDING_MAX_SECONDS))
            # one trip to a thread, file made and written there: when many calls end at once, each
            # step left on the event loop stands in front of the dials of this process
            self.recording = await asyncio.to_thread(record_to_temporary_file, self.plan.call_id, seconds)
        return talk


class SimulatedTelephony(TelephonyBackend):
    key = "simulator"
    title = "Simulator (no real calls)"
    rings_all = True

    def __init__(self, settings: dict[str, Any], core_settings: Any = None) -> None:
        #: where the platform keeps recordings; without it (a bare backend in a test) nothing is recorded
        self.data_dir: Path | None = Path(core_settings.data_dir) if core_settings is not None else None
        self.ring_seconds = settings["ring_seconds"]
        self.talk_seconds = settings["talk_seconds"]
        self.speed = settings["speed"]
        self.operator_presses = settings["operator_presses"]
        # longest suffix first, so "0486" beats "6"
        self.rules = sorted(settings["rules"], key=lambda r: len(r["suffix"]), reverse=True)
        self.attempts_placed = 0
        #: the last few attempts' logs, newest last (tests and the demo read them)
        self.recent: list[list[tuple]] = []

    def phone(self, leg: str, number: str) -> Phone:
        for rule in self.rules:
            if rule["leg"] == leg and number.endswith(rule["suffix"]):
                presses = (
                    rule["presses"]
                    if rule["presses"] is not None
                    else (self.operator_presses if leg == "operator" else "")
                )
                return Phone(rule["status"], presses, rule["hangs_up_after"], rule["machine"])
        return Phone(presses=self.operator_presses if leg == "operator" else "")

    async def place_attempt(self, plan: AttemptPlan, progress: AttemptProgress) -> AttemptOutcome:
        self.attempts_placed += 1
        call = SimulatedCall(self, plan, progress)
        try:
            outcome = await run_scenario(plan, call)
        except BaseException:
            if call.recording is not None:
                call.recording.unlink(missing_ok=True)
            raise
        finally:
            self.recent = (self.recent + [call.log])[-50:]
        if call.recording is not None and self.data_dir is not None:
            outcome.recording = await keep_recording(call.recording, self.data_dir, plan.call_id, plan.attempt_number)
        return outcome
