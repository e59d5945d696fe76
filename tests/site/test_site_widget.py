"""The widget in a real browser on a locally served test site (docs/site-script.md)."""

from __future__ import annotations

from sitehelpers import (
    LEADGEN,
    RECORD_EVENTS,
    WIDGET,
    LiveServer,
    closed_now_schedule,
    events,
    ready,
    session_state,
    wait_for,
)

from perezvon.core.models import Department, Lead, NotificationRecipient, Office

HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
SHORT_HOSTILE = "<img src=x onerror=window.__pwned=3>"


async def leads_of(site) -> list[Lead]:
    return await Lead.filter(connection_id=site.id).all()


async def fill_phone(page, digits: str = "9123456789") -> None:
    phone = page.locator(f"{WIDGET} input[type=tel]")
    await phone.click()
    await phone.press_sequentially(digits)


async def test_time_trigger_shows_the_widget_and_the_lead_lands_in_the_database(live, make_site, page):
    site = await make_site(
        widget={
            "thresholds": {"time_seconds": 1, "scroll_percent": 0, "exit": False},
            "look": {"format": "horizontal", "select_background": "#fef3c7", "button_from": "rgba(255, 0, 0, 0.5)"},
        },
        offices_enabled=True,
        offices_title="Салон",
    )
    await Office.create(connection=site, name="Москва", phone_selector="#site-phone")
    await page.add_init_script(RECORD_EVENTS)
    await page.goto(live.page_url(site, query="?utm_source=yandex&utm_medium=cpc&utm_campaign=spring"))
    box = page.locator(WIDGET)
    await box.wait_for(timeout=20000)
    assert await box.get_attribute("data-format") == "horizontal"
    assert await box.get_attribute("role") == "dialog" and await box.get_attribute("aria-modal") == "true"
    shown = await events(page, "widget_shown")
    assert shown[0]["trigger"] == "time" and shown[0]["format"] == "horizontal" and shown[0]["offhours"] is False
    assert shown[0]["app"] == "widget" and shown[0]["app_title"]

    # each element styled on its own: the drop-down, and the button's gradient with opacity
    assert (
        await page.locator(f"{WIDGET} select").evaluate("n => getComputedStyle(n).backgroundColor")
        == "rgb(254, 243, 199)"
    )
    assert "rgba(255, 0, 0, 0.5)" in await page.locator(f"{WIDGET} button.go").evaluate(
        "n => getComputedStyle(n).backgroundImage"
    )
    await page.locator(f"{WIDGET} select").select_option(label="Москва")
    await page.locator(f"{WIDGET} input[name=name]").fill("Иван")
    await fill_phone(page)
    assert await page.locator(f"{WIDGET} input[type=tel]").input_value() == "+7 (912) 345-67-89"
    await page.locator(f"{WIDGET} button.go").click()
    await page.locator("[data-perezvon=widget] [data-screen=closing]").wait_for(state="attached", timeout=20000)

    leads = await wait_for(lambda: leads_of(site), message="the lead in the database")
    lead = leads[0]
    assert (lead.source, lead.phone, lead.name) == ("widget", "+79123456789", "Иван")
    assert lead.channel == "ads" and (lead.utm_source, lead.utm_medium, lead.utm_campaign) == (
        "yandex",
        "cpc",
        "spring",
    )
    assert lead.visitor_id and len(lead.visitor_id) == 24
    assert lead.visit["pages"] == 1 and lead.visit["trigger"] == "time" and lead.visit["seconds_on_site"] >= 0
    assert lead.displayed_phone == "+7 (495) 111-22-33"  # read through the office's CSS selector
    assert lead.office_id is not None and lead.page_url.startswith(f"http://{site.domain}:")
    assert lead.extra == {"tracker": {"session": "abc-123"}}  # added by a lead_sending handler
    sent = await events(page, "widget_lead")
    assert sent[0]["lead_id"] == str(lead.id) and sent[0]["trigger"] == "time"
    # the closing screen counts down [LIVE_TIMER] from the connection's 36 seconds
    timer = page.locator("[data-perezvon=widget] .pv-live-timer")
    assert (await timer.text_content()).startswith("00:3")


