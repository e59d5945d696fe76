"""Telling a connection's recipients about a site-form e-mail kept without a callback.

A message with no phone number, or one the intake refused, is kept and listed on the
connection's page; its recipients are told too, through the deployment's notifiers (the same
``Notifier.send`` the core's call notifications use; the mail plugin renders the kind
``form_email_kept``). One job per notifier, retried with back-off like the core's.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from arq import Retry

from perezvon.api import LOCALES, Connection, Notification, NotificationRecipient, addresses_without_contacts, mask_text
from perezvon.plugins.siteforms.models import InboundMessage
from perezvon.plugins.siteforms.panel import reason_text
from perezvon.plugins.siteforms.texts import text

log = logging.getLogger("perezvon.siteforms")

KIND = "form_email_kept"
MAX_TRIES = 8


async def notify_kept(ctx: dict[str, Any], notifier_key: str, message_id: str) -> str:
    app = ctx["perezvon"]
    notifier = app.host.registry.notifiers.get(notifier_key)
    message = await InboundMessage.get_or_none(id=message_id)
    if notifier is None or message is None:
        return "skipped"
    connection = await Connection.get(id=message.connection_id)
    # no lead, so no office or department to pick recipients by: everyone of the connection is told
    rows = await NotificationRecipient.filter(connection_id=connection.id).values_list("email", flat=True)
    emails = tuple(sorted({str(email) for email in rows}))
    if not emails:
        return "skipped: no recipients"
    notification = Notification(
        kind=KIND,
        recipients=emails,
        subject_id=str(message.id),
        data={
            "connection": {
                "id": connection.id,
                "name": connection.name,
                "domain": connection.domain,
                "timezone": connection.timezone,
            },
            "message": {
                "id": str(message.id),
                "received_at": message.received_at.isoformat(),
                "sender": message.mail_from,
                "subject": message.subject,
                # in every language: the notifier writes in the deployment's
                "status": {locale: message.status_label(locale) for locale in LOCALES},
                "reason": {locale: reason_text(message.error, locale) for locale in LOCALES},
            },
            "link": f"{app.settings.public_url.rstrip('/')}/connections/{connection.id}#panel-siteforms",
            "note": {
                locale: text("Further such e-mails of the next 10 minutes are only listed there.", locale)
                for locale in LOCALES
            },
        },
    )
    # a form's sender or subject may be the client's own address or phone: masked for those who may not see it
    blind = await addresses_without_contacts(connection.id, emails)
    notifications = [notification]
    if blind:
        message_data = notification.data["message"]
        masked = dataclasses.replace(
            notification,
            recipients=tuple(email for email in emails if email in blind),
            data={
                **notification.data,
                "message": {
                    **message_data,
                    "sender": mask_text(message_data["sender"]),
                    "subject": mask_text(message_data["subject"]),
                },
                "contacts_masked": True,
            },
        )
        notification = dataclasses.replace(notification, recipients=tuple(e for e in emails if e not in blind))
        notifications = [n for n in (notification, masked) if n.recipients]
    job_try = ctx.get("job_try", 1)
    try:
        for each in notifications:
            await notifier.send(each)
    except Exception as exc:
        retry = getattr(exc, "retry", True)
        if retry and job_try < MAX_TRIES:
            log.warning("notifier %s failed for message %s (try %d): %s", notifier_key, message_id, job_try, exc)
            raise Retry(defer=5 * 2 ** (job_try - 1)) from exc
        log.error("notifier %s failed for good for message %s: %s", notifier_key, message_id, exc)
        return f"failed: {exc}"
    return f"sent to {len(emails)}"
