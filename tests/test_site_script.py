"""The site script's server side (docs/site-script.md): loader, config with ETag, hashed code, schemas."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from marshmallow import Schema, ValidationError, fields

from perezvon.core import enablement
from perezvon.core.models import CalendarDay, Office
from perezvon.core.registry import Integration
from perezvon.plugins.leadgen.schemas import LeadgenSettings
from perezvon.plugins.widget.schemas import WidgetSettings
from perezvon.web.app import create_app
from perezvon.web.site import SiteScript, _compact


async def enable(site, key: str, settings: dict | None = None, on: bool = True) -> None:
    await enablement.enable(site, enablement.APPLICATION, key, settings or {})
    if not on:
        await enablement.switch(site, enablement.APPLICATION, key, False)


async def test_the_loader_knows_the_domains_and_the_hashed_runtime(perezvon_client, perezvon_site):
    await enable(perezvon_site, "widget")
    response = await perezvon_client.get(f"/inject?token={perezvon_site.token}")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/javascript")
    assert response.headers["cache-control"] == "public, max-age=300"
    body = response.text
    assert perezvon_site.domain in body and f"shop.{perezvon_site.domain}" in body
    runtime = json.loads(body.split("var c = ", 1)[1].split(", P =", 1)[0])["r"]
    assert runtime.startswith("/site/static/runtime.") and runtime.endswith(".js")
    code = await perezvon_client.get(runtime, headers={"Accept-Encoding": "gzip"})
    assert code.status_code == 200 and code.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert code.headers["content-encoding"] == "gzip" and "window.Perezvon" in code.text
    # a page holding an older loader still gets today's runtime, but not for a year
    stale = await perezvon_client.get("/site/static/runtime.000000000000.js")
    assert stale.status_code == 200 and stale.headers["cache-control"] == "no-cache"
    assert (await perezvon_client.get("/site/static/nothing.abc.js")).status_code == 404


async def test_unknown_or_switched_off_connection_gets_a_script_that_does_nothing(perezvon_client, perezvon_site):
    for token in ("", "no-such-token"):
        response = await perezvon_client.get(f"/inject?token={token}")
        assert response.status_code == 200 and response.text.startswith("/*") and "fetch" not in response.text
    perezvon_site.is_on = False
    await perezvon_site.save()
    response = await perezvon_client.get(f"/inject?token={perezvon_site.token}")
    assert response.text.startswith("/* Perezvon: nothing to do")
    config = await perezvon_client.get(f"/site/config?token={perezvon_site.token}")
    assert config.status_code == 404 and "token" in config.json()["errors"]


async def test_config_is_cached_and_revalidated_with_an_etag(perezvon_client, perezvon_site):
    await enable(perezvon_site, "widget", {"look": {"format": "vertical"}})
    await enable(perezvon_site, "leadgen", {"generators": [{"id": "a"}, {"id": "b", "enabled": False}]})
    office = await Office.create(
        connection=perezvon_site,
        name="Центр",
        phone_selector=".phone",
        address="Москва, Тверская, 1",
        latitude=55.757,
        longitude=37.615,
    )
    perezvon_site.offices_enabled = True
    await perezvon_site.save()
    url = f"/site/config?token={perezvon_site.token}"
    response = await perezvon_client.get(url)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=60"
    assert response.headers["access-control-allow-origin"] == "*"
    config = response.json()
    apps = {app["key"]: app for app in config["apps"]}
    assert apps["widget"]["config"]["look"]["format"] == "vertical"
    assert apps["widget"]["config"]["look"]["button_text"] == "Жду звонка!"  # defaults filled in
    assert apps["widget"]["script"].startswith("/site/static/app-widget.")
    assert [g["id"] for g in apps["leadgen"]["config"]["generators"]] == ["a"]  # switched-off ones stay home
    assert config["offices"]["items"] == [
        {
            "id": office.id,
            "name": "Центр",
            "phone_selector": ".phone",
            "address": "Москва, Тверская, 1",
            "latitude": 55.757,
            "longitude": 37.615,
        }
    ]
    assert apps["widget"]["max_width"] is None  # the widget shows on every screen
    assert config["site"]["timer_seconds"] == 36 and config["site"]["session_minutes"] == 45
    assert config["hours"]["windows"]  # round the clock: a window every day
    again = await perezvon_client.get(url, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    zipped = await perezvon_client.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"


async def test_working_hours_windows_follow_the_schedule_and_the_calendar(perezvon_app, perezvon_site):
    import datetime as dt

    perezvon_site.schedule = {str(d): (["09:00", "18:00"] if d <= 5 else None) for d in range(1, 8)}
    perezvon_site.timezone = "Europe/Moscow"
    await perezvon_site.save()
    now = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)  # a Monday
    await CalendarDay.create(connection=perezvon_site, date=dt.date(2026, 3, 3), kind="holiday")
    config = await SiteScript(perezvon_app).config_for(perezvon_site, now=now)
    starts = [dt.datetime.fromtimestamp(w[0] / 1000, dt.UTC) for w in config["hours"]["windows"]]
    assert dt.datetime(2026, 3, 2, 6, 0, tzinfo=dt.UTC) in starts  # 09:00 Moscow
    assert not any(s.date() == dt.date(2026, 3, 3) for s in starts)  # the holiday
    assert not any(s.isoweekday() in (6, 7) for s in starts)


async def test_an_app_with_broken_settings_is_left_out_and_the_rest_still_runs(perezvon_client, perezvon_site):
    await enable(perezvon_site, "widget", {"look": {"format": "round"}})
    await enable(perezvon_site, "leadgen", {"generators": [{"id": "spring"}]})
    config = (await perezvon_client.get(f"/site/config?token={perezvon_site.token}")).json()
    assert [app["key"] for app in config["apps"]] == ["leadgen"]


class _TrackerSettings(Schema):
    goal_prefix = fields.String(load_default="pv_")


class _Tracker(Integration):
    key = "tracker"
    title = "Test tracker"
    settings_schema = _TrackerSettings
    client_script = Path(__file__).with_name("site") / "pages" / "tracker.js"

    def client_events(self, settings):
        return {"widget_lead": settings["goal_prefix"] + "lead"}


async def test_enabled_integrations_bring_their_events_and_their_script(perezvon_app, perezvon_site):
    registry = perezvon_app.host.registry
    registry.integrations["tracker"] = _Tracker()
    try:
        app = create_app(perezvon_app, manage_lifecycle=False)
        await enablement.enable(perezvon_site, enablement.INTEGRATION, "tracker", {"goal_prefix": "site_"})
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            config = (await client.get(f"/site/config?token={perezvon_site.token}")).json()
            assert config["integrations"] == {"tracker": {"widget_lead": "site_lead"}}
            [script] = config["integration_scripts"]
            assert script.startswith("/site/static/int-tracker.")
            assert (await client.get(script)).text == _Tracker.client_script.read_text()
    finally:
        del registry.integrations["tracker"]


def test_the_schemas_give_defaults_and_refuse_what_could_hurt():
    widget = WidgetSettings().load({})
    assert widget["look"]["format"] == "square" and widget["thresholds"]["time_seconds"] == 40
    assert widget["trigger_looks"]["exit"]["title"].startswith("Уже уходите")
    json.dumps(widget)  # loaded settings are plain JSON to store
    with pytest.raises(ValidationError) as caught:
        WidgetSettings().load(
            {
                "look": {"link1_url": "javascript:alert(1)", "background": "red; x: url(evil)"},
                "rules": [{"operator": "matches", "date_from": "2026-13-01"}],
                "hashes": [{"name": "a b"}],
            }
        )
    errors = caught.value.messages
    assert set(errors["look"]) == {"link1_url", "background"}
    assert set(errors["rules"][0]) == {"operator", "date_from"} and "name" in errors["hashes"][0]
    leadgen = LeadgenSettings().load({"generators": [{"id": "x"}]})["generators"][0]
    assert leadgen["offhours"]["cover"]["text2"] != leadgen["working"]["cover"]["text2"]
    with pytest.raises(ValidationError, match="own id"):
        LeadgenSettings().load({"generators": [{"id": "x"}, {"id": "x"}]})
    with pytest.raises(ValidationError):
        LeadgenSettings().load({"generators": [{"id": f"g{i}"} for i in range(101)]})


def test_the_code_stays_small():
    """Size budgets: loader <= 1 KB gzipped; the runtime and every bundled app's code <= 45 KB
    (bench/site_sizes.py prints the figures as served)."""
    root = Path(__file__).resolve().parent.parent
    loader = _compact((root / "web/static/site/loader.js").read_text()).encode()  # as served
    scripts = ["web/static/site/runtime.js"] + [
        f"plugins/{app}/static/{app}.js"
        for app in ("widget", "leadgen", "mobilepanel", "mobileleadgen", "tradein", "slider")
    ]
    # each file is served and compressed on its own, as the browser fetches it
    sizes = [len(gzip.compress((root / path).read_bytes(), 9)) for path in scripts]
    assert len(gzip.compress(loader, 9)) <= 1024
    assert sum(sizes) <= 45 * 1024


def test_cyrillic_domains_are_matched_as_the_browser_spells_them():
    from perezvon.core.domains import browser_domains

    assert browser_domains(["Пример.РФ", "shop.example.com"]) == [
        "пример.рф",
        "xn--e1afmkfd.xn--p1ai",
        "shop.example.com",
    ]


async def test_the_demo_shows_a_widget_and_a_lead_generator_on_a_sample_page(perezvon_app, perezvon_client):
    from perezvon.core.demo import seed_demo

    demo = await seed_demo(perezvon_app)
    assert demo["demo_site_url"].endswith(f"/site/try?token={demo['site_token']}")
    url = urlsplit(demo["demo_site_url"])
    page = await perezvon_client.get(f"{url.path}?{url.query}")
    assert page.status_code == 200 and f"/inject?token={demo['site_token']}" in page.text
    assert 'href="#callme"' in page.text
    config = (await perezvon_client.get(f"/site/config?token={demo['site_token']}")).json()
    apps = {app["key"]: app["config"] for app in config["apps"]}
    assert [h["name"] for h in apps["widget"]["hashes"]] == ["callme"]  # the page's "call me" link
    assert [g["id"] for g in apps["leadgen"]["generators"]] == ["demo-discount"]
    assert demo == await seed_demo(perezvon_app)  # idempotent


async def test_the_token_is_found_in_any_query_string(perezvon_client, perezvon_site):
    await enable(perezvon_site, "widget")
    for query in (
        f"token={perezvon_site.token}",
        f"v=2&token={perezvon_site.token}",
        f"token={perezvon_site.token}&v=2",
    ):
        assert (await perezvon_client.get(f"/site/config?{query}")).status_code == 200, query
    assert (await perezvon_client.get("/site/config?token=%20")).status_code == 404
    head = await perezvon_client.head(f"/site/config?token={perezvon_site.token}")
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 100
