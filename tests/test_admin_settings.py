"""Connection settings tabs and plugin cards: validated by the core's schemas, errors next to fields (docs/admin.md)."""

from __future__ import annotations

import contextlib
import re
import uuid

from marshmallow import Schema, fields, validate
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from test_admin_helpers import login, make_user

from perezvon.core import enablement
from perezvon.core.models import (
    CalendarDay,
    Connection,
    Department,
    NotificationRecipient,
    Office,
    OperatorNumber,
    Project,
)
from perezvon.core.registry import Integration
from perezvon.web.admin.views.settings import check_installation


async def _editor(client):
    project = await Project.create(name="Settings project")
    connection = await Connection.create(project=project, domain=f"set-{uuid.uuid4().hex[:8]}.example")
    csrf = await login(client, await make_user(level="edit", project=project))
    return connection, csrf


async def test_general_tab_saves_and_shows_errors_next_to_fields(perezvon_client):
    connection, csrf = await _editor(perezvon_client)
    url = f"/connections/{connection.id}/settings/general"
    bad = await perezvon_client.post(
        url, data={"csrf_token": csrf, "domain": "not a domain!", "timer_seconds": "-5", "name": "Мой сайт"}
    )
    assert bad.status_code == 400
    assert re.search(r'f-domain.*?class="error"', bad.text, re.S) and 'value="Мой сайт"' in bad.text  # kept
    ok = await perezvon_client.post(
        url,
        data={
            "csrf_token": csrf,
            "domain": "https://Shop.Example.com/path",
            "extra_domains": "m.shop.example.com\nshop.example.com",
            "name": "Мой сайт",
            "timer_seconds": "40",
            "is_on": "on",
        },
    )
    assert ok.status_code == 303
    saved = await Connection.get(id=connection.id)
    assert saved.domain == "shop.example.com" and saved.extra_domains == ["m.shop.example.com"]
    assert saved.timer_seconds == 40 and saved.name == "Мой сайт"


async def test_telephony_and_redial_matrix(perezvon_client):
    connection, csrf = await _editor(perezvon_client)
    url = f"/connections/{connection.id}/settings/telephony"
    page = await perezvon_client.get(url)
    assert page.status_code == 200 and "call_client.key" in page.text
    form = {
        "csrf_token": csrf,
        "first_direction": "client_first",
        "operator_speak_seconds": "20",
        "call_client.on": "on",
        "call_client.key": "5",
        "connect.key": "1",
        "cancel_client.key": "2",
        "cancel_operator.key": "9",
        "repeat_info.key": "0",
        "voice": "male",
        "rows": "2",
        "m0_chain": "operator_first",
        "m0_number": "2",
        "m0_pair": "486-*",
        "m0_action": "redial",
        "m0_period": "90",
        "m0_direction": "client_first",
        "m1_chain": "operator_first",
        "m1_number": "3",
        "m1_pair": "bad",
        "m1_action": "abort",
    }
    bad = await perezvon_client.post(url, data=form)
    assert bad.status_code == 400 and "Пара статусов записывается как 486-* или 200-480." in bad.text
    assert 'class="rule- has-error" data-row="1"' in bad.text  # on the row with the bad pair
    form["m1_pair"] = "*-480"
    ok = await perezvon_client.post(url, data=form)
    assert ok.status_code == 303
    saved = await Connection.get(id=connection.id)
    assert saved.telephony["first_direction"] == "client_first" and saved.telephony["call_client"] == {
        "on": True,
        "key": "5",
    }
    assert saved.telephony["voice"] == "male" and saved.telephony["operator_speak_seconds"] == 20
    assert saved.redial_matrix == {
        "operator_first": {"2": {"486-*": {"period": 90, "direction": "client_first"}}, "3": {"*-480": "abort"}}
    }
    bad_key = await perezvon_client.post(url, data={**form, "call_client.key": "55"})
    assert bad_key.status_code == 400


