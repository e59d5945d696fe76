"""The filters of the Calls table (docs/admin.md), shared by the admin, the export and the read API.

One schema parses the query string the same way everywhere, one function turns
it into a query restricted to what the user may see, and one keyset cursor
pages through it newest first. Keyset (``created_at``, ``id``) rather than
OFFSET: the first page and the thousandth cost the same, and rows arriving
while someone pages never shift or repeat a row.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast
from zoneinfo import ZoneInfo

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates, validates_schema
from tortoise.expressions import Q, Subquery
from tortoise.queryset import QuerySet

from perezvon.core.models import Call, CallTag, DisplayStatus
from perezvon.core.schemas import check_time_zone
from perezvon.core.storable import (
    DAY_OUT_OF_RANGE,
    FIRST_DAY,
    ID_OUT_OF_RANGE,
    LAST_DAY,
    MAX_DB_INT,
    UNSTORABLE,
    bad_text,
)

#: automatic tags (docs/calls.md#automatic-tags) by the name the filter uses, as conditions on the call
AUTO_TAGS: dict[str, dict[str, Any]] = {
    "unique": {"is_unique": True},
    "repeat": {"is_unique": False},
    "target": {"is_target": True},
    "nontarget": {"is_target": False},
}
STATUSES = (
    DisplayStatus.PENDING,
    DisplayStatus.SUCCESSFUL,
    DisplayStatus.LOST,
    DisplayStatus.UNSUCCESSFUL,
    DisplayStatus.FAILED,
    DisplayStatus.CANCELLED,
    DisplayStatus.NOTIFIED,
)
LIST_FIELDS = ("connection", "status", "app", "tag")
DEFAULT_ZONE = "Europe/Moscow"
MAX_PAGE = 500


#: a filter sent empty (``?date_from=``) where empty values are refused (the read API)
EMPTY_FILTER = "Give a value or leave the parameter out."

#: dates the database and every time zone can hold (year 1 or 9999 overflows when shifted by a zone)
_DAY_RANGE = validate.Range(min=FIRST_DAY, max=LAST_DAY, error=DAY_OUT_OF_RANGE)


class BadCursor(ValueError):
    pass


class CallFilterSchema(Schema):
    """Query-string filters; every one optional, lists repeat the parameter (``?status=lost&status=failed``)."""

    class Meta:
        unknown = EXCLUDE

    date_from = fields.Date(
        load_default=None,
        allow_none=True,
        validate=_DAY_RANGE,
        metadata={"description": "first day, inclusive (YYYY-MM-DD in `tz`, 2000-01-01 .. 2199-12-31)"},
    )
    date_to = fields.Date(
        load_default=None,
        allow_none=True,
        validate=_DAY_RANGE,
        metadata={"description": "last day, inclusive (YYYY-MM-DD in `tz`, 2000-01-01 .. 2199-12-31)"},
    )
    tz = fields.String(
        load_default=DEFAULT_ZONE,
        validate=validate.Length(max=64),
        metadata={"description": "IANA time zone of the dates (Europe/Moscow when absent)"},
    )
    connection = fields.List(
        fields.Integer(validate=validate.Range(min=1, max=MAX_DB_INT, error=ID_OUT_OF_RANGE)),
        load_default=list,
        metadata={"description": "connection ids"},
    )
    status = fields.List(fields.String(validate=validate.OneOf(STATUSES)), load_default=list)
    app = fields.List(
        fields.String(validate=validate.Length(max=64)),
        load_default=list,
        metadata={"description": "lead source keys: widget, leadgen, siteforms, api ..."},
    )
    tag = fields.List(
        fields.String(validate=validate.Length(max=64)),
        load_default=list,
        metadata={"description": "unique, repeat, target, nontarget or a user tag; all must apply"},
    )
    phone = fields.String(
        load_default="",
        validate=validate.Length(max=40),
        metadata={"description": "digits anywhere in the client's number"},
    )

    @validates("tz")
    def _zone(self, value: str, **_: Any) -> None:
        check_time_zone(value)

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("date_from") and data.get("date_to") and data["date_to"] < data["date_from"]:
            raise ValidationError("The end of the range is before its start.", "date_to")


def parse_filters(params: Any, *, empty_means_absent: bool = True) -> dict[str, Any]:
    """Filters from a query string (a Starlette ``QueryParams`` or any multidict); raises ValidationError.

    The admin's filter form sends every field, empty when unset: there an empty value means no filter.
    The read API is stricter (``empty_means_absent=False``): an empty value is refused, as its OpenAPI
    document says. Either way a NUL or a broken character is refused before any query sees it."""
    raw: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for key in CallFilterSchema().fields:
        if key in LIST_FIELDS:
            sent = params.getlist(key) if hasattr(params, "getlist") else params.get(key, [])
            values = [v for v in sent if v != ""]
            if len(values) < len(sent) and not empty_means_absent:
                errors[key] = [EMPTY_FILTER]
            if values:
                raw[key] = values
        elif params.get(key) == "":
            if not empty_means_absent:
                errors[key] = [EMPTY_FILTER]
        elif params.get(key) is not None:
            raw[key] = params.get(key)
    for key, value in raw.items():
        if any(isinstance(v, str) and bad_text(v) for v in (value if isinstance(value, list) else [value])):
            errors[key] = [UNSTORABLE]
    if errors:
        raise ValidationError(errors)
    filters: dict[str, Any] = CallFilterSchema().load(raw)
    return filters


def phone_digits(text: str) -> str:
    digits = re.sub(r"\D", "", text or "")
    if len(digits) == 11 and digits.startswith("8"):  # a Russian number typed the domestic way
        digits = "7" + digits[1:]
    return digits


def day_bounds(filters: dict[str, Any]) -> tuple[dt.datetime | None, dt.datetime | None]:
    zone = ZoneInfo(filters.get("tz") or DEFAULT_ZONE)
    start = end = None
    if filters.get("date_from"):
        start = dt.datetime.combine(filters["date_from"], dt.time.min, zone)
    if filters.get("date_to"):
        end = dt.datetime.combine(filters["date_to"] + dt.timedelta(days=1), dt.time.min, zone)
    return start, end


def filtered_calls(filters: dict[str, Any], visible_connection_ids: list[int] | None) -> QuerySet[Call]:
    """Calls matching ``filters`` among the connections the user may see (``None`` = all)."""
    query = Call.all()
    wanted = list(filters.get("connection") or [])
    if visible_connection_ids is not None:
        wanted = [c for c in wanted if c in set(visible_connection_ids)] if wanted else list(visible_connection_ids)
        if not wanted:
            return Call.filter(id__in=[])
    if wanted:
        query = query.filter(connection_id__in=wanted)
    start, end = day_bounds(filters)
    if start:
        query = query.filter(created_at__gte=start)
    if end:
        query = query.filter(created_at__lt=end)
    if filters.get("status"):
        query = query.filter(display_status__in=filters["status"])
    if filters.get("app"):
        query = query.filter(lead__source__in=filters["app"])
    digits = phone_digits(filters.get("phone", ""))
    if digits:
        query = query.filter(lead__phone__contains=digits)
    for tag in filters.get("tag") or []:
        if tag in AUTO_TAGS:
            query = query.filter(**AUTO_TAGS[tag])
        else:
            query = query.filter(id__in=Subquery(CallTag.filter(name=tag).values("call_id")))
    return query


# --- the cursor ----------------------------------------------------------------------------------


def encode_cursor(call: Call) -> str:
    text = f"{call.created_at.astimezone(dt.UTC).isoformat()}|{call.id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, _, call_id = text.partition("|")
        when = dt.datetime.fromisoformat(moment)
        if when.tzinfo is None:
            raise ValueError("naive time")
        if not FIRST_DAY <= when.date() <= LAST_DAY:  # year 1 or 9999 overflows when the query converts it
            raise ValueError("out of range")
        return when, uuid.UUID(call_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("Not a cursor from this API.") from exc


def newest_first(query: QuerySet[Call], cursor: str | None = None) -> QuerySet[Call]:
    if cursor:
        when, call_id = decode_cursor(cursor)
        query = query.filter(Q(created_at__lt=when) | Q(created_at=when, id__lt=call_id))
    return query.order_by("-created_at", "-id")


#: up to this many connections, a page is read connection by connection and merged (see below)
FANOUT_MAX = 64


async def _connections_to_scan(filters: dict[str, Any], visible: list[int] | None) -> list[int] | None:
    """The connections a query covers, when there are few enough to scan one by one; else None."""
    from perezvon.core.models import Connection

    wanted = list(filters.get("connection") or [])
    if visible is not None:
        wanted = [c for c in wanted if c in set(visible)] if wanted else list(visible)
    elif not wanted:
        wanted = cast(list[int], await Connection.all().limit(FANOUT_MAX + 1).values_list("id", flat=True))
    return sorted(set(wanted)) if 1 < len(set(wanted)) <= FANOUT_MAX else None


async def newest_keys(
    filters: dict[str, Any], visible: list[int] | None, *, cursor: str | None, limit: int
) -> list[tuple[dt.datetime, uuid.UUID]]:
    """``(created_at, id)`` of the next ``limit`` calls, newest first.

    The only index on calls by time is (connection_id, created_at), so "newest
    first" over several connections would make the database sort every
    matching row. Over a few connections each one is read in index order
    instead -- ``limit`` rows each -- and the lists are merged here: the same
    rows, in the same order, at the cost of one short index scan per connection.
    """
    connections = await _connections_to_scan(filters, visible)
    if connections is None:
        query = newest_first(filtered_calls(filters, visible), cursor)
        return [tuple(row) for row in await query.limit(limit).values_list("created_at", "id")]
    found: list[tuple[dt.datetime, uuid.UUID]] = []
    for connection_id in connections:
        query = newest_first(filtered_calls({**filters, "connection": [connection_id]}, visible), cursor)
        found += [tuple(row) for row in await query.limit(limit).values_list("created_at", "id")]
    found.sort(key=lambda key: (key[0], _uuid(key[1])), reverse=True)
    return found[:limit]


async def all_keys_newest_first(
    filters: dict[str, Any], visible: list[int] | None, *, batch: int = 2000
) -> AsyncIterator[list[tuple[dt.datetime, uuid.UUID]]]:
    """Every matching ``(created_at, id)``, newest first, in lists of up to ``batch`` (for exports).

    Over a few connections each is read in index order, ``batch`` keys at a
    time, and the streams are merged as they go, so every key is read once.
    """
    connections = await _connections_to_scan(filters, visible)
    if connections is None:
        cursor = None
        while True:
            keys = await newest_keys(filters, visible, cursor=cursor, limit=batch)
            if keys:
                yield keys
            if len(keys) < batch:
                return
            cursor = cursor_after(keys[-1])
    streams: dict[int, dict[str, Any]] = {c: {"keys": [], "cursor": None, "done": False} for c in connections}

    async def refill(connection_id: int) -> None:
        stream = streams[connection_id]
        query = newest_first(filtered_calls({**filters, "connection": [connection_id]}, visible), stream["cursor"])
        keys = [tuple(row) for row in await query.limit(batch).values_list("created_at", "id")]
        stream["keys"] = keys[::-1]  # oldest first, so the newest pops from the end
        stream["done"] = len(keys) < batch
        if keys:
            stream["cursor"] = cursor_after(keys[-1])

    import heapq

    def push(heap: list[tuple[float, int, int]], connection_id: int) -> None:
        created_at, call_id = streams[connection_id]["keys"][-1]
        heapq.heappush(heap, (-created_at.timestamp(), -_uuid(call_id).int, connection_id))

    heap: list[tuple[float, int, int]] = []
    for connection_id in connections:
        await refill(connection_id)
        if streams[connection_id]["keys"]:
            push(heap, connection_id)
    out: list[tuple[dt.datetime, uuid.UUID]] = []
    while heap:
        connection_id = heapq.heappop(heap)[2]
        stream = streams[connection_id]
        out.append(stream["keys"].pop())
        if not stream["keys"] and not stream["done"]:
            await refill(connection_id)
        if stream["keys"]:
            push(heap, connection_id)
        if len(out) == batch:
            yield out
            out = []
    if out:
        yield out


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def cursor_after(key: tuple[dt.datetime, Any]) -> str:
    text = f"{key[0].astimezone(dt.UTC).isoformat()}|{key[1]}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def page_of_calls(
    filters: dict[str, Any],
    visible_connection_ids: list[int] | None,
    *,
    cursor: str | None = None,
    limit: int = 50,
    related: tuple[str, ...] = ("lead",),
) -> tuple[list[Call], str | None]:
    """One page, newest first, and the cursor of the next page (None on the last)."""
    limit = max(1, min(limit, MAX_PAGE))
    if cursor:
        decode_cursor(cursor)  # a bad cursor is the caller's error, before any query
    keys = await newest_keys(filters, visible_connection_ids, cursor=cursor, limit=limit + 1)
    more = len(keys) > limit
    keys = keys[:limit]
    query = Call.filter(id__in=[key[1] for key in keys])
    if related:
        query = query.select_related(*related)
    by_id = {str(call.id): call for call in await query}
    calls = [by_id[str(key[1])] for key in keys if str(key[1]) in by_id]
    return calls, (cursor_after(keys[-1]) if more and keys else None)


def auto_tags(call: Call) -> list[str]:
    tags = []
    if call.is_unique is not None:
        tags.append("unique" if call.is_unique else "repeat")
    if call.is_target is not None:
        tags.append("target" if call.is_target else "nontarget")
    return tags


async def user_tags_of(call_ids: list[Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    if call_ids:
        for call_id, name in await CallTag.filter(call_id__in=call_ids).order_by("name").values_list("call_id", "name"):
            found.setdefault(str(call_id), []).append(name)
    return found
