"""From how Asterisk reports a leg that was not answered to the SIP status the core uses (docs/calls.md#leg-statuses).

The ``OriginateResponse`` ``Reason`` cannot say why (docs/ami-emulator.md: with
chan_pjsip busy, declined, 404 and 480 all give Reason 0), so the leg's
``Hangup`` event decides: its ``TechCause`` (the SIP code itself, Asterisk
20.17+/22.7+) when present, else its Q.850 ``Cause`` as
``ast_sip_hangup_sip2cause()`` produced it; ``Reason`` is the last resort
(a channel that could not even be created has no Hangup).
"""

from __future__ import annotations

from perezvon.api import LegStatus

#: Q.850 causes (include/asterisk/causes.h) -> the leg status
_BY_CAUSE = {
    1: LegStatus.NOT_FOUND,  # unallocated number (404)
    3: LegStatus.NOT_FOUND,  # no route to destination
    22: LegStatus.NOT_FOUND,  # number changed (410)
    28: LegStatus.NOT_FOUND,  # invalid number format (484)
    17: LegStatus.BUSY,  # user busy (486, 600)
    21: LegStatus.DECLINED,  # call rejected (603)
    18: LegStatus.TIMEOUT,  # no user responding (408)
    19: LegStatus.UNAVAILABLE,  # no answer (480, ring timeout)
    20: LegStatus.UNAVAILABLE,  # subscriber absent
    16: LegStatus.TERMINATED,  # normal clearing before an answer: the far end gave up
    127: LegStatus.TERMINATED,  # interworking (487 and other 4xx)
    34: LegStatus.UNAVAILABLE_SERVICE,  # circuit congestion (503, other 5xx)
    38: LegStatus.UNAVAILABLE_SERVICE,  # network out of order
    41: LegStatus.UNAVAILABLE_SERVICE,  # temporary failure
    42: LegStatus.UNAVAILABLE_SERVICE,  # switching equipment congestion
    27: LegStatus.UNAVAILABLE_SERVICE,  # destination out of order
}

#: pbx_dial_reason() values (main/pbx.c) when no cause is known
_BY_REASON = {3: LegStatus.UNAVAILABLE, 5: LegStatus.BUSY, 8: LegStatus.UNAVAILABLE_SERVICE}


def status_for_sip(code: int) -> int:
    if code in (486, 600):
        return LegStatus.BUSY
    if code == 603:
        return LegStatus.DECLINED
    if code in (404, 410, 484, 604):
        return LegStatus.NOT_FOUND
    if code == 408:
        return LegStatus.TIMEOUT
    if code == 480:
        return LegStatus.UNAVAILABLE
    if code == 487:
        return LegStatus.TERMINATED
    if 500 <= code <= 599:
        return LegStatus.UNAVAILABLE_SERVICE
    return LegStatus.UNAVAILABLE


def status_for_failed_leg(cause: int | None, tech_cause: int, reason: int) -> int:
    """The leg's status from its Hangup ``Cause``/``TechCause`` and the OriginateResponse ``Reason``."""
    if 400 <= tech_cause <= 699:
        return status_for_sip(tech_cause)
    if cause:
        return _BY_CAUSE.get(cause, LegStatus.UNAVAILABLE_SERVICE)
    if reason == 3:  # the ring timeout (cause 0 before Asterisk 20.18/22.8)
        return LegStatus.UNAVAILABLE
    if cause is None:  # no channel at all: Asterisk could not even place the call (endpoint, trunk)
        return _BY_REASON.get(reason, LegStatus.UNAVAILABLE_SERVICE)
    return _BY_REASON.get(reason, LegStatus.UNAVAILABLE)