async def test_ivr_hours_and_calendar(perezvon_client):
    connection, csrf = await _editor(perezvon_client)
    ivr = await perezvon_client.post(
        f"/connections/{connection.id}/settings/ivr",
        data={"csrf_token": csrf, "site_to_operator": "on", "extra_to_client": "Оставайтесь на линии"},
    )
    assert ivr.status_code == 303
    saved = await Connection.get(id=connection.id)
    assert saved.announcements["site_to_operator"] and not saved.announcements["name_to_operator"]
    assert saved.announcements["extra_to_client"] == "Оставайтесь на линии"
    url = f"/connections/{connection.id}/settings/hours"
    closed = await perezvon_client.post(
        url, data={"csrf_token": csrf, "timezone": "Europe/Moscow", "convenient_time": "10:00"}
    )
    assert closed.status_code == 400  # no working day at all
    week = {f"works_{d}": "on" for d in "12345"}
    week.update({f"open_{d}": "08:30" for d in "12345"} | {f"close_{d}": "24:00" for d in "12345"})
    ok = await perezvon_client.post(
        url, data={"csrf_token": csrf, "timezone": "Asia/Yekaterinburg", "convenient_time": "11:00", **week}
    )
    assert ok.status_code == 303
    saved = await Connection.get(id=connection.id)
    assert saved.timezone == "Asia/Yekaterinburg" and saved.schedule["1"] == ["08:30", "24:00"]
    assert saved.schedule["6"] is None
    day = await perezvon_client.post(
        url,
        data={
            "csrf_token": csrf,
            "action": "add_day",
            "date": "2026-12-31",
            "kind": "short",
            "opens": "09:00",
            "closes": "15:00",
        },
    )
    assert day.status_code == 303
    assert await CalendarDay.exists(connection_id=connection.id, kind="short", closes="15:00")


async def test_numbers_offices_departments_and_recipients(perezvon_client):
    connection, csrf = await _editor(perezvon_client)
    url = f"/connections/{connection.id}/settings/numbers"
    bad = await perezvon_client.post(url, data={"csrf_token": csrf, "action": "add_number", "phone": "12"})
    assert bad.status_code == 400
    await perezvon_client.post(
        url, data={"csrf_token": csrf, "action": "add_number", "phone": "8 495 123-45-67", "extension": "105"}
    )
    assert await OperatorNumber.exists(connection_id=connection.id, phone="+74951234567", extension="105")
    await perezvon_client.post(
        url, data={"csrf_token": csrf, "action": "add_office", "office_name": "Север", "office_alt_name": "North"}
    )
    office = await Office.get(connection_id=connection.id)
    await perezvon_client.post(url, data={"csrf_token": csrf, "action": "copy_office", "id": str(office.id)})
    await perezvon_client.post(url, data={"csrf_token": csrf, "action": "toggle_office", "id": str(office.id)})
    offices = await Office.filter(connection_id=connection.id).order_by("id")
    assert [o.name for o in offices][1].startswith("Север") and len(offices) == 2 and not offices[0].is_active
    await perezvon_client.post(url, data={"csrf_token": csrf, "action": "add_department", "department_name": "Сервис"})
    department = await Department.get(connection_id=connection.id)
    notify = f"/connections/{connection.id}/settings/notifications"
    bad = await perezvon_client.post(notify, data={"csrf_token": csrf, "email": "nope", "on_success": "on"})
    assert bad.status_code == 400
    await perezvon_client.post(
        notify,
        data={"csrf_token": csrf, "email": "boss@example.com", "on_failure": "on", "department_id": str(department.id)},
    )
    recipient = await NotificationRecipient.get(connection_id=connection.id)
    assert recipient.department_id == department.id and not recipient.on_success and recipient.on_failure


