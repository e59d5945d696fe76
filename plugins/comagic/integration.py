"""CoMagic (docs/integrations.md): leads and call results through CoMagic's Data API (JSON-RPC 2.0).

* lead created -> ``upload.offline_messages``: the lead becomes an offline request ("заявка") of the
  site in CoMagic's reports, tied to the visitor's CoMagic session when the client script could read
  it (``Comagic.getSessionId()``), so it is attributed to the visit's ad campaign;
* call finished -> ``set.tag_communications``: that request gets the tag chosen for the result.

The settings are checked (``check``) with the cheap read ``get.sites``: a key CoMagic refuses is the
key's fault, a site id missing from the account's sites is the site id's.

The account key is the Data API access token. It is a secret: masked as ``****`` after saving,
never sent back to the browser, and blanked out of anything stored or logged about a delivery.
"""

from __future__ import annotations

import datetime as dt
import json
import re
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
    check_time_zone,
    excerpt,
    json_body,
)

API_URL = "https://dataapi.comagic.ru/v2.0"
#: JSON-RPC errors worth trying again: CoMagic's internal error and its rate limit
RETRYABLE_CODES = {-32603, -32029}
#: the JSON-RPC error of a wrong, expired or blocked key
BAD_KEY_CODE = -32001


class ComagicSettings(Schema):
    access_token = fields.String(
        required=True,
        metadata={"secret": True, "label": "Account key", "help": "A permanent Data API key: Account → Users → key"},
    )
    site_id = fields.Integer(
        required=True, strict=False, validate=validate.Range(min=1), metadata={"label": "CoMagic site id"}
    )
    successful_tag_id = fields.Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=1),
        metadata={"label": "Tag of a successful call", "help": "A tag id from get.tags"},
    )
    failed_tag_id = fields.Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=1),
        metadata={"label": "Tag of a failed call", "help": "A tag id from get.tags"},
    )
    timezone = fields.String(load_default="Europe/Moscow", metadata={"label": "Account time zone"})
    api_url = fields.String(
        load_default=API_URL,
        validate=validate.URL(schemes={"http", "https"}, require_tld=False),
        metadata={"label": "Data API URL"},
    )

    @validates("access_token")
    def _key(self, value: str, **_: Any) -> None:
        if not value.strip():
            raise ValidationError("The account key cannot be empty.")
        if any(ch.isspace() for ch in value.strip()) or len(value.strip()) < 16:
            raise ValidationError("This does not look like a CoMagic key.")

    @validates("timezone")
    def _zone(self, value: str, **_: Any) -> None:
        check_time_zone(value, "Unknown time zone, e.g. Europe/Moscow.")


def session_id_of(lead: dict[str, Any]) -> int | None:
    sent = ((lead.get("extra") or {}).get("comagic") or {}).get("session_id")
    text = str(sent) if isinstance(sent, (str, int)) and not isinstance(sent, bool) else ""
    return int(text) if re.fullmatch(r"\d{1,18}", text) else None


