"""Export of the filtered Calls table to .xlsx (SPEC S6): every field, visit behaviour included.

Rows are read in keyset batches as plain values (no model objects) and
appended to an openpyxl *write-only* workbook, which streams them to disk, so
memory stays flat however many calls are exported. The workbook is written in
a thread, batch by batch, so the web process keeps answering meanwhile; a
progress callback reports rows done for the progress bar.
"""
from __future__ import annotations

import asyncio
import functools
import datetime as dt
import json
import re

try:  # openpyxl streams through lxml when it is installed (a dependency of ours)
    from lxml.etree import Element, SubElement
except ImportError:  # pragma: no cover - _FastRows is then not installed
    Element = SubElement = None
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl import LXML
from openpyxl.styles import Font

from core.call_filters import all_keys_newest_first, filtered_calls, user_tags_of
from core.models import Attempt, Call, Connection, Department, Office
from web.admin.i18n import translate
from web.admin.labels import DIRECTION, STATUS

BATCH = 2000

CALL_FIELDS = ("id", "created_at", "connection_id", "display_status", "reason", "state", "first_direction",
               "attempts_made", "operator_number", "duration_seconds", "is_unique", "is_target", "finished_at",
               "recording")
LEAD_FIELDS = ("id", "source", "phone", "name", "office_id", "department_id", "preferred_at", "page_url",
               "referrer", "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term", "channel",
               "visitor_id", "visit", "displayed_phone", "extra", "client_ip")

#: column titles, in the order :meth:`Exporter._line` fills them
COLUMNS = [
    "Date", "Time", "Site", "Connection", "Office", "Department", "Call type", "App", "Client number",
    "Client name", "Operator number", "Direction", "Duration, s", "Status", "Reason", "Attempts", "Unique",
    "Target", "User tags", "Channel", "UTM source", "UTM medium", "UTM campaign", "UTM content", "UTM term",
    "Page", "Referrer", "Preferred time", "Pages viewed", "Seconds on site", "Trigger", "Rule",
    "Other visit data", "Visitor id", "Number shown on the site", "Client IP", "Attempt chain", "Finished",
    "Recording", "Source-specific data", "Call id", "Lead id",
]
VISIT_COLUMNS = ("pages", "seconds_on_site", "trigger", "rule")


def _yes_no(value: bool | None) -> str | None:
    return None if value is None else ("yes" if value else "no")


def _naive(moment: dt.datetime | None) -> dt.datetime | None:
    """Excel has no time zones: local wall-clock time, as shown in the admin."""
    return moment.replace(tzinfo=None) if moment is not None else None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if value else ""


#: characters Excel would take as the start of a formula in text from visitors (CSV/XLSX injection)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # XML forbids these; visitors can send them


def _cell_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        if not value:
            return None  # openpyxl writes no cell at all for None: empty fields cost nothing
        if _CONTROL.search(value):
            value = _CONTROL.sub("", value)
        if value.startswith(_FORMULA_START) and not value.lstrip("+").isdigit():
            return "'" + value
    return value


def _local(moment: dt.datetime | None, zone: ZoneInfo) -> dt.datetime | None:
    return moment.astimezone(zone) if moment else None


class _FastRows:
    """Rows of plain values straight into openpyxl's write-only stream.

    openpyxl's write-only sheet turns every value into a Cell and writes it
    element by element (about 10 us a cell); for plain values -- text, numbers,
    dates -- this builds each row as one lxml element and hands it to the same
    incremental writer, which is several times faster. The workbook, its
    styles, the zip and the streaming stay openpyxl's. It hooks two internals
    of ``WriteOnlyWorksheet`` (``_values_to_row`` and the writer's
    ``write_row``); when they are not there (another openpyxl), nothing is
    installed and rows go the ordinary way.
    """

    def __init__(self, sheet) -> None:
        from openpyxl.utils import get_column_letter
        from openpyxl.utils.datetime import to_excel

        self.to_excel = to_excel
        self.epoch = sheet.parent.epoch
        # the number formats openpyxl itself gives dates and times, registered in the workbook's styles
        self.date_style = str(WriteOnlyCell(sheet, value=dt.date(2000, 1, 1)).style_id)
        self.datetime_style = str(WriteOnlyCell(sheet, value=dt.datetime(2000, 1, 1)).style_id)
        self.letters = [get_column_letter(index) for index in range(1, 16385)]

    @classmethod
    def install(cls, sheet) -> _FastRows | None:
        if not LXML or getattr(sheet, "_writer", None) is None or not hasattr(sheet._writer, "write_row") \
                or not hasattr(sheet, "_values_to_row"):
            return None
        rows = cls(sheet)
        sheet._values_to_row = lambda values, row_index: values
        sheet._writer.write_row = rows.write_row
        return rows

    def write_row(self, xf, values, row_index: int) -> None:
        row = Element("row", r=str(row_index))
        letters, suffix = self.letters, str(row_index)
        for column, value in enumerate(values):
            if value is None:
                continue
            ref = letters[column] + suffix
            if isinstance(value, str):
                cell = SubElement(row, "c", r=ref, t="inlineStr")
                text = SubElement(SubElement(cell, "is"), "t")
                if value != value.strip():
                    text.set(XML_SPACE, "preserve")
                text.text = value
            elif isinstance(value, bool):
                SubElement(SubElement(row, "c", r=ref, t="b"), "v").text = "1" if value else "0"
            elif isinstance(value, (int, float)):
                SubElement(SubElement(row, "c", r=ref, t="n"), "v").text = repr(value)
            elif isinstance(value, (dt.datetime, dt.date)):
                style = self.datetime_style if isinstance(value, dt.datetime) else self.date_style
                serial = self.to_excel(value, self.epoch)
                SubElement(SubElement(row, "c", r=ref, t="n", s=style), "v").text = repr(serial)
            else:
                text = SubElement(SubElement(SubElement(row, "c", r=ref, t="inlineStr"), "is"), "t")
                text.text = str(value)
        xf.write(row)


