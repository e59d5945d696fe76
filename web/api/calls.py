"""The read API for CRMs and BI: ``GET /api/v1/calls`` and ``GET /api/v1/calls/{id}``.

A per-user API key (made on the profile page) goes in ``Authorization: Bearer``;
the user sees exactly the calls the admin would show them (``perezvon.core.access``),
filtered as the Calls table filters (``perezvon.core.call_filters``), newest first,
with an opaque cursor to the next page.
"""

from __future__ import annotations

import uuid
from typing import Any

from marshmallow import Schema, ValidationError, fields
from starlette.requests import Request
from starlette.responses import JSONResponse

from perezvon.core.access import Access, api_key_for
from perezvon.core.call_again import CallAgainRefused, call_again
from perezvon.core.call_filters import BadCursor, auto_tags, page_of_calls, parse_filters, user_tags_of
from perezvon.core.i18n import negotiate, translate_errors
from perezvon.core.masking import mask_phone
from perezvon.core.models import ApiKey, Attempt, Call, Connection, Delivery, Department, GrantLevel, Lead, Office

DEFAULT_LIMIT = 50


def _errors(status: int, errors: dict[str, Any], request: Request, headers: dict | None = None) -> JSONResponse:
    locale = negotiate(request.headers.get("accept-language"))
    return JSONResponse({"errors": translate_errors(errors, locale)}, status_code=status, headers=headers)


async def _access(request: Request) -> Access | JSONResponse:
    key = await _key(request)
    if isinstance(key, JSONResponse):
        return key
    return await Access.for_user(key.user)


