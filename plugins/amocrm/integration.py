"""amoCRM (docs/amocrm.md): a contact and a lead per callback, and a call note with the result.

OAuth 2.0 the way amoCRM documents it ("Авторизация OAuth 2.0"): the admin creates an external
integration in the account, pastes its id, secret key, redirect URI and the one-time authorization
code (valid 20 minutes) into the connection's settings; the first check or delivery exchanges the
code at ``POST /oauth2/access_token`` (``grant_type=authorization_code``) for an access token (valid
a day) and a refresh token (valid three months, replaced on every use). Both are stored encrypted
(:mod:`perezvon.plugins.amocrm.tokens`); an expired access token, or a 401, is refreshed once
(``grant_type=refresh_token``) and the new refresh token stored.

* lead created -> the contact is found by phone (``GET /api/v4/contacts?query=``) or created
  (``POST /api/v4/contacts``, PHONE/WORK), a lead is created in the chosen pipeline and status,
  linked to it (``POST /api/v4/leads``), and a note with the source, page and UTM tags is added to
  the lead (``POST /api/v4/leads/{id}/notes``, ``common``). Each id is kept (:class:`SentLead`) as
  soon as amoCRM gives it: a retried delivery carries on from the step that failed;
* call finished -> a ``call_out`` note on the lead: duration, amoCRM's call status, result text
  and the link to the recording.

amoCRM allows 7 requests a second per integration: requests to one account are spaced out here,
and a 429 fails the try, retried with the delivery's back-off.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema
from tortoise.exceptions import IntegrityError

from perezvon.api import (
    CallEvent,
    CheckFailed,
    DeliveryError,
    HttpPush,
    Integration,
    LegStatus,
    excerpt,
    json_body,
)
from perezvon.plugins.amocrm.models import Grant, SentLead
from perezvon.plugins.amocrm.tokens import Sealer, Unreadable

TOKEN_PATH = "/oauth2/access_token"
#: amoCRM's limit is 7 requests a second per integration; keep a little under it
REQUESTS_PER_SECOND = 7
#: refresh this long before the access token expires, so no request is sent with a dying token
EXPIRY_MARGIN = dt.timedelta(seconds=60)
SUBDOMAIN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
CLIENT_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")

#: amoCRM's call statuses (the ``call_status`` of a call note, API v4 "Звонки")
LEFT_MESSAGE, CALL_BACK_LATER, NOT_AVAILABLE, ANSWERED, WRONG_NUMBER, NO_ANSWER, BUSY = range(1, 8)
#: what each is called in amoCRM's interface; the note's ``call_result`` starts with it
CALL_STATUS_TEXT = {
    LEFT_MESSAGE: "Оставил сообщение",
    CALL_BACK_LATER: "Перезвонить позже",
    NOT_AVAILABLE: "Нет на месте",
    ANSWERED: "Разговор состоялся",
    WRONG_NUMBER: "Неверный номер",
    NO_ANSWER: "Не дозвонился",
    BUSY: "Номер занят",
}
#: our display status -> amoCRM's call status (docs/amocrm.md#call-statuses); unsuccessful calls
#: are refined by the client leg's code in :func:`amo_call_status`
STATUS_MAP = {
    "successful": ANSWERED,
    "unsuccessful": NO_ANSWER,
    "lost": CALL_BACK_LATER,
    "cancelled": CALL_BACK_LATER,
    "failed": NOT_AVAILABLE,
}


def amo_call_status(call: dict[str, Any], attempts: list[dict[str, Any]]) -> int | None:
    """amoCRM's call status for a finished call; None when nobody was called (nothing to note)."""
    status = STATUS_MAP.get(call.get("display_status") or "")
    if status == NO_ANSWER and attempts:
        last = max(attempts, key=lambda a: a.get("number") or 0)
        client = last.get("client_status")
        if client == LegStatus.BUSY:
            return BUSY
        if client == LegStatus.NOT_FOUND:
            return WRONG_NUMBER
    return status


