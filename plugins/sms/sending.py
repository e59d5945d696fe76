"""Sending one message exactly once, and the opt-out list (docs/sms.md, "Never twice").

A message is claimed under a unique key (:class:`SentSms`) before it goes to the provider:
the unique index makes a duplicate job or a retry find the claim. A claim whose sending
failed (``failed``), or that has been ``sending`` for longer than :data:`STALE_CLAIM` (its worker
died mid-request), may be claimed again; one that was ``sent`` never is.
"""

from __future__ import annotations

import datetime as dt
import secrets

from tortoise.exceptions import IntegrityError

from perezvon.api import DeliveryError
from perezvon.plugins.sms.models import SentSms, SentState, SmsRecipient
from perezvon.plugins.sms.providers import SmsProvider

STALE_CLAIM = dt.timedelta(minutes=10)
ALREADY_SENT = "skipped: already sent"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def claim(key: str, *, connection_id: int | None, kind: str, phone: str, text: str) -> SentSms | None:
    """The claimed row, or None when this message was sent or is being sent by another job."""
    try:
        return await SentSms.create(
            key=key, connection_id=connection_id, kind=kind, phone=phone, text=text[:1000], state=SentState.SENDING
        )
    except IntegrityError:
        pass
    row = await SentSms.get_or_none(key=key)
    if row is None or row.state == SentState.SENT:
        return None
    retake = SentSms.filter(id=row.id, state=SentState.FAILED)
    if row.state == SentState.SENDING:
        retake = SentSms.filter(id=row.id, state=SentState.SENDING, updated_at__lt=utcnow() - STALE_CLAIM)
    if not await retake.update(state=SentState.SENDING, text=text[:1000], updated_at=utcnow()):
        return None
    row.state = SentState.SENDING
    return row


async def send_once(
    provider: SmsProvider, key: str, *, connection_id: int | None, kind: str, phone: str, text: str
) -> str:
    """Send ``text`` to ``phone`` unless the message ``key`` was sent already; returns what to store."""
    row = await claim(key, connection_id=connection_id, kind=kind, phone=phone, text=text)
    if row is None:
        return ALREADY_SENT
    try:
        answer = await provider.send(phone, text)
    except DeliveryError as exc:
        await SentSms.filter(id=row.id).update(
            state=SentState.FAILED, answer=(exc.response or str(exc))[:500], updated_at=utcnow()
        )
        raise
    except BaseException:
        await SentSms.filter(id=row.id).update(state=SentState.FAILED, updated_at=utcnow())
        raise
    await SentSms.filter(id=row.id).update(state=SentState.SENT, answer=answer[:500], updated_at=utcnow())
    return f"sent by {provider.name}: {answer}"


async def recipient(connection_id: int, phone: str) -> SmsRecipient:
    """The number's row on the connection (made on first use, with its opt-out token)."""
    found = await SmsRecipient.get_or_none(connection_id=connection_id, phone=phone)
    if found is not None:
        return found
    try:
        return await SmsRecipient.create(connection_id=connection_id, phone=phone, token=secrets.token_urlsafe(12))
    except IntegrityError:  # made by a job running at the same time
        return await SmsRecipient.get(connection_id=connection_id, phone=phone)


async def opted_out(connection_id: int, phone: str) -> bool:
    return await SmsRecipient.filter(connection_id=connection_id, phone=phone, opted_out_at__isnull=False).exists()


async def opt_out(token: str) -> SmsRecipient | None:
    """Unsubscribe the number of an opt-out link; None for an unknown token. Idempotent."""
    found = await SmsRecipient.get_or_none(token=token)
    if found is not None and found.opted_out_at is None:
        found.opted_out_at = utcnow()
        await SmsRecipient.filter(id=found.id, opted_out_at__isnull=True).update(opted_out_at=found.opted_out_at)
    return found
