"""The Calls table (docs/admin.md#pages): grouped by day, newest first, filtered, paged; the detail panel."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from marshmallow import ValidationError
from starlette.responses import FileResponse, Response

from perezvon.core.call_filters import AUTO_TAGS, STATUSES, auto_tags, page_of_calls, parse_filters, user_tags_of
from perezvon.core.models import Attempt, CallTag, Connection, Delivery, Department, GrantLevel, Lead, Office
from perezvon.web.admin.framework import Ctx
from perezvon.web.admin.i18n import plugin_text, translate

PAGE_SIZE = 50
TAG_MAX = 64


async def visible_connections(ctx: Ctx) -> list[Connection]:
    ids = ctx.access.visible_connection_ids()
    query = Connection.all() if ids is None else Connection.filter(id__in=ids)
    return await query.order_by("name", "domain")


def source_of(lead: Lead) -> str:
    """Where the visitor came from: the UTM source, else the referrer's host."""
    if lead.utm_source:
        return lead.utm_source
    if lead.referrer:
        from urllib.parse import urlsplit

        return urlsplit(lead.referrer).hostname or lead.referrer[:60]
    return ""


def local_time(moment: dt.datetime | None, zone: str) -> dt.datetime | None:
    if moment is None:
        return None
    try:
        return moment.astimezone(ZoneInfo(zone))
    except (ValueError, KeyError):
        return moment
    except OverflowError:  # year 1 or 9999 stored before the intake checked the range: no local time
        return None


def app_titles(ctx: Ctx) -> dict[str, str]:
    registry = ctx.perezvon.host.registry
    titles = {key: source.title for key, source in registry.lead_sources.items()}
    titles.update(
        {
            app.lead_source: plugin_text(app, ctx.locale)(app.title)
            for app in registry.applications.values()
            if getattr(app, "lead_source", None)
        }
    )
    titles.setdefault("api", "API")
    return titles


async def rows_for(ctx: Ctx, calls: list, connections: dict[int, Connection]) -> list[dict[str, Any]]:
    office_ids = {c.lead.office_id for c in calls if c.lead.office_id}
    department_ids = {c.lead.department_id for c in calls if c.lead.department_id}
    offices = dict(await Office.filter(id__in=office_ids).values_list("id", "name")) if office_ids else {}
    departments = (
        dict(await Department.filter(id__in=department_ids).values_list("id", "name")) if department_ids else {}
    )
    tags = await user_tags_of([c.id for c in calls])
    titles = app_titles(ctx)
    rows = []
    for call in calls:
        lead = call.lead
        connection = connections.get(call.connection_id)
        zone = connection.timezone if connection else "Europe/Moscow"
        moment = local_time(call.created_at, zone)
        rows.append(
            {
                "id": str(call.id),
                "at": moment,
                "day": moment.date(),
                "site": connection.domain if connection else "",
                "connection": connection.name if connection else "",
                "office": offices.get(lead.office_id, ""),
                "department": departments.get(lead.department_id, ""),
                "app": titles.get(lead.source, lead.source),
                "phone": lead.phone,
                "name": lead.name,
                "operator": call.operator_number,
                "direction": call.first_direction,
                "duration": call.duration_seconds,
                "status": call.display_status,
                "reason": call.reason,
                "auto_tags": auto_tags(call),
                "user_tags": tags.get(str(call.id), []),
                "source": source_of(lead),
                "channel": lead.channel,
            }
        )
    return rows


def group_by_day(rows: list[dict[str, Any]]) -> list[tuple[dt.date, list[dict[str, Any]]]]:
    groups: list[tuple[dt.date, list[dict[str, Any]]]] = []
    for row in rows:
        if not groups or groups[-1][0] != row["day"]:
            groups.append((row["day"], []))
        groups[-1][1].append(row)
    return groups


