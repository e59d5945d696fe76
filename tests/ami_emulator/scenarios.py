"""What the phone at a dialled number does: :class:`Behaviour` and its parts.

Times are *nominal* seconds; the emulator divides them by its ``speed``.  A
behaviour's dialling times count from the moment Asterisk sends the INVITE (the
``DialBegin`` event); ``Dtmf.at``, ``UserEventSpec.at``, ``amd_after`` and
``hangup_after`` count from the answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .facts import AMD_STATUSES, DTMF_DIGITS, sip_to_cause

if TYPE_CHECKING:  # pragma: no cover
    from .server import CallHandle

__all__ = ["AmdEvent", "Behaviour", "Dtmf", "UserEventSpec"]


@dataclass(frozen=True)
class Dtmf:
    """A DTMF digit on the answered leg: ``DTMFBegin`` at ``at``, ``DTMFEnd`` ``duration_ms`` later.

    ``direction`` is the AMI wording: ``Received`` (the phone pressed it) or ``Sent``.
    """

    at: float
    digit: str
    duration_ms: int = 120
    direction: str = "Received"

    def __post_init__(self) -> None:
        if len(self.digit) != 1 or self.digit not in DTMF_DIGITS:
            raise ValueError(f"not a DTMF digit: {self.digit!r}")
        if self.direction not in ("Received", "Sent"):
            raise ValueError("direction is 'Received' or 'Sent'")
        if self.at < 0 or self.duration_ms < 0:
            raise ValueError("times must not be negative")

    @classmethod
    def sequence(
        cls, digits: str, start: float, gap: float = 0.4, duration_ms: int = 120, direction: str = "Received"
    ) -> tuple[Dtmf, ...]:
        """``digits`` pressed one after another from ``start``, ``gap`` seconds apart."""
        return tuple(cls(start + i * gap, d, duration_ms, direction) for i, d in enumerate(digits))


@dataclass(frozen=True)
class UserEventSpec:
    """A ``UserEvent`` the dialplan would raise on this channel ``at`` seconds after the answer."""

    at: float
    name: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AmdEvent:
    """How the (not yet written) dialplan reports AMD() to AMI.

    The emulator always emits the ``VarSet`` events AMD() itself causes
    (``AMDSTATUS`` then ``AMDCAUSE``); then, when ``name`` is set, a
    ``UserEvent: <name>`` carrying ``status_header`` and ``cause_header`` (plus
    ``extra``), which is what ``UserEvent(<name>,Status: ${AMDSTATUS},Cause: ${AMDCAUSE})``
    in the dialplan produces.
    """

    name: str | None = "PerezvonAMD"
    status_header: str = "Status"
    cause_header: str | None = "Cause"
    extra: Mapping[str, str] = field(default_factory=dict)


_AMD_DEFAULT_CAUSE = {
    # shapes from apps/app_amd.c (sprintf(amdCause, ...)) with its default settings
    "MACHINE": "LONGGREETING-1600-1500",
    "HUMAN": "HUMAN-800-800",
    "NOTSURE": "TOOLONG-5000",
    "HANGUP": "",
}


@dataclass(frozen=True)
class Behaviour:
    """The far end of one dialled number.

    Exactly one of ``answer_after`` / ``reject_code`` may be set; with neither the
    phone rings until the Originate's ``Timeout`` (or forever without one).

    ring_after     -- 180 Ringing after this long (``Newstate`` Ringing + ``DialState``
                      RINGING); ``None``: no 180 at all.
    answer_after   -- 200 OK after this long.
    reject_code    -- a final SIP failure (486, 603, 404, 503, 480 ...) after ``reject_after``.
    cause          -- override the Q.850 cause Asterisk derives from ``reject_code``.
    hangup_after   -- once answered, the phone hangs up (BYE) after this long.
    dtmf           -- digits on the answered leg.
    user_events    -- ``UserEvent``s the dialplan raises on the answered leg.
    amd / amd_after / amd_cause -- what the dialplan's AMD() concludes, and when.
    script         -- ``async def script(call: CallHandle)`` run after the answer, for
                      anything the fields cannot say (it may sleep, send DTMF, raise
                      user events, set variables, hang up).
    """

    ring_after: float | None = 0.2
    answer_after: float | None = None
    reject_code: int | None = None
    reject_after: float = 0.0
    cause: int | None = None
    hangup_after: float | None = None
    dtmf: tuple[Dtmf, ...] = ()
    user_events: tuple[UserEventSpec, ...] = ()
    amd: str | None = None
    amd_after: float = 2.5
    amd_cause: str | None = None
    script: Callable[[CallHandle], Awaitable[Any]] | None = None

    def __post_init__(self) -> None:
        if self.answer_after is not None and self.reject_code is not None:
            raise ValueError("a phone either answers or rejects, not both")
        if self.reject_code is not None and not 300 <= self.reject_code <= 699:
            raise ValueError("reject_code must be a final SIP failure (300-699)")
        if self.amd is not None and self.amd not in AMD_STATUSES:
            raise ValueError(f"amd is one of {AMD_STATUSES}")
        for value in (self.ring_after, self.answer_after, self.hangup_after):
            if value is not None and value < 0:
                raise ValueError("times must not be negative")
        if self.reject_after < 0 or self.amd_after < 0:
            raise ValueError("times must not be negative")
        object.__setattr__(self, "dtmf", tuple(self.dtmf))
        object.__setattr__(self, "user_events", tuple(self.user_events))

    # -- derived -----------------------------------------------------------------
    @property
    def rejection_cause(self) -> int | None:
        if self.reject_code is None:
            return None
        return self.cause if self.cause is not None else sip_to_cause(self.reject_code)

    @property
    def amd_result_cause(self) -> str:
        if self.amd_cause is not None:
            return self.amd_cause
        return _AMD_DEFAULT_CAUSE.get(self.amd or "", "")

    # -- the usual phones --------------------------------------------------------
    @classmethod
    def answers(
        cls,
        after: float = 1.0,
        *,
        hangup_after: float | None = None,
        dtmf: tuple[Dtmf, ...] | list[Dtmf] = (),
        ring_after: float | None = 0.2,
        user_events: tuple[UserEventSpec, ...] | list[UserEventSpec] = (),
        amd: str | None = None,
        amd_after: float = 2.5,
        script: Callable[[CallHandle], Awaitable[Any]] | None = None,
    ) -> Behaviour:
        """Rings, answers after ``after`` s; hangs up ``hangup_after`` s after answering."""
        if ring_after is not None and ring_after > after:
            ring_after = None
        return cls(
            ring_after=ring_after,
            answer_after=after,
            hangup_after=hangup_after,
            dtmf=tuple(dtmf),
            user_events=tuple(user_events),
            amd=amd,
            amd_after=amd_after,
            script=script,
        )

    @classmethod
    def human(
        cls, after: float = 1.0, *, hangup_after: float | None = None, amd_after: float = 2.0, **kwargs: Any
    ) -> Behaviour:
        """Answers; the dialplan's AMD() says HUMAN."""
        return cls.answers(after, hangup_after=hangup_after, amd="HUMAN", amd_after=amd_after, **kwargs)

    @classmethod
    def answering_machine(
        cls, after: float = 1.0, *, amd_after: float = 2.5, hangup_after: float | None = 20.0, **kwargs: Any
    ) -> Behaviour:
        """Voicemail picks up; the dialplan's AMD() says MACHINE; it hangs up after the beep."""
        return cls.answers(after, hangup_after=hangup_after, amd="MACHINE", amd_after=amd_after, **kwargs)

    @classmethod
    def rejects(
        cls, code: int, after: float = 0.5, *, ring_after: float | None = None, cause: int | None = None
    ) -> Behaviour:
        """A final SIP failure ``code`` after ``after`` s (ringing first if ``ring_after``)."""
        if ring_after is not None and ring_after > after:
            ring_after = None
        return cls(ring_after=ring_after, reject_code=code, reject_after=after, cause=cause)

    @classmethod
    def busy(cls, after: float = 0.5, *, ring_after: float | None = None) -> Behaviour:
        """486 Busy Here (cause 17)."""
        return cls.rejects(486, after, ring_after=ring_after)

    @classmethod
    def declines(cls, after: float = 3.0, *, ring_after: float | None = 0.2) -> Behaviour:
        """Rings, then the user rejects: 603 Decline (cause 21)."""
        return cls.rejects(603, after, ring_after=ring_after)

    @classmethod
    def unallocated(cls, after: float = 0.3) -> Behaviour:
        """404 Not Found from the carrier (cause 1), no ringing."""
        return cls.rejects(404, after)

    @classmethod
    def congestion(cls, after: float = 0.3) -> Behaviour:
        """503 Service Unavailable from the carrier (cause 34), no ringing."""
        return cls.rejects(503, after)

    @classmethod
    def unavailable(cls, after: float = 0.5, *, ring_after: float | None = None) -> Behaviour:
        """480 Temporarily Unavailable, e.g. a switched-off mobile (cause 19)."""
        return cls.rejects(480, after, ring_after=ring_after)

    @classmethod
    def no_answer(cls, *, ring_after: float | None = 0.2) -> Behaviour:
        """Rings until the Originate's Timeout runs out (cause 19 or 0, Reason 3)."""
        return cls(ring_after=ring_after)
