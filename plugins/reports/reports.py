"""Problem alerts and scheduled digests, sent through every registered notifier (docs/notifications.md).

Two periodic jobs do it all, each once a minute or so in one worker at a time:

* :func:`check_problems` looks for each problem (telephony unreachable, an operator number
  failing N times in a row, an integration's deliveries failing for an hour). A problem seen
  opens an *episode* (a :class:`~perezvon.plugins.reports.models.Problem` row); its alert goes
  out once, when it has lasted long enough; the episode is closed when the problem is gone, and
  the next time it appears is a new episode with a new alert.
* :func:`send_digests` makes each site's daily (and on Mondays weekly) digest once the site's
  local clock has passed the digest hour, once per period (a
  :class:`~perezvon.plugins.reports.models.SentDigest` row, unique per site and period).

A notifier that fails is tried again at the next run; one that has sent is never asked again for
the same digest or episode, so nobody gets a second copy.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from perezvon.api import (
    Attempt,
    Call,
    Connection,
    Delivery,
    DisplayStatus,
    GrantLevel,
    Notification,
    OperatorNumber,
    User,
    as_event_data,
    telephony_states,
    users_with_access,
)
from perezvon.plugins.reports.models import Problem, SentDigest
from perezvon.plugins.reports.schemas import DIGEST_CHOICES

log = logging.getLogger("perezvon.reports")

DIGEST = "digest"
PROBLEM = "problem"
TELEPHONY_UNREACHABLE = "telephony_unreachable"
OPERATOR_FAILING = "operator_failing"
DELIVERIES_FAILING = "deliveries_failing"
RECORDING_QUOTA = "recording_quota"
#: the key of ``User.preferences`` this plugin owns
PREFERENCE = "reports"
#: an operator leg that ended with one of these was answered (200), or answered and then cancelled or left
ANSWERED = (200, 201, 204)
#: deliveries older than this are not read: an integration idle longer is not "failing now"
DELIVERY_LOOKBACK = dt.timedelta(hours=24)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


# --- who wants what ----------------------------------------------------------------------------


def choices(user: User, connection_id: int | None, default_digest: str) -> dict[str, Any]:
    """A user's digest (daily, weekly, off) and alerts (on, off) for one site, or deployment-wide.

    Kept in ``User.preferences["reports"]``: ``{"digest": ..., "alerts": ..., "connections":
    {"<id>": {"digest": ..., "alerts": ...}}}``; a site's own choice wins over the general one.
    """
    saved = (user.preferences or {}).get(PREFERENCE) or {}
    out = {"digest": default_digest, "alerts": True}
    for layer in (saved, ((saved.get("connections") or {}).get(str(connection_id)) or {}) if connection_id else {}):
        if layer.get("digest") in DIGEST_CHOICES:
            out["digest"] = layer["digest"]
        if isinstance(layer.get("alerts"), bool):
            out["alerts"] = layer["alerts"]
    return out


async def recipients(connection_id: int | None, *, digest: str | None, default_digest: str) -> tuple[str, ...]:
    """The e-mail addresses of those to tell: a site's full-access users (the staff for the deployment)
    who want this digest (``digest="daily"|"weekly"``), or alerts (``digest=None``)."""
    users = await users_with_access(connection_id, GrantLevel.FULL)
    emails = set()
    for user in users:
        if not (user.email or "").strip():
            continue
        wanted = choices(user, connection_id, default_digest)
        if (wanted["digest"] == digest) if digest else wanted["alerts"]:
            emails.add((user.email or "").strip())
    return tuple(sorted(emails))


def connection_data(connection: Connection) -> dict[str, Any]:
    return as_event_data(connection)


async def send_everywhere(app: Any, notification: Notification, done: list[str]) -> list[str]:
    """Send through every registered notifier not in ``done``; the keys that have sent it, ``done`` included.

    A failure is logged and left for the next run (a permanent one, ``retry=False``, is not tried again)."""
    sent = list(done)
    for key, notifier in app.host.registry.notifiers.items():
        if key in sent:
            continue
        try:
            await notifier.send(notification)
        except Exception as exc:
            if getattr(exc, "retry", True):
                log.warning(
                    "%s %r via %s failed; trying again at the next run: %s",
                    notification.kind,
                    notification.subject_id,
                    key,
                    exc,
                )
                continue
            log.error("%s %r via %s failed for good: %s", notification.kind, notification.subject_id, key, exc)
        sent.append(key)
    return sent


# --- problems ----------------------------------------------------------------------------------


async def check_problems(app: Any, settings: Mapping[str, Any], now: dt.datetime | None = None) -> dict[str, int]:
    """Open, alert and close the problem episodes; returns how many alerts went out by code."""
    now = (now or utcnow()).astimezone(dt.UTC)  # in UTC, as stored: SQLite compares the times as text
    found: dict[tuple[str, int | None, str], dict[str, Any]] = {}
    found.update(await telephony_problems(app))
    found.update(await operator_problems(settings["operator_failures"]))
    found.update(await delivery_problems(app, settings["delivery_failing_minutes"], now))
    wait = {TELEPHONY_UNREACHABLE: dt.timedelta(minutes=settings["telephony_minutes"])}
    alerted: collections.Counter[str] = collections.Counter()
    open_rows = {(p.code, p.connection_id, p.subject): p for p in await Problem.filter(resolved_at=None)}
    for seen, episode in open_rows.items():
        if seen not in found:  # gone: the episode ends, and the next time it is seen is a new one
            episode.resolved_at = now
            await episode.save(update_fields=["resolved_at"])
    for key, details in found.items():
        code, connection_id, subject = key
        row = open_rows.get(key)
        if row is None:
            row = await Problem.create(
                code=code, connection_id=connection_id, subject=subject, details=details, opened_at=now
            )
        if row.alerted_at is not None or now - row.opened_at < wait.get(code, dt.timedelta(0)):
            continue
        if await alert(app, row, details, settings):
            alerted[code] += 1
    return dict(alerted)


async def alert(app: Any, row: Problem, details: dict[str, Any], settings: Mapping[str, Any]) -> bool:
    """Send one episode's alert (to the notifiers that have not sent it yet); True once all have."""
    connection = await Connection.get_or_none(id=row.connection_id) if row.connection_id else None
    if not row.recipients:
        row.recipients = list(
            await recipients(row.connection_id, digest=None, default_digest=settings["default_digest"])
        )
    public = app.settings.public_url.rstrip("/")
    notification = Notification(
        kind=PROBLEM,
        recipients=tuple(row.recipients),
        subject_id=str(row.connection_id) if row.connection_id else "",
        data={
            "connection": connection_data(connection) if connection else None,
            "problem": {"code": row.code, "details": details},
            "url": f"{public}/connections/{connection.id}" if connection else f"{public}/healthz",
        },
    )
    if row.recipients:
        row.notifiers = await send_everywhere(app, notification, row.notifiers)
    complete = set(app.host.registry.notifiers) <= set(row.notifiers) or not row.recipients
    if complete:
        row.alerted_at = utcnow()
    await row.save(update_fields=["recipients", "notifiers", "alerted_at"])
    if complete and row.recipients:
        log.info("problem %s %s alerted to %s", row.code, row.subject or row.connection_id, ", ".join(row.recipients))
    return complete and bool(row.recipients)


