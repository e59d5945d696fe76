from core.models import Lead
from conftest import wait_for  # noqa


async def test_smoke(live, make_site, page):
    site = await make_site(widget={"thresholds": {"time_seconds": 1}}, leadgen={"generators": [{"id": "a", "trigger": {"kind": "time", "time_seconds": 2}}]})
    logs = []
    page.on("console", lambda m: logs.append(m.text))
    page.on("pageerror", lambda e: logs.append(str(e)))
    await page.goto(live.page_url(site))
    await page.locator("[data-perezvon=widget] .box").wait_for(timeout=10000)
    await page.screenshot(path="/tmp/smoke1.png")
    print(logs)
