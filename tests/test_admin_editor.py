"""The visual editor of the widget and the lead generator (issue 7, item 4), in a real browser
and over HTTP: the preview runs the real site script, picked elements are styled, rules are
edited, the plugin's schema refuses a bad draft, and the saved look reaches a visitor's page."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest
from test_admin_helpers import PASSWORD, login, make_user

from perezvon.core import enablement
from perezvon.core.models import Connection, GrantLevel, OperatorNumber, Project
from perezvon.web.app import create_app

sys.path.insert(0, str(Path(__file__).with_name("site")))
from sitehelpers import LiveServer  # noqa: E402

ROUND_THE_CLOCK = {str(day): ["00:00", "24:00"] for day in range(1, 8)}
SHOTS = (
    Path(__file__).resolve().parent.parent / "docs" / "img"
    if os.environ.get("PEREZVON_ADMIN_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "perezvon-admin-screenshots"
)
TRIGGERS = ("time", "exit", "scroll", "hash", "button")


@pytest.fixture
async def live_site(perezvon_app):
    server = LiveServer(perezvon_app)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _connection(**apps) -> Connection:
    project = await Project.create(name="Editor tests")
    connection = await Connection.create(
        project=project, domain=f"e{uuid.uuid4().hex[:10]}.localhost", name="Editor shop", schedule=ROUND_THE_CLOCK
    )
    await OperatorNumber.create(connection=connection, phone="+74951234567")
    for key, settings in apps.items():
        await enablement.enable(connection, enablement.APPLICATION, key, settings)
    return connection


async def _sign_in(page, base: str, phone: str) -> None:
    await page.goto(f"{base}/login")
    await page.fill("#phone", phone)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(lambda url: "/login" not in url)


async def _shown(page, screen: str, exact: bool = False) -> None:
    """The preview frame reports the screen it shows (the admin's CSP forbids eval, so poll an attribute)."""

    async def shown():
        state = await page.get_attribute("#pv-frame", "data-state") or ""
        return state == f"shown:{screen}" if exact else state.startswith(f"shown:{screen}")

    await _poll(shown, 30)


async def _picked(page, element: str) -> None:
    async def picked():
        return await page.get_attribute("#element-name", "data-element") == element

    await _poll(picked)


async def _poll(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_an_editor_styles_the_widget_on_its_preview_and_visitors_see_it(live_site, page):
    connection = await _connection(widget={})
    editor = await make_user(level=GrantLevel.EDIT, connection=connection)
    base = live_site.base_url
    await _sign_in(page, base, editor.phone)
    await page.emulate_media(reduced_motion="reduce")  # the screenshots show the widget, not its fade-in
    await page.goto(f"{base}/connections/{connection.id}/apps/widget")
    await _shown(page, "form")
    preview = page.frame_locator("#pv-frame")
    assert await preview.locator("[data-perezvon=widget] .box").get_attribute("data-format") == "square"

    # every format and screen is the real widget's
    await page.select_option("#pv-format", "horizontal")
    await _shown(page, "form")
    assert await preview.locator("[data-perezvon=widget] .box").get_attribute("data-format") == "horizontal"
    await page.select_option("#pv-screen", "time")
    await _shown(page, "time")
    await page.select_option("#pv-screen", "closing")
    await _shown(page, "closing")
    assert "Спасибо" in await preview.locator("[data-perezvon=widget] h2").inner_text()
    await page.select_option("#pv-hours", "offhours")
    await _shown(page, "closing-offhours")
    await page.select_option("#pv-hours", "working")
    await page.select_option("#pv-screen", "form")
    await page.select_option("#pv-trigger", "exit")
    await _shown(page, "form")
    assert "Уже уходите" in await preview.locator("[data-perezvon=widget] h2").inner_text()

    # pick the title on the preview, restyle it and apply it to every trigger
    await preview.locator("[data-perezvon=widget] h2").click()
    await _picked(page, "title")
    assert await page.is_visible("#editor-save") is False
    await page.fill("#ed-trigger_looks-exit-title", "Позвоним через минуту")
    # a bad colour is refused by the schema while typing, next to the list of problems
    await page.fill("#ed-trigger_looks-exit-title_color", "reddish")

    async def listed():
        return await page.is_visible("#editor-errors") and "trigger_looks.exit.title_color" in await page.inner_text(
            "#editor-error-list"
        )

    await _poll(listed)
    await page.fill("#ed-trigger_looks-exit-title_color", "#b91c1c")

    async def cleared():
        return not await page.is_visible("#editor-errors")

    await _poll(cleared)
    assert await page.is_visible("#editor-save")
    await page.click("#apply-all")
    await _poll(lambda: _text_is(preview, "[data-perezvon=widget] h2", "Позвоним через минуту"))
    await page.select_option("#pv-trigger", "scroll")
    await _poll(lambda: _text_is(preview, "[data-perezvon=widget] h2", "Позвоним через минуту"))
    assert (
        await preview.locator("[data-perezvon=widget] h2").evaluate("n => getComputedStyle(n).color")
        == "rgb(185, 28, 28)"
    )

    # a URL rule: on /sale pages the widget is horizontal
    await page.click("[data-list=rules] .add-row")
    await page.fill("#ed-rules-0-name", "Распродажа")
    await page.fill("#ed-rules-0-value", "/sale")
    await page.fill("#ed-rules-0-weight", "5")
    await page.select_option("#ed-rules-0-format", "horizontal")
    await _shown(page, "form")
    await _screenshot(page, "admin-widget-editor.png")
    await page.click("#editor-save button[type=submit]")
    await page.wait_for_load_state()
    await page.wait_for_selector(".flash, .ok, #editor-form")

    stored = await enablement.stored_settings(connection, enablement.APPLICATION, "widget")
    assert stored["look"]["title"] == "Позвоним через минуту"
    assert stored["look"]["title_color"] == "#b91c1c"
    for trigger in TRIGGERS:
        assert stored["trigger_looks"][trigger]["title"] == "Позвоним через минуту"
        assert stored["trigger_looks"][trigger]["title_color"] == "#b91c1c"
    assert stored["rules"][0]["value"] == "/sale" and stored["rules"][0]["weight"] == 5
    assert stored["rules"][0]["format"] == "horizontal" and stored["rules"][0]["operator"] == "contains"

    # the real site script on the customer's page shows the new title in the new colour
    await page.goto(live_site.page_url(connection))
    await page.click("[data-perezvon=widget] .btn")
    title = page.locator("[data-perezvon=widget] .box h2")
    await title.wait_for()
    assert await title.inner_text() == "Позвоним через минуту"
    assert await title.evaluate("n => getComputedStyle(n).color") == "rgb(185, 28, 28)"


async def test_the_lead_generator_editor_previews_each_screen(live_site, page):
    connection = await _connection(leadgen={"generators": [{"id": "sale", "name": "Распродажа"}]})
    editor = await make_user(level=GrantLevel.EDIT, connection=connection)
    base = live_site.base_url
    await _sign_in(page, base, editor.phone)
    await page.emulate_media(reduced_motion="reduce")
    await page.goto(f"{base}/connections/{connection.id}/apps/leadgen")
    await _shown(page, "cover")
    preview = page.frame_locator("#pv-frame")
    await preview.locator("[data-perezvon=leadgen] .cover h2").click()
    await _picked(page, "text1")
    await page.fill("#ed-generators-0-working-cover-text1", "Минус 20% сегодня")
    await _poll(lambda: _text_is(preview, "[data-perezvon=leadgen] .cover h2", "Минус 20% сегодня"))
    await page.select_option("#pv-screen", "call")
    await _shown(page, "call")
    await page.select_option("#pv-hours", "offhours")
    await _shown(page, "call")
    await page.select_option("#pv-screen", "timer")
    await _shown(page, "timer")
    await page.select_option("#pv-hours", "working")
    await page.select_option("#pv-screen", "cover")
    await _shown(page, "cover")
    await preview.locator("[data-perezvon=leadgen] .cover h2").click()
    await _picked(page, "text1")
    await _screenshot(page, "admin-leadgen-editor.png")
    await page.click("#editor-save button[type=submit]")
    await page.wait_for_load_state()
    stored = await enablement.stored_settings(connection, enablement.APPLICATION, "leadgen")
    assert stored["generators"][0]["working"]["cover"]["text1"] == "Минус 20% сегодня"


async def _screenshot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.evaluate(
        "() => { window.scrollTo(0, document.querySelector('.editor-grid').offsetTop - 8);"
        " document.querySelector('.editor-panel').scrollTop = 0; }"
    )
    await page.screenshot(path=str(SHOTS / name))
    assert (SHOTS / name).stat().st_size > 10_000


async def _text_is(frame, selector: str, text: str) -> bool:
    try:
        return (await frame.locator(selector).inner_text(timeout=2000)) == text
    except Exception:
        return False


async def test_an_invalid_draft_is_refused_with_its_field_errors(perezvon_app):
    connection = await _connection(widget={})
    editor = await make_user(level=GrantLevel.EDIT, connection=connection)
    transport = httpx.ASGITransport(app=create_app(perezvon_app, manage_lifecycle=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        csrf = await login(client, editor)
        url = f"/connections/{connection.id}/apps/widget"
        page = await client.get(url)
        assert page.status_code == 200 and 'id="pv-frame"' in page.text and 'sandbox="allow-scripts"' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        draft = {"look": {"title_color": "red", "title_size": 500}, "rules": [{"operator": "near", "value": "x"}]}
        refused = await client.post(url, data={"csrf_token": csrf, "settings_json": json.dumps(draft)})
        assert refused.status_code == 400
        data = json.loads(refused.text.split('id="editor-data">', 1)[1].split("</script>", 1)[0])
        assert set(data["errors"]) == {"look.title_color", "look.title_size", "rules.0.operator"}
        assert data["settings"] == draft  # what was typed is kept to be corrected
        stored = await enablement.stored_settings(connection, enablement.APPLICATION, "widget")
        assert stored == {}
        # without the CSRF token nothing is even looked at
        assert (await client.post(url, data={"settings_json": "{}"})).status_code == 403
        # the preview's draft endpoint gives the same errors as JSON
        answer = await client.post(
            f"/connections/{connection.id}/editor/widget/draft",
            json={"settings": draft},
            headers={"X-CSRF-Token": csrf},
        )
        assert answer.status_code == 422 and "look.title_color" in answer.json()["errors"]
        good = await client.post(
            f"/connections/{connection.id}/editor/widget/draft",
            json={"settings": {"look": {"title": "Привет"}}},
            headers={"X-CSRF-Token": csrf},
        )
        assert good.json()["config"]["apps"][0]["config"]["look"]["title"] == "Привет"
        # the preview frame may be framed by the admin only, runs static scripts only and can send nothing
        frame = await client.get(f"/connections/{connection.id}/editor/widget/preview")
        csp = frame.headers["content-security-policy"]
        assert (
            "connect-src 'none'" in csp
            and "frame-ancestors 'self'" in csp
            and "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0]
        )
        assert "<script>" not in frame.text
        # a viewer sees the editor but may not save
        viewer = await make_user(level=GrantLevel.VIEW, connection=connection)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        csrf = await login(client, viewer)
        refused = await client.post(url, data={"csrf_token": csrf, "settings_json": "{}"})
        assert refused.status_code == 403


async def test_the_mobile_panel_editor_previews_the_bar_and_its_sheets_at_any_width(live_site, page):
    """The site skips the panel on screens wider than a phone; the editor's preview shows it anyway."""
    connection = await _connection(mobilepanel={"call": {"phone": "+7 800 555-35-35"}})
    editor = await make_user(level=GrantLevel.EDIT, connection=connection)
    base = live_site.base_url
    await _sign_in(page, base, editor.phone)
    await page.emulate_media(reduced_motion="reduce")
    await page.goto(f"{base}/connections/{connection.id}/apps/mobilepanel")
    await _shown(page, "bar")
    preview = page.frame_locator("#pv-frame")
    await preview.locator("[data-perezvon=mobilepanel] .b-call").click()
    await _picked(page, "call")
    await page.fill("#ed-call-label", "Звоните!")
    await _poll(lambda: _text_is(preview, "[data-perezvon=mobilepanel] .b-call span", "Звоните!"))
    for screen in ("callback", "closing", "messengers"):
        await page.select_option("#pv-screen", screen)
        await _shown(page, screen)
    await page.select_option("#pv-screen", "bar")
    await _shown(page, "bar")
    await page.click("#editor-save button[type=submit]")
    await page.wait_for_load_state()
    stored = await enablement.stored_settings(connection, enablement.APPLICATION, "mobilepanel")
    assert stored["call"]["label"] == "Звоните!" and stored["call"]["phone"] == "+7 800 555-35-35"


async def test_the_mobile_panels_bad_contacts_are_refused_and_good_ones_kept_as_links(perezvon_app):
    connection = await _connection(mobilepanel={})
    editor = await make_user(level=GrantLevel.EDIT, connection=connection)
    transport = httpx.ASGITransport(app=create_app(perezvon_app, manage_lifecycle=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        csrf = await login(client, editor)
        url = f"/connections/{connection.id}/apps/mobilepanel"
        draft = {
            "call": {"phone": "call me", "position": 9},
            "bar": {"bottom_offset": -5},
            "messengers": {"telegram": "javascript:alert(1)", "vk": "https://evil.example/x", "viber": "+7 9"},
        }
        refused = await client.post(url, data={"csrf_token": csrf, "settings_json": json.dumps(draft)})
        assert refused.status_code == 400
        data = json.loads(refused.text.split('id="editor-data">', 1)[1].split("</script>", 1)[0])
        assert set(data["errors"]) == {
            "call.phone",
            "call.position",
            "bar.bottom_offset",
            "messengers.telegram",
            "messengers.vk",
            "messengers.viber",
        }
        assert await enablement.stored_settings(connection, enablement.APPLICATION, "mobilepanel") == {}
        good = {
            "call": {"phone": "8 (800) 555-35-35"},
            "messengers": {"telegram": "@perezvon_demo", "whatsapp": "+7 912 345-67-89", "vk": "vk.com/perezvon"},
        }
        saved = await client.post(url, data={"csrf_token": csrf, "settings_json": json.dumps(good)})
        assert saved.status_code in (200, 303)
        stored = await enablement.stored_settings(connection, enablement.APPLICATION, "mobilepanel")
        assert stored["call"]["phone"] == "8 (800) 555-35-35"
        assert (stored["messengers"]["telegram"], stored["messengers"]["whatsapp"], stored["messengers"]["vk"]) == (
            "https://t.me/perezvon_demo",
            "https://wa.me/79123456789",
            "https://vk.com/perezvon",
        )
        # the site config carries the panel only for viewports up to 768 px
        config = (await client.get(f"/site/config?token={connection.token}")).json()
        [panel] = [app for app in config["apps"] if app["key"] == "mobilepanel"]
        assert panel["max_width"] == 768 and panel["source"] == "mobilepanel"
