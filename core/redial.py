"""What happens after an attempt: the redial matrix (docs/calls.md#the-redial-matrix).

A matrix maps the redial number (2..5) and the previous attempt's status
pair to a rule: ``{"period": seconds, "direction": ...}`` or ``"abort"``.
Pairs are written ``"OP-CLIENT"`` with ``*`` for any status and ``-`` for a
leg that was not dialled, e.g. ``"486-*"`` or ``"200-480"``. The most specific
matching pair wins. A connection's own matrix (``Connection.redial_matrix``,
edited in the admin) is consulted first, per chain type: its rules for that
one redial, then the built-in rules below with the connection's changes to
them (key ``"*"``: every redial) laid over, pair by pair. 201 (cancelled by
DTMF) always aborts, and so does a successful call.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from perezvon.core.registry import Direction, LegStatus

MAX_ATTEMPTS = 5  # the first call and up to four redials
ABORT = "abort"
#: the redial key of a connection's changes to the built-in rules: they apply to every redial
EVERY_REDIAL = "*"
#: the longest wait a rule may ask for
MAX_PERIOD_SECONDS = 7 * 86400

#: used for any pair the connection's matrix does not list
DEFAULT_MATRIX: dict[str, Any] = {
    "404-*": ABORT,  # the operator number does not exist: redialling cannot help
    "*-404": ABORT,  # nor can it for a client number that does not exist
    "*-*": {"period": 120, "direction": Direction.OPERATOR_FIRST},
    "202-*": {"period": 60, "direction": Direction.OPERATOR_FIRST},
    "200-203": {"period": 600, "direction": Direction.OPERATOR_FIRST},
    "486-*": {"period": 60, "direction": Direction.OPERATOR_FIRST},
    "200-486": {"period": 180, "direction": Direction.OPERATOR_FIRST},
    "200-204": {"period": 60, "direction": Direction.OPERATOR_FIRST},
    "204-*": {"period": 60, "direction": Direction.OPERATOR_FIRST},
}


@dataclasses.dataclass(frozen=True)
class NextStep:
    period_seconds: int
    direction: str


def _code(status: int | None) -> str:
    return "-" if status is None else str(status)


def _specificity(pattern: str) -> int:
    return sum(part != "*" for part in pattern.split("-", 1))


def _matches(pattern: str, op: str, client: str) -> bool:
    want_op, _, want_client = pattern.partition("-")
    return want_op in ("*", op) and want_client in ("*", client)


def _lookup(table: dict[str, Any], op: str, client: str) -> Any:
    found = [p for p in table if _matches(p, op, client)]
    if not found:
        return None
    return table[max(found, key=_specificity)]


def next_step(
    matrix: dict[str, Any], *, chain_started: str, next_number: int, operator: int | None, client: int | None
) -> NextStep | None:
    """The rule for attempt ``next_number`` after a ``(operator, client)`` result, or None to stop."""
    if next_number > MAX_ATTEMPTS:
        return None
    if operator == LegStatus.OK and client == LegStatus.OK:
        return None
    if LegStatus.CANCELLED_BY_DTMF in (operator, client):
        return None
    op, cl = _code(operator), _code(client)
    per_chain = (matrix or {}).get(chain_started, {})
    rule = _lookup(per_chain.get(str(next_number), {}), op, cl)
    if rule is None:
        rule = _lookup(built_in_with_changes(matrix, chain_started), op, cl)
    if rule is None or rule == ABORT:
        return None
    return NextStep(period_seconds=int(rule["period"]), direction=rule.get("direction", chain_started))


def built_in_with_changes(matrix: dict[str, Any] | None, chain_started: str) -> dict[str, Any]:
    """The built-in rules with the connection's changes for every redial of that chain laid over, pair by pair.

    Changing one built-in pair (say ``*-*``) leaves the others in force, unlike a
    rule for one redial number, which is consulted before all of them.
    """
    return {**DEFAULT_MATRIX, **((matrix or {}).get(chain_started, {}).get(EVERY_REDIAL) or {})}


@dataclasses.dataclass(frozen=True)
class PlannedAttempt:
    """One attempt of a simulated chain: when it starts (seconds after the first) and how it ends."""

    number: int
    at_seconds: int
    direction: str
    operator: int | None
    client: int | None


def plan_chain(
    matrix: dict[str, Any] | None,
    *,
    chain_started: str,
    outcome: Callable[[str], tuple[int | None, int | None]],
) -> list[PlannedAttempt]:
    """The attempts the engine makes when every attempt ends as ``outcome(direction)`` says.

    Walks :func:`next_step` as ``CallbackEngine.finish_attempt`` does after each
    attempt; the time a call rings and working hours are left out (a redial is
    due ``period`` s after the previous attempt *ended*).
    """
    attempts: list[PlannedAttempt] = []
    at, direction = 0, chain_started
    for number in range(1, MAX_ATTEMPTS + 1):
        operator, client = outcome(direction)
        attempts.append(PlannedAttempt(number, at, direction, operator, client))
        step = next_step(
            matrix or {}, chain_started=chain_started, next_number=number + 1, operator=operator, client=client
        )
        if step is None:
            break
        at, direction = at + step.period_seconds, step.direction
    return attempts


_PAIR = re.compile(r"^(\*|-|\d{3})-(\*|-|\d{3})$")


class MatrixError(ValueError):
    """A connection's redial matrix is not well formed; ``errors`` is ``{path: [messages]}``."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def validate_matrix(matrix: Any) -> dict[str, Any]:
    """Check a connection's redial matrix (as the admin saves it) and return it unchanged.

    Shape: ``{chain: {redial number: {pair: rule}}}`` with chain ``operator_first``
    or ``client_first``, redial number "2".."5" or "*", pair like ``"486-*"`` and rule
    ``"abort"`` or ``{"period": seconds, "direction": ...}``. The redial number
    ``"*"`` holds the connection's changes to the built-in rules (every redial).
    """
    errors: dict[str, list[str]] = {}
    if not isinstance(matrix, dict):
        raise MatrixError({"_schema": ["The redial matrix must be an object."]})
    for chain, redials in matrix.items():
        if chain not in Direction.ALL:
            errors[chain] = ["Unknown chain: use operator_first or client_first."]
            continue
        if not isinstance(redials, dict):
            errors[chain] = ["Must be an object of redials."]
            continue
        for number, rules in redials.items():
            where = f"{chain}.{number}"
            if number != EVERY_REDIAL and number not in {str(n) for n in range(2, MAX_ATTEMPTS + 1)}:
                errors[where] = [f"Redials are numbered 2 to {MAX_ATTEMPTS}."]
                continue
            if not isinstance(rules, dict):
                errors[where] = ["Must be an object of status pairs."]
                continue
            for pair, rule in rules.items():
                problem = _rule_problem(pair, rule)
                if problem:
                    errors[f"{where}.{pair}"] = [problem]
    if errors:
        raise MatrixError(errors)
    return matrix


def _rule_problem(pair: str, rule: Any) -> str | None:
    if not _PAIR.match(pair):
        return "A status pair looks like 486-* or 200-480."
    if rule == ABORT:
        return None
    if not isinstance(rule, dict) or set(rule) - {"period", "direction"} or "period" not in rule:
        return 'A rule is "abort" or {"period": seconds, "direction": ...}.'
    period = rule["period"]
    if not isinstance(period, int) or isinstance(period, bool) or not 0 <= period <= MAX_PERIOD_SECONDS:
        return "The period is whole seconds, up to a week."
    if rule.get("direction", Direction.OPERATOR_FIRST) not in Direction.ALL:
        return "The direction is operator_first or client_first."
    return None
