"""Every switch acts (issue 14): apps and connections switched off, a site that cannot call, the
half-wired settings -- through a real HTTP server and the real workers (docs/calls.md)."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import httpx
import pytest

from perezvon.core import enablement
from perezvon.core.callbacks import CallbackEngine
from perezvon.core.intake import NO_HOURS_REASON, NO_OPERATOR_REASON
from perezvon.core.models import (
    Attempt,
    CalendarDay,
    Call,
    CallState,
    Connection,
    NotificationRecipient,
    Office,
    OperatorNumber,
)
from perezvon.core.registry import Notifier
from perezvon.web.app import create_app

CLOSED_EVERY_DAY = {str(day): None for day in range(1, 8)}


@pytest.fixture
async def live(perezvon_app):
    """The web app on a real port, in the test's event loop; yields an HTTP client for it."""
    from live_helpers import live_server

    app = create_app(perezvon_app, manage_lifecycle=False)
    async with live_server(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        yield client


class Inbox(Notifier):
    key = "inbox"

    def __init__(self) -> None:
        self.sent = []

    async def send(self, notification) -> None:
        self.sent.append(notification)


@pytest.fixture
def inbox(perezvon_app):
    """A notifier of the test's own, next to the mail plugin: what every notifier is given."""
    registry = perezvon_app.host.registry
    registry.current_plugin = "tests"
    box = Inbox()
    registry.add_notifier(box)
    try:
        yield box
    finally:
        registry.notifiers.pop("inbox")
        registry.owner.pop(("notifier", "inbox"))


def lead(site, phone, **extra):
    return {"token": site.token, "phone": phone, "consent": True, **extra}


def simulated(perezvon_app, client_phone: str) -> list[tuple]:
    """What the simulator did on the attempts that dialled this client, in order."""
    backend = perezvon_app.host.telephony_backend()
    return [log for log in backend.recent if any(step[:3] == ("dial", "client", client_phone) for step in log)]


# --- item 2: switches --------------------------------------------------------------------------


async def test_a_switched_off_app_has_its_leads_refused(live, perezvon_site, new_phone):
    refused = await live.post(
        "/api/v1/leads", json=lead(perezvon_site, new_phone(), source="widget"), headers={"Accept-Language": "ru"}
    )
    assert refused.status_code == 403  # never switched on for this site
    assert refused.json() == {"errors": {"source": ["Это приложение выключено для этого сайта."]}}
    await enablement.enable(perezvon_site, enablement.APPLICATION, "widget")
    assert (await live.post("/api/v1/leads", json=lead(perezvon_site, new_phone(), source="widget"))).status_code == 201
    await enablement.switch(perezvon_site, enablement.APPLICATION, "widget", False)
    off = await live.post(
        "/api/v1/leads", json=lead(perezvon_site, new_phone(), source="widget"), headers={"Accept-Language": "en"}
    )
    assert off.status_code == 403 and off.json()["errors"]["source"] == ["This app is switched off for this site."]
    # a source no app owns (the API) is not an app's to switch off
    assert (await live.post("/api/v1/leads", json=lead(perezvon_site, new_phone()))).status_code == 201


async def test_a_switched_off_connection_takes_no_leads_and_holds_its_calls_until_it_is_on(
    perezvon_app, live, perezvon_site, perezvon_run_jobs, new_phone
):
    created = []
    for _ in range(4):  # four: by chance alone they would queue in this order once in 24
        answer = await live.post("/api/v1/leads", json=lead(perezvon_site, new_phone()))
        assert answer.status_code == 201
        created.append(answer.json()["call_id"])
    await Connection.filter(id=perezvon_site.id).update(is_on=False)
    refused = await live.post("/api/v1/leads", json=lead(perezvon_site, new_phone()))
    assert refused.status_code == 403 and refused.json()["errors"] == {
        "token": ["Обратные звонки для этого сайта выключены."]
    }

    await perezvon_run_jobs()  # the attempt jobs come due and find the connection off
    for call_id in created:
        call = await Call.get(id=call_id)
        assert (call.state, call.attempts_made, call.display_status) == (CallState.SCHEDULED, 0, "pending")
        assert call.next_attempt_at is not None  # held with its due time: not lost, not failed
    assert not await Attempt.filter(call_id__in=created).exists()
    engine = CallbackEngine(
        backend=perezvon_app.host.telephony_backend(), registry=perezvon_app.host.registry, redis=perezvon_app.redis
    )
    await engine.sweep()  # held calls are not queued again and again
    queued = [job.decode() for job in await perezvon_app.redis.zrange("arq:queue", 0, -1)]
    assert not [job for job in queued if any(call_id in job for call_id in created)]

    await Connection.filter(id=perezvon_site.id).update(is_on=True)
    await engine.sweep()
    queued = [job.decode() for job in await perezvon_app.redis.zrange("arq:queue", 0, -1)]  # by score: due order
    assert [job for job in queued if any(call_id in job for call_id in created)] == [
        f"attempt:{call_id}:1" for call_id in created
    ]
    await perezvon_run_jobs()
    for call_id in created:
        call = await Call.get(id=call_id)
        assert (call.state, call.display_status, call.attempts_made) == (CallState.FINISHED, "successful", 1)


async def test_a_redial_due_while_the_connection_is_off_is_held_then_placed(
    perezvon_app, live, perezvon_site, perezvon_run_jobs, new_phone
):
    perezvon_site.redial_matrix = {
        "operator_first": {"2": {"200-486": {"period": 1, "direction": "operator_first"}}, "3": {"*-*": "abort"}}
    }
    await perezvon_site.save()
    answer = await live.post("/api/v1/leads", json=lead(perezvon_site, new_phone("0486")))  # a busy client
    call_id = answer.json()["call_id"]
    await perezvon_run_jobs()
    call = await Call.get(id=call_id)
    assert (call.state, call.attempts_made) == (CallState.SCHEDULED, 1)
    await Connection.filter(id=perezvon_site.id).update(is_on=False)
    await asyncio.sleep(max(0.0, (call.next_attempt_at - dt.datetime.now(dt.UTC)).total_seconds()) + 0.2)
    await perezvon_run_jobs()
    held = await Call.get(id=call_id)
    assert (held.state, held.attempts_made) == (CallState.SCHEDULED, 1)
    assert await Attempt.filter(call_id=call_id).count() == 1
    await Connection.filter(id=perezvon_site.id).update(is_on=True)
    await perezvon_run_jobs()  # the worker's sweep at start queues it
    done = await Call.get(id=call_id)
    assert (done.state, done.attempts_made) == (CallState.FINISHED, 2)
    assert [a.number for a in await Attempt.filter(call_id=call_id).order_by("number")] == [1, 2]


async def test_a_held_call_released_while_the_site_is_closed_waits_for_the_opening(
    perezvon_app, live, perezvon_site, perezvon_run_jobs, new_phone
):
    answer = await live.post("/api/v1/leads", json=lead(perezvon_site, new_phone()))
    call_id = answer.json()["call_id"]
    await Connection.filter(id=perezvon_site.id).update(is_on=False)
    await perezvon_run_jobs()
    # it was held for a while, and the site closes for today (a holiday) before it is on again
    late = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    await Call.filter(id=call_id).update(next_attempt_at=late)
    today = dt.datetime.now(ZoneInfo(perezvon_site.timezone)).date()
    await CalendarDay.create(connection_id=perezvon_site.id, date=today, kind="holiday")
    await Connection.filter(id=perezvon_site.id).update(is_on=True)
    await perezvon_run_jobs()
    call = await Call.get(id=call_id)
    assert (call.state, call.attempts_made) == (CallState.SCHEDULED, 0)
    tomorrow = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(0, 0), ZoneInfo(perezvon_site.timezone))
    assert call.next_attempt_at == tomorrow