async def test_a_single_page_site_counts_each_new_address_as_a_page(live, make_site, page):
    site = await make_site(widget={"thresholds": {"time_seconds": 1, "scroll_percent": 0, "exit": False}})
    await page.goto(live.page_url(site))
    await page.locator(WIDGET).wait_for(timeout=20000)
    await page.evaluate("""() => {
        history.pushState({}, "", "?step=2");  // a new address: a page
        history.pushState({}, "", "?step=2");  // the same address again: not one
        location.hash = "#details";            // the hash alone: not one
    }""")
    await page.evaluate("history.back()")  # from the hash back to ?step=2: the same page
    await page.wait_for_function("location.hash === ''")
    await page.evaluate("history.go(-2)")  # past the repeated entry, back to the landing address: a page
    await page.wait_for_function("location.search === ''")
    stored = f"JSON.parse(localStorage.getItem('perezvon:{site.token[:10]}')).pages"
    await page.wait_for_function(f"{stored} >= 3", timeout=5000)
    assert await page.evaluate(stored) == 3
    await fill_phone(page)
    await page.locator(f"{WIDGET} button.go").click()
    leads = await wait_for(lambda: leads_of(site), message="the lead in the database")
    assert leads[0].visit["pages"] == 3


async def test_exit_intent_fires_only_after_its_delay(live, make_site, page):
    site = await make_site(
        widget={"thresholds": {"time_seconds": 0, "scroll_percent": 0, "exit": True, "exit_after_seconds": 2}}
    )
    await page.add_init_script(RECORD_EVENTS)
    await page.goto(live.page_url(site))
    await ready(page)
    leave = "document.dispatchEvent(new MouseEvent('mouseout', {clientY: -2, bubbles: true}))"
    await page.evaluate(leave)  # too early: before exit_after_seconds
    assert await page.locator(WIDGET).count() == 0
    await page.wait_for_function("performance.now() > 2500")

    async def left() -> bool:
        await page.evaluate(leave)
        return await page.locator(WIDGET).count() == 1

    await wait_for(left, message="the exit-intent widget")
    assert (await events(page, "widget_shown"))[0]["trigger"] == "exit"
    # the look for the exit trigger is its own (defaults: an "already leaving?" title)
    assert "уходите" in await page.locator(f"{WIDGET} h2").text_content()


async def test_scroll_trigger(live, make_site, page):
    site = await make_site(widget={"thresholds": {"time_seconds": 0, "exit": False, "scroll_percent": 50}})
    await page.add_init_script(RECORD_EVENTS)
    await page.goto(live.page_url(site))
    await ready(page)
    await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight * 0.2)")
    assert await page.locator(WIDGET).count() == 0
    await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    await page.locator(WIDGET).wait_for(timeout=20000)
    assert (await events(page, "widget_shown"))[0]["trigger"] == "scroll"


