"""The redial matrix on the Telephony tab: the built-in rules as rows, the connection's changes, a preview.

The page lists what the engine applies (``perezvon.core.redial``): per chain, every
built-in rule, marked "built-in" until it is changed; a changed row is stored as one
override under the redial key ``"*"`` and can be reset. Rules for a single redial
number are added rows. The preview plays the same ``next_step`` the worker plays
(``redial.plan_chain``) and names the final status with ``statuses.classify``, so
the words cannot drift from what happens (docs/calls.md#the-redial-matrix).
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.responses import JSONResponse, Response

from perezvon.core import redial
from perezvon.core.registry import Direction, LegStatus
from perezvon.core.statuses import classify
from perezvon.web.admin.framework import Ctx
from perezvon.web.admin.i18n import environment, plugin_template_packages
from perezvon.web.admin.labels import STATUS

BUILT_IN, CHANGED, ADDED, NEW = "built_in", "changed", "added", "new"
REDIAL_NUMBERS = [redial.EVERY_REDIAL, *(str(n) for n in range(2, redial.MAX_ATTEMPTS + 1))]
#: blank rows under the rules, for new ones
NEW_ROWS = 2

#: what a leg's status means, in words (docs/calls.md#leg-statuses)
LEG_WORDS = {
    "*": "any status",
    "-": "not dialled",
    str(LegStatus.OK): "answered",
    str(LegStatus.CANCELLED_BY_DTMF): "cancelled by a key",
    str(LegStatus.OPERATOR_NO_KEY): "the operator did not press the key",
    str(LegStatus.VOICEMAIL): "voicemail",
    str(LegStatus.PARTY_LEFT): "hung up before the connection",
    str(LegStatus.NOT_FOUND): "the number does not exist",
    str(LegStatus.TIMEOUT): "no answer",
    str(LegStatus.UNAVAILABLE): "no answer",
    str(LegStatus.BUSY): "busy",
    str(LegStatus.TERMINATED): "the call was terminated",
    str(LegStatus.SERVER_ERROR): "telephony error",
    str(LegStatus.UNAVAILABLE_SERVICE): "telephony error",
    str(LegStatus.DECLINED): "declined",
}


def leg_words(ctx: Ctx, code: str) -> str:
    words = LEG_WORDS.get(code)
    if words is None:
        return ctx._("status %(code)s", code=code)
    return ctx._(words) if code in ("*", "-") else f"{ctx._(words)} ({code})"


def pair_words(ctx: Ctx, pair: str) -> str:
    """``486-*`` as "operator: busy (486); client: any status"."""
    operator, _, client = pair.partition("-")
    return ctx._(
        "operator: %(operator)s; client: %(client)s",
        operator=leg_words(ctx, operator),
        client=leg_words(ctx, client),
    )


def duration_words(ctx: Ctx, seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(ctx._("%(n)s h", n=hours))
    if minutes:
        parts.append(ctx._("%(n)s min", n=minutes))
    if secs or not parts:
        parts.append(ctx._("%(n)s s", n=secs))
    return " ".join(parts)


def _by_specificity(pairs: list[str]) -> list[str]:
    """Most specific first, as the engine prefers them; ``*-*`` (everything else) last."""
    return sorted(pairs, key=lambda pair: (-sum(part != "*" for part in pair.split("-", 1)), pair))


def _row(chain: str, number: str, pair: str, rule: Any, origin: str) -> dict[str, Any]:
    abort = rule == redial.ABORT
    return {
        "chain": chain,
        "number": number,
        "pair": pair,
        "action": redial.ABORT if abort else "redial",
        "period": "" if abort else rule.get("period", ""),
        "direction": chain if abort else rule.get("direction", chain),
        "origin": origin,
    }


def matrix_rows(matrix: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every rule in force, chain by chain: the built-in ones (as changed, if they are), then the added ones."""
    rows = []
    for chain in Direction.ALL:
        own = (matrix or {}).get(chain) or {}
        every = own.get(redial.EVERY_REDIAL) or {}
        for pair in _by_specificity(list(redial.DEFAULT_MATRIX)):
            changed = pair in every
            rule = every[pair] if changed else redial.DEFAULT_MATRIX[pair]
            rows.append(_row(chain, redial.EVERY_REDIAL, pair, rule, CHANGED if changed else BUILT_IN))
        for number in REDIAL_NUMBERS:
            rules = own.get(number) or {}
            for pair in _by_specificity(
                [p for p in rules if number != redial.EVERY_REDIAL or p not in redial.DEFAULT_MATRIX]
            ):
                rows.append(_row(chain, number, pair, rules[pair], ADDED))
    return rows


