"""Call again: a manual attempt of a call, now (docs/calls.md#call-again).

Asked for by a user with edit access in the admin (the call's page) or by an API key
(``POST /api/v1/calls/{id}/redial``); both come here after their own access check.
The call goes back to *scheduled* with the next attempt due now (or at the next
opening when the site is closed), a :class:`CallRedial` row records who asked and
when, and an attempt job of its own is queued: the worker places the attempt as any
other (``CallbackEngine.place_attempt`` claims it), and the call then ends by the
normal rules (the redial matrix, up to attempt 5).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import TYPE_CHECKING

from tortoise.transactions import in_transaction

from perezvon.core import schedule
from perezvon.core.callbacks import utcnow, working_hours
from perezvon.core.models import ApiKey, Call, CallRedial, CallState, DisplayStatus, OperatorNumber, User
from perezvon.core.queue import Job, JobQueue

if TYPE_CHECKING:
    from arq.connections import ArqRedis

log = logging.getLogger("perezvon.call_again")

#: the most attempts a call may have with manual ones (the matrix stops at 5: core/redial.py)
MAX_ATTEMPTS_WITH_MANUAL = 10

BEING_DIALLED = "This call is being dialled right now: wait for the attempt to end."
SWITCHED_OFF = "Callbacks are switched off for this site."
NO_OPERATOR = "No operator number is set for this site: add one on the Numbers tab first."
TOO_MANY = "This call has had 10 attempts, the most a call may have."
CHANGED = "The call changed meanwhile: look at it again and retry."


class CallAgainRefused(Exception):
    """Why no attempt is placed: an HTTP status (409) and an English message id."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclasses.dataclass(frozen=True)
class CalledAgain:
    redial: CallRedial
    attempt_number: int
    due_at: dt.datetime
    #: the site is closed now: the attempt is due at its next opening
    waits_for_opening: bool


def who(user: User, api_key: ApiKey | None = None) -> str:
    """The requester as the call's page names it: the user (name, else phone), and the key."""
    name = f"{user.first_name} {user.last_name}".strip() or user.phone
    if api_key is None:
        return name[:300]
    return f"{name}, {api_key.name or 'API'} ({api_key.prefix}…)"[:300]


def again_job(call_id: str, number: int, redial_id: int, run_at: dt.datetime) -> Job:
    """The attempt job of a manual attempt. Its id is its own: a redial already queued for later under
    ``attempt:<call>:<n>`` would keep this one out; whichever runs first claims the attempt, the other
    finds it placed and does nothing."""
    return Job("core.place_attempt", (call_id, number), f"attempt:{call_id}:{number}:again:{redial_id}", run_at)


async def call_again(
    redis: ArqRedis | None,
    call: Call,
    *,
    user: User,
    api_key: ApiKey | None = None,
    now: dt.datetime | None = None,
) -> CalledAgain:
    """Place a new attempt of ``call`` now (or at the next opening); raises :class:`CallAgainRefused`."""
    now = now or utcnow()
    call = await Call.get(id=call.id).prefetch_related("connection")
    connection = call.connection
    if call.state == CallState.DIALLING:
        raise CallAgainRefused(409, BEING_DIALLED)
    if not connection.is_on:
        raise CallAgainRefused(409, SWITCHED_OFF)
    if not await OperatorNumber.filter(connection_id=connection.id).exists():
        raise CallAgainRefused(409, NO_OPERATOR)
    number = call.attempts_made + 1
    if number > MAX_ATTEMPTS_WITH_MANUAL:
        raise CallAgainRefused(409, TOO_MANY)
    try:
        due = schedule.redial_at(await working_hours(connection), now)
    except schedule.ScheduleError:  # hours with no working day never stop a call someone asked for
        due = now
    due = max(due, now)
    async with in_transaction():
        changed = await Call.filter(
            id=call.id,
            state__in=(CallState.SCHEDULED, CallState.FINISHED, CallState.NOTIFIED),
            attempts_made=call.attempts_made,
        ).update(
            state=CallState.SCHEDULED,
            display_status=DisplayStatus.PENDING,
            next_attempt_at=due,
            # a redial waiting keeps the direction the matrix chose; a finished call starts its chain's
            next_direction=call.next_direction if call.state == CallState.SCHEDULED else None,
            is_target=None,
            finished_at=None,
        )
        if not changed:
            dialling = await Call.filter(id=call.id, state=CallState.DIALLING).exists()
            raise CallAgainRefused(409, BEING_DIALLED if dialling else CHANGED)
        redial = await CallRedial.create(
            call_id=call.id,
            attempt_number=number,
            via="api" if api_key is not None else "admin",
            user_id=user.id,
            api_key_id=api_key.id if api_key is not None else None,
            requested_by=who(user, api_key),
            due_at=due,
        )
    if redis is not None:
        try:
            await JobQueue(redis).enqueue([again_job(str(call.id), number, redial.id, due)])
        except Exception as exc:  # the call is scheduled and due: the sweep queues it
            log.warning("call %s: the manual attempt's job was not queued (%s); the sweep will", call.id, exc)
    log.info("call %s: attempt %d asked for by %s (%s), due %s", call.id, number, redial.requested_by, redial.via, due)
    return CalledAgain(redial, number, due, due > now)
