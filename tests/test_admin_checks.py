"""A plugin card asks the plugin's service on "save" and on "Check connection" (core/checks.py, docs/admin.md).

Every service is a real HTTP server on 127.0.0.1 answering as the real one does
(:class:`tests.test_integrations.Service`); the admin is the real app over ASGI.
A value the service refuses is shown on its field and not stored; a service that
cannot be asked does not cost the admin what they typed.
"""

from __future__ import annotations

import html
import re
import uuid

import pytest
from test_admin_helpers import login, make_user

from perezvon.core import enablement
from perezvon.core.models import Connection, Project
from tests.test_integrations import Service

OAUTH_TOKEN = "y0_AgAAAAB-admin-check-token"
COMAGIC_KEY = "cm-admin-check-key-0123456789"
CALLTOUCH_TOKEN = "ct-admin-check-token"
WEBHOOK_SECRET = "whsec-admin-check-secret"


@pytest.fixture
async def service():
    async with Service() as running:
        yield running


@pytest.fixture
async def card(perezvon_client):
    project = await Project.create(name="Checks project")
    connection = await Connection.create(project=project, domain=f"chk-{uuid.uuid4().hex[:8]}.example")
    csrf = await login(perezvon_client, await make_user(level="edit", project=project))
    perezvon_client.cookies.set("pz_lang", "ru")
    yield connection, csrf
    perezvon_client.cookies.delete("pz_lang")


def field_error(page: str, field: str) -> str:
    """The error shown next to ``field`` on a generated form ('' when there is none)."""
    block = re.search(rf'id="f-{field}".*?</div>', page, re.S)
    errors = re.findall(r'<span class="error">([^<]*)</span>', block.group(0)) if block else []
    return html.unescape(" ".join(errors))


def form_errors(page: str) -> list[str]:
    return [html.unescape(text) for text in re.findall(r'<p class="error">([^<]*)</p>', page)]


async def stored(connection, key):
    return await enablement.stored_settings(connection, enablement.INTEGRATION, key)


CASES = {
    # key: (good form, how the service refuses, the field it lands on, words of the message)
    "metrika": (
        {"counter_id": "12345678", "oauth_token": OAUTH_TOKEN},
        (404, {"errors": [{"error_type": "not_found", "message": "Entity not found"}], "code": 404}),
        "counter_id",
        "нет счётчика 12345678",
    ),
    "comagic": (
        {"access_token": COMAGIC_KEY, "site_id": "4321"},
        (
            200,
            {
                "jsonrpc": "2.0",
                "id": "perezvon-check",
                "error": {"code": -32001, "message": "invalid token", "data": {"mnemonic": "invalid_token"}},
            },
        ),
        "access_token",
        "не принимает этот ключ",
    ),
    "calltouch": (
        {"site_id": "54321", "api_token": CALLTOUCH_TOKEN},
        (401, {"status": 401, "message": "unknown clientApiId"}),
        "api_token",
        "не знает этот API-токен",
    ),
    "webhooks": (
        {"url": "{url}/hook", "secret": WEBHOOK_SECRET, "events": "lead_created"},
        (403, "forbidden"),
        "url",
        "ответил 403",
    ),
}
GOOD_ANSWERS = {
    "metrika": (200, {"counter": {"id": 12345678, "status": "Active"}}),
    "comagic": (
        200,
        {"jsonrpc": "2.0", "id": "perezvon-check", "result": {"data": [{"id": 4321, "domain_name": "shop.example"}]}},
    ),
    "calltouch": (200, {"page": 1, "pageTotal": 0, "pageSize": 1, "recordsTotal": 0, "records": []}),
    "webhooks": (204, ""),
}


def form_for(key: str, url: str) -> dict[str, str]:
    good = {name: value.replace("{url}", url) for name, value in CASES[key][0].items()}
    if key == "metrika":
        good["api_url"] = url
    elif key == "comagic":
        good["api_url"] = url + "/v2.0"
    elif key == "calltouch":
        good["api_url"] = url
    return good


