"""Integrations against a local HTTP service: the exact requests, settings errors, faults, retries.

:class:`Service` is a real HTTP/1.1 server on 127.0.0.1 that records every
request (method, path, query, headers, body) and answers from a script, so
each plugin is checked the way the real service would see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import gc
import json
import logging
import socket
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from arq.constants import in_progress_key_prefix

from perezvon.core import enablement
from perezvon.core.enablement import MASK, mask_secrets, merge_secrets
from perezvon.core.i18n import plugin_gettext, plugin_locale_dir
from perezvon.core.models import Call, CallState, Delivery
from perezvon.core.queue import QUEUES
from perezvon.core.registry import EVENTS, CallEvent
from perezvon.plugins.calltouch.integration import Calltouch
from perezvon.plugins.comagic.integration import Comagic, ComagicSettings

HANG = "hang"

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode("ascii"), keep_blank_values=True, strict_parsing=True, encoding="utf-8")


class Service:
    """A local HTTP service. ``answers`` are used in order, then ``default``.

    An answer is ``(status, body)`` or :data:`HANG` (hold the request until
    :meth:`release`, then answer 200).
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.answers: list = []
        self.default: tuple[int, bytes | str | dict] = (200, {})
        self.released = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Service:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc) -> None:
        self.release()
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def release(self) -> None:
        self.released.set()

    async def wait_for(self, count: int, timeout: float = 30.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"{len(self.requests)} requests arrived, {count} expected"
            await asyncio.sleep(0.02)
        return self.requests

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, value = header.decode("latin-1").split(":", 1)
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                parts = urlsplit(target)
                self.requests.append(Request(method, parts.path, parse_qs(parts.query), headers, body))
                answer = self.answers.pop(0) if self.answers else self.default
                if answer == HANG:
                    await self.released.wait()
                    answer = (200, {})
                status, payload = answer
                if isinstance(payload, (dict, list)):
                    payload = json.dumps(payload)
                data = payload.encode() if isinstance(payload, str) else payload
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def service():
    async with Service() as running:
        yield running


async def post_lead(client, site, phone, **extra):
    response = await client.post("/api/v1/leads", json={"token": site.token, "phone": phone, "consent": True, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def our_logs(caplog) -> str:
    """What Perezvon, arq and httpx logged. The database drivers' own DEBUG lines (aiosqlite
    logs every statement with its parameters, from its thread) show stored settings as the
    database holds them; they are off unless DEBUG is asked for, like any driver's."""
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("aiosqlite", "tortoise")))


@pytest.fixture(autouse=True)
async def no_jobs_left_behind(perezvon_app):
    """These tests leave retries deferred by back-off, and a worker stopped mid-job leaves its
    "in progress" mark: neither may reach the next test (its run_jobs would wait on them)."""
    yield
    redis = perezvon_app.redis
    stale = [key async for key in redis.scan_iter(match="arq:*") if not key.startswith(b"arq:cron")]
    if stale:
        await redis.delete(*stale)


async def make_deferred_jobs_due(redis) -> int:
    """Bring retries deferred by back-off forward to now, so a test need not wait minutes.

    Called between two ``perezvon_run_jobs()``, when no worker runs: an "in progress" mark
    left by the stopped worker would make arq skip the job until the mark expires.
    Only pushes and notifications move: redials and periodic jobs keep their time (another
    test's redial made due here would be placed in this test's worker run)."""
    now = int(time.time() * 1000)
    moved = 0
    for queue in QUEUES:  # the callbacks' queue and the deliveries' queue
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


@contextlib.asynccontextmanager
async def running_worker(app):
    from perezvon.core.worker import build_workers

    workers = build_workers(app)
    task = asyncio.create_task(workers.async_run())
    try:
        yield workers
    finally:
        await workers.close()  # cancels a job still running (a hung delivery)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def wait_until(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (result := await condition()):
        assert time.monotonic() < deadline, "the condition was not met in time"
        await asyncio.sleep(0.05)
    return result


async def enable(site, key, **settings):
    return await enablement.enable(site, enablement.INTEGRATION, key, settings)


def errors_of(app, key, data):
    return app.host.registry.integrations[key].settings_schema().validate(data)


# --- settings -------------------------------------------------------------------------------


def cyrillic(text: str) -> bool:
    return any("а" <= ch <= "я" or ch == "ё" for ch in text.lower())


def test_every_integration_is_registered_with_texts_for_its_settings_page(perezvon_app):
    """Title, description, and each field's label and help: an English msgid with a Russian
    translation in the plugin's own catalog (locales/ru beside it, found by convention)."""
    registry = perezvon_app.host.registry
    for key in ("metrika", "google_analytics", "calltouch", "comagic", "webhooks", "bitrix24", "amocrm"):
        integration = registry.integrations[key]
        assert registry.owner[("integration", key)] == key
        assert plugin_locale_dir(integration) == ROOT / "plugins" / key / "locales"
        texts = [integration.title, integration.description]
        for name, field in integration.settings_schema().fields.items():
            assert field.metadata.get("label"), f"{key}.{name} has no label for the settings page"
            texts += [field.metadata["label"], *([field.metadata["help"]] if field.metadata.get("help") else [])]
        for text in texts:
            assert not cyrillic(text), f"{key}: {text!r} is not an English msgid"
            russian = plugin_gettext(integration, text, "ru")
            # proper names and the list of event names read the same in both languages
            assert russian != text or text in (
                "Calltouch",
                "CoMagic",
                "Google Analytics",
                "amoCRM",
                ", ".join(EVENTS),
            ), f"{key}: {text!r} has no Russian translation"
            assert plugin_gettext(integration, text, "en") == text


@pytest.mark.parametrize(
    "key, data, field",
    [
        ("metrika", {"counter_id": "12a45"}, "counter_id"),
        ("calltouch", {"site_id": "abc", "api_token": " "}, "site_id"),
        ("comagic", {"access_token": "short", "site_id": 5}, "access_token"),
        ("webhooks", {"url": "ftp://example.com/x", "secret": "s" * 20}, "url"),
        ("google_analytics", {"measurement_id": "GA-1"}, "measurement_id"),
    ],
)
def test_validation_messages_are_translated_by_the_plugin_catalog(perezvon_app, key, data, field):
    integration = perezvon_app.host.registry.integrations[key]
    message = errors_of(perezvon_app, key, data)[field][0]
    assert not cyrillic(message) and cyrillic(plugin_gettext(integration, message, "ru"))


@pytest.mark.parametrize(
    "key, data, field, words",
    [
        ("metrika", {"counter_id": "12a45"}, "counter_id", "only digits|digits only"),
        ("metrika", {}, "counter_id", "Missing"),
        ("google_analytics", {"measurement_id": "GA-1"}, "measurement_id", "G-XXXXXXXXXX"),
        ("google_analytics", {"measurement_id": "UA-12345678-1", "api_secret": "s3cret"}, "api_secret", "GA4"),
        ("calltouch", {"site_id": "abc", "api_token": "t"}, "site_id", "digits only"),
        ("calltouch", {"site_id": "123", "api_token": "  "}, "api_token", "cannot be empty"),
        (
            "calltouch",
            {"site_id": "123", "api_token": "t", "session_variable": "call value"},
            "session_variable",
            "JavaScript variable",
        ),
        ("calltouch", {"site_id": "123", "api_token": "t", "timezone": "Mars/Base"}, "timezone", "time zone"),
        ("comagic", {"access_token": "", "site_id": 5}, "access_token", "cannot be empty"),
        ("comagic", {"access_token": "short", "site_id": 5}, "access_token", "does not look like"),
        ("comagic", {"access_token": "k" * 40, "site_id": "x"}, "site_id", "integer"),
        ("webhooks", {"url": "ftp://example.com/x", "secret": "s" * 20}, "url", "http:// or https://"),
        ("webhooks", {"url": "https://example.com/x", "secret": "short"}, "secret", "at least 16"),
        (
            "webhooks",
            {"url": "https://example.com/x", "secret": "s" * 20, "events": ["lead_lost"]},
            "events",
            "Must be one of",
        ),
    ],
)
def test_bad_settings_get_a_clear_error_next_to_the_field(perezvon_app, key, data, field, words):
    errors = errors_of(perezvon_app, key, data)
    assert field in errors, errors
    text = json.dumps(errors[field], ensure_ascii=False)
    assert any(word in text for word in words.split("|")), text


def test_good_settings_load_with_defaults(perezvon_app):
    schema = perezvon_app.host.registry.integrations["calltouch"].settings_schema()
    loaded = schema.load({"site_id": "54321", "api_token": "tok"})
    assert loaded == {
        "site_id": "54321",
        "api_token": "tok",
        "session_variable": "call_value",
        "timezone": "Europe/Moscow",
        "api_url": "https://api.calltouch.ru",
    }
    metrika = perezvon_app.host.registry.integrations["metrika"]
    assert metrika.client_events(metrika.settings_schema().load({"counter_id": "12345678"})) == {
        "counter": 12345678,
        "prefix": "perezvon_",
    }
    # the goals are the declared site events; the names customers set up in Metrika stay as they were
    events = perezvon_app.host.registry.site_events()
    assert sorted(f"perezvon_{event}" for event in events) == [
        "perezvon_leadgen_lead",
        "perezvon_leadgen_shown",
        "perezvon_mobileleadgen_lead",
        "perezvon_mobileleadgen_shown",
        "perezvon_mobilepanel_call_click",
        "perezvon_mobilepanel_lead",
        "perezvon_mobilepanel_messenger_click",
        "perezvon_mobilepanel_route_click",
        "perezvon_mobilepanel_shown",
        "perezvon_offhours_lead",
        "perezvon_slider_card_click",
        "perezvon_slider_lead",
        "perezvon_slider_opened",
        "perezvon_tradein_lead",
        "perezvon_tradein_opened",
        "perezvon_tradein_step",
        "perezvon_widget_lead",
        "perezvon_widget_opened",
        "perezvon_widget_shown",
    ]


def test_the_comagic_key_is_masked_and_a_masked_form_keeps_it():
    key = "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6"
    stored = ComagicSettings().load({"access_token": key, "site_id": 77})
    shown = mask_secrets(ComagicSettings, stored)
    assert shown["access_token"] == MASK and key not in json.dumps(shown)
    assert shown["site_id"] == 77
    # the form comes back with the mask: the stored key is kept; a new key replaces it
    assert merge_secrets(ComagicSettings, {**shown, "site_id": 78}, stored)["access_token"] == key
    assert merge_secrets(ComagicSettings, {**shown, "access_token": "n" * 32}, stored)["access_token"] == "n" * 32
    event = CallEvent("lead_created", 1, stored, {}, {}, [])
    assert key not in repr(event) and key not in repr(Comagic())
    assert Comagic().client_events(stored) == {}


def test_calltouch_dtmf_codes_follow_the_lead_source(perezvon_app):
    calltouch = Calltouch(lead_sources=perezvon_app.host.registry.lead_sources)
    assert calltouch.dtmf_code("api") == 16
    assert calltouch.dtmf_code("siteforms") == 15
    assert calltouch.dtmf_code("no-such-source") == 16


# --- the requests, exactly as each service documents them --------------------------------------


async def test_calltouch_registers_the_lead_then_tags_the_call_result(
    perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, service
):
    service.default = (200, {"requestId": 987, "status": "ok"})
    await enable(perezvon_site, "calltouch", site_id="54321", api_token="ct-token-1", api_url=service.url + "/")
    phone = new_phone()
    created = await post_lead(
        perezvon_client,
        perezvon_site,
        phone,
        name="Анна Петрова",
        page_url="https://shop.example/cars?id=5",
        extra={"calltouch": {"session_id": "1234567890"}},
    )
    await perezvon_run_jobs()
    register, tag = await service.wait_for(2)

    assert (register.method, register.path) == ("POST", "/calls-service/RestAPI/requests/54321/register/")
    assert register.headers["content-type"] == "application/x-www-form-urlencoded"
    assert register.headers["access-token"] == "ct-token-1"
    assert b"%D0%90%D0%BD%D0%BD%D0%B0" in register.body  # Cyrillic is UTF-8, percent-encoded
    assert register.form() == {
        "subject": ["Перезвон: API"],
        "requestNumber": [created["lead_id"]],
        "phoneNumber": [phone.lstrip("+")],
        "fio": ["Анна Петрова"],
        "requestUrl": ["https://shop.example/cars?id=5"],
        "tags": ["perezvon,perezvon_dtmf_16"],
        "sessionId": ["1234567890"],
    }

    call = await Call.get(id=created["call_id"]).prefetch_related("lead")
    assert (tag.method, tag.path) == ("POST", "/lead-service/v1/api/tag/lead/add")
    assert tag.headers["content-type"] == "application/json"
    assert (tag.headers["access-token"], tag.headers["siteid"]) == ("ct-token-1", "54321")
    moscow = call.lead.created_at.astimezone(dt.timezone(dt.timedelta(hours=3)))
    assert tag.json() == {
        "leads": [
            {
                "matching": [
                    {
                        "type": "requestContact",
                        "requestContactParams": {
                            "phones": [phone.lstrip("+")],
                            "date": moscow.strftime("%d-%m-%Y %H:%M:%S"),
                            "requestTypeToMatch": "nearestUniq",
                            "searchDepth": 1440,
                        },
                    }
                ],
                "addTags": {"overwrite": False, "tags": [{"tag": "perezvon_successful"}, {"tag": "perezvon_target"}]},
            }
        ]
    }
    rows = await Delivery.filter(call_id=call.id).order_by("id")
    assert [(d.event, d.ok, d.status is None) for d in rows] == [
        ("lead_created", True, True),
        ("call_finished", True, True),
    ]
    assert rows[0].response.startswith('200 {"requestId": 987')


async def test_comagic_uploads_the_lead_and_tags_it_with_the_result(
    perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, service, caplog
):
    key = "cm-key-0123456789abcdef"
    service.answers = [
        (200, {"jsonrpc": "2.0", "id": "x", "result": {"data": [{"id": 777}], "metadata": {}}}),
        (200, {"jsonrpc": "2.0", "id": "y", "result": {"data": {"success": True}}}),
    ]
    await enable(
        perezvon_site,
        "comagic",
        access_token=key,
        site_id=4321,
        successful_tag_id=11,
        failed_tag_id=12,
        api_url=service.url + "/v2.0",
    )
    phone = new_phone()
    with caplog.at_level(logging.DEBUG):
        created = await post_lead(
            perezvon_client, perezvon_site, phone, name="Иван", extra={"comagic": {"session_id": "55501"}}
        )
        await perezvon_run_jobs()
    upload, tagging = await service.wait_for(2)
    call = await Call.get(id=created["call_id"]).prefetch_related("lead")
    moscow = call.lead.created_at.astimezone(dt.timezone(dt.timedelta(hours=3)))

    assert (upload.method, upload.path) == ("POST", "/v2.0")
    assert upload.headers["content-type"] == "application/json; charset=UTF-8"
    assert int(upload.headers["content-length"]) == len(upload.body)
    sent = upload.json()
    assert sent["jsonrpc"] == "2.0" and sent["method"] == "upload.offline_messages" and sent["id"]
    assert sent["params"] == {
        "access_token": key,
        "offline_messages": [
            {
                "date_time": moscow.strftime("%Y-%m-%d %H:%M:%S"),
                "name": "Иван",
                "phone": phone.lstrip("+"),
                "message": "Перезвон: заявка на обратный звонок (api)",
                "site_id": 4321,
                "visitor_session_id": 55501,
            }
        ],
    }
    assert "Иван".encode() in upload.body  # UTF-8, not \u-escaped

    assert tagging.json()["method"] == "set.tag_communications"
    assert tagging.json()["params"] == {
        "access_token": key,
        "communication_id": 777,
        "communication_type": "offline_message",
        "tag_id": 11,
    }
    rows = await Delivery.filter(call_id=call.id).order_by("id")
    assert [(d.event, d.ok) for d in rows] == [("lead_created", True), ("call_finished", True)]
    assert json.loads(rows[0].response) == {"offline_message_id": 777}
    assert all(key not in d.response for d in rows)
    assert key not in our_logs(caplog)


async def test_comagic_errors_in_a_200_answer_fail_the_delivery_and_never_show_the_key(
    perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, service, caplog
):
    key = "cm-key-fedcba9876543210"
    # the service echoes the key in its error, as some do: it must be blanked out before it is stored
    service.default = (
        200,
        {
            "jsonrpc": "2.0",
            "id": "x",
            "error": {
                "code": -32001,
                "message": f"access_token {key} is invalid",
                "data": {"mnemonic": "invalid_token"},
            },
        },
    )
    await enable(perezvon_site, "comagic", access_token=key, site_id=4321, api_url=service.url + "/v2.0")
    with caplog.at_level(logging.DEBUG):
        created = await post_lead(perezvon_client, perezvon_site, new_phone())
        await perezvon_run_jobs()
    assert (await Call.get(id=created["call_id"])).display_status == "successful"
    failed = await Delivery.get(call_id=created["call_id"], event="lead_created")
    assert (failed.ok, failed.status, failed.next_try_at) == (False, 200, None)  # not retried
    assert "invalid_token" in failed.response and key not in failed.response and MASK in failed.response
    assert key not in our_logs(caplog)
    assert len(service.requests) == 1  # call_finished has no tag configured: nothing sent


async def test_google_analytics_sends_call_results_by_the_measurement_protocol(
    perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, service
):
    service.default = (204, b"")
    await enable(
        perezvon_site,
        "google_analytics",
        measurement_id="G-ABC123XYZ",
        api_secret="mp-secret-1",
        mp_url=service.url + "/mp/collect",
    )
    created = await post_lead(
        perezvon_client, perezvon_site, new_phone(), extra={"google_analytics": {"client_id": "1234567.7654321"}}
    )
    await perezvon_run_jobs()
    (collect,) = await service.wait_for(1)
    assert (collect.method, collect.path) == ("POST", "/mp/collect")
    assert collect.query == {"measurement_id": ["G-ABC123XYZ"], "api_secret": ["mp-secret-1"]}
    assert collect.headers["content-type"] == "application/json"
    body = collect.json()
    assert body["client_id"] == "1234567.7654321"
    (event,) = body["events"]
    assert event["name"] == "perezvon_call_finished"
    assert {
        k: event["params"][k]
        for k in ("event_category", "status", "successful", "duration_seconds", "attempts", "source", "is_target")
    } == {
        "event_category": "PEREZVON",
        "status": "successful",
        "successful": True,
        "duration_seconds": 130,
        "attempts": 1,
        "source": "api",
        "is_target": True,
    }
    row = await Delivery.get(call_id=created["call_id"])
    assert (row.event, row.ok, row.response) == ("call_finished", True, "204")


async def test_client_only_integrations_queue_no_server_jobs(
    perezvon_client, perezvon_site, perezvon_run_jobs, new_phone
):
    await enable(perezvon_site, "metrika", counter_id="12345678")
    await enable(perezvon_site, "google_analytics", measurement_id="UA-1234567-1")  # no API secret
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    assert (await Call.get(id=created["call_id"])).display_status == "successful"
    assert await Delivery.filter(call_id=created["call_id"]).count() == 0


# --- faults -----------------------------------------------------------------------------------


async def test_a_5xx_is_retried_with_back_off_and_every_try_is_stored(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, service
):
    service.answers = [(500, "upstream broke"), (502, "bad gateway")]
    service.default = (200, {"ok": True})
    await enable(perezvon_site, "webhooks", url=service.url + "/hook", secret="k" * 24, events=["lead_created"])
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    before = dt.datetime.now(dt.UTC)
    await perezvon_run_jobs()
    first = await Delivery.get(call_id=created["call_id"], event="lead_created")
    assert (first.ok, first.status, first.try_number) == (False, 500, 1)
    assert "upstream broke" in first.response
    assert dt.timedelta(seconds=4) <= first.next_try_at - before <= dt.timedelta(seconds=30)  # back-off: 5 s
    assert (await Call.get(id=created["call_id"])).display_status == "successful"  # the call did not wait

    assert await make_deferred_jobs_due(perezvon_app.redis) >= 1
    await perezvon_run_jobs()
    assert await make_deferred_jobs_due(perezvon_app.redis) >= 1
    await perezvon_run_jobs()
    tries = await Delivery.filter(call_id=created["call_id"], event="lead_created").order_by("try_number")
    assert [(d.try_number, d.ok, d.status) for d in tries] == [(1, False, 500), (2, False, 502), (3, True, None)]
    assert tries[1].next_try_at - tries[1].created_at >= dt.timedelta(seconds=9)  # 10 s: doubled
    assert tries[2].next_try_at is None
    assert len(service.requests) == 3  # the same event each time: same id, same lead
    assert len({json.dumps(r.json()["lead"]) for r in service.requests}) == 1
    assert len({r.headers["x-perezvon-event-id"] for r in service.requests}) == 1


async def test_a_4xx_is_stored_once_and_not_retried(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, service
):
    service.default = (401, {"error": "invalid token"})
    await enable(perezvon_site, "calltouch", site_id="54321", api_token="ct-bad", api_url=service.url)
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    await make_deferred_jobs_due(perezvon_app.redis)
    await perezvon_run_jobs()
    rows = await Delivery.filter(call_id=created["call_id"]).order_by("id")
    assert [(d.event, d.ok, d.status, d.next_try_at) for d in rows] == [
        ("lead_created", False, 401, None),
        ("call_finished", False, 401, None),
    ]
    assert "invalid token" in rows[0].response
    assert len(service.requests) == 2
    assert (await Call.get(id=created["call_id"])).display_status == "successful"


async def test_stored_settings_that_no_longer_validate_fail_the_delivery_once(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, service
):
    """The one policy (core/enablement.py): a failed delivery with the validation message, not retried,
    nothing sent, and the callback goes on."""
    await enable(perezvon_site, "webhooks", url=service.url + "/hook", secret="too-short", events=["lead_created"])
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    await make_deferred_jobs_due(perezvon_app.redis)
    await perezvon_run_jobs()
    rows = await Delivery.filter(call_id=created["call_id"], integration_key="webhooks")
    events = [row.event for row in rows]
    assert "lead_created" in events and len(events) == len(set(events))  # one try per event: no retry
    for row in rows:
        assert (row.ok, row.status, row.next_try_at) == (False, None, None)
        assert "webhooks settings of this connection are invalid" in row.response and "at least 16" in row.response
    assert service.requests == []
    assert (await Call.get(id=created["call_id"])).display_status == "successful"


async def test_a_timeout_is_retried_and_a_hung_service_never_holds_up_the_callback(
    perezvon_app, perezvon_client, perezvon_site, new_phone, service
):
    service.answers = [HANG]
    await enable(
        perezvon_site, "webhooks", url=service.url + "/hook", secret="s" * 32, timeout=3, events=["lead_created"]
    )
    async with running_worker(perezvon_app):
        created = await post_lead(perezvon_client, perezvon_site, new_phone())
        await service.wait_for(1)
        # the delivery hangs in the service, and meanwhile the call is placed and finished
        call = await wait_until(lambda: Call.get_or_none(id=created["call_id"], state=CallState.FINISHED))
        assert call.display_status == "successful"
        assert await Delivery.filter(call_id=created["call_id"]).count() == 0  # still waiting for the answer
        failed = await wait_until(lambda: Delivery.get_or_none(call_id=created["call_id"]))
    assert (failed.ok, failed.status) == (False, None)
    assert failed.response == "no answer within 3 s (ReadTimeout)" and failed.next_try_at is not None
    service.release()


async def test_a_refused_connection_is_a_network_error_retried_with_back_off(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone
):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await enable(
        perezvon_site, "webhooks", url=f"http://127.0.0.1:{port}/hook", secret="s" * 32, events=["lead_created"]
    )
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    failed = await Delivery.get(call_id=created["call_id"])
    assert (failed.ok, failed.status, failed.next_try_at is not None) == (False, None, True)
    # named as what happened: not a timeout, and with the address that refused
    assert failed.response.startswith("network error: ClientConnectorError: ")
    assert f"127.0.0.1:{port}" in failed.response and "no answer" not in failed.response
    assert (await Call.get(id=created["call_id"])).display_status == "successful"


async def test_pushes_go_through_the_proxy_the_environment_names(service, monkeypatch):
    from perezvon.core.integrations import HttpPush
    from perezvon.core.registry import DeliveryError

    # the local service plays an HTTP proxy: it gets the request in absolute form
    monkeypatch.setenv("HTTP_PROXY", service.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    push = HttpPush(timeout=5)
    try:
        response = await push.send("POST", "http://pushes.invalid/hook", json={"event": "lead_created"})
        assert response.status_code == 200
        [request] = service.requests
        assert (request.method, request.path, request.headers["host"]) == ("POST", "/hook", "pushes.invalid")
        assert request.json() == {"event": "lead_created"}
        await push.close()

        monkeypatch.setenv("NO_PROXY", "localhost,pushes.invalid")  # this host is reached directly
        with pytest.raises(DeliveryError) as refused:
            await push.send("POST", "http://pushes.invalid/hook", json={})
        assert refused.value.retry and str(refused.value).startswith("network error: ")
        assert len(service.requests) == 1  # the proxy saw nothing more
    finally:
        await push.close()


async def test_a_push_leaves_nothing_for_the_garbage_collector(service):
    """An answered push is freed by reference counting alone, its answer still readable: httpx's
    response and its stream refer to each other, and with aiohttp's objects behind them that was
    ~40 objects of cyclic garbage a push, whose collections stalled the dials of a busy worker."""
    from perezvon.core.integrations import HttpPush
    from perezvon.core.registry import DeliveryError

    service.answers = [(200, {"ok": True})] * 11 + [(503, "down for a minute")] * 10
    push = HttpPush(timeout=5)
    try:
        await push.send("POST", service.url + "/hook", json={})  # the client and its pool made
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection would free is kept in gc.garbage, to count
        try:
            for _ in range(10):
                response = await push.send("POST", service.url + "/hook", json={"event": "lead_created"})
                assert response.json() == {"ok": True} and response.status_code == 200
            for _ in range(10):
                with pytest.raises(DeliveryError) as failed:
                    await push.send("POST", service.url + "/hook", json={})
                assert failed.value.retry and failed.value.response == "503 down for a minute"
            del response, failed
            gc.collect()
            cyclic = list(gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    finally:
        await push.close()
    assert [type(o).__qualname__ for o in cyclic] == []
    assert len(service.requests) == 21


async def test_pushes_have_their_own_queue_and_slots_so_hung_ones_never_hold_up_a_dial(
    perezvon_app, perezvon_client, perezvon_site, new_phone, service, monkeypatch
):
    from perezvon.core.queue import CALLBACKS_QUEUE, DELIVERIES_QUEUE

    monkeypatch.setattr("perezvon.core.worker.DELIVERY_MAX_JOBS", 2)  # a small number of slots, to fill them
    service.answers = [HANG, HANG, HANG]
    await enable(
        perezvon_site, "webhooks", url=service.url + "/hook", secret="s" * 32, timeout=30, events=["lead_created"]
    )
    redis = perezvon_app.redis
    async with running_worker(perezvon_app) as workers:
        assert workers.deliveries.max_jobs == 2
        created = [await post_lead(perezvon_client, perezvon_site, new_phone()) for _ in range(3)]
        await service.wait_for(2)  # both delivery slots now wait on the service
        for lead in created:
            call = await wait_until(lambda: Call.get_or_none(id=lead["call_id"], state=CallState.FINISHED))
            assert call.display_status == "successful"  # dialled and finished all the same
        # the third lead's push waits for a slot on its own queue, not in front of the attempts
        waiting = f"deliver:webhooks:lead_created:{created[2]['call_id']}"
        assert await redis.zscore(DELIVERIES_QUEUE, waiting) is not None
        assert await redis.zscore(CALLBACKS_QUEUE, waiting) is None
        assert len(service.requests) == 2
