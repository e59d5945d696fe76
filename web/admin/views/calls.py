"""The Calls table (docs/admin.md#pages): grouped by day, newest first, filtered, paged; the detail panel."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from marshmallow import ValidationError
from starlette.responses import FileResponse, Response

from perezvon.core.call_again import CallAgainRefused, call_again
from perezvon.core.call_filters import AUTO_TAGS, STATUSES, auto_tags, page_of_calls, parse_filters, user_tags_of
from perezvon.core.masking import mask_phone, mask_value
from perezvon.core.models import (
    Attempt,
    Call,
    CallNote,
    CallRedial,
    CallTag,
    Connection,
    Delivery,
    Department,
    GrantLevel,
    Lead,
    Office,
)
from perezvon.core.recordings import S3_REF, check_link, media_type, recording_store
from perezvon.web.admin.framework import Ctx
from perezvon.web.admin.i18n import plugin_text, translate
from perezvon.web.admin.table_columns import BY_KEY, COLUMNS, chosen_keys

PAGE_SIZE = 50
TAG_MAX = 64

log = logging.getLogger(__name__)


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
    access = ctx.access
    rows = []
    for call in calls:
        lead = call.lead
        # one dict lookup per row (the grants were read once for the request)
        sees = access is None or access.sees_contacts(call.connection_id)
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
                "phone": lead.phone if sees else mask_phone(lead.phone),
                "masked": not sees,
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
                "page": lead.page_url,
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


def parsed_filters(ctx: Ctx) -> tuple[dict[str, Any], dict[str, Any]]:
    """The filters of the query string and their errors (translated); bad filters fall back to none.
    The Calls table and the dashboard read them the same way (core/call_filters.py)."""
    try:
        return parse_filters(ctx.request.query_params), {}
    except ValidationError as exc:
        return parse_filters({}), filter_errors(exc.messages, ctx.locale)


async def filter_choices(ctx: Ctx, connections: list[Connection]) -> dict[str, Any]:
    """What the filter form (_macros.html filters_form) offers, the same on the Calls table and the dashboard."""
    user_tag_names = (
        await CallTag.filter(connection_id__in=[c.id for c in connections])
        .distinct()
        .order_by("name")
        .limit(200)
        .values_list("name", flat=True)
    )
    return {
        "connections": connections,
        "statuses": STATUSES,
        "apps": app_titles(ctx),
        "tag_names": [*AUTO_TAGS, *user_tag_names],
    }


async def calls_table(ctx: Ctx) -> Response:
    params = ctx.request.query_params
    connections = await visible_connections(ctx)
    filters, errors = parsed_filters(ctx)
    try:
        calls, next_cursor = await page_of_calls(
            filters, ctx.access.connection_ids_to_search(filters), cursor=params.get("cursor") or None, limit=PAGE_SIZE
        )
    except ValueError:
        errors["cursor"] = [translate("Not a cursor from this API.", ctx.locale)]
        calls, next_cursor = await page_of_calls(filters, ctx.access.connection_ids_to_search(filters), limit=PAGE_SIZE)
    rows = await rows_for(ctx, calls, {c.id: c for c in connections})
    return await ctx.render(
        "admin/calls.html",
        groups=group_by_day(rows),
        filters=filters,
        errors=errors,
        choices=await filter_choices(ctx, connections),
        columns=[BY_KEY[key] for key in chosen_keys(ctx.user.preferences)],
        all_columns=COLUMNS,
        next_url=("/calls?" + filter_query(params, cursor=next_cursor)) if next_cursor else None,
        first_url="/calls?" + filter_query(params) if params.get("cursor") else None,
        export_query=filter_query(params),
        params=params,
    )


NOTE_MAX = 2000


def app_lead_rows(ctx: Ctx, lead: Lead) -> tuple[str, list[Any]]:
    """The lead's app's own lines for the call page (Application.lead_rows): its title and rows."""
    for app in ctx.perezvon.host.registry.applications.values():
        if app.lead_source == lead.source:
            try:
                return plugin_text(app, ctx.locale)(app.title), app.lead_rows(lead, ctx.locale)
            except Exception:
                log.exception("application %s could not show lead %s", app.key, lead.id)
    return "", []


async def call_detail(
    ctx: Ctx, status_code: int = 200, note_error: str = "", note_text: str = "", again_error: str = ""
) -> Response:
    call = ctx.call
    lead = await Lead.get(id=call.lead_id)
    connection = await Connection.get(id=call.connection_id)
    call.lead = lead
    row = (await rows_for(ctx, [call], {connection.id: connection}))[0]
    if row["masked"]:
        # only this page's copy: the lead is never saved from here
        lead.phone = row["phone"]
        lead.extra = mask_value(lead.extra)
    notes = await CallNote.filter(call_id=call.id).order_by("created_at", "id").prefetch_related("author")
    redials = await CallRedial.filter(call_id=call.id).order_by("created_at", "id")
    can_full = ctx.can_connection(connection.id, GrantLevel.FULL)
    attempts = await Attempt.filter(call_id=call.id).order_by("number")
    deliveries = await Delivery.filter(call_id=call.id).order_by("created_at", "id")
    integration_titles = {
        key: plugin_text(i, ctx.locale)(i.title) for key, i in ctx.perezvon.host.registry.integrations.items()
    }
    store = recording_store(ctx.perezvon.settings)
    recordings = [a for a in attempts if store.available(a.recording)]
    return await ctx.render(
        "admin/call_detail.html",
        app_rows=app_lead_rows(ctx, lead),
        call=call,
        lead=lead,
        row=row,
        connection=connection,
        attempts=[(a, local_time(a.started_at, connection.timezone)) for a in attempts],
        deliveries=[(d, local_time(d.created_at, connection.timezone)) for d in deliveries],
        integration_titles=integration_titles,
        recordings=recordings,
        has_call_recording=store.available(call.recording),
        can_tag=ctx.can_connection(connection.id, GrantLevel.EDIT),
        back=ctx.request.query_params.get("back") or "/calls",
        preferred_at=local_time(lead.preferred_at, connection.timezone),
        notes=[
            (
                note,
                local_time(note.created_at, connection.timezone),
                local_time(note.updated_at, connection.timezone),
                ctx.can_connection(connection.id, GrantLevel.EDIT) and (note.author_id == ctx.user.id or can_full),
            )
            for note in notes
        ],
        redials=[
            (r, local_time(r.created_at, connection.timezone), local_time(r.due_at, connection.timezone))
            for r in redials
        ],
        manual_numbers={r.attempt_number for r in redials},
        can_call_again=ctx.can_connection(connection.id, GrantLevel.EDIT),
        again_error=again_error,
        note_error=note_error,
        note_text=note_text,
        note_max=NOTE_MAX,
        status_code=status_code,
    )


async def call_again_now(ctx: Ctx) -> Response:
    """The "Call again" button (edit level on the call's connection, docs/calls.md#call-again)."""
    try:
        placed = await call_again(ctx.perezvon.redis, ctx.call, user=ctx.user)
    except CallAgainRefused as exc:
        return await call_detail(ctx, status_code=exc.status, again_error=ctx._(exc.message))
    if placed.waits_for_opening:
        connection = await Connection.get(id=ctx.call.connection_id)
        opening = local_time(placed.due_at, connection.timezone)
        assert opening is not None
        ctx.flash(
            ctx._(
                "The site is closed now: attempt %(n)s is placed at its opening, %(at)s.",
                n=placed.attempt_number,
                at=opening.strftime("%d.%m.%Y %H:%M"),
            )
        )
    else:
        ctx.flash(ctx._("Attempt %(n)s is being placed now.", n=placed.attempt_number))
    return ctx.redirect(f"/calls/{ctx.call.id}#again")


def _note_text(ctx: Ctx) -> tuple[str, str]:
    """The note's text from the form, and the message why it cannot be kept ("" when it can)."""
    text = (ctx.form.get("text") or "").replace("\r\n", "\n").strip()
    if not text:
        return text, ctx._("A note cannot be empty.")
    if len(text) > NOTE_MAX:
        return text[:NOTE_MAX], ctx._("A note is at most %(n)s characters.", n=NOTE_MAX)
    return text, ""


async def call_notes(ctx: Ctx) -> Response:
    """Add a note to the call (edit level on its connection, docs/admin.md#notes-on-a-call)."""
    text, error = _note_text(ctx)
    if error:
        return await call_detail(ctx, status_code=400, note_error=error, note_text=text)
    await CallNote.create(call_id=ctx.call.id, author_id=ctx.user.id, text=text)
    ctx.flash(ctx._("The note is saved."))
    return ctx.redirect(f"/calls/{ctx.call.id}#notes")


async def call_note(ctx: Ctx) -> Response:
    """Change (``action=save``, ``text``) or delete (``action=delete``) a note: its author's, or anyone's
    with full access to the connection."""
    note_id = ctx.request.path_params["note_id"]
    note = None
    if note_id.isascii() and note_id.isdigit() and len(note_id) <= 9:
        note = await CallNote.get_or_none(id=int(note_id), call_id=ctx.call.id)
    if note is None:
        return await ctx.error(404, "There is no such note.")
    if note.author_id != ctx.user.id and not ctx.can_connection(ctx.call.connection_id, GrantLevel.FULL):
        return await ctx.error(403, "Only its author or a user with full access may change a note.")
    if ctx.form.get("action") == "delete":
        await note.delete()
        ctx.flash(ctx._("The note is deleted."))
        return ctx.redirect(f"/calls/{ctx.call.id}#notes")
    text, error = _note_text(ctx)
    if error:
        return await call_detail(ctx, status_code=400, note_error=error, note_text="")
    note.text = text
    await note.save(update_fields=["text", "updated_at"])
    ctx.flash(ctx._("The note is saved."))
    return ctx.redirect(f"/calls/{ctx.call.id}#notes")


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
            await CallTag.create(
                call_id=ctx.call.id, name=name, connection_id=ctx.call.connection_id, created_by_id=ctx.user.id
            )
    return ctx.redirect(f"/calls/{ctx.call.id}")


async def call_recording(ctx: Ctx) -> Response:
    """The recording of the call (or of one attempt, ``?attempt=N``); ``?download=1`` saves it."""
    ref = ctx.call.recording
    number = ctx.request.query_params.get("attempt")
    if number and number.isascii() and number.isdigit() and len(number) <= 4:
        attempt = await Attempt.get_or_none(call_id=ctx.call.id, number=int(number))
        ref = attempt.recording if attempt else ""
    name = f"call-{ctx.call.id}{'-' + number if number else ''}{Path(ref).suffix}"
    response = await recording_response(ctx, ref, name, ctx.request.query_params.get("download") == "1")
    return response or await ctx.error(404, "There is no recording.")


async def recording_response(ctx: Ctx, ref: str, name: str, download: bool) -> Response | None:
    """The recording behind a store reference (a local file, or an object in S3); None when it is gone."""
    if not ref:
        return None
    disposition = "attachment" if download else "inline"
    if not ref.startswith(S3_REF):
        if not Path(ref).is_file():
            return None
        return FileResponse(
            Path(ref),
            media_type=media_type(ref),
            filename=name if download else None,
            content_disposition_type=disposition,
        )
    data = await recording_store(ctx.perezvon.settings).read(ref)
    if data is None:
        return None
    header = f'{disposition}; filename="{name}"' if download else disposition
    return Response(data, media_type=media_type(ref), headers={"Content-Disposition": header})


async def signed_recording(ctx: Ctx) -> Response:
    """The recording linked from the success e-mail: no sign-in, only with a valid, unexpired signature."""
    params = ctx.request.path_params
    verdict = check_link(ctx.perezvon.settings, params["call_ref"], params["expires"], params["signature"])
    if verdict == 403:
        return await ctx.error(403, "This link to the recording is not valid.")
    if verdict == 410:
        return await ctx.error(
            410, "This link to the recording has expired. Open the call in Perezvon to listen to it."
        )
    call = await Call.get_or_none(id=params["call_ref"])
    response = None
    if call is not None:
        name = f"call-{call.id}{Path(call.recording).suffix}"
        response = await recording_response(ctx, call.recording, name, ctx.request.query_params.get("download") == "1")
    return response or await ctx.error(410, "The recording is no longer kept.")
