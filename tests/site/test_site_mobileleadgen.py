"""The mobile lead generator in a real browser (docs/mobileleadgen.md): a bottom sheet on a 390×844
phone, shown by its conditions, styled by its settings, swiped down to close, five per session
together with the desktop lead generator, its lead stored and called back; on a 1280×800 desktop
its code is not even fetched."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from marshmallow import ValidationError
from sitehelpers import LEADGEN, RECORD_EVENTS, closed_now_schedule, events, ready, session_state, wait_for

from perezvon.core import enablement
from perezvon.core.models import Call, Lead

SHEET = "[data-perezvon=mobileleadgen] .box"
SCREEN = "[data-perezvon=mobileleadgen] [data-screen={}]"
PHONE = {"width": 390, "height": 844}


def generator(gid: str, **more) -> dict:
    base = {"id": gid, "name": f"Акция {gid}", "trigger": {"kind": "time", "time_seconds": 1}}
    base.update(more)
    return base


@pytest.fixture
def make_mobile_site(make_site):
    """A connection with the mobile lead generator on (settings as stored), and any other apps."""

    async def make(settings: dict, **more):
        site = await make_site(**more)
        await enablement.enable(site, enablement.APPLICATION, "mobileleadgen", settings)
        return site

    return make


@pytest.fixture
async def phone(browser):
    context = await browser.new_context(
        viewport=PHONE, is_mobile=True, has_touch=True, reduced_motion="reduce", locale="ru-RU"
    )
    page = await context.new_page()
    await page.add_init_script(RECORD_EVENTS)
    yield page
    await context.close()


async def leads_of(site) -> list[Lead]:
    return await Lead.filter(connection_id=site.id).all()


async def type_phone(page, digits: str = "9161234567") -> None:
    field = page.locator(f"{SHEET} input[type=tel]")
    await field.tap()
    await field.press_sequentially(digits)


async def swipe(page, from_y: float, to_y: float, x: float = 195) -> None:
    """A finger on the screen, as the phone's touch screen sends it (CDP touch events)."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": from_y}]})
    for i in range(1, 9):
        y = from_y + (to_y - from_y) * i / 8
        await cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    await cdp.detach()


async def test_shown_by_time_styled_by_its_settings_and_its_lead_called_back(
    live, make_mobile_site, phone, perezvon_app, perezvon_run_jobs
):
    page = phone
    site = await make_mobile_site(
        {
            "generators": [
                generator(
                    "spring",
                    sheet={"radius": 8, "overlay": "rgba(0, 0, 0, 0.5)"},
                    working={
                        "cover": {"text1": "Весенняя акция", "background": "#123456", "text1_size": 24},
                        "call": {"button_from": "rgb(255, 0, 0)", "button_to": "rgb(255, 0, 0)"},
                    },
                    filters=[{"target": "utm_source", "operator": "equals", "value": "vk"}],
                )
            ]
        }
    )
    await page.goto(live.page_url(site, query="?utm_source=vk&utm_medium=social"))
    sheet = page.locator(SHEET)
    await sheet.wait_for(timeout=20000)
    # a full-width sheet at the bottom of the screen
    rect = await sheet.bounding_box()
    assert rect["x"] == 0 and rect["width"] == 390 and abs(rect["y"] + rect["height"] - 844) < 1
    assert await sheet.get_attribute("data-variant") == "working"
    assert await page.locator(f"{SHEET} .cover h2").text_content() == "Весенняя акция"
    style = await sheet.evaluate(
        "b => { const c = b.querySelector('.cover'), s = getComputedStyle(b), h = getComputedStyle(c.querySelector('h2'));"
        " return [s.borderTopLeftRadius, getComputedStyle(c).backgroundColor, h.fontSize,"
        " getComputedStyle(b.parentNode.querySelector('.ov')).backgroundColor]; }"
    )
    assert style == ["8px", "rgb(18, 52, 86)", "24px", "rgba(0, 0, 0, 0.5)"]
    await page.locator(f"{SHEET} .cta").tap()  # the cover's button opens the form
    await page.locator(SCREEN.format("call")).wait_for(state="attached", timeout=10000)
    go = page.locator(f"{SHEET} button.go")
    assert await go.evaluate("b => getComputedStyle(b).backgroundImage") == (
        "linear-gradient(rgb(255, 0, 0), rgb(255, 0, 0))"
    )
    await type_phone(page)
    await go.tap()
    await page.locator(SCREEN.format("timer")).wait_for(state="attached", timeout=20000)
    lead = (await wait_for(lambda: leads_of(site), message="the lead"))[0]
    assert (lead.source, lead.phone, lead.channel, lead.utm_source) == ("mobileleadgen", "+79161234567", "social", "vk")
    assert lead.visit["trigger"] == "time" and lead.visit["rule"] == "Акция spring"
    assert perezvon_app.host.registry.lead_sources["mobileleadgen"].calltouch_code == 13
    shown = await events(page, "mobileleadgen_shown")
    assert shown[0]["leadgen_id"] == "spring" and shown[0]["format"] == "mobileleadgen"
    assert (await events(page, "mobileleadgen_lead"))[0]["lead_id"] == str(lead.id)
    # the simulator calls back, and the timer follows the call to its end
    await perezvon_run_jobs()
    state = page.locator(f"{SHEET} .timer .state")
    await wait_for(
        lambda: _visible_text(state, "Разговор состоялся. Спасибо!"), timeout=30, message="the call's end on the timer"
    )
    assert (await Call.get(lead_id=lead.id)).display_status == "successful"
    assert not await page.locator(f"{SHEET} .pv-live-timer").is_visible()
    # the page itself did not move sideways
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390


