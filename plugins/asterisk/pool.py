"""A pool of PBXs: several Asterisk servers behind one backend (docs/asterisk.md#a-pool-of-pbxs).

Each :class:`Pbx` is one server with its own AMI link, credentials, dial string and
capacity (the most calls it carries at once). :class:`PbxPool` picks the PBX for each
attempt:

* only PBXs whose link is **up** are in rotation. A PBX that cannot be reached, refuses
  the login or goes silent (an unanswered Ping, ``link.py``) is out until it logs in
  again; its attempts in flight end at once as interrupted (status 500, the telephony
  error) and the core's redial matrix places the next attempt -- on a PBX still in
  rotation;
* an attempt shown under a caller ID that a PBX's trunk owns (``caller_ids``) goes out
  only through the PBX(s) owning it: a provider rejects, or worse rewrites, a number
  its trunk was not given;
* among the rest, the PBX with the most free capacity; a PBX without a limit counts as
  always free, and ties go to the one carrying fewer calls.

Both legs of an attempt go through the same PBX: ``Bridge`` joins two channels of one
Asterisk. The single-server settings of old are a pool of one, unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable
from typing import Any

from perezvon.api import AttemptPlan
from perezvon.plugins.asterisk.link import ActionRefused, AmiLink, LinkDown

log = logging.getLogger("perezvon.asterisk")


class PoolFull(LinkDown):
    """Every PBX the attempt may use is up but at its capacity."""


class Pbx:
    """One Asterisk server of the pool: its AMI link and what is known of it."""

    def __init__(self, name: str, settings: dict[str, Any], *, context: str, solo: bool) -> None:
        self.name = name
        #: the single-server settings: reasons read as they always did, without a PBX name
        self.solo = solo
        self.context = context
        self.capacity: int = settings["capacity"]
        self.caller_ids = frozenset(settings.get("caller_ids") or ())
        self._dial: str = settings["dial_string"]
        self._format: str = settings["number_format"]
        self.link = AmiLink(
            host=settings["host"],
            port=settings["port"],
            username=settings["username"],
            secret=settings["secret"],
            ping_interval=settings["ping_interval_seconds"],
            ping_timeout=settings["ping_timeout_seconds"],
            reconnect_min=settings["reconnect_min_seconds"],
            reconnect_max=settings["reconnect_max_seconds"],
        )
        self.link.on_up(self._hang_up_orphans)
        self.link.on_up(self._check_dialplan)
        self.link.on_down(self._link_lost)
        #: the attempts in flight here (AsteriskCall): told at once when the link goes
        self.calls: set[Any] = set()
        #: attempts given this PBX and not yet ended (counted from the choice, before their first Originate)
        self.in_use = 0
        #: what is wrong with this Asterisk's dialplan, found at login ("" = the context is installed)
        self.dialplan_problem = ""
        #: channels of attempts that ended while the link was down: hung up at the next login
        self.orphans: set[str] = set()
        self._orphan_sweep: asyncio.Future[None] | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.link.host}:{self.link.port})"

    @property
    def free(self) -> float:
        return math.inf if not self.capacity else self.capacity - self.in_use

    def dial_string(self, number: str) -> str:
        digits = number.lstrip("+")
        if self._format == "e164_plus":
            formatted = number
        elif self._format == "national_8" and digits.startswith("7") and len(digits) == 11:
            formatted = "8" + digits[1:]
        else:
            formatted = digits
        return self._dial.replace("{number}", formatted)

    def state(self) -> dict[str, Any]:
        """For /healthz: ``ok`` or why this PBX is out of rotation."""
        up = self.link.up.is_set()
        return {
            "name": self.name,
            "host": f"{self.link.host}:{self.link.port}",
            "state": "ok" if up and not self.dialplan_problem else "down" if not up else "dialplan",
            "reason": self.link.error if not up else self.dialplan_problem,
            "calls": self.in_use,
            "capacity": self.capacity or None,
        }

    # -------------------------------------------------------------- link events
    def _link_lost(self, why: str) -> None:
        if not self.solo and self.calls:
            log.warning("PBX %s taken out of rotation: %s; %d attempt(s) interrupted", self.name, why, len(self.calls))
            why = f"attempt interrupted, PBX {self.name} taken out of rotation: {why}"
        for call in list(self.calls):
            call.lose_link(why)

    def orphan(self, channel_id: str) -> None:
        """A leg left behind while the link is down: hang it up as soon as the link is back.

        The login hangs up the orphans it finds (``_hang_up_orphans`` runs before the
        link counts as up); a leg orphaned while that login is still in progress is
        hung up by this sweep, once the link is up, rather than at the next login.
        """
        self.orphans.add(channel_id)
        if self._orphan_sweep is None or self._orphan_sweep.done():
            self._orphan_sweep = asyncio.ensure_future(self._sweep_orphans_when_up())

    async def _sweep_orphans_when_up(self) -> None:
        await self.link.up.wait()
        await self._hang_up_orphans()

    async def _hang_up_orphans(self) -> None:
        for channel_id in list(self.orphans):
            try:
                await self.link.send_during_login({"Action": "Hangup", "Channel": channel_id, "Cause": "16"})
                log.info("AMI: hung up %s, left over from a call that ended while the link was down", channel_id)
            except ActionRefused:  # already gone
                pass
            except LinkDown:
                return  # try again at the next login
            self.orphans.discard(channel_id)

    async def _check_dialplan(self) -> None:
        """At each login: is the shipped context there, and does it hand legs to Async AGI?"""
        try:
            steps = await self.link.list_during_login(
                {"Action": "ShowDialPlan", "Context": self.context}, "ShowDialPlanComplete"
            )
        except ActionRefused as refused:
            self.dialplan_problem = (
                f"{refused.message}: install the dialplan from plugins/asterisk/conf (docs/asterisk.md)"
            )
        except LinkDown as down:  # not fatal: calls will tell
            self.dialplan_problem = f"could not check the {self.context} dialplan: {down}"
        else:
            runs_agi = any(
                step.get("Application", "").lower() == "agi" and "agi:async" in step.get("AppData", "")
                for step in steps
                if step.get("Extension") == "s"
            )
            self.dialplan_problem = (
                ""
                if runs_agi
                else (
                    f"the {self.context} context does not run AGI(agi:async) for extension s: "
                    f"install the dialplan from plugins/asterisk/conf (docs/asterisk.md)"
                )
            )
        if self.dialplan_problem:
            log.error("AMI%s: %s", "" if self.solo else f" {self.name}", self.dialplan_problem)

    async def end_interrupted(self, own_legs: re.Pattern[str]) -> int:
        """Hang up the channels whose ids match ``own_legs`` (see AsteriskTelephony.end_interrupted)."""
        try:
            channels = await self.link.list({"Action": "CoreShowChannels"}, "CoreShowChannelsComplete")
        except (LinkDown, ActionRefused) as exc:
            log.warning("AMI %s: could not look for channels left by a stopped worker: %s", self.name, exc)
            return 0
        ended = 0
        for channel in channels:
            if not own_legs.fullmatch(channel.get("Uniqueid", "")):
                continue
            try:
                await self.link.send({"Action": "Hangup", "Channel": channel.get("Channel"), "Cause": "16"})
                log.info("AMI: hung up %s on %s, left by a worker that stopped", channel.get("Channel"), self.name)
            except ActionRefused:  # it ended meanwhile (hanging up one joined leg ends the other)
                pass
            except LinkDown:
                break
            ended += 1
        return ended

    async def stop(self) -> None:
        if self._orphan_sweep is not None:
            self._orphan_sweep.cancel()
        await self.link.stop()


def pbx_settings(settings: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(name, settings)`` of each PBX: the ``servers`` list over ``[plugins.asterisk]``'s own values,
    or that section alone as a pool of one named ``asterisk``."""
    if not settings.get("servers"):
        return [("asterisk", settings)]
    merged = []
    for server in settings["servers"]:
        values = {**settings, **{k: v for k, v in server.items() if v is not None}}
        merged.append((server["name"], values))
    return merged