async def test_once_per_session_and_the_delay_between_sessions(live, make_site, page):
    site = await make_site(
        widget={"thresholds": {"time_seconds": 1, "exit": False, "scroll_percent": 0}, "hashes": [{"name": "callme"}]}
    )
    url = live.page_url(site)
    await page.goto(url)
    await page.locator(WIDGET).wait_for(timeout=20000)
    await page.keyboard.press("Escape")
    assert await page.locator(WIDGET).count() == 0
    # the same session: the widget has fired once, so not again
    await page.add_init_script(RECORD_EVENTS)
    await page.reload()
    await ready(page)
    await page.wait_for_function("performance.now() > 2500")
    assert await page.locator(WIDGET).count() == 0
    state = await page.evaluate(f"JSON.parse(localStorage.getItem('perezvon:{site.token[:10]}'))")
    assert state["pages"] == 2 and "widget" in state["shown"]

    # 50 minutes after arrival: the 45-minute session is over, the 15-minute delay runs: nothing fires
    gap = await page.context.browser.new_context()
    try:
        other = await gap.new_page()
        await other.add_init_script(session_state(site.token, minutes_ago=50))
        await other.goto(url)
        await ready(other)
        await other.wait_for_function("performance.now() > 2500")
        assert await other.locator(WIDGET).count() == 0
        # ...but a HASH link is the visitor's own request and still opens it
        await other.click("#hash-link")
        await other.locator(WIDGET).wait_for(timeout=10000)
    finally:
        await gap.close()

    # 61 minutes after arrival: a new session, the widget fires again
    fresh = await page.context.browser.new_context()
    try:
        other = await fresh.new_page()
        await other.add_init_script(session_state(site.token, minutes_ago=61, shown={"widget": 1}))
        await other.goto(url)
        await other.locator(WIDGET).wait_for(timeout=20000)
    finally:
        await fresh.close()


async def test_url_rules_the_heaviest_wins_and_utm_rules_can_forbid(live, make_site, page):
    rules = [
        {"name": "light", "target": "url", "operator": "contains", "value": "/t/", "weight": 5, "format": "horizontal"},
        {
            "name": "heavy",
            "target": "url",
            "operator": "starts_with",
            "value": "http://",
            "weight": 10,
            "format": "vertical",
            "look": {"title": "Правило по URL"},
        },
        {
            "name": "never",
            "target": "url",
            "operator": "equals",
            "value": "http://elsewhere.example/",
            "weight": 99,
            "show": False,
        },
        {
            "name": "ended",
            "target": "url",
            "operator": "not_contains",
            "value": "zzz",
            "weight": 50,
            "format": "edge",
            "date_from": "2020-01-01",
            "date_to": "2020-12-31",
        },
        {
            "name": "hide-partner",
            "target": "utm_source",
            "operator": "equals",
            "value": "partner",
            "weight": 100,
            "show": False,
        },
    ]
    site = await make_site(
        widget={"thresholds": {"time_seconds": 1, "exit": False, "scroll_percent": 0}, "rules": rules}
    )
    await page.add_init_script(RECORD_EVENTS)
    await page.goto(live.page_url(site))
    box = page.locator(WIDGET)
    await box.wait_for(timeout=20000)
    assert await box.get_attribute("data-format") == "vertical"
    assert await page.locator(f"{WIDGET} h2").text_content() == "Правило по URL"
    assert (await events(page, "widget_shown"))[0]["rule"] == "heavy"
    await fill_phone(page)
    await page.locator(f"{WIDGET} button.go").click()
    lead = (await wait_for(lambda: leads_of(site), message="the lead"))[0]
    assert lead.visit["rule"] == "heavy"  # the rule's name is spoken to the operator (docs/calls.md#announcements)

    hidden = await page.context.browser.new_context()
    try:
        other = await hidden.new_page()
        await other.add_init_script(RECORD_EVENTS)
        await other.goto(live.page_url(site, query="?utm_source=partner"))
        await ready(other)
        await other.wait_for_function("performance.now() > 2500")
        assert await other.locator(WIDGET).count() == 0
        assert await other.locator("[data-perezvon=widget] .btn").count() == 0  # no call button either
    finally:
        await hidden.close()


async def test_channel_rules(live, make_site, page):
    site = await make_site(
        widget={
            "thresholds": {"time_seconds": 1, "exit": False, "scroll_percent": 0},
            "channels": {"social": {"show": False}, "ads": {"format": "edge"}},
        }
    )
    await page.goto(live.page_url(site, query="?gclid=abc"))
    box = page.locator(WIDGET)
    await box.wait_for(timeout=20000)
    assert await box.get_attribute("data-format") == "edge"

    social = await page.context.browser.new_context()
    try:
        other = await social.new_page()
        await other.goto(live.page_url(site, query="?utm_source=vk&utm_medium=social"))
        await ready(other)
        await other.wait_for_function("performance.now() > 2500")
        assert await other.locator(WIDGET).count() == 0
    finally:
        await social.close()