def blank_row(chain: str = Direction.OPERATOR_FIRST) -> dict[str, Any]:
    return {
        "chain": chain,
        "number": redial.EVERY_REDIAL,
        "pair": "",
        "action": "redial",
        "period": "",
        "direction": chain,
        "origin": NEW,
    }


PERIOD_PROBLEM = "The period is whole seconds, up to a week."


def matrix_from_form(form: FormData | None) -> tuple[dict[str, Any], list[dict[str, Any]], dict[int, list[str]]]:
    """The matrix to store from the rows of the form, the rows as typed, and each bad row's problems.

    A built-in row left as the built-in rule is not stored, so only what was changed
    becomes an override; a row whose pair is cleared is dropped.
    """
    form = form or FormData()
    matrix: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    problems: dict[int, list[str]] = {}
    where: dict[tuple[str, str, str], int] = {}
    try:
        count = min(int(form.get("rows") or 0), 500)
    except ValueError:
        count = 0
    for index in range(count):

        def get(name: str, index: int = index) -> str:
            value = form.get(f"m{index}_{name}")
            return value.strip() if isinstance(value, str) else ""

        row = {name: get(name) for name in ("chain", "number", "pair", "action", "period", "direction", "origin")}
        if not row["pair"]:
            if row["origin"] in (BUILT_IN, CHANGED):  # a built-in rule cannot be deleted, only reset
                problems[len(rows)] = ["A status pair looks like 486-* or 200-480."]
                rows.append(row)
            continue
        position = len(rows)
        rows.append(row)
        if row["chain"] not in Direction.ALL:
            problems[position] = ["Unknown chain: use operator_first or client_first."]
            continue
        if row["number"] not in REDIAL_NUMBERS:
            problems[position] = ["Redials are numbered 2 to 5."]
            continue
        rule: Any
        if row["action"] == redial.ABORT:
            rule = redial.ABORT
        else:
            period = row["period"]
            if not (period.isascii() and period.isdigit()) or len(period) > 7:
                problems[position] = [PERIOD_PROBLEM]
                continue
            rule = {"period": int(period), "direction": row["direction"] or row["chain"]}
        key = (row["chain"], row["number"], row["pair"])
        if key in where:
            problems[position] = ["This status pair is already listed for this chain and redial."]
            continue
        where[key] = position
        if row["number"] == redial.EVERY_REDIAL and redial.DEFAULT_MATRIX.get(row["pair"]) == rule:
            continue  # the built-in rule as it is: nothing to store
        matrix.setdefault(row["chain"], {}).setdefault(row["number"], {})[row["pair"]] = rule
    try:
        redial.validate_matrix(matrix)
    except redial.MatrixError as exc:
        for path, messages in exc.errors.items():
            chain, _, rest = path.partition(".")
            number, _, pair = rest.partition(".")
            position = where.get((chain, number, pair))
            if position is not None:
                problems.setdefault(position, []).extend(messages)
    return matrix, rows, problems


# --- the preview ------------------------------------------------------------------------------

