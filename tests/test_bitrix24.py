"""The Bitrix24 integration against a local portal speaking its REST API (tests/bitrix24_emulator.py).

Leads become contacts and leads or deals, callbacks telephony calls with the outcome, duration and
recording; a rate-limited portal is tried again without duplicates, a refused webhook once, and the
webhook's secret is never stored, logged or shown.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest

from perezvon.core.enablement import MASK, mask_secrets, merge_secrets
from perezvon.core.i18n import plugin_gettext
from perezvon.core.models import Call, Delivery
from perezvon.core.registry import CallEvent, CheckFailed
from perezvon.plugins.bitrix24.integration import Bitrix24, Bitrix24Settings, status_code
from perezvon.plugins.bitrix24.models import Bitrix24Push
from tests.bitrix24_emulator import Bitrix24Emulator
from tests.test_integrations import cyrillic, enable, make_deferred_jobs_due, our_logs, post_lead

UTM = {"source": "yandex", "medium": "cpc", "campaign": "winter", "content": "banner-2", "term": "обратный звонок"}


@pytest.fixture
async def portal():
    async with Bitrix24Emulator() as running:
        yield running


@pytest.fixture(autouse=True)
async def no_jobs_left_behind(perezvon_app):
    yield
    redis = perezvon_app.redis
    stale = [key async for key in redis.scan_iter(match="arq:*") if not key.startswith(b"arq:cron")]
    if stale:
        await redis.delete(*stale)


def integration(app) -> Bitrix24:
    return app.host.registry.integrations["bitrix24"]


def settings_for(portal: Bitrix24Emulator, **more):
    return Bitrix24Settings().load({"webhook_url": portal.webhook, "responsible_id": 7, **more})


# --- settings --------------------------------------------------------------------------------


def test_the_settings_page_texts_are_english_msgids_with_russian_translations(perezvon_app):
    plugin = integration(perezvon_app)
    texts = [plugin.title, plugin.summary, plugin.description]
    for name, field in plugin.settings_schema().fields.items():
        assert field.metadata.get("label"), name
        texts += [field.metadata["label"], *([field.metadata["help"]] if field.metadata.get("help") else [])]
    for text in texts:
        assert not cyrillic(text), text
        assert cyrillic(plugin_gettext(plugin, text, "ru")), f"{text!r} has no Russian translation"
        assert plugin_gettext(plugin, text, "en") == text


@pytest.mark.parametrize(
    "data, field, english, russian",
    [
        ({"responsible_id": 1}, "webhook_url", "Missing data", "Обязательное поле"),
        ({"webhook_url": " ", "responsible_id": 1}, "webhook_url", "cannot be empty", "не может быть пустым"),
        (
            {"webhook_url": "https://b24.bitrix24.ru/crm/lead/", "responsible_id": 1},
            "webhook_url",
            "not an incoming webhook URL",
            "не адрес входящего вебхука",
        ),
        (
            {"webhook_url": "ftp://b24.bitrix24.ru/rest/1/abc/", "responsible_id": 1},
            "webhook_url",
            "not an incoming webhook URL",
            "не адрес входящего вебхука",
        ),
        (
            {"webhook_url": "https://b24.bitrix24.ru/rest/1/abc/", "responsible_id": 0},
            "responsible_id",
            "whole number from 1",
            "целое число от 1",
        ),
        (
            {"webhook_url": "https://b24.bitrix24.ru/rest/1/abc/", "responsible_id": 1, "entity": "company"},
            "entity",
            "a lead or a deal",
            "лид или сделку",
        ),
        (
            {"webhook_url": "https://b24.bitrix24.ru/rest/1/abc/", "responsible_id": 1, "source_id": "звонок"},
            "source_id",
            "Latin letters",
            "латинские буквы",
        ),
        (
            {"webhook_url": "https://b24.bitrix24.ru/rest/1/abc/", "responsible_id": 1, "deal_category_id": -1},
            "deal_category_id",
            "from 0",
            "от 0",
        ),
    ],
)
def test_bad_settings_get_a_clear_error_in_russian_and_english(perezvon_app, data, field, english, russian):
    plugin = integration(perezvon_app)
    errors = Bitrix24Settings().validate(data)
    assert field in errors, errors
    message = errors[field][0]
    assert english in message and not cyrillic(message)
    assert russian in plugin_gettext(plugin, message, "ru")


def test_good_settings_load_with_defaults_and_a_copied_method_name_is_fine():
    loaded = Bitrix24Settings().load(
        {"webhook_url": "https://b24-x1.bitrix24.ru/rest/1/k3j4h5k6l7/profile.json", "responsible_id": "7"}
    )
    assert loaded == {
        "webhook_url": "https://b24-x1.bitrix24.ru/rest/1/k3j4h5k6l7/profile.json",
        "responsible_id": 7,
        "entity": "lead",
        "source_id": "CALLBACK",
        "lead_status_id": "NEW",
        "deal_category_id": 0,
        "deal_stage_id": "",
        "successful_status_id": "",
        "failed_status_id": "",
    }


def test_the_webhook_is_masked_and_a_masked_form_keeps_it():
    url = "https://b24-x1.bitrix24.ru/rest/1/k3j4h5k6l7m8n9/"
    stored = Bitrix24Settings().load({"webhook_url": url, "responsible_id": 1})
    shown = mask_secrets(Bitrix24Settings, stored)
    assert shown["webhook_url"] == MASK and "k3j4h5k6l7m8n9" not in json.dumps(shown)
    assert merge_secrets(Bitrix24Settings, {**shown, "responsible_id": 2}, stored)["webhook_url"] == url
    assert "k3j4h5k6l7m8n9" not in repr(CallEvent("lead_created", 1, stored, {}, {}, []))


# --- the pushes --------------------------------------------------------------------------------


async def test_a_lead_adds_the_contact_and_a_lead_then_the_call_goes_to_telephony(
    perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, portal, caplog
):
    await enable(
        perezvon_site, "bitrix24", webhook_url=portal.webhook, responsible_id=7, successful_status_id="IN_PROCESS"
    )
    phone = new_phone()
    with caplog.at_level(logging.DEBUG):
        created = await post_lead(
            perezvon_client,
            perezvon_site,
            phone,
            name="Анна Петрова",
            page_url="https://shop.example/cars?id=5",
            utm=UTM,
        )
        await perezvon_run_jobs()
    call = await Call.get(id=created["call_id"]).prefetch_related("lead", "attempts")
    assert call.display_status == "successful" and call.duration_seconds > 0

    assert [m for m, _ in portal.calls][:3] == ["crm.duplicate.findbycomm", "crm.contact.add", "crm.lead.list"]
    assert portal.called("crm.duplicate.findbycomm") == [{"entity_type": "CONTACT", "type": "PHONE", "values": [phone]}]
    [contact] = portal.contacts.values()
    assert contact["NAME"] == "Анна Петрова" and contact["PHONE"] == [{"VALUE": phone, "VALUE_TYPE": "WORK"}]
    assert contact["ASSIGNED_BY_ID"] == 7
    [lead] = portal.leads.values()
    assert lead["CONTACT_ID"] == int(contact["ID"])
    assert (lead["SOURCE_ID"], lead["STATUS_ID"], lead["ASSIGNED_BY_ID"]) == ("CALLBACK", "IN_PROCESS", 7)
    assert lead["SOURCE_DESCRIPTION"] == "https://shop.example/cars?id=5"
    assert {k: lead[k] for k in ("UTM_SOURCE", "UTM_MEDIUM", "UTM_CAMPAIGN", "UTM_CONTENT", "UTM_TERM")} == {
        "UTM_SOURCE": "yandex",
        "UTM_MEDIUM": "cpc",
        "UTM_CAMPAIGN": "winter",
        "UTM_CONTENT": "banner-2",
        "UTM_TERM": "обратный звонок",
    }
    assert (lead["ORIGINATOR_ID"], lead["ORIGIN_ID"]) == ("perezvon", created["lead_id"])
    assert lead["TITLE"] == f"Перезвон: обратный звонок {phone} (Анна Петрова)"
    assert f"Телефон: {phone}" in lead["COMMENTS"] and "Страница: https://shop.example/cars?id=5" in lead["COMMENTS"]
    assert portal.called("crm.lead.update") == [{"id": int(lead["ID"]), "fields": {"STATUS_ID": "IN_PROCESS"}}]

    [registered] = portal.called("telephony.externalcall.register")
    assert registered["USER_ID"] == 7 and registered["PHONE_NUMBER"] == phone.lstrip("+")
    assert (registered["TYPE"], registered["CRM_CREATE"], registered["SHOW"]) == (1, 0, 0)
    assert (registered["CRM_ENTITY_TYPE"], registered["CRM_ENTITY_ID"]) == ("LEAD", int(lead["ID"]))
    assert registered["EXTERNAL_CALL_ID"] == f"perezvon-{call.id}"
    [stats] = portal.statistics.values()
    assert (stats["CALL_FAILED_CODE"], stats["CALL_DURATION"], stats["CALL_STATUS"]) == (
        "200",
        call.duration_seconds,
        1,
    )
    assert stats["PORTAL_USER_ID"] == 7
    # the simulator records the conversation (a short WAV in the storage): attached after finish
    [record] = portal.records.values()
    assert record["FILENAME"].endswith(".wav") and record["data"] == Path(call.recording).read_bytes()
    assert record["data"][:4] == b"RIFF" and record["data"][8:12] == b"WAVE"

    rows = await Delivery.filter(call_id=call.id, integration_key="bitrix24").order_by("id")
    assert [(d.event, d.ok) for d in rows] == [("lead_created", True), ("call_finished", True)]
    assert json.loads(rows[0].response) == {"contact_id": int(contact["ID"]), "lead_id": int(lead["ID"])}
    assert json.loads(rows[1].response)["status_code"] == "200"
    assert all(portal.secret not in d.response for d in rows)
    assert portal.secret not in our_logs(caplog)
    assert portal.refused == []


async def test_a_known_phone_reuses_its_contact_and_makes_a_deal(
    perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, portal
):
    phone = new_phone()
    portal.contacts[55] = {"ID": "55", "NAME": "Старый клиент", "PHONE": [{"VALUE": phone, "VALUE_TYPE": "MOBILE"}]}
    await enable(
        perezvon_site,
        "bitrix24",
        webhook_url=portal.webhook,
        responsible_id=1,
        entity="deal",
        deal_category_id=2,
        deal_stage_id="C2:NEW",
        source_id="WEB",
    )
    created = await post_lead(
        perezvon_client, perezvon_site, phone, page_url="https://shop.example/", utm={"source": "google"}
    )
    await perezvon_run_jobs()
    assert portal.called("crm.contact.add") == [] and list(portal.contacts) == [55]
    assert portal.leads == {}
    [deal] = portal.deals.values()
    assert (deal["CONTACT_ID"], deal["CATEGORY_ID"], deal["STAGE_ID"], deal["SOURCE_ID"]) == (55, 2, "C2:NEW", "WEB")
    assert deal["UTM_SOURCE"] == "google" and "UTM_MEDIUM" not in deal
    assert (deal["ORIGINATOR_ID"], deal["ORIGIN_ID"]) == ("perezvon", created["lead_id"])
    [registered] = portal.called("telephony.externalcall.register")
    assert (registered["CRM_ENTITY_TYPE"], registered["CRM_ENTITY_ID"]) == ("CONTACT", 55)  # a deal: its contact
    rows = await Delivery.filter(call_id=created["call_id"], integration_key="bitrix24").order_by("id")
    assert [(d.event, d.ok) for d in rows] == [("lead_created", True), ("call_finished", True)]
    assert json.loads(rows[0].response) == {"contact_id": 55, "deal_id": int(deal["ID"])}


@pytest.mark.parametrize(
    "display_status, client_status, expected",
    [
        ("successful", 200, "200"),
        ("cancelled", 201, "603-S"),
        ("unsuccessful", 486, "486"),
        ("unsuccessful", 603, "603"),
        ("unsuccessful", 408, "304"),
        ("unsuccessful", 480, "304"),
        ("unsuccessful", 404, "404"),
        ("unsuccessful", 203, "304"),
        ("unsuccessful", 503, "503"),
        ("failed", None, "OTHER"),  # the operator failed: the client was never dialled
        ("lost", 204, "OTHER"),
    ],
)
def test_our_outcomes_map_to_bitrix24_status_codes(display_status, client_status, expected):
    attempts = [{"number": 1, "client_status": 480}, {"number": 2, "client_status": client_status}]
    assert status_code({"display_status": display_status}, attempts) == expected


def event_of(settings, event: str, call_id: str, *, phone: str, **call) -> CallEvent:
    lead = {"id": str(uuid.uuid4()), "phone": phone, "name": "", "source": "api", "page_url": ""}
    attempts = [
        {"number": 1, "started_at": "2026-12-04T10:00:00+00:00", "dialled_at": "2026-12-04T10:00:01.250000+00:00"},
    ]
    attempts[0]["client_status"] = call.pop("client_status", 200)
    return CallEvent(
        event, 3, settings, lead, {"id": call_id, "created_at": "2026-12-04T09:59:59+00:00", **call}, attempts
    )


async def test_a_busy_client_is_486_with_the_reason_and_the_recording_is_attached_after_finish(
    perezvon_app, portal, tmp_path, new_phone
):
    plugin = integration(perezvon_app)
    settings = settings_for(portal, failed_status_id="JUNK")
    recording = tmp_path / "call-1.wav"
    recording.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(64)))
    call_id, phone = str(uuid.uuid4()), new_phone()
    result = await plugin.on_call_finished(
        event_of(
            settings,
            "call_finished",
            call_id,
            phone=phone,
            display_status="unsuccessful",
            client_status=486,
            duration_seconds=0,
            reason="the subscriber could not be reached in time: busy",
            recording=str(recording),
        )
    )
    [registered] = portal.called("telephony.externalcall.register")
    assert registered["CALL_START_DATE"] == "2026-12-04T10:00:01+00:00"
    [finished] = portal.called("telephony.externalcall.finish")
    assert (finished["STATUS_CODE"], finished["DURATION"], finished["USER_ID"]) == ("486", 0, 7)
    assert cyrillic(finished["FAILED_REASON"])  # the reason, in Russian for the CRM's users
    [record] = portal.records.values()
    assert record["FILENAME"] == "call-1.wav" and record["data"] == recording.read_bytes()
    assert [m for m, _ in portal.calls][-3:] == [
        "telephony.externalcall.register",
        "telephony.externalcall.finish",
        "telephony.externalcall.attachrecord",
    ]
    [lead] = portal.leads.values()
    assert lead["STATUS_ID"] == "JUNK"
    assert json.loads(result) == {
        "lead_id": int(lead["ID"]),
        "STATUS_ID": "JUNK",
        "call_id": next(iter(portal.statistics)),
        "status_code": "486",
        "record_file_id": record["FILE_ID"],
    }


async def test_a_rate_limited_step_is_retried_from_where_it_stopped_without_duplicates(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, portal
):
    portal.limit("crm.lead.add")
    portal.limit("telephony.externalcall.finish")
    await enable(perezvon_site, "bitrix24", webhook_url=portal.webhook, responsible_id=7)
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    for _ in range(4):
        if not await make_deferred_jobs_due(perezvon_app.redis):
            break
        await perezvon_run_jobs()
    rows = await Delivery.filter(call_id=created["call_id"], integration_key="bitrix24").order_by("id")
    tries = [(d.event, d.ok, d.status) for d in rows]
    assert ("lead_created", False, 503) in tries and ("call_finished", False, 503) in tries
    assert ("lead_created", True, None) in tries and ("call_finished", True, None) in tries
    failed = next(d for d in rows if d.status == 503)
    assert "QUERY_LIMIT_EXCEEDED" in failed.response and failed.next_try_at is not None
    assert len(portal.contacts) == 1 and len(portal.leads) == 1 and len(portal.statistics) == 1
    assert len(portal.called("crm.contact.add")) == 1  # the contact was saved before the limit hit
    assert len(portal.called("crm.lead.add")) == 2  # refused once, then added once
    assert len(portal.telephony) == 1  # the call was registered once, finished on the retry
    assert ("telephony.externalcall.finish", 503, "QUERY_LIMIT_EXCEEDED") in portal.refused
    push = await Bitrix24Push.get(call_id=created["call_id"])
    assert push.finished and push.entity_id == int(next(iter(portal.leads)))


async def test_a_lead_found_by_origin_is_not_added_twice(perezvon_app, portal, new_phone):
    """An earlier try added the lead but its answer was lost: the retry finds it by ORIGIN_ID."""
    plugin = integration(perezvon_app)
    settings = settings_for(portal)
    event = event_of(settings, "lead_created", str(uuid.uuid4()), phone=new_phone())
    portal.leads[9] = {"ID": "9", "ORIGINATOR_ID": "perezvon", "ORIGIN_ID": event.lead["id"]}
    assert json.loads(await plugin.on_lead_created(event))["lead_id"] == 9
    assert portal.called("crm.lead.add") == [] and list(portal.leads) == [9]
    await plugin.on_lead_created(event)  # and a second delivery asks nothing again
    assert len(portal.called("crm.lead.list")) == 1


async def test_a_wrong_secret_fails_once_and_the_secret_is_never_stored_or_logged(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, portal, caplog
):
    wrong = portal.webhook.replace(portal.secret, "wr0ngsecretvalue77")
    await enable(perezvon_site, "bitrix24", webhook_url=wrong, responsible_id=7)
    with caplog.at_level(logging.DEBUG):
        created = await post_lead(perezvon_client, perezvon_site, new_phone())
        await perezvon_run_jobs()
        await make_deferred_jobs_due(perezvon_app.redis)  # whatever was deferred is due now: no retry comes
        await perezvon_run_jobs()
    rows = await Delivery.filter(call_id=created["call_id"], integration_key="bitrix24").order_by("id")
    assert [(d.event, d.ok, d.status, d.next_try_at) for d in rows] == [
        ("lead_created", False, 401, None),
        ("call_finished", False, 401, None),
    ]
    assert "INVALID_CREDENTIALS" in rows[0].response
    assert portal.refused == [("crm.duplicate.findbycomm", 401, "INVALID_CREDENTIALS")] * 2
    assert portal.contacts == {} and portal.leads == {}
    logs = our_logs(caplog)
    assert "bitrix24" in logs and "crm.duplicate.findbycomm" in logs  # the failure is logged ...
    assert "wr0ngsecretvalue77" not in logs and all("wr0ngsecretvalue77" not in d.response for d in rows)
    assert "/rest/1/****/crm.duplicate.findbycomm.json" in logs  # ... and httpx's request line, blanked
    assert (await Call.get(id=created["call_id"])).display_status == "successful"


# --- check connection --------------------------------------------------------------------------


async def test_check_connection_accepts_a_good_webhook_and_names_what_is_wrong(perezvon_app, portal):
    plugin = integration(perezvon_app)
    assert await plugin.check(settings_for(portal)) is None
    with pytest.raises(CheckFailed) as refused:
        await plugin.check(settings_for(portal, webhook_url=portal.webhook.replace(portal.secret, "nope1234")))
    assert "does not accept this webhook" in json.dumps(refused.value.errors)
    with pytest.raises(CheckFailed) as no_user:
        await plugin.check(settings_for(portal, responsible_id=99))
    assert "responsible_id" in no_user.value.errors
    portal.scopes = ["crm"]
    with pytest.raises(CheckFailed) as scopes:
        await plugin.check(settings_for(portal))
    assert "telephony, user" in json.dumps(scopes.value.errors, ensure_ascii=False)


# --- the admin's card --------------------------------------------------------------------------


async def test_the_admin_card_checks_the_webhook_saves_it_and_shows_it_masked(perezvon_client, portal):
    import html
    import re

    from test_admin_helpers import login, make_user

    from perezvon.core import enablement
    from perezvon.core.models import Connection, Project

    project = await Project.create(name="Bitrix24 project")
    connection = await Connection.create(project=project, domain=f"b24-{uuid.uuid4().hex[:8]}.example")
    csrf = await login(perezvon_client, await make_user(level="edit", project=project))
    perezvon_client.cookies.set("pz_lang", "ru")
    url = f"/connections/{connection.id}/integrations/bitrix24"
    try:
        wrong = portal.webhook.replace(portal.secret, "wr0ngsecretvalue77")
        refused = await perezvon_client.post(
            url, data={"csrf_token": csrf, "webhook_url": wrong, "responsible_id": "7", "entity": "deal"}
        )
        assert refused.status_code == 400
        block = re.search(r'id="f-webhook_url".*?</div>', refused.text, re.S)
        assert block and "Битрикс24 не принимает этот вебхук" in html.unescape(block.group(0))
        assert "wr0ngsecretvalue77" not in refused.text
        assert await enablement.stored_settings(connection, enablement.INTEGRATION, "bitrix24") is None

        saved = await perezvon_client.post(
            url, data={"csrf_token": csrf, "webhook_url": portal.webhook, "responsible_id": "7", "entity": "deal"}
        )
        assert saved.status_code == 303, saved.text
        assert [m for m, _ in portal.calls][-2:] == ["scope", "user.get"]
        stored = await enablement.stored_settings(connection, enablement.INTEGRATION, "bitrix24")
        assert (stored["webhook_url"], stored["entity"], stored["responsible_id"]) == (portal.webhook, "deal", 7)
        shown = await perezvon_client.get(url)
        assert shown.status_code == 200 and portal.secret not in shown.text and MASK in shown.text
        assert "Адрес входящего вебхука" in shown.text and "Битрикс24" in shown.text
    finally:
        perezvon_client.cookies.delete("pz_lang")


async def test_a_webhook_inside_the_servers_network_is_refused_without_a_request(perezvon_app):
    from perezvon.api import AddressNotAllowed

    settings = Bitrix24Settings().load({"webhook_url": "http://10.20.30.40/rest/1/s3cretinside9/", "responsible_id": 1})
    with pytest.raises(AddressNotAllowed) as refused:
        await integration(perezvon_app).rest(settings, "scope", {})
    assert refused.value.retry is False and "s3cretinside9" not in str(refused.value)