async def test_hash_links_open_the_widget_configured_for_them(live, make_site, page):
    site = await make_site(
        widget={
            "thresholds": {"time_seconds": 0, "exit": False, "scroll_percent": 0},
            "hashes": [{"name": "callme", "format": "square", "look": {"title": "Заказ звонка по ссылке"}}],
        }
    )
    await page.add_init_script(RECORD_EVENTS)
    await page.goto(live.page_url(site))
    await ready(page)
    await page.click("#plain-hash")  # a hash no widget is configured for
    assert await page.locator(WIDGET).count() == 0
    await page.click("#hash-link")
    await page.locator(WIDGET).wait_for(timeout=10000)
    assert await page.locator(f"{WIDGET} h2").text_content() == "Заказ звонка по ссылке"
    opened = await events(page, "widget_opened")
    assert opened and opened[0]["trigger"] == "hash"
    # opened straight from a URL carrying the hash, too
    await page.goto(live.page_url(site, page="index.html#callme"))
    await page.locator(WIDGET).wait_for(timeout=10000)


async def test_off_hours_look_needs_a_call_time_and_the_lead_carries_it(live, make_site, page):
    site = await make_site(
        widget={"offhours_thresholds": {"time_seconds": 1, "exit": False, "scroll_percent": 0}},
        schedule=closed_now_schedule(),
        timezone="UTC",
    )
    await page.add_init_script(RECORD_EVENTS)
    await page.goto(live.page_url(site))
    await page.locator(WIDGET).wait_for(timeout=20000)
    assert "отдыхаем" in await page.locator(f"{WIDGET} h2").text_content()
    selects = page.locator(f"{WIDGET} select")
    assert await selects.count() == 2  # day and time, required
    await selects.nth(0).select_option(value="")  # the visitor clears the day: the time is missing
    await fill_phone(page)
    await page.locator(f"{WIDGET} button.go").click()
    assert "время" in (await page.locator(f"{WIDGET} .err").all_text_contents()).__str__()
    assert await leads_of(site) == []
    await selects.nth(0).select_option(index=1)
    chosen = int(await selects.nth(1).input_value())
    await page.locator(f"{WIDGET} button.go").click()
    await page.locator("[data-perezvon=widget] [data-screen=closing-offhours]").wait_for(
        state="attached", timeout=20000
    )
    lead = (await wait_for(lambda: leads_of(site), message="the off-hours lead"))[0]
    assert int(lead.preferred_at.timestamp() * 1000) == chosen
    assert (await events(page, "offhours_lead"))[0]["offhours"] is True
    assert (await events(page, "widget_lead"))[0]["offhours"] is True


