"""A connection's settings, tab by tab (docs/calls.md#connection-settings).

Every tab is validated on the server by the same marshmallow schemas the core
uses when it runs (``perezvon.core.schemas``, ``perezvon.core.redial.validate_matrix``); errors
are shown next to their fields and nothing typed is lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import socket
import time
from copy import deepcopy
from typing import Any

import httpx
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates
from starlette.responses import Response
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from perezvon.core import lines, redial
from perezvon.core.callbacks import telephony_servers, worker_processes
from perezvon.core.domains import claim_domains, domains_of_others
from perezvon.core.intake import DELAY_NEEDS_RECIPIENT, MAX_CALL_DELAY_SECONDS
from perezvon.core.integrations import guarded_client
from perezvon.core.models import (
    CalendarDay,
    Connection,
    Department,
    GrantLevel,
    NotificationRecipient,
    Office,
    OperatorNumber,
    User,
)
from perezvon.core.outgoing import AddressNotAllowed, describe, find_refusal
from perezvon.core.phones import InvalidPhone, normalise
from perezvon.core.registry import Direction, Notification
from perezvon.core.schemas import AnnouncementSettingsSchema, TelephonySettingsSchema, WorkingHoursSchema
from perezvon.web.admin.forms import field_views, flat_errors, load_form
from perezvon.web.admin.framework import Ctx
from perezvon.web.admin.views import redial as redial_rows
from perezvon.web.admin.views.auth import send_now

log = logging.getLogger("perezvon.admin")

TABS = ("general", "numbers", "notifications", "telephony", "ivr", "hours", "code")
#: tabs whose page is nothing but their schema's generated fields share one template
TEMPLATES = {"general": "fields", "ivr": "fields"}
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def clean_domain(value: str) -> str:
    value = value.strip().lower()
    value = re.sub(r"^[a-z]+://", "", value).split("/")[0].split(":")[0]
    return value


class GeneralSchema(Schema):
    """The general settings (docs/calls.md#connection-settings), less the schedule (the Hours tab)."""

    class Meta:
        unknown = EXCLUDE

    domain = fields.String(required=True, metadata={"label": "Domain", "help": "The site script works only here."})
    extra_domains = fields.List(
        fields.String(), load_default=list, metadata={"label": "Extra domains", "help": "One per line."}
    )
    name = fields.String(
        load_default="",
        validate=validate.Length(max=200),
        metadata={"label": "Name", "help": "Spoken to the operator and the client when enabled."},
    )
    specialization = fields.String(
        load_default="", validate=validate.Length(max=200), metadata={"label": "Specialization"}
    )
    is_on = fields.Boolean(
        load_default=True,
        metadata={"label": "Connection is on", "help": "Off: the site script does nothing, no leads."},
    )
    timer_seconds = fields.Integer(
        load_default=36, validate=validate.Range(min=1, max=3600), metadata={"label": "Countdown timer, s"}
    )
    offhours_spread_seconds = fields.Integer(
        load_default=300,
        validate=validate.Range(min=0, max=86400),
        metadata={"label": "Off-hours spread, s", "help": "Leads left off-hours are called one every N s."},
    )
    target_call_seconds = fields.Integer(
        load_default=120, validate=validate.Range(min=1, max=86400), metadata={"label": "Target call, s"}
    )
    unique_window_days = fields.Integer(
        load_default=30, validate=validate.Range(min=1, max=3650), metadata={"label": "Unique call window, days"}
    )
    session_minutes = fields.Integer(
        load_default=45, validate=validate.Range(min=1, max=1440), metadata={"label": "Session, min"}
    )
    session_gap_minutes = fields.Integer(
        load_default=15, validate=validate.Range(min=0, max=1440), metadata={"label": "Delay between sessions, min"}
    )
    recording_retention_days = fields.Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0, max=3650),
        metadata={
            "label": "Keep recordings, days",
            "help": "Empty: the deployment's default. 0: keep them until the quota says otherwise.",
        },
    )

    @validates("domain")
    def _domain(self, value: str, **_) -> None:
        if not DOMAIN.match(clean_domain(value)):
            raise ValidationError("Not a domain name.")

    @validates("extra_domains")
    def _extra(self, value: list[str], **_) -> None:
        bad = [d for d in value if not DOMAIN.match(clean_domain(d))]
        if bad:
            raise ValidationError("Not a domain name.")


