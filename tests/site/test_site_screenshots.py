"""Screenshots of every widget format and lead-generator screen, in a real browser.

Run with ``PEREZVON_SCREENSHOTS=docs/img`` to refresh the pictures README shows;
otherwise they go to a temp dir and the test only checks each one was drawn.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sitehelpers import LEADGEN, WIDGET, closed_now_schedule, ready

FORMATS = ("horizontal", "square", "vertical", "edge")


@pytest.fixture
def shots(tmp_path):
    target = Path(os.environ.get("PEREZVON_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    made = []

    async def shot(page, name: str) -> None:
        path = target / f"{name}.png"
        await page.screenshot(path=str(path))
        made.append(path)

    yield shot
    for path in made:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, path


@pytest.fixture
async def calm_page(browser):
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800}, reduced_motion="reduce", timezone_id="Europe/Moscow", locale="ru-RU"
    )
    yield await context.new_page()
    await context.close()


async def test_widget_formats_and_screens(live, make_site, calm_page, shots, browser):
    page = calm_page
    hashes = [{"name": f"f-{f}", "format": f} for f in FORMATS]
    site = await make_site(
        widget={"thresholds": {"time_seconds": 0, "exit": False, "scroll_percent": 0}, "hashes": hashes}
    )
    await page.goto(live.page_url(site, page="shop.html"))
    await ready(page)
    await shots(page, "site-with-call-button")
    for fmt in FORMATS:
        await page.evaluate("location.hash = ''")
        await page.evaluate(
            f"(() => {{ const a = document.createElement('a'); a.href = '#f-{fmt}'; "
            "document.body.appendChild(a); a.click(); a.remove(); })()"
        )
        await page.locator(WIDGET).wait_for(timeout=10000)
        await shots(page, f"widget-{fmt}")
        if fmt == "square":
            await page.locator(f"{WIDGET} .lnk").click()
            await page.locator("[data-perezvon=widget] [data-screen=time]").wait_for(state="attached")
            await shots(page, "widget-time-choice")
            await page.locator(f"{WIDGET} .lnk").click()  # back: no time chosen, call now
            phone = page.locator(f"{WIDGET} input[type=tel]")
            await phone.click()
            await phone.press_sequentially("9123456789")
            await page.locator(f"{WIDGET} button.go").click()
            await page.locator("[data-perezvon=widget] [data-screen^=closing]").wait_for(state="attached")
            await shots(page, "widget-closing")
        await page.keyboard.press("Escape")

    night = await make_site(
        widget={"offhours_thresholds": {"time_seconds": 1, "exit": False, "scroll_percent": 0}},
        schedule=closed_now_schedule(),
        timezone="UTC",
    )
    await page.goto(live.page_url(night, page="shop.html"))
    await page.locator(WIDGET).wait_for(timeout=20000)
    await shots(page, "widget-offhours")

    phone_context = await browser.new_context(
        viewport={"width": 360, "height": 720}, is_mobile=True, reduced_motion="reduce", timezone_id="Europe/Moscow"
    )
    try:
        mobile = await phone_context.new_page()
        await mobile.goto(live.page_url(site, page="shop.html#f-square"))
        await mobile.locator(WIDGET).wait_for(timeout=20000)
        await shots(mobile, "widget-360px")
    finally:
        await phone_context.close()


async def test_leadgen_screens(live, make_site, calm_page, shots):
    page = calm_page
    generator = {
        "id": "promo",
        "trigger": {"kind": "time", "time_seconds": 1},
        "working": {"call": {"curtain_on": "hover"}},
    }
    site = await make_site(leadgen={"generators": [generator]})
    await page.goto(live.page_url(site, page="shop.html"))
    await page.locator(LEADGEN).wait_for(timeout=20000)
    await page.mouse.move(5, 790)
    await shots(page, "leadgen-cover")
    cover = await page.locator(f"{LEADGEN} .cover").bounding_box()
    await page.mouse.move(cover["x"] + 100, cover["y"] + 100)  # the curtains slide in on hover
    await page.locator("[data-perezvon=leadgen] [data-screen=call]").wait_for(state="attached")
    await shots(page, "leadgen-call")
    phone = page.locator(f"{LEADGEN} input[type=tel]")
    await phone.click()
    await phone.press_sequentially("9161234567")
    await page.locator(f"{LEADGEN} button.go").click()
    await page.locator("[data-perezvon=leadgen] [data-screen=timer]").wait_for(state="attached", timeout=20000)
    await shots(page, "leadgen-timer")

    night = await make_site(
        leadgen={"generators": [dict(generator, working={})]}, schedule=closed_now_schedule(), timezone="UTC"
    )
    await page.goto(live.page_url(night, page="shop.html"))
    await page.locator(LEADGEN).wait_for(timeout=20000)
    cover = await page.locator(f"{LEADGEN} .cover").bounding_box()
    await page.mouse.click(cover["x"] + 100, cover["y"] + 100)  # a click opens the curtains as a hover does
    await page.locator("[data-perezvon=leadgen] [data-screen=call]").wait_for(state="attached")
    await shots(page, "leadgen-call-offhours")
