"""Export of the filtered Calls table to .xlsx (docs/admin.md#export): every field, visit behaviour included.

Rows are read in keyset batches, each connection in its index order and
merged newest first, as the driver's plain rows (no model objects, no
tortoise conversions), and appended to an openpyxl *write-only* workbook,
which streams them to disk, so memory stays flat however many calls are
exported. The workbook is written in
a thread, batch by batch, so the web process keeps answering meanwhile; a
progress callback reports rows done for the progress bar.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import heapq
import json
import re
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import LXML, Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.worksheet._writer import WorksheetWriter
from openpyxl.xml.constants import SHEET_MAIN_NS
from openpyxl.xml.functions import xmlfile

from perezvon.core.call_filters import _connections_to_scan, cursor_after, filtered_calls, newest_first
from perezvon.core.masking import mask_phone, mask_value
from perezvon.core.models import Attempt, CallNote, CallTag, Connection, Department, Office
from perezvon.web.admin.i18n import translate
from perezvon.web.admin.labels import CHANNEL, DIRECTION, STATUS, TRIGGER

BATCH = 2000

CALL_FIELDS = (
    "id",
    "created_at",
    "connection_id",
    "display_status",
    "reason",
    "state",
    "first_direction",
    "attempts_made",
    "operator_number",
    "duration_seconds",
    "is_unique",
    "is_target",
    "finished_at",
    "recording",
)
LEAD_FIELDS = (
    "id",
    "source",
    "phone",
    "name",
    "office_id",
    "department_id",
    "preferred_at",
    "page_url",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "channel",
    "visitor_id",
    "visit",
    "displayed_phone",
    "extra",
    "client_ip",
)

#: column titles, in the order :meth:`Exporter._line` fills them
COLUMNS = [
    "Date",
    "Time",
    "Site",
    "Connection",
    "Office",
    "Department",
    "Call type",
    "App",
    "Client number",
    "Client name",
    "Operator number",
    "Direction",
    "Duration, s",
    "Status",
    "Reason",
    "Attempts",
    "Unique",
    "Target",
    "User tags",
    "Channel",
    "UTM source",
    "UTM medium",
    "UTM campaign",
    "UTM content",
    "UTM term",
    "Page",
    "Referrer",
    "Preferred time",
    "Pages viewed",
    "Seconds on site",
    "Trigger",
    "Rule",
    "Other visit data",
    "Visitor id",
    "Number shown on the site",
    "Client IP",
    "Attempt chain",
    "Finished",
    "Recording",
    "Source-specific data",
    "Call id",
    "Lead id",
    "Notes",
]
VISIT_COLUMNS = ("pages", "seconds_on_site", "trigger", "rule")
_VISIT_KEYS = frozenset(VISIT_COLUMNS)


def _naive(moment: dt.datetime | None) -> dt.datetime | None:
    """Excel has no time zones: local wall-clock time, as shown in the admin."""
    return moment.replace(tzinfo=None) if moment is not None else None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if value else ""


#: characters Excel would take as the start of a formula in text from visitors (CSV/XLSX injection)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


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
    """``moment`` in ``zone``; a time stored before the intake checked its range (year 1 at +14:00) has no
    place in the zone: the cell stays empty rather than failing the export for everyone."""
    if not moment:
        return None
    try:
        return moment.astimezone(zone)
    except OverflowError:
        return None


#: Excel's day 0 (the 1900 date system, as openpyxl writes by default); our dates are all after 1900-03-01
_EXCEL_EPOCH = dt.datetime(1899, 12, 30)
_EXCEL_EPOCH_ORDINAL = _EXCEL_EPOCH.toordinal()
_DAY = dt.timedelta(days=1)


def _xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _FastRows:
    """Rows of plain values straight into openpyxl's write-only stream.

    openpyxl's write-only sheet turns every value into a Cell and writes it
    element by element (about 10 us a cell). For plain values -- text,
    numbers, dates -- this renders each row as one XML string and writes it
    into the sheet's stream (:class:`_RawRowsWriter`) right after lxml has
    flushed what it holds, so the row lands between ``<sheetData>`` and
    ``</sheetData>`` as if lxml had written it; a row then costs one string
    join instead of an lxml element per cell. The workbook, its styles, the
    zip and the streaming stay openpyxl's. It hooks internals of openpyxl's
    write-only sheet (``_writer``, ``_values_to_row``, the writer's
    ``write_row`` and ``get_stream``); when they are not there (another
    openpyxl, or no lxml), nothing is installed and rows go the ordinary,
    slower way.
    """

    def __init__(self, sheet) -> None:
        # the number formats openpyxl itself gives dates and times, registered in the workbook's styles
        self.date_style = str(WriteOnlyCell(sheet, value=dt.date(2000, 1, 1)).style_id)
        self.datetime_style = str(WriteOnlyCell(sheet, value=dt.datetime(2000, 1, 1)).style_id)
        if sheet.parent.epoch != _EXCEL_EPOCH:
            raise ValueError("only the 1900 date system is written directly")
        from openpyxl.utils import get_column_letter

        self.letters = [get_column_letter(index) for index in range(1, 16385)]

    @classmethod
    def install(cls, sheet, header: list) -> _FastRows | None:
        """Append ``header`` (styled cells, the ordinary way), then take over the rows after it."""
        if (
            not LXML
            or getattr(sheet, "_writer", False) is not None
            or not hasattr(WorksheetWriter, "write_row")
            or not hasattr(sheet, "_values_to_row")
        ):
            sheet.append(header)
            return None
        try:
            rows = cls(sheet)
        except ValueError:
            sheet.append(header)
            return None
        sheet._writer = _RawRowsWriter(sheet)
        sheet._writer.write_top()
        sheet.append(header)
        sheet._values_to_row = lambda values, row_index: values
        sheet._writer.write_row = rows.write_row
        rows.file = sheet._writer.file
        return rows

    def render(self, values, row_index: int) -> str:
        """The ``<row>`` element of ``values`` as XML text (None values write no cell)."""
        letters, suffix = self.letters, str(row_index)
        parts = [f'<row r="{suffix}">']
        add = parts.append
        for column, value in enumerate(values):
            if value is None:
                continue
            kind = type(value)
            if kind is str:
                add(
                    f'<c r="{letters[column]}{suffix}" t="inlineStr"><is><t xml:space="preserve">'
                    f"{_xml_text(value)}</t></is></c>"
                )
            elif kind is int or kind is float:
                add(f'<c r="{letters[column]}{suffix}" t="n"><v>{value!r}</v></c>')
            elif kind is bool:
                add(f'<c r="{letters[column]}{suffix}" t="b"><v>{1 if value else 0}</v></c>')
            elif kind is dt.datetime:
                serial = (value.replace(tzinfo=None) - _EXCEL_EPOCH) / _DAY
                add(f'<c r="{letters[column]}{suffix}" t="n" s="{self.datetime_style}"><v>{serial!r}</v></c>')
            elif kind is dt.date:
                add(
                    f'<c r="{letters[column]}{suffix}" t="n" s="{self.date_style}">'
                    f"<v>{value.toordinal() - _EXCEL_EPOCH_ORDINAL}</v></c>"
                )
            else:
                add(
                    f'<c r="{letters[column]}{suffix}" t="inlineStr"><is><t xml:space="preserve">'
                    f"{_xml_text(str(value))}</t></is></c>"
                )
        add("</row>")
        text = "".join(parts)
        if _CONTROL.search(text):  # XML 1.0 forbids these; visitor text is already cleaned, this is the net
            text = _CONTROL.sub("", text)
        return text

    def write_row(self, xf, values, row_index: int) -> None:
        xf.flush()  # whatever lxml holds goes to the file before this row
        self.file.write(self.render(values, row_index).encode())


class _RawRowsWriter(WorksheetWriter):
    """openpyxl's worksheet writer, streaming through lxml into a file object this module holds (openpyxl
    gives lxml the temp file's name), so that ready rows can be written to it between lxml's flushes."""

    def get_stream(self):
        self.file = open(self.out, "wb")  # noqa: SIM115 -- closed by the `with` below; write_rows writes to it
        with self.file, xmlfile(self.file) as xf, xf.element("worksheet", xmlns=SHEET_MAIN_NS):
            try:
                while True:
                    element = yield
                    if element is True:
                        yield xf
                    elif element is not None:
                        xf.write(element)
            except GeneratorExit:
                pass


def _prepared_sql(query) -> tuple[Any, str, list[Any]]:
    """The database client, SQL and parameters tortoise would run for ``query`` (a values() queryset)."""
    query._choose_db_if_not_chosen()
    query._make_query()
    sql, params = query.query.get_parameterized_sql()
    return query._db, sql, params


async def _raw_rows(query) -> list[Any]:
    """Rows of a values() queryset as the driver returns them -- by position, without tortoise's per-value
    conversions (which were a third of the export's time); :class:`_Convert` does the few that matter."""
    client, sql, params = _prepared_sql(query)
    _, rows = await client.execute_query(sql, params)
    if rows and isinstance(rows[0], dict):  # drivers with dict rows (psycopg)
        rows = [tuple(row.values()) for row in rows]
    return rows


def _moment(value: Any) -> dt.datetime | None:
    """A stored time as an aware datetime: SQLite gives tortoise's ISO text, PostgreSQL a datetime."""
    if value is None or isinstance(value, dt.datetime):
        return value
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:  # not a time at all: shown as empty, the other cells of the row still are
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _json_value(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


#: the columns read for each call, in this order (positions below)
SELECT = [*CALL_FIELDS, *(f"lead__{name}" for name in LEAD_FIELDS)]
_AT = {name: index for index, name in enumerate(SELECT)}


class Exporter:
    """Every cell a person reads is in the exporting user's language: codes (status, channel, app,
    direction, yes/no) go through lookup dicts built here once, not through the catalog per cell."""

    def __init__(self, locale: str = "ru", app_titles: dict[str, str] | None = None) -> None:
        self.locale = locale
        self.titles = [translate(title, locale) for title in COLUMNS]
        self._tr = functools.lru_cache(maxsize=4096)(lambda message: translate(message, locale) if message else None)
        #: the app (lead source) by its code: the user's words, a code nobody named stays as it is
        self.apps = dict(app_titles or {})
        self.channels = {code: translate(label, locale) for code, label in CHANNEL.items()}
        self.triggers = {code: translate(label, locale) for code, label in TRIGGER.items()}
        self.yes_no = {True: translate("Yes", locale), False: translate("No", locale), None: None}
        # the unit from the catalog (CLDR's short unit: "с", "sec"), not babel.units: loading Babel's
        # locale data for it grew the export's peak memory by ~5 MB for one word
        seconds = translate("%(seconds)s sec", locale)
        self._seconds = functools.lru_cache(maxsize=1024)(lambda value: seconds % {"seconds": value})

    def _status(self, status: str) -> str:
        return self._tr(STATUS.get(status, status))

    async def write(
        self,
        filters: dict[str, Any],
        visible: list[int] | None,
        path: Path,
        progress: Callable[[int, int], Awaitable[None]] | None = None,
        *,
        contacts: Collection[int] | None = None,
    ) -> int:
        """Write the calls matching ``filters`` among the ``visible`` connections to ``path``. ``contacts``: the
        connections whose client phones and e-mails are written in full (``None``: all); elsewhere they are
        masked (docs/admin.md#who-may-do-what), decided here once per connection, not per row."""
        query = filtered_calls(filters, visible)
        total = await query.count()
        if progress:
            await progress(0, total)
        connections = (
            {c.id: c for c in await Connection.all()}
            if visible is None
            else {c.id: c for c in await Connection.filter(id__in=visible)}
        )
        self.zones = {cid: ZoneInfo(c.timezone) for cid, c in connections.items()}
        self.default_zone = ZoneInfo("Europe/Moscow")
        # per connection: its site and name, once (not per row)
        self.sites = {cid: (c.domain, _cell_value(c.name)) for cid, c in connections.items()}
        self.masked = frozenset(() if contacts is None else set(connections) - set(contacts))
        self.offices = {
            key: _cell_value(name)
            for key, name in await Office.filter(connection_id__in=list(connections)).values_list("id", "name")
        }
        self.departments = {
            key: _cell_value(name)
            for key, name in await Department.filter(connection_id__in=list(connections)).values_list("id", "name")
        }
        self.fixed = {
            "callback": self._tr("Callback"),
            "direction": {key: self._tr(label) for key, label in DIRECTION.items()},
        }
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet(translate("Calls", self.locale))
        sheet.freeze_panes = "A2"
        header = []
        for title in self.titles:
            cell = WriteOnlyCell(sheet, value=title)
            cell.font = Font(bold=True)
            header.append(cell)
        _FastRows.install(sheet, header)
        done = 0
        writing: asyncio.Future | None = None
        async for rows in self._rows_newest_first(filters, visible):
            ids = [row[0] for row in rows]
            tags = await self._tags_of(ids)
            chains = await self._chains_of(ids)
            notes = await self._notes_of(ids)
            lines = [self._line(row, tags, chains, notes) for row in rows]
            if writing is not None:
                await writing
            # the sheet is written in a thread while the next batch is read from the database
            writing = asyncio.ensure_future(asyncio.to_thread(self._append, sheet, lines))
            done += len(rows)
            if progress:
                await progress(done, total)
        if writing is not None:
            await writing
        await asyncio.to_thread(self._save, workbook, path)
        return done

    @staticmethod
    def _save(workbook, path: Path) -> None:
        """openpyxl's own writer, with zlib's fastest level: the sheet (~190 MB of XML for 100,000 calls)
        is mostly repeated markup, which level 1 still packs about 8:1 (21.6 MB; 17.4 MB at the default
        level), in clearly less time -- zipping was ~12 % of the export at the default level."""
        from zipfile import ZIP_DEFLATED, ZipFile

        from openpyxl.writer.excel import ExcelWriter

        with ZipFile(path, "w", ZIP_DEFLATED, allowZip64=True, compresslevel=1) as archive:
            ExcelWriter(workbook, archive).save()

    async def _rows_newest_first(self, filters: dict[str, Any], visible: list[int] | None):
        """Every matching call (with its lead) as a row of :data:`SELECT`, newest first, in lists of BATCH.

        The only time index on calls is (connection_id, created_at), so over a
        few connections each is read in index order, BATCH rows at a time, and
        the streams are merged here (as ``perezvon.core.call_filters.all_keys_newest_first``
        does for keys); whole rows are read at once, so no second query by id.
        """
        connections = await _connections_to_scan(filters, visible)
        scopes = [filters] if connections is None else [{**filters, "connection": [c]} for c in connections]
        streams = [{"rows": [], "cursor": None, "done": False} for _ in scopes]
        created, call_id = _AT["created_at"], _AT["id"]

        async def refill(index: int) -> None:
            stream = streams[index]
            query = newest_first(filtered_calls(scopes[index], visible), stream["cursor"]).limit(BATCH)
            rows = [list(row) for row in await _raw_rows(query.values(*SELECT))]
            for row in rows:
                row[created] = _moment(row[created])
                row[call_id] = str(row[call_id])
            stream["rows"] = rows[::-1]  # oldest first, so the newest pops from the end
            stream["done"] = len(rows) < BATCH
            if rows:
                stream["cursor"] = cursor_after((rows[-1][created], rows[-1][call_id]))

        def push(heap: list, index: int) -> None:
            row = streams[index]["rows"][-1]
            heapq.heappush(heap, (-row[created].timestamp(), -int(row[call_id].replace("-", ""), 16), index))

        heap: list = []
        for index in range(len(scopes)):
            await refill(index)
            if streams[index]["rows"]:
                push(heap, index)
        out: list[list[Any]] = []
        while heap:
            index = heapq.heappop(heap)[2]
            stream = streams[index]
            out.append(stream["rows"].pop())
            if not stream["rows"] and not stream["done"]:
                await refill(index)
            if stream["rows"]:
                push(heap, index)
            if len(out) == BATCH:
                yield out
                out = []
        if out:
            yield out

    @staticmethod
    async def _tags_of(ids: list[str]) -> dict[str, str]:
        found: dict[str, list[str]] = {}
        for call_id, name in await _raw_rows(
            CallTag.filter(call_id__in=ids).order_by("name").values("call_id", "name")
        ):
            found.setdefault(str(call_id), []).append(name)
        return {key: _cell_value(", ".join(names)) for key, names in found.items()}

    @staticmethod
    async def _notes_of(ids: list[str]) -> dict[str, str]:
        """The notes of a batch of calls (one query), each call's joined oldest first."""
        found: dict[str, list[str]] = {}
        for call_id, text in await _raw_rows(
            CallNote.filter(call_id__in=ids).order_by("call_id", "created_at", "id").values("call_id", "text")
        ):
            found.setdefault(str(call_id), []).append(text)
        return {key: _cell_value("\n\n".join(texts)) for key, texts in found.items()}

    @staticmethod
    async def _chains_of(ids: list[str]) -> dict[str, list[tuple]]:
        chains: dict[str, list[tuple]] = {}
        for attempt in await _raw_rows(
            Attempt.filter(call_id__in=ids)
            .order_by("call_id", "number")
            .values(
                "call_id",
                "number",
                "started_at",
                "operator_status",
                "client_status",
                "duration_seconds",
                "display_status",
                "reason",
            )
        ):
            chains.setdefault(str(attempt[0]), []).append(attempt)
        return chains

    @staticmethod
    def _append(sheet, lines: list[list[Any]]) -> None:
        for line in lines:
            sheet.append(line)

    def _line(self, row, tags, chains, notes) -> list[Any]:
        """One row of the sheet, from a row of :data:`SELECT`. Text that came from visitors goes through
        :func:`_cell_value` (control characters, formulas); empty values become None, which costs no cell."""
        (
            call_id,
            created_at,
            connection_id,
            display_status,
            reason,
            _state,
            first_direction,
            attempts_made,
            operator_number,
            duration_seconds,
            is_unique,
            is_target,
            finished_at,
            recording,
            lead_id,
            source,
            phone,
            name,
            office_id,
            department_id,
            preferred_at,
            page_url,
            referrer,
            utm_source,
            utm_medium,
            utm_campaign,
            utm_content,
            utm_term,
            channel,
            visitor_id,
            visit,
            displayed_phone,
            extra,
            client_ip,
        ) = row
        zone = self.zones.get(connection_id) or self.default_zone
        site, connection_name = self.sites.get(connection_id, (None, None))
        at = created_at.astimezone(zone)
        visit = _json_value(visit) or {}
        extra = _json_value(extra)
        if connection_id in self.masked:
            phone = mask_phone(phone)
            extra = mask_value(extra)
        text = _cell_value
        chain = chains.get(call_id)
        return [
            at.date(),
            at.time().isoformat("seconds"),
            site,
            connection_name,
            self.offices.get(office_id),
            self.departments.get(department_id),
            self.fixed["callback"],
            self.apps.get(source, source),
            phone,
            text(name),
            operator_number or None,
            self.fixed["direction"].get(first_direction) or self._tr(first_direction),
            duration_seconds,
            self._status(display_status),
            self._tr(reason),
            attempts_made,
            self.yes_no[is_unique],  # True/False, or 1/0 from SQLite: the same keys
            self.yes_no[is_target],
            tags.get(call_id),
            self.channels.get(channel, channel),
            text(utm_source),
            text(utm_medium),
            text(utm_campaign),
            text(utm_content),
            text(utm_term),
            text(page_url),
            text(referrer),
            _naive(_local(_moment(preferred_at), zone)),
            text(visit.get("pages")),
            text(visit.get("seconds_on_site")),
            self._trigger(visit.get("trigger")),
            text(visit.get("rule")),
            None
            if visit.keys() <= _VISIT_KEYS
            else text(_json({k: v for k, v in visit.items() if k not in _VISIT_KEYS})),
            text(visitor_id),
            text(displayed_phone),
            client_ip or None,
            "\n".join(self._attempt_text(a, zone) for a in chain) if chain else None,
            _naive(_local(_moment(finished_at), zone)),
            self.yes_no[True] if recording else None,
            text(_json(extra)),
            call_id,
            str(lead_id),
            notes.get(call_id),
        ]

    def _trigger(self, trigger: Any) -> Any:
        """What opened the form, in words; a value no app names (or not text at all) as the visitor sent it."""
        return (self.triggers.get(trigger) if isinstance(trigger, str) else None) or _cell_value(trigger)

    def _attempt_text(self, attempt: tuple, zone: ZoneInfo) -> str:
        _, number, started_at, operator_status, client_status, duration_seconds, display_status, reason = attempt
        pair = (
            f"{'—' if operator_status is None else operator_status}-{'—' if client_status is None else client_status}"
        )
        started_at = _moment(started_at)
        if started_at:
            local = started_at.astimezone(zone)
            started = f"{local.day:02d}.{local.month:02d} {local.hour:02d}:{local.minute:02d}:{local.second:02d}"
        else:
            started = ""
        reason = self._tr(reason)
        return (
            f"{number}. {started} {pair} {self._status(display_status)}, "
            f"{self._seconds(duration_seconds or 0)}{': ' + reason if reason else ''}"
        )
