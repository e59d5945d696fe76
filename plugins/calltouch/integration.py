"""Calltouch (docs/integrations.md): every lead registered with its Calltouch session, then tagged with the call result.

Two documented Calltouch endpoints are used (docs/integrations.md says why):

* lead created -> ``POST https://api.calltouch.ru/calls-service/RestAPI/requests/{site_id}/register/``
  (form-encoded): the lead becomes a request ("заявка") in Calltouch's request log, attributed
  through ``sessionId`` -- the visitor's Calltouch session the client script read from the page --
  and tagged with the app's DTMF auto-tag code (widget 11 ... other 16);
* call finished -> ``POST https://api.calltouch.ru/lead-service/v1/api/tag/lead/add`` (JSON, headers
  ``Access-Token`` and ``SiteId``): the same request, found by the client's phone and the time it
  was left, gets tags with the call's result.

The settings are checked (``check``) by reading one call of today from the calls journal,
``GET https://api.calltouch.ru/calls-service/RestAPI/{site_id}/calls-diary/calls?clientApiId=<token>``:
a token Calltouch does not know is refused, and so is a site the token does not own.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError, fields, validate, validates

from perezvon.api import (
    CallEvent,
    CheckFailed,
    DeliveryError,
    HttpPush,
    Integration,
    LeadSource,
    check_time_zone,
    excerpt,
    json_body,
)

API_URL = "https://api.calltouch.ru"
REGISTER_PATH = "/calls-service/RestAPI/requests/{site_id}/register/"
TAG_PATH = "/lead-service/v1/api/tag/lead/add"
#: a cheap read with the same token and site id, for :meth:`Calltouch.check`
CHECK_PATH = "/calls-service/RestAPI/{site_id}/calls-diary/calls"
OTHER_CODE = 16
JS_NAME = re.compile(r"[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*")
SESSION_ID = re.compile(r"[\w\-.]{1,64}")
#: how far back (minutes) Calltouch looks for the request to tag
SEARCH_DEPTH_MINUTES = 1440


class CalltouchSettings(Schema):
    site_id = fields.String(
        required=True, metadata={"label": "Calltouch site id", "help": "Integrations → API & Webhooks → account id"}
    )
    session_variable = fields.String(
        load_default="call_value",
        metadata={
            "label": "Page variable with the session id",
            "help": "The page variable where Calltouch's script keeps the session id (call_value by default)",
        },
    )
    api_token = fields.String(
        required=True, metadata={"secret": True, "label": "API token", "help": "Integrations → API & Webhooks → token"}
    )
    timezone = fields.String(load_default="Europe/Moscow", metadata={"label": "Account time zone"})
    api_url = fields.String(
        load_default=API_URL,
        validate=validate.URL(schemes={"http", "https"}, require_tld=False),
        metadata={"label": "API URL"},
    )

    @validates("site_id")
    def _site_digits(self, value: str, **_: Any) -> None:
        if not re.fullmatch(r"\d{1,12}", value.strip()):
            raise ValidationError("The site id is digits only, e.g. 12345.")

    @validates("session_variable")
    def _js_name(self, value: str, **_: Any) -> None:
        if not JS_NAME.fullmatch(value):
            raise ValidationError("A JavaScript variable name, e.g. call_value.")

    @validates("api_token")
    def _token(self, value: str, **_: Any) -> None:
        if not value.strip():
            raise ValidationError("The API token cannot be empty.")

    @validates("timezone")
    def _zone(self, value: str, **_: Any) -> None:
        check_time_zone(value, "Unknown time zone, e.g. Europe/Moscow.")


def session_id_of(lead: Mapping[str, Any]) -> str:
    sent = ((lead.get("extra") or {}).get("calltouch") or {}).get("session_id")
    sent = str(sent) if isinstance(sent, (str, int)) else ""
    return sent if SESSION_ID.fullmatch(sent) else ""


def result_tags(call: Mapping[str, Any]) -> list[str]:
    tags = [f"perezvon_{call.get('display_status') or 'unknown'}"]
    if call.get("is_target"):
        tags.append("perezvon_target")
    return tags


def _answer_error(answer: Any) -> bool:
    return isinstance(answer, dict) and bool(
        answer.get("error") or answer.get("errors") or answer.get("status") == "error"
    )


def _check_answer(answer: Any, response: Any, token: str) -> None:
    """Calltouch may answer 200 with an error in the body: that is a failure too, not worth retrying."""
    if _answer_error(answer):
        raise DeliveryError(
            "Calltouch answered 200 with an error",
            retry=False,
            status=response.status_code,
            response=excerpt(response, [token]),
        )


class Calltouch(Integration):
    key = "calltouch"
    title = "Calltouch"
    summary = "Leads and call results go to Calltouch's request log."
    description = (
        "Every lead appears in Calltouch's request log with the visitor's session id and the tag "
        "perezvon_dtmf_<code> (widget 11, lead generator 12, mobile lead generator 13, mobile panel 14, site forms "
        "15, other 16); the call result follows as perezvon_<status> tags. Needs the site id and an API token "
        "(Integrations → API & Webhooks)."
    )
    settings_schema = CalltouchSettings
    client_script: ClassVar[Path | None] = Path(__file__).with_name("static") / "calltouch.js"

    def __init__(self, lead_sources: Mapping[str, LeadSource] | None = None) -> None:
        self.lead_sources = lead_sources if lead_sources is not None else {}
        self.http = HttpPush()

    def client_events(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {"session_variable": settings["session_variable"]}

    def dtmf_code(self, source: str) -> int:
        found = self.lead_sources.get(source)
        return found.calltouch_code if found else OTHER_CODE

    def operator_dtmf(self, lead_source: str) -> str:
        """The app's code as DTMF on the operator leg (SPEC S4.2, S5): Calltouch tags the call
        that reaches the operator through its number by the digits it hears."""
        return str(self.dtmf_code(lead_source))

    def _url(self, settings: dict[str, Any], path: str) -> str:
        return settings["api_url"].rstrip("/") + path.format(site_id=settings["site_id"].strip())

    async def on_lead_created(self, event: CallEvent) -> str:
        settings, lead = event.settings, event.lead
        source = self.lead_sources.get(lead.get("source", ""))
        form = {
            "subject": f"Перезвон: {source.title if source else lead.get('source', '')}"[:256],
            "requestNumber": str(lead["id"]),
            "phoneNumber": lead["phone"].lstrip("+"),
            "fio": lead.get("name", ""),
            "requestUrl": lead.get("page_url", ""),
            "tags": f"perezvon,perezvon_dtmf_{self.dtmf_code(lead.get('source', ''))}",
        }
        session = session_id_of(lead)
        if session:
            form["sessionId"] = session
        token = settings["api_token"]
        response = await self.http.send(
            "POST", self._url(settings, REGISTER_PATH), data=form, headers={"Access-Token": token}, secrets=[token]
        )
        _check_answer(json_body(response, [token]), response, token)
        return excerpt(response, [token])

    async def on_call_finished(self, event: CallEvent) -> str:
        settings, lead = event.settings, event.lead
        token = settings["api_token"]
        created = dt.datetime.fromisoformat(lead["created_at"]).astimezone(ZoneInfo(settings["timezone"]))
        body = {
            "leads": [
                {
                    "matching": [
                        {
                            "type": "requestContact",
                            "requestContactParams": {
                                "phones": [lead["phone"].lstrip("+")],
                                "date": created.strftime("%d-%m-%Y %H:%M:%S"),
                                "requestTypeToMatch": "nearestUniq",
                                "searchDepth": SEARCH_DEPTH_MINUTES,
                            },
                        }
                    ],
                    "addTags": {"overwrite": False, "tags": [{"tag": tag} for tag in result_tags(event.call)]},
                }
            ]
        }
        response = await self.http.send(
            "POST",
            self._url(settings, TAG_PATH),
            json=body,
            secrets=[token],
            headers={"Access-Token": token, "SiteId": settings["site_id"].strip()},
        )
        _check_answer(json_body(response, [token]), response, token)
        return excerpt(response, [token])

    async def check(self, settings: dict[str, Any]) -> None:
        """One call of today's journal: 401 is the token's fault, 403/404 the site id's."""
        token, site = settings["api_token"].strip(), settings["site_id"].strip()
        today = dt.datetime.now(ZoneInfo(settings["timezone"])).strftime("%d/%m/%Y")
        try:
            response = await self.http.send(
                "GET",
                self._url(settings, CHECK_PATH),
                secrets=[token],
                params={"clientApiId": token, "dateFrom": today, "dateTo": today, "page": 1, "limit": 1},
            )
        except DeliveryError as refused:
            if refused.status == 401:
                raise CheckFailed({"api_token": ["Calltouch does not know this API token."]}) from None
            if refused.status in (403, 404):
                raise CheckFailed(
                    {
                        "site_id": [
                            (
                                "Calltouch has no site %(site)s for this token: check the site id "
                                "(Integrations → API & Webhooks).",
                                {"site": site},
                            )
                        ]
                    }
                ) from None
            raise
        if _answer_error(json_body(response, [token])):
            raise CheckFailed(
                {"_schema": [("Calltouch answered with an error: %(answer)s", {"answer": excerpt(response, [token])})]}
            )