class AuthRefused(DeliveryError):
    """amoCRM refused the authorization itself; ``field`` is the setting to fix. Never retried."""

    def __init__(self, message: str, field: str, advice: str, *, status: int | None, response: str = "") -> None:
        # stored with the delivery: what to do, then amoCRM's own words
        super().__init__(message, retry=False, status=status, response=f"{message}. {response}" if response else "")
        self.field = field
        #: what "Check connection" shows on the field (an English msgid)
        self.advice = advice


def base_url(account: str) -> str:
    """``mycompany`` -> ``https://mycompany.amocrm.ru``; a URL is kept as it is (without a trailing /)."""
    account = account.strip()
    if SUBDOMAIN.fullmatch(account.lower()):
        return f"https://{account.lower()}.amocrm.ru"
    return account.rstrip("/")


class AmocrmSettings(Schema):
    account = fields.String(
        required=True,
        metadata={
            "label": "amoCRM account",
            "help": "The subdomain (mycompany for mycompany.amocrm.ru) or the account's address",
        },
    )
    client_id = fields.String(
        required=True,
        metadata={"label": "Integration ID", "help": "amoCRM → amoMarket → your integration → Keys and access"},
    )
    client_secret = fields.String(
        required=True,
        metadata={"secret": True, "label": "Secret key", "help": "Shown next to the integration ID"},
    )
    redirect_uri = fields.String(
        required=True,
        metadata={"label": "Redirect URI", "help": "Exactly as entered in the integration's settings in amoCRM"},
    )
    authorization_code = fields.String(
        required=True,
        metadata={
            "secret": True,
            "label": "Authorization code",
            "help": "One-time, valid 20 minutes; a new code replaces the tokens",
        },
    )
    pipeline_id = fields.Integer(
        load_default=None,
        allow_none=True,
        strict=False,
        validate=validate.Range(min=1),
        metadata={"label": "Pipeline id", "help": "Empty: the main pipeline"},
    )
    status_id = fields.Integer(
        load_default=None,
        allow_none=True,
        strict=False,
        validate=validate.Range(min=1),
        metadata={"label": "Status id", "help": "Empty: the pipeline's first status"},
    )

    @validates("account")
    def _account(self, value: str, **_: Any) -> None:
        value = value.strip()
        if SUBDOMAIN.fullmatch(value.lower()):
            return
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
            raise ValidationError("The account's subdomain (mycompany) or its address (https://mycompany.amocrm.ru).")

    @validates("client_id")
    def _client_id(self, value: str, **_: Any) -> None:
        if not CLIENT_ID.fullmatch(value.strip()):
            raise ValidationError("The integration ID looks like 0a1b2c3d-0000-4000-8000-0123456789ab.")

    @validates("client_secret")
    def _secret(self, value: str, **_: Any) -> None:
        if len(value.strip()) < 16 or any(ch.isspace() for ch in value.strip()):
            raise ValidationError("This does not look like an amoCRM secret key.")

    @validates("redirect_uri")
    def _redirect(self, value: str, **_: Any) -> None:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError("The redirect URI is an http:// or https:// address.")

    @validates("authorization_code")
    def _code(self, value: str, **_: Any) -> None:
        if not value.strip():
            raise ValidationError("Paste the authorization code from amoCRM.")
        if any(ch.isspace() for ch in value.strip()) or len(value.strip()) < 16:
            raise ValidationError("This does not look like an amoCRM authorization code.")

    @validates_schema
    def _status_needs_pipeline(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("status_id") and not data.get("pipeline_id"):
            raise ValidationError("A status belongs to a pipeline: give the pipeline id too.", "pipeline_id")


def phone_digits(text: str) -> str:
    return re.sub(r"\D", "", text or "")


def same_phone(ours: str, theirs: str) -> bool:
    """The contact's phone is the lead's, however amoCRM's user typed it (8 916 ..., +7 (916) ...)."""
    a, b = phone_digits(ours), phone_digits(theirs)
    return bool(a and b) and (a == b or (len(a) >= 10 and len(b) >= 10 and a[-10:] == b[-10:]))


def contact_phones(contact: dict[str, Any]) -> list[str]:
    phones = []
    for field in contact.get("custom_fields_values") or []:
        if isinstance(field, dict) and field.get("field_code") == "PHONE":
            phones += [str(v.get("value", "")) for v in field.get("values") or [] if isinstance(v, dict)]
    return phones


def embedded_ids(answer: Any, kind: str) -> list[int]:
    rows = ((answer or {}).get("_embedded") or {}).get(kind) if isinstance(answer, dict) else None
    return [row["id"] for row in rows or [] if isinstance(row, dict) and isinstance(row.get("id"), int)]


def lead_note_text(lead: dict[str, Any]) -> str:
    """The lead's origin, for the note under the lead (Russian: amoCRM's users read it)."""
    lines = ["Заявка на обратный звонок из Перезвона"]
    if lead.get("name"):
        lines.append(f"Имя: {lead['name']}")
    lines.append(f"Телефон: {lead.get('phone', '')}")
    lines.append(f"Источник: {lead.get('source', '')}")
    if lead.get("page_url"):
        lines.append(f"Страница: {lead['page_url']}")
    if lead.get("referrer"):
        lines.append(f"Откуда пришёл: {lead['referrer']}")
    for key in UTM:
        if lead.get(key):
            lines.append(f"{key}: {lead[key]}")
    return "\n".join(lines)


class Pacer:
    """Spaces out requests to one account: at most :data:`REQUESTS_PER_SECOND` (in this process)."""

    def __init__(self, rate: float = REQUESTS_PER_SECOND) -> None:
        self.interval = 1.0 / rate
        self.next_slot: dict[str, float] = {}

    async def wait(self, account: str) -> None:
        now = time.monotonic()
        slot = max(now, self.next_slot.get(account, 0.0))
        self.next_slot[account] = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class Amocrm(Integration):
    key = "amocrm"
    title = "amoCRM"
    summary = "Leads go to amoCRM as a contact and a lead, call results as call notes."
    description = (
        "Each lead finds its contact in amoCRM by phone (or creates one) and gets a lead in the chosen pipeline "
        "and status, with the source, page and UTM tags in a note; the call result follows as a call note with "
        "the duration, status and recording link. In amoCRM create an external integration (amoMarket → "
        "Create integration) with the redirect URI below, then paste its ID, secret key and the authorization "
        "code. Once saved the secret key and the code are shown as ****."
    )
    settings_schema = AmocrmSettings

    def __init__(self, secret_key: str = "", public_url: str = "") -> None:
        self.sealer = Sealer(secret_key)
        self.fingerprint_key = hashlib.sha256(b"perezvon-amocrm-grant:" + secret_key.encode()).digest()
        self.public_url = public_url.rstrip("/")
        self.http = HttpPush()
        self.pacer = Pacer()
        self.locks: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = {}

    def __repr__(self) -> str:
        return "Amocrm()"

    def lock(self, fingerprint: str) -> asyncio.Lock:
        """One token exchange or refresh at a time per authorization (in this process and event loop)."""
        loop = asyncio.get_running_loop()
        held = self.locks.get(fingerprint)
        if held is None or held[0] is not loop:
            held = self.locks[fingerprint] = (loop, asyncio.Lock())
        return held[1]

    # --- OAuth ----------------------------------------------------------------------------------

    def fingerprint(self, settings: dict[str, Any]) -> str:
        grant = "\n".join(
            [base_url(settings["account"]), settings["client_id"].strip(), settings["authorization_code"].strip()]
        )
        return hmac.new(self.fingerprint_key, grant.encode(), hashlib.sha256).hexdigest()

    def secrets(self, settings: dict[str, Any], *tokens: str) -> list[str]:
        return [settings["client_secret"].strip(), settings["authorization_code"].strip(), *tokens]

    async def _token_request(
        self, settings: dict[str, Any], body: dict[str, str], secrets: list[str]
    ) -> dict[str, Any]:
        url = base_url(settings["account"]) + TOKEN_PATH
        await self.pacer.wait(base_url(settings["account"]))
        response = await self.http.send("POST", url, json=body, secrets=secrets)
        answer = json_body(response, secrets)
        if not (
            isinstance(answer, dict)
            and isinstance(answer.get("access_token"), str)
            and isinstance(answer.get("refresh_token"), str)
        ):
            raise DeliveryError(
                "amoCRM's token answer has no tokens",
                retry=True,
                status=response.status_code,
                response=excerpt(response, secrets),
            )
        return answer

    def _expiry(self, answer: dict[str, Any]) -> dt.datetime:
        seconds = answer.get("expires_in")
        seconds = seconds if isinstance(seconds, int) and seconds > 0 else 86400
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)

    async def _exchange_code(self, settings: dict[str, Any], fingerprint: str) -> str:
        body = {
            "client_id": settings["client_id"].strip(),
            "client_secret": settings["client_secret"].strip(),
            "grant_type": "authorization_code",
            "code": settings["authorization_code"].strip(),
            "redirect_uri": settings["redirect_uri"].strip(),
        }
        try:
            answer = await self._token_request(settings, body, self.secrets(settings))
        except DeliveryError as refused:
            stored = await Grant.get_or_none(fingerprint=fingerprint)
            if stored is not None and refused.status == 400:  # another worker used the code a moment ago
                return self.sealer.open(stored.access_token)
            if refused.status == 400:
                raise AuthRefused(
                    "amoCRM refused the authorization code: it was used already or is older than 20 minutes "
                    "(paste a new one), or the redirect URI differs from the integration's",
                    "authorization_code",
                    "amoCRM refused this code: it was used already or is older than 20 minutes, or the redirect "
                    "URI differs from the integration's. Get a new code and paste it.",
                    status=400,
                    response=refused.response,
                ) from None
            if refused.status in (401, 403):
                raise AuthRefused(
                    "amoCRM refused the integration ID or secret key",
                    "client_secret",
                    "amoCRM does not accept this integration ID and secret key.",
                    status=refused.status,
                    response=refused.response,
                ) from None
            raise
        access, refresh = answer["access_token"], answer["refresh_token"]
        sealed: dict[str, Any] = {
            "access_token": self.sealer.seal(access),
            "refresh_token": self.sealer.seal(refresh),
            "expires_at": self._expiry(answer),
        }
        try:
            await Grant.create(fingerprint=fingerprint, **sealed)
        except IntegrityError:  # stored meanwhile by another process: ours is as fresh
            await Grant.filter(fingerprint=fingerprint).update(**sealed)
        return access

    async def _refresh(self, settings: dict[str, Any], grant: Grant) -> str:
        old_refresh = self.sealer.open(grant.refresh_token)
        body = {
            "client_id": settings["client_id"].strip(),
            "client_secret": settings["client_secret"].strip(),
            "grant_type": "refresh_token",
            "refresh_token": old_refresh,
            "redirect_uri": settings["redirect_uri"].strip(),
        }
        try:
            answer = await self._token_request(settings, body, self.secrets(settings, old_refresh))
        except DeliveryError as refused:
            if refused.status not in (400, 401, 403):
                raise
            # another worker may have used it a moment ago: amoCRM rotated it, the new pair is stored
            current = await Grant.get_or_none(fingerprint=grant.fingerprint)
            if current is not None and current.refresh_token != grant.refresh_token:
                return self.sealer.open(current.access_token)
            raise AuthRefused(
                "amoCRM refused the refresh token (revoked, or unused for three months): paste a new "
                "authorization code in the connection's settings",
                "authorization_code",
                "amoCRM no longer accepts this authorization: paste a new code.",
                status=refused.status,
                response=refused.response,
            ) from None
        access = answer["access_token"]
        grant.access_token = self.sealer.seal(access)
        grant.refresh_token = self.sealer.seal(answer["refresh_token"])
        grant.expires_at = self._expiry(answer)
        await grant.save(update_fields=["access_token", "refresh_token", "expires_at", "updated_at"])
        return access

    async def access_token(self, settings: dict[str, Any], *, stale: str | None = None) -> str:
        """A working access token: the stored one, a refreshed one (expired, or ``stale`` got a 401),
        or, the first time, the one the authorization code gives."""
        fingerprint = self.fingerprint(settings)
        try:
            return await self._access_token(settings, fingerprint, stale)
        except Unreadable:
            raise AuthRefused(
                "the stored amoCRM tokens cannot be decrypted (the deployment's secret key changed): paste a new "
                "authorization code in the connection's settings",
                "authorization_code",
                "amoCRM no longer accepts this authorization: paste a new code.",
                status=None,
            ) from None

    async def _access_token(self, settings: dict[str, Any], fingerprint: str, stale: str | None) -> str:
        async with self.lock(fingerprint):
            grant = await Grant.get_or_none(fingerprint=fingerprint)
            if grant is None:
                return await self._exchange_code(settings, fingerprint)
            access = self.sealer.open(grant.access_token)
            if stale is not None and access != stale:
                return access  # refreshed meanwhile
            if stale is None and grant.expires_at - EXPIRY_MARGIN > dt.datetime.now(dt.UTC):
                return access
            return await self._refresh(settings, grant)

    # --- the API ----------------------------------------------------------------------------------

    async def api(
        self,
        settings: dict[str, Any],
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One API v4 request with a Bearer token; a 401 refreshes the token once and tries again."""
        account = base_url(settings["account"])
        token = await self.access_token(settings)
        for first in (True, False):
            await self.pacer.wait(account)
            options: dict[str, Any] = {"headers": {"Authorization": f"Bearer {token}"}}
            if body is not None:
                options["json"] = body
            if params:
                options["params"] = params
            try:
                return await self.http.send(method, account + path, secrets=self.secrets(settings, token), **options)
            except DeliveryError as refused:
                if refused.status == 401 and first:
                    token = await self.access_token(settings, stale=token)
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def answer(self, settings: dict[str, Any], method: str, path: str, **options: Any) -> Any:
        response = await self.api(settings, method, path, **options)
        if response.status_code == 204 or not response.content:
            return None  # amoCRM's "nothing found"
        return json_body(response, self.secrets(settings))

    async def find_contact(self, settings: dict[str, Any], phone: str) -> int | None:
        answer = await self.answer(settings, "GET", "/api/v4/contacts", params={"query": phone_digits(phone)})
        rows = ((answer or {}).get("_embedded") or {}).get("contacts") if isinstance(answer, dict) else None
        for contact in rows or []:
            if (
                isinstance(contact, dict)
                and isinstance(contact.get("id"), int)
                and any(same_phone(phone, theirs) for theirs in contact_phones(contact))
            ):
                return int(contact["id"])
        return None

    def _one_id(self, answer: Any, kind: str, what: str) -> int:
        ids = embedded_ids(answer, kind)
        if not ids:
            raise DeliveryError(f"amoCRM's answer has no {what} id", retry=False, response=json.dumps(answer)[:300])
        return ids[0]

    # --- the events -------------------------------------------------------------------------------

    async def on_lead_created(self, event: CallEvent) -> str:
        settings, lead = event.settings, event.lead
        sent, _ = await SentLead.get_or_create(lead_id=lead["id"], account=base_url(settings["account"]))
        if sent.contact_id is None:
            found = await self.find_contact(settings, lead["phone"])
            if found is None:
                body = [
                    {
                        "name": lead.get("name") or lead["phone"],
                        "custom_fields_values": [
                            {"field_code": "PHONE", "values": [{"value": lead["phone"], "enum_code": "WORK"}]}
                        ],
                    }
                ]
                found = self._one_id(
                    await self.answer(settings, "POST", "/api/v4/contacts", body=body), "contacts", "contact"
                )
                sent.contact_created = True
            sent.contact_id = found
            await sent.save(update_fields=["contact_id", "contact_created"])
        if sent.amo_lead_id is None:
            item: dict[str, Any] = {
                "name": f"Обратный звонок: {lead.get('name') or lead['phone']}"[:255],
                "_embedded": {"contacts": [{"id": sent.contact_id}], "tags": [{"name": "Перезвон"}]},
                "request_id": event.event_id,
            }
            if settings.get("pipeline_id"):
                item["pipeline_id"] = settings["pipeline_id"]
            if settings.get("status_id"):
                item["status_id"] = settings["status_id"]
            answer = await self.answer(settings, "POST", "/api/v4/leads", body=[item])
            sent.amo_lead_id = self._one_id(answer, "leads", "lead")
            await sent.save(update_fields=["amo_lead_id"])
        if sent.lead_note_id is None:
            note = [{"note_type": "common", "params": {"text": lead_note_text(lead)}}]
            answer = await self.answer(settings, "POST", f"/api/v4/leads/{sent.amo_lead_id}/notes", body=note)
            sent.lead_note_id = self._one_id(answer, "notes", "note")
            await sent.save(update_fields=["lead_note_id"])
        return json.dumps(
            {"contact_id": sent.contact_id, "contact_created": sent.contact_created, "lead_id": sent.amo_lead_id}
        )

    def recording_link(self, call: dict[str, Any]) -> str:
        recording = str(call.get("recording") or "")
        if not recording:
            return ""
        if recording.startswith(("http://", "https://")):
            return recording
        return f"{self.public_url}/calls/{call['id']}/recording"  # the admin's player; a sign-in is asked

    async def on_call_finished(self, event: CallEvent) -> str | None:
        settings, call = event.settings, event.call
        status = amo_call_status(call, event.attempts)
        if status is None:
            return None  # nobody was called (notified by e-mail): nothing to note
        sent = await SentLead.get_or_none(lead_id=event.lead["id"], account=base_url(settings["account"]))
        if sent is None or sent.amo_lead_id is None or sent.lead_note_id is None:
            # the lead is still being delivered (or failed): the result waits for it, with back-off
            raise DeliveryError("the lead is not in amoCRM yet", retry=True)
        if sent.call_note_id is None:
            reason = str(call.get("reason") or "")
            params: dict[str, Any] = {
                "uniq": str(call["id"]),
                "duration": int(call.get("duration_seconds") or 0),
                "source": "Perezvon",
                "phone": event.lead["phone"],
                "call_status": status,
                "call_result": f"{CALL_STATUS_TEXT[status]}: {reason}" if reason else CALL_STATUS_TEXT[status],
            }
            link = self.recording_link(call)
            if link:
                params["link"] = link
            note = [{"note_type": "call_out", "params": params}]
            answer = await self.answer(settings, "POST", f"/api/v4/leads/{sent.amo_lead_id}/notes", body=note)
            sent.call_note_id = self._one_id(answer, "notes", "note")
            await sent.save(update_fields=["call_note_id"])
        return json.dumps({"lead_id": sent.amo_lead_id, "note_id": sent.call_note_id, "call_status": status})

    # --- check connection ------------------------------------------------------------------------

    async def check(self, settings: dict[str, Any]) -> None:
        """Exchange the code (the first time) and read the account, then the pipeline and status."""
        try:
            await self.answer(settings, "GET", "/api/v4/account")
        except AuthRefused as refused:
            raise CheckFailed({refused.field: [refused.advice]}) from None
        except DeliveryError as refused:
            if refused.status == 404:
                raise CheckFailed({"account": ["amoCRM has no such account."]}) from None
            raise
        pipeline, status = settings.get("pipeline_id"), settings.get("status_id")
        if not pipeline:
            return
        try:
            answer = await self.answer(settings, "GET", f"/api/v4/leads/pipelines/{pipeline}")
        except DeliveryError as refused:
            if refused.status in (400, 404):
                raise CheckFailed(
                    {"pipeline_id": [("The amoCRM account has no pipeline %(pipeline)s.", {"pipeline": pipeline})]}
                ) from None
            raise
        if status and status not in embedded_ids(answer, "statuses"):
            raise CheckFailed(
                {
                    "status_id": [
                        ("Pipeline %(pipeline)s has no status %(status)s.", {"pipeline": pipeline, "status": status})
                    ]
                }
            )
