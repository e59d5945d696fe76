"""Signed webhooks (docs/webhooks.md): a customer URL per connection gets JSON call events.

The settings are checked (``check``) by POSTing one signed test event, ``check``,
which the receiver must answer with a 2xx.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from perezvon.api import (
    EVENTS,
    AddressNotAllowed,
    CallEvent,
    CheckFailed,
    DeliveryError,
    HttpPush,
    Integration,
    excerpt,
)
from perezvon.plugins.webhooks import signing

MIN_SECRET = 16
#: the test event sent when the settings are checked; never sent for a call
CHECK_EVENT = "check"
#: a receiver URL inside the server's own network (perezvon.api.AddressNotAllowed) is a mistake in the URL field
ADDRESS_REFUSED = (
    "%(host)s leads to %(address)s, an address inside a private network: only public addresses are reached "
    "(the server's administrator can allow a network with PEREZVON_OUTGOING_ALLOW)."
)


class WebhookSettings(Schema):
    url = fields.String(
        required=True, metadata={"label": "Receiver URL", "help": "Where events are POSTed (https://…)"}
    )
    secret = fields.String(
        required=True,
        metadata={
            "secret": True,
            "label": "Signing secret",
            "help": f"At least {MIN_SECRET} characters; the receiver checks the signature with it",
        },
    )
    events = fields.List(
        fields.String(validate=validate.OneOf(EVENTS)),
        load_default=list(EVENTS),
        metadata={"label": "Events", "help": ", ".join(EVENTS)},
    )
    timeout = fields.Float(load_default=10.0, validate=validate.Range(min=1, max=30), metadata={"label": "Timeout, s"})

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
    occurred = {
        "lead_created": event.lead.get("created_at"),
        "attempt_finished": (event.attempt or {}).get("ended_at"),
        "call_finished": event.call.get("finished_at"),
    }[event.event]
    return {
        "id": event.event_id,
        "event": event.event,
        "occurred_at": occurred,
        "connection_id": event.connection_id,
        "lead": event.lead,
        "call": event.call,
        "attempt": event.attempt,
        "attempts": event.attempts,
    }


class Webhooks(Integration):
    key = "webhooks"
    title = "Webhooks"
    summary = "Every call event as signed JSON to your URL."
    description = (
        "Every event (lead created, attempt finished, call finished) is POSTed as JSON to your URL, signed with "
        "HMAC-SHA256 in X-Perezvon-Signature. Check the signature and the timestamp (docs/webhooks.md)."
    )
    settings_schema = WebhookSettings
    client_script = None

    def __init__(self) -> None:
        self.http = HttpPush()

    async def post(self, settings: dict[str, Any], document: dict[str, Any]) -> Any:
        """POST one event document, signed; the receiver's response (a 2xx or 3xx)."""
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = int(time.time())
        return await self.http.send(
            "POST",
            settings["url"],
            content=body,
            timeout=settings["timeout"],
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "X-Perezvon-Event": document["event"],
                "X-Perezvon-Event-Id": document["id"],
                "X-Perezvon-Timestamp": str(timestamp),
                "X-Perezvon-Signature": signing.signature(settings["secret"], timestamp, body),
            },
            secrets=[settings["secret"]],
        )

    async def push(self, event: CallEvent) -> str | None:
        if event.event not in event.settings["events"]:
            return None
        return excerpt(await self.post(event.settings, event_body(event)))

    async def check(self, settings: dict[str, Any]) -> None:
        """A signed ``check`` event: the receiver must answer 2xx (a redirect is not followed)."""
        document: dict[str, Any] = {
            "id": f"check-{uuid.uuid4()}",
            "event": CHECK_EVENT,
            "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
            "connection_id": None,
            "lead": None,
            "call": None,
            "attempt": None,
            "attempts": [],
        }
        try:
            response = await self.post(settings, document)
        except AddressNotAllowed as not_allowed:
            raise CheckFailed(
                {"url": [(ADDRESS_REFUSED, {"host": not_allowed.host, "address": not_allowed.address})]}
            ) from None
        except DeliveryError as refused:
            if refused.status is None:
                raise
            raise CheckFailed(
                {
                    "url": [
                        (
                            "The receiver answered %(status)s to a signed test event; it must answer 2xx.",
                            {"status": refused.status},
                        )
                    ]
                }
            ) from None
        if not 200 <= response.status_code < 300:
            raise CheckFailed(
                {
                    "url": [
                        (
                            "The receiver answered %(status)s (a redirect) to a signed test event; give "
                            "the final address.",
                            {"status": response.status_code},
                        )
                    ]
                }
            )

    on_lead_created = push
    on_attempt_finished = push
    on_call_finished = push