@pytest.mark.parametrize("key", sorted(CASES))
async def test_a_value_the_service_refuses_is_shown_on_its_field_and_not_saved(perezvon_client, card, service, key):
    connection, csrf = card
    _, refusal, field, words = CASES[key]
    service.default = refusal
    url = f"/connections/{connection.id}/integrations/{key}"
    page = await perezvon_client.post(url, data={"csrf_token": csrf, **form_for(key, service.url)})
    assert page.status_code == 400
    assert words in field_error(page.text, field), (field_error(page.text, field), form_errors(page.text))
    assert service.requests, "the service was asked"
    assert await stored(connection, key) is None
    for secret in (OAUTH_TOKEN, COMAGIC_KEY, CALLTOUCH_TOKEN, WEBHOOK_SECRET):
        assert secret not in page.text  # secrets go back to the browser masked, as always


@pytest.mark.parametrize("key", sorted(CASES))
async def test_settings_the_service_accepts_are_saved(perezvon_client, card, service, key):
    connection, csrf = card
    service.default = GOOD_ANSWERS[key]
    url = f"/connections/{connection.id}/integrations/{key}"
    saved = await perezvon_client.post(url, data={"csrf_token": csrf, **form_for(key, service.url)})
    assert saved.status_code == 303, form_errors(saved.text)
    assert len(service.requests) == 1
    assert (await stored(connection, key)) is not None


async def test_check_connection_reports_success_and_stores_nothing(perezvon_client, card, service):
    connection, csrf = card
    service.default = GOOD_ANSWERS["metrika"]
    url = f"/connections/{connection.id}/integrations/metrika"
    page = await perezvon_client.post(
        url, data={"csrf_token": csrf, "action": "check", **form_for("metrika", service.url)}
    )
    assert page.status_code == 200
    assert "Сервис принял эти настройки." in page.text
    assert service.requests[0].path == "/management/v1/counter/12345678"
    assert await stored(connection, "metrika") is None
    # the button is on the card, in the page's language
    assert 'name="action" value="check"' in page.text and "Проверить подключение" in page.text


async def test_check_connection_reports_the_reason_on_the_field(perezvon_client, card, service):
    connection, csrf = card
    service.default = CASES["comagic"][1]
    url = f"/connections/{connection.id}/integrations/comagic"
    perezvon_client.cookies.set("pz_lang", "en")
    page = await perezvon_client.post(
        url, data={"csrf_token": csrf, "action": "check", **form_for("comagic", service.url)}
    )
    assert page.status_code == 400
    assert "does not accept this key" in field_error(page.text, "access_token") or field_error(
        page.text, "access_token"
    ), form_errors(page.text)
    assert not re.search("[а-яё]", field_error(page.text, "access_token"), re.I)  # one language at a time
    assert await stored(connection, "comagic") is None


async def test_check_connection_with_the_stored_secret(perezvon_client, card, service):
    """The form shows a stored secret as ****: checking it uses the stored value, never the mask."""
    connection, csrf = card
    await enablement.enable(
        connection,
        enablement.INTEGRATION,
        "metrika",
        {"counter_id": "12345678", "oauth_token": OAUTH_TOKEN, "api_url": service.url},
    )
    service.default = GOOD_ANSWERS["metrika"]
    url = f"/connections/{connection.id}/integrations/metrika"
    page = await perezvon_client.post(
        url,
        data={
            "csrf_token": csrf,
            "action": "check",
            "counter_id": "12345678",
            "oauth_token": enablement.MASK,
            "api_url": service.url,
        },
    )
    assert page.status_code == 200 and "Сервис принял эти настройки." in page.text
    assert service.requests[0].headers["authorization"] == f"OAuth {OAUTH_TOKEN}"


