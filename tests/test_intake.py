"""POST /api/v1/leads and the public call state: the intake contract."""

import asyncio
import datetime as dt

from perezvon.core.models import Call, CallState, Department, Lead, Office


def lead(site, phone, **extra):
    return {"token": site.token, "phone": phone, "consent": True, **extra}


async def test_a_lead_becomes_a_stored_lead_and_a_scheduled_call(perezvon_client, perezvon_site, new_phone):
    phone = new_phone()
    national = f"8 ({phone[2:5]}) {phone[5:8]}-{phone[8:10]}-{phone[10:]}"
    response = await perezvon_client.post(
        "/api/v1/leads",
        json=lead(
            perezvon_site,
            national,
            name="Анна",
            page_url="https://x.example/cars?utm_source=yandex",
            utm={"source": "yandex", "medium": "cpc", "campaign": "spring"},
            visitor_id="v1",
            visit={"pages": 4, "seconds_on_site": 95, "trigger": "exit"},
            displayed_phone="+7 495 111-22-33",
        ),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= {"lead_id", "call_id", "scheduled_at"}
    stored = await Lead.get(id=body["lead_id"])
    assert stored.phone == phone  # normalised to E.164
    assert stored.name == "Анна" and stored.utm_campaign == "spring" and stored.channel == "ads"
    assert stored.visit == {"pages": 4, "seconds_on_site": 95, "trigger": "exit"}
    assert stored.displayed_phone == "+7 495 111-22-33" and stored.source == "api"
    call = await Call.get(id=body["call_id"])
    assert call.lead_id == stored.id and call.state == CallState.SCHEDULED
    scheduled = dt.datetime.fromisoformat(body["scheduled_at"].replace("Z", "+00:00"))
    assert abs((scheduled - dt.datetime.now(dt.UTC)).total_seconds()) < 5


async def test_the_same_phone_within_a_minute_returns_the_existing_lead(perezvon_client, perezvon_site, new_phone):
    phone = new_phone()
    first = await perezvon_client.post("/api/v1/leads", json=lead(perezvon_site, phone))
    again = await perezvon_client.post("/api/v1/leads", json=lead(perezvon_site, phone.replace("+7", "8")))
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["duplicate"] is True and "call_id" not in again.json()  # docs/calls.md#duplicates
    assert await Lead.filter(connection_id=perezvon_site.id, phone=phone).count() == 1


async def test_concurrent_duplicates_make_one_call(perezvon_client, perezvon_site, new_phone):
    phone = new_phone()
    answers = await asyncio.gather(
        *[perezvon_client.post("/api/v1/leads", json=lead(perezvon_site, phone)) for _ in range(10)]
    )
    assert sorted(a.status_code for a in answers) == [200] * 9 + [201]
    assert [a.json()["duplicate"] for a in answers if a.status_code == 200] == [True] * 9
    assert await Call.filter(lead__phone=phone).count() == 1


async def test_many_concurrent_leads_are_all_stored(perezvon_client, perezvon_site, new_phone):
    answers = await asyncio.gather(
        *[perezvon_client.post("/api/v1/leads", json=lead(perezvon_site, new_phone())) for _ in range(200)]
    )
    assert [a.status_code for a in answers] == [201] * 200
    assert await Lead.filter(connection_id=perezvon_site.id).count() == 200
    assert await Call.filter(connection_id=perezvon_site.id).count() == 200


async def test_invalid_fields_are_reported_per_field_in_russian_by_default(perezvon_client, perezvon_site):
    response = await perezvon_client.post("/api/v1/leads", json={"token": perezvon_site.token, "phone": "12"})
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert errors["phone"] == ["Неверный номер телефона."]
    assert errors["consent"] == ["Обязательное поле."]


async def test_english_messages_on_request(perezvon_client, perezvon_site):
    response = await perezvon_client.post(
        "/api/v1/leads",
        headers={"Accept-Language": "en-GB,en;q=0.9"},
        json={"token": perezvon_site.token, "phone": "12", "consent": True},
    )
    assert response.status_code == 422
    assert response.json()["errors"] == {"phone": ["Not a valid phone number."]}


async def test_consent_must_be_given(perezvon_client, perezvon_site, new_phone):
    response = await perezvon_client.post(
        "/api/v1/leads",
        headers={"Accept-Language": "en"},
        json={"token": perezvon_site.token, "phone": new_phone(), "consent": False},
    )
    assert response.status_code == 422
    assert response.json()["errors"] == {"consent": ["Consent to the processing of personal data is required."]}


async def test_unknown_token_and_switched_off_site_are_refused(perezvon_client, perezvon_site, new_phone):
    unknown = await perezvon_client.post("/api/v1/leads", json={"token": "nope", "phone": new_phone(), "consent": True})
    assert unknown.status_code == 403 and "token" in unknown.json()["errors"]
    perezvon_site.is_on = False
    await perezvon_site.save()
    off = await perezvon_client.post(
        "/api/v1/leads", headers={"Accept-Language": "en"}, json=lead(perezvon_site, new_phone())
    )
    assert off.status_code == 403
    assert off.json()["errors"] == {"token": ["Callbacks are switched off for this site."]}


async def test_a_foreign_origin_is_refused_and_own_domains_are_allowed(perezvon_client, perezvon_site, new_phone):
    foreign = await perezvon_client.post(
        "/api/v1/leads", json=lead(perezvon_site, new_phone()), headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403 and "origin" in foreign.json()["errors"]
    for origin in (
        f"https://{perezvon_site.domain}",
        f"https://www.{perezvon_site.domain}",
        f"http://shop.{perezvon_site.domain}:8080",
    ):
        ok = await perezvon_client.post(
            "/api/v1/leads", json=lead(perezvon_site, new_phone()), headers={"Origin": origin}
        )
        assert ok.status_code == 201, origin
        assert ok.headers["access-control-allow-origin"] == origin
    lookalike = await perezvon_client.post(
        "/api/v1/leads",
        json=lead(perezvon_site, new_phone()),
        headers={"Origin": f"https://evil{perezvon_site.domain}"},
    )
    assert lookalike.status_code == 403


async def test_a_cyrillic_domain_takes_leads_from_its_punycode_origin(perezvon_client, perezvon_site, new_phone):
    perezvon_site.extra_domains = ["пример-теста.рф"]
    await perezvon_site.save()
    origin = "https://www." + "пример-теста.рф".encode("idna").decode()  # what the browser sends
    response = await perezvon_client.post(
        "/api/v1/leads", json=lead(perezvon_site, new_phone()), headers={"Origin": origin}
    )
    assert response.status_code == 201, response.text


async def test_cors_preflight(perezvon_client, perezvon_site):
    response = await perezvon_client.options(
        "/api/v1/leads", headers={"Origin": f"https://{perezvon_site.domain}", "Access-Control-Request-Method": "POST"}
    )
    assert response.status_code == 204
    assert "POST" in response.headers["access-control-allow-methods"]


async def test_required_office_and_department(perezvon_client, perezvon_site, new_phone):
    office = await Office.create(connection=perezvon_site, name="Центр")
    closed = await Office.create(connection=perezvon_site, name="Закрыт", is_active=False)
    department = await Department.create(connection=perezvon_site, name="Продажи")
    perezvon_site.offices_enabled = perezvon_site.offices_required = True
    perezvon_site.departments_enabled = perezvon_site.departments_required = True
    await perezvon_site.save()
    missing = await perezvon_client.post(
        "/api/v1/leads", headers={"Accept-Language": "en"}, json=lead(perezvon_site, new_phone())
    )
    assert missing.status_code == 422
    assert missing.json()["errors"] == {"office_id": ["Choose one."], "department_id": ["Choose one."]}
    inactive = await perezvon_client.post(
        "/api/v1/leads", json=lead(perezvon_site, new_phone(), office_id=closed.id, department_id=department.id)
    )
    assert inactive.status_code == 422 and list(inactive.json()["errors"]) == ["office_id"]
    chosen = await perezvon_client.post(
        "/api/v1/leads", json=lead(perezvon_site, new_phone(), office_id=office.id, department_id=department.id)
    )
    assert chosen.status_code == 201
    stored = await Lead.get(id=chosen.json()["lead_id"])
    assert (stored.office_id, stored.department_id) == (office.id, department.id)


async def test_bodies_over_64_kib_are_refused(perezvon_client, perezvon_site, new_phone):
    big = lead(perezvon_site, new_phone(), name="", extra={"blob": "x" * (65 * 1024)})
    response = await perezvon_client.post("/api/v1/leads", json=big)
    assert response.status_code == 413 and "_schema" in response.json()["errors"]
    assert not await Lead.filter(phone=big["phone"]).exists()


async def test_malformed_and_non_object_bodies(perezvon_client):
    as_json = {"Content-Type": "application/json"}
    assert (await perezvon_client.post("/api/v1/leads", content=b"{not json", headers=as_json)).status_code == 400
    assert (await perezvon_client.post("/api/v1/leads", content=b"\xff\xfe", headers=as_json)).status_code == 400
    listed = await perezvon_client.post("/api/v1/leads", json=[1, 2])
    assert listed.status_code == 400 and "_schema" in listed.json()["errors"]


async def test_unknown_lead_source_is_refused(perezvon_client, perezvon_site, new_phone):
    response = await perezvon_client.post("/api/v1/leads", json=lead(perezvon_site, new_phone(), source="nope"))
    assert response.status_code == 422 and list(response.json()["errors"]) == ["source"]


async def test_rate_limit_per_client_ip(perezvon_app, perezvon_client, perezvon_site, new_phone):
    intake = perezvon_app.intake
    saved, intake.limit = intake.limit, 3
    try:
        import httpx

        from perezvon.web.app import create_app

        asgi = create_app(perezvon_app, manage_lifecycle=False)

        async def post_from(ip: str) -> int:
            transport = httpx.ASGITransport(app=asgi, client=(ip, 5000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                return (await client.post("/api/v1/leads", json=lead(perezvon_site, new_phone()))).status_code

        assert [await post_from("203.0.113.77") for _ in range(5)] == [201, 201, 201, 429, 429]
        assert await post_from("203.0.113.78") == 201  # another client is not affected
    finally:
        intake.limit = saved


async def test_preferred_time_in_the_future_is_honoured(perezvon_client, perezvon_site, new_phone):
    when = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)).replace(microsecond=0)
    response = await perezvon_client.post(
        "/api/v1/leads", json=lead(perezvon_site, new_phone(), preferred_at=when.isoformat())
    )
    assert response.status_code == 201
    assert response.json()["scheduled_at"] == when.isoformat().replace("+00:00", "Z")


async def test_off_hours_lead_waits_for_the_next_opening(perezvon_client, perezvon_site, new_phone):
    # open one hour a day, at an hour that is certainly not now (Moscow time)
    now_msk = dt.datetime.now(dt.UTC).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Moscow"))
    hour = (now_msk.hour + 12) % 24
    perezvon_site.schedule = {
        str(d): [f"{hour:02d}:00", f"{hour + 1:02d}:00" if hour < 23 else "24:00"] for d in range(1, 8)
    }
    await perezvon_site.save()
    response = await perezvon_client.post("/api/v1/leads", json=lead(perezvon_site, new_phone()))
    assert response.status_code == 201
    scheduled = dt.datetime.fromisoformat(response.json()["scheduled_at"].replace("Z", "+00:00"))
    local = scheduled.astimezone(now_msk.tzinfo)
    assert (local.hour, local.minute) == (hour, 0) and scheduled > dt.datetime.now(dt.UTC)


async def test_public_call_state_shows_nothing_personal(perezvon_client, perezvon_site, new_phone):
    phone = new_phone()
    created = (await perezvon_client.post("/api/v1/leads", json=lead(perezvon_site, phone, name="Иван"))).json()
    state = await perezvon_client.get(
        f"/api/v1/calls/{created['call_id']}/state", params={"token": perezvon_site.token}
    )
    assert state.status_code == 200
    body = state.json()
    assert body["status"] == "pending" and body["attempts"] == 0 and body["phase"] == "waiting"
    assert phone not in state.text and "Иван" not in state.text
    wrong = await perezvon_client.get(f"/api/v1/calls/{created['call_id']}/state", params={"token": "other"})
    assert wrong.status_code == 404
    garbage = await perezvon_client.get("/api/v1/calls/not-a-uuid/state", params={"token": perezvon_site.token})
    assert garbage.status_code == 404


async def test_health_and_openapi(perezvon_client):
    health = await perezvon_client.get("/healthz")
    assert health.json()["database"] == "ok" and health.json()["redis"] == "ok"
    # no worker runs here: /healthz says so (tests/test_outages.py starts one and sees a 200)
    assert health.json()["down"] == ["workers"] and health.status_code == 503
    spec = (await perezvon_client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    assert "post" in spec["paths"]["/api/v1/leads"]
    assert {"token", "phone", "consent"} <= set(spec["components"]["schemas"]["Lead"]["required"])


async def test_a_site_without_working_days_and_recipients_refuses_the_lead_clearly(
    perezvon_client, perezvon_site, new_phone
):
    perezvon_site.schedule = {str(d): None for d in range(1, 8)}
    await perezvon_site.save()
    response = await perezvon_client.post("/api/v1/leads", json=lead(perezvon_site, new_phone()))
    # nobody can call it and nobody would be e-mailed: the visitor is told at once (with a
    # recipient it is e-mailed instead: tests/test_switches.py)
    assert response.status_code == 409
    assert response.json()["errors"]["_schema"]


async def test_a_failed_write_answers_503_and_the_retry_is_accepted(
    perezvon_app, perezvon_client, perezvon_site, new_phone, monkeypatch
):
    from perezvon.core.intake import RowInserter

    phone = new_phone()
    real_execute = RowInserter.execute

    async def database_down(self, rows):
        raise ConnectionError("database went away")

    monkeypatch.setattr(RowInserter, "execute", database_down)
    failed = await perezvon_client.post("/api/v1/leads", json=lead(perezvon_site, phone))
    assert failed.status_code == 503 and "_schema" in failed.json()["errors"]
    monkeypatch.setattr(RowInserter, "execute", real_execute)
    retried = await perezvon_client.post("/api/v1/leads", json=lead(perezvon_site, phone))
    assert retried.status_code == 201  # not answered as a "duplicate" of the lead that was never stored
    assert await Lead.filter(connection_id=perezvon_site.id, phone=phone).count() == 1


async def test_without_redis_leads_are_still_accepted(
    perezvon_app, perezvon_client, perezvon_site, new_phone, monkeypatch
):
    intake = perezvon_app.intake

    async def redis_down(*args, **kwargs):
        raise ConnectionError("Redis is restarting")

    monkeypatch.setattr(intake, "_guard", redis_down)
    monkeypatch.setattr(intake.queue, "_script", redis_down)
    response = await perezvon_client.post("/api/v1/leads", json=lead(perezvon_site, new_phone()))
    assert response.status_code == 201  # stored; the worker's sweep queues its call later
    call = await Call.get(id=response.json()["call_id"])
    assert call.state == CallState.SCHEDULED and call.next_attempt_at is not None


async def test_off_hours_leads_are_spread_from_the_opening(perezvon_client, perezvon_site, new_phone):
    from zoneinfo import ZoneInfo

    now_msk = dt.datetime.now(dt.UTC).astimezone(ZoneInfo("Europe/Moscow"))
    hour = (now_msk.hour + 12) % 24  # certainly closed now
    perezvon_site.schedule = {
        str(d): [f"{hour:02d}:00", f"{hour + 1:02d}:00" if hour < 23 else "24:00"] for d in range(1, 8)
    }
    perezvon_site.offhours_spread_seconds = 300
    await perezvon_site.save()
    times = []
    for _ in range(3):
        response = await perezvon_client.post("/api/v1/leads", json=lead(perezvon_site, new_phone()))
        assert response.status_code == 201
        times.append(dt.datetime.fromisoformat(response.json()["scheduled_at"].replace("Z", "+00:00")))
    assert [(t - times[0]).total_seconds() for t in times] == [0, 300, 600]
    assert times[0].astimezone(now_msk.tzinfo).hour == hour


async def test_a_delay_over_59_seconds_emails_the_lead_instead_of_calling(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone
):
    from perezvon.core.models import Attempt, NotificationRecipient
    from perezvon.core.registry import Notifier

    class Inbox(Notifier):
        key = "inbox"

        def __init__(self):
            self.sent = []

        async def send(self, notification):
            self.sent.append(notification)

    inbox = Inbox()
    registry = perezvon_app.host.registry
    registry.current_plugin = "tests"
    registry.add_notifier(inbox)
    try:
        perezvon_site.telephony = {"first_call_delay_seconds": 60}
        await perezvon_site.save()
        await NotificationRecipient.create(connection=perezvon_site, email="sales@example.com", on_success=False)
        response = await perezvon_client.post("/api/v1/leads", json=lead(perezvon_site, new_phone(), name="Олег"))
        assert response.status_code == 201
        await perezvon_run_jobs()
        call = await Call.get(id=response.json()["call_id"])
        assert (call.state, call.display_status) == ("notified", "notified")
        assert not await Attempt.filter(call_id=call.id).exists()  # nobody was called
        assert [(n.kind, n.recipients) for n in inbox.sent] == [("lead_delayed", ("sales@example.com",))]
        assert inbox.sent[0].data["lead"]["name"] == "Олег"
    finally:
        registry.notifiers.pop("inbox")
        registry.owner.pop(("notifier", "inbox"))


async def test_each_refusal_carries_its_reason_and_the_api_answers_its_status(
    perezvon_app, perezvon_client, perezvon_site, new_phone
):
    """The intake says why (a reason, no HTTP); the HTTP API alone turns each reason into a status."""
    import pytest

    from perezvon.api import IntakeError, IntakeReason
    from perezvon.web.api.leads import INTAKE_STATUS

    assert set(INTAKE_STATUS) == set(IntakeReason)  # a new reason can't reach the API unmapped
    perezvon_site.offices_enabled = perezvon_site.offices_required = True
    await perezvon_site.save()
    cases = [
        (["a list"], {}, IntakeReason.MALFORMED, 400),
        ({"token": perezvon_site.token}, {}, IntakeReason.INVALID, 422),
        (lead(perezvon_site, new_phone(), source="nope"), {}, IntakeReason.INVALID, 422),
        (lead(perezvon_site, new_phone()), {}, IntakeReason.INVALID, 422),  # the office is required
        ({**lead(perezvon_site, new_phone()), "token": "nope"}, {}, IntakeReason.SITE_UNKNOWN, 403),
        (lead(perezvon_site, new_phone()), {"origin": "https://evil.example"}, IntakeReason.FOREIGN_ORIGIN, 403),
    ]
    for payload, headers, reason, status in cases:
        with pytest.raises(IntakeError) as refused:
            await perezvon_app.intake.submit(payload, client_ip=None, origin=headers.get("origin"))
        assert refused.value.reason is reason and not hasattr(refused.value, "status")
        answered = await perezvon_client.post(
            "/api/v1/leads", json=payload, headers={"Origin": headers["origin"]} if headers else {}
        )
        assert (reason, answered.status_code) == (reason, status)
        assert answered.json()["errors"].keys() == refused.value.errors.keys()
    perezvon_site.is_on = False
    await perezvon_site.save()
    with pytest.raises(IntakeError) as off:
        await perezvon_app.intake.submit(lead(perezvon_site, new_phone()), client_ip=None)
    assert off.value.reason is IntakeReason.SITE_OFF and INTAKE_STATUS[off.value.reason] == 403