async def test_site_code_snippet_download_and_installation_check(perezvon_client):
    connection, csrf = await _editor(perezvon_client)
    page = (await perezvon_client.get(f"/connections/{connection.id}/settings/code")).text
    assert f"/inject?token={connection.token}" in page
    download = await perezvon_client.get(f"/connections/{connection.id}/snippet")
    assert (
        f"inject?token={connection.token}" in download.text and "attachment" in download.headers["content-disposition"]
    )
    import socket

    import uvicorn

    installed = {"yes": True}

    async def home(request):
        body = f'<script async src="//x/inject?token={connection.token}"></script>' if installed["yes"] else ""
        return HTMLResponse(f"<html><body>{body}</body></html>")

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/", home)]), log_level="warning"))
    import asyncio

    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        found = await check_installation(connection, urls=[f"http://127.0.0.1:{port}/"])
        assert found["found"] and found["status"] == 200
        installed["yes"] = False
        missing = await check_installation(connection, urls=[f"http://127.0.0.1:{port}/"])
        assert not missing["found"]
        # what users type is never fetched inside the server's network: tests/test_outgoing.py
        down = await check_installation(connection, timeout=1, urls=["http://127.0.0.1:9/"])
        assert not down["found"] and down["error"]
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await task


class SecretSettings(Schema):
    counter_id = fields.String(
        required=True,
        validate=validate.Regexp(r"^\d{5,10}$", error="5 to 10 digits."),
        metadata={"label": "Counter id"},
    )
    account_key = fields.String(load_default="", metadata={"secret": True, "label": "Account key"})


class NewIntegration(Integration):
    key = "brand_new"
    title = "Brand new integration"
    settings_schema = SecretSettings


async def test_a_newly_installed_plugin_gets_a_card_and_a_generated_form(perezvon_app, perezvon_client):
    registry = perezvon_app.host.registry
    registry.current_plugin = "brand-new-plugin"
    registry.add_integration(NewIntegration())
    try:
        project = await Project.create(name="Plugins")
        connection = await Connection.create(project=project, domain=f"plug-{uuid.uuid4().hex[:8]}.example")
        csrf = await login(perezvon_client, await make_user(level="full", project=project))
        card_page = (await perezvon_client.get(f"/connections/{connection.id}")).text
        assert "Brand new integration" in card_page
        url = f"/connections/{connection.id}/integrations/brand_new"
        form = (await perezvon_client.get(url)).text
        assert 'name="counter_id"' in form and 'type="password" name="account_key"' in form
        bad = await perezvon_client.post(
            url, data={"csrf_token": csrf, "counter_id": "12ab", "account_key": "s3cret-key"}
        )
        assert bad.status_code == 400 and "s3cret-key" not in bad.text
        ok = await perezvon_client.post(
            url, data={"csrf_token": csrf, "counter_id": "1234567", "account_key": "s3cret-key"}
        )
        assert ok.status_code == 303
        shown = (await perezvon_client.get(url)).text
        assert "s3cret-key" not in shown and 'placeholder="****"' in shown
        # saving again with the secret left empty keeps it
        await perezvon_client.post(url, data={"csrf_token": csrf, "counter_id": "7654321", "account_key": ""})
        assert await enablement.stored_settings(connection, enablement.INTEGRATION, "brand_new") == {
            "counter_id": "7654321",
            "account_key": "s3cret-key",
        }
        assert not await enablement.is_on(connection, enablement.INTEGRATION, "brand_new")
        await perezvon_client.post(url + "/toggle", data={"csrf_token": csrf, "on": "1"})
        assert await enablement.is_on(connection, enablement.INTEGRATION, "brand_new")
    finally:
        registry.integrations.pop("brand_new", None)
        registry.owner.pop(("integration", "brand_new"), None)


def _form_texts(html: str) -> str:
    """The settings card's own texts: title, description, labels, help and errors (not the menu)."""
    start = html.index("<h1>")
    main = html[start : html.index("</form>", start)]
    return re.sub(r"<[^>]+>", " ", main)


def _cyrillic(text: str) -> bool:
    return bool(re.search("[а-яё]", text, re.I))