#: who fails, and how: the pair an attempt ends with, by the direction it was placed in
#: (plugins/simulator and core/scenario.py end attempts with these pairs)
SCENARIOS: dict[str, tuple[str, dict[str, tuple[int | None, int | None]]]] = {
    "operator_busy": (
        "The operator's number is always busy",
        {
            Direction.OPERATOR_FIRST: (LegStatus.BUSY, None),
            Direction.CLIENT_FIRST: (LegStatus.BUSY, LegStatus.OK),
        },
    ),
    "operator_no_answer": (
        "The operator never answers",
        {
            Direction.OPERATOR_FIRST: (LegStatus.UNAVAILABLE, None),
            Direction.CLIENT_FIRST: (LegStatus.UNAVAILABLE, LegStatus.OK),
        },
    ),
    "client_busy": (
        "The client's number is always busy",
        {
            Direction.OPERATOR_FIRST: (LegStatus.OK, LegStatus.BUSY),
            Direction.CLIENT_FIRST: (None, LegStatus.BUSY),
        },
    ),
    "client_no_answer": (
        "The client never answers",
        {
            Direction.OPERATOR_FIRST: (LegStatus.OK, LegStatus.UNAVAILABLE),
            Direction.CLIENT_FIRST: (None, LegStatus.UNAVAILABLE),
        },
    ),
}


def preview(ctx: Ctx, matrix: dict[str, Any], chain_started: str) -> list[dict[str, Any]]:
    """Each scenario's attempts and final status as the engine would make them, in words."""
    if chain_started not in Direction.ALL:
        chain_started = Direction.OPERATOR_FIRST
    result = []
    for key, (title, pairs) in SCENARIOS.items():
        attempts = redial.plan_chain(matrix, chain_started=chain_started, outcome=pairs.__getitem__)
        last = attempts[-1]
        status, reason = classify(last.operator, last.client, last.direction)
        result.append(
            {
                "key": key,
                "title": ctx._(title),
                "attempts": [
                    {
                        "number": a.number,
                        "at_seconds": a.at_seconds,
                        "direction": a.direction,
                        "operator": a.operator,
                        "client": a.client,
                        "text": ctx._(
                            "Attempt %(number)s: %(when)s, %(direction)s.",
                            number=a.number,
                            when=(
                                ctx._("at once")
                                if a.number == 1
                                else ctx._(
                                    "%(after)s after the first (%(gap)s after the previous one)",
                                    after=duration_words(ctx, a.at_seconds),
                                    gap=duration_words(ctx, a.at_seconds - attempts[a.number - 2].at_seconds),
                                )
                            ),
                            direction=(
                                ctx._("operator first")
                                if a.direction == Direction.OPERATOR_FIRST
                                else ctx._("client first")
                            ),
                        ),
                    }
                    for a in attempts
                ],
                "final_status": status,
                "total_seconds": last.at_seconds,
                "final_text": ctx._(
                    "Final status «%(status)s» (%(reason)s) after %(time)s; attempts: %(count)s.",
                    status=ctx._(STATUS.get(status, status)),
                    reason=ctx._(reason),
                    time=duration_words(ctx, last.at_seconds),
                    count=len(attempts),
                ),
            }
        )
    return result


async def preview_endpoint(ctx: Ctx) -> Response:
    """The preview for the form as it is now, saved or not: JSON with the scenarios and their HTML."""
    matrix, _, problems = matrix_from_form(ctx.form)
    if not (ctx.form and ctx.form.get("rows")):  # nothing sent: the saved rules
        matrix = (ctx.connection.redial_matrix if ctx.connection else None) or {}
    chain = (ctx.form.get("first_direction") if ctx.form else None) or (
        (ctx.connection.telephony or {}).get("first_direction") if ctx.connection else None
    )
    scenarios = preview(ctx, matrix, str(chain or Direction.OPERATOR_FIRST))
    # rendered here, not by ctx.render, which would take the page's flash messages with it
    html = (
        environment(ctx.locale, plugin_template_packages(ctx.perezvon.host))
        .get_template("admin/_redial_preview.html")
        .render(scenarios=scenarios, preview_problems=bool(problems))
    )
    return JSONResponse(
        {"scenarios": scenarios, "has_problems": bool(problems), "html": html},
        headers={"Cache-Control": "no-store"},
    )