class Exporter:
    def __init__(self, locale: str = "ru") -> None:
        self.locale = locale
        self.titles = [translate(title, locale) for title in COLUMNS]
        self._tr = functools.lru_cache(maxsize=4096)(lambda message: translate(message, locale) if message else None)

    def _status(self, status: str) -> str:
        return self._tr(STATUS.get(status, status))

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
        fast_rows = _FastRows.install(sheet)
        done = 0
        writing: asyncio.Future | None = None
        fields = [*CALL_FIELDS, *(f"lead__{name}" for name in LEAD_FIELDS)]
        async for keys in all_keys_newest_first(filters, visible, batch=BATCH):
            order = {str(key[1]): index for index, key in enumerate(keys)}
            rows = await Call.filter(id__in=[key[1] for key in keys]).values(*fields)
            rows.sort(key=lambda row: order[str(row["id"])])
            ids = [row["id"] for row in rows]
            tags = await user_tags_of(ids)
            chains: dict[str, list[str]] = {}
            for attempt in await Attempt.filter(call_id__in=ids).order_by("number").values(
                    "call_id", "number", "started_at", "operator_status", "client_status", "duration_seconds",
                    "display_status", "reason"):
                chains.setdefault(str(attempt["call_id"]), []).append(attempt)
            lines = [self._line(row, connections, zones, offices, departments, tags, chains) for row in rows]
            if writing is not None:
                await writing
            # the sheet is written in a thread while the next batch is read from the database
            writing = asyncio.ensure_future(asyncio.to_thread(self._append, sheet, lines))
            done += len(rows)
            if progress:
                await progress(done, total)
        if writing is not None:
            await writing
        await asyncio.to_thread(workbook.save, path)
        return done

    @staticmethod
    def _append(sheet, lines: list[list[Any]]) -> None:
        for line in lines:
            sheet.append(line)

    def _line(self, row, connections, zones, offices, departments, tags, chains) -> list[Any]:
        """One row of the sheet. Text that came from visitors goes through :func:`_cell_value`
        (control characters, formulas); empty values become None, which costs no cell."""
        connection = connections.get(row["connection_id"])
        zone = zones.get(row["connection_id"]) or ZoneInfo("Europe/Moscow")
        call_id = str(row["id"])
        at = row["created_at"].astimezone(zone)
        visit = row["lead__visit"] or {}
        text = _cell_value
        return [
            at.date(), at.strftime("%H:%M:%S"), connection.domain if connection else None,
            text(connection.name) if connection else None,
            text(offices.get(row["lead__office_id"])), text(departments.get(row["lead__department_id"])),
            self._tr("Callback"), row["lead__source"], row["lead__phone"], text(row["lead__name"]),
            row["operator_number"] or None, self._tr(DIRECTION.get(row["first_direction"], row["first_direction"])),
            row["duration_seconds"], self._status(row["display_status"]), self._tr(row["reason"]),
            row["attempts_made"], _yes_no(row["is_unique"]), _yes_no(row["is_target"]),
            text(", ".join(tags.get(call_id, ()))), row["lead__channel"],
            text(row["lead__utm_source"]), text(row["lead__utm_medium"]), text(row["lead__utm_campaign"]),
            text(row["lead__utm_content"]), text(row["lead__utm_term"]), text(row["lead__page_url"]),
            text(row["lead__referrer"]), _naive(_local(row["lead__preferred_at"], zone)),
            text(visit.get("pages")), text(visit.get("seconds_on_site")), text(visit.get("trigger")),
            text(visit.get("rule")), text(_json({k: v for k, v in visit.items() if k not in VISIT_COLUMNS})),
            text(row["lead__visitor_id"]), text(row["lead__displayed_phone"]), row["lead__client_ip"] or None,
            "\n".join(self._attempt_text(a, zone) for a in chains.get(call_id, ())) or None,
            _naive(_local(row["finished_at"], zone)), "yes" if row["recording"] else None,
            text(_json(row["lead__extra"])), call_id, str(row["lead__id"]),
        ]

    def _attempt_text(self, attempt: dict[str, Any], zone: ZoneInfo) -> str:
        pair = "-".join("—" if s is None else str(s) for s in (attempt["operator_status"], attempt["client_status"]))
        started = attempt["started_at"].astimezone(zone).strftime("%d.%m %H:%M:%S") if attempt["started_at"] else ""
        reason = translate(attempt["reason"], self.locale) if attempt["reason"] else ""
        return (f"{attempt['number']}. {started} {pair} {self._status(attempt['display_status'])}, "
                f"{attempt['duration_seconds']} s{': ' + reason if reason else ''}")
