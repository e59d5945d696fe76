"""The core's arq jobs. ``ctx["perezvon"]`` is the running :class:`core.app.Perezvon`."""
from __future__ import annotations

import logging
from typing import Any

from arq import Retry

from core.callbacks import as_event_data
from core.models import Call, Delivery, IntegrationEnablement, NotificationRecipient
from core.registry import CallEvent, DeliveryError, Notification

log = logging.getLogger("perezvon.jobs")

MAX_DELIVERY_TRIES = 8


def backoff_seconds(job_try: int) -> int:
    """5 s, 10 s, 20 s ... capped at 15 minutes."""
    return min(5 * 2 ** (job_try - 1), 900)


async def place_attempt(ctx: dict[str, Any], call_id: str, number: int) -> str:
    return await ctx["perezvon"].engine.place_attempt(call_id, number)


async def sweep(ctx: dict[str, Any]) -> dict[str, int]:
    return await ctx["perezvon"].engine.sweep()


async def deliver(ctx: dict[str, Any], integration_key: str, event: str, call_id: str) -> str:
    """Push one event of one call to one integration; idempotent, retried with back-off."""
    app = ctx["perezvon"]
    integration = app.host.registry.integrations.get(integration_key)
    call = await Call.get_or_none(id=call_id).prefetch_related("lead", "attempts")
    if integration is None or call is None:
        return "skipped: integration not installed or call gone"
    enablement = await IntegrationEnablement.get_or_none(
        connection_id=call.connection_id, integration_key=integration_key, is_on=True)
    if enablement is None:
        return "skipped: integration switched off"
    if await Delivery.exists(call_id=call.id, integration_key=integration_key, event=event, ok=True):
        return "skipped: already delivered"
    payload = CallEvent(
        event=event, connection_id=call.connection_id,
        settings=integration.settings_schema().load(enablement.settings or {}),
        lead=as_event_data(call.lead), call=as_event_data(call),
        attempts=[as_event_data(a) for a in call.attempts],
    )
    handler = integration.on_lead_created if event == "lead_created" else integration.on_call_finished
    job_try = ctx.get("job_try", 1)
    try:
        response = await handler(payload)
    except DeliveryError as exc:
        await Delivery.create(call_id=call.id, integration_key=integration_key, event=event, try_number=job_try,
                              ok=False, status=exc.status, response=(exc.response or str(exc))[:500])
        if exc.retry and job_try < MAX_DELIVERY_TRIES:
            raise Retry(defer=backoff_seconds(job_try)) from exc
        return f"failed: {exc}"
    except Exception as exc:  # an unexpected error is treated like a network error: try again
        await Delivery.create(call_id=call.id, integration_key=integration_key, event=event, try_number=job_try,
                              ok=False, response=f"{type(exc).__name__}: {exc}"[:500])
        if job_try < MAX_DELIVERY_TRIES:
            raise Retry(defer=backoff_seconds(job_try)) from exc
        return f"failed: {exc}"
    await Delivery.create(call_id=call.id, integration_key=integration_key, event=event, try_number=job_try,
                          ok=True, response=(response or "")[:500])
    return "delivered"


async def notify(ctx: dict[str, Any], notifier_key: str, kind: str, subject_id: str) -> str:
    """Send one notification about a call through one notifier (SPEC S2.3)."""
    app = ctx["perezvon"]
    notifier = app.host.registry.notifiers.get(notifier_key)
    call = await Call.get_or_none(id=subject_id).prefetch_related("lead", "attempts", "connection")
    if notifier is None or call is None:
        return "skipped"
    # a lead e-mailed instead of called goes to everyone; call results to those who want them
    wanted = {"call_succeeded": {"on_success": True}, "call_failed": {"on_failure": True}}.get(kind, {})
    recipients = await NotificationRecipient.filter(connection_id=call.connection_id, **wanted).all()
    lead = call.lead
    emails = tuple(sorted({r.email for r in recipients
                           if (r.office_id in (None, lead.office_id)) and (r.department_id in (None, lead.department_id))}))
    if not emails:
        return "skipped: no recipients"
    office = await lead.office if lead.office_id else None
    department = await lead.department if lead.department_id else None
    notification = Notification(kind=kind, recipients=emails, subject_id=subject_id, data={
        "connection": as_event_data(call.connection), "lead": as_event_data(lead), "call": as_event_data(call),
        "attempts": [as_event_data(a) for a in call.attempts],
        "office": {"id": office.id, "name": office.name} if office else None,
        "department": {"id": department.id, "name": department.name} if department else None,
    })
    job_try = ctx.get("job_try", 1)
    try:
        await notifier.send(notification)
    except DeliveryError as exc:
        if exc.retry and job_try < MAX_DELIVERY_TRIES:
            log.warning("notifier %s failed (try %d), will retry: %s", notifier_key, job_try, exc)
            raise Retry(defer=backoff_seconds(job_try)) from exc
        log.error("notifier %s failed for good: %s", notifier_key, exc)
        return f"failed: {exc}"
    except Exception as exc:
        log.warning("notifier %s failed (try %d): %s", notifier_key, job_try, exc)
        if job_try < MAX_DELIVERY_TRIES:
            raise Retry(defer=backoff_seconds(job_try)) from exc
        raise
    return f"sent to {len(emails)}"
