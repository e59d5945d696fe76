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

Leg statuses are SIP final codes (200 answered, 486 busy, 480 no answer ...)
or the internal codes 201-204; ``None`` is a leg never dialled.
"""

from __future__ import annotations

import asyncio
from typing import Any

from perezvon.core.registry import AttemptOutcome, AttemptPlan, Direction, LegStatus

OPERATOR = "operator"
CLIENT = "client"


class LegHungUp(Exception):
    """A leg hung up while the scenario was waiting on it."""

    def __init__(self, leg: str) -> None:
        super().__init__(f"the {leg} hung up")
        self.leg = leg


class CallControl:
    """What a backend does for one attempt. Every method may raise :class:`LegHungUp`."""

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

    async def bridge(self, *, record: bool) -> int:
        """Join the two answered legs until one hangs up; return the talk time in seconds."""
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
            return await _client_first(plan, control)
        return await _operator_first(plan, control)
    finally:
        await control.hang_up()


async def _operator_briefing(plan: AttemptPlan, control: CallControl, command: str) -> int | None:
    """Extension, details, and the operator's key. Returns a final operator status, or None to go on."""
    s = plan.telephony
    if plan.operator_extension:
        await control.pause(s["extension_delay_seconds"])
        await control.send_dtmf(OPERATOR, plan.operator_extension)
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
    operator = await control.dial(
        OPERATOR, plan.operator_number, caller_id=plan.caller_id_to_operator, timeout=s["ring_timeout_seconds"]
    )
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
    except LegHungUp as gone:  # someone left before the two were joined
        left = LegStatus.PARTY_LEFT
        return AttemptOutcome(left, LegStatus.OK) if gone.leg == OPERATOR else AttemptOutcome(LegStatus.OK, left)
    talk = await control.bridge(record=s["record"])
    return AttemptOutcome(LegStatus.OK, LegStatus.OK, conversation_seconds=talk)


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
    except LegHungUp:  # the client left before the operator was dialled
        return AttemptOutcome(None, LegStatus.PARTY_LEFT)
    try:
        operator = await control.dial(
            OPERATOR, plan.operator_number, caller_id=plan.caller_id_to_operator, timeout=s["ring_timeout_seconds"]
        )
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