class PbxPool:
    """The PBXs of one backend and the choice of one for each attempt."""

    def __init__(self, settings: dict[str, Any]) -> None:
        configured = pbx_settings(settings)
        solo = not settings.get("servers")
        self.pbxs = [Pbx(name, values, context=settings["context"], solo=solo) for name, values in configured]
        self._wake: asyncio.Future[None] | None = None

    def _notify(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
        self._wake = None

    def eligible(self, plan: AttemptPlan) -> list[Pbx]:
        """The PBXs this attempt may use: the owners of its caller ID when a trunk owns it, else all."""
        for shown in (plan.caller_id_to_client, plan.caller_id_to_operator):
            if not shown:
                continue
            number = "+" + shown.lstrip("+")
            owners = [pbx for pbx in self.pbxs if number in pbx.caller_ids]
            if owners:
                return owners
        return self.pbxs

    def _pick(self, candidates: list[Pbx]) -> Pbx | None:
        up = [pbx for pbx in candidates if pbx.link.up.is_set() and pbx.free > 0]
        # a PBX whose dialplan is broken is used only when nothing else is up (its calls then say why)
        healthy = [pbx for pbx in up if not pbx.dialplan_problem] or up
        if not healthy:
            return None
        return max(healthy, key=lambda pbx: (pbx.free, -pbx.in_use))

    async def acquire(self, plan: AttemptPlan, wait: float) -> Pbx:
        """A PBX for the attempt, counted as in use until :meth:`release`; waits up to ``wait``
        seconds for one to come up or free a line, else raises :class:`LinkDown` with the reason."""
        candidates = self.eligible(plan)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            pbx = self._pick(candidates)
            if pbx is not None:
                pbx.in_use += 1
                return pbx
            left = deadline - loop.time()
            if left <= 0:
                why = self._why_none(candidates)
                raise (PoolFull if any(p.link.up.is_set() for p in candidates) else LinkDown)(why)
            if self._wake is None:
                self._wake = loop.create_future()
            # woken by a line freed (release) or a PBX coming up, whichever comes first
            waits: list[asyncio.Future[Any]] = [asyncio.shield(self._wake)]
            waits += [asyncio.ensure_future(p.link.up.wait()) for p in candidates if not p.link.up.is_set()]
            try:
                await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()

    def release(self, pbx: Pbx) -> None:
        pbx.in_use -= 1
        self._notify()

    def _why_none(self, candidates: list[Pbx]) -> str:
        down = [pbx for pbx in candidates if not pbx.link.up.is_set()]
        if len(self.pbxs) == 1 and down:
            return self.pbxs[0].link.error or "the AMI link is down"
        if len(down) == len(candidates):
            return "no PBX in rotation: " + "; ".join(f"{p.name}: {p.link.error or 'down'}" for p in down)
        if len(self.pbxs) == 1:
            return f"Asterisk is at its capacity: {self.pbxs[0].in_use}/{self.pbxs[0].capacity} calls"
        return "every PBX in rotation is at its capacity: " + ", ".join(
            f"{p.name} {p.in_use}/{p.capacity}" for p in candidates if p not in down
        )

    def health(self) -> str | None:
        """``None`` while a PBX is in rotation (calls can be placed); else why none is."""
        if len(self.pbxs) == 1:
            pbx = self.pbxs[0]
            if not pbx.link.up.is_set():
                return pbx.link.error
            return pbx.dialplan_problem or None
        if any(pbx.link.up.is_set() and not pbx.dialplan_problem for pbx in self.pbxs):
            return None
        return "no PBX in rotation: " + "; ".join(
            f"{pbx.name}: {pbx.link.error if not pbx.link.up.is_set() else pbx.dialplan_problem}" for pbx in self.pbxs
        )

    def states(self) -> list[dict[str, Any]]:
        return [pbx.state() for pbx in self.pbxs]

    def on_each_manager(self, attach: Callable[[Pbx], None]) -> None:
        for pbx in self.pbxs:
            attach(pbx)
