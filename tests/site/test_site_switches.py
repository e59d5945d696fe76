"""A site that can neither call nor e-mail a lead: the visitor's app says so (docs/calls.md#a-site-that-cannot-call)."""

from __future__ import annotations

from sitehelpers import LEADGEN, WIDGET

from perezvon.core.models import Lead, OperatorNumber

REFUSED = "Сейчас на этом сайте нельзя заказать обратный звонок. Пожалуйста, позвоните в компанию."


async def test_the_widget_tells_the_visitor_when_the_site_cannot_call(live, make_site, page):
    site = await make_site(widget={"thresholds": {"time_seconds": 1, "scroll_percent": 0, "exit": False}})
    await OperatorNumber.filter(connection_id=site.id).delete()  # and no notification recipient
    await page.goto(live.page_url(site))
    await page.locator(WIDGET).wait_for(timeout=20000)
    phone = page.locator(f"{WIDGET} input[type=tel]")
    await phone.click()
    await phone.press_sequentially("9123456789")
    await page.locator(f"{WIDGET} button.go").click()
    alert = page.locator(f"{WIDGET} p.err[role=alert]")
    await alert.filter(has_text=REFUSED).wait_for(timeout=20000)
    assert await page.locator("[data-perezvon=widget] [data-screen=closing]").count() == 0  # no false promise
    assert not await Lead.filter(connection_id=site.id).exists()


async def test_the_lead_generator_tells_the_visitor_when_the_site_cannot_call(live, make_site, page):
    generator = {
        "id": "promo",
        "name": "Акция",
        "trigger": {"kind": "time", "time_seconds": 1},
        "working": {"call": {"curtain_on": "time", "curtain_delay_seconds": 0}},
    }
    site = await make_site(leadgen={"generators": [generator]})
    await OperatorNumber.filter(connection_id=site.id).delete()
    await page.goto(live.page_url(site))
    await page.locator("[data-perezvon=leadgen] [data-screen=call]").wait_for(state="attached", timeout=20000)
    phone = page.locator(f"{LEADGEN} input[type=tel]")
    await phone.click()
    await phone.press_sequentially("9123456789")
    await page.locator(f"{LEADGEN} button.go").click()
    await page.get_by_text(REFUSED).wait_for(timeout=20000)
    assert await page.locator("[data-perezvon=leadgen] [data-screen=timer]").count() == 0
    assert not await Lead.filter(connection_id=site.id).exists()
