"""The integrations' client scripts on a real customer page with the real site script (docs/integrations.md).

The page has stand-in ``ym`` and ``gtag`` counters that record their calls and Calltouch's
session variable; Metrika, Google Analytics and Calltouch are switched on for the connection.
"""
from __future__ import annotations

from sitehelpers import WIDGET, wait_for

from perezvon.core import enablement
from perezvon.core.models import Lead



async def test_goals_and_events_reach_the_counters_and_the_session_reaches_the_lead(live, make_site, page):
    site = await make_site(widget={"thresholds": {"time_seconds": 1, "exit": False, "scroll_percent": 0}})
    for key, settings in (("metrika", {"counter_id": "87654321"}),
                          ("google_analytics", {"measurement_id": "G-TEST12345"}),
                          ("calltouch", {"site_id": "54321", "api_token": "t", "session_variable": "call_value"})):
        await enablement.enable(site, enablement.INTEGRATION, key, settings)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(live.page_url(site, "analytics.html"))
    await page.locator(WIDGET).wait_for(timeout=20000)
    await page.wait_for_function("calls.length >= 2")
    calls = await page.evaluate("calls")  # the two scripts load side by side: either may come first
    assert sorted(calls, key=str) == [
        ["gtag", "event", "widget_shown", {"event_category": "PEREZVON", "send_to": "G-TEST12345"}],
        ["ym", 87654321, "reachGoal", "perezvon_widget_shown"],
    ]
    phone = page.locator(f"{WIDGET} input[type=tel]")
    await phone.click()
    await phone.press_sequentially("9123456789")
    await page.locator(f"{WIDGET} button.go").click()
    lead = (await wait_for(lambda: Lead.filter(connection_id=site.id).all(), message="the lead"))[0]
    assert lead.extra["calltouch"] == {"session_id": "ct-session-42"}
    await page.wait_for_function("calls.some(c => c[3] === 'perezvon_widget_lead')")
    calls = await page.evaluate("calls")
    assert ["ym", 87654321, "reachGoal", "perezvon_widget_lead"] in calls
    assert ["gtag", "event", "widget_lead", {"event_category": "PEREZVON", "send_to": "G-TEST12345"}] in calls
    assert errors == []