# --- item 3: a site that cannot call ----------------------------------------------------------


async def test_a_site_that_cannot_call_and_has_nobody_to_tell_refuses_the_lead_clearly(live, perezvon_site, new_phone):
    await OperatorNumber.filter(connection_id=perezvon_site.id).delete()
    refused = await live.post("/api/v1/leads", json=lead(perezvon_site, new_phone()), headers={"Accept-Language": "ru"})
    assert refused.status_code == 409
    assert refused.json() == {
        "errors": {
            "_schema": ["Сейчас на этом сайте нельзя заказать обратный звонок. Пожалуйста, позвоните в компанию."]
        }
    }
    # a recipient for one office only hears of that office's leads
    office = await Office.create(connection=perezvon_site, name="Центр")
    await NotificationRecipient.create(connection=perezvon_site, email="centre@example.com", office=office)
    assert (await live.post("/api/v1/leads", json=lead(perezvon_site, new_phone()))).status_code == 409
    taken = await live.post("/api/v1/leads", json=lead(perezvon_site, new_phone(), office_id=office.id))
    assert taken.status_code == 201
    assert [(c.state, c.reason) for c in await Call.filter(connection_id=perezvon_site.id)] == [
        ("notified", NO_OPERATOR_REASON)
    ]


@pytest.mark.parametrize("why", ["no operator number", "no working day"])
async def test_a_site_that_cannot_call_emails_the_lead_at_once(
    perezvon_app, live, perezvon_site, perezvon_run_jobs, new_phone, inbox, why
):
    if why == "no operator number":
        await OperatorNumber.filter(connection_id=perezvon_site.id).delete()
        reason = NO_OPERATOR_REASON
    else:
        await Connection.filter(id=perezvon_site.id).update(schedule=CLOSED_EVERY_DAY)
        reason = NO_HOURS_REASON
    await NotificationRecipient.create(connection=perezvon_site, email="sales@example.com", on_failure=False)
    answer = await live.post("/api/v1/leads", json=lead(perezvon_site, new_phone(), name="Ольга"))
    assert answer.status_code == 201
    await perezvon_run_jobs()
    call = await Call.get(id=answer.json()["call_id"])
    assert (call.state, call.display_status, call.reason) == ("notified", "notified", reason)
    assert not await Attempt.filter(call_id=call.id).exists()
    sent = [n for n in inbox.sent if n.subject_id == str(call.id)]
    assert [(n.kind, n.recipients, n.data["reason"]) for n in sent] == [
        ("lead_delayed", ("sales@example.com",), reason)
    ]
    # the mail plugin says why, in the deployment's language
    composer = perezvon_app.host.registry.notifiers["mail"].composer
    text = composer.render(sent[0]).text
    assert "Perezvon никому не звонил" in text and "больше 59 с" not in text
    assert ("не задан номер оператора" if why == "no operator number" else "нет ни одного рабочего дня") in text


