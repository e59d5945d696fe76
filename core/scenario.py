"""The callback scenario (docs/calls.md#the-callback-scenario), the same whatever the PBX.

A backend gives the scenario a :class:`CallControl` for one attempt: dial a
leg, send DTMF, say a text, wait for a key, ask whether a machine answered,
bridge the legs. The scenario decides everything else -- order, delays, the
DTMF commands, the speak time, caller ids -- and returns the status pair:

* operator-first: dial the operator -> after the extension delay send the
  extension -> after the operator IVR delay say the lead's details -> wait up
  to the speak time for *call client* (*repeat info* says them again,
  *cancel client* ends with 201; no key in time: 202 when *interrupt* is on,
  else go on) -> dial the client (the operator hanging up meanwhile: 204) ->
  voicemail detection (203) -> bridge and record until hang-up.
* client-first: dial the client -> after the client IVR delay ask them to stay
  on the line (*cancel operator* from the client ends with 201) -> dial the
  operator (the client hanging up meanwhile: 204) -> say the details to the
  operator and wait for *connect* as above -> bridge.

Operator-first also says the "to the client" announcement to the client once
they answered, before the bridge; both orders send the call-tracking DTMF tag
(``AttemptPlan.operator_dtmf_tag``) on the operator leg after its extension.

Announcements and waiting (docs/calls.md#announcements-and-waiting): in
client-first, with *hold music* on, the client hears the PBX's music on hold
from the moment the operator is dialled until just before the bridge; in both
orders, ``AttemptPlan.recorded_notice`` ("the conversation is recorded") is said
to the legs the *recorded call notice* setting names, right before the bridge.

Leg statuses are SIP final codes (200 answered, 486 busy, 480 no answer ...)
or the internal codes 201-204; ``None`` is a leg never dialled.
"""

from __future__ import annotations

import asyncio
from typing import Any

from perezvon.core.registry import AttemptOutcome, AttemptPlan, Direction, LegStatus, RecordedNotice

OPERATOR = "operator"
CLIENT = "client"


class LegHungUp(Exception):
    """A leg hung up while the scenario was waiting on it."""

    def __init__(self, leg: str) -> None:
        super().__init__(f"the {leg} hung up")
        self.leg = leg


class CallControl:
    """What a backend does for one attempt. Every method may raise :class:`LegHungUp`."""

    #: ring-all: the ``(phone, extension)`` of the operator line that answered, set by the scenario
    operator_line: tuple[str, str] | None = None

    async def dial_all(self, leg: str, numbers: list[str], *, caller_id: str, timeout: float) -> tuple[int, int | None]:
        """Ring every number at once; the first to answer wins and the others are cancelled.

        Returns ``(200, index of the number that answered)``, or when none did, ``(the status of
        the first number, None)``. Only backends with ``TelephonyBackend.rings_all`` implement it."""
        raise NotImplementedError

    async def dial(self, leg: str, number: str, *, caller_id: str, timeout: float) -> int:
        """Ring ``number``; return 200 when answered, else the leg's final SIP status."""
        raise NotImplementedError

    async def send_dtmf(self, leg: str, digits: str) -> None:
        raise NotImplementedError

    async def say(self, leg: str, text: str, *, voice: str) -> None:
        """Speak ``text`` on the leg and return when it has been said."""
        raise NotImplementedError

    async def wait_key(self, leg: str, keys: set[str], timeout: float) -> str | None:
        """The first of ``keys`` pressed on the leg within ``timeout`` s, or None."""
        raise NotImplementedError

    async def answered_by_machine(self, leg: str) -> bool:
        """Voicemail/answering-machine detection on an answered leg."""
        return False

    async def pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def start_hold_music(self, leg: str, music_class: str) -> None:
        """Play the PBX's music on hold of ``music_class`` on the leg until :meth:`stop_hold_music`.

        Returns at once; the music goes on while the scenario does other things. A backend
        without music leaves the leg silent (the default)."""

    async def stop_hold_music(self, leg: str) -> None:
        """End the music :meth:`start_hold_music` started (nothing when none plays)."""

    async def bridge(self, *, record: bool) -> int:
        """Join the two answered legs until one hangs up; return the talk time in seconds.

        A leg that hangs up before they are joined (while the recording starts, say) raises
        :class:`LegHungUp`: nobody talked, and the scenario says who left."""
        raise NotImplementedError

    async def hang_up(self) -> None:
        """End whatever is still up (always called when the scenario ends)."""