def snippet_for(ctx: Ctx, connection: Connection) -> str:
    base = ctx.perezvon.settings.public_url.split("://", 1)[-1]
    return f'<script async src="//{base}/inject?token={connection.token}"></script>'


async def settings_tab(ctx: Ctx) -> Response:
    tab = ctx.request.path_params["tab"]
    if tab not in TABS:
        return await ctx.error(404, "There is no such page.")
    connection = ctx.connection
    handler = TAB_HANDLERS[tab]
    result = await handler(ctx, connection)
    if isinstance(result, Response):
        return result
    errors = result.pop("errors", {})
    return await ctx.render(
        f"admin/settings_{TEMPLATES.get(tab, tab)}.html",
        status_code=400 if errors or result.get("edit_errors") else 200,
        tab=tab,
        tabs=TABS,
        connection=connection,
        errors=errors,
        snippet=snippet_for(ctx, connection),
        can_edit=ctx.can_connection(connection.id, GrantLevel.EDIT),
        **result,
    )


def _posting(ctx: Ctx) -> bool:
    return ctx.request.method == "POST"


def _saved(ctx: Ctx, connection: Connection, tab: str) -> Response:
    ctx.flash(ctx._("Saved."))
    return ctx.redirect(f"/connections/{connection.id}/settings/{tab}")


def _taken_errors(ctx: Ctx, primary: str, taken: list[str]) -> dict[str, list[str]]:
    """The form's errors for domains another connection holds (docs/calls.md#connection-settings)."""
    if primary in taken:
        return {"domain": ["Another connection already has this domain."]}
    if taken:
        return {"extra_domains": [ctx._("Another connection already has %(domains)s.", domains=", ".join(taken))]}
    return {}


async def tab_general(ctx: Ctx, connection: Connection) -> dict[str, Any] | Response:
    schema = GeneralSchema()
    values = {name: getattr(connection, name) for name in schema.fields}
    errors: dict[str, list[str]] = {}
    if _posting(ctx):
        loaded, raw, errors = load_form(schema, ctx.form, values)
        if loaded is not None:
            loaded["domain"] = clean_domain(loaded["domain"])
            loaded["extra_domains"] = sorted({clean_domain(d) for d in loaded["extra_domains"]} - {loaded["domain"]})
            domains = [loaded["domain"], *loaded["extra_domains"]]
            errors = _taken_errors(ctx, loaded["domain"], await domains_of_others(domains, connection.id))
            if not errors:
                try:
                    async with in_transaction() as db:
                        await Connection.filter(id=connection.id).using_db(db).update(**loaded)
                        await claim_domains(connection.id, domains, db)
                except IntegrityError:
                    # another save took one of them after the check above (the unique index decided)
                    taken = await domains_of_others(domains, connection.id)
                    errors = _taken_errors(ctx, loaded["domain"], taken) or {
                        "domain": ["Another connection already has this domain."]
                    }
                else:
                    return _saved(ctx, connection, "general")
        values = raw
    return {"fields": field_views(schema, values, errors, ctx.locale), "errors": errors}


class OfficeSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=validate.Length(min=1, max=200), metadata={"label": "Name"})
    address = fields.String(load_default="", validate=validate.Length(max=300), metadata={"label": "Address"})
    alt_name = fields.String(
        load_default="",
        validate=validate.Length(max=200),
        metadata={"label": "Alternative name", "help": "Matches the office named in site-form e-mails."},
    )
    latitude = fields.Float(
        load_default=None, allow_none=True, validate=validate.Range(min=-90, max=90), metadata={"label": "Latitude"}
    )
    longitude = fields.Float(
        load_default=None, allow_none=True, validate=validate.Range(min=-180, max=180), metadata={"label": "Longitude"}
    )
    phone_selector = fields.String(
        load_default="", validate=validate.Length(max=300), metadata={"label": "CSS selector of the site's phone"}
    )


class DepartmentSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=validate.Length(min=1, max=200), metadata={"label": "Name"})


LIST_MODELS = {"office": (Office, OfficeSchema), "department": (Department, DepartmentSchema)}


