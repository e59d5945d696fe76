"""What happens to one accepted message for one technical address.

In order: a copy already received (same Message-ID, same address) makes no
second lead; else the form is matched against the site and, when it has a
phone number, submitted to the core's intake; then the message row and its
raw bytes are committed. The SMTP server answers 250 only after all of it,
and 451 (the sender retries) when any of it could not be done now -- never
250 for something that is not stored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

from perezvon.api import IntakeError, IntakeReason, storable
from perezvon.plugins.siteforms.check import is_check
from perezvon.plugins.siteforms.decoding import clean_line
from perezvon.plugins.siteforms.directory import Directory, KnownAddress
from perezvon.plugins.siteforms.matching import match_lead
from perezvon.plugins.siteforms.models import MessageStatus
from perezvon.plugins.siteforms.parser import ParsedForm
from perezvon.plugins.siteforms.store import MessageStore, StoreUnavailable

if TYPE_CHECKING:
    from perezvon.api import LeadIntake

log = logging.getLogger("perezvon.siteforms")

#: English message ids an admin sees as a message's ``error`` (perezvon.core.i18n translates them)
NO_PHONE_FOUND = "No phone number found in the message."
UNREADABLE = "The message could not be read."

#: what each refusal of the intake makes of a message: kept with its status, or (None) not taken
#: now -- the SMTP server answers 451 and the sender tries again later
ON_REFUSAL: dict[IntakeReason, str | None] = {
    IntakeReason.MALFORMED: MessageStatus.REFUSED_BY_INTAKE,
    IntakeReason.INVALID: MessageStatus.REFUSED_BY_INTAKE,
    IntakeReason.SITE_UNKNOWN: MessageStatus.REFUSED_BY_INTAKE,
    IntakeReason.SITE_OFF: MessageStatus.REFUSED_BY_INTAKE,
    IntakeReason.APP_OFF: MessageStatus.REFUSED_BY_INTAKE,
    IntakeReason.CANNOT_CALL: MessageStatus.REFUSED_BY_INTAKE,
    IntakeReason.FOREIGN_ORIGIN: MessageStatus.REFUSED_BY_INTAKE,
    IntakeReason.RATE_LIMITED: MessageStatus.REFUSED_BY_INTAKE,
    IntakeReason.UNAVAILABLE: None,
}


@dataclasses.dataclass(frozen=True)
class Envelope:
    """The SMTP side of a received message."""

    raw: bytes
    mail_from: str
    peer: str
    received_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class Outcome:
    status: str | None  # a MessageStatus, None when nothing was stored
    #: why the message must be sent again later (SMTP 451); empty when it is stored
    retry_reason: str = ""
    lead_id: str | None = None
    call_id: str | None = None


def dedupe_key(form: ParsedForm | None, raw: bytes) -> str:
    """Equal for two deliveries of one message: its Message-ID, or its bytes when it has none."""
    message_id = (form.message_id if form else "").strip().strip("<>").lower()
    if message_id:
        return "mid:" + hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()
    return "raw:" + hashlib.sha256(raw).hexdigest()


def _lead_extra(form: ParsedForm, message_row_id: str) -> dict[str, Any]:
    """Kept with the lead: the form's own fields and where they came from."""
    return {
        "subject": form.subject,
        "fields": [[label, value] for label, value in form.fields],
        "inbound_message": message_row_id,
    }


#: the job that tells a connection's recipients about a message kept without a lead (notify.py)
NOTIFY_JOB = "siteforms.notify_kept"
#: at most one such notification per connection in this many seconds: a spam run to the address
#: must not flood the recipients (every message is listed on the connection's page anyway)
NOTIFY_EVERY_SECONDS = 600


