"""amoCRM against a local amoCRM emulator: OAuth, duplicate control by phone, the call note, faults and retries.

:class:`AmoCRM` (tests/amocrm_emulator.py) is a real HTTP/1.1 server on 127.0.0.1 that follows amoCRM's documented API v4 as
far as the plugin uses it: ``POST /oauth2/access_token`` issues tokens for a one-time code, rotates
the refresh token on every refresh and refuses a used code or refresh token (400) and a wrong
client secret (401); the ``/api/v4`` endpoints need ``Authorization: Bearer`` with a live access
token (401 otherwise), validate their JSON bodies (400 with ``validation-errors``), answer 204 to a
search that finds nothing, and answer 429 (or anything) when a test asks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from amocrm_emulator import (
    CLIENT_ID,
    CLIENT_SECRET,
    OTHER_STATUS,
    PIPELINE,
    REDIRECT,
    AmoCRM,
)
from arq.constants import in_progress_key_prefix

from perezvon.core import enablement
from perezvon.core.i18n import plugin_gettext, plugin_locale_dir
from perezvon.core.models import Call, Delivery
from perezvon.core.queue import QUEUES
from perezvon.core.registry import CallEvent, CheckFailed
from perezvon.plugins.amocrm.integration import (
    ANSWERED,
    BUSY,
    CALL_BACK_LATER,
    NO_ANSWER,
    NOT_AVAILABLE,
    WRONG_NUMBER,
    amo_call_status,
    base_url,
)
from perezvon.plugins.amocrm.models import Grant, SentLead


@pytest.fixture
async def amo():
    emulator = AmoCRM()
    emulator.server = await asyncio.start_server(emulator.handle, "127.0.0.1", 0)
    yield emulator
    emulator.server.close()
    await emulator.server.wait_closed()


@pytest.fixture(autouse=True)
async def no_jobs_left_behind(perezvon_app):
    yield
    redis = perezvon_app.redis
    stale = [key async for key in redis.scan_iter(match="arq:*") if not key.startswith(b"arq:cron")]
    if stale:
        await redis.delete(*stale)


async def make_deferred_jobs_due(redis) -> int:
    """Bring deferred pushes and notifications forward to now (redials and periodic jobs keep their
    time: another test's redial made due here would be placed in this test's worker run)."""
    now = int(time.time() * 1000)
    moved = 0
    for queue in QUEUES:
        later = [
            job_id
            for job_id in await redis.zrangebyscore(queue, now, "+inf")
            if job_id.startswith((b"deliver:", b"notify:"))
        ]
        for job_id in later:
            await redis.zadd(queue, {job_id: now})
            await redis.delete(in_progress_key_prefix + job_id.decode())
        moved += len(later)
    return moved


def settings_for(amo: AmoCRM, **more: Any) -> dict[str, Any]:
    return {
        "account": amo.url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": REDIRECT,
        "authorization_code": amo.new_code(),
        **more,
    }


async def enable(site, settings):
    return await enablement.enable(site, enablement.INTEGRATION, "amocrm", settings)


async def post_lead(client, site, phone, **extra):
    response = await client.post("/api/v1/leads", json={"token": site.token, "phone": phone, "consent": True, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def our_logs(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("aiosqlite", "tortoise")))


def integration(app):
    return app.host.registry.integrations["amocrm"]


def cyrillic(text: str) -> bool:
    return any("а" <= ch <= "я" or ch == "ё" for ch in text.lower())


# --- settings ---------------------------------------------------------------------------------


def test_registered_with_russian_and_english_texts(perezvon_app):
    amocrm = integration(perezvon_app)
    assert plugin_locale_dir(amocrm).name == "locales" and plugin_locale_dir(amocrm).parent.name == "amocrm"
    texts = [amocrm.description, amocrm.summary]
    for name, field in amocrm.settings_schema().fields.items():
        assert field.metadata.get("label"), name
        texts += [field.metadata["label"], *([field.metadata["help"]] if field.metadata.get("help") else [])]
    for text in texts:
        assert not cyrillic(text) and cyrillic(plugin_gettext(amocrm, text, "ru")), text
        assert plugin_gettext(amocrm, text, "en") == text
    secret = {n for n, f in amocrm.settings_schema().fields.items() if f.metadata.get("secret")}
    assert secret == {"client_secret", "authorization_code"}


@pytest.mark.parametrize(
    "change, field, english",
    [
        ({"account": "https://x.amocrm.ru/api/v4"}, "account", "subdomain"),
        ({"account": "ftp://x.amocrm.ru"}, "account", "subdomain"),
        ({"client_id": "12345"}, "client_id", "integration ID looks like"),
        ({"client_secret": "short"}, "client_secret", "does not look like"),
        ({"redirect_uri": "crm.example.com/cb"}, "redirect_uri", "http:// or https://"),
        ({"authorization_code": "  "}, "authorization_code", "Paste the authorization code"),
        ({"authorization_code": "abc def"}, "authorization_code", "does not look like"),
        ({"status_id": 142001}, "pipeline_id", "give the pipeline id"),
        ({"pipeline_id": 0}, "pipeline_id", "greater than or equal to 1"),
    ],
)
def test_bad_settings_get_a_clear_error_in_russian_and_english(perezvon_app, change, field, english):
    amocrm = integration(perezvon_app)
    good = {
        "account": "mycompany",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": REDIRECT,
        "authorization_code": "def50200" + "a" * 40,
    }
    assert amocrm.settings_schema().validate(good) == {}
    errors = amocrm.settings_schema().validate({**good, **change})
    assert list(errors) == [field], errors
    message = errors[field][0]
    assert english in message and not cyrillic(message)
    assert (
        cyrillic(plugin_gettext(amocrm, message, "ru")) or "greater than" in message
    )  # marshmallow's own: the core's catalog


def test_the_account_is_a_subdomain_or_an_address():
    assert base_url("MyCompany") == "https://mycompany.amocrm.ru"
    assert base_url("https://mycompany.kommo.com/") == "https://mycompany.kommo.com"


def test_our_statuses_map_onto_amocrms_call_statuses():
    def status(display, client=None):
        return amo_call_status({"display_status": display}, [{"number": 1, "client_status": client}])

    assert status("successful", 200) == ANSWERED == 4
    assert status("unsuccessful", 408) == NO_ANSWER == 6
    assert status("unsuccessful", 486) == BUSY == 7
    assert status("unsuccessful", 404) == WRONG_NUMBER == 5
    assert status("lost") == status("cancelled") == CALL_BACK_LATER == 2
    assert status("failed") == NOT_AVAILABLE == 3
    assert status("notified") is None and status("pending") is None


# --- check connection: the code exchange ----------------------------------------------------------


async def test_check_exchanges_the_code_once_and_stores_the_tokens_encrypted(perezvon_app, amo):
    amocrm = integration(perezvon_app)
    settings = amocrm.settings_schema().load(settings_for(amo, pipeline_id=PIPELINE, status_id=OTHER_STATUS))
    await amocrm.check(settings)
    exchange = amo.calls("POST", "/oauth2/access_token")
    assert exchange == [
        {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "grant_type": "authorization_code",
            "code": settings["authorization_code"],
            "redirect_uri": REDIRECT,
        }
    ]
    grant = await Grant.get(fingerprint=amocrm.fingerprint(settings))
    (access,) = amo.access
    (refresh,) = amo.refresh
    assert access not in grant.access_token and refresh not in grant.refresh_token  # sealed, not plain
    assert amocrm.sealer.open(grant.access_token) == access and amocrm.sealer.open(grant.refresh_token) == refresh
    # the code is one-time: a second check uses the stored token, it never exchanges again
    await amocrm.check(settings)
    assert len(amo.calls("POST", "/oauth2/access_token")) == 1
    assert amo.requests[-1][2]["authorization"] == f"Bearer {access}"


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"client_secret": "wrong-secret-0123456789"}, "client_secret", "integration ID and secret key"),
        ({"authorization_code": "def50200" + "0" * 40}, "authorization_code", "older than 20 minutes"),
        ({"pipeline_id": 999}, "pipeline_id", "no pipeline"),
        ({"pipeline_id": PIPELINE, "status_id": 10}, "status_id", "has no status"),
    ],
)
async def test_check_says_which_setting_amocrm_refuses(perezvon_app, amo, change, field, words):
    amocrm = integration(perezvon_app)
    settings = amocrm.settings_schema().load({**settings_for(amo), **change})
    with pytest.raises(CheckFailed) as refused:
        await amocrm.check(settings)
    assert list(refused.value.errors) == [field]
    message = refused.value.errors[field][0]
    text = message if isinstance(message, str) else message[0]
    assert words in text or words in text % message[1]
    assert cyrillic(plugin_gettext(amocrm, text, "ru"))


# --- deliveries ---------------------------------------------------------------------------------


async def test_a_lead_creates_contact_and_lead_then_the_call_note(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, amo, caplog
):
    settings = settings_for(amo, pipeline_id=PIPELINE, status_id=OTHER_STATUS)
    await enable(perezvon_site, settings)
    phone = new_phone()
    with caplog.at_level(logging.DEBUG):
        created = await post_lead(
            perezvon_client,
            perezvon_site,
            phone,
            name="Анна Петрова",
            page_url="https://shop.example/cars?id=5",
            utm={"source": "yandex", "campaign": "spring"},
        )
        await perezvon_run_jobs()
        # the call may finish before the lead is in amoCRM: its note waits for it, with back-off
        while await make_deferred_jobs_due(perezvon_app.redis):
            await perezvon_run_jobs()

    searches = [urlsplit(t) for m, t, _, _ in amo.requests if m == "GET" and urlsplit(t).path == "/api/v4/contacts"]
    assert [parse_qs(s.query) for s in searches] == [{"query": [phone.lstrip("+")]}]  # searched by phone first
    (contact_body,) = amo.calls("POST", "/api/v4/contacts")
    assert contact_body == [
        {
            "name": "Анна Петрова",
            "custom_fields_values": [{"field_code": "PHONE", "values": [{"value": phone, "enum_code": "WORK"}]}],
        }
    ]
    (contact_id,) = amo.contacts
    (lead_body,) = amo.calls("POST", "/api/v4/leads")
    (lead_id,) = amo.leads
    assert lead_body[0]["pipeline_id"] == PIPELINE and lead_body[0]["status_id"] == OTHER_STATUS
    assert lead_body[0]["_embedded"]["contacts"] == [{"id": contact_id}]
    assert lead_body[0]["name"] == "Обратный звонок: Анна Петрова"
    common, call_note = amo.notes
    assert common["entity_id"] == lead_id and common["note_type"] == "common"
    for words in (
        "Источник: api",
        "Страница: https://shop.example/cars?id=5",
        "utm_source: yandex",
        "utm_campaign: spring",
    ):
        assert words in common["params"]["text"]
    call = await Call.get(id=created["call_id"])
    assert call.display_status == "successful"
    assert call_note["entity_id"] == lead_id and call_note["note_type"] == "call_out"
    assert call_note["params"] == {
        "uniq": str(call.id),
        "duration": call.duration_seconds,
        "source": "Perezvon",
        "phone": phone,
        "call_status": 4,
        "call_result": "Разговор состоялся: the callback took place",
        # the simulator recorded the conversation: the note links the admin's player
        "link": f"{perezvon_app.settings.public_url.rstrip('/')}/calls/{call.id}/recording",
    }
    assert call.recording
    rows = await Delivery.filter(call_id=call.id).order_by("id")
    assert [(d.event, d.ok) for d in rows if d.ok] == [("lead_created", True), ("call_finished", True)]
    lead_row = next(d for d in rows if d.ok and d.event == "lead_created")
    assert json.loads(lead_row.response) == {"contact_id": contact_id, "contact_created": True, "lead_id": lead_id}
    stored = " ".join(d.response for d in rows) + our_logs(caplog)
    for secret in (CLIENT_SECRET, settings["authorization_code"], *amo.access, *amo.refresh):
        assert secret not in stored


async def test_a_known_phone_finds_its_contact_and_makes_no_second_one(
    perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, amo
):
    phone = new_phone()
    digits = phone[2:]
    typed = f"8 ({digits[:3]}) {digits[3:6]}-{digits[6:8]}-{digits[8:]}"  # as a manager typed it
    amo.contacts[77] = {
        "id": 77,
        "name": "Давний клиент",
        "custom_fields_values": [{"field_code": "PHONE", "values": [{"value": typed, "enum_code": "MOB"}]}],
    }
    await enable(perezvon_site, settings_for(amo))
    await post_lead(perezvon_client, perezvon_site, phone)
    await perezvon_run_jobs()
    assert amo.calls("POST", "/api/v4/contacts") == []
    (lead_body,) = amo.calls("POST", "/api/v4/leads")
    assert lead_body[0]["_embedded"]["contacts"] == [{"id": 77}]
    assert "pipeline_id" not in lead_body[0] and "status_id" not in lead_body[0]  # the main pipeline
    assert list(amo.contacts) == [77]


async def test_an_expired_token_is_refreshed_and_the_new_refresh_token_stored_encrypted(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, amo, caplog
):
    amocrm = integration(perezvon_app)
    settings = settings_for(amo)
    await enable(perezvon_site, settings)
    await amocrm.check(amocrm.settings_schema().load(settings))
    (first_refresh,) = amo.refresh
    amo.expire_access_tokens()  # amoCRM says 401 although our clock says the token is good

    with caplog.at_level(logging.DEBUG):
        created = await post_lead(perezvon_client, perezvon_site, new_phone())
        await perezvon_run_jobs()
        while await make_deferred_jobs_due(perezvon_app.redis):
            await perezvon_run_jobs()
    refreshes = [b for b in amo.calls("POST", "/oauth2/access_token") if b["grant_type"] == "refresh_token"]
    assert refreshes == [
        {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "grant_type": "refresh_token",
            "refresh_token": first_refresh,
            "redirect_uri": REDIRECT,
        }
    ]
    assert first_refresh in amo.used_refresh
    (new_refresh,) = amo.refresh
    grant = await Grant.get(fingerprint=amocrm.fingerprint(amocrm.settings_schema().load(settings)))
    assert new_refresh not in grant.refresh_token and first_refresh not in grant.refresh_token
    assert amocrm.sealer.open(grant.refresh_token) == new_refresh
    rows = await Delivery.filter(call_id=created["call_id"]).order_by("id")
    assert [(d.event, d.ok) for d in rows if d.ok] == [("lead_created", True), ("call_finished", True)]
    stored = " ".join(d.response for d in rows) + our_logs(caplog)
    for secret in (CLIENT_SECRET, settings["authorization_code"], first_refresh, new_refresh, *amo.access):
        assert secret not in stored

    # our own clock: an access token past its expiry is refreshed before any request is sent
    await Grant.filter(id=grant.id).update(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    sent_before = len(amo.requests)
    await amocrm.check(amocrm.settings_schema().load(settings))
    method, path, _, body = amo.requests[sent_before]
    assert (method, urlsplit(path).path, json.loads(body)["grant_type"]) == (
        "POST",
        "/oauth2/access_token",
        "refresh_token",
    )
    assert [urlsplit(r[1]).path for r in amo.requests[sent_before:]] == ["/oauth2/access_token", "/api/v4/account"]


async def test_a_refused_refresh_token_asks_for_a_new_code_and_is_not_retried(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, amo
):
    amocrm = integration(perezvon_app)
    settings = settings_for(amo)
    await enable(perezvon_site, settings)
    await amocrm.check(amocrm.settings_schema().load(settings))
    amo.expire_access_tokens()
    amo.refresh.clear()  # revoked in amoCRM
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    (row,) = await Delivery.filter(call_id=created["call_id"], event="lead_created")
    assert (row.ok, row.status, row.next_try_at) == (False, 400, None)
    assert "paste a new authorization code" in row.response and "Token has been revoked" in row.response
    with pytest.raises(CheckFailed) as refused:
        await amocrm.check(amocrm.settings_schema().load(settings))
    assert list(refused.value.errors) == ["authorization_code"]


async def test_a_429_is_retried_with_back_off_and_creates_nothing_twice(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, amo
):
    await enable(perezvon_site, settings_for(amo))
    amo.faults = [("POST", "/api/v4/leads", 429)]  # the contact is made, the lead hits the rate limit
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    first = await Delivery.get(call_id=created["call_id"], event="lead_created")
    assert (first.ok, first.status) == (False, 429) and first.next_try_at is not None
    sent = await SentLead.get(lead_id=(await Call.get(id=created["call_id"])).lead_id)
    assert sent.contact_id is not None and sent.amo_lead_id is None  # kept for the retry

    for _ in range(3):
        await make_deferred_jobs_due(perezvon_app.redis)
        await perezvon_run_jobs()
    tries = await Delivery.filter(call_id=created["call_id"], event="lead_created").order_by("try_number")
    assert [(d.try_number, d.ok, d.status) for d in tries] == [(1, False, 429), (2, True, None)]
    assert len(amo.contacts) == 1 and len(amo.leads) == 1
    assert len(amo.calls("POST", "/api/v4/contacts")) == 1
    assert len(amo.calls("POST", r"/api/v4/leads")) == 2  # the refused one and the one that made the lead
    assert [n["note_type"] for n in amo.notes] == ["common", "call_out"]
    assert (await Delivery.filter(call_id=created["call_id"], event="call_finished", ok=True).count()) == 1


async def test_a_400_fails_once_and_is_not_retried(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, amo
):
    await enable(perezvon_site, settings_for(amo))
    amo.faults = [("POST", "/api/v4/contacts", 400)]
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    await make_deferred_jobs_due(perezvon_app.redis)
    await perezvon_run_jobs()
    rows = await Delivery.filter(call_id=created["call_id"], event="lead_created")
    assert [(d.ok, d.status, d.next_try_at) for d in rows] == [(False, 400, None)]
    assert "asked by the test" in rows[0].response
    assert len(amo.calls("POST", "/api/v4/contacts")) == 1 and amo.leads == {}


async def test_the_call_note_links_the_recording_after_a_5xx_is_retried(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, amo
):
    await enable(perezvon_site, settings_for(amo))
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    amo.faults = [("POST", r"/api/v4/leads/\d+/notes", 503), ("POST", r"/api/v4/leads/\d+/notes", 503)]
    await perezvon_run_jobs()
    await Call.filter(id=created["call_id"]).update(recording="2026/12/04/call-1.wav")
    for _ in range(4):
        await make_deferred_jobs_due(perezvon_app.redis)
        await perezvon_run_jobs()
    common, call_note = amo.notes
    public = perezvon_app.settings.public_url.rstrip("/")
    assert call_note["params"]["link"] == f"{public}/calls/{created['call_id']}/recording"
    rows = await Delivery.filter(call_id=created["call_id"]).order_by("id")
    assert [(d.event, d.ok) for d in rows if d.ok] == [("lead_created", True), ("call_finished", True)]
    assert any(d.status == 503 for d in rows)
    assert len(amo.leads) == 1 and len(amo.contacts) == 1


async def test_a_call_event_never_shows_the_settings(perezvon_app, amo):
    settings = integration(perezvon_app).settings_schema().load(settings_for(amo))
    event = CallEvent("lead_created", 1, settings, {}, {}, [])
    assert CLIENT_SECRET not in repr(event) and CLIENT_SECRET not in repr(integration(perezvon_app))
    assert repr(integration(perezvon_app).sealer) == "Sealer()"


async def test_tokens_sealed_under_another_secret_key_ask_for_a_new_code(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, amo
):
    from perezvon.plugins.amocrm.tokens import Sealer

    amocrm = integration(perezvon_app)
    settings = settings_for(amo)
    await enable(perezvon_site, settings)
    await amocrm.check(amocrm.settings_schema().load(settings))
    other = Sealer("another deployment's key")
    fingerprint = amocrm.fingerprint(amocrm.settings_schema().load(settings))
    await Grant.filter(fingerprint=fingerprint).update(access_token=other.seal("x"), refresh_token=other.seal("y"))
    sent_before = len(amo.requests)
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    (row,) = await Delivery.filter(call_id=created["call_id"], event="lead_created")
    assert (row.ok, row.next_try_at) == (False, None)
    assert "secret key changed" in row.response
    assert len(amo.requests) == sent_before  # nothing was sent with tokens nobody can read