async def _key(request: Request) -> ApiKey | JSONResponse:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return _errors(
            401, {"_schema": ["Send an API key: Authorization: Bearer <key>."]}, request, {"WWW-Authenticate": "Bearer"}
        )
    found = await api_key_for(key.strip())
    if found is None:
        return _errors(
            401,
            {"_schema": ["The API key is unknown or revoked."]},
            request,
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return found


class AttemptOut(Schema):
    number = fields.Integer()
    direction = fields.String()
    operator_number = fields.String()
    started_at = fields.DateTime()
    ended_at = fields.DateTime(allow_none=True)
    operator_status = fields.Integer(allow_none=True)
    client_status = fields.Integer(allow_none=True)
    duration_seconds = fields.Integer()
    display_status = fields.String()
    reason = fields.String()


class LeadOut(Schema):
    id = fields.UUID()
    source = fields.String(metadata={"description": "lead source key (widget, leadgen, siteforms, api ...)"})
    phone = fields.String()
    name = fields.String()
    office = fields.String(allow_none=True)
    department = fields.String(allow_none=True)
    preferred_at = fields.DateTime(allow_none=True)
    page_url = fields.String()
    referrer = fields.String()
    utm = fields.Dict(keys=fields.String(), values=fields.String())
    channel = fields.String()
    visitor_id = fields.String()
    visit = fields.Dict(metadata={"description": "pages, seconds_on_site, trigger, rule"})
    displayed_phone = fields.String()
    created_at = fields.DateTime()


class DeliveryOut(Schema):
    integration = fields.String()
    event = fields.String()
    try_number = fields.Integer()
    ok = fields.Boolean()
    status = fields.Integer(allow_none=True)
    created_at = fields.DateTime()


class CallOut(Schema):
    id = fields.UUID()
    connection_id = fields.Integer()
    site = fields.String(metadata={"description": "the connection's domain"})
    created_at = fields.DateTime()
    status = fields.String(
        metadata={"description": "pending, successful, lost, unsuccessful, failed, cancelled, notified"}
    )
    reason = fields.String()
    state = fields.String()
    first_direction = fields.String()
    attempts_made = fields.Integer()
    operator_number = fields.String()
    duration_seconds = fields.Integer()
    finished_at = fields.DateTime(allow_none=True)
    auto_tags = fields.List(fields.String())
    user_tags = fields.List(fields.String())
    has_recording = fields.Boolean()
    lead = fields.Nested(LeadOut)
    attempts = fields.List(fields.Nested(AttemptOut), metadata={"description": "only in GET /api/v1/calls/{id}"})
    deliveries = fields.List(fields.Nested(DeliveryOut), metadata={"description": "only in GET /api/v1/calls/{id}"})


class CallPage(Schema):
    calls = fields.List(fields.Nested(CallOut))
    next_cursor = fields.String(
        allow_none=True, metadata={"description": "pass as ?cursor= for the next page; null on the last"}
    )


async def _serialise(calls: list[Call], access: Access, detail: bool = False) -> list[dict[str, Any]]:
    """The calls as the API shows them; a key whose user may not see a connection's client contacts gets
    the phone masked (``+7 916 ***-**-33``), as the admin shows it (docs/admin.md#who-may-do-what)."""
    leads = [c.lead for c in calls]
    offices = dict(
        await Office.filter(id__in={lead.office_id for lead in leads if lead.office_id}).values_list("id", "name")
    )
    departments = dict(
        await Department.filter(id__in={lead.department_id for lead in leads if lead.department_id}).values_list(
            "id", "name"
        )
    )
    domains = dict(await Connection.filter(id__in={c.connection_id for c in calls}).values_list("id", "domain"))
    tags = await user_tags_of([c.id for c in calls])
    out = []
    for call in calls:
        lead: Lead = call.lead
        item = {
            "id": call.id,
            "connection_id": call.connection_id,
            "site": domains.get(call.connection_id, ""),
            "created_at": call.created_at,
            "status": call.display_status,
            "reason": call.reason,
            "state": call.state,
            "first_direction": call.first_direction,
            "attempts_made": call.attempts_made,
            "operator_number": call.operator_number,
            "duration_seconds": call.duration_seconds,
            "finished_at": call.finished_at,
            "auto_tags": auto_tags(call),
            "user_tags": tags.get(str(call.id), []),
            "has_recording": bool(call.recording),
            "lead": {
                "id": lead.id,
                "source": lead.source,
                "phone": lead.phone if access.sees_contacts(call.connection_id) else mask_phone(lead.phone),
                "name": lead.name,
                "office": offices.get(lead.office_id),
                "department": departments.get(lead.department_id),
                "preferred_at": lead.preferred_at,
                "page_url": lead.page_url,
                "referrer": lead.referrer,
                "utm": {
                    "source": lead.utm_source,
                    "medium": lead.utm_medium,
                    "campaign": lead.utm_campaign,
                    "content": lead.utm_content,
                    "term": lead.utm_term,
                },
                "channel": lead.channel,
                "visitor_id": lead.visitor_id,
                "visit": lead.visit or {},
                "displayed_phone": lead.displayed_phone,
                "created_at": lead.created_at,
            },
        }
        if detail:
            item["attempts"] = await Attempt.filter(call_id=call.id).order_by("number").values(*AttemptOut().fields)
            item["deliveries"] = [
                {
                    "integration": d["integration_key"],
                    **{k: d[k] for k in ("event", "try_number", "ok", "status", "created_at")},
                }
                for d in await Delivery.filter(call_id=call.id)
                .order_by("id")
                .values("integration_key", "event", "try_number", "ok", "status", "created_at")
            ]
        out.append(CallOut().dump(item))
    return out


async def list_calls(request: Request) -> JSONResponse:
    access = await _access(request)
    if isinstance(access, JSONResponse):
        return access
    params = request.query_params
    try:
        filters = parse_filters(params, empty_means_absent=False)
    except ValidationError as exc:
        return _errors(422, exc.messages, request)
    limit_text = params.get("limit", str(DEFAULT_LIMIT))
    if not (limit_text.isascii() and limit_text.isdigit() and len(limit_text) <= 3) or not 1 <= int(limit_text) <= 500:
        return _errors(422, {"limit": ["A whole number from 1 to 500."]}, request)
    try:
        calls, next_cursor = await page_of_calls(
            filters,
            access.connection_ids_to_search(filters),
            cursor=params.get("cursor") or None,
            limit=int(limit_text),
        )
    except BadCursor as exc:
        return _errors(422, {"cursor": [str(exc)]}, request)
    return JSONResponse({"calls": await _serialise(calls, access), "next_cursor": next_cursor})


async def get_call(request: Request) -> JSONResponse:
    access = await _access(request)
    if isinstance(access, JSONResponse):
        return access
    try:
        call_id = uuid.UUID(request.path_params["call_id"])
    except ValueError:
        return _errors(404, {"_schema": ["No such call."]}, request)
    call = await Call.get_or_none(id=call_id).select_related("lead")
    # a call the user may not see is answered exactly like one that does not exist
    if call is None or not access.can_connection(call.connection_id):
        return _errors(404, {"_schema": ["No such call."]}, request)
    return JSONResponse((await _serialise([call], access, detail=True))[0])


class RedialAttemptOut(Schema):
    number = fields.Integer(metadata={"description": "the new attempt's number in the call's chain"})
    due_at = fields.DateTime(metadata={"description": "now, or the site's next opening"})
    waits_for_opening = fields.Boolean(
        metadata={"description": "the site is closed now: the attempt is placed at its next opening"}
    )


class RedialOut(Schema):
    call_id = fields.UUID()
    attempt = fields.Nested(RedialAttemptOut)
    requested_by = fields.String(metadata={"description": "the key's user and the key, as the call's page shows it"})
    requested_at = fields.DateTime()
    call = fields.Nested(CallOut, metadata={"description": "the call as GET /api/v1/calls/{id} shows it now"})


async def redial_call(request: Request) -> JSONResponse:
    """``POST /api/v1/calls/{id}/redial``: call again now (docs/calls.md#call-again); edit access needed."""
    key = await _key(request)
    if isinstance(key, JSONResponse):
        return key
    access = await Access.for_user(key.user)
    try:
        call_id = uuid.UUID(request.path_params["call_id"])
    except ValueError:
        return _errors(404, {"_schema": ["No such call."]}, request)
    call = await Call.get_or_none(id=call_id)
    if call is None or not access.can_connection(call.connection_id):
        return _errors(404, {"_schema": ["No such call."]}, request)
    if not access.can_connection(call.connection_id, GrantLevel.EDIT):
        return _errors(403, {"_schema": ["Calling again needs edit access to the call's site."]}, request)
    try:
        placed = await call_again(request.app.state.perezvon.redis, call, user=key.user, api_key=key)
    except CallAgainRefused as exc:
        return _errors(exc.status, {"_schema": [exc.message]}, request)
    call = await Call.get(id=call_id).select_related("lead")
    body = RedialOut().dump(
        {
            "call_id": call.id,
            "attempt": {
                "number": placed.attempt_number,
                "due_at": placed.due_at,
                "waits_for_opening": placed.waits_for_opening,
            },
            "requested_by": placed.redial.requested_by,
            "requested_at": placed.redial.created_at,
        }
    )
    body["call"] = (await _serialise([call], access, detail=True))[0]  # already dumped by CallOut
    return JSONResponse(body, status_code=202)


def describe_read_api(spec) -> None:
    """Add the read API to the ``/openapi.json`` spec (apispec, from the schemas above)."""
    from perezvon.core.call_filters import CallFilterSchema

    spec.components.schema("Call", schema=CallOut)
    spec.components.schema("CallPage", schema=CallPage)
    spec.components.security_scheme(
        "apiKey", {"type": "http", "scheme": "bearer", "description": "a key made on the admin's profile page"}
    )

    def err(text: str) -> dict[str, Any]:
        return {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}},
        }

    # each filter's schema comes from its marshmallow field (types, enums, ranges, lengths), through apispec
    converter = next(plugin for plugin in spec.plugins if hasattr(plugin, "converter")).converter
    filters = []
    for name, field in CallFilterSchema().fields.items():
        schema: dict[str, Any] = converter.field2property(field)
        for key in ("default", "description"):
            schema.pop(key, None)
        # an empty value is refused (422), as any value outside these schemas is
        target = schema["items"] if schema.get("type") == "array" else schema
        if target.get("type") == "string" and "enum" not in target and "format" not in target:
            target["minLength"] = 1
        filters.append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": schema,
                "description": field.metadata.get("description", ""),
                **({"explode": True, "style": "form"} if schema.get("type") == "array" else {}),
            }
        )
    spec.path(
        path="/api/v1/calls",
        operations={
            "get": {
                "summary": "Calls the key's user may see, newest first, filtered as in the admin's Calls table",
                "security": [{"apiKey": []}],
                "parameters": [
                    *filters,
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "next_cursor of the previous page",
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": DEFAULT_LIMIT},
                    },
                ],
                "responses": {
                    "200": {"description": "one page", "content": {"application/json": {"schema": "CallPage"}}},
                    "401": err("no key, or an unknown or revoked key"),
                    "422": err("a filter, the cursor or the limit is invalid"),
                },
            }
        },
    )
    spec.path(
        path="/api/v1/calls/{call_id}",
        operations={
            "get": {
                "summary": "One call with its attempt chain and integration deliveries",
                "security": [{"apiKey": []}],
                "parameters": [
                    {"name": "call_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
                ],
                "responses": {
                    "200": {"description": "the call", "content": {"application/json": {"schema": "Call"}}},
                    "401": err("no key, or an unknown or revoked key"),
                    "404": err("no such call, or not one this user may see"),
                },
            }
        },
    )
    spec.components.schema("Redial", schema=RedialOut)
    spec.path(
        path="/api/v1/calls/{call_id}/redial",
        operations={
            "post": {
                "summary": "Call again: a new attempt of the call now, chained to it (docs/calls.md#call-again)",
                "description": (
                    "Needs a key whose user has edit access to the call's site. The attempt is placed by the "
                    "worker at once, or at the site's next opening when it is closed now; the call is pending "
                    "until it ends by the normal rules. Recorded on the call (who, when)."
                ),
                "security": [{"apiKey": []}],
                "parameters": [
                    {"name": "call_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
                ],
                "responses": {
                    "202": {
                        "description": "the attempt is queued",
                        "content": {"application/json": {"schema": "Redial"}},
                    },
                    "401": err("no key, or an unknown or revoked key"),
                    "403": err("the key's user may see the call but has only view access"),
                    "404": err("no such call, or not one this user may see"),
                    "409": err(
                        "the call is being dialled right now, the site is switched off or has no operator "
                        "number, or the call has had the most attempts a call may have"
                    ),
                },
            }
        },
    )
