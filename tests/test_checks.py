""" "Check connection": each integration asks its (local, real-HTTP) service about the settings.

Every service here is :class:`tests.test_integrations.Service` on 127.0.0.1, answering as
the real one does; :func:`perezvon.core.checks.check_settings` runs the plugin's ``check``
the way the admin will, so each test sees exactly what an admin would be shown.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po

from perezvon.api import CheckFailed, Integration
from perezvon.core.checks import can_check, check_settings
from perezvon.plugins.calltouch.integration import Calltouch
from perezvon.plugins.comagic.integration import Comagic
from perezvon.plugins.google_analytics.integration import GoogleAnalytics
from perezvon.plugins.metrika.integration import Metrika
from perezvon.plugins.webhooks import signing
from perezvon.plugins.webhooks.integration import Webhooks
from tests.test_integrations import HANG, Service

OAUTH_TOKEN = "y0_AgAAAAB-metrika-oauth-token-1"
CALLTOUCH_TOKEN = "ct-secret-api-token-2"
COMAGIC_KEY = "cm-secret-access-key-0123456789"
GA_SECRET = "ga-secret-api-value-4"
WEBHOOK_SECRET = "whsec-secret-signing-5"
SECRETS = (OAUTH_TOKEN, CALLTOUCH_TOKEN, COMAGIC_KEY, GA_SECRET, WEBHOOK_SECRET)


def metrika(url: str, **extra: Any):
    return Metrika(), {"counter_id": "12345678", "oauth_token": OAUTH_TOKEN, "api_url": url, **extra}


def calltouch(url: str, **extra: Any):
    return Calltouch(), {"site_id": "54321", "api_token": CALLTOUCH_TOKEN, "api_url": url, **extra}


def comagic(url: str, **extra: Any):
    return Comagic(), {"access_token": COMAGIC_KEY, "site_id": 4321, "api_url": url + "/v2.0", **extra}


def google_analytics(url: str, **extra: Any):
    return GoogleAnalytics(), {
        "measurement_id": "G-ABC123XYZ",
        "api_secret": GA_SECRET,
        "mp_url": url + "/mp/collect",
        **extra,
    }


def webhooks(url: str, **extra: Any):
    return Webhooks(), {"url": url + "/hook?src=pv", "secret": WEBHOOK_SECRET, **extra}


ALL = [metrika, calltouch, comagic, google_analytics, webhooks]


async def run(make, url: str, locale: str = "ru", within: float = 10.0, **extra: Any) -> dict[str, list[str]]:
    """Validate the settings as the admin does, run the check, and make sure no secret is in any message."""
    plugin, raw = make(url, **extra)
    settings = plugin.settings_schema().load(raw)
    try:
        errors = await check_settings(plugin, settings, locale=locale, timeout=within)
    finally:
        await plugin.http.close()  # each test makes its own plugins: their pools close with the test
    assert isinstance(errors, dict)
    shown = json.dumps(errors, ensure_ascii=False)
    assert not any(secret in shown for secret in SECRETS), shown
    for messages in errors.values():
        assert messages and all(isinstance(message, str) and message for message in messages)
    return errors


@pytest.fixture
async def service():
    async with Service() as running:
        yield running


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Yandex Metrika -------------------------------------------------------------------------------


async def test_metrika_a_counter_the_token_reads_passes(service):
    service.default = (200, {"counter": {"id": 12345678, "status": "Active", "site2": {"site": "shop.example"}}})
    assert await run(metrika, service.url) == {}
    (request,) = service.requests
    assert (request.method, request.path) == ("GET", "/management/v1/counter/12345678")
    assert request.headers["authorization"] == f"OAuth {OAUTH_TOKEN}"


@pytest.mark.parametrize(
    "status, body, field, words",
    [
        (
            401,
            {"errors": [{"error_type": "invalid_token", "message": "Invalid oAuth token"}], "code": 401},
            "oauth_token",
            "OAuth-токен",
        ),
        (
            403,
            {"errors": [{"error_type": "access_denied", "message": "Access is denied"}], "code": 403},
            "counter_id",
            "не может читать счётчик 12345678",
        ),
        (
            404,
            {"errors": [{"error_type": "not_found", "message": "Entity not found"}], "code": 404},
            "counter_id",
            "нет счётчика 12345678",
        ),
    ],
)
async def test_metrika_refusals_end_on_their_field(service, status, body, field, words):
    service.default = (status, body)
    errors = await run(metrika, service.url)
    assert list(errors) == [field] and words in errors[field][0]


async def test_metrika_without_a_token_asks_nothing(service):
    assert await run(metrika, service.url, oauth_token="") == {}
    assert service.requests == []


@pytest.mark.parametrize(
    "status, message",
    [
        (503, "Сервис ответил 503 (сбой на его стороне). Попробуйте позже."),
        (429, "Сервис ответил 429 (сбой на его стороне). Попробуйте позже."),
        (409, "Сервис отклонил запрос (409)."),
    ],
)
async def test_metrika_answers_it_does_not_map_are_not_blamed_on_a_field(service, status, message):
    service.default = (status, {"message": "Something else"})
    assert await run(metrika, service.url) == {"_schema": [message]}


# --- Calltouch ------------------------------------------------------------------------------------


async def test_calltouch_a_token_owning_the_site_passes(service):
    service.default = (200, {"page": 1, "pageTotal": 0, "pageSize": 1, "recordsTotal": 0, "records": []})
    assert await run(calltouch, service.url) == {}
    (request,) = service.requests
    assert (request.method, request.path) == ("GET", "/calls-service/RestAPI/54321/calls-diary/calls")
    assert request.query["clientApiId"] == [CALLTOUCH_TOKEN]
    assert request.query["limit"] == ["1"] and request.query["dateFrom"] == request.query["dateTo"]


@pytest.mark.parametrize(
    "status, field, words",
    [
        (401, "api_token", "не знает этот API-токен"),
        (403, "site_id", "нет сайта 54321"),
        (404, "site_id", "нет сайта 54321"),
    ],
)
async def test_calltouch_refusals_end_on_their_field(service, status, field, words):
    service.default = (status, {"status": status, "message": f"rejected clientApiId {CALLTOUCH_TOKEN}"})
    errors = await run(calltouch, service.url)
    assert list(errors) == [field] and words in errors[field][0]


async def test_calltouch_an_error_in_a_200_is_shown_without_the_token(service):
    service.default = (200, {"error": f"bad request for clientApiId={CALLTOUCH_TOKEN}"})
    errors = await run(calltouch, service.url)
    assert list(errors) == ["_schema"] and errors["_schema"][0].startswith("Calltouch ответил ошибкой: 200")
    assert "****" in errors["_schema"][0]


# --- CoMagic --------------------------------------------------------------------------------------


async def test_comagic_a_key_of_the_account_with_the_site_passes(service):
    service.default = (
        200,
        {
            "jsonrpc": "2.0",
            "id": "perezvon-check",
            "result": {
                "data": [{"id": 17, "domain_name": "other.example"}, {"id": 4321, "domain_name": "shop.example"}],
                "metadata": {"total_items": 2},
            },
        },
    )
    assert await run(comagic, service.url) == {}
    (request,) = service.requests
    assert (request.method, request.path) == ("POST", "/v2.0")
    assert request.json()["method"] == "get.sites" and request.json()["params"]["access_token"] == COMAGIC_KEY


@pytest.mark.parametrize(
    "answer, field, words",
    [
        (
            {
                "error": {
                    "code": -32001,
                    "message": f"access_token {COMAGIC_KEY} is invalid",
                    "data": {"mnemonic": "invalid_token"},
                }
            },
            "access_token",
            "не принимает этот ключ",
        ),
        (
            {
                "error": {
                    "code": -32003,
                    "message": "Access token has been expired",
                    "data": {"mnemonic": "access_token_expired"},
                }
            },
            "access_token",
            "не принимает этот ключ",
        ),
        ({"result": {"data": [{"id": 17, "domain_name": "other.example"}]}}, "site_id", "нет сайта 4321"),
        (
            {"error": {"code": -32004, "message": "IP is not whitelisted", "data": {"mnemonic": "ip_not_whitelisted"}}},
            "_schema",
            "IP-адреса этого сервера",
        ),
        (
            {
                "error": {
                    "code": -32602,
                    "message": f"Invalid parameter for {COMAGIC_KEY}",
                    "data": {"mnemonic": "invalid_parameter_value"},
                }
            },
            "_schema",
            "ответил ошибкой -32602",
        ),
    ],
)
async def test_comagic_refusals_end_on_their_field(service, answer, field, words):
    service.default = (200, {"jsonrpc": "2.0", "id": "perezvon-check", **answer})
    errors = await run(comagic, service.url)
    assert list(errors) == [field] and words in errors[field][0]


# --- Google Analytics -----------------------------------------------------------------------------


async def test_google_analytics_a_valid_event_passes_the_validation_server(service):
    service.default = (200, {"validationMessages": []})
    assert await run(google_analytics, service.url) == {}
    (request,) = service.requests
    assert (request.method, request.path) == ("POST", "/debug/mp/collect")
    assert request.query == {"measurement_id": ["G-ABC123XYZ"], "api_secret": [GA_SECRET]}
    assert request.json()["events"][0]["name"] == "perezvon_call_finished"


async def test_google_analytics_messages_end_on_the_fields_they_name(service):
    service.default = (
        200,
        {
            "validationMessages": [
                {
                    "fieldPath": "measurement_id",
                    "description": "Measurement id G-ABC123XYZ was not found.",
                    "validationCode": "VALUE_INVALID",
                },
                {
                    "fieldPath": "",
                    "description": f"Unable to use api_secret [{GA_SECRET}].",
                    "validationCode": "VALUE_INVALID",
                },
                {
                    "fieldPath": "events",
                    "description": "Event at index: [0] has invalid name [_bad].",
                    "validationCode": "NAME_INVALID",
                },
            ]
        },
    )
    errors = await run(google_analytics, service.url)
    assert errors == {
        "measurement_id": ["Google Analytics не принимает запрос: Measurement id G-ABC123XYZ was not found."],
        "api_secret": ["Google Analytics не принимает запрос: Unable to use api_secret [****]."],
        "_schema": ["Google Analytics не принимает запрос: Event at index: [0] has invalid name [_bad]."],
    }


async def test_google_analytics_without_an_api_secret_asks_nothing(service):
    assert await run(google_analytics, service.url, api_secret="") == {}
    assert service.requests == []


# --- webhooks -------------------------------------------------------------------------------------


async def test_webhooks_a_receiver_answering_2xx_to_a_signed_check_event_passes(service):
    service.default = (204, "")
    assert await run(webhooks, service.url) == {}
    (request,) = service.requests
    assert (request.method, request.path, request.query) == ("POST", "/hook", {"src": ["pv"]})
    assert request.headers["x-perezvon-event"] == "check"
    stamp = request.headers["x-perezvon-timestamp"]
    assert signing.verify(WEBHOOK_SECRET, request.body, stamp, request.headers["x-perezvon-signature"]) == int(stamp)
    body = request.json()
    assert body["event"] == "check" and body["id"] == request.headers["x-perezvon-event-id"]
    assert body["id"].startswith("check-") and body["lead"] is None and body["attempts"] == []


@pytest.mark.parametrize(
    "status, words",
    [
        (404, "ответил 404 на подписанное тестовое событие"),
        (401, "ответил 401"),
        (500, "ответил 500"),
        (302, "302 (перенаправление)"),
    ],
)
async def test_webhooks_a_refusing_receiver_ends_on_the_url(service, status, words):
    service.default = (status, f"bad signature for {WEBHOOK_SECRET}")
    errors = await run(webhooks, service.url)
    assert list(errors) == ["url"] and words in errors["url"][0]


async def test_webhooks_the_receivers_own_timeout_is_a_clear_message(service):
    service.default = HANG
    errors = await run(webhooks, service.url, within=5.0, timeout=1)
    assert errors == {"_schema": ["Сервис не ответил вовремя. Попробуйте позже."]}


# --- every integration: unreachable, too slow, crashing ---------------------------------------------


@pytest.mark.parametrize("make", ALL, ids=lambda make: make.__name__)
async def test_an_unreachable_service_is_a_clear_message(make):
    url = f"http://127.0.0.1:{closed_port()}"
    assert await run(make, url) == {"_schema": ["Не удалось связаться с сервисом. Проверьте его адрес и сеть сервера."]}
    assert await run(make, url, locale="en") == {
        "_schema": ["The service could not be reached. Check its address and the server's network."]
    }


@pytest.mark.parametrize("make", ALL, ids=lambda make: make.__name__)
async def test_a_service_that_does_not_answer_is_cut_off(service, make):
    service.default = HANG
    assert await run(make, service.url, within=0.5) == {"_schema": ["Сервис не ответил за 0.5 с. Попробуйте позже."]}
    assert len(service.requests) == 1


@pytest.mark.parametrize("make", ALL, ids=lambda make: make.__name__)
async def test_messages_are_english_when_asked(service, make):
    service.default = (401, {"error": "unauthorized"})
    errors = await run(make, service.url, locale="en")
    text = " ".join(message for messages in errors.values() for message in messages)
    assert errors and text.isascii(), errors


async def test_a_crashing_check_gives_a_message_and_a_log_line_without_the_secret(caplog):
    class Crashing(Comagic):
        async def check(self, settings):
            raise RuntimeError(f"unexpected answer for key {settings['access_token']}")

    plugin = Crashing()
    settings = plugin.settings_schema().load({"access_token": COMAGIC_KEY, "site_id": 5})
    with caplog.at_level(logging.ERROR, logger="perezvon.core.checks"):
        errors = await check_settings(plugin, settings)
    assert errors == {"_schema": ["Проверка не удалась из-за ошибки в Перезвоне; подробности в журнале сервера."]}
    logged = caplog.text
    assert "RuntimeError: unexpected answer for key ****" in logged and COMAGIC_KEY not in logged


async def test_a_refusal_about_an_unknown_field_or_without_messages_is_still_shown():
    class Odd(Webhooks):
        async def check(self, settings):
            raise CheckFailed({"no_such_field": [("Refused %(what)s", {"what": settings["secret"]})], "url": []})

    plugin = Odd()
    settings = plugin.settings_schema().load({"url": "http://127.0.0.1:9/x", "secret": WEBHOOK_SECRET})
    assert await check_settings(plugin, settings) == {"_schema": ["Refused ****"]}

    class Empty(Webhooks):
        async def check(self, settings):
            raise CheckFailed({})

    assert await check_settings(Empty(), settings, locale="en") == {"_schema": ["The service refused these settings."]}


@pytest.mark.parametrize("plugin", ["metrika", "calltouch", "comagic", "google_analytics", "webhooks"])
def test_each_plugins_catalog_translates_with_the_same_placeholders(plugin):
    path = (
        Path(__file__).resolve().parent.parent / "plugins" / plugin / "locales" / "ru" / "LC_MESSAGES" / "messages.po"
    )
    with open(path, "rb") as fh:
        catalog = {m.id: m.string for m in read_po(fh, locale="ru") if m.id}
    assert catalog
    for msgid, msgstr in catalog.items():
        assert msgstr and msgstr != msgid, msgid
        assert sorted(re.findall(r"%\(\w+\)s", msgid)) == sorted(re.findall(r"%\(\w+\)s", msgstr)), msgid


def test_which_plugins_can_check():
    class Silent(Integration):
        key = "silent"
        title = "Silent"

    assert all(can_check(make("http://127.0.0.1:9")[0]) for make in ALL)
    assert not can_check(Silent())


async def test_the_default_check_accepts_anything():
    class Silent(Integration):
        key = "silent"
        title = "Silent"

    assert await Silent().check({"anything": 1}) is None
    assert await check_settings(Silent(), {}) == {}