def choose_caller_ids(
    settings: dict[str, Any], *, client: str, operator: str, displayed_on_site: str
) -> tuple[str, str]:
    """``(shown to the operator, shown to the client)``; "" means the platform's own number.

    Towards the client each switch acts on its own (docs/calls.md#the-callback-scenario):
    the custom operator number goes with *show operator number to client* (the seed: it
    needs that switch), the tracking number the site displayed with *show tracking number
    to client* alone, and the operator number dialled with *show operator number*.
    """
    to_operator = (
        client if settings["show_client_number_to_operator"] and not settings["never_substitute_to_operator"] else ""
    )
    show_operator = settings["show_operator_number_to_client"]
    if show_operator and settings["custom_operator_number"]:
        to_client = settings["custom_operator_number"]
    elif settings["show_tracking_number_to_client"] and displayed_on_site:
        to_client = displayed_on_site
    elif show_operator:
        to_client = operator
    else:
        to_client = ""
    return to_operator, to_client


async def run(plan: AttemptPlan, control: CallControl) -> AttemptOutcome:
    """Play one attempt through ``control``; always leaves no leg up."""
    try:
        if plan.direction == Direction.CLIENT_FIRST:
            outcome = await _client_first(plan, control)
        else:
            outcome = await _operator_first(plan, control)
        if control.operator_line is not None:  # ring-all: the line that answered makes the pair
            outcome.operator_number = control.operator_line[0]
        return outcome
    finally:
        await control.hang_up()


async def _dial_operator(plan: AttemptPlan, control: CallControl) -> int:
    """Ring the operator: one number, or with ring-all every line of the plan at once."""
    timeout = plan.telephony["ring_timeout_seconds"]
    if len(plan.ring_all) < 2:
        return await control.dial(OPERATOR, plan.operator_number, caller_id=plan.caller_id_to_operator, timeout=timeout)
    status, index = await control.dial_all(
        OPERATOR, [phone for phone, _ in plan.ring_all], caller_id=plan.caller_id_to_operator, timeout=timeout
    )
    if index is not None:
        control.operator_line = plan.ring_all[index]
    return status


async def _operator_briefing(plan: AttemptPlan, control: CallControl, command: str) -> int | None:
    """Extension, details, and the operator's key. Returns a final operator status, or None to go on."""
    s = plan.telephony
    extension = control.operator_line[1] if control.operator_line else plan.operator_extension
    if extension:
        await control.pause(s["extension_delay_seconds"])
        await control.send_dtmf(OPERATOR, extension)
    if plan.operator_dtmf_tag:  # the call-tracking tag, once the call reached the operator's line
        await control.send_dtmf(OPERATOR, plan.operator_dtmf_tag)
    await control.pause(s["operator_ivr_delay_seconds"])
    await control.say(OPERATOR, plan.operator_text, voice=s["voice"])
    go = s[command]
    if not go["on"]:
        return None
    keys = {go["key"]}
    if s["cancel_client"]["on"]:
        keys.add(s["cancel_client"]["key"])
    if s["repeat_info"]["on"]:
        keys.add(s["repeat_info"]["key"])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + s["operator_speak_seconds"]
    while (left := deadline - loop.time()) > 0:
        key = await control.wait_key(OPERATOR, keys, left)
        if key is None:
            break
        if key == go["key"]:
            return None
        if s["cancel_client"]["on"] and key == s["cancel_client"]["key"]:
            return LegStatus.CANCELLED_BY_DTMF
        await control.say(OPERATOR, plan.operator_text, voice=s["voice"])  # repeat info
    return LegStatus.OPERATOR_NO_KEY if s["interrupt_operator_call"] else None


async def _operator_first(plan: AttemptPlan, control: CallControl) -> AttemptOutcome:
    s = plan.telephony
    operator = await _dial_operator(plan, control)
    if operator != LegStatus.OK:
        return AttemptOutcome(operator, None)
    try:
        stop = await _operator_briefing(plan, control, "call_client")
    except LegHungUp:  # the operator left before the client was even dialled
        return AttemptOutcome(LegStatus.PARTY_LEFT, None)
    if stop is not None:
        return AttemptOutcome(stop, None)
    try:
        client = await control.dial(
            CLIENT, plan.client_number, caller_id=plan.caller_id_to_client, timeout=s["ring_timeout_seconds"]
        )
    except LegHungUp:  # the operator did not wait for the client to answer
        return AttemptOutcome(LegStatus.PARTY_LEFT, LegStatus.TERMINATED)
    if client != LegStatus.OK:
        return AttemptOutcome(LegStatus.OK, client)
    return await _join(plan, control)


