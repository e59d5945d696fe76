"""Export of the filtered Calls table to .xlsx (SPEC S6): every field, visit behaviour included.

Rows are read in keyset batches as plain values (no model objects) and
appended to an openpyxl *write-only* workbook, which streams them to disk, so
memory stays flat however many calls are exported. The workbook is written in
a thread, batch by batch, so the web process keeps answering meanwhile; a
progress callback reports rows done for the progress bar.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from core.call_filters import filtered_calls, user_tags_of
from core.models import Attempt, Connection, Department, Office
from web.admin.i18n import translate
from web.admin.labels import STATUS

BATCH = 2000

CALL_FIELDS = ("id", "created_at", "connection_id", "display_status", "reason", "state", "first_direction",
               "attempts_made", "operator_number", "duration_seconds", "is_unique", "is_target", "finished_at",
               "recording")
LEAD_FIELDS = ("id", "source", "phone", "name", "office_id", "department_id", "preferred_at", "page_url",
               "referrer", "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term", "channel",
               "visitor_id", "visit", "displayed_phone", "extra", "client_ip")

#: (column title, how to get it from the row dict)
COLUMNS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("Date", lambda r: r["at"].date()),
    ("Time", lambda r: r["at"].strftime("%H:%M:%S")),
    ("Site", lambda r: r["site"]),
    ("Connection", lambda r: r["connection"]),
    ("Office", lambda r: r["office"]),
    ("Department", lambda r: r["department"]),
    ("Call type", lambda r: r["call_type"]),
    ("App", lambda r: r["lead__source"]),
    ("Client number", lambda r: r["lead__phone"]),
    ("Client name", lambda r: r["lead__name"]),
    ("Operator number", lambda r: r["operator_number"]),
    ("Direction", lambda r: r["first_direction"]),
    ("Duration, s", lambda r: r["duration_seconds"]),
    ("Status", lambda r: r["status"]),
    ("Reason", lambda r: r["reason"]),
    ("Attempts", lambda r: r["attempts_made"]),
    ("Unique", lambda r: _yes_no(r["is_unique"])),
    ("Target", lambda r: _yes_no(r["is_target"])),
    ("User tags", lambda r: ", ".join(r["tags"])),
    ("Channel", lambda r: r["lead__channel"]),
    ("UTM source", lambda r: r["lead__utm_source"]),
    ("UTM medium", lambda r: r["lead__utm_medium"]),
    ("UTM campaign", lambda r: r["lead__utm_campaign"]),
    ("UTM content", lambda r: r["lead__utm_content"]),
    ("UTM term", lambda r: r["lead__utm_term"]),
    ("Page", lambda r: r["lead__page_url"]),
    ("Referrer", lambda r: r["lead__referrer"]),
    ("Preferred time", lambda r: r["preferred"]),
    ("Pages viewed", lambda r: r["visit"].get("pages")),
    ("Seconds on site", lambda r: r["visit"].get("seconds_on_site")),
    ("Trigger", lambda r: r["visit"].get("trigger")),
    ("Rule", lambda r: r["visit"].get("rule")),
    ("Other visit data", lambda r: _json({k: v for k, v in r["visit"].items()
                                          if k not in ("pages", "seconds_on_site", "trigger", "rule")})),
    ("Visitor id", lambda r: r["lead__visitor_id"]),
    ("Number shown on the site", lambda r: r["lead__displayed_phone"]),
    ("Client IP", lambda r: r["lead__client_ip"]),
    ("Attempt chain", lambda r: r["chain"]),
    ("Finished", lambda r: r["finished"]),
    ("Recording", lambda r: "yes" if r["recording"] else ""),
    ("Source-specific data", lambda r: _json(r["lead__extra"])),
    ("Call id", lambda r: str(r["id"])),
    ("Lead id", lambda r: str(r["lead__id"])),
]


def _yes_no(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if value else ""


#: characters Excel would take as the start of a formula in text from visitors (CSV/XLSX injection)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell_value(value: Any) -> Any:
    if isinstance(value, str):
        value = "".join(ch for ch in value if ch in "\t\n\r" or ord(ch) >= 32)  # XML forbids control chars
        if value.startswith(_FORMULA_START) and not value.lstrip("+").isdigit():
            return "'" + value
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)
    return value


def _local(moment: dt.datetime | None, zone: ZoneInfo) -> dt.datetime | None:
    return moment.astimezone(zone) if moment else None


class Exporter:
    def __init__(self, locale: str = "ru") -> None:
        self.locale = locale
        self.titles = [translate(title, locale) for title, _ in COLUMNS]

    def _status(self, status: str) -> str:
        return translate(STATUS.get(status, status), self.locale)

    async def write(self, filters: dict[str, Any], visible: list[int] | None, path: Path,
                    progress: Callable[[int, int], Awaitable[None]] | None = None) -> int:
        query = filtered_calls(filters, visible)
        total = await query.count()
        if progress:
            await progress(0, total)
        connections = {c.id: c for c in await Connection.all()} if visible is None else {
            c.id: c for c in await Connection.filter(id__in=visible)}
        zones = {cid: ZoneInfo(c.timezone) for cid, c in connections.items()}
        offices = dict(await Office.filter(connection_id__in=list(connections)).values_list("id", "name"))
        departments = dict(await Department.filter(connection_id__in=list(connections)).values_list("id", "name"))
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet(translate("Calls", self.locale))
        sheet.freeze_panes = "A2"
        header = []
        for title in self.titles:
            cell = WriteOnlyCell(sheet, value=title)
            cell.font = Font(bold=True)
            header.append(cell)
        sheet.append(header)
        done = 0
        cursor: tuple[dt.datetime, Any] | None = None
        fields = [*CALL_FIELDS, *(f"lead__{name}" for name in LEAD_FIELDS)]
        from tortoise.expressions import Q

        while True:
            batch_query = query
            if cursor:
                batch_query = batch_query.filter(Q(created_at__lt=cursor[0]) | Q(created_at=cursor[0],
                                                                                 id__lt=cursor[1]))
            rows = await batch_query.order_by("-created_at", "-id").limit(BATCH).values(*fields)
            if not rows:
                break
            cursor = (rows[-1]["created_at"], rows[-1]["id"])
            ids = [row["id"] for row in rows]
            tags = await user_tags_of(ids)
            chains: dict[str, list[str]] = {}
            for attempt in await Attempt.filter(call_id__in=ids).order_by("number").values(
                    "call_id", "number", "started_at", "operator_status", "client_status", "duration_seconds",
                    "display_status", "reason"):
                chains.setdefault(str(attempt["call_id"]), []).append(attempt)
            lines = [self._line(row, connections, zones, offices, departments, tags, chains) for row in rows]
            await asyncio.to_thread(self._append, sheet, lines)
            done += len(rows)
            if progress:
                await progress(done, total)
            if len(rows) < BATCH:
                break
        await asyncio.to_thread(workbook.save, path)
        return done

    @staticmethod
    def _append(sheet, lines: list[list[Any]]) -> None:
        for line in lines:
            sheet.append(line)

    def _line(self, row, connections, zones, offices, departments, tags, chains) -> list[Any]:
        connection = connections.get(row["connection_id"])
        zone = zones.get(row["connection_id"], ZoneInfo("Europe/Moscow"))
        chain = chains.get(str(row["id"]), [])
        row.update(
            at=row["created_at"].astimezone(zone),
            site=connection.domain if connection else "", connection=connection.name if connection else "",
            office=offices.get(row["lead__office_id"], ""), department=departments.get(row["lead__department_id"], ""),
            call_type=translate("Callback", self.locale), status=self._status(row["display_status"]),
            reason=translate(row["reason"], self.locale) if row["reason"] else "",
            tags=tags.get(str(row["id"]), []), visit=row["lead__visit"] or {},
            preferred=_local(row["lead__preferred_at"], zone), finished=_local(row["finished_at"], zone),
            chain="\n".join(self._attempt_text(a, zone) for a in chain),
        )
        return [_cell_value(get(row)) for _, get in COLUMNS]

    def _attempt_text(self, attempt: dict[str, Any], zone: ZoneInfo) -> str:
        pair = "-".join("—" if s is None else str(s) for s in (attempt["operator_status"], attempt["client_status"]))
        started = attempt["started_at"].astimezone(zone).strftime("%d.%m %H:%M:%S") if attempt["started_at"] else ""
        reason = translate(attempt["reason"], self.locale) if attempt["reason"] else ""
        return (f"{attempt['number']}. {started} {pair} {self._status(attempt['display_status'])}, "
                f"{attempt['duration_seconds']} s{': ' + reason if reason else ''}")