# --- item 8: the half-wired settings ----------------------------------------------------------


async def test_unique_and_repeat_are_set_when_the_lead_is_stored(perezvon_app, live, perezvon_site, new_phone, inbox):
    phone = new_phone()
    # a lead waiting for the opening: no attempt has run, yet it is tagged
    await Connection.filter(id=perezvon_site.id).update(schedule={**CLOSED_EVERY_DAY, "1": ["09:00", "10:00"]})
    waiting = await live.post("/api/v1/leads", json=lead(perezvon_site, phone))
    assert waiting.status_code == 201
    first = await Call.get(id=waiting.json()["call_id"])
    assert first.state == CallState.SCHEDULED and first.attempts_made == 0 and first.is_unique is True
    # an e-mailed lead (delay over 59 s) from the same phone later: a repeat
    await NotificationRecipient.create(connection=perezvon_site, email="sales@example.com")
    await Connection.filter(id=perezvon_site.id).update(telephony={"first_call_delay_seconds": 120})
    await perezvon_app.redis.delete(f"pv:dup:{perezvon_site.id}:{phone}")  # past the duplicate window
    emailed = await live.post("/api/v1/leads", json=lead(perezvon_site, phone))
    assert emailed.status_code == 201
    second = await Call.get(id=emailed.json()["call_id"])
    assert (second.state, second.is_unique, second.is_target) == ("notified", False, None)
    state = await live.get(f"/api/v1/calls/{second.id}/state", params={"token": perezvon_site.token})
    assert state.json()["tags"] == {"unique": False, "target": None}


async def test_a_delay_over_59_seconds_without_recipients_is_refused_at_settings_time_and_at_intake(
    perezvon_client, live, perezvon_site, new_phone
):
    from test_admin_helpers import login, make_user

    csrf = await login(perezvon_client, await make_user(level="edit", project=await perezvon_site.project))
    url = f"/connections/{perezvon_site.id}/settings/telephony"
    form = {
        "csrf_token": csrf,
        "first_call_delay_seconds": "120",
        "call_client.key": "1",
        "connect.key": "1",
        "cancel_client.key": "2",
        "cancel_operator.key": "9",
        "repeat_info.key": "0",
        "voice": "female",
        "rows": "0",
    }
    refused = await perezvon_client.post(url, data=form, headers={"Accept-Language": "ru"})
    assert refused.status_code == 400
    assert "нет получателей уведомлений" in refused.text
    assert (await Connection.get(id=perezvon_site.id)).telephony.get("first_call_delay_seconds", 0) == 0
    # recipients deleted after the delay was set: the intake refuses rather than e-mail nobody
    await Connection.filter(id=perezvon_site.id).update(telephony={"first_call_delay_seconds": 120})
    answer = await live.post("/api/v1/leads", json=lead(perezvon_site, new_phone()))
    assert answer.status_code == 409
    await NotificationRecipient.create(connection=perezvon_site, email="sales@example.com")
    saved = await perezvon_client.post(url, data=form)
    assert saved.status_code == 303
    assert (await live.post("/api/v1/leads", json=lead(perezvon_site, new_phone()))).status_code == 201


