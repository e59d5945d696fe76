"""Signed webhooks (SPEC S8): a customer URL per connection gets JSON call events."""
from __future__ import annotations

import json
import time
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates
from perezvon.plugins.webhooks import signing

from perezvon.api import EVENTS, CallEvent, HttpPush, Integration, excerpt

MIN_SECRET = 16


class WebhookSettings(Schema):
    url = fields.String(required=True, metadata={
        "label": "Receiver URL", "help": "Where events are POSTed (https://…)"})
    secret = fields.String(required=True, metadata={
        "secret": True, "label": "Signing secret",
        "help": f"At least {MIN_SECRET} characters; the receiver checks the signature with it"})
    events = fields.List(fields.String(validate=validate.OneOf(EVENTS)), load_default=list(EVENTS), metadata={
        "label": "Events", "help": ", ".join(EVENTS)})
    timeout = fields.Float(load_default=10.0, validate=validate.Range(min=1, max=30), metadata={
        "label": "Timeout, s"})

    @validates("url")
    def _http_url(self, value: str, **_: Any) -> None:
        checker = validate.URL(schemes={"http", "https"}, require_tld=False)
        try:
            checker(value)
        except ValidationError:
            raise ValidationError("An http:// or https:// URL is needed.") from None

    @validates("secret")
    def _long_secret(self, value: str, **_: Any) -> None:
        if len(value.strip()) < MIN_SECRET:
            raise ValidationError(f"The secret must be at least {MIN_SECRET} characters.")


def event_body(event: CallEvent) -> dict[str, Any]:
    """The JSON document of one event: the same bytes on every try of one delivery."""
    occurred = {"lead_created": event.lead.get("created_at"),
                "attempt_finished": (event.attempt or {}).get("ended_at"),
                "call_finished": event.call.get("finished_at")}[event.event]
    return {"id": event.event_id, "event": event.event, "occurred_at": occurred,
            "connection_id": event.connection_id, "lead": event.lead, "call": event.call,
            "attempt": event.attempt, "attempts": event.attempts}


class Webhooks(Integration):
    key = "webhooks"
    title = "Webhooks"
    description = (
        "Every event (lead created, attempt finished, call finished) is POSTed as JSON to your URL, signed with "
        "HMAC-SHA256 in X-Perezvon-Signature. Check the signature and the timestamp (docs/webhooks.md).")
    settings_schema = WebhookSettings
    client_script = None

    def __init__(self) -> None:
        self.http = HttpPush()

    async def push(self, event: CallEvent) -> str | None:
        settings = event.settings
        if event.event not in settings["events"]:
            return None
        body = json.dumps(event_body(event), ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = int(time.time())
        response = await self.http.send("POST", settings["url"], content=body, timeout=settings["timeout"], headers={
            "Content-Type": "application/json; charset=utf-8",
            "X-Perezvon-Event": event.event,
            "X-Perezvon-Event-Id": event.event_id,
            "X-Perezvon-Timestamp": str(timestamp),
            "X-Perezvon-Signature": signing.signature(settings["secret"], timestamp, body),
        }, secrets=[settings["secret"]])
        return excerpt(response)

    on_lead_created = push
    on_attempt_finished = push
    on_call_finished = push
