"""A simulated PBX for demos and tests -- it dials nobody.

Each leg "rings" and then answers, unless a rule in plugins.toml says the
number (matched by its ending) gives another status: busy 486, no answer
480, declined 603, or one of the internal codes 201-204. Time runs
``speed`` times faster than a real call so a demo call ends in seconds.
"""
from __future__ import annotations

import asyncio
from typing import Any

from core.registry import (AttemptOutcome, AttemptPlan, AttemptProgress, Direction, LegStatus,
                           TelephonyBackend)


class SimulatedTelephony(TelephonyBackend):
    key = "simulator"
    title = "Simulator (no real calls)"

    def __init__(self, settings: dict[str, Any]) -> None:
        self.ring_seconds = settings["ring_seconds"]
        self.talk_seconds = settings["talk_seconds"]
        self.speed = settings["speed"]
        # longest suffix first, so "0486" beats "6"
        self.rules = sorted(settings["rules"], key=lambda r: len(r["suffix"]), reverse=True)
        self.attempts_placed = 0

    def _status(self, leg: str, number: str) -> int:
        for rule in self.rules:
            if rule["leg"] == leg and number.endswith(rule["suffix"]):
                return rule["status"]
        return LegStatus.OK

    async def _ring(self, leg: str, number: str, progress: AttemptProgress) -> int:
        await progress.leg_dialled(leg)
        await asyncio.sleep(self.ring_seconds / self.speed)
        return self._status(leg, number)

    async def place_attempt(self, plan: AttemptPlan, progress: AttemptProgress) -> AttemptOutcome:
        self.attempts_placed += 1
        if plan.direction == Direction.CLIENT_FIRST:
            first, second = ("client", plan.client_number), ("operator", plan.operator_number)
        else:
            first, second = ("operator", plan.operator_number), ("client", plan.client_number)
        statuses: dict[str, int | None] = {"operator": None, "client": None}
        statuses[first[0]] = await self._ring(first[0], first[1], progress)
        if statuses[first[0]] == LegStatus.OK:
            statuses[second[0]] = await self._ring(second[0], second[1], progress)
        talk = 0
        if statuses["operator"] == LegStatus.OK and statuses["client"] == LegStatus.OK:
            talk = self.talk_seconds
            await asyncio.sleep(talk / self.speed)
        return AttemptOutcome(statuses["operator"], statuses["client"], conversation_seconds=talk)
