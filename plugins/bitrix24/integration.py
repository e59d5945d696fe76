"""Bitrix24 (docs/bitrix24.md): leads into the CRM, callbacks into Bitrix24 telephony, by an incoming webhook.

Every request is ``POST <webhook>/<method>.json`` with a JSON body; Bitrix24 answers
``{"result": ...}`` or ``{"error": "...", "error_description": "..."}``.

* lead created -> ``crm.duplicate.findbycomm`` (the contact by phone), ``crm.contact.add`` when there
  is none, then ``crm.lead.add`` or ``crm.deal.add`` (the connection's choice) with the source, UTM
  fields, the page and a comment with the lead's data; ``ORIGINATOR_ID``/``ORIGIN_ID`` name our lead,
  and ``crm.lead.list``/``crm.deal.list`` by them comes first, so a lost answer never makes a second one;
* call finished -> the same steps if the lead's delivery has not got that far (they are idempotent),
  the lead's status or the deal's stage, if one is chosen for the outcome
  (``crm.lead.update``/``crm.deal.update``); ``telephony.externalcall.register`` (an outgoing call
  bound to the lead or the contact, no card shown), ``telephony.externalcall.finish`` with the
  duration and the status code of :data:`STATUS_CODES`, then ``telephony.externalcall.attachRecord``
  with the recording file.

Each id Bitrix24 returns is saved at once (:class:`~perezvon.plugins.bitrix24.models.Bitrix24Push`):
a retry goes on from the step that failed. The webhook URL holds the secret; it is a secret setting
(masked as ``****`` in the admin) and blanked out of anything stored or logged.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from marshmallow import Schema, ValidationError, fields, validate, validates

from perezvon.api import CallEvent, CheckFailed, DeliveryError, HttpPush, Integration, excerpt, gettext, storable
from perezvon.plugins.bitrix24.models import Bitrix24Push

#: ``/rest/<user id>/<secret>/``, maybe followed by a method name copied with it (``profile.json``)
WEBHOOK_PATH = re.compile(r"/rest/(?P<user>\d+)/(?P<secret>[A-Za-z0-9_]+)/?(?:[A-Za-z0-9_.]+)?")
#: a CRM status, stage or source id (``NEW``, ``C2:PREPARATION``, ``UC_3F7A1B``, ``CALLBACK``)
CRM_ID = re.compile(r"[A-Za-z0-9_:|.\-]{1,50}")
#: what our leads are called in Bitrix24's ``ORIGINATOR_ID``; ``ORIGIN_ID`` is the lead's id
ORIGINATOR = "perezvon"
#: Bitrix24's errors worth trying again besides HTTP 5xx: the rate limit and an overloaded portal
RETRYABLE_ERRORS = {"QUERY_LIMIT_EXCEEDED", "OVERLOAD_LIMIT", "INTERNAL_SERVER_ERROR"}
#: errors of a webhook Bitrix24 does not accept (wrong secret, deleted, no such user, a scope missing)
AUTH_ERRORS = {"INVALID_CREDENTIALS", "NO_AUTH_FOUND", "expired_token", "invalid_token", "insufficient_scope"}
#: Bitrix24's call outcome codes (``STATUS_CODE`` of telephony.externalcall.finish) for the client leg's
#: final SIP code (docs/calls.md#leg-statuses); docs/bitrix24.md has the whole table
STATUS_CODES = {
    200: "200",  # answered (a call whose status is Successful is 200 whatever the leg)
    201: "603-S",  # the callback was cancelled by a key
    202: "OTHER",  # the operator did not press the key: the client was not called
    203: "304",  # a voicemail answered: missed
    204: "OTHER",  # a party hung up before the other was joined
    402: "402",
    403: "403",
    404: "404",  # the number does not exist
    408: "304",  # no answer: missed
    423: "423",
    480: "304",  # no answer / unavailable: missed
    484: "484",
    486: "486",  # busy
    487: "603-S",  # the ringing was ended
    500: "503",  # telephony error
    503: "503",
    603: "603",  # declined
}
#: the recording formats telephony.externalcall.attachRecord takes
RECORD_SUFFIXES = {".mp3", ".wav"}


def webhook_parts(url: str) -> tuple[str, str]:
    """``(base URL ending in "/", secret)`` of a valid incoming-webhook URL."""
    parts = urlsplit(url.strip())
    found = WEBHOOK_PATH.fullmatch(parts.path)
    if parts.scheme not in ("http", "https") or not parts.netloc or found is None:
        raise ValueError("not an incoming webhook URL")
    return f"{parts.scheme}://{parts.netloc}/rest/{found['user']}/{found['secret']}/", found["secret"]


class Bitrix24Settings(Schema):
    webhook_url = fields.String(
        required=True,
        metadata={
            "secret": True,
            "label": "Incoming webhook URL",
            "help": "Bitrix24 → Developer resources → Other → Incoming webhook with the crm, telephony and user "
            "scopes: https://<portal>.bitrix24.ru/rest/<user id>/<secret>/",
        },
    )
    entity = fields.String(
        load_default="lead",
        validate=validate.OneOf(["lead", "deal"], labels=["Lead", "Deal"], error="Choose a lead or a deal."),
        metadata={"label": "What to create", "help": "A lead per request, or a deal with the contact"},
    )
    responsible_id = fields.Integer(
        required=True,
        strict=False,
        validate=validate.Range(min=1, error="A Bitrix24 user id is a whole number from 1."),
        metadata={
            "label": "Responsible user id",
            "help": "The Bitrix24 user the lead, deal and call belong to: the number in the user's profile address",
        },
    )
    source_id = fields.String(
        load_default="CALLBACK",
        metadata={
            "label": "Source",
            "help": 'SOURCE_ID of the source list (CRM → Settings → Statuses and dropdowns); CALLBACK is "Callback"',
        },
    )
    lead_status_id = fields.String(
        load_default="NEW", metadata={"label": "Status of a new lead", "help": "STATUS_ID, e.g. NEW"}
    )
    deal_category_id = fields.Integer(
        load_default=0,
        strict=False,
        validate=validate.Range(min=0, error="A pipeline id is a whole number from 0."),
        metadata={"label": "Deal pipeline id", "help": "CATEGORY_ID; 0 is the general pipeline"},
    )
    deal_stage_id = fields.String(
        load_default="",
        metadata={"label": "Stage of a new deal", "help": "STAGE_ID; empty: the pipeline's first stage"},
    )
    successful_status_id = fields.String(
        load_default="",
        metadata={
            "label": "Status after a successful call",
            "help": "A lead's STATUS_ID or a deal's STAGE_ID set when the callback took place; empty: unchanged",
        },
    )
    failed_status_id = fields.String(
        load_default="",
        metadata={
            "label": "Status after a failed call",
            "help": "A lead's STATUS_ID or a deal's STAGE_ID set when nobody was reached; empty: unchanged",
        },
    )

    @validates("webhook_url")
    def _webhook(self, value: str, **_: Any) -> None:
        if not value.strip():
            raise ValidationError("The webhook URL cannot be empty.")
        try:
            webhook_parts(value)
        except ValueError:
            raise ValidationError(
                "This is not an incoming webhook URL: it looks like https://<portal>.bitrix24.ru/rest/<user id>/"
                "<secret>/."
            ) from None

    @validates("source_id")
    def _source(self, value: str, **_: Any) -> None:
        self._crm_id(value, required=True)

    @validates("lead_status_id")
    def _lead_status(self, value: str, **_: Any) -> None:
        self._crm_id(value, required=True)

    @validates("deal_stage_id")
    def _stage(self, value: str, **_: Any) -> None:
        self._crm_id(value, required=False)

    @validates("successful_status_id")
    def _successful(self, value: str, **_: Any) -> None:
        self._crm_id(value, required=False)

    @validates("failed_status_id")
    def _failed(self, value: str, **_: Any) -> None:
        self._crm_id(value, required=False)

    @staticmethod
    def _crm_id(value: str, *, required: bool) -> None:
        if not value and not required:
            return
        if not CRM_ID.fullmatch(value):
            raise ValidationError("A Bitrix24 id: Latin letters, digits and _ : - only, e.g. NEW or UC_3F7A1B.")


def status_code(call: dict[str, Any], attempts: list[dict[str, Any]]) -> str:
    """The ``STATUS_CODE`` of telephony.externalcall.finish for a finished call (docs/bitrix24.md)."""
    if call.get("display_status") == "successful":
        return "200"
    if call.get("display_status") == "cancelled":
        return "603-S"
    last = max(attempts, key=lambda a: a.get("number") or 0) if attempts else {}
    client = last.get("client_status")
    if client is None or client == 200:  # the client was never dialled, or answered and the operator failed
        return "OTHER"
    return STATUS_CODES.get(int(client), "OTHER")


def iso_seconds(stamp: str) -> str:
    """ISO 8601 with the offset and whole seconds, as Bitrix24 documents ``CALL_START_DATE``."""
    return dt.datetime.fromisoformat(stamp).replace(microsecond=0).isoformat()


def lead_comment(lead: dict[str, Any]) -> str:
    """The lead's data as the CRM comment (Bitrix24 shows COMMENTS as HTML: one line each)."""
    rows = [
        ("Телефон", lead.get("phone")),
        ("Имя", lead.get("name")),
        ("Источник", lead.get("source")),
        ("Страница", lead.get("page_url")),
        ("Откуда пришёл", lead.get("referrer")),
        ("Удобное время", lead.get("preferred_at")),
        ("Канал", lead.get("channel")),
        ("Номер на сайте", lead.get("displayed_phone")),
    ]
    return "<br>".join(f"{name}: {_html(str(value))}" for name, value in rows if value)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _first_id(found: Any, key: str) -> int | None:
    """The first id of ``crm.duplicate.findbycomm``'s ``{"CONTACT": [ids]}`` (``[]`` when nothing was found)."""
    ids = found.get(key) if isinstance(found, dict) else None
    return int(ids[0]) if isinstance(ids, list) and ids and str(ids[0]).isdigit() else None


