"""Google Analytics (docs/integrations.md): events in the browser, and optionally call results from the server.

In the browser the client script sends each site-script event with category
``PEREZVON``, the event's name as the action and the optional label, through
``gtag`` when the page has it, else through analytics.js's ``ga``.

Call results happen on the server, long after the visit: with a GA4
measurement id and a Measurement Protocol API secret they are sent to
``POST https://www.google-analytics.com/mp/collect`` as the event
``perezvon_call_finished``, under the visitor's GA client id (read from the
``_ga`` cookie when the lead was left).

The settings are checked (``check``) by sending such an event to the Measurement
Protocol's validation server (``/debug/mp/collect`` next to ``/mp/collect``), whose
``validationMessages`` name the field at fault. That server checks the request's
shape and ids; it does not say whether the API secret exists in the property.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, ClassVar

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from perezvon.api import CallEvent, CheckFailed, HttpPush, Integration, excerpt, json_body

CATEGORY = "PEREZVON"
MP_EVENT = "perezvon_call_finished"
MEASUREMENT_ID = re.compile(r"G-[A-Z0-9]{4,16}|UA-\d{4,10}-\d{1,4}")
MP_URL = "https://www.google-analytics.com/mp/collect"
#: the validation server's path next to the Measurement Protocol's own
MP_PATH, DEBUG_PATH = "/mp/collect", "/debug/mp/collect"
#: the settings a validation message may be about, by the words it names them with
CHECKED_FIELDS = ("measurement_id", "api_secret")


class GoogleAnalyticsSettings(Schema):
    measurement_id = fields.String(
        required=True, metadata={"label": "Measurement id", "help": "G-XXXXXXXXXX (GA4) or UA-12345678-1"}
    )
    label = fields.String(
        load_default="", validate=validate.Length(max=100), metadata={"label": "Event label", "help": "Optional"}
    )
    api_secret = fields.String(
        load_default="",
        metadata={
            "secret": True,
            "label": "Measurement Protocol API secret",
            "help": "GA4: Admin → Data streams → Measurement Protocol API secrets. Empty: call results are not sent",
        },
    )
    mp_url = fields.String(
        load_default=MP_URL,
        validate=validate.URL(schemes={"http", "https"}, require_tld=False),
        metadata={"label": "Measurement Protocol URL"},
    )

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


def result_body(
    client_id: str, call: dict[str, Any], lead: dict[str, Any], attempts: int, transaction_id: str
) -> dict[str, Any]:
    """The Measurement Protocol document of one call's result."""
    return {
        "client_id": client_id,
        "events": [
            {
                "name": MP_EVENT,
                "params": {
                    "event_category": CATEGORY,
                    "status": call.get("display_status", ""),
                    "successful": call.get("display_status") == "successful",
                    "duration_seconds": int(call.get("duration_seconds") or 0),
                    "attempts": attempts,
                    "source": lead.get("source", ""),
                    "is_target": bool(call.get("is_target")),
                    "transaction_id": transaction_id,
                },
            }
        ],
    }


def validation_url(mp_url: str) -> str:
    """The validation server next to a Measurement Protocol URL (``…/mp/collect`` -> ``…/debug/mp/collect``)."""
    base = mp_url.split("?", 1)[0].rstrip("/")
    return (base[: -len(MP_PATH)] if base.endswith(MP_PATH) else base) + DEBUG_PATH


class GoogleAnalytics(Integration):
    key = "google_analytics"
    title = "Google Analytics"
    summary = "Site events and call results as Google Analytics events."
    description = (
        "Events the enabled apps declare on the site are sent with category PEREZVON and the event's name as the "
        "action (widget_shown, widget_lead, offhours_lead, …) through gtag or ga — the tag must be on the site. "
        "With a Measurement Protocol secret (GA4) call results arrive "
        "as the event perezvon_call_finished."
    )
    settings_schema = GoogleAnalyticsSettings
    client_script: ClassVar[Path | None] = Path(__file__).with_name("static") / "google_analytics.js"

    def __init__(self) -> None:
        self.http = HttpPush()

    def client_events(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {"measurement_id": settings["measurement_id"].strip(), "category": CATEGORY, "label": settings["label"]}

    async def on_call_finished(self, event: CallEvent) -> str | None:
        settings = event.settings
        if not settings["api_secret"]:
            return None
        body = result_body(client_id_of(event), event.call, event.lead, len(event.attempts), event.event_id)
        response = await self.http.send(
            "POST",
            settings["mp_url"],
            json=body,
            secrets=[settings["api_secret"]],
            params={"measurement_id": settings["measurement_id"].strip(), "api_secret": settings["api_secret"]},
        )
        return excerpt(response, [settings["api_secret"]])

    async def check(self, settings: dict[str, Any]) -> None:
        """A call result sent to the validation server; its messages are mapped to the fields they name.
        Without an API secret nothing is sent from the server, so there is nothing to check."""
        secret = settings["api_secret"]
        if not secret:
            return
        body = result_body(
            "1234567890.1234567890",
            {"display_status": "successful", "duration_seconds": 60},
            {"source": "widget"},
            1,
            "perezvon-check",
        )
        response = await self.http.send(
            "POST",
            validation_url(settings["mp_url"]),
            json=body,
            secrets=[secret],
            params={"measurement_id": settings["measurement_id"].strip(), "api_secret": secret},
        )
        answer = json_body(response, [secret])
        errors: dict[str, list[Any]] = {}
        for message in (answer.get("validationMessages") if isinstance(answer, dict) else None) or []:
            if not isinstance(message, dict):
                continue
            named = f"{message.get('fieldPath', '')} {message.get('description', '')}"
            field = next((name for name in CHECKED_FIELDS if name in named), "_schema")
            errors.setdefault(field, []).append(
                (
                    "Google Analytics does not accept the request: %(description)s",
                    {"description": str(message.get("description") or message.get("validationCode") or "")},
                )
            )
        if errors:
            raise CheckFailed(errors)