async def telephony_problems(app: Any) -> dict[tuple[str, int | None, str], dict[str, Any]]:
    """Telephony unreachable: every live worker says its backend is unhealthy (the /healthz heartbeat)."""
    try:
        states = await telephony_states(app.redis)
    except Exception as exc:  # Redis is down: that is not the telephony's problem, and the sweep will say so
        log.warning("could not read the workers' heartbeats: %s", exc)
        return {}
    if not states or any(state == "ok" for state in states):
        return {}
    return {(TELEPHONY_UNREACHABLE, None, ""): {"reason": states[0][:300], "workers": len(states)}}


async def operator_problems(failures: int) -> dict[tuple[str, int | None, str], dict[str, Any]]:
    """An operator number whose last ``failures`` dialled operator legs all went unanswered."""
    found: dict[tuple[str, int | None, str], dict[str, Any]] = {}
    numbers = await OperatorNumber.all().values_list("connection_id", "phone")
    for connection_id, phone in sorted(set(numbers)):
        rows = (
            await Attempt.filter(
                call__connection_id=connection_id, operator_number=phone, operator_status__not_isnull=True
            )
            .order_by("-started_at")
            .limit(failures)
            .values("operator_status", "reason", "started_at")
        )
        if len(rows) < failures or any(row["operator_status"] in ANSWERED for row in rows):
            continue
        found[OPERATOR_FAILING, connection_id, phone] = {
            "operator_number": phone,
            "failures": failures,
            "statuses": [row["operator_status"] for row in reversed(rows)],
            "last_reason": rows[0]["reason"],
            "since": rows[-1]["started_at"].isoformat(),
        }
    return found


async def delivery_problems(
    app: Any, minutes: int, now: dt.datetime
) -> dict[tuple[str, int | None, str], dict[str, Any]]:
    """A site's integration whose every delivery has failed for ``minutes`` (no success since)."""
    rows = (
        await Delivery.filter(created_at__gte=now - DELIVERY_LOOKBACK - dt.timedelta(minutes=minutes))
        .order_by("created_at", "id")
        .values("call__connection_id", "integration_key", "ok", "created_at", "status", "response")
    )
    streaks: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for row in rows:
        key = (row["call__connection_id"], row["integration_key"])
        if row["ok"]:
            streaks.pop(key, None)  # a success ends the failing streak
        else:
            streaks.setdefault(key, []).append(row)
    found: dict[tuple[str, int | None, str], dict[str, Any]] = {}
    integrations = app.host.registry.integrations
    for (connection_id, integration), failed in streaks.items():
        if now - failed[0]["created_at"] < dt.timedelta(minutes=minutes):
            continue
        last = failed[-1]
        found[DELIVERIES_FAILING, connection_id, integration] = {
            "integration": integration,
            "title": getattr(integrations.get(integration), "title", integration),
            "since": failed[0]["created_at"].isoformat(),
            "failures": len(failed),
            "last_status": last["status"],
            "last_error": (last["response"] or "")[:300],
        }
    return found


