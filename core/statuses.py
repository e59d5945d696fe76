"""From an attempt's status pair to the display status and reason (docs/calls.md#display-statuses).

Reasons are English message ids, translated where they are shown.
"""

from __future__ import annotations

from perezvon.core.models import DisplayStatus
from perezvon.core.registry import Direction, LegStatus

OK = LegStatus.OK

_LEG_REASONS = {
    LegStatus.NOT_FOUND: "number does not exist",
    LegStatus.TIMEOUT: "no answer",
    LegStatus.UNAVAILABLE: "no answer",
    LegStatus.TERMINATED: "call was terminated",
    LegStatus.BUSY: "busy",
    LegStatus.DECLINED: "call was declined",
    LegStatus.SERVER_ERROR: "telephony error",
    LegStatus.UNAVAILABLE_SERVICE: "telephony error",
}


def classify(operator: int | None, client: int | None, direction: str = Direction.OPERATOR_FIRST) -> tuple[str, str]:
    """``(display status, reason)`` for one attempt's ``(operator, client)`` pair.

    ``None`` means the leg was never dialled (the first leg already failed).
    """
    if LegStatus.CANCELLED_BY_DTMF in (operator, client):
        who = "operator" if operator == LegStatus.CANCELLED_BY_DTMF else "client"
        return DisplayStatus.CANCELLED, f"the {who} cancelled the callback"
    if LegStatus.PARTY_LEFT in (operator, client):
        who = "operator" if operator == LegStatus.PARTY_LEFT else "client"
        return DisplayStatus.LOST, f"the {who} did not wait for the connection"
    if direction == Direction.CLIENT_FIRST and client != OK:
        return _client_failed(client)
    if operator is None:
        return DisplayStatus.FAILED, "operator number could not be dialled"
    if operator != OK:
        if operator == LegStatus.OPERATOR_NO_KEY:
            return DisplayStatus.FAILED, "operator did not press the call-client key in time"
        return DisplayStatus.FAILED, f"operator number: {_LEG_REASONS.get(operator, 'not reached')}"
    if client == OK:
        return DisplayStatus.SUCCESSFUL, "the callback took place"
    return _client_failed(client)


def _client_failed(client: int | None) -> tuple[str, str]:
    if client == LegStatus.VOICEMAIL:
        return DisplayStatus.UNSUCCESSFUL, "client's voicemail answered"
    if client is None:
        return DisplayStatus.UNSUCCESSFUL, "client was not dialled"
    return (
        DisplayStatus.UNSUCCESSFUL,
        f"the subscriber could not be reached in time: {_LEG_REASONS.get(client, 'not reached')}",
    )
