"""A simulated PBX for demos and tests -- it dials nobody.

It plays the core's scenario (:func:`perezvon.api.run_scenario`) against simulated phones.
Each leg "rings" and then answers, unless a rule in plugins.toml says the
phone at that number (matched by its ending) gives another status -- busy
486, no answer 480, declined 603 ... -- presses other keys, hangs up after a
while, or is an answering machine. Operators press ``operator_presses`` when
asked. Time runs ``speed`` times faster than a real call, so a demo call ends
in seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from perezvon.api import (
    AttemptOutcome,
    AttemptPlan,
    AttemptProgress,
    CallControl,
    LegHungUp,
    LegStatus,
    TelephonyBackend,
    run_scenario,
)

#: simulated seconds a person takes to press a key once asked
KEY_DELAY = 1.0
#: simulated speaking rate of the announcement voice, characters per second
SPEECH_RATE = 15.0


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

    async def send_dtmf(self, leg: str, digits: str) -> None:
        self.log.append(("dtmf", leg, digits))

    async def say(self, leg: str, text: str, *, voice: str) -> None:
        self.log.append(("say", leg, text, voice))
        await self._wait(len(text) / SPEECH_RATE)

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
        return talk


class SimulatedTelephony(TelephonyBackend):
    key = "simulator"
    title = "Simulator (no real calls)"

    def __init__(self, settings: dict[str, Any]) -> None:
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
            return await run_scenario(plan, call)
        finally:
            self.recent = (self.recent + [call.log])[-50:]
