"""A connection's settings, tab by tab (docs/calls.md#connection-settings).

Every tab is validated on the server by the same marshmallow schemas the core
uses when it runs (``perezvon.core.schemas``, ``perezvon.core.redial.validate_matrix``); errors
are shown next to their fields and nothing typed is lost.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
from typing import Any

import httpx
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates
from starlette.responses import Response

from perezvon.core.domains import domains_of_others
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
from perezvon.core.redial import ABORT, MAX_ATTEMPTS, MatrixError, validate_matrix
from perezvon.core.registry import Direction, Notification
from perezvon.core.schemas import AnnouncementSettingsSchema, TelephonySettingsSchema, WorkingHoursSchema
from perezvon.web.admin.forms import field_views, flat_errors, load_form
from perezvon.web.admin.framework import Ctx
from perezvon.web.admin.views.auth import send_now

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
        status_code=400 if errors else 200,
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


async def tab_general(ctx: Ctx, connection: Connection) -> dict[str, Any] | Response:
    schema = GeneralSchema()
    values = {name: getattr(connection, name) for name in schema.fields}
    errors: dict[str, list[str]] = {}
    if _posting(ctx):
        loaded, raw, errors = load_form(schema, ctx.form, values)
        if loaded is not None:
            loaded["domain"] = clean_domain(loaded["domain"])
            loaded["extra_domains"] = sorted({clean_domain(d) for d in loaded["extra_domains"]} - {loaded["domain"]})
            taken = await domains_of_others([loaded["domain"], *loaded["extra_domains"]], connection.id)
            if loaded["domain"] in taken:
                errors = {"domain": ["Another connection already has this domain."]}
            elif taken:
                errors = {
                    "extra_domains": [ctx._("Another connection already has %(domains)s.", domains=", ".join(taken))]
                }
            else:
                await Connection.filter(id=connection.id).update(**loaded)
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


async def tab_numbers(ctx: Ctx, connection: Connection) -> dict[str, Any] | Response:
    errors: dict[str, list[str]] = {}
    if _posting(ctx):
        form = ctx.form
        action = form.get("action") or ""
        if action == "add_number":
            try:
                phone = normalise(form.get("phone") or "")
            except InvalidPhone as exc:
                errors["phone"] = [str(exc)]
            else:
                extension = (form.get("extension") or "").strip()
                office_id = int(form["office_id"]) if (form.get("office_id") or "").isdigit() else None
                if extension and not re.fullmatch(r"[0-9*#,wW]{1,20}", extension):
                    errors["extension"] = ["Digits, * and # only."]
                elif office_id and not await Office.exists(id=office_id, connection_id=connection.id):
                    errors["office_id"] = ["Not an office of this connection."]
                else:
                    await OperatorNumber.create(
                        connection_id=connection.id, phone=phone, extension=extension, office_id=office_id
                    )
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
                    loaded = schema_class().load(
                        {k[len(what) + 1 :]: v for k, v in form.items() if k.startswith(what + "_") and v != ""}
                    )
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
                                )
                return _saved(ctx, connection, "numbers")
    offices = await Office.filter(connection_id=connection.id)
    return {
        "numbers": await OperatorNumber.filter(connection_id=connection.id).prefetch_related("office"),
        "offices": offices,
        "departments": await Department.filter(connection_id=connection.id),
        "office_fields": field_views(
            OfficeSchema(), {}, {k[7:]: v for k, v in errors.items() if k.startswith("office_")}, ctx.locale, ""
        ),
        "errors": errors,
        "form": ctx.form if errors else {},
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


PAIRS_SHOWN = 12


def matrix_rows(matrix: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for chain, redials in (matrix or {}).items():
        for number, rules in (redials or {}).items():
            for pair, rule in (rules or {}).items():
                rows.append(
                    {
                        "chain": chain,
                        "number": number,
                        "pair": pair,
                        "action": ABORT if rule == ABORT else "redial",
                        "period": "" if rule == ABORT else rule.get("period", ""),
                        "direction": "" if rule == ABORT else rule.get("direction", chain),
                    }
                )
    return rows


def matrix_from_form(form) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, list[str]]]:
    matrix: dict[str, Any] = {}
    rows, problems = [], {}
    for index in range(int(form.get("rows") or 0)):
        get = lambda name: (form.get(f"m{index}_{name}") or "").strip()  # noqa: E731, B023 -- called in this iteration
        row = {
            "chain": get("chain"),
            "number": get("number"),
            "pair": get("pair"),
            "action": get("action"),
            "period": get("period"),
            "direction": get("direction"),
        }
        if not row["pair"]:
            continue  # an empty pair removes the row
        rows.append(row)
        if row["action"] == ABORT:
            rule: Any = ABORT
        else:
            try:
                rule = {"period": int(row["period"]), "direction": row["direction"] or Direction.OPERATOR_FIRST}
            except ValueError:
                problems[f"{row['chain']}.{row['number']}.{row['pair']}"] = [
                    "The period is whole seconds, up to a week."
                ]
                continue
        matrix.setdefault(row["chain"], {}).setdefault(row["number"], {})[row["pair"]] = rule
    return matrix, rows, problems


async def tab_telephony(ctx: Ctx, connection: Connection) -> dict[str, Any] | Response:
    schema = TelephonySettingsSchema()
    values = schema.load(connection.telephony or {})
    errors: dict[str, list[str]] = {}
    rows = matrix_rows(connection.redial_matrix)
    if _posting(ctx):
        loaded, raw, errors = load_form(schema, ctx.form, values)
        matrix, rows, problems = matrix_from_form(ctx.form)
        try:
            validate_matrix(matrix)
        except MatrixError as exc:
            problems.update(exc.errors)
        if problems:
            errors = {**errors, **{f"matrix.{k}": v for k, v in problems.items()}}
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
    matrix_errors = {k[7:]: v for k, v in errors.items() if k.startswith("matrix.")}
    return {
        "fields": field_views(schema, values, errors, ctx.locale),
        "matrix_rows": rows,
        "matrix_errors": matrix_errors,
        "blank_rows": 3,
        "redial_numbers": [str(n) for n in range(2, MAX_ATTEMPTS + 1)],
        "errors": errors,
    }


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