async def test_an_unreachable_service_does_not_cost_the_admin_the_settings(perezvon_client, card):
    """Saving stores the valid settings and warns; "Check connection" says why it could not check."""
    connection, csrf = card
    async with Service() as gone:
        dead_url = gone.url
    url = f"/connections/{connection.id}/integrations/metrika"
    form = {"csrf_token": csrf, **form_for("metrika", dead_url)}
    checked = await perezvon_client.post(url, data={**form, "action": "check"})
    assert checked.status_code == 200
    assert form_errors(checked.text) == ["Не удалось связаться с сервисом. Проверьте его адрес и сеть сервера."]
    assert "Сервис принял эти настройки." not in checked.text
    assert await stored(connection, "metrika") is None
    saved = await perezvon_client.post(url, data=form)
    assert saved.status_code == 303
    assert (await stored(connection, "metrika"))["counter_id"] == "12345678"
    shown = await perezvon_client.get(url)
    assert "Сервис не смог проверить настройки" in shown.text and "Сохранено." in shown.text


async def test_a_viewer_cannot_check(perezvon_client, card, service):
    connection, _ = card
    perezvon_client.cookies.clear()
    perezvon_client.cookies.set("pz_lang", "ru")
    viewer_csrf = await login(perezvon_client, await make_user(level="view", project=await connection.project))
    page = await perezvon_client.post(
        f"/connections/{connection.id}/integrations/metrika",
        data={"csrf_token": viewer_csrf, "action": "check", **form_for("metrika", service.url)},
    )
    assert page.status_code == 403 and service.requests == []


@pytest.mark.parametrize(
    "key, field, value",
    [
        ("webhooks", "secret", "a-long-enough-secret\x00with-nul"),
        ("comagic", "access_token", "cm-key-0123456789\x00abcdef"),
        ("metrika", "oauth_token", "y0_token\x00"),
        ("metrika", "counter_id", "1" * 5000),
    ],
)
async def test_hostile_values_on_a_card_are_refused_on_their_field(perezvon_client, card, service, key, field, value):
    """What the stores cannot hold (NUL, a lone surrogate) or no service would take is a 400 on the
    field -- never a 500 from the database, and never sent to the service."""
    connection, csrf = card
    service.default = GOOD_ANSWERS[key]
    form = {"csrf_token": csrf, **form_for(key, service.url), field: value}
    for action in ({}, {"action": "check"}):
        page = await perezvon_client.post(f"/connections/{connection.id}/integrations/{key}", data={**form, **action})
        assert page.status_code == 400, (action, page.status_code)
        assert field_error(page.text, field), form_errors(page.text)
    assert service.requests == []
    assert await stored(connection, key) is None


@pytest.mark.parametrize(
    "draft",
    [
        '{"look": {"title": "a\\u0000b"}}',  # a NUL, as JSON escapes it
        '{"look": {"title": "broken \\ud800"}}',  # a lone surrogate: valid JSON, not UTF-8
        '{"thresholds": {"time_seconds": NaN}}',  # Python's json takes NaN; no store does
        '{"look": {"title": "' + "x" * 20_000 + '"}}',
    ],
)
async def test_the_visual_editor_refuses_what_no_store_can_hold(perezvon_client, card, draft):
    """The editor's JSON draft goes through the same guard as a card's form (core/enablement.py)."""
    connection, csrf = card
    page = await perezvon_client.post(
        f"/connections/{connection.id}/apps/widget", data={"csrf_token": csrf, "settings_json": draft}
    )
    assert page.status_code == 400
    assert await enablement.stored_settings(connection, enablement.APPLICATION, "widget") is None

    # the preview's draft endpoint: the same guard, errors as JSON, never a 500
    answer = await perezvon_client.post(
        f"/connections/{connection.id}/editor/widget/draft",
        content=('{"settings": ' + draft + "}").encode(),
        headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"},
    )
    assert answer.status_code == 422 and answer.json()["errors"]
