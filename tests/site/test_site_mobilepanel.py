"""The mobile panel in a real browser (docs/mobilepanel.md): a phone at 390×844 gets the bar, styled by
its settings, with the site's number, the route and the messengers, and a callback whose lead is called
back; a desktop at 1280×800 never even fetches its script."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sitehelpers import RECORD_EVENTS, events, ready, wait_for

from perezvon.core.models import Call, CallState, DisplayStatus, Lead, Office, OperatorNumber, Project

ROUND_THE_CLOCK = {str(day): ["00:00", "24:00"] for day in range(1, 8)}
PANEL = "[data-perezvon=mobilepanel]"
#: the site's own clicks are stopped (a tel: or t.me link would leave the page); the panel still hears them
STAY = "document.addEventListener('click', e => { if (e.target.closest && e.target.closest('a')) e.preventDefault(); }, true);"
STAY_IN_SHADOW = """() => {
  const root = document.querySelector('[data-perezvon=mobilepanel]').shadowRoot;
  root.addEventListener('click', e => { if (e.target.closest('a')) e.preventDefault(); }, true);
}"""


@pytest.fixture
def make_panel_site(perezvon_app):
    """``await make_panel_site(settings, **connection_fields)``: a connection on its own ``*.localhost``
    domain with the mobile panel on (and the widget too, when given)."""
    from perezvon.core import enablement

    async def make(settings: dict, widget: dict | None = None, **fields):
        app = perezvon_app.host.registry.applications["mobilepanel"]
        project = await Project.create(name="Mobile panel tests")
        fields.setdefault("schedule", ROUND_THE_CLOCK)
        connection = await _connection(project, fields)
        await OperatorNumber.create(connection=connection, phone="+74951234567")
        await enablement.enable(connection, enablement.APPLICATION, "mobilepanel", app.settings_schema().load(settings))
        if widget is not None:
            await enablement.enable(connection, enablement.APPLICATION, "widget", widget)
        return connection

    return make


async def _connection(project, fields):
    from perezvon.core.models import Connection

    return await Connection.create(
        project=project, domain=f"m{uuid.uuid4().hex[:10]}.localhost", name="Test shop", **fields
    )


@pytest.fixture
async def phone(browser):
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, device_scale_factor=2, locale="ru-RU"
    )
    yield await context.new_page()
    await context.close()


async def buttons(page) -> list[str]:
    return await page.locator(f"{PANEL} .bar [data-button]").evaluate_all(
        "nodes => nodes.map(n => n.getAttribute('data-button'))"
    )


async def leads_of(site) -> list[Lead]:
    return await Lead.filter(connection_id=site.id).all()


async def test_the_bar_on_a_phone_is_styled_by_its_settings_with_the_sites_number_and_the_route(
    live, make_panel_site, phone
):
    site = await make_panel_site(
        {
            "bar": {"background": "#111827", "bottom_offset": 56},
            "call": {
                "position": 3,
                "background": "#ff0000",
                "text_color": "#00ff00",
                "label": "Звонок",
                "phone": "+7 800 000-00-00",
            },
            "route": {"position": 1},
            "callback": {"position": 4},
            "messengers": {"position": 2, "telegram": "@perezvon_demo", "whatsapp": "8 912 345-67-89"},
        },
        offices_enabled=True,
    )
    await Office.create(
        connection=site,
        name="Москва",
        phone_selector="#site-phone",
        address="Москва, Ленинградский проспект, 1",
        latitude=55.7601,
        longitude=37.5752,
    )
    page = phone
    await page.add_init_script(RECORD_EVENTS)
    await page.add_init_script(STAY)
    await page.goto(live.page_url(site))
    bar = page.locator(f"{PANEL} .bar")
    await bar.wait_for(timeout=20000)
    # the order set, every button there
    assert await buttons(page) == ["route", "messengers", "call", "callback"]
    await bar.evaluate("n => Promise.all(n.getAnimations().map(a => a.finished))")  # slid in
    box = await bar.bounding_box()
    # the whole width, lifted by the bottom offset above the site's own bottom UI
    assert box["x"] == 0 and box["width"] == 390
    assert abs(box["y"] + box["height"] - (844 - 56)) < 1
    assert await bar.evaluate("n => getComputedStyle(n).backgroundColor") == "rgb(17, 24, 39)"
    call = page.locator(f"{PANEL} .b-call")
    assert await call.evaluate("n => getComputedStyle(n).backgroundColor") == "rgb(255, 0, 0)"
    assert await call.evaluate("n => getComputedStyle(n).color") == "rgb(0, 255, 0)"
    assert (await call.text_content()).strip() == "Звонок"
    # the number the site shows (the call-tracking number substituted into the page), not the fallback
    assert await call.get_attribute("href") == "tel:+74951112233"
    call_box = await call.bounding_box()
    assert call_box["height"] >= 44  # a thumb's target
    # one office: the route button is a Yandex Maps route to its coordinates
    route = page.locator(f"{PANEL} .b-route")
    href = await route.get_attribute("href")
    assert href.startswith("https://yandex.ru/maps/?rtext=~55.7601,37.5752") and "pt=37.5752,55.7601" in href
    assert await route.get_attribute("target") == "_blank"
    shown = await events(page, "mobilepanel_shown")
    assert shown[0]["buttons"] == ["route", "messengers", "call", "callback"] and shown[0]["app"] == "mobilepanel"

    await page.evaluate(STAY_IN_SHADOW)
    await call.tap()
    await route.tap()
    assert (await events(page, "mobilepanel_call_click"))[0]["phone"] == "+74951112233"
    assert (await events(page, "mobilepanel_route_click"))[0]["office"] == "Москва"
    # messengers: a sheet of checked links
    await page.locator(f"{PANEL} .b-messengers").tap()
    links = page.locator(f"{PANEL} .sheet[data-sheet=messengers] a")
    await links.first.wait_for(timeout=5000)
    assert await links.evaluate_all("ns => ns.map(n => n.href)") == [
        "https://t.me/perezvon_demo",
        "https://wa.me/79123456789",
    ]
    await links.nth(1).tap()
    assert (await events(page, "mobilepanel_messenger_click"))[0]["messenger"] == "whatsapp"
    # the page itself did not widen: the bar adds no layout
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390


async def test_the_fallback_number_an_office_list_and_rules_that_hide_the_bar(live, make_panel_site, browser):
    site = await make_panel_site(
        {
            "call": {"phone": "8 (800) 555-35-35"},
            "messengers": {"enabled": False, "telegram": "@perezvon_demo"},
            "channels": {"ads": {"show": False}},
            "rules": [{"target": "url", "operator": "contains", "value": "no-panel", "show": False, "weight": 5}],
        },
        offices_enabled=True,
    )
    await Office.create(connection=site, name="Север", phone_selector="#not-on-this-page", address="Тверская, 7")
    await Office.create(connection=site, name="Юг", address="Варшавское шоссе, 1", latitude=55.7, longitude=37.62)
    for query, seen in (("", True), ("?utm_medium=cpc", False), ("?from=no-panel", False)):
        context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        try:
            page = await context.new_page()
            fetched: list[str] = []
            page.on("request", lambda request, fetched=fetched: fetched.append(request.url))
            await page.goto(live.page_url(site, query=query))
            if query == "?from=no-panel":  # a URL rule hides it here: its code is not even fetched
                await page.wait_for_load_state("networkidle")
                assert any("/runtime." in url for url in fetched)
                assert not [url for url in fetched if "app-mobilepanel" in url]
                assert await page.locator(PANEL).count() == 0
                continue
            await ready(page, "mobilepanel")
            assert await page.locator(f"{PANEL} .bar").count() == (1 if seen else 0), query
            if not seen:
                continue
            # the switched-off button is not there
            assert await buttons(page) == ["call", "callback", "route"]
            # no number on the page: the one in the settings
            assert await page.locator(f"{PANEL} .b-call").get_attribute("href") == "tel:+78005553535"
            # several offices: the route button lists them, each with its map link
            await page.locator(f"{PANEL} .b-route").tap()
            offices = page.locator(f"{PANEL} .sheet[data-sheet=route] a")
            await offices.first.wait_for(timeout=5000)
            assert await offices.all_text_contents() == ["СеверТверская, 7", "ЮгВаршавское шоссе, 1"]
            hrefs = await offices.evaluate_all("ns => ns.map(n => n.href)")
            assert hrefs[0] == "https://yandex.ru/maps/?text=%D0%A2%D0%B2%D0%B5%D1%80%D1%81%D0%BA%D0%B0%D1%8F%2C%207"
            assert hrefs[1].startswith("https://yandex.ru/maps/?rtext=~55.7,37.62")
            # Escape closes the sheet
            await page.keyboard.press("Escape")
            await page.locator(f"{PANEL} .sheet").wait_for(state="detached", timeout=5000)
        finally:
            await context.close()


async def test_the_callback_form_leaves_a_lead_that_is_called_back(
    live, make_panel_site, phone, perezvon_app, perezvon_run_jobs
):
    assert perezvon_app.host.registry.lead_sources["mobilepanel"].calltouch_code == 14
    site = await make_panel_site(
        {"callback": {"title": "Перезвоним сами", "background": "#0000ff", "consent_checked": False}},
        offices_enabled=True,
    )
    await Office.create(connection=site, name="Москва", phone_selector="#site-phone")
    page = phone
    await page.add_init_script(RECORD_EVENTS)
    await page.goto(live.page_url(site, query="?utm_source=yandex&utm_medium=cpc"))
    await page.locator(f"{PANEL} .b-callback").tap()
    sheet = page.locator(f"{PANEL} .sheet[data-sheet=callback]")
    await sheet.wait_for(timeout=5000)
    assert (await sheet.locator("h2").text_content()) == "Перезвоним сами"
    assert await sheet.locator(".go").evaluate("n => getComputedStyle(n).backgroundColor") == "rgb(0, 0, 255)"
    tel = sheet.locator("input[type=tel]")
    await tel.tap()
    await tel.press_sequentially("9123456780")
    # consent as the widget asks it: unticked, no lead
    await sheet.locator(".go").tap()
    await page.locator(f"{PANEL} .ok .err").filter(has_text="согласие").wait_for(timeout=5000)
    assert await leads_of(site) == []
    await sheet.locator(".ok input").check()
    await sheet.locator(".go").tap()
    leads = await wait_for(lambda: leads_of(site), message="the lead in the database")
    lead = leads[0]
    assert (lead.source, lead.phone, lead.channel) == ("mobilepanel", "+79123456780", "ads")
    assert lead.displayed_phone == "+7 (495) 111-22-33" and lead.visit["trigger"] == "button"
    assert (await events(page, "mobilepanel_lead"))[0]["lead_id"] == str(lead.id)
    state = sheet.locator(".state")
    await state.wait_for(timeout=10000)
    await perezvon_run_jobs()  # the simulator calls back
    call = await Call.get(lead_id=lead.id)
    assert (call.state, call.display_status) == (CallState.FINISHED, DisplayStatus.SUCCESSFUL)
    await wait_for(
        lambda: _is(state, "Разговор состоялся. Спасибо!"),
        timeout=30,
        message="the call's state in the sheet",
    )


async def _is(locator, text: str) -> bool:
    return (await locator.text_content()) == text


async def test_a_desktop_never_fetches_the_panels_script(live, make_panel_site, page):
    site = await make_panel_site(
        {"call": {"phone": "+7 800 000-00-00"}}, widget={"thresholds": {"time_seconds": 0, "exit": False}}
    )
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(live.page_url(site))
    await ready(page, "widget")  # the runtime and the widget ran
    await page.wait_for_load_state("networkidle")
    config = await page.evaluate(
        "fetch(window.Perezvon.boot.b + '/site/config?token=' + window.Perezvon.boot.t).then(r => r.json())"
    )
    script = next(app["script"] for app in config["apps"] if app["key"] == "mobilepanel")
    widget = next(app["script"] for app in config["apps"] if app["key"] == "widget")
    assert script.endswith(".js") and any(url.endswith(widget) for url in requested)
    assert not any(script in url for url in requested), requested
    assert await page.locator(PANEL).count() == 0
    assert await page.evaluate("!!(window.Perezvon.readyAt || {}).mobilepanel") is False


async def test_the_demo_shows_the_panel_at_phone_width(live, perezvon_app, phone):
    from perezvon.core.demo import seed_demo

    demo = await seed_demo(perezvon_app)
    page = phone
    await page.goto(f"{live.base_url}/site/try?token={demo['site_token']}")
    bar = page.locator(f"{PANEL} .bar")
    await bar.wait_for(timeout=20000)
    assert await buttons(page) == ["call", "callback", "messengers"]  # the demo has no office to route to
    assert await page.locator(f"{PANEL} .b-call").get_attribute("href") == "tel:+74951234567"
    # the widget's corner button keeps clear of the bar (--perezvon-bottom)
    launcher = page.locator("[data-perezvon=widget] .btn")
    await launcher.wait_for(timeout=20000)
    await bar.evaluate("n => Promise.all(n.getAnimations().map(a => a.finished))")
    assert (await launcher.bounding_box())["y"] + 64 <= (await bar.bounding_box())["y"]
    shots = os.environ.get("PEREZVON_SCREENSHOTS")
    if shots:
        await page.screenshot(path=str(Path(shots) / "mobilepanel.png"))
        await page.locator(f"{PANEL} .b-callback").tap()
        await page.locator(f"{PANEL} .sheet").wait_for(timeout=5000)
        await page.wait_for_timeout(400)
        await page.screenshot(path=str(Path(shots) / "mobilepanel-callback.png"))