async def _number_values(form, connection: Connection) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """An operator number's fields from a form, checked: the phone (core/phones.py), extension and office."""
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    try:
        values["phone"] = normalise(form.get("phone") or "")
    except InvalidPhone as exc:
        errors["phone"] = [str(exc)]
    extension = (form.get("extension") or "").strip()
    if extension and not re.fullmatch(r"[0-9*#,wW]{1,20}", extension):
        errors["extension"] = ["Digits, * and # only."]
    values["extension"] = extension
    office_id = int(form["office_id"]) if (form.get("office_id") or "").isdigit() else None
    if office_id and not await Office.exists(id=office_id, connection_id=connection.id):
        errors["office_id"] = ["Not an office of this connection."]
    values["office_id"] = office_id
    limit = (form.get("max_calls") or "").strip()
    if limit and not (limit.isdigit() and int(limit) <= MAX_LINE_CALLS):
        errors["max_calls"] = ["A whole number from 0 to 1000; empty or 0: no limit."]
    values["max_calls"] = int(limit) if limit.isdigit() and int(limit) <= MAX_LINE_CALLS else 0
    return values, errors


#: the highest limit of simultaneous calls one operator number may be given
MAX_LINE_CALLS = 1000
#: the longest a callback may wait for a free operator line (docs/calls.md#operator-lines)
MAX_LINE_WAIT_SECONDS = 3600


