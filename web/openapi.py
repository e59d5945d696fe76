"""``GET /openapi.json``: the public API described from the same marshmallow schemas."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from perezvon.core.call_filters import STATUSES
from perezvon.core.schemas import LeadSchema
from perezvon.web.api.calls import describe_read_api
from perezvon.web.api.leads import MAX_TOKEN

#: messages per field: a list of messages, or (a nested field: ``utm``, ``visit``, ``extra``, a list's items)
#: the same shape again, one level down
FIELD_ERRORS = {
    "type": "object",
    "additionalProperties": {
        "anyOf": [
            {"type": "array", "items": {"type": "string"}},
            {"$ref": "#/components/schemas/FieldErrors"},
        ]
    },
    "description": "messages per field; `_schema` for the request (or a nested object) as a whole; "
    'a nested field\'s messages are nested the same way (`{"utm": {"source": ["..."]}}`)',
}
ERRORS = {
    "type": "object",
    "required": ["errors"],
    "properties": {"errors": {"$ref": "#/components/schemas/FieldErrors"}},
}


def build_spec(version: str, server_url: str) -> dict:
    spec = APISpec(
        title="Perezvon public API",
        version=version,
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        servers=[{"url": server_url}],
    )
    spec.components.schema("Lead", schema=LeadSchema)
    spec.components.schema("FieldErrors", FIELD_ERRORS)
    spec.components.schema("Errors", ERRORS)

    def err(text: str) -> dict[str, Any]:
        return {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}},
        }

    accepted = {
        "type": "object",
        "required": ["id", "lead_id", "call_id", "scheduled_at", "duplicate"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "lead_id": {"type": "string", "format": "uuid"},
            "call_id": {"type": "string", "format": "uuid"},
            "scheduled_at": {"type": "string", "format": "date-time", "description": "when the first call is placed"},
            "duplicate": {"type": "boolean", "const": False},
        },
    }
    already_requested = {
        "type": "object",
        "required": ["duplicate", "message"],
        "properties": {
            "duplicate": {"type": "boolean", "const": True},
            "message": {"type": "string", "description": '"a callback to this number has already been requested"'},
        },
        "description": "no identifiers: anyone with the public site token and the number could ask",
    }
    spec.path(
        path="/api/v1/leads",
        operations={
            "post": {
                "summary": "Leave a lead: the site's operator calls the visitor back",
                "description": "The body is a JSON object in UTF-8 (`Content-Type: application/json`). "
                "`consent` must be JSON `true`. `phone` must be a valid number. No text may hold a NUL or a "
                "lone surrogate, no number may be NaN or infinite, and `extra` may nest 30 levels at most.",
                "requestBody": {"required": True, "content": {"application/json": {"schema": "Lead"}}},
                "responses": {
                    "201": {
                        "description": "accepted; the callback is scheduled",
                        "content": {"application/json": {"schema": accepted}},
                    },
                    "200": {
                        "description": "the same phone on the same site within the duplicate window (60 s): "
                        "already requested, no new lead (docs/calls.md#duplicates)",
                        "content": {"application/json": {"schema": already_requested}},
                    },
                    "400": err(
                        "the body is not JSON (or not UTF-8, or has NaN, or nests too deeply), or not an object"
                    ),
                    "403": err("unknown or switched-off site token, the lead's app switched off, or a foreign Origin"),
                    "409": err("the site can neither call the lead nor e-mail it to anyone (no operator number ...)"),
                    "413": err("the body is over 64 KiB"),
                    "415": err("the body is not `application/json` in UTF-8"),
                    "422": err(
                        "a field is invalid (errors by field, nested fields nested): phone not a valid number, "
                        "consent not `true`, preferred_at outside a day before now .. a year ahead, "
                        "unknown office or department, a value no store can hold ..."
                    ),
                    "429": err("too many leads from this address"),
                    "503": err("the lead could not be stored; try again"),
                },
            }
        },
    )
    spec.path(
        path="/api/v1/calls/{call_id}/state",
        operations={
            "get": {
                "summary": "Public state of one call, for the visitor's timer screen",
                "parameters": [
                    {"name": "call_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}},
                    {
                        "name": "token",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "maxLength": MAX_TOKEN},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "status, phase, attempt count, next attempt time, tags",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["status", "phase", "leg", "attempts", "next_attempt_at", "finished"],
                                    "properties": {
                                        "status": {"type": "string", "enum": list(STATUSES)},
                                        "phase": {"type": "string", "enum": ["waiting", "calling", "finished"]},
                                        "leg": {
                                            "type": ["string", "null"],
                                            "enum": ["operator", "client", None],
                                            "description": "while calling: the leg being rung or talked to",
                                        },
                                        "attempts": {"type": "integer"},
                                        "next_attempt_at": {"type": ["string", "null"], "format": "date-time"},
                                        "finished": {"type": "boolean"},
                                        "tags": {
                                            "type": "object",
                                            "properties": {
                                                "unique": {"type": ["boolean", "null"]},
                                                "target": {"type": ["boolean", "null"]},
                                            },
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "404": err("no such call for this token"),
                },
            }
        },
    )
    spec.path(
        path="/healthz",
        operations={
            "get": {
                "summary": "200 when the database and Redis answer and a worker placing calls and one "
                "sending pushes have reported within 20 s",
                "responses": {
                    "200": {"description": "healthy"},
                    "503": {"description": "a part is down: `down` lists database, redis, workers and/or deliveries"},
                },
            }
        },
    )
    describe_read_api(spec)
    return spec.to_dict()
