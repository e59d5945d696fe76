"""Google Analytics (SPEC S5): events in the browser, and optionally call results from the server.

In the browser the client script sends each site-script event with category
``PEREZVON``, the event's name as the action and the optional label, through
``gtag`` when the page has it, else through analytics.js's ``ga``.

Call results happen on the server, long after the visit: with a GA4
measurement id and a Measurement Protocol API secret they are sent to
``POST https://www.google-analytics.com/mp/collect`` as the event
``perezvon_call_finished``, under the visitor's GA client id (read from the
``_ga`` cookie when the lead was left).
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, ClassVar

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from perezvon.api import CallEvent, HttpPush, Integration, excerpt

CATEGORY = "PEREZVON"
#: site-script event -> GA event action
ACTIONS: dict[str, str] = {
    "widget_shown": "widget_shown",
    "widget_opened": "widget_opened",
    "widget_lead": "widget_lead",
    "leadgen_shown": "leadgen_shown",
    "leadgen_lead": "leadgen_lead",
    "offhours_lead": "offhours_lead",
}
MP_EVENT = "perezvon_call_finished"
MEASUREMENT_ID = re.compile(r"G-[A-Z0-9]{4,16}|UA-\d{4,10}-\d{1,4}")
MP_URL = "https://www.google-analytics.com/mp/collect"


class GoogleAnalyticsSettings(Schema):
    measurement_id = fields.String(required=True, metadata={
        "label": "Measurement id", "help": "G-XXXXXXXXXX (GA4) or UA-12345678-1"})
    label = fields.String(load_default="", validate=validate.Length(max=100), metadata={
        "label": "Event label", "help": "Optional"})
    api_secret = fields.String(load_default="", metadata={
        "secret": True, "label": "Measurement Protocol API secret",
        "help": "GA4: Admin → Data streams → Measurement Protocol API secrets. Empty: call results are not sent"})
    mp_url = fields.String(load_default=MP_URL, validate=validate.URL(schemes={"http", "https"}, require_tld=False),
                           metadata={"label": "Measurement Protocol URL"})

    @validates("measurement_id")
    def _format(self, value: str, **_: Any) -> None:
        if not MEASUREMENT_ID.fullmatch(value.strip()):
            raise ValidationError("Expected an id like G-XXXXXXXXXX or UA-12345678-1.")

    @validates_schema
    def _secret_needs_ga4(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("api_secret") and not data.get("measurement_id", "").startswith("G-"):
            raise ValidationError("The Measurement Protocol needs a GA4 id (G-…).", field_name="api_secret")


def client_id_of(event: CallEvent) -> str:
    """The visitor's GA client id sent with the lead, else a stable one made from the visitor or call."""
    sent = ((event.lead.get("extra") or {}).get("google_analytics") or {}).get("client_id")
    if isinstance(sent, str) and re.fullmatch(r"\d{1,20}\.\d{1,20}", sent):
        return sent
    seed = event.lead.get("visitor_id") or event.call.get("id") or ""
    number = int(hashlib.sha256(seed.encode()).hexdigest()[:12], 16)
    return f"{number}.{number % 2_000_000_000}"


class GoogleAnalytics(Integration):
    key = "google_analytics"
    title = "Google Analytics"
    description = (
        "Events are sent with category PEREZVON and the event as the action (widget_shown, widget_lead, …) through "
        "gtag or ga — the tag must be on the site. With a Measurement Protocol secret (GA4) call results arrive "
        "as the event perezvon_call_finished.")
    settings_schema = GoogleAnalyticsSettings
    client_script: ClassVar[Path | None] = Path(__file__).with_name("static") / "google_analytics.js"

    def __init__(self) -> None:
        self.http = HttpPush()

    def client_events(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {"measurement_id": settings["measurement_id"].strip(), "category": CATEGORY,
                "label": settings["label"], "actions": dict(ACTIONS)}

    async def on_call_finished(self, event: CallEvent) -> str | None:
        settings = event.settings
        if not settings["api_secret"]:
            return None
        call, lead = event.call, event.lead
        body = {
            "client_id": client_id_of(event),
            "events": [{"name": MP_EVENT, "params": {
                "event_category": CATEGORY,
                "status": call.get("display_status", ""),
                "successful": call.get("display_status") == "successful",
                "duration_seconds": int(call.get("duration_seconds") or 0),
                "attempts": len(event.attempts),
                "source": lead.get("source", ""),
                "is_target": bool(call.get("is_target")),
                "transaction_id": event.event_id,
            }}],
        }
        response = await self.http.send(
            "POST", settings["mp_url"], json=body, secrets=[settings["api_secret"]],
            params={"measurement_id": settings["measurement_id"].strip(), "api_secret": settings["api_secret"]})
        return excerpt(response, [settings["api_secret"]])