@pytest.mark.parametrize("direction", ["operator_first", "client_first"])
async def test_the_to_the_client_parts_are_said_in_both_orders(
    perezvon_app, live, perezvon_site, perezvon_run_jobs, new_phone, direction
):
    await Connection.filter(id=perezvon_site.id).update(
        telephony={"first_direction": direction},
        announcements={"name_to_client": True, "extra_to_client": "Спасибо за ожидание."},
    )
    phone = new_phone()
    assert (await live.post("/api/v1/leads", json=lead(perezvon_site, phone, name="Анна"))).status_code == 201
    await perezvon_run_jobs()
    [log] = simulated(perezvon_app, phone)
    said = [step[2] for step in log if step[:2] == ("say", "client")]
    assert said == [
        "Здравствуйте, Анна! Вы заказали обратный звонок на сайте Test site. "
        "Пожалуйста, оставайтесь на линии, соединяем с оператором. Спасибо за ожидание."
    ]
    order = [step[0] + ":" + str(step[1]) for step in log if step[0] in ("dial", "say", "bridge")]
    if direction == "operator_first":  # once the client answered, before the two are joined
        assert order[-3:] == ["dial:client", "say:client", "bridge:130"]


async def test_operator_first_says_nothing_to_the_client_with_every_client_part_off(
    perezvon_app, live, perezvon_site, perezvon_run_jobs, new_phone
):
    await Connection.filter(id=perezvon_site.id).update(announcements={"site_to_client": False})
    phone = new_phone()
    assert (await live.post("/api/v1/leads", json=lead(perezvon_site, phone))).status_code == 201
    await perezvon_run_jobs()
    [log] = simulated(perezvon_app, phone)
    assert not [step for step in log if step[:2] == ("say", "client")]


@pytest.mark.parametrize("show_operator", [False, True])
async def test_the_tracking_number_is_shown_to_the_client_by_its_own_switch(
    perezvon_app, live, perezvon_site, perezvon_run_jobs, new_phone, show_operator
):
    await Connection.filter(id=perezvon_site.id).update(
        telephony={"show_operator_number_to_client": show_operator, "show_tracking_number_to_client": True}
    )
    phone, tracked = new_phone(), new_phone()
    tracking = f"8 ({tracked[2:5]}) {tracked[5:8]}-{tracked[8:10]}-{tracked[10:]}"
    payload = lead(perezvon_site, phone, displayed_phone=tracking)
    assert (await live.post("/api/v1/leads", json=payload)).status_code == 201
    await perezvon_run_jobs()
    [log] = simulated(perezvon_app, phone)
    assert ("dial", "client", phone, tracked) in log  # the number the visitor saw on the site
    # without a tracking number the switches fall back as before
    plain = new_phone()
    assert (await live.post("/api/v1/leads", json=lead(perezvon_site, plain))).status_code == 201
    await perezvon_run_jobs()
    [log] = simulated(perezvon_app, plain)
    assert ("dial", "client", plain, "+74951234567" if show_operator else "") in log


@pytest.mark.parametrize(
    ("source", "code"),
    [
        ("widget", "11"),
        ("leadgen", "12"),
        ("mobileleadgen", "13"),
        ("mobilepanel", "14"),
        ("slider", "16"),
        ("api", "16"),
    ],
)
async def test_the_calltouch_code_of_the_app_is_sent_as_dtmf_on_the_operator_leg(
    perezvon_app, live, perezvon_site, perezvon_run_jobs, new_phone, source, code
):
    phone = new_phone()
    if source != "api":
        await enablement.enable(perezvon_site, enablement.APPLICATION, source)
    payload = lead(perezvon_site, phone, source=source)
    assert (await live.post("/api/v1/leads", json=payload)).status_code == 201
    await perezvon_run_jobs()
    [log] = simulated(perezvon_app, phone)
    assert not [step for step in log if step[0] == "dtmf"]  # Calltouch off: nothing sent
    # nothing listens on this port: the pushes fail and are retried later; the call does not wait for them
    await enablement.enable(
        perezvon_site,
        enablement.INTEGRATION,
        "calltouch",
        {"site_id": "12345", "api_token": "t0ken", "api_url": "http://127.0.0.1:9"},
    )
    await OperatorNumber.filter(connection_id=perezvon_site.id).update(extension="105")
    again = new_phone()
    assert (await live.post("/api/v1/leads", json=lead(perezvon_site, again, source=source))).status_code == 201
    await perezvon_run_jobs()
    [log] = simulated(perezvon_app, again)
    steps = [step[0] + ":" + str(step[1]) for step in log]
    assert steps[:4] == ["dial:operator", "dtmf:operator", "dtmf:operator", "say:operator"]
    assert [step[2] for step in log if step[0] == "dtmf"] == ["105", code]  # after the extension
