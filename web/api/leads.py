"""The public API the site script (and any client) talks to."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from perezvon.core.callbacks import leg_key
from perezvon.core.i18n import negotiate, translate_errors
from perezvon.core.intake import IntakeError, IntakeReason
from perezvon.core.models import Call, CallState
from perezvon.core.storable import BadJson, bad_text, parse_json

MAX_BODY = 64 * 1024
#: the longest site token there is (core/models.py Connection.token); a longer one names no site
MAX_TOKEN = 64
#: what a duplicate within the window answers instead of the earlier lead's ids (docs/calls.md#duplicates)
ALREADY_REQUESTED = "A callback to this number has already been requested."

#: the HTTP status of each reason the intake refuses a lead for
INTAKE_STATUS: dict[IntakeReason, int] = {
    IntakeReason.MALFORMED: 400,
    IntakeReason.INVALID: 422,
    IntakeReason.SITE_UNKNOWN: 403,
    IntakeReason.SITE_OFF: 403,
    IntakeReason.APP_OFF: 403,
    #: the site can neither call nor e-mail the lead (docs/calls.md#a-site-that-cannot-call)
    IntakeReason.CANNOT_CALL: 409,
    IntakeReason.FOREIGN_ORIGIN: 403,
    IntakeReason.RATE_LIMITED: 429,
    IntakeReason.UNAVAILABLE: 503,
}


def _cors(request: Request) -> dict[str, str]:
    """The site script runs on the customer's domain; the intake checks the Origin itself."""
    origin = request.headers.get("origin")
    if not origin:
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def error(request: Request, status: int, errors: dict) -> JSONResponse:
    locale = negotiate(request.headers.get("accept-language"))  # Russian unless English is preferred
    return JSONResponse({"errors": translate_errors(errors, locale)}, status_code=status, headers=_cors(request))


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it is over the 64 KiB limit (checked while reading)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return bytes(body)


def is_json_utf8(content_type: str | None) -> bool:
    """``application/json``, with no charset or UTF-8's: anything else (``text/plain``, a form, UTF-16) is 415."""
    if not content_type:
        return False
    media_type, _, rest = content_type.partition(";")
    if media_type.strip().lower() != "application/json":
        return False
    for parameter in rest.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


async def create_lead(request: Request) -> Response:
    if not is_json_utf8(request.headers.get("content-type")):
        return error(request, 415, {"_schema": ["Send the lead as JSON: Content-Type: application/json, UTF-8."]})
    body = await _read_body(request)
    if body is None:
        return error(request, 413, {"_schema": ["The request is too large (64 KiB at most)."]})
    try:
        payload = parse_json(body)
    except BadJson as exc:
        return error(request, 400, {"_schema": [str(exc)]})
    intake = request.app.state.perezvon.intake
    try:
        accepted = await intake.submit(
            payload, client_ip=request.client.host if request.client else "", origin=request.headers.get("origin")
        )
    except IntakeError as exc:
        return error(request, INTAKE_STATUS[exc.reason], exc.errors)
    if accepted.duplicate:
        # Anyone with the public site token and a phone number could send this: the earlier lead's ids
        # (and through them its call's state) belong to the visitor who sent it, not to this caller.
        locale = negotiate(request.headers.get("accept-language"))
        return JSONResponse(
            {"duplicate": True, "message": translate_errors(ALREADY_REQUESTED, locale)},
            status_code=200,
            headers=_cors(request),
        )
    return JSONResponse(
        {
            "id": accepted.lead_id,
            "lead_id": accepted.lead_id,
            "call_id": accepted.call_id,
            "scheduled_at": accepted.scheduled_at,
            "duplicate": False,
        },
        status_code=201,
        headers=_cors(request),
    )


async def preflight(request: Request) -> Response:
    headers = _cors(request)
    headers.update(
        {
            "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type, Accept-Language",
            "Access-Control-Max-Age": "86400",
        }
    )
    return Response(status_code=204, headers=headers)


def _phase(call: Call) -> str:
    if call.state == CallState.DIALLING:
        return "calling"
    if call.state == CallState.SCHEDULED:
        return "waiting"
    return "finished"


async def call_state(request: Request) -> Response:
    """Public state of one call for the visitor's timer screen: nothing personal."""
    token = request.query_params.get("token", "")
    if len(token) > MAX_TOKEN or bad_text(token):  # names no site; PostgreSQL would refuse a NUL in the query
        token = ""
    try:
        call_id = uuid.UUID(request.path_params["call_id"])
    except ValueError:
        call_id = None
    call = await Call.get_or_none(id=call_id, connection__token=token) if call_id and token else None
    if call is None:
        return error(request, 404, {"call_id": ["No such call for this site token."]})
    leg = None
    if call.state == CallState.DIALLING:
        noted = await request.app.state.perezvon.redis.get(leg_key(str(call.id)))
        number, _, dialled = (noted or b"").decode().partition(":")
        leg = dialled if number == str(call.attempts_made) and dialled in ("operator", "client") else None
    return JSONResponse(
        {
            "status": call.display_status,
            "phase": _phase(call),
            "leg": leg,
            "attempts": call.attempts_made,
            "next_attempt_at": call.next_attempt_at.isoformat().replace("+00:00", "Z")
            if call.next_attempt_at
            else None,
            "finished": call.state not in CallState.ACTIVE,
            "tags": {"unique": call.is_unique, "target": call.is_target},
        },
        headers={**_cors(request), "Cache-Control": "no-store"},
    )