async def test_required_office_and_department_and_consent(live, make_site, page):
    site = await make_site(
        widget={
            "thresholds": {"time_seconds": 1, "exit": False, "scroll_percent": 0},
            "look": {"name_field": "required"},
        },
        offices_enabled=True,
        offices_required=True,
        offices_title="Офис",
        departments_enabled=True,
        departments_required=True,
        departments_title="Отдел",
    )
    await Office.create(connection=site, name="Москва", phone_selector="#site-phone")
    spb = await Office.create(connection=site, name="Санкт-Петербург", phone_selector="#spb-phone")
    sales = await Department.create(connection=site, name="Продажи")
    await page.goto(live.page_url(site))
    await page.locator(WIDGET).wait_for(timeout=20000)
    await fill_phone(page, "91234")  # incomplete
    await page.locator(f"{WIDGET} input[type=checkbox]").uncheck()
    await page.locator(f"{WIDGET} button.go").click()
    invalid = page.locator(f"{WIDGET} [aria-invalid=true]")
    assert await invalid.count() == 4  # office, department, name, phone
    assert "согласие" in await page.locator(f"{WIDGET} label.ok").text_content()
    await page.locator(f"{WIDGET} select").nth(0).select_option(label="Санкт-Петербург")
    await page.locator(f"{WIDGET} select").nth(1).select_option(label="Продажи")
    await page.locator(f"{WIDGET} input[name=name]").fill("Ольга")
    await page.locator(f"{WIDGET} input[type=tel]").click()
    await page.keyboard.press("End")
    await page.locator(f"{WIDGET} input[type=tel]").press_sequentially("56789")
    assert await page.locator(f"{WIDGET} input[type=tel]").input_value() == "+7 (912) 345-67-89"
    await page.locator(f"{WIDGET} button.go").click()
    assert await page.locator("[data-perezvon=widget] [data-screen=form]").count() == 1
    assert await leads_of(site) == []  # no lead without consent (152-FZ)
    await page.locator(f"{WIDGET} input[type=checkbox]").check()
    await page.locator(f"{WIDGET} button.go").click()
    lead = (await wait_for(lambda: leads_of(site), message="the lead"))[0]
    assert (lead.office_id, lead.department_id, lead.name) == (spb.id, sales.id, "Ольга")
    assert lead.displayed_phone == "8 812 444-55-66"  # the chosen office's number on the site


async def test_hostile_text_in_settings_and_input_is_rendered_as_text(live, make_site, page):
    site = await make_site(
        widget={
            "thresholds": {"time_seconds": 1, "exit": False, "scroll_percent": 0},
            "look": {
                "title": HOSTILE,
                "text": HOSTILE,
                "button_text": SHORT_HOSTILE,
                "disclaimer": HOSTILE + " [LINK1]",
                "link1_text": HOSTILE,
                "link1_url": "https://example.com/privacy",
            },
        }
    )
    await page.goto(live.page_url(site))
    await page.locator(WIDGET).wait_for(timeout=20000)
    assert await page.locator(f"{WIDGET} h2").text_content() == HOSTILE
    assert await page.locator(f"{WIDGET} img").count() == 0 and await page.locator(f"{WIDGET} script").count() == 0
    await page.locator(f"{WIDGET} input[name=name]").fill(HOSTILE)
    await fill_phone(page)
    await page.locator(f"{WIDGET} button.go").click()
    lead = (await wait_for(lambda: leads_of(site), message="the lead"))[0]
    assert lead.name == HOSTILE[:200]
    assert await page.evaluate("window.__pwned") is None


async def test_keyboard_focus_stays_inside_and_escape_closes(live, make_site, page):
    site = await make_site(widget={"thresholds": {"time_seconds": 0, "exit": False, "scroll_percent": 0}})
    await page.goto(live.page_url(site))
    await ready(page)
    await page.locator("[data-perezvon=widget] .btn").focus()
    await page.keyboard.press("Enter")
    await page.locator(WIDGET).wait_for(timeout=10000)
    inside = "document.querySelector('[data-perezvon=widget]').shadowRoot.activeElement !== null"
    await page.wait_for_function(inside)
    for _ in range(12):  # tab round the whole dialog more than once
        await page.keyboard.press("Tab")
        assert await page.evaluate(inside)
    for _ in range(3):
        await page.keyboard.press("Shift+Tab")
        assert await page.evaluate(inside)
    label = await page.locator(f"{WIDGET} .x").get_attribute("aria-label")
    assert label == "Закрыть"
    await page.keyboard.press("Escape")
    assert await page.locator(WIDGET).count() == 0
    # focus goes back to the button that opened it
    assert (
        await page.evaluate("document.querySelector('[data-perezvon=widget]').shadowRoot.activeElement.className")
        == "btn right"
    )