async def test_swiping_down_closes_the_sheet_a_short_swipe_does_not(live, make_mobile_site, phone):
    page = phone
    site = await make_mobile_site({"generators": [generator("one"), generator("two")]})
    await page.goto(live.page_url(site))
    sheet = page.locator(SHEET)
    await sheet.wait_for(timeout=20000)
    first = await sheet.get_attribute("data-leadgen")
    top = (await sheet.bounding_box())["y"]
    await swipe(page, top + 60, top + 90)  # 30 px: it springs back
    assert await sheet.count() == 1 and await sheet.get_attribute("data-leadgen") == first
    await page.wait_for_function(
        "!document.querySelector('[data-perezvon=mobileleadgen]').shadowRoot.querySelector('.box').style.transform"
    )
    await swipe(page, top + 60, top + 400)  # a real swipe down closes it
    # the next one comes up (one at a time), and × closes that one
    await wait_for(
        lambda: _leadgen_is(sheet, "two" if first == "one" else "one"), message="the second mobile lead generator"
    )
    await page.locator(f"{SHEET} .x").tap()
    await page.wait_for_function("performance.now() > 2500")
    assert await sheet.count() == 0
    state = await page.evaluate(f"JSON.parse(localStorage.getItem('perezvon:{site.token[:10]}'))")
    assert sorted(state["shown"]) == ["leadgen:mobile:one", "leadgen:mobile:two"]


async def test_five_per_session_across_both_lead_generators(live, make_mobile_site, phone):
    page = phone
    site = await make_mobile_site(
        {"generators": [generator(f"m{i}") for i in range(4)]},
        leadgen={"generators": [generator(f"d{i}") for i in range(4)]},
    )
    await page.goto(live.page_url(site))
    seen = []
    for _ in range(5):  # both apps queue up: one pop-up at a time
        both = page.locator(f"{SHEET}, {LEADGEN}")
        await both.first.wait_for(timeout=20000)
        seen.append(await both.first.get_attribute("data-leadgen"))
        await page.keyboard.press("Escape")
    assert len(set(seen)) == 5
    assert any(s.startswith("m") for s in seen) and any(s.startswith("d") for s in seen)
    await page.wait_for_function("performance.now() > 3000")
    assert await page.locator(f"{SHEET}, {LEADGEN}").count() == 0  # the other three never show
    state = await page.evaluate(f"JSON.parse(localStorage.getItem('perezvon:{site.token[:10]}'))")
    assert len([k for k in state["shown"] if k.startswith("leadgen:")]) == 5
    await page.reload()
    await ready(page, "mobileleadgen")
    await page.wait_for_function("performance.now() > 2500")
    assert await page.locator(f"{SHEET}, {LEADGEN}").count() == 0


