"""The integrations' client scripts on a real customer page with the real site script (docs/integrations.md).

The page has stand-in ``ym`` and ``gtag`` counters that record their calls and Calltouch's
session variable; Metrika, Google Analytics and Calltouch are switched on for the connection.
"""

from __future__ import annotations

import json

from sitehelpers import WIDGET, LiveServer, wait_for

from perezvon.core import enablement
from perezvon.core.models import Lead


async def test_goals_and_events_reach_the_counters_and_the_session_reaches_the_lead(live, make_site, page):
    site = await make_site(widget={"thresholds": {"time_seconds": 1, "exit": False, "scroll_percent": 0}})
    for key, settings in (
        ("metrika", {"counter_id": "87654321"}),
        ("google_analytics", {"measurement_id": "G-TEST12345"}),
        ("calltouch", {"site_id": "54321", "api_token": "t", "session_variable": "call_value"}),
    ):
        await enablement.enable(site, enablement.INTEGRATION, key, settings)
    try:
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
    finally:
        # the lead's pushes stay queued for whichever test runs a worker next: switched off, they are
        # skipped there rather than sent to the services' real addresses
        for key in ("metrika", "google_analytics", "calltouch"):
            await enablement.switch(site, enablement.INTEGRATION, key, on=False)


async def test_the_sliders_opening_and_card_clicks_are_goals_with_no_edit_to_metrika_or_ga(live, make_site, page):
    """The slider declares its events (slider_opened, slider_card_click, slider_lead): the counters make
    goals of them as of any app's; the card's id travels in the event's detail."""
    site = await make_site()
    await enablement.enable(
        site,
        enablement.APPLICATION,
        "slider",
        {"cards": [{"id": "promo", "kind": "promotion", "title": "Скидка", "details": "Подробности"}]},
    )
    for key, settings in (
        ("metrika", {"counter_id": "87654321"}),
        ("google_analytics", {"measurement_id": "G-TEST12345"}),
    ):
        await enablement.enable(site, enablement.INTEGRATION, key, settings)
    await page.add_init_script(
        "window.__clicks = []; window.Perezvon = {q: [['slider_card_click', d => window.__clicks.push(d.card)]]};"
    )
    await page.goto(live.page_url(site, "analytics.html"))
    # the counters' scripts load after the config: click once both have run
    scripts = (
        "performance.getEntriesByType('resource').filter(e => /int-(metrika|google_analytics)/.test(e.name)).length"
    )
    await page.wait_for_function(f"{scripts} === 2", timeout=20000)
    await page.wait_for_function("new Promise(r => setTimeout(() => r(true), 100))")
    await page.locator("[data-perezvon=slider] .tab").click(timeout=20000)
    await page.locator("[data-perezvon=slider] .card[data-card=promo]").click()
    await page.wait_for_function("calls.some(c => c[3] === 'perezvon_slider_card_click')")
    calls = await page.evaluate("calls")
    for event in ("slider_opened", "slider_card_click"):
        assert ["ym", 87654321, "reachGoal", f"perezvon_{event}"] in calls
        assert ["gtag", "event", event, {"event_category": "PEREZVON", "send_to": "G-TEST12345"}] in calls
    assert await page.evaluate("window.__clicks") == ["promo"]
    assert "slider_lead" in await page.evaluate("window.Perezvon.events")


# A third-party app, declared here: its client script emits one declared event and one it does not
# declare. Metrika and GA get a goal for the declared one with no edit to either plugin.
CLICKER_JS = """
window.Perezvon.define("clicker", function (ctx) {
  ctx.ready();
  /* the integrations' scripts load after the config: emit until both counters have heard of us */
  var timer = setInterval(function () {
    ctx.emit("undeclared", {});
    ctx.emit("clicked", {});
    var heard = (window.calls || []).map(function (c) { return c[0]; });
    if (heard.indexOf("ym") >= 0 && heard.indexOf("gtag") >= 0) clearInterval(timer);
  }, 100);
});
"""


async def test_a_new_apps_declared_events_reach_metrika_and_ga(perezvon_app, make_site, page, tmp_path):
    from marshmallow import Schema

    from perezvon.api import Application

    script = tmp_path / "clicker.js"
    script.write_text(CLICKER_JS)

    class Clicker(Application):
        key = "clicker"
        title = "Clicker"
        lead_source = "api"
        settings_schema = Schema
        client_script = script
        site_events = {"clicker_clicked": "Clicker clicked"}

    registry = perezvon_app.host.registry
    registry.current_plugin = "clicker_plugin"
    registry.add_application(Clicker())
    registry.current_plugin = "?"
    server = LiveServer(perezvon_app)  # its site script serves the registered apps' code
    await server.start()
    try:
        site = await make_site()
        await enablement.enable(site, enablement.APPLICATION, "clicker")
        for key, settings in (
            ("metrika", {"counter_id": "87654321"}),
            ("google_analytics", {"measurement_id": "G-TEST12345"}),
        ):
            await enablement.enable(site, enablement.INTEGRATION, key, settings)
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(server.page_url(site, "analytics.html"))
        await page.wait_for_function(
            "calls.some(c => c[0] === 'ym') && calls.some(c => c[0] === 'gtag')", timeout=20000
        )
        calls = await page.evaluate("calls")
        # each counter may have heard the event more than once; never the undeclared one
        assert sorted({json.dumps(c) for c in calls}) == sorted(
            json.dumps(c)
            for c in [
                ["gtag", "event", "clicker_clicked", {"event_category": "PEREZVON", "send_to": "G-TEST12345"}],
                ["ym", 87654321, "reachGoal", "perezvon_clicker_clicked"],
            ]
        )
        assert "clicker_clicked" in await page.evaluate("window.Perezvon.events")
        assert errors == []
    finally:
        await server.stop()
        del registry.applications["clicker"]
        del registry.owner[("application", "clicker")]