class MessageIntake:
    def __init__(self, *, intake: LeadIntake, directory: Directory, store: MessageStore, secret: str = "") -> None:
        self.intake = intake
        self.directory = directory
        self.store = store
        #: the deployment's secret key: it signs the admin's test e-mails (check.py)
        self.secret = secret

    async def deliver(
        self, address: KnownAddress, form: ParsedForm | None, envelope: Envelope, parse_error: str = ""
    ) -> Outcome:
        """Handle one message for one address. ``form`` is None when the message could not be parsed."""
        key = dedupe_key(form, envelope.raw)
        row: dict[str, Any] = {
            "id": uuid.uuid4(),
            "address_id": address.id,
            "connection_id": address.connection_id,
            "received_at": envelope.received_at,
            "message_id": form.message_id if form else "",
            "dedupe_key": key,
            "mail_from": _printable(envelope.mail_from, 320),
            "peer": envelope.peer[:45],
            "subject": form.subject[:300] if form else "",
            "size": len(envelope.raw),
            "lead_id": None,
            "call_id": None,
            "duplicate_of_id": None,
            "error": "",
            "defects": ", ".join(form.defects)[:300] if form else "",
        }
        try:
            first = await self.store.first_copy(address.id, key)
            if first is not None:
                row.update(
                    dedupe_key=None,
                    status=MessageStatus.DUPLICATE,
                    duplicate_of_id=_uuid(first["id"]),
                    lead_id=_uuid(first["lead_id"]),
                    call_id=_uuid(first["call_id"]),
                )
                return await self._store(row, envelope.raw)
            if form is None:  # the parser's exception goes where support looks for what was wrong
                row.update(status=MessageStatus.NO_PHONE, error=UNREADABLE, defects=parse_error[:300])
                return await self._store(row, envelope.raw)
            site = await self.directory.site(address.connection_id)
        except StoreUnavailable as exc:
            return Outcome(None, retry_reason=str(exc))
        except Exception as exc:  # the database did not answer the look-ups
            log.warning("message for connection %s not taken now: %s", address.connection_id, exc)
            return Outcome(None, retry_reason=f"lookup failed: {type(exc).__name__}")

        draft = match_lead(form, site)
        if form.check_token and is_check(form.check_token, self.secret, address.local_part):
            # the admin's test: read like any form, never submitted (a test must not ring anybody)
            row.update(status=MessageStatus.TEST, error="" if draft.phone else NO_PHONE_FOUND)
            return await self._store(row, envelope.raw)
        if draft.phone is None:
            row.update(status=MessageStatus.NO_PHONE, error=NO_PHONE_FOUND)
            return await self._store(row, envelope.raw)
        try:
            # A mail's text may hold a NUL or a broken character no store can hold: nobody can be asked to
            # correct a mailed form, so it is cleaned rather than refused (perezvon.core.storable).
            accepted = await self.intake.submit(
                storable(draft.payload(site, _lead_extra(form, str(row["id"])))), client_ip=None, origin=None
            )
        except IntakeError as exc:
            status = ON_REFUSAL[exc.reason]
            if status is None:
                return Outcome(None, retry_reason=f"intake answered {exc.reason}")
            row.update(status=status, error=_describe(exc)[:500])
            return await self._store(row, envelope.raw)
        row.update(status=MessageStatus.LEAD, lead_id=uuid.UUID(accepted.lead_id), call_id=uuid.UUID(accepted.call_id))
        return await self._store(row, envelope.raw)

    async def _store(self, row: dict[str, Any], raw: bytes) -> Outcome:
        try:
            stored = await self.store.save(storable(row), raw)  # a subject with a NUL must not fail the store
        except StoreUnavailable as exc:
            return Outcome(None, retry_reason=f"not stored: {exc}")
        if stored["status"] in MessageStatus.NEED_A_LOOK:
            await self._tell_recipients(stored)
        lead_id, call_id = stored.get("lead_id"), stored.get("call_id")
        return Outcome(
            stored["status"], lead_id=str(lead_id) if lead_id else None, call_id=str(call_id) if call_id else None
        )

    async def _tell_recipients(self, row: dict[str, Any]) -> None:
        """Queue the notification of a message kept without a lead, once per notifier.

        The message is stored already: a Redis that does not answer now costs the notification,
        not the message (it is on the connection's page), so the sender still gets its 250.
        """
        redis = self.intake.redis
        try:
            first = await redis.set(
                f"pv:siteforms:told:{row['connection_id']}", str(row["id"]), nx=True, ex=NOTIFY_EVERY_SECONDS
            )
            if not first:
                return
            for notifier in self.intake.registry.notifiers:
                await redis.enqueue_job(
                    NOTIFY_JOB, notifier, str(row["id"]), _job_id=f"{NOTIFY_JOB}:{notifier}:{row['id']}"
                )
        except Exception as exc:
            log.warning("message %s kept; its notification was not queued: %s", row["id"], exc)


def _uuid(value: Any) -> uuid.UUID | None:
    """A UUID column as read by either driver (asyncpg: UUID, SQLite: text)."""
    return None if value is None else value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _printable(text: str, limit: int) -> str:
    """Text the database takes: an SMTPUTF8 argument may hold undecodable bytes (surrogates)."""
    return clean_line(text.encode("utf-8", "replace").decode("utf-8"), limit)


def _describe(exc: IntakeError) -> str:
    """``"invalid office_id: Choose one."`` from the intake's reason and ``{field: [messages]}``."""
    parts = []
    for field, messages in exc.errors.items():
        text = "; ".join(messages) if isinstance(messages, list) else str(messages)
        parts.append(f"{field}: {text}")
    return f"{exc.reason} " + ", ".join(parts)