async def test_five_desktop_generators_seen_leave_no_room_for_a_mobile_one(live, make_mobile_site, browser):
    site = await make_mobile_site({"generators": [generator("late")]})
    shown = {f"leadgen:d{i}": 1 for i in range(5)}
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = await context.new_page()
        await page.add_init_script(session_state(site.token, minutes_ago=5, shown=shown))
        await page.goto(live.page_url(site))
        await ready(page, "mobileleadgen")
        await page.wait_for_function("performance.now() > 2500")
        assert await page.locator(SHEET).count() == 0
    finally:
        await context.close()


async def test_scroll_and_exit_triggers_on_a_phone(live, make_mobile_site, phone):
    page = phone
    site = await make_mobile_site(
        {
            "generators": [
                generator("down", trigger={"kind": "scroll", "scroll_percent": 50, "activation_delay_seconds": 0}),
                generator("back", trigger={"kind": "exit", "exit_after_seconds": 1}),
            ]
        }
    )
    await page.goto(live.page_url(site))
    await ready(page, "mobileleadgen")
    await page.evaluate("window.scrollTo(0, 400)")
    await page.wait_for_function("performance.now() > 1500")
    assert await page.locator(SHEET).count() == 0  # not far enough down, not back up
    await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    sheet = page.locator(SHEET)
    await sheet.wait_for(timeout=20000)
    assert await sheet.get_attribute("data-leadgen") == "down"
    await page.keyboard.press("Escape")
    await page.wait_for_timeout(500)
    await page.evaluate("window.scrollTo(0, 200)")  # a quick scroll back up: leaving
    await sheet.wait_for(timeout=20000)
    assert await sheet.get_attribute("data-leadgen") == "back"
    triggers = [e["trigger"] for e in await events(page, "mobileleadgen_shown")]
    assert triggers == ["scroll", "exit"]


async def test_period_channel_and_url_filters(live, make_mobile_site, phone):
    page = phone
    today = dt.date.today()
    past = {"active_from": str(today - dt.timedelta(days=30)), "active_to": str(today - dt.timedelta(days=20))}
    site = await make_mobile_site(
        {
            "generators": [
                generator("future", active_from=str(today + dt.timedelta(days=2))),
                generator("ended", renew=False, **past),
                generator("ads-only", channels=["ads"]),
                generator("off", enabled=False),
                generator("other-page", filters=[{"target": "url", "operator": "contains", "value": "/catalog/"}]),
                generator("renewed", renew=True, **past),
            ]
        }
    )
    await page.goto(live.page_url(site))
    sheet = page.locator(SHEET)
    await sheet.wait_for(timeout=20000)
    assert await sheet.get_attribute("data-leadgen") == "renewed"
    await page.keyboard.press("Escape")
    await page.wait_for_function("performance.now() > 2500")
    assert await sheet.count() == 0


async def test_off_hours_form_asks_for_a_time(live, make_mobile_site, phone):
    page = phone
    site = await make_mobile_site(
        {"generators": [generator("night", offhours={"call": {"form_on": "time", "form_delay_seconds": 0.2}})]},
        schedule=closed_now_schedule(),
        timezone="UTC",
    )
    await page.goto(live.page_url(site))
    sheet = page.locator(SHEET)
    await sheet.wait_for(timeout=20000)
    assert await sheet.get_attribute("data-variant") == "offhours"
    await page.locator(SCREEN.format("call")).wait_for(state="attached", timeout=10000)  # by time, untouched
    assert await page.locator(f"{SHEET} form select").count() == 2
    await type_phone(page)
    await page.locator(f"{SHEET} button.go").tap()
    await page.locator(SCREEN.format("timer")).wait_for(state="attached", timeout=20000)
    assert await page.locator(f"{SHEET} .timer .when").count() == 1
    lead = (await wait_for(lambda: leads_of(site), message="the off-hours lead"))[0]
    assert lead.source == "mobileleadgen" and lead.preferred_at is not None
    assert (await events(page, "offhours_lead"))[0]["leadgen_id"] == "night"