async def test_usable_on_a_360_pixel_phone(live, make_site, browser):
    site = await make_site(
        widget={"thresholds": {"time_seconds": 1, "exit": False, "scroll_percent": 0}, "look": {"format": "horizontal"}}
    )
    context = await browser.new_context(viewport={"width": 360, "height": 640}, is_mobile=True, has_touch=True)
    try:
        page = await context.new_page()
        await page.goto(live.page_url(site))
        box = page.locator(WIDGET)
        await box.wait_for(timeout=20000)
        rect = await box.bounding_box()
        assert rect["x"] >= 0 and rect["x"] + rect["width"] <= 360
        button = await page.locator(f"{WIDGET} button.go").bounding_box()
        assert button["x"] >= 0 and button["x"] + button["width"] <= 360 and button["height"] >= 44
        await page.locator(f"{WIDGET} input[type=tel]").tap()
        await page.locator(f"{WIDGET} input[type=tel]").press_sequentially("9123456789")
        await page.locator(f"{WIDGET} button.go").tap()
        await wait_for(lambda: leads_of(site), message="the lead from a phone")
        # the page itself did not move: the script adds no layout
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    finally:
        await context.close()


async def test_live_call_state_follows_the_call(live, make_site, page, perezvon_app, perezvon_run_jobs):
    from perezvon.core.callbacks import leg_key
    from perezvon.core.models import Call, CallState

    site = await make_site(widget={"thresholds": {"time_seconds": 1, "exit": False, "scroll_percent": 0}})
    await page.goto(live.page_url(site))
    await page.locator(WIDGET).wait_for(timeout=20000)
    await fill_phone(page)
    await page.locator(f"{WIDGET} button.go").click()
    await page.locator("[data-perezvon=widget] [data-screen=closing]").wait_for(state="attached", timeout=20000)
    state, countdown = page.locator("[data-perezvon=widget] .state"), page.locator(f"{WIDGET} .big")
    # one truth at a time: the countdown while nobody is rung yet, then only the call's state
    assert await countdown.is_visible() and not await state.is_visible()
    await wait_for(lambda: leads_of(site), message="the lead")
    # while the attempt rings one leg then the other, the screen says whom (as the engine notes it)
    call = await Call.get(lead_id=(await leads_of(site))[0].id)
    await Call.filter(id=call.id).update(state=CallState.DIALLING, attempts_made=1)
    for leg, text in (
        ("operator", "Звоним оператору — сейчас он узнает о вашей заявке"),
        ("client", "Звоним вам — возьмите трубку!"),
    ):
        await perezvon_app.redis.set(leg_key(str(call.id)), f"1:{leg}")
        await wait_for(lambda: _text_is(state, text), timeout=30, message=f"calling the {leg}")
    await Call.filter(id=call.id).update(state=CallState.SCHEDULED, attempts_made=0)
    await perezvon_run_jobs()  # the simulator places the call
    await wait_for(
        lambda: _text_is(state, "Разговор состоялся. Спасибо!"),
        timeout=30,
        message="the call state on the closing screen",
    )
    # no "Оператор позвонит вам через 00:21" beside "Разговор состоялся"
    assert await state.is_visible() and not await countdown.is_visible()
    assert await page.locator(f"{WIDGET} .pv-live-timer").is_hidden()


async def test_the_closing_screen_says_one_thing_when_the_countdown_ends_and_for_a_repeated_request(
    live, make_site, page
):
    site = await make_site(
        widget={"thresholds": {"time_seconds": 1, "exit": False, "scroll_percent": 0}}, timer_seconds=2
    )
    await page.goto(live.page_url(site))
    await page.locator(WIDGET).wait_for(timeout=20000)
    await fill_phone(page, "9161112233")
    await page.locator(f"{WIDGET} button.go").click()
    state, countdown = page.locator(f"{WIDGET} .state"), page.locator(f"{WIDGET} .big")
    await page.locator("[data-perezvon=widget] [data-screen=closing]").wait_for(state="attached", timeout=20000)
    # the connection's 2 s are over and nobody is rung yet: "getting the call ready", not "00:00"
    await wait_for(lambda: _visible_text(state, "Готовим звонок…"), timeout=20, message="the waiting line")
    assert not await countdown.is_visible()
    await page.keyboard.press("Escape")
    await page.locator("[data-perezvon=widget] .btn").click()
    await fill_phone(page, "9161112233")  # the same number again, within the duplicate window
    await page.locator(f"{WIDGET} button.go").click()
    await wait_for(
        lambda: _visible_text(state, "Вы уже оставили заявку с этим номером — мы вам перезвоним"),
        timeout=20,
        message="the already-requested line",
    )
    assert not await countdown.is_visible()
    assert len(await leads_of(site)) == 1