async def _join(plan: AttemptPlan, control: CallControl) -> AttemptOutcome:
    """Both legs answered: check for a machine on the client leg, then bridge."""
    s = plan.telephony
    try:
        if (
            s["detect_voicemail"]
            and plan.direction == Direction.OPERATOR_FIRST
            and await control.answered_by_machine(CLIENT)
        ):
            return AttemptOutcome(LegStatus.OK, LegStatus.VOICEMAIL)
        if plan.direction == Direction.OPERATOR_FIRST and plan.client_text:
            # the "to the client" parts: client-first says them before dialling the operator
            await control.say(CLIENT, plan.client_text, voice=s["voice"])
        await _before_bridge(plan, control)
        talk = await control.bridge(record=s["record"])
    except LegHungUp as gone:  # someone left before the two were joined
        left = LegStatus.PARTY_LEFT
        return AttemptOutcome(left, LegStatus.OK) if gone.leg == OPERATOR else AttemptOutcome(LegStatus.OK, left)
    return AttemptOutcome(LegStatus.OK, LegStatus.OK, conversation_seconds=talk)


def notice_legs(plan: AttemptPlan) -> tuple[str, ...]:
    """The legs that hear the recorded-call notice: none when the plan has no notice text
    (nobody chosen, or the call is not recorded -- build_plan leaves it out then)."""
    if not plan.recorded_notice:
        return ()
    who = plan.telephony.get("recorded_notice", RecordedNotice.NOBODY)
    chosen = {
        RecordedNotice.OPERATOR: (OPERATOR,),
        RecordedNotice.CLIENT: (CLIENT,),
        RecordedNotice.BOTH: (OPERATOR, CLIENT),
    }
    return chosen.get(who, ())


async def _together(*steps: Any) -> None:
    """Run the steps at once (one per leg); the first LegHungUp ends them all."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # so no task's error goes unread


async def _before_bridge(plan: AttemptPlan, control: CallControl) -> None:
    """The recorded-call notice to whom it is for, and the end of the client's hold music.

    Each leg hears its notice at the same time as the other (neither waits for the other's);
    the client's music plays on while only the operator hears the notice, so the client is
    never left in silence."""
    s = plan.telephony
    holding = plan.direction == Direction.CLIENT_FIRST and s.get("hold_music", False)
    legs = notice_legs(plan)

    async def to_operator() -> None:
        await control.say(OPERATOR, plan.recorded_notice, voice=s["voice"])

    async def to_client() -> None:
        if holding:
            await control.stop_hold_music(CLIENT)
        await control.say(CLIENT, plan.recorded_notice, voice=s["voice"])

    steps = ([to_operator()] if OPERATOR in legs else []) + ([to_client()] if CLIENT in legs else [])
    if steps:
        await _together(*steps)
    if holding and CLIENT not in legs:
        await control.stop_hold_music(CLIENT)


async def _client_first(plan: AttemptPlan, control: CallControl) -> AttemptOutcome:
    s = plan.telephony
    client = await control.dial(
        CLIENT, plan.client_number, caller_id=plan.caller_id_to_client, timeout=s["ring_timeout_seconds"]
    )
    if client != LegStatus.OK:
        return AttemptOutcome(None, client)
    try:
        if s["detect_voicemail"] and await control.answered_by_machine(CLIENT):
            return AttemptOutcome(None, LegStatus.VOICEMAIL)
        await control.pause(s["client_ivr_delay_seconds"])
        await control.say(CLIENT, plan.client_text, voice=s["voice"])
        if s["cancel_operator"]["on"]:
            key = await control.wait_key(CLIENT, {s["cancel_operator"]["key"]}, s["dtmf_wait_seconds"])
            if key is not None:
                return AttemptOutcome(None, LegStatus.CANCELLED_BY_DTMF)
        if s.get("hold_music", False):  # music, not silence, while the operator is rung and briefed
            await control.start_hold_music(CLIENT, s["hold_music_class"])
    except LegHungUp:  # the client left before the operator was dialled
        return AttemptOutcome(None, LegStatus.PARTY_LEFT)
    try:
        operator = await _dial_operator(plan, control)
    except LegHungUp:  # the client did not wait for the operator to answer
        return AttemptOutcome(LegStatus.TERMINATED, LegStatus.PARTY_LEFT)
    if operator != LegStatus.OK:
        return AttemptOutcome(operator, LegStatus.OK)
    try:
        stop = await _operator_briefing(plan, control, "connect")
    except LegHungUp as gone:
        if gone.leg == OPERATOR:
            return AttemptOutcome(LegStatus.PARTY_LEFT, LegStatus.OK)
        return AttemptOutcome(LegStatus.OK, LegStatus.PARTY_LEFT)
    if stop is not None:
        return AttemptOutcome(stop, LegStatus.OK)
    return await _join(plan, control)