# --- digests -----------------------------------------------------------------------------------


def due_periods(now: dt.datetime, tz: ZoneInfo, hour: int) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """The periods whose digest is due at ``now``: ``(kind, start, end)`` in the site's time zone.

    Yesterday's, once today's digest hour has passed; last week's (Monday to Sunday), once
    Monday's has. A worker that was down at the hour catches up later the same day (week)."""
    local = now.astimezone(tz)
    today = local.date()
    due: list[tuple[str, dt.datetime, dt.datetime]] = []

    def midnight(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(0), tzinfo=tz)

    if local.hour >= hour:
        due.append(("daily", midnight(today - dt.timedelta(days=1)), midnight(today)))
    monday = today - dt.timedelta(days=today.weekday())
    if local >= midnight(monday).replace(hour=hour):
        due.append(("weekly", midnight(monday - dt.timedelta(days=7)), midnight(monday)))
    return due


async def figures(app: Any, connection_id: int, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """The digest's figures: the calls of leads that came in the period, as the dashboard counts them
    (handled: successful; lost: the Lost status), by lead source and by channel."""
    # in UTC, as stored: SQLite compares the times as text
    start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    rows = await Call.filter(connection_id=connection_id, created_at__gte=start, created_at__lt=end).values_list(
        "display_status", "lead__source", "lead__channel"
    )
    sources: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    channels: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for status, source, channel in rows:
        handled = int(status == DisplayStatus.SUCCESSFUL)
        for table, key in ((sources, source), (channels, channel)):
            table[key][0] += 1
            table[key][1] += handled
    lead_sources = app.host.registry.lead_sources
    return {
        "totals": {
            "calls": len(rows),
            "handled": sum(1 for row in rows if row[0] == DisplayStatus.SUCCESSFUL),
            "lost": sum(1 for row in rows if row[0] == DisplayStatus.LOST),
        },
        "by_source": [
            {"source": key, "title": getattr(lead_sources.get(key), "title", key), "calls": n, "handled": h}
            for key, (n, h) in sorted(sources.items(), key=lambda item: (-item[1][0], item[0]))
        ],
        "by_channel": [
            {"channel": key, "calls": n, "handled": h}
            for key, (n, h) in sorted(channels.items(), key=lambda item: (-item[1][0], item[0]))
        ],
    }


def dashboard_url(public_url: str, connection: Connection, start: dt.datetime, end: dt.datetime) -> str:
    query = urlencode(
        {
            "connection": connection.id,
            "date_from": start.date().isoformat(),
            "date_to": (end - dt.timedelta(days=1)).date().isoformat(),
            "tz": connection.timezone,
        }
    )
    return f"{public_url.rstrip('/')}/dashboard?{query}"


async def send_digests(app: Any, settings: Mapping[str, Any], now: dt.datetime | None = None) -> int:
    """Make and send every digest that is due and not sent yet; returns how many were completed."""
    now = (now or utcnow()).astimezone(dt.UTC)
    completed = 0
    for connection in await Connection.all().order_by("id"):
        for kind, start, end in due_periods(now, zone(connection.timezone), settings["digest_hour"]):
            if connection.created_at and connection.created_at >= end:
                continue  # the site did not exist yet
            row = await SentDigest.get_or_none(connection_id=connection.id, period=kind, period_start=start.date())
            if row is not None and row.sent_at is not None:
                continue
            if row is None:
                emails = await recipients(connection.id, digest=kind, default_digest=settings["default_digest"])
                if not emails:
                    continue  # nobody wants it (yet): looked at again at the next run
                row, _ = await SentDigest.get_or_create(
                    connection_id=connection.id,
                    period=kind,
                    period_start=start.date(),
                    defaults={"recipients": list(emails)},
                )
            notification = Notification(
                kind=DIGEST,
                recipients=tuple(row.recipients),
                subject_id=str(connection.id),
                data={
                    "connection": connection_data(connection),
                    "period": {"kind": kind, "from": start.isoformat(), "to": end.isoformat()},
                    **await figures(app, connection.id, start, end),
                    "dashboard_url": dashboard_url(app.settings.public_url, connection, start, end),
                },
            )
            row.notifiers = await send_everywhere(app, notification, row.notifiers)
            if set(app.host.registry.notifiers) <= set(row.notifiers):
                row.sent_at = utcnow()
                completed += 1
            await row.save(update_fields=["notifiers", "sent_at"])
    return completed
