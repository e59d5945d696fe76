"""The widget on a duplicate: "already requested" carries no call id, and the widget still closes well
(issue 13, item 11; docs/calls.md#duplicates)."""

from __future__ import annotations

import httpx
from sitehelpers import WIDGET, wait_for

from perezvon.core.models import Lead


async def test_a_duplicate_shows_the_closing_screen_and_follows_no_call(live, make_site, page):
    site = await make_site(widget={"thresholds": {"time_seconds": 1, "exit": False, "scroll_percent": 0}})
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        first = await client.post("/api/v1/leads", json={"token": site.token, "phone": "+79123456789", "consent": True})
    assert first.status_code == 201
    answers, state_requests = [], []
    page.on("response", lambda r: answers.append(r) if r.url.endswith("/api/v1/leads") else None)
    page.on("request", lambda r: state_requests.append(r.url) if "/state" in r.url else None)
    await page.goto(live.page_url(site))
    await page.locator(WIDGET).wait_for(timeout=20000)
    phone = page.locator(f"{WIDGET} input[type=tel]")
    await phone.click()
    await phone.press_sequentially("9123456789")
    await page.locator(f"{WIDGET} button.go").click()
    await page.locator("[data-perezvon=widget] [data-screen=closing]").wait_for(state="attached", timeout=20000)
    await wait_for(lambda: _answered(answers), message="the lead API's answer")
    assert answers[0].status == 200 and (await answers[0].json())["duplicate"] is True
    state = page.locator("[data-perezvon=widget] .state")
    assert (await state.text_content()).strip()  # the "we will call you" text, not an error
    await page.wait_for_timeout(2000)  # the state would be polled every 1.5 s
    assert state_requests == []  # nothing to follow, and no /calls/undefined/state
    assert await Lead.filter(connection_id=site.id).count() == 1


async def _answered(answers: list) -> bool:
    return bool(answers)
