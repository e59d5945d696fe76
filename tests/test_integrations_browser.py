"""The integrations' client scripts in a real browser, on a page with a stand-in site-script event bus.

The stand-in implements the site runtime's contract: ``window.Perezvon.on(event, handler)``
(``"*"`` for every event), ``Perezvon.integrations[<key>]`` (what ``client_events(settings)``
returned), ``Perezvon.events`` (the site events the page's apps declare), and events emitted
with ``(detail, name)``; ``lead_sending`` passes the lead payload, which handlers may extend.
``ym``, ``gtag``, ``ga`` and ``Comagic`` are stubs that record their calls.
"""

from __future__ import annotations

import json

import pytest

from perezvon.plugins.calltouch.integration import Calltouch, CalltouchSettings
from perezvon.plugins.google_analytics.integration import GoogleAnalytics, GoogleAnalyticsSettings
from perezvon.plugins.metrika.integration import Metrika, MetrikaSettings

SITE = "http://site.test/"
EVENTS = ["widget_shown", "widget_opened", "widget_lead", "leadgen_shown", "leadgen_lead", "offhours_lead"]

BUS = """
window.calls = [];
window.Perezvon = {
  integrations: %(integrations)s,
  events: %(events)s,
  handlers: {},
  on: function (name, fn) { (this.handlers[name] = this.handlers[name] || []).push(fn); },
  emit: function (name, detail) {
    (this.handlers[name] || []).concat(this.handlers["*"] || []).forEach(function (fn) { fn(detail, name); });
  },
};
"""
STUBS = {
    "ym": "window.ym = function () { calls.push(['ym'].concat([].slice.call(arguments))); };",
    "gtag": "window.gtag = function () { calls.push(['gtag'].concat([].slice.call(arguments))); };",
    "ga": "window.ga = function () { calls.push(['ga'].concat([].slice.call(arguments))); };",
}


async def open_site(page, integrations, stubs=(), extra_head="", scripts=()):
    html = (
        "<!doctype html><html><head><meta charset='utf-8'><script>"
        + BUS % {"integrations": json.dumps(integrations), "events": json.dumps(EVENTS)}
        + "".join(STUBS[name] for name in stubs)
        + extra_head
        + "</script></head><body>site</body></html>"
    )

    async def serve(route):
        await route.fulfill(status=200, content_type="text/html; charset=utf-8", body=html)

    await page.route(SITE, serve)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(SITE)
    for script in scripts:
        await page.add_script_tag(content=script.read_text(encoding="utf-8"))
    return errors


async def emit_all(page):
    # an event no app declares is no goal
    for event in ["widget_undeclared", *EVENTS]:
        await page.evaluate(
            "([name, detail]) => Perezvon.emit(name, detail)",
            [event, {"app": "widget", "app_title": "Виджет", "offhours": False}],
        )
    return await page.evaluate("calls")


async def test_metrika_reaches_the_documented_goal_for_each_event(page):
    metrika = Metrika()
    config = metrika.client_events(MetrikaSettings().load({"counter_id": "87654321"}))
    errors = await open_site(page, {"metrika": config}, stubs=["ym"], scripts=[metrika.client_script])
    assert await emit_all(page) == [["ym", 87654321, "reachGoal", f"perezvon_{event}"] for event in EVENTS]
    assert errors == []


async def test_metrika_does_nothing_without_a_counter_on_the_page(page):
    metrika = Metrika()
    config = metrika.client_events(MetrikaSettings().load({"counter_id": "87654321"}))
    errors = await open_site(page, {"metrika": config}, scripts=[metrika.client_script])
    assert await emit_all(page) == [] and errors == []


async def test_metrika_is_silent_when_not_enabled_for_the_connection(page):
    errors = await open_site(page, {}, stubs=["ym"], scripts=[Metrika().client_script])
    assert await emit_all(page) == [] and errors == []


@pytest.mark.parametrize("label", ["", "callback"])
async def test_google_analytics_uses_gtag_when_present(page, label):
    ga = GoogleAnalytics()
    config = ga.client_events(GoogleAnalyticsSettings().load({"measurement_id": "G-TEST12345", "label": label}))
    errors = await open_site(page, {"google_analytics": config}, stubs=["gtag", "ga"], scripts=[ga.client_script])
    params = {"event_category": "PEREZVON", "send_to": "G-TEST12345"}
    if label:
        params["event_label"] = label
    assert await emit_all(page) == [["gtag", "event", event, params] for event in EVENTS]
    assert errors == []


@pytest.mark.parametrize("label", ["", "callback"])
async def test_google_analytics_falls_back_to_analytics_js(page, label):
    ga = GoogleAnalytics()
    config = ga.client_events(GoogleAnalyticsSettings().load({"measurement_id": "UA-1234567-1", "label": label}))
    errors = await open_site(page, {"google_analytics": config}, stubs=["ga"], scripts=[ga.client_script])
    tail = [label] if label else []
    assert await emit_all(page) == [["ga", "send", "event", "PEREZVON", event, *tail] for event in EVENTS]
    assert errors == []


async def test_google_analytics_adds_the_visitors_client_id_to_the_lead(page):
    ga = GoogleAnalytics()
    config = ga.client_events(GoogleAnalyticsSettings().load({"measurement_id": "G-TEST12345"}))
    await open_site(
        page,
        {"google_analytics": config},
        stubs=["gtag"],
        scripts=[ga.client_script],
        extra_head="document.cookie = '_ga=GA1.1.1234567890.1700000000; path=/';",
    )
    payload = await page.evaluate(
        "() => { const p = {phone: '+79160000000', extra: {}}; Perezvon.emit('lead_sending', p); return p; }"
    )
    assert payload["extra"] == {"google_analytics": {"client_id": "1234567890.1700000000"}}


@pytest.mark.parametrize(
    "variable, head, expected",
    [
        ("call_value", "window.call_value = '777000111';", "777000111"),
        ("ct.session", "window.ct = {session: 4242};", "4242"),
        ("call_value", "document.cookie = '_ct_session_id=55566677; path=/';", "55566677"),
    ],
)
async def test_calltouch_puts_the_session_id_into_the_lead(page, variable, head, expected):
    calltouch = Calltouch()
    config = calltouch.client_events(
        CalltouchSettings().load({"site_id": "1", "api_token": "t", "session_variable": variable})
    )
    errors = await open_site(page, {"calltouch": config}, extra_head=head, scripts=[calltouch.client_script])
    payload = await page.evaluate(
        "() => { const p = {phone: '+79160000000', extra: {keep: 1}}; Perezvon.emit('lead_sending', p); return p; }"
    )
    assert payload["extra"] == {"keep": 1, "calltouch": {"session_id": expected}}
    assert errors == []


async def test_calltouch_leaves_the_lead_alone_without_a_session(page):
    calltouch = Calltouch()
    config = calltouch.client_events(CalltouchSettings().load({"site_id": "1", "api_token": "t"}))
    await open_site(page, {"calltouch": config}, scripts=[calltouch.client_script])
    payload = await page.evaluate("() => { const p = {extra: {}}; Perezvon.emit('lead_sending', p); return p; }")
    assert payload["extra"] == {}


async def test_comagic_puts_its_session_id_into_the_lead(page):
    from perezvon.plugins.comagic.integration import Comagic

    await open_site(
        page,
        {"comagic": {}},
        extra_head="window.Comagic = {getSessionId: () => 918273};",
        scripts=[Comagic().client_script],
    )
    payload = await page.evaluate("() => { const p = {extra: {}}; Perezvon.emit('lead_sending', p); return p; }")
    assert payload["extra"] == {"comagic": {"session_id": "918273"}}
