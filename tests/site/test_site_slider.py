"""The slider in a real browser on a locally served test site, on a phone (390x844) and a desktop
(1280x800): shown by its rules, styled by its settings, cards in order, a card click as an event,
a lead from the callback card stored and called back by the simulator, the keyboard (docs/slider.md).

``PEREZVON_SCREENSHOTS=docs/img`` also refreshes docs/img/slider.png and slider-phone.png."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sitehelpers import RECORD_EVENTS, closed_now_schedule, events, ready, wait_for

from perezvon.core import enablement
from perezvon.core.models import Call, Lead

SLIDER = "[data-perezvon=slider]"
PANEL = f"{SLIDER} .panel"
HOSTILE = '<img src=x onerror="window.__pwned=1">'
VIEWPORTS = {"phone": (390, 844), "desktop": (1280, 800)}

CARDS = [
    {"id": "call", "kind": "callback", "title": "Перезвоним за [TIMER_TIME] секунд", "text": "Бесплатно."},
    {
        "id": "promo",
        "kind": "promotion",
        "badge": "−10%",
        "title": "Скидка 10%",
        "text": "Только сегодня.",
        "details": "Закрепим скидку за вами.",
        "details_button": "Хочу скидку",
    },
    {"id": "hidden", "kind": "service", "title": "Не показывать", "enabled": False},
    {"id": "site", "kind": "link", "title": HOSTILE, "url": "https://example.com/route", "new_tab": True},
    {"id": "consult", "kind": "service", "title": "Консультация"},
]
LOOK = {
    "side": "left",
    "tab_label": "Акции",
    "tab_background": "#b91c1c",
    "tab_text_color": "#fefce8",
    "card_background": "rgba(254, 243, 199, 0.9)",
    "title": "Что вам нужно?",
}


async def slider_site(make_site, settings: dict | None = None, **fields):
    site = await make_site(**fields)
    await enablement.enable(site, enablement.APPLICATION, "slider", {"cards": CARDS, "look": LOOK, **(settings or {})})
    return site


@pytest.fixture(params=list(VIEWPORTS))
async def sized_page(request, browser):
    width, height = VIEWPORTS[request.param]
    phone = request.param == "phone"
    context = await browser.new_context(viewport={"width": width, "height": height}, is_mobile=phone, has_touch=phone)
    page = await context.new_page()
    page.width, page.height = width, height  # type: ignore[attr-defined]
    page.tap_or_click = (lambda loc: loc.tap()) if phone else (lambda loc: loc.click())  # type: ignore[attr-defined]
    yield page
    await context.close()


async def open_slider(page) -> None:
    tab = page.locator(f"{SLIDER} .tab")
    await tab.wait_for(timeout=20000)
    await page.tap_or_click(tab)
    await settled(page)


async def settled(page) -> None:
    """The panel has slid in (its animation is over)."""
    await page.locator(PANEL).wait_for(timeout=10000)
    await page.locator(PANEL).evaluate("n => Promise.all(n.getAnimations().map(a => a.finished))")


async def test_the_tab_opens_the_cards_in_order_styled_and_a_card_click_is_an_event(live, make_site, sized_page):
    page = sized_page
    site = await slider_site(make_site)
    await page.add_init_script(RECORD_EVENTS)
    await page.goto(live.page_url(site))
    tab = page.locator(f"{SLIDER} .tab")
    await tab.wait_for(timeout=20000)
    # a compact tab at the left edge, in the middle, in its colours
    box = await tab.bounding_box()
    assert box["x"] == 0 and box["width"] < 60 and abs(box["y"] + box["height"] / 2 - page.height / 2) < 2
    assert await tab.text_content() == "Акции"
    assert await tab.evaluate("n => getComputedStyle(n).backgroundColor") == "rgb(185, 28, 28)"
    assert await tab.get_attribute("aria-expanded") == "false"
    assert await events(page, "slider_opened") == []

    await open_slider(page)
    panel = page.locator(PANEL)
    assert await panel.get_attribute("role") == "dialog" and await panel.get_attribute("aria-modal") == "true"
    assert await page.locator(f"{PANEL} h2").text_content() == "Что вам нужно?"
    assert await tab.get_attribute("aria-expanded") == "true"
    rect = await panel.bounding_box()
    assert rect["x"] == 0 and rect["width"] <= page.width
    if page.width < 480:
        assert rect["width"] == page.width  # a full-width sheet on a phone
    # the cards in their order; the switched-off one never reached the browser
    ids = await page.locator(f"{SLIDER} .card").evaluate_all("ns => ns.map(n => n.dataset.card)")
    assert ids == ["call", "promo", "site", "consult"]
    card = page.locator(f"{SLIDER} .card[data-card=promo]")
    assert await card.evaluate("n => getComputedStyle(n).backgroundColor") == "rgba(254, 243, 199, 0.9)"
    assert await page.locator(f"{SLIDER} .card[data-card=promo] .badge").text_content() == "−10%"
    assert await page.locator(f"{SLIDER} .card[data-card=call] h3").text_content() == "Перезвоним за 36 секунд"
    # hostile text is text; a link card is a real link
    link = page.locator(f"{SLIDER} .card[data-card=site]")
    assert await link.evaluate("n => n.tagName") == "A"
    assert await link.get_attribute("href") == "https://example.com/route"
    assert await link.get_attribute("target") == "_blank" and "noopener" in await link.get_attribute("rel")
    assert await page.locator(f"{SLIDER} .card[data-card=site] h3").text_content() == HOSTILE
    assert await page.evaluate("window.__pwned") is None
    opened = await events(page, "slider_opened")
    assert len(opened) == 1 and opened[0]["app"] == "slider" and opened[0]["trigger"] == "button"

    # a promotion's card: the click is an event with the card's id, then its details
    await page.tap_or_click(card)
    await page.locator(f"{SLIDER} .details").wait_for()
    assert await page.locator(f"{SLIDER} .details p").text_content() == "Закрепим скидку за вами."
    clicks = await events(page, "slider_card_click")
    assert [(c["card"], c["kind"], c["action"], c["card_title"]) for c in clicks] == [
        ("promo", "promotion", "details", "Скидка 10%")
    ]
    # its button opens the callback form, which says what it is for; "back" returns to the details
    await page.tap_or_click(page.locator(f"{SLIDER} .details .go"))
    await page.locator(f"{SLIDER} form input[type=tel]").wait_for()
    assert await page.locator(f"{SLIDER} .intro .for").text_content() == "Скидка 10%"
    await page.tap_or_click(page.locator(f"{SLIDER} .back"))
    await page.locator(f"{SLIDER} .details").wait_for()
    await page.tap_or_click(page.locator(f"{SLIDER} .back"))
    await page.locator(f"{SLIDER} .card[data-card=consult]").wait_for()
    # a service card with no link opens the form
    await page.tap_or_click(page.locator(f"{SLIDER} .card[data-card=consult]"))
    await page.locator(f"{SLIDER} form input[type=tel]").wait_for()
    assert [c["card"] for c in await events(page, "slider_card_click")] == ["promo", "consult"]
    # the overlay closes it; the page never scrolls sideways
    if page.width >= 480:
        await page.locator(f"{SLIDER} .ov").click(position={"x": page.width - 5, "y": 5})
        assert await page.locator(PANEL).count() == 0
    assert await page.evaluate("document.documentElement.scrollWidth") <= page.width


async def test_shown_by_channel_and_url_rules(live, make_site, page):
    rules = [
        {"name": "all", "target": "url", "operator": "contains", "value": "/t/", "weight": 1, "show": False},
        {"name": "sale", "target": "url", "operator": "contains", "value": "sale=1", "weight": 5, "show": True},
        {
            "name": "no-yandex",
            "target": "utm_source",
            "operator": "equals",
            "value": "yandex",
            "weight": 9,
            "show": False,
        },
    ]
    site = await slider_site(make_site, {"display": {"channels": ["direct", "organic", "referral"], "rules": rules}})
    await page.add_init_script(RECORD_EVENTS)

    async def shown(query: str) -> bool:
        await page.goto(live.page_url(site, query=query))
        await ready(page, "slider")
        return await page.locator(f"{SLIDER} .tab").count() == 1

    assert not await shown("")  # the catch-all rule hides it
    assert await shown("?sale=1")  # the heavier rule shows it
    # a lead from the page with the rule carries the rule's name (spoken to the operator)
    await open_slider_desktop(page)
    await page.locator(f"{SLIDER} .card[data-card=call]").click()
    await fill_and_send(page)
    lead = (await wait_for(lambda: Lead.filter(connection_id=site.id).all(), message="the lead"))[0]
    assert lead.visit["rule"] == "sale" and lead.visit["trigger"] == "button"
    assert not await shown("?sale=1&utm_source=yandex")  # the heaviest hides it again
    # ads are not among its channels, whatever the rules say
    other = await page.context.browser.new_context()
    try:
        ads = await other.new_page()
        await ads.goto(live.page_url(site, query="?sale=1&utm_medium=cpc"))
        await ready(ads, "slider")
        assert await ads.locator(f"{SLIDER} .tab").count() == 0
    finally:
        await other.close()


async def open_slider_desktop(page) -> None:
    await page.locator(f"{SLIDER} .tab").click(timeout=20000)
    await settled(page)


async def fill_and_send(page, digits: str = "9123456789") -> None:
    phone = page.locator(f"{SLIDER} input[type=tel]")
    await phone.click()
    await phone.press_sequentially(digits)
    await page.locator(f"{SLIDER} button.go").click()


async def test_a_lead_from_the_callback_card_is_stored_and_called_back(
    live, make_site, sized_page, perezvon_app, perezvon_run_jobs
):
    page = sized_page
    site = await slider_site(make_site)
    await page.add_init_script(RECORD_EVENTS)
    await page.goto(live.page_url(site, query="?utm_source=vk&utm_medium=social"))
    await open_slider(page)
    await page.tap_or_click(page.locator(f"{SLIDER} .card[data-card=call]"))
    form = page.locator(f"{SLIDER} form")
    await form.wait_for()
    assert await page.locator(f"{SLIDER} .intro h3").text_content() == "Перезвоним за 36 секунд"
    # no lead without consent
    await page.locator(f"{SLIDER} .ok input").uncheck()
    phone = page.locator(f"{SLIDER} input[type=tel]")
    await page.tap_or_click(phone)
    await phone.press_sequentially("9161234567")
    assert await phone.input_value() == "+7 (916) 123-45-67"  # the shared phone input and its mask
    await page.tap_or_click(page.locator(f"{SLIDER} button.go"))
    assert "согласие" in (await page.locator(f"{SLIDER} .ok .err").text_content()).lower()
    assert await Lead.filter(connection_id=site.id).count() == 0
    await page.locator(f"{SLIDER} .ok input").check()
    await page.tap_or_click(page.locator(f"{SLIDER} button.go"))
    await page.locator(f"{PANEL}[data-screen=closing]").wait_for(timeout=20000)

    lead = (await wait_for(lambda: Lead.filter(connection_id=site.id).all(), message="the lead"))[0]
    assert (lead.source, lead.phone, lead.channel, lead.utm_source) == ("slider", "+79161234567", "social", "vk")
    assert lead.extra["slider"] == {"card": "call", "title": "Перезвоним за [TIMER_TIME] секунд", "kind": "callback"}
    assert lead.extra["tracker"] == {"session": "abc-123"}  # integrations still add theirs
    assert lead.visit["trigger"] == "button" and lead.visitor_id
    sent = await events(page, "slider_lead")
    assert sent[0]["lead_id"] == str(lead.id) and sent[0]["card"] == "call"

    # the simulator calls back; the closing screen follows the call to its end
    countdown, state = page.locator(f"{SLIDER} .big"), page.locator(f"{SLIDER} .state")
    assert await countdown.is_visible() and not await state.is_visible()
    await perezvon_run_jobs()
    call = await Call.get(lead_id=lead.id)
    assert call.state == "finished" and call.display_status == "successful"
    await wait_for(lambda: _visible_text(state, "Разговор состоялся. Спасибо!"), timeout=30, message="the call's end")
    assert not await countdown.is_visible()


async def _visible_text(locator, expected: str) -> bool:
    return await locator.is_visible() and (await locator.text_content()) == expected


async def test_off_hours_the_form_asks_for_a_time(live, make_site, page):
    site = await slider_site(make_site, schedule=closed_now_schedule(), timezone="UTC")
    await page.goto(live.page_url(site))
    await open_slider_desktop(page)
    await page.locator(f"{SLIDER} .card[data-card=call]").click()
    assert "отдыхаем" in await page.locator(f"{SLIDER} .intro h3").text_content()
    assert await page.locator(f"{SLIDER} form select").count() == 2
    await fill_and_send(page)
    await page.locator(f"{PANEL}[data-screen=closing-offhours]").wait_for(timeout=20000)
    lead = (await wait_for(lambda: Lead.filter(connection_id=site.id).all(), message="the lead"))[0]
    assert lead.preferred_at is not None and lead.source == "slider"


async def test_keyboard_focus_stays_inside_and_escape_closes(live, make_site, page):
    site = await slider_site(make_site)
    await page.goto(live.page_url(site))
    tab = page.locator(f"{SLIDER} .tab")
    await tab.wait_for(timeout=20000)
    await tab.focus()
    await page.keyboard.press("Enter")
    await page.locator(PANEL).wait_for()
    active = "document.querySelector('[data-perezvon=slider]').shadowRoot.activeElement"
    inside = f"!!{active} && !!{active}.closest('.panel')"
    await page.wait_for_function(inside)
    assert await page.evaluate(f"{active}.dataset.card") == "call"  # the first card has the focus
    for _ in range(10):  # round the whole panel more than once
        await page.keyboard.press("Tab")
        assert await page.evaluate(inside)
    for _ in range(3):
        await page.keyboard.press("Shift+Tab")
        assert await page.evaluate(inside)
    # Enter on a card is a click: the form, still inside
    await page.locator(f"{SLIDER} .card[data-card=consult]").focus()
    await page.keyboard.press("Enter")
    await page.locator(f"{SLIDER} form").wait_for()
    for _ in range(8):
        await page.keyboard.press("Tab")
        assert await page.evaluate(inside)
    assert await page.locator(f"{SLIDER} .x").get_attribute("aria-label") == "Закрыть"
    await page.keyboard.press("Escape")
    assert await page.locator(PANEL).count() == 0
    assert await page.evaluate(f"{active}.className") == "tab"  # focus back on the tab
    assert await tab.get_attribute("aria-expanded") == "false"


async def test_screenshots_for_the_docs(live, make_site, browser, perezvon_app, tmp_path):
    from perezvon.plugins.slider.demo import DEMO_CARDS

    target = Path(os.environ.get("PEREZVON_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    site = await make_site()
    await enablement.enable(site, enablement.APPLICATION, "slider", {"cards": DEMO_CARDS})
    for name, (width, height) in (("slider", (1280, 800)), ("slider-phone", (390, 844))):
        context = await browser.new_context(
            viewport={"width": width, "height": height}, reduced_motion="reduce", locale="ru-RU"
        )
        try:
            page = await context.new_page()
            await page.goto(live.page_url(site, page="shop.html"))
            await page.locator(f"{SLIDER} .tab").wait_for(timeout=20000)
            shots = [(f"{name}-tab", None)] if width > 480 else []
            shots.append((name, f"{SLIDER} .tab"))
            for shot, click in shots:
                if click:
                    await page.locator(click).click()
                    await page.locator(f"{SLIDER} .card").first.wait_for()
                    await page.mouse.move(width / 2, height - 2)
                path = target / f"{shot}.png"
                await page.screenshot(path=str(path))
                data = path.read_bytes()
                assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
        finally:
            await context.close()