async def test_a_plugin_card_shows_one_language_from_the_plugin_catalog(perezvon_client):
    """Labels, help, errors, title and description: Russian from the plugin's own catalog, or English."""
    connection, csrf = await _editor(perezvon_client)
    for key, bad, russian, english in (
        (
            "metrika",
            {"counter_id": "12a45"},
            ["Номер счётчика", "только цифры", "Яндекс Метрика"],
            ["Counter id", "digits only", "Yandex Metrika"],
        ),
        (
            "webhooks",
            {"url": "ftp://x.example/", "secret": "short"},
            ["URL получателя", "Ключ подписи", "не короче 16", "Вебхуки"],
            ["Receiver URL", "Signing secret", "at least 16", "Webhooks"],
        ),
        (
            "comagic",
            {"access_token": "short", "site_id": "5"},
            ["Ключ доступа", "ID сайта в CoMagic", "не похоже на ключ"],
            ["Account key", "CoMagic site id", "does not look like"],
        ),
    ):
        url = f"/connections/{connection.id}/integrations/{key}"
        for lang, expected, other in (("ru", russian, english), ("en", english, russian)):
            perezvon_client.cookies.set("pz_lang", lang)
            page = await perezvon_client.post(url, data={"csrf_token": csrf, **bad})
            assert page.status_code == 400
            texts = _form_texts(page.text)
            assert all(word in texts for word in expected), (key, lang, texts)
            assert not any(word in texts for word in other), (key, lang, texts)
            if lang == "en":
                assert not _cyrillic(texts), (key, texts)
    # an application's card too: the site-forms plugin's title and description
    for lang, expected, other in (
        ("ru", ["Формы сайта", "становятся обратными звонками"], ["Site forms"]),
        ("en", ["Site forms", "become callbacks"], ["Формы сайта"]),
    ):
        perezvon_client.cookies.set("pz_lang", lang)
        page = (await perezvon_client.get(f"/connections/{connection.id}/apps/siteforms")).text
        texts = _form_texts(page)
        assert all(word in texts for word in expected) and not any(word in texts for word in other), (lang, texts)
    perezvon_client.cookies.delete("pz_lang")


async def test_stored_settings_that_no_longer_validate_are_shown_with_their_errors(perezvon_client):
    """The one policy (core/enablement.py): the admin shows what is stored, errors next to the fields."""
    connection, csrf = await _editor(perezvon_client)
    await enablement.enable(
        connection,
        enablement.INTEGRATION,
        "webhooks",
        {"url": "https://receiver.example/hook", "secret": "too-short", "events": ["lead_created"]},
    )
    perezvon_client.cookies.set("pz_lang", "en")
    page = await perezvon_client.get(f"/connections/{connection.id}/integrations/webhooks")
    perezvon_client.cookies.delete("pz_lang")
    assert page.status_code == 200
    assert 'value="https://receiver.example/hook"' in page.text and "too-short" not in page.text  # still masked
    assert re.search(r'f-secret.*?class="error">The secret must be at least 16 characters', page.text, re.S)
    # nothing was changed by showing it
    assert (await enablement.stored_settings(connection, enablement.INTEGRATION, "webhooks"))["secret"] == "too-short"


async def test_site_code_is_e_mailed_to_a_user_of_the_connection(perezvon_app, perezvon_client):
    project = await Project.create(name="Snippet by mail")
    connection = await Connection.create(project=project, domain=f"mail-{uuid.uuid4().hex[:8]}.example")
    recipient = await make_user(level="view", connection=connection, email=f"dev-{uuid.uuid4().hex[:6]}@example.com")
    csrf = await login(perezvon_client, await make_user(level="edit", project=project))
    page = await perezvon_client.get(f"/connections/{connection.id}/settings/code")
    assert recipient.email in page.text
    sent = await perezvon_client.post(
        f"/connections/{connection.id}/settings/code",
        data={"csrf_token": csrf, "action": "email", "user_id": str(recipient.id)},
    )
    assert sent.status_code == 303
    outbox = perezvon_app.settings.data_dir / "outbox"
    messages = [p.read_text(errors="replace") for p in outbox.glob("*site_snippet*.eml")]
    assert any(recipient.email in text and connection.token in text for text in messages)
    nobody = await perezvon_client.post(
        f"/connections/{connection.id}/settings/code", data={"csrf_token": csrf, "action": "email", "user_id": "999999"}
    )
    assert nobody.status_code == 400


