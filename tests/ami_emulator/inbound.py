"""Inbound calls on the emulated Asterisk: a client calling a DID (docs/ami-emulator.md, "Inbound calls").

What a real Asterisk with the Perezvon inbound hook (plugins/asterisk/conf/extensions_perezvon_inbound.conf)
emits for one inbound call, in order:

* ``Newchannel`` -- the trunk's channel (``PJSIP/trunk-0000000a``), state 4 ``Ring``, in the trunk
  endpoint's context with the DID as ``Exten`` and the caller's number as ``CallerIDNum``
  (``<unknown>`` for a withheld one: ``ast_manager_build_channel_state_string_prefix()``);
* ``Newstate`` to 6 ``Up`` when the dialplan answered it (a ``Dial()`` that was answered);
* ``HangupRequest`` (with ``Cause``) when the caller hung up -- after talking, while it rang
  (``CANCEL``), or before any ``Dial()``; not when ``Dial()`` returned and the dialplan ended the call;
* at the hang-up the hangup handler the dialplan pushed runs *before* the channel is destroyed
  (``ast_pbx_hangup_handler_run()``), in its own context: a ``UserEvent`` (class ``user``) whose
  channel snapshot shows ``Context: perezvon-inbound``, ``Exten: s``, then ``UserEvent: PerezvonInbound``
  and the body ``Caller``, ``Dialled``, ``DialStatus``, ``Answered`` as ``UserEvent()`` writes each
  ``key: value`` argument on a line of its own (``apps/app_userevent.c``);
* ``Hangup`` with the cause (16 for a normal clearing, 19 no answer ...).

Each goes only to the sessions whose read permission and event mask cover its class, as every event
of the emulator: an AMI user without ``read = user`` never sees the hook's ``UserEvent``.
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING

from . import facts as F
from .scenarios import Behaviour
from .server import Channel

if TYPE_CHECKING:
    from .server import AmiEmulator

#: DIALSTATUS values Dial() sets (apps/app_dial.c)
DIAL_STATUSES = ("ANSWER", "BUSY", "NOANSWER", "CANCEL", "CONGESTION", "CHANUNAVAIL", "DONTCALL", "TORTURE", "")
#: how the call ends with each: the caller hangs up (after talking, while it rang, in an IVR or queue);
#: after the others Dial() returns and the dialplan's end hangs the channel up itself (no HangupRequest)
_CALLER_LEFT = ("ANSWER", "CANCEL", "")
#: the hangup cause of the caller's channel after each DIALSTATUS (the caller hung up: normal clearing)
_CAUSE = {"NOANSWER": 16, "BUSY": 16, "CANCEL": 16, "CHANUNAVAIL": 16, "CONGESTION": 16}


def inbound_call(
    emu: AmiEmulator,
    caller: str,
    dialled: str,
    *,
    dial_status: str = "ANSWER",
    answered_var: str = "",
    context: str = "from-trunk",
    hook: bool = True,
    endpoint: str = "trunk",
) -> Channel:
    """One whole inbound call, its events emitted at once (the hook reports only its end).

    ``caller`` is what the provider sent as the caller id number ("" for a withheld number);
    ``dial_status`` what ``${DIALSTATUS}`` holds when the caller's channel hangs up ("" when no
    ``Dial()`` ran: the caller hung up in an IVR or a queue); ``answered_var`` the value of
    ``${PEREZVON_ANSWERED}`` (a queue member's answer gosub sets it ``yes``); ``hook=False``: a
    dialplan without the Perezvon hangup handler.
    """
    if dial_status not in DIAL_STATUSES:
        raise ValueError(f"Dial() never sets DIALSTATUS={dial_status!r}")
    counters = emu._chan_idx.setdefault("pjsip", itertools.count(0))
    uniqueid = f"{int(time.time())}.{next(emu._uniqueint)}"
    chan = Channel(
        name=f"PJSIP/{endpoint}-{next(counters):08x}",
        uniqueid=uniqueid,
        tech="PJSIP",
        data=endpoint,
        number=caller,
        behaviour=Behaviour.no_answer(),
        context=context,
        exten=dialled,
        caller_num=caller,
        application="",
        app_data="",
    )
    chan.linkedid = uniqueid
    chan.state = F.STATE_RING
    emu.add_channel(chan)
    emu._emit(F.CALL, "Newchannel", chan.fields())
    if dial_status == "ANSWER" or answered_var == "yes":
        emu._set_state(chan, F.STATE_UP)
    if dial_status:
        emu._set_var(chan, "DIALSTATUS", dial_status)
    if answered_var:
        emu._set_var(chan, "PEREZVON_ANSWERED", answered_var)
    chan.hangup_cause = _CAUSE.get(dial_status, F.CAUSE_NORMAL_CLEARING)
    if dial_status in _CALLER_LEFT:  # the caller's BYE/CANCEL: ast_queue_hangup_with_cause()
        emu._hangup_request_event(chan)
    if hook:
        # the hangup handler: Gosub into perezvon-inbound,s,1(${EXTEN}) -- ARG1 is the DID
        chan.context, chan.exten, chan.priority = "perezvon-inbound", "s", 1
        emu._user_event(
            chan,
            "PerezvonInbound",
            {"Caller": caller, "Dialled": dialled, "DialStatus": dial_status, "Answered": answered_var},
        )
    emu._destroy(chan)
    return chan