async def test_on_a_desktop_its_code_is_not_fetched_and_nothing_shows(live, make_mobile_site, page):
    site = await make_mobile_site({"generators": [generator("phone-only")]}, leadgen={"generators": [{"id": "desk"}]})
    fetched = []
    page.on("request", lambda request: fetched.append(request.url))
    await page.goto(live.page_url(site))
    await ready(page, "leadgen")
    await page.wait_for_function("performance.now() > 2500")
    assert await page.locator("[data-perezvon=mobileleadgen]").count() == 0
    assert not [url for url in fetched if "app-mobileleadgen" in url]
    assert any("app-leadgen" in url for url in fetched)  # the desktop one is there
    assert await page.evaluate("window.Perezvon.readyAt.mobileleadgen") is None


async def test_the_site_config_marks_it_for_phones(perezvon_client, make_mobile_site):
    site = await make_mobile_site({"generators": [generator("a"), generator("b", enabled=False)]})
    config = (await perezvon_client.get(f"/site/config?token={site.token}")).json()
    app = {a["key"]: a for a in config["apps"]}["mobileleadgen"]
    assert app["max_width"] == 768 and app["source"] == "mobileleadgen"
    assert [g["id"] for g in app["config"]["generators"]] == ["a"]  # switched-off ones stay home
    assert app["config"]["max_per_session"] == 5
    assert {"mobileleadgen_shown", "mobileleadgen_lead"} <= set(config["events"])
    loader = (await perezvon_client.get(f"/inject?token={site.token}")).text
    assert json.dumps({app["script"]: 768}, separators=(",", ":"))[1:-1] in loader


def test_bad_settings_are_refused_field_by_field(perezvon_app):
    schema = perezvon_app.host.registry.applications["mobileleadgen"].settings_schema()
    bad = {
        "generators": [
            {"id": "a", "sheet": {"overlay": "red; background:url(x)"}},
            {"id": "b c", "working": {"cover": {"background_image": "javascript:alert(1)"}}},
            {"id": "d", "trigger": {"kind": "shake"}, "active_from": "2026-05-01", "active_to": "2026-04-01"},
        ]
    }
    with pytest.raises(ValidationError) as caught:
        schema.load(bad)
    errors = caught.value.messages["generators"]
    assert "overlay" in errors[0]["sheet"]
    assert "id" in errors[1] and "background_image" in errors[1]["working"]["cover"]
    assert "kind" in errors[2]["trigger"]
    with pytest.raises(ValidationError, match="its own id"):
        schema.load({"generators": [{"id": "x"}, {"id": "x"}]})
    with pytest.raises(ValidationError):
        schema.load({"generators": [{"id": f"g{i}"} for i in range(101)]})
    assert len(schema.load({"generators": [{"id": f"g{i}"} for i in range(100)]})["generators"]) == 100


async def test_a_screenshot_at_390_px(live, make_mobile_site, phone, tmp_path):
    """docs/img/mobileleadgen.png (``PEREZVON_SCREENSHOTS=docs/img`` refreshes it): the form screen."""
    page = phone
    site = await make_mobile_site(
        {"generators": [generator("shot", working={"call": {"form_on": "time", "form_delay_seconds": 0}})]}
    )
    await page.goto(live.page_url(site, page="shop.html"))
    await page.locator(SCREEN.format("call")).wait_for(state="attached", timeout=20000)
    await page.evaluate("document.activeElement && document.activeElement.blur()")
    target = Path(os.environ.get("PEREZVON_SCREENSHOTS") or tmp_path)
    path = target / "mobileleadgen.png"
    await page.screenshot(path=str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


async def _visible_text(locator, expected: str) -> bool:
    return await locator.is_visible() and (await locator.text_content()) == expected


async def _leadgen_is(locator, gid: str) -> bool:
    return await locator.count() == 1 and await locator.get_attribute("data-leadgen") == gid


async def test_the_demo_switches_it_on_with_one_promotion(perezvon_app, perezvon_client):
    from perezvon.core.demo import seed_demo

    demo = await seed_demo(perezvon_app)
    config = (await perezvon_client.get(f"/site/config?token={demo['site_token']}")).json()
    app = {a["key"]: a for a in config["apps"]}["mobileleadgen"]
    assert [g["id"] for g in app["config"]["generators"]] == ["demo-mobile"] and app["max_width"] == 768
    assert demo == await seed_demo(perezvon_app)  # idempotent