async def _visible_text(locator, expected: str) -> bool:
    return await locator.is_visible() and (await locator.text_content()) == expected


async def _text_is(locator, expected: str) -> bool:
    return (await locator.text_content()) == expected


async def test_nothing_runs_on_a_foreign_domain_or_a_switched_off_site(live, make_site, page):
    site = await make_site(widget={"thresholds": {"time_seconds": 1}}, leadgen={"generators": []})
    foreign = await make_site(widget={})
    # the snippet of `site` pasted on `foreign`'s domain
    url = live.page_url(foreign).replace(f"/t/{foreign.token}/", f"/t/{site.token}/")
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    await page.goto(url)
    await page.wait_for_load_state("load")
    assert await page.evaluate("typeof window.Perezvon") == "undefined"
    assert not [u for u in requests if "/site/" in u]  # not even the config was asked for
    site.is_on = False
    await site.save()
    await page.goto(live.page_url(site))
    await page.wait_for_load_state("load")
    assert await page.evaluate("typeof window.Perezvon") == "undefined"
    assert await page.locator(LEADGEN).count() == 0


async def test_a_page_view_costs_one_config_request_at_most(live, make_site, page):
    site = await make_site(widget={"thresholds": {"time_seconds": 0, "exit": False, "scroll_percent": 0}})
    sizes = (
        "performance.getEntriesByType('resource').filter(e => e.name.includes('/site/config')).map(e => e.transferSize)"
    )
    await page.goto(live.page_url(site))
    await ready(page)
    first = await page.evaluate(sizes)
    assert len(first) == 1 and first[0] > 0  # fetched over the network
    await page.goto(live.page_url(site, page="index.html?page=2"))
    await ready(page)
    assert await page.evaluate(sizes) == [0]  # the next page view takes it from the browser's cache


async def test_an_integration_script_gets_its_events_and_adds_to_the_lead(perezvon_app, make_site, page):
    """The contract integration plugins are written against (docs/site-script.md)."""
    from pathlib import Path

    from marshmallow import Schema, fields

    from perezvon.core import enablement
    from perezvon.core.registry import Integration

    class Settings(Schema):
        goal_prefix = fields.String(load_default="pv_")

    class Tracker(Integration):
        key = "tracker"
        title = "Test tracker"
        settings_schema = Settings
        client_script = Path(__file__).with_name("pages") / "tracker.js"

        def client_events(self, settings):
            return {name: settings["goal_prefix"] + name for name in ("widget_shown", "widget_lead", "lead_sending")}

    registry = perezvon_app.host.registry
    registry.integrations["tracker"] = Tracker()
    server = LiveServer(perezvon_app)  # its site script sees the integration
    await server.start()
    try:
        site = await make_site(widget={"thresholds": {"time_seconds": 1, "exit": False, "scroll_percent": 0}})
        await enablement.enable(site, enablement.INTEGRATION, "tracker", {"goal_prefix": "g_"})
        await page.goto(server.page_url(site))
        await page.locator(WIDGET).wait_for(timeout=20000)
        await page.wait_for_function("(window.__goals || []).includes('g_widget_shown')")
        await fill_phone(page)
        await page.locator(f"{WIDGET} button.go").click()
        lead = (await wait_for(lambda: leads_of(site), message="the lead"))[0]
        assert lead.extra == {"tracker": {"goals": ["g_widget_shown", "g_lead_sending"]}}
        await page.wait_for_function("(window.__goals || []).includes('g_widget_lead')")
    finally:
        await server.stop()
        del registry.integrations["tracker"]


