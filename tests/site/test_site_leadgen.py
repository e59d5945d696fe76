"""Lead generators in a real browser on the local test site (docs/site-script.md#the-lead-generator)."""

from __future__ import annotations

import datetime as dt

from sitehelpers import LEADGEN, RECORD_EVENTS, closed_now_schedule, events, ready, session_state, wait_for

from perezvon.core.models import Lead

SCREEN = "[data-perezvon=leadgen] [data-screen={}]"


def generator(gid: str, **more) -> dict:
    base = {"id": gid, "name": f"Акция {gid}", "trigger": {"kind": "time", "time_seconds": 1}}
    base.update(more)
    return base


async def leads_of(site) -> list[Lead]:
    return await Lead.filter(connection_id=site.id).all()


async def test_cover_curtains_and_timer_and_the_lead(live, make_site, page):
    site = await make_site(
        leadgen={
            "generators": [
                generator(
                    "spring",
                    working={"call": {"curtain_on": "time", "curtain_delay_seconds": 0.5}},
                    filters=[{"target": "utm_source", "operator": "equals", "value": "vk"}],  # its rule
                )
            ]
        }
    )
    await page.add_init_script(RECORD_EVENTS)
    await page.goto(live.page_url(site, query="?utm_source=vk&utm_medium=social"))
    box = page.locator(LEADGEN)
    await box.wait_for(timeout=20000)
    assert await box.get_attribute("data-variant") == "working"
    assert await page.locator(f"{LEADGEN} .cover h2").text_content() == "Скидка 10% на первый заказ"
    await page.locator(SCREEN.format("call")).wait_for(state="attached", timeout=10000)  # curtains slid in
    phone = page.locator(f"{LEADGEN} input[type=tel]")
    await phone.click()
    await phone.press_sequentially("9161234567")
    await page.locator(f"{LEADGEN} button.go").click()
    await page.locator(SCREEN.format("timer")).wait_for(state="attached", timeout=20000)
    assert (await page.locator(f"{LEADGEN} .pv-live-timer").text_content()).startswith("00:3")
    lead = (await wait_for(lambda: leads_of(site), message="the lead"))[0]
    assert (lead.source, lead.phone, lead.channel, lead.utm_source) == ("leadgen", "+79161234567", "social", "vk")
    assert lead.visit["rule"] == "Акция spring" and lead.visit["trigger"] == "time"
    shown = await events(page, "leadgen_shown")
    assert shown[0]["leadgen_id"] == "spring" and shown[0]["offhours"] is False
    assert (await events(page, "leadgen_lead"))[0]["lead_id"] == str(lead.id)


async def test_a_generator_without_url_or_utm_filters_sends_no_rule(live, make_site, page):
    """Its name is "the rule that matched by URL or UTM" only when it has such filters (SPEC S4.3)."""
    site = await make_site(
        leadgen={
            "generators": [generator("plain", working={"call": {"curtain_on": "time", "curtain_delay_seconds": 0}})]
        }
    )
    await page.goto(live.page_url(site, query="?utm_source=vk"))
    await page.locator(SCREEN.format("call")).wait_for(state="attached", timeout=20000)
    phone = page.locator(f"{LEADGEN} input[type=tel]")
    await phone.click()
    await phone.press_sequentially("9161234568")
    await page.locator(f"{LEADGEN} button.go").click()
    lead = (await wait_for(lambda: leads_of(site), message="the lead"))[0]
    assert lead.visit.get("rule", "") == "" and lead.visit["trigger"] == "time"  # an empty rule is not stored


async def test_curtains_on_hover(live, make_site, page):
    site = await make_site(leadgen={"generators": [generator("hover", working={"call": {"curtain_on": "hover"}})]})
    await page.goto(live.page_url(site))
    await page.locator(LEADGEN).wait_for(timeout=20000)
    assert await page.locator(SCREEN.format("cover")).count() == 1
    await page.locator(f"{LEADGEN} .cover").hover()
    await page.locator(SCREEN.format("call")).wait_for(state="attached", timeout=10000)


async def test_scroll_trigger_waits_for_its_activation_delay(live, make_site, page):
    site = await make_site(
        leadgen={
            "generators": [
                generator("scroll", trigger={"kind": "scroll", "scroll_percent": 50, "activation_delay_seconds": 3})
            ]
        }
    )
    await page.goto(live.page_url(site))
    await ready(page, "leadgen")
    await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    assert await page.locator(LEADGEN).count() == 0  # scrolled, but the delay is not over
    await page.locator(LEADGEN).wait_for(timeout=20000)  # shown when the delay ends, as the page is scrolled
    assert await page.evaluate("performance.now()") >= 3000


