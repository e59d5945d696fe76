"""From a :class:`~perezvon.api.Notification` to a Telegram message: HTML text and an inline keyboard.

Everything a visitor typed reaches these texts; every value is escaped for Telegram's HTML
``parse_mode`` (``&``, ``<``, ``>`` and quotes) and cut to a sane length, so no value can open a tag
or push the message past Telegram's 4096 characters. Message ids are English, translated
through the plugin's own catalog (``locales/ru``); call statuses are the core's message ids.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime

from perezvon.api import DEFAULT_LOCALE, LOCALES, compiled_translations, gettext

LOCALE_DIR = Path(__file__).with_name("locales")
#: Telegram's limit of one message's text, after entities are parsed
TEXT_LIMIT = 4096
VALUE_LIMIT = 200

CALL_SUCCEEDED = "call_succeeded"
CALL_FAILED = "call_failed"
LEAD_DELAYED = "lead_delayed"
LEAD_CREATED = "lead_created"
DIGEST = "digest"
PROBLEM = "problem"
#: the kinds this notifier renders; any other (an activation link, a site snippet) is for e-mail only
KINDS = (CALL_SUCCEEDED, CALL_FAILED, LEAD_DELAYED, LEAD_CREATED, DIGEST, PROBLEM)


def N_(message: str) -> str:
    return message


PROBLEMS = {
    "telephony_unreachable": N_("The telephony is unreachable"),
    "operator_failing": N_("An operator number keeps failing"),
    "deliveries_failing": N_("Deliveries to an integration keep failing"),
    "recording_quota": N_("The recordings are near their quota"),
}
PERIODS = {"daily": N_("Daily report"), "weekly": N_("Weekly report")}


def t(message: str, locale: str) -> str:
    if locale == "en":
        return message
    return compiled_translations(LOCALE_DIR, locale).gettext(message)


def h(value: Any, limit: int = VALUE_LIMIT) -> str:
    """A value as Telegram HTML text: one line, cut, escaped."""
    text = " ".join(str("" if value is None else value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text, quote=True)


def safe_url(value: Any) -> str:
    """An http(s) URL, or "" (no ``javascript:`` or ``tg:`` link from a visitor's data)."""
    url = str(value or "").strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return url if parts.scheme in ("http", "https") and parts.netloc and len(url) <= 2048 else ""


def _zone(name: Any) -> ZoneInfo:
    try:
        return ZoneInfo(str(name or "Europe/Moscow"))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _time(value: Any, tz: ZoneInfo, locale: str) -> str:
    try:
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    except ValueError:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return format_datetime(moment.astimezone(tz), "d MMM, HH:mm", locale=locale)


class Rendered:
    def __init__(self, text: str, button: tuple[str, str] | None) -> None:
        self.text = text
        self.button = button

    def reply_markup(self) -> dict[str, Any] | None:
        if self.button is None or not self.button[1]:
            return None
        return {"inline_keyboard": [[{"text": self.button[0], "url": self.button[1]}]]}


def render(kind: str, data: Mapping[str, Any], locale: str, admin_url: str) -> Rendered:
    """The message of one notification in ``locale`` (Russian unless "en")."""
    locale = locale if locale in LOCALES else DEFAULT_LOCALE
    build = {
        CALL_SUCCEEDED: _call,
        CALL_FAILED: _call,
        LEAD_DELAYED: _call,
        LEAD_CREATED: _call,
        DIGEST: _digest,
        PROBLEM: _problem,
    }[kind]
    lines, button = build(kind, data, locale, admin_url.rstrip("/"))
    text = "\n".join(lines)
    if len(text) > TEXT_LIMIT:  # only a pathological chain gets here: cut at a line, never inside a tag
        kept: list[str] = []
        for line in lines:
            if sum(len(x) + 1 for x in kept) + len(line) > TEXT_LIMIT - 10:
                break
            kept.append(line)
        text = "\n".join([*kept, "…"])
    return Rendered(text, button)


def _site(connection: Mapping[str, Any] | None) -> str:
    connection = connection or {}
    return h(connection.get("name") or connection.get("domain") or "")


def _call(kind: str, data: Mapping[str, Any], locale: str, admin_url: str) -> tuple[list[str], tuple[str, str] | None]:
    connection, lead = data.get("connection") or {}, data.get("lead") or {}
    call = data.get("call") or {}
    tz = _zone(connection.get("timezone"))
    heading = {
        CALL_SUCCEEDED: "✅ " + t("The callback took place", locale),
        CALL_FAILED: "❌ " + t("The callback did not take place", locale),
        LEAD_DELAYED: "🕒 " + t("New lead: nobody calls it automatically", locale),
        LEAD_CREATED: "📞 " + t("New lead", locale),
    }[kind]
    lines = [f"<b>{h(heading)}</b>", f"{h(t('Site', locale))}: {_site(connection)}"]
    client = " ".join(x for x in (h(lead.get("name")), h(lead.get("phone"), 40)) if x)
    if client:
        lines.append(f"{h(t('Client', locale))}: {client}")
    for label, key in ((N_("Office"), "office"), (N_("Department"), "department")):
        named = data.get(key) or {}
        if named.get("name"):
            lines.append(f"{h(t(label, locale))}: {h(named['name'])}")
    if lead.get("created_at"):
        lines.append(f"{h(t('Lead received', locale))}: {_time(lead['created_at'], tz, locale)}")
    page = safe_url(lead.get("page_url"))
    if page:
        lines.append(f'{h(t("Page", locale))}: <a href="{html.escape(page, quote=True)}">{h(page, 80)}</a>')
    if kind == CALL_SUCCEEDED and call.get("duration_seconds"):
        lines.append(f"{h(t('Talk time', locale))}: {int(call['duration_seconds'])} {h(t('s', locale))}")
    if kind == LEAD_DELAYED:
        reason = data.get("reason")
        default = N_("The site's delay before the call is over 59 s: please call the client yourself.")
        lines.append(h(gettext(str(reason), locale)) if reason else h(t(default, locale)))
    if kind == CALL_FAILED:
        if call.get("reason"):
            lines.append(f"{h(t('Why', locale))}: {h(gettext(str(call['reason']), locale))}")
        attempts = sorted(data.get("attempts") or [], key=lambda a: a.get("number") or 0)
        if attempts:
            lines.append("")
            lines.append(f"<b>{h(t('Attempt chain', locale))}</b>:")
        for attempt in attempts:
            status = gettext(str(attempt.get("display_status") or ""), locale)
            line = (
                f"{int(attempt.get('number') or 0)}. {_time(attempt.get('started_at'), tz, locale)} — "
                f"{h(t('operator', locale))} {h(attempt.get('operator_status') or '—')}, "
                f"{h(t('client', locale))} {h(attempt.get('client_status') or '—')}"
            )
            if status:
                line += f" — {h(status)}"
            if attempt.get("reason"):
                line += f": {h(gettext(str(attempt['reason']), locale))}"
            lines.append(line)
    call_id = call.get("id")
    button = (t("Open in the admin", locale), safe_url(f"{admin_url}/calls/{call_id}")) if call_id else None
    return lines, button


def _digest(
    kind: str, data: Mapping[str, Any], locale: str, admin_url: str
) -> tuple[list[str], tuple[str, str] | None]:
    period = data.get("period") or {}
    connection = data.get("connection") or {}
    tz = _zone(connection.get("timezone"))
    title = t(PERIODS.get(str(period.get("kind")), N_("Report")), locale)
    span = " — ".join(x for x in (_time(period.get("from"), tz, locale), _time(period.get("to"), tz, locale)) if x)
    totals = data.get("totals") or {}
    lines = [f"📊 <b>{h(title)}</b>", f"{h(t('Site', locale))}: {_site(connection)}"]
    if span:
        lines.append(h(span))
    lines.append(
        f"{h(t('Calls', locale))}: <b>{int(totals.get('calls') or 0)}</b>, "
        f"{h(t('handled', locale))}: {int(totals.get('handled') or 0)}, "
        f"{h(t('lost', locale))}: {int(totals.get('lost') or 0)}"
    )
    for heading, rows, key in (
        (N_("By source"), data.get("by_source") or [], "title"),
        (N_("By channel"), data.get("by_channel") or [], "channel"),
    ):
        if rows:
            lines.append("")
            lines.append(f"<b>{h(t(heading, locale))}</b>:")
        for row in rows[:20]:
            lines.append(f"• {h(row.get(key))}: {int(row.get('calls') or 0)} / {int(row.get('handled') or 0)}")
    button = (t("Open the dashboard", locale), safe_url(data.get("dashboard_url")))
    return lines, button if button[1] else None


def _problem(
    kind: str, data: Mapping[str, Any], locale: str, admin_url: str
) -> tuple[list[str], tuple[str, str] | None]:
    problem = data.get("problem") or {}
    code = str(problem.get("code") or "")
    lines = [f"⚠️ <b>{h(t(PROBLEMS.get(code, N_('A problem needs attention')), locale))}</b>"]
    if data.get("connection"):
        lines.append(f"{h(t('Site', locale))}: {_site(data['connection'])}")
    details = problem.get("details") or {}
    if isinstance(details, Mapping):
        for key, value in list(details.items())[:10]:
            lines.append(f"{h(key, 60)}: {h(value)}")
    button = (t("Open in the admin", locale), safe_url(data.get("url")))
    return lines, button if button[1] else None