async def _lines_values(
    form, connection: Connection, offices: list[Office]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The ringing strategy of the connection and of each office, and the wait for a free line."""
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    strategy = form.get("line_strategy") or ""
    if strategy not in lines.STRATEGIES:
        errors["line_strategy"] = ["Choose how the numbers are rung."]
    values["line_strategy"] = strategy
    wait = (form.get("line_wait_seconds") or "").strip()
    if not (wait.isdigit() and int(wait) <= MAX_LINE_WAIT_SECONDS):
        errors["line_wait_seconds"] = ["A whole number of seconds from 0 to 3600."]
    else:
        values["line_wait_seconds"] = int(wait)
    for office in offices:
        chosen = form.get(f"office_strategy_{office.id}") or ""
        if chosen not in ("", *lines.STRATEGIES):
            errors["office_strategy"] = ["Choose how the numbers are rung."]
        values[f"office_{office.id}"] = chosen
    return values, errors


def _list_item_values(what: str, form) -> dict[str, str]:
    """An office's or a department's fields as the form names them (``office_name`` ...), empty ones left out."""
    return {k[len(what) + 1 :]: v for k, v in form.items() if k.startswith(what + "_") and v != ""}


async def _edit(ctx: Ctx, connection: Connection, what: str) -> Response | dict[str, list[str]]:
    """Save one number, office or department in place; its errors, or a redirect; 404 for another's id."""
    form = ctx.form
    model = OperatorNumber if what == "number" else LIST_MODELS[what][0]
    item = await model.get_or_none(id=_id(form.get("id")), connection_id=connection.id)
    if item is None:
        return await ctx.error(404, "There is no such page.")
    if what == "number":
        values, errors = await _number_values(form, connection)
    else:
        try:
            values, errors = LIST_MODELS[what][1]().load(_list_item_values(what, form)), {}
        except ValidationError as exc:
            values, errors = {}, flat_errors(exc.messages)
    if errors:
        return errors
    await model.filter(id=item.id).update(**values)
    return _saved(ctx, connection, "numbers")


async def tab_numbers(ctx: Ctx, connection: Connection) -> dict[str, Any] | Response:
    errors: dict[str, list[str]] = {}
    #: the row whose edit failed: ("number" | "office" | "department", id), shown open with its errors
    editing: tuple[str, int] | None = None
    if _posting(ctx):
        form = ctx.form
        action = form.get("action") or ""
        if action.startswith("edit_") and action[5:] in ("number", *LIST_MODELS):
            what = action[5:]
            result = await _edit(ctx, connection, what)
            if isinstance(result, Response):
                return result
            editing, errors = (what, _id(form.get("id"))), result
        elif action == "add_number":
            values, errors = await _number_values(form, connection)
            if not errors:
                await OperatorNumber.create(connection_id=connection.id, **values)
                return _saved(ctx, connection, "numbers")
        elif action == "lines_settings":
            offices_now = await Office.filter(connection_id=connection.id)
            values, errors = await _lines_values(form, connection, offices_now)
            if not errors:
                async with in_transaction():
                    await Connection.filter(id=connection.id).update(
                        line_strategy=values["line_strategy"], line_wait_seconds=values["line_wait_seconds"]
                    )
                    for office in offices_now:
                        await Office.filter(id=office.id).update(line_strategy=values[f"office_{office.id}"])
                return _saved(ctx, connection, "numbers")
        elif action == "delete_number":
            await OperatorNumber.filter(id=_id(form.get("id")), connection_id=connection.id).delete()
            return _saved(ctx, connection, "numbers")
        elif action == "lists":
            await Connection.filter(id=connection.id).update(
                offices_enabled=form.get("offices_enabled") == "on",
                offices_required=form.get("offices_required") == "on",
                offices_title=(form.get("offices_title") or "")[:100],
                departments_enabled=form.get("departments_enabled") == "on",
                departments_required=form.get("departments_required") == "on",
                departments_title=(form.get("departments_title") or "")[:100],
            )
            return _saved(ctx, connection, "numbers")
        elif action.split("_", 1)[0] in ("add", "copy", "toggle", "delete") and action.split("_", 1)[-1] in LIST_MODELS:
            verb, what = action.split("_", 1)
            model, schema_class = LIST_MODELS[what]
            if verb == "add":
                try:
                    loaded = schema_class().load(_list_item_values(what, form))
                except ValidationError as exc:
                    errors = {f"{what}_{k}": v for k, v in flat_errors(exc.messages).items()}
                else:
                    await model.create(connection_id=connection.id, **loaded)
                    return _saved(ctx, connection, "numbers")
            else:
                item = await model.get_or_none(id=_id(form.get("id")), connection_id=connection.id)
                if item is not None:
                    if verb == "toggle":
                        await model.filter(id=item.id).update(is_active=not item.is_active)
                    elif verb == "delete":
                        await item.delete()
                    else:
                        data = {f: getattr(item, f) for f in schema_class().fields}
                        data["name"] = (data["name"] + " " + ctx._("(copy)"))[:200]
                        copy = await model.create(connection_id=connection.id, is_active=item.is_active, **data)
                        if what == "office":  # an office's own operator numbers go with it
                            for number in await OperatorNumber.filter(office_id=item.id):
                                await OperatorNumber.create(
                                    connection_id=connection.id,
                                    office_id=copy.id,
                                    phone=number.phone,
                                    extension=number.extension,
                                    max_calls=number.max_calls,
                                )
                return _saved(ctx, connection, "numbers")
    offices = await Office.filter(connection_id=connection.id)
    return {
        "numbers": await OperatorNumber.filter(connection_id=connection.id).prefetch_related("office"),
        "offices": offices,
        "strategies": lines.STRATEGIES,
        "failing_after": lines.FAILING_AFTER,
        "departments": await Department.filter(connection_id=connection.id),
        "office_fields": field_views(
            OfficeSchema(),
            {},
            {} if editing else {k[7:]: v for k, v in errors.items() if k.startswith("office_")},
            ctx.locale,
            "",
        ),
        "editing": editing,
        "errors": {} if editing else errors,
        "edit_errors": errors if editing else {},
        "form": ctx.form if errors and not editing else {},
        "edit_form": ctx.form if editing else {},
    }


def _id(value: str | None) -> int:
    return int(value) if value and value.isdigit() else -1


class RecipientSchema(Schema):
    email = fields.Email(required=True)
    office_id = fields.Integer(load_default=None, allow_none=True)
    department_id = fields.Integer(load_default=None, allow_none=True)
    on_success = fields.Boolean(load_default=False)
    on_failure = fields.Boolean(load_default=False)


async def tab_notifications(ctx: Ctx, connection: Connection) -> dict[str, Any] | Response:
    errors: dict[str, list[str]] = {}
    if _posting(ctx):
        form = ctx.form
        if form.get("action") == "delete":
            await NotificationRecipient.filter(id=_id(form.get("id")), connection_id=connection.id).delete()
            return _saved(ctx, connection, "notifications")
        raw = {
            "email": (form.get("email") or "").strip(),
            "office_id": form.get("office_id") or None,
            "department_id": form.get("department_id") or None,
            "on_success": form.get("on_success") == "on",
            "on_failure": form.get("on_failure") == "on",
        }
        try:
            loaded = RecipientSchema().load(raw)
        except ValidationError as exc:
            errors = flat_errors(exc.messages)
        else:
            if loaded["office_id"] and not await Office.exists(id=loaded["office_id"], connection_id=connection.id):
                errors["office_id"] = ["Not an office of this connection."]
            elif loaded["department_id"] and not await Department.exists(
                id=loaded["department_id"], connection_id=connection.id
            ):
                errors["department_id"] = ["Not a department of this connection."]
            elif not (loaded["on_success"] or loaded["on_failure"]):
                errors["on_success"] = ["Choose at least one event."]
            else:
                await NotificationRecipient.create(connection_id=connection.id, **loaded)
                return _saved(ctx, connection, "notifications")
    return {
        "recipients": await NotificationRecipient.filter(connection_id=connection.id).prefetch_related(
            "office", "department"
        ),
        "offices": await Office.filter(connection_id=connection.id),
        "departments": await Department.filter(connection_id=connection.id),
        "errors": errors,
        "form": ctx.form if errors else {},
    }


async def tab_telephony(ctx: Ctx, connection: Connection) -> dict[str, Any] | Response:
    schema = TelephonySettingsSchema()
    values = schema.load(connection.telephony or {})
    errors: dict[str, list[str]] = {}
    rows = redial_rows.matrix_rows(connection.redial_matrix)
    row_errors: dict[int, list[str]] = {}
    matrix = connection.redial_matrix or {}
    if _posting(ctx) and ctx.form.get("action") == "reset_rule":
        return await _reset_rule(ctx, connection)
    if _posting(ctx):
        loaded, raw, errors = load_form(schema, ctx.form, values)
        matrix, rows, row_errors = redial_rows.matrix_from_form(ctx.form)
        if row_errors:
            errors = {**errors, "matrix": ["Some redial rules need a correction; see the marked rows."]}
        if (
            loaded is not None
            and loaded["first_call_delay_seconds"] > MAX_CALL_DELAY_SECONDS
            and not await NotificationRecipient.exists(connection_id=connection.id)
        ):  # e-mailed instead of called, to nobody (docs/calls.md#the-59-s-rule)
            errors = {**errors, "first_call_delay_seconds": [DELAY_NEEDS_RECIPIENT]}
        if not errors:
            await Connection.filter(id=connection.id).update(telephony=loaded, redial_matrix=matrix)
            return _saved(ctx, connection, "telephony")
        values = raw
    chain = values.get("first_direction") or Direction.OPERATOR_FIRST
    return {
        "fields": field_views(schema, values, errors, ctx.locale),
        "matrix_rows": rows,
        "row_errors": row_errors,
        "new_rows": [redial_rows.blank_row(c) for c in Direction.ALL],
        "built_in": redial.DEFAULT_MATRIX,
        "pair_words": lambda pair: redial_rows.pair_words(ctx, pair),
        "duration_words": lambda seconds: redial_rows.duration_words(ctx, seconds),
        "redial_numbers": redial_rows.REDIAL_NUMBERS,
        "scenarios": redial_rows.preview(ctx, matrix, str(chain)),
        "errors": errors,
        "pbxs": await _pbx_states(ctx),
        "processes": await _worker_processes(ctx),
    }


async def _pbx_states(ctx: Ctx) -> list[dict[str, Any]]:
    """The PBXs calls go out through and whether each is in rotation (docs/asterisk.md#a-pool-of-pbxs)."""
    try:
        return await telephony_servers(ctx.perezvon.redis)
    except Exception as exc:  # Redis down: the tab still opens, without the status
        log.warning("could not read the workers' heartbeats: %s", exc)
        return []


async def _worker_processes(ctx: Ctx) -> list[dict[str, Any]] | None:
    """The worker processes alive now, what each does and how long ago it was heard from
    (docs/deploy.md#pushes-in-processes-of-their-own); None when Redis cannot say."""
    try:
        calls, deliveries = await worker_processes(ctx.perezvon.redis)
    except Exception as exc:  # Redis down: the tab still opens, saying the state is unknown
        log.warning("could not read the workers' heartbeats: %s", exc)
        return None
    now = time.time()
    return [
        {
            "name": str(beat.get("worker") or "?"),
            "work": work,
            "in_flight": beat.get("in_flight"),
            "seconds_ago": max(0, round(now - float(beat["at"]))),
        }
        for work, beats in (("calls", calls), ("deliveries", deliveries))
        for beat in beats
    ]


async def _reset_rule(ctx: Ctx, connection: Connection) -> Response:
    """Back to the built-in rule: the connection's change to that pair (every redial of one chain) goes."""
    chain, _, pair = (ctx.form.get("rule") or "").partition("|")
    matrix = deepcopy(connection.redial_matrix or {})
    every = (matrix.get(chain) or {}).get(redial.EVERY_REDIAL) or {}
    if pair in every:
        del every[pair]
        if not every:
            del matrix[chain][redial.EVERY_REDIAL]
        if not matrix[chain]:
            del matrix[chain]
        await Connection.filter(id=connection.id).update(redial_matrix=matrix)
    ctx.flash(ctx._("The rule is back to the built-in one."))
    return ctx.redirect(f"/connections/{connection.id}/settings/telephony")


async def tab_ivr(ctx: Ctx, connection: Connection) -> dict[str, Any] | Response:
    schema = AnnouncementSettingsSchema()
    values = schema.load(connection.announcements or {})
    errors: dict[str, list[str]] = {}
    if _posting(ctx):
        loaded, raw, errors = load_form(schema, ctx.form, values)
        if loaded is not None:
            await Connection.filter(id=connection.id).update(announcements=loaded)
            return _saved(ctx, connection, "ivr")
        values = raw
    return {"fields": field_views(schema, values, errors, ctx.locale), "errors": errors}


CALENDAR_KINDS = ("short", "holiday", "workday")


async def tab_hours(ctx: Ctx, connection: Connection) -> dict[str, Any] | Response:
    errors: dict[str, Any] = {}
    schedule = {day: (connection.schedule or {}).get(day) for day in map(str, range(1, 8))}
    timezone, convenient = connection.timezone, connection.convenient_time
    if _posting(ctx):
        form = ctx.form
        action = form.get("action")
        if action == "delete_day":
            await CalendarDay.filter(id=_id(form.get("id")), connection_id=connection.id).delete()
            return _saved(ctx, connection, "hours")
        if action == "add_day":
            errors = await _add_calendar_day(form, connection)
            if not errors:
                return _saved(ctx, connection, "hours")
        else:
            schedule = {
                day: (
                    [form.get(f"open_{day}", ""), form.get(f"close_{day}", "")]
                    if form.get(f"works_{day}") == "on"
                    else None
                )
                for day in map(str, range(1, 8))
            }
            timezone, convenient = form.get("timezone") or "", form.get("convenient_time") or ""
            try:
                loaded = WorkingHoursSchema().load(
                    {"timezone": timezone, "schedule": schedule, "convenient_time": convenient}
                )
            except ValidationError as exc:
                errors = flat_errors(exc.messages)
            else:
                await Connection.filter(id=connection.id).update(**loaded)
                return _saved(ctx, connection, "hours")
    return {
        "schedule": schedule,
        "timezone": timezone,
        "convenient_time": convenient,
        "calendar": await CalendarDay.filter(connection_id=connection.id).order_by("date"),
        "calendar_kinds": CALENDAR_KINDS,
        "errors": errors,
        "form": ctx.form if errors else {},
    }


async def _add_calendar_day(form, connection: Connection) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    try:
        date = dt.date.fromisoformat(form.get("date") or "")
    except ValueError:
        return {"date": ["Not a date (YYYY-MM-DD)."]}
    kind = form.get("kind")
    if kind not in CALENDAR_KINDS:
        return {"kind": ["Choose the kind of day."]}
    opens, closes = (form.get("opens") or None), (form.get("closes") or None)
    if kind != "holiday":
        try:
            WorkingHoursSchema().load({"schedule": {"1": [opens or "", closes or ""]}})
        except ValidationError:
            errors["opens"] = ["Give opening and closing as HH:MM."]
    else:
        opens = closes = None
    if not errors:
        await CalendarDay.update_or_create(
            connection_id=connection.id, date=date, defaults={"kind": kind, "opens": opens, "closes": closes}
        )
    return errors


async def tab_code(ctx: Ctx, connection: Connection) -> dict[str, Any] | Response:
    errors: dict[str, list[str]] = {}
    check = None
    if _posting(ctx):
        action = ctx.form.get("action")
        if action == "email":
            # only someone who may see this connection gets its code, whatever id the form carries
            chosen = _id(ctx.form.get("user_id"))
            user = next((u for u in await users_of(connection) if u.id == chosen), None)
            if user is None:
                errors["user_id"] = ["Choose a user of this connection with an e-mail address."]
            else:
                sent = await send_now(
                    ctx.perezvon,
                    Notification(
                        kind="site_snippet",
                        recipients=(user.email,),
                        subject_id=str(connection.id),
                        data={
                            "connection": {
                                "domain": connection.domain,
                                "name": connection.name,
                                "timezone": connection.timezone,
                            },
                            "snippet": snippet_for(ctx, connection),
                            "user": {"first_name": user.first_name},
                            "locale": ctx.locale,
                        },
                    ),
                )
                if sent:
                    ctx.flash(ctx._("The code is sent to %(email)s.", email=user.email))
                    return ctx.redirect(f"/connections/{connection.id}/settings/code")
                errors["user_id"] = ["No notifier could send it; check the mail settings."]
        elif action == "check":
            check = await check_installation(connection)
    users = await users_of(connection)
    return {"users": users, "check": check, "errors": errors}


async def users_of(connection: Connection) -> list[User]:
    from tortoise.expressions import Q

    from perezvon.core.models import AccessGrant

    user_ids = await AccessGrant.filter(
        Q(connection_id=connection.id) | Q(project_id=connection.project_id)
    ).values_list("user_id", flat=True)
    return await User.filter(id__in=list(set(user_ids)), is_active=True).exclude(email=None).order_by("last_name")


async def check_installation(
    connection: Connection, timeout: float = 10.0, urls: list[str] | None = None
) -> dict[str, Any]:
    """Fetch the site's home page and look for the connection's token (docs/admin.md#site-code).

    Only "found or not" and the status code are reported, never the page itself.
    The domain is typed by users, so the fetch goes through the outgoing guard
    (``perezvon.core.outgoing``): a domain or a redirect pointing inside the
    server's network is refused, and ``refused`` says which address it was.
    """
    result: dict[str, Any] = {"url": "", "found": False, "error": "", "refused": None}
    refused: AddressNotAllowed | None = None
    for url in urls or [f"https://{connection.domain}/", f"http://{connection.domain}/"]:
        result["url"] = url
        try:
            async with guarded_client(
                timeout=timeout,
                follow_redirects=True,  # every hop is a new request, checked again by the guard
                max_redirects=5,
                headers={"User-Agent": "Perezvon installation check"},
            ) as client:
                response = await client.get(url)
        except AddressNotAllowed as exc:
            refused = exc
            continue
        except httpx.HTTPError as exc:
            refused = refused or find_refusal(exc)
            if refused is None:
                result["error"] = _fetch_error(exc)
            continue
        body = response.text[:5_000_000]
        result.update(status=response.status_code, found=connection.token in body, error="", refused=None)
        return result
    if refused is not None:
        result.update(error="the domain points to a private address", refused=describe(refused))
    return result


def _fetch_error(exc: httpx.HTTPError) -> str:
    """A short reason for the admin, from the failure's kind (a name that does not resolve says so)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return "the domain does not resolve"
        cause = cause.__cause__ or getattr(cause, "os_error", None)
    return type(exc).__name__


async def download_snippet(ctx: Ctx) -> Response:
    text = snippet_for(ctx, ctx.connection) + "\n"
    return Response(
        text,
        media_type="text/html; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="perezvon-{ctx.connection.domain}.html"'},
    )


TAB_HANDLERS = {
    "general": tab_general,
    "numbers": tab_numbers,
    "notifications": tab_notifications,
    "telephony": tab_telephony,
    "ivr": tab_ivr,
    "hours": tab_hours,
    "code": tab_code,
}
