"""The public API the site script (and any client) talks to."""

from __future__ import annotations

import json
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from perezvon.core.callbacks import leg_key
from perezvon.core.i18n import negotiate, translate_errors
from perezvon.core.intake import IntakeError, IntakeReason
from perezvon.core.models import Call, CallState

MAX_BODY = 64 * 1024

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


async def create_lead(request: Request) -> Response:
    body = await _read_body(request)
    if body is None:
        return error(request, 413, {"_schema": ["The request is too large (64 KiB at most)."]})
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return error(request, 400, {"_schema": ["The body must be JSON."]})
    intake = request.app.state.perezvon.intake
    try:
        accepted = await intake.submit(
            payload, client_ip=request.client.host if request.client else "", origin=request.headers.get("origin")
        )
    except IntakeError as exc:
        return error(request, INTAKE_STATUS[exc.reason], exc.errors)
    return JSONResponse(
        {
            "id": accepted.lead_id,
            "lead_id": accepted.lead_id,
            "call_id": accepted.call_id,
            "scheduled_at": accepted.scheduled_at,
            "duplicate": accepted.duplicate,
        },
        status_code=200 if accepted.duplicate else 201,
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