async def test_call_times_read_on_the_visitors_clock_default_to_the_sites_convenient_time(live, make_site, browser):
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    opens = (now + dt.timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    convenient = opens + dt.timedelta(minutes=30)
    closes = min(opens + dt.timedelta(hours=4), opens.replace(hour=0) + dt.timedelta(days=1))
    schedule = {str(d): None for d in range(1, 8)}
    schedule[str(opens.isoweekday())] = [
        opens.strftime("%H:%M"),
        "24:00" if closes.hour == 0 else closes.strftime("%H:%M"),
    ]
    site = await make_site(
        widget={"offhours_thresholds": {"time_seconds": 1, "exit": False, "scroll_percent": 0}},
        schedule=schedule,
        timezone="UTC",
        convenient_time=convenient.strftime("%H:%M"),
    )
    context = await browser.new_context(timezone_id="Asia/Novosibirsk")  # UTC+7, the site is on UTC
    try:
        page = await context.new_page()
        await page.goto(live.page_url(site))
        await page.locator(WIDGET).wait_for(timeout=20000)
        chosen = page.locator(f"{WIDGET} select").nth(1)
        assert int(await chosen.input_value()) == int(convenient.timestamp() * 1000)
        label = await chosen.locator("option:checked").text_content()
        assert label == (convenient + dt.timedelta(hours=7)).strftime("%H:%M")
    finally:
        await context.close()


async def test_a_page_that_cannot_scroll_never_fires_the_scroll_trigger_and_english_pages_get_english_errors(
    live, make_site, page
):
    site = await make_site(
        widget={"thresholds": {"time_seconds": 0, "exit": False, "scroll_percent": 10}, "hashes": [{"name": "callme"}]}
    )
    await page.goto(live.page_url(site, page="short.html"))
    await ready(page)
    await page.wait_for_function("performance.now() > 1500")
    assert await page.locator(WIDGET).count() == 0
    await page.click("text=call me")
    await page.locator(f"{WIDGET} button.go").click()  # no phone
    assert await page.locator(f"{WIDGET} input[type=tel] ~ .err").text_content() == "Enter the full phone number"
    assert await page.locator(f"{WIDGET} .x").get_attribute("aria-label") == "Close"


async def test_once_per_session_holds_across_tabs(live, make_site, page):
    site = await make_site(widget={"thresholds": {"time_seconds": 2, "exit": False, "scroll_percent": 0}})
    await page.goto(live.page_url(site))
    await ready(page)
    other = await page.context.new_page()  # the same visitor, a second tab opened meanwhile
    await other.goto(live.page_url(site, page="index.html?tab=2"))
    await ready(other)
    await page.locator(WIDGET).wait_for(timeout=20000)
    await other.wait_for_function("performance.now() > 3500")
    assert await other.locator(WIDGET).count() == 0


async def test_a_lead_passed_on_by_e_mail_says_so_and_shows_no_countdown(live, make_site, page):
    # a delay before the call over 59 s: people are e-mailed, nobody is called (docs/calls.md#the-59-s-rule)
    site = await make_site(
        widget={"thresholds": {"time_seconds": 1, "exit": False, "scroll_percent": 0}},
        telephony={"first_call_delay_seconds": 60},
    )
    # over 59 s a lead needs someone to e-mail (docs/calls.md#the-59-s-rule)
    await NotificationRecipient.create(connection=site, email="desk@example.com")
    await page.goto(live.page_url(site))
    await page.locator(WIDGET).wait_for(timeout=20000)
    await fill_phone(page, "9161112244")
    await page.locator(f"{WIDGET} button.go").click()
    state = page.locator(f"{WIDGET} .state")
    await wait_for(
        lambda: _visible_text(state, "Заявка передана менеджеру — он свяжется с вами"), timeout=20, message="notified"
    )
    assert not await page.locator(f"{WIDGET} .big").is_visible()