def filter_errors(messages: dict[str, Any], locale: str) -> dict[str, list[str]]:
    """A filter's errors, translated, one flat list per filter (a list filter's errors come by item)."""

    def flat(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [message for item in value.values() for message in flat(item)]
        return [translate(str(message), locale) for message in (value if isinstance(value, list) else [value])]

    return {field: sorted(set(flat(value))) for field, value in messages.items()}


def filter_query(params, **changes) -> str:
    items = [(k, v) for k, v in params.multi_items() if k not in changes and k != "cursor"]
    for key, value in changes.items():
        if value is not None:
            items.append((key, value))
    return urlencode(items)


async def calls_table(ctx: Ctx) -> Response:
    params = ctx.request.query_params
    connections = await visible_connections(ctx)
    errors: dict[str, Any] = {}
    try:
        filters = parse_filters(params)
    except ValidationError as exc:
        errors = filter_errors(exc.messages, ctx.locale)
        filters = parse_filters({})
    try:
        calls, next_cursor = await page_of_calls(
            filters, ctx.access.visible_connection_ids(), cursor=params.get("cursor") or None, limit=PAGE_SIZE
        )
    except ValueError:
        errors["cursor"] = [translate("Not a cursor from this API.", ctx.locale)]
        calls, next_cursor = await page_of_calls(filters, ctx.access.visible_connection_ids(), limit=PAGE_SIZE)
    rows = await rows_for(ctx, calls, {c.id: c for c in connections})
    user_tag_names = (
        await CallTag.filter(call__connection_id__in=[c.id for c in connections])
        .distinct()
        .order_by("name")
        .limit(200)
        .values_list("name", flat=True)
    )
    return await ctx.render(
        "admin/calls.html",
        groups=group_by_day(rows),
        filters=filters,
        errors=errors,
        connections=connections,
        statuses=STATUSES,
        apps=app_titles(ctx),
        auto_tag_names=list(AUTO_TAGS),
        user_tag_names=user_tag_names,
        next_url=("/calls?" + filter_query(params, cursor=next_cursor)) if next_cursor else None,
        first_url="/calls?" + filter_query(params) if params.get("cursor") else None,
        export_query=filter_query(params),
        params=params,
    )


async def call_detail(ctx: Ctx) -> Response:
    call = ctx.call
    lead = await Lead.get(id=call.lead_id)
    connection = await Connection.get(id=call.connection_id)
    call.lead = lead
    row = (await rows_for(ctx, [call], {connection.id: connection}))[0]
    attempts = await Attempt.filter(call_id=call.id).order_by("number")
    deliveries = await Delivery.filter(call_id=call.id).order_by("created_at", "id")
    integration_titles = {
        key: plugin_text(i, ctx.locale)(i.title) for key, i in ctx.perezvon.host.registry.integrations.items()
    }
    recordings = [a for a in attempts if a.recording and Path(a.recording).is_file()]
    return await ctx.render(
        "admin/call_detail.html",
        call=call,
        lead=lead,
        row=row,
        connection=connection,
        attempts=[(a, local_time(a.started_at, connection.timezone)) for a in attempts],
        deliveries=[(d, local_time(d.created_at, connection.timezone)) for d in deliveries],
        integration_titles=integration_titles,
        recordings=recordings,
        has_call_recording=bool(call.recording and Path(call.recording).is_file()),
        can_tag=ctx.can_connection(connection.id, GrantLevel.EDIT),
        back=ctx.request.query_params.get("back") or "/calls",
        preferred_at=local_time(lead.preferred_at, connection.timezone),
    )


async def call_tags(ctx: Ctx) -> Response:
    """Add a user tag (``action=add``, ``name``) or clear all of them (``action=clear``)."""
    action = ctx.form.get("action")
    if action == "clear":
        await CallTag.filter(call_id=ctx.call.id).delete()
    else:
        name = " ".join((ctx.form.get("name") or "").split())
        if not name or len(name) > TAG_MAX:
            ctx.flash(translate("A tag is 1 to %(n)s characters.", ctx.locale, n=TAG_MAX), "error")
        elif not await CallTag.exists(call_id=ctx.call.id, name=name):
            await CallTag.create(call_id=ctx.call.id, name=name, created_by_id=ctx.user.id)
    return ctx.redirect(f"/calls/{ctx.call.id}")


async def call_recording(ctx: Ctx) -> Response:
    """The recording of the call (or of one attempt, ``?attempt=N``); ``?download=1`` saves it."""
    path = ctx.call.recording
    number = ctx.request.query_params.get("attempt")
    if number and number.isascii() and number.isdigit() and len(number) <= 4:
        attempt = await Attempt.get_or_none(call_id=ctx.call.id, number=int(number))
        path = attempt.recording if attempt else ""
    if not path or not Path(path).is_file():
        return await ctx.error(404, "There is no recording.")
    file = Path(path)
    name = f"call-{ctx.call.id}{'-' + number if number else ''}{file.suffix}"
    download = ctx.request.query_params.get("download") == "1"
    media = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".gsm": "audio/x-gsm"}
    return FileResponse(
        file,
        media_type=media.get(file.suffix.lower(), "application/octet-stream"),
        filename=name if download else None,
        content_disposition_type="attachment" if download else "inline",
    )