class Bitrix24(Integration):
    key = "bitrix24"
    title = "Bitrix24"
    summary = "Leads become Bitrix24 leads or deals; callbacks are recorded in its telephony with the recording."
    description = (
        "Every lead finds or adds the Bitrix24 contact by phone and adds a lead or a deal with the source, UTM "
        "tags and page; the callback is registered in Bitrix24 telephony with its outcome, duration and "
        "recording. Needs an incoming webhook with the crm, telephony and user scopes (Developer resources → "
        "Other → Incoming webhook). Once saved the webhook URL is shown as ****."
    )
    settings_schema = Bitrix24Settings

    def __init__(self) -> None:
        self.http = HttpPush(timeout=20.0)

    def __repr__(self) -> str:
        return "Bitrix24()"

    async def rest(self, settings: dict[str, Any], method: str, params: dict[str, Any]) -> Any:
        """One REST method by the webhook; its ``result``, else :class:`DeliveryError` (secret-free)."""
        base, secret = webhook_parts(settings["webhook_url"])
        secrets = [secret]  # the portal and user id may show; the secret never
        try:
            response = await self.http.send(
                "POST",
                f"{base}{method}.json",
                secrets=secrets,
                content=json.dumps(params, ensure_ascii=False).encode(),
                headers={"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"},
            )
        except DeliveryError as exc:
            if exc.status is None:  # no answer (network, timeout) or an address the deployment refuses: as it is
                raise
            error = _error_of(exc.response)
            raise DeliveryError(
                f"Bitrix24 {method}: HTTP {exc.status} {error}".strip(),
                retry=exc.retry or error in RETRYABLE_ERRORS,
                status=exc.status,
                response=exc.response,
            ) from None
        shown = excerpt(response, secrets)
        try:
            answer = response.json()
        except ValueError:
            raise DeliveryError(
                f"Bitrix24 {method}: the answer is not JSON",
                retry=False,
                status=response.status_code,
                response=shown,
            ) from None
        if not isinstance(answer, dict) or "error" in answer or "result" not in answer:
            error = str(answer.get("error", "")) if isinstance(answer, dict) else ""
            raise DeliveryError(
                f"Bitrix24 {method}: {error or 'no result in the answer'}",
                retry=error in RETRYABLE_ERRORS,
                status=response.status_code,
                response=shown,
            )
        return answer["result"]

    # --- lead created ---------------------------------------------------------------------------

    async def on_lead_created(self, event: CallEvent) -> str:
        state = await self.ensure_lead(event)
        entity = state.entity_type.lower()
        return json.dumps({"contact_id": state.contact_id, entity + "_id": state.entity_id})

    async def ensure_lead(self, event: CallEvent) -> Bitrix24Push:
        """The contact and the lead or deal of this call in Bitrix24: found, else added; each id saved at once."""
        settings, lead = event.settings, event.lead
        state, _ = await Bitrix24Push.get_or_create(call_id=event.call["id"], connection_id=event.connection_id)
        phone = lead["phone"]
        if state.contact_id is None:
            found = await self.rest(
                settings,
                "crm.duplicate.findbycomm",
                {"entity_type": "CONTACT", "type": "PHONE", "values": [phone]},
            )
            contact_id = _first_id(found, "CONTACT")
            if contact_id is None:
                added = await self.rest(
                    settings,
                    "crm.contact.add",
                    {
                        "fields": {
                            "NAME": storable(lead.get("name") or "") or phone,
                            "PHONE": [{"VALUE": phone, "VALUE_TYPE": "WORK"}],
                            "SOURCE_ID": settings["source_id"],
                            "ASSIGNED_BY_ID": settings["responsible_id"],
                        }
                    },
                )
                contact_id = int(added)
            state.contact_id = contact_id
            await state.save(update_fields=["contact_id"])
        entity = "deal" if settings["entity"] == "deal" else "lead"
        if state.entity_id is None or state.entity_type != entity.upper():
            state.entity_type, state.entity_id = entity.upper(), await self._find_or_add(entity, event, state)
            await state.save(update_fields=["entity_type", "entity_id"])
        return state

    async def _find_or_add(self, entity: str, event: CallEvent, state: Bitrix24Push) -> int:
        settings, lead = event.settings, event.lead
        origin = str(lead["id"])
        listed = await self.rest(
            settings,
            f"crm.{entity}.list",
            {"filter": {"ORIGINATOR_ID": ORIGINATOR, "ORIGIN_ID": origin}, "select": ["ID"]},
        )
        if isinstance(listed, list) and listed and str(listed[0].get("ID", "")).isdigit():
            return int(listed[0]["ID"])  # added by an earlier try whose answer was lost
        name = storable(lead.get("name") or "")
        fields_: dict[str, Any] = {
            "TITLE": f"Перезвон: обратный звонок {lead['phone']}" + (f" ({name})" if name else ""),
            "SOURCE_ID": settings["source_id"],
            "SOURCE_DESCRIPTION": storable(lead.get("page_url") or "")[:255],
            "ASSIGNED_BY_ID": settings["responsible_id"],
            "CONTACT_ID": state.contact_id,
            "COMMENTS": storable(lead_comment(lead)),
            "ORIGINATOR_ID": ORIGINATOR,
            "ORIGIN_ID": origin,
        }
        for utm in ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term"):
            if lead.get(utm):
                fields_[utm.upper()] = storable(lead[utm])
        if entity == "lead":
            fields_.update(
                {
                    "STATUS_ID": settings["lead_status_id"],
                    "NAME": name,
                    "PHONE": [{"VALUE": lead["phone"], "VALUE_TYPE": "WORK"}],
                }
            )
        else:
            fields_["CATEGORY_ID"] = settings["deal_category_id"]
            if settings["deal_stage_id"]:
                fields_["STAGE_ID"] = settings["deal_stage_id"]
        added = await self.rest(settings, f"crm.{entity}.add", {"fields": fields_})
        return int(added)

    # --- call finished --------------------------------------------------------------------------

    async def on_call_finished(self, event: CallEvent) -> str:
        settings, call = event.settings, event.call
        # the lead's delivery normally did this already; if it failed, the same steps run here
        # (each saved, the lead found by ORIGIN_ID), so the call is never without its lead
        state = await self.ensure_lead(event)
        entity = state.entity_type.lower()
        done: dict[str, Any] = {entity + "_id": state.entity_id}
        successful = call.get("display_status") == "successful"
        new_status = settings["successful_status_id"] if successful else settings["failed_status_id"]
        if new_status:
            field = "STATUS_ID" if entity == "lead" else "STAGE_ID"
            await self.rest(settings, f"crm.{entity}.update", {"id": state.entity_id, "fields": {field: new_status}})
            done[field] = new_status
        if not event.attempts:
            done["telephony"] = "no call was made"  # e-mailed instead (the 59 s rule), or cancelled before a dial
            return json.dumps(done)
        code = status_code(call, event.attempts)
        if not state.telephony_call_id:
            first = min(event.attempts, key=lambda a: a.get("number") or 0)
            registered = await self.rest(
                settings,
                "telephony.externalcall.register",
                {
                    "USER_ID": settings["responsible_id"],
                    "PHONE_NUMBER": event.lead["phone"].lstrip("+"),
                    "TYPE": 1,
                    "CALL_START_DATE": iso_seconds(
                        first.get("dialled_at") or first.get("started_at") or call["created_at"]
                    ),
                    "CRM_CREATE": 0,
                    "CRM_ENTITY_TYPE": "LEAD" if entity == "lead" else "CONTACT",
                    "CRM_ENTITY_ID": state.entity_id if entity == "lead" else state.contact_id,
                    "SHOW": 0,
                    "EXTERNAL_CALL_ID": f"perezvon-{call['id']}",
                },
            )
            state.telephony_call_id = str((registered or {}).get("CALL_ID") or "")
            if not state.telephony_call_id:
                raise DeliveryError("Bitrix24 telephony.externalcall.register: no CALL_ID", retry=False)
            await state.save(update_fields=["telephony_call_id"])
        done["call_id"] = state.telephony_call_id
        if not state.finished:
            await self.rest(
                settings,
                "telephony.externalcall.finish",
                {
                    "CALL_ID": state.telephony_call_id,
                    "USER_ID": settings["responsible_id"],
                    "DURATION": int(call.get("duration_seconds") or 0),
                    "STATUS_CODE": code,
                    "FAILED_REASON": "" if code == "200" else gettext(call.get("reason") or ""),
                    "ADD_TO_CHAT": 0,
                },
            )
            state.finished = True
            await state.save(update_fields=["finished"])
        done["status_code"] = code
        recording = Path(call.get("recording") or "")
        if state.record_file_id is None and call.get("recording"):
            if recording.suffix.lower() not in RECORD_SUFFIXES or not recording.is_file():
                done["recording"] = "not attached: Bitrix24 takes .mp3 or .wav, and the file must still be kept"
                return json.dumps(done)
            attached = await self.rest(
                settings,
                "telephony.externalcall.attachRecord",
                {
                    "CALL_ID": state.telephony_call_id,
                    "FILENAME": recording.name,
                    "FILE_CONTENT": base64.b64encode(recording.read_bytes()).decode("ascii"),
                },
            )
            state.record_file_id = int((attached or {}).get("FILE_ID") or 0)
            await state.save(update_fields=["record_file_id"])
        if state.record_file_id is not None:
            done["record_file_id"] = state.record_file_id
        return json.dumps(done)

    # --- check connection -----------------------------------------------------------------------

    async def check(self, settings: dict[str, Any]) -> None:
        """``scope`` (the webhook's scopes) and ``user.get`` (the responsible user exists)."""
        try:
            scopes = await self.rest(settings, "scope", {})
        except DeliveryError as refused:
            if refused.status in (401, 403) or _error_of(refused.response) in AUTH_ERRORS:
                raise CheckFailed(
                    {"webhook_url": ["Bitrix24 does not accept this webhook: it is wrong, deleted or switched off."]}
                ) from None
            raise
        missing = sorted({"crm", "telephony", "user"} - set(scopes if isinstance(scopes, list) else []))
        if missing:
            raise CheckFailed(
                {
                    "webhook_url": [
                        (
                            "The webhook lacks the scopes %(scopes)s: tick them in the webhook's settings.",
                            {"scopes": ", ".join(missing)},
                        )
                    ]
                }
            )
        users = await self.rest(settings, "user.get", {"ID": settings["responsible_id"], "ACTIVE": True})
        if not users:
            raise CheckFailed(
                {"responsible_id": [("Bitrix24 has no active user %(user)s.", {"user": settings["responsible_id"]})]}
            )


def _error_of(excerpt_text: str) -> str:
    """The ``error`` of a stored ``"<status> <body>"`` excerpt, "" when there is none."""
    found = re.search(r'"error"\s*:\s*"([A-Za-z_]+)"', excerpt_text or "")
    return found.group(1) if found else ""
