"""``GET /openapi.json``: the public API described from the same marshmallow schemas."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from perezvon.core.schemas import LeadSchema
from perezvon.web.api.calls import describe_read_api

ERRORS = {
    "type": "object",
    "properties": {
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "messages per field; `_schema` for the request as a whole",
        }
    },
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
    spec.components.schema("Errors", ERRORS)

    def err(text: str) -> dict[str, Any]:
        return {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}},
        }

    accepted = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "lead_id": {"type": "string", "format": "uuid"},
            "call_id": {"type": "string", "format": "uuid"},
            "scheduled_at": {"type": "string", "format": "date-time", "description": "when the first call is placed"},
            "duplicate": {"type": "boolean"},
        },
    }
    spec.path(
        path="/api/v1/leads",
        operations={
            "post": {
                "summary": "Leave a lead: the site's operator calls the visitor back",
                "requestBody": {"required": True, "content": {"application/json": {"schema": "Lead"}}},
                "responses": {
                    "201": {
                        "description": "accepted; the callback is scheduled",
                        "content": {"application/json": {"schema": accepted}},
                    },
                    "200": {
                        "description": "the same phone on the same site within 60 s: the existing lead",
                        "content": {"application/json": {"schema": accepted}},
                    },
                    "400": err("the body is not JSON"),
                    "403": err("unknown or switched-off site token, the lead's app switched off, or a foreign Origin"),
                    "409": err("the site can neither call the lead nor e-mail it to anyone (no operator number ...)"),
                    "413": err("the body is over 64 KiB"),
                    "422": err("a field is invalid: phone, consent, office, department ..."),
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
                    {"name": "token", "in": "query", "required": True, "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {
                        "description": "status, phase, attempt count, next attempt time, tags",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "status": {
                                            "type": "string",
                                            "enum": [
                                                "pending",
                                                "successful",
                                                "lost",
                                                "unsuccessful",
                                                "failed",
                                                "cancelled",
                                            ],
                                        },
                                        "phase": {"type": "string", "enum": ["waiting", "calling", "finished"]},
                                        "leg": {
                                            "type": ["string", "null"],
                                            "enum": ["operator", "client", None],
                                            "description": "while calling: the leg being rung or talked to",
                                        },
                                        "attempts": {"type": "integer"},
                                        "next_attempt_at": {"type": ["string", "null"], "format": "date-time"},
                                        "finished": {"type": "boolean"},
                                        "tags": {"type": "object"},
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
                "summary": "200 when the database and Redis answer",
                "responses": {"200": {"description": "healthy"}, "503": {"description": "a dependency is down"}},
            }
        },
    )
    describe_read_api(spec)
    return spec.to_dict()