async def test_each_once_per_session_and_five_per_session_at_most(live, make_site, page):
    site = await make_site(leadgen={"generators": [generator(f"g{i}") for i in range(7)]})
    await page.add_init_script(RECORD_EVENTS)
    await page.goto(live.page_url(site))
    seen = []
    for _ in range(5):  # they queue up: one at a time
        box = page.locator(LEADGEN)
        await box.wait_for(timeout=20000)
        seen.append(await box.get_attribute("data-leadgen"))
        await page.keyboard.press("Escape")
    assert len(set(seen)) == 5
    await page.wait_for_function("performance.now() > 2500")
    assert await page.locator(LEADGEN).count() == 0  # the sixth and seventh never show
    state = await page.evaluate(f"JSON.parse(localStorage.getItem('perezvon:{site.token[:10]}'))")
    assert sorted(k for k in state["shown"] if k.startswith("leadgen:")) == sorted(f"leadgen:{g}" for g in seen)
    await page.reload()
    await ready(page, "leadgen")
    await page.wait_for_function("performance.now() > 2500")
    assert await page.locator(LEADGEN).count() == 0


async def test_a_shown_generator_does_not_come_back_but_another_does(live, make_site, page):
    site = await make_site(leadgen={"generators": [generator("first"), generator("second")]})
    await page.add_init_script(session_state(site.token, minutes_ago=5, shown={"leadgen:first": 1}))
    await page.goto(live.page_url(site))
    box = page.locator(LEADGEN)
    await box.wait_for(timeout=20000)
    assert await box.get_attribute("data-leadgen") == "second"


async def test_period_channel_and_url_filters(live, make_site, page):
    today = dt.date.today()
    past = {"active_from": str(today - dt.timedelta(days=30)), "active_to": str(today - dt.timedelta(days=20))}
    site = await make_site(
        leadgen={
            "generators": [
                generator("future", active_from=str(today + dt.timedelta(days=2))),
                generator("ended", renew=False, **past),
                generator("ads-only", channels=["ads"]),
                generator("other-page", filters=[{"target": "url", "operator": "contains", "value": "/catalog/"}]),
                generator(
                    "renewed",
                    renew=True,
                    filters=[{"target": "utm_campaign", "operator": "not_equals", "value": "hide"}],
                    **past,
                ),
            ]
        }
    )
    await page.goto(live.page_url(site))
    box = page.locator(LEADGEN)
    await box.wait_for(timeout=20000)
    assert await box.get_attribute("data-leadgen") == "renewed"
    await page.keyboard.press("Escape")
    await page.wait_for_function("performance.now() > 2500")
    assert await page.locator(LEADGEN).count() == 0


async def test_off_hours_variant_asks_for_a_time(live, make_site, page):
    site = await make_site(leadgen={"generators": [generator("night")]}, schedule=closed_now_schedule(), timezone="UTC")
    await page.add_init_script(RECORD_EVENTS)
    await page.goto(live.page_url(site))
    box = page.locator(LEADGEN)
    await box.wait_for(timeout=20000)
    assert await box.get_attribute("data-variant") == "offhours"
    assert "отдыхаем" in await page.locator(f"{LEADGEN} .cover p").text_content()
    await page.locator(f"{LEADGEN} .cover").click()
    await page.locator(SCREEN.format("call")).wait_for(state="attached", timeout=10000)
    assert await page.locator(f"{LEADGEN} select").count() == 2
    phone = page.locator(f"{LEADGEN} input[type=tel]")
    await phone.click()
    await phone.press_sequentially("9161234567")
    await page.locator(f"{LEADGEN} button.go").click()
    await page.locator(SCREEN.format("timer")).wait_for(state="attached", timeout=20000)
    lead = (await wait_for(lambda: leads_of(site), message="the off-hours lead"))[0]
    assert lead.preferred_at is not None
    assert (await events(page, "offhours_lead"))[0]["leadgen_id"] == "night"


async def test_hostile_text_is_inert(live, make_site, page):
    hostile = "<img src=x onerror=window.__pwned=1>"
    site = await make_site(
        leadgen={
            "generators": [
                generator(
                    "evil",
                    name=hostile,
                    working={
                        "cover": {"text1": hostile, "text2": hostile},
                        "call": {"info_text": hostile, "form_title": hostile},
                    },
                )
            ]
        }
    )
    await page.goto(live.page_url(site))
    await page.locator(LEADGEN).wait_for(timeout=20000)
    assert await page.locator(f"{LEADGEN} .cover h2").text_content() == hostile
    assert await page.locator(f"{LEADGEN} img").count() == 0
    assert await page.evaluate("window.__pwned") is None


async def test_one_pop_up_at_a_time_the_widget_waits_for_the_lead_generator(live, make_site, page):
    site = await make_site(
        leadgen={"generators": [generator("first", trigger={"kind": "time", "time_seconds": 1})]},
        widget={"thresholds": {"time_seconds": 2, "exit": False, "scroll_percent": 0}},
    )
    await page.goto(live.page_url(site))
    await page.locator(LEADGEN).wait_for(timeout=20000)
    await page.wait_for_function("performance.now() > 3000")
    assert await page.locator("[data-perezvon=widget] .box").count() == 0  # its time came, but it waits
    await page.keyboard.press("Escape")
    await page.locator("[data-perezvon=widget] .box").wait_for(timeout=10000)
    assert await page.locator(LEADGEN).count() == 0