async def test_the_telephony_tab_shows_each_pbx_of_the_pool(perezvon_app, perezvon_client):
    """The PBXs as the freshest worker heartbeat reports them (docs/asterisk.md#a-pool-of-pbxs)."""
    import json
    import time

    from perezvon.core.callbacks import WORKERS_KEY

    connection, _ = await _editor(perezvon_client)
    worker = f"pool-test-{uuid.uuid4().hex[:8]}"
    pbxs = [
        {"name": "msk", "host": "10.0.0.5:5038", "state": "ok", "reason": "", "calls": 3, "capacity": 120},
        {
            "name": "spb",
            "host": "10.1.0.5:5038",
            "state": "down",
            "reason": "Asterisk at 10.1.0.5:5038 refused the AMI login of 'perezvon'",
            "calls": 0,
            "capacity": None,
        },
    ]
    beat = {"worker": worker, "at": time.time() + 5, "backend": "asterisk", "telephony": "ok", "pbxs": pbxs}
    await perezvon_app.redis.hset(WORKERS_KEY, worker, json.dumps(beat))
    try:
        url = f"/connections/{connection.id}/settings/telephony"
        for lang, words, other in (
            ("ru", ["АТС", "В работе", "Выведена из работы", "3 / 120", "без ограничения"], "Out of rotation"),
            ("en", ["PBXs", "In rotation", "Out of rotation", "3 / 120", "no limit"], "Выведена"),
        ):
            perezvon_client.cookies.set("pz_lang", lang)
            page = (await perezvon_client.get(url)).text
            assert all(word in page for word in words), (lang, words)
            assert other not in page and "10.1.0.5:5038" in page and "refused the AMI login" in page
    finally:
        await perezvon_app.redis.hdel(WORKERS_KEY, worker)
        perezvon_client.cookies.delete("pz_lang")


async def test_the_telephony_tab_shows_the_worker_processes_and_what_waits_without_them(perezvon_app, perezvon_client):
    """Each live worker process from its heartbeat (docs/deploy.md#pushes-in-processes-of-their-own); a
    stale heartbeat is not shown; with no process for the pushes, the tab says they wait."""
    import json
    import time

    from perezvon.core.callbacks import WORKERS_KEY
    from perezvon.core.queue import DELIVERY_WORKERS_KEY

    connection, _ = await _editor(perezvon_client)
    caller, stale, pusher = (f"{name}-{uuid.uuid4().hex[:8]}:4242" for name in ("dialler", "stale", "pusher"))
    redis = perezvon_app.redis
    saved = await redis.hgetall(DELIVERY_WORKERS_KEY)  # other tests' processes, put back afterwards
    await redis.delete(DELIVERY_WORKERS_KEY)
    await redis.hset(WORKERS_KEY, caller, json.dumps({"worker": caller, "at": time.time() - 3, "in_flight": 17}))
    await redis.hset(WORKERS_KEY, stale, json.dumps({"worker": stale, "at": time.time() - 600, "in_flight": 1}))
    url = f"/connections/{connection.id}/settings/telephony"
    try:
        perezvon_client.cookies.set("pz_lang", "ru")
        page = (await perezvon_client.get(url)).text
        assert "Рабочие процессы" in page and caller in page and stale not in page
        assert "Ни один рабочий процесс не отправляет данные в интеграции и уведомления" in page
        assert "Ни один рабочий процесс не делает звонки" not in page
        assert ">17<" in page and "с назад" in page and "Worker processes" not in page
        await redis.hset(
            DELIVERY_WORKERS_KEY, pusher, json.dumps({"worker": pusher, "at": time.time(), "in_flight": 2})
        )
        perezvon_client.cookies.set("pz_lang", "en")
        page = (await perezvon_client.get(url)).text
        assert "Worker processes" in page and caller in page and pusher in page
        assert "Pushes and notifications" in page and "No worker process" not in page and "Рабочие" not in page
    finally:
        await redis.hdel(WORKERS_KEY, caller, stale)
        await redis.delete(DELIVERY_WORKERS_KEY)
        if saved:
            await redis.hset(DELIVERY_WORKERS_KEY, mapping=saved)
        perezvon_client.cookies.delete("pz_lang")