class Comagic(Integration):
    key = "comagic"
    title = "CoMagic"
    summary = "Leads and call results go to CoMagic as the site's requests."
    description = (
        "Leads go to CoMagic as the site's requests (Data API upload.offline_messages), call results as tags "
        "(set.tag_communications). Needs a permanent Data API key and the site id; allow the server's IP under "
        '"Rules and security → API". Once saved the key is shown as ****.'
    )
    settings_schema = ComagicSettings
    client_script: ClassVar[Path | None] = Path(__file__).with_name("static") / "comagic.js"

    def __init__(self) -> None:
        self.http = HttpPush()

    def __repr__(self) -> str:
        return "Comagic()"

    def client_events(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {}  # the browser gets nothing from the settings, least of all the key

    async def rpc(
        self, settings: dict[str, Any], method: str, params: dict[str, Any], request_id: str
    ) -> tuple[Any, Any, dict[str, Any] | None]:
        """One JSON-RPC request: the answer, the HTTP response, and the answer's ``error`` (None when none)."""
        token = settings["access_token"]
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {"access_token": token, **params}}
        response = await self.http.send(
            "POST",
            settings["api_url"],
            secrets=[token],
            content=json.dumps(body, ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json; charset=UTF-8"},
        )
        answer = json_body(response, [token])
        error = answer.get("error") if isinstance(answer, dict) else {"message": "not a JSON-RPC answer"}
        return answer, response, error or None

    async def call(self, settings: dict[str, Any], method: str, params: dict[str, Any], request_id: str) -> Any:
        token = settings["access_token"]
        answer, response, error = await self.rpc(settings, method, params, request_id)
        if error:
            code = error.get("code")
            raise DeliveryError(
                f"CoMagic {method}: error {code}",
                retry=code in RETRYABLE_CODES,
                status=response.status_code,
                response=excerpt(response, [token]),
            )
        return answer.get("result") or {}

    async def on_lead_created(self, event: CallEvent) -> str:
        settings, lead = event.settings, event.lead
        created = dt.datetime.fromisoformat(lead["created_at"]).astimezone(ZoneInfo(settings["timezone"]))
        message = {
            "date_time": created.strftime("%Y-%m-%d %H:%M:%S"),
            "name": lead.get("name") or "",
            "phone": lead["phone"].lstrip("+"),
            "message": f"Перезвон: заявка на обратный звонок ({lead.get('source', '')}) {lead.get('page_url', '')}".strip(),
            "site_id": settings["site_id"],
        }
        session = session_id_of(lead)
        if session is not None:
            message["visitor_session_id"] = session
        result = await self.call(
            settings, "upload.offline_messages", {"offline_messages": [message]}, request_id=event.event_id
        )
        ids = [row.get("id") for row in result.get("data") or [] if isinstance(row, dict)]
        return json.dumps({"offline_message_id": ids[0] if ids else None})

    async def on_call_finished(self, event: CallEvent) -> str | None:
        settings = event.settings
        successful = event.call.get("display_status") == "successful"
        tag_id = settings["successful_tag_id"] if successful else settings["failed_tag_id"]
        if not tag_id:
            return None  # no tag chosen for this result: nothing to send
        try:
            message_id = json.loads(event.previous.get("lead_created") or "{}").get("offline_message_id")
        except ValueError:
            message_id = None
        if not message_id:
            # the lead is still being delivered (or failed): the result waits for it, with back-off
            raise DeliveryError("the lead is not in CoMagic yet", retry=True)
        await self.call(
            settings,
            "set.tag_communications",
            {"communication_id": message_id, "communication_type": "offline_message", "tag_id": tag_id},
            request_id=event.event_id,
        )
        return json.dumps({"offline_message_id": message_id, "tag_id": tag_id})

    async def check(self, settings: dict[str, Any]) -> None:
        """``get.sites``: the key must be accepted and the site id be one of the account's sites."""
        answer, _, error = await self.rpc(settings, "get.sites", {}, request_id="perezvon-check")
        if error:
            mnemonic = str((error.get("data") or {}).get("mnemonic") or "")
            if error.get("code") == BAD_KEY_CODE or "token" in mnemonic:
                raise CheckFailed(
                    {"access_token": ["CoMagic does not accept this key: it is wrong, expired or blocked."]}
                )
            if mnemonic.startswith("ip_"):
                raise CheckFailed(
                    {
                        "_schema": [
                            "CoMagic does not accept requests from this server's IP address: allow it under "
                            '"Rules and security → API".'
                        ]
                    }
                )
            raise CheckFailed(
                {
                    "_schema": [
                        (
                            "CoMagic answered with error %(code)s: %(message)s",
                            {"code": error.get("code"), "message": error.get("message", "")},
                        )
                    ]
                }
            )
        sites = ((answer.get("result") or {}).get("data")) or []
        if settings["site_id"] not in {row.get("id") for row in sites if isinstance(row, dict)}:
            raise CheckFailed(
                {"site_id": [("The CoMagic account of this key has no site %(site)s.", {"site": settings["site_id"]})]}
            )