async def test_exit_intent_trigger(live, make_site, page):
    site = await make_site(
        leadgen={"generators": [generator("exit", trigger={"kind": "exit", "exit_after_seconds": 1})]}
    )
    await page.goto(live.page_url(site))
    await ready(page, "leadgen")
    await page.wait_for_function("performance.now() > 1500")

    async def left() -> bool:
        await page.evaluate("document.dispatchEvent(new MouseEvent('mouseout', {clientY: -2, bubbles: true}))")
        return await page.locator(LEADGEN).count() == 1

    await wait_for(left, message="the exit-intent lead generator")


async def test_keyboard_opens_the_curtains_and_escape_closes(live, make_site, page):
    site = await make_site(leadgen={"generators": [generator("keys", working={"call": {"curtain_on": "hover"}})]})
    await page.goto(live.page_url(site))
    await page.locator(LEADGEN).wait_for(timeout=20000)
    await page.mouse.move(1, 1)
    assert await page.locator(SCREEN.format("cover")).count() == 1
    await page.keyboard.press("Tab")  # from the close button to the cover
    await page.locator(SCREEN.format("call")).wait_for(state="attached", timeout=10000)
    await page.keyboard.press("Escape")
    assert await page.locator(LEADGEN).count() == 0


async def test_the_office_and_department_choice_when_the_connection_has_them(live, make_site, page):
    from perezvon.core.models import Department, Office

    site = await make_site(
        leadgen={"generators": [generator("offices", working={"call": {"curtain_delay_seconds": 0}})]},
        offices_enabled=True,
        offices_required=True,
        offices_title="Салон",
        departments_enabled=True,
        departments_required=True,
        departments_title="Отдел",
    )
    await Office.create(connection=site, name="Москва")
    spb = await Office.create(connection=site, name="Санкт-Петербург")
    sales = await Department.create(connection=site, name="Продажи")
    await page.goto(live.page_url(site))
    await page.locator(SCREEN.format("call")).wait_for(state="attached", timeout=20000)
    selects = page.locator(f"{LEADGEN} form select")
    assert await selects.count() == 2
    assert await page.locator(f"{LEADGEN} form .lbl").nth(0).text_content() == "Салон"
    phone = page.locator(f"{LEADGEN} input[type=tel]")
    await phone.click()
    await phone.press_sequentially("9161234567")
    await page.locator(f"{LEADGEN} button.go").click()
    assert await page.locator(f"{LEADGEN} select[aria-invalid=true]").count() == 2  # the intake requires them
    assert await leads_of(site) == []
    await selects.nth(0).select_option(label="Санкт-Петербург")
    await selects.nth(1).select_option(label="Продажи")
    await page.locator(f"{LEADGEN} button.go").click()
    await page.locator(SCREEN.format("timer")).wait_for(state="attached", timeout=20000)
    lead = (await wait_for(lambda: leads_of(site), message="the lead"))[0]
    assert (lead.office_id, lead.department_id, lead.phone) == (spb.id, sales.id, "+79161234567")


async def test_the_timer_follows_the_call_live_one_truth_at_a_time(
    live, make_site, page, perezvon_app, perezvon_run_jobs
):
    from perezvon.core.callbacks import leg_key
    from perezvon.core.models import Call, CallState

    site = await make_site(leadgen={"generators": [generator("live", working={"call": {"curtain_delay_seconds": 0}})]})
    await page.goto(live.page_url(site))
    await page.locator(SCREEN.format("call")).wait_for(state="attached", timeout=20000)
    phone = page.locator(f"{LEADGEN} input[type=tel]")
    await phone.click()
    await phone.press_sequentially("9161234567")
    await page.locator(f"{LEADGEN} button.go").click()
    await page.locator(SCREEN.format("timer")).wait_for(state="attached", timeout=20000)
    countdown, state = page.locator(f"{LEADGEN} .pv-live-timer"), page.locator(f"{LEADGEN} .timer .state")
    assert await countdown.is_visible() and not await state.is_visible()  # nobody is rung yet
    lead = (await wait_for(lambda: leads_of(site), message="the lead"))[0]
    call = await Call.get(lead_id=lead.id)
    await Call.filter(id=call.id).update(state=CallState.DIALLING, attempts_made=1)
    await perezvon_app.redis.set(leg_key(str(call.id)), "1:client")
    await wait_for(lambda: _visible_text(state, "Звоним вам — возьмите трубку!"), timeout=30, message="calling you")
    assert not await countdown.is_visible()  # no countdown beside a ringing phone
    await Call.filter(id=call.id).update(state=CallState.SCHEDULED, attempts_made=0)
    await perezvon_run_jobs()  # the simulator places the call
    await wait_for(lambda: _visible_text(state, "Разговор состоялся. Спасибо!"), timeout=30, message="the end")
    assert not await countdown.is_visible()


async def _visible_text(locator, expected: str) -> bool:
    return await locator.is_visible() and (await locator.text_content()) == expected
