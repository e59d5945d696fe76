"""The slider plugin on the server side and in its visual editor (docs/slider.md): the settings schema
(defaults, at most 12 cards, ids, links, colours, addresses), what reaches the browser, its lead source,
the demo, and the editor in a real browser: cards chosen, edited, previewed on each screen, saved."""

from __future__ import annotations

import json

import httpx
import pytest
from marshmallow import ValidationError
from test_admin_editor import _connection, _picked, _poll, _screenshot, _shown, _sign_in, _text_is, live_site
from test_admin_helpers import login, make_user

from perezvon.api import registry_with
from perezvon.core import enablement
from perezvon.core.models import GrantLevel
from perezvon.plugins.slider import plugin as slider_plugin
from perezvon.plugins.slider.schemas import DEFAULT_CARDS, SliderSettings
from perezvon.web.app import create_app

__all__ = ["live_site"]  # the fixture, shared with the widget's editor tests


def test_the_defaults_are_a_finished_slider():
    s = SliderSettings().load({})
    assert s["look"]["side"] == "right" and s["look"]["tab_label"]
    assert [c["id"] for c in s["cards"]] == [c["id"] for c in DEFAULT_CARDS]
    # an empty action is the kind's own: the callback card opens the form, the promotion its details,
    # a service without a link the form, with one the link
    assert [c["action"] for c in s["cards"]] == ["callback", "details", "callback"]
    loaded = SliderSettings().load({"cards": [{"id": "a", "kind": "service", "url": "https://example.com/"}]})
    assert loaded["cards"][0]["action"] == "link"
    assert s["display"]["channels"] == ["direct", "organic", "ads", "referral", "social"]
    assert json.loads(json.dumps(s)) == s  # plain JSON to store and send


@pytest.mark.parametrize(
    ("settings", "errors"),
    [
        ({"cards": [{"id": f"c{i}"} for i in range(13)]}, {"cards": ["At most 12 cards."]}),
        ({"cards": [{"id": "a"}, {"id": "a"}]}, {"cards": ["Each card needs its own id."]}),
        ({"cards": [{"id": "a b"}]}, {"cards": {0: {"id": ["Latin letters, digits, - and _."]}}}),
        ({"cards": [{"title": "no id"}]}, {"cards": {0: {"id": ["Missing data for required field."]}}}),
        (
            {"cards": [{"id": "a", "kind": "link"}]},
            {"cards": {0: {"url": ["A card that opens a link needs its address."]}}},
        ),
        (
            {"cards": [{"id": "a", "image": "javascript:alert(1)", "url": "data:text/html,x"}]},
            {
                "cards": {
                    0: {
                        "image": ["An address starting with https:// or http://."],
                        "url": ["An address starting with https:// or http://."],
                    }
                }
            },
        ),
        (
            {"cards": [{"id": "a", "kind": "banner"}]},
            {"cards": {0: {"kind": ["Must be one of: service, promotion, link, callback."]}}},
        ),
        (
            {"look": {"side": "top", "tab_background": "red", "panel_width": 2000}},
            {
                "look": {
                    "side": ["Must be one of: left, right."],
                    "tab_background": ["A colour: #hex or rgb()/rgba()."],
                    "panel_width": ["Must be greater than or equal to 260 and less than or equal to 520."],
                }
            },
        ),
        (
            {"display": {"channels": ["tv"]}},
            {"display": {"channels": {0: ["Must be one of: direct, organic, ads, referral, social."]}}},
        ),
    ],
)
def test_bad_settings_are_refused_per_field(settings, errors):
    with pytest.raises(ValidationError) as refused:
        SliderSettings().load(settings)
    assert refused.value.messages == errors


def test_twelve_cards_are_fine_and_hidden_ones_stay_home():
    registry = registry_with("slider", slider_plugin)
    app = registry.applications["slider"]
    settings = SliderSettings().load({"cards": [{"id": f"c{i}", "enabled": i % 2 == 0} for i in range(12)]})
    assert len(settings["cards"]) == 12
    assert [c["id"] for c in app.client_config(None, settings)["cards"]] == [f"c{i}" for i in range(0, 12, 2)]
    # its leads: source "slider", Calltouch's "other" code (docs/calls.md#lead-source-codes)
    assert registry.lead_sources["slider"].calltouch_code == 16
    assert app.lead_source == "slider"
    assert set(app.site_events) == {"slider_opened", "slider_card_click", "slider_lead"}


async def test_the_demo_switches_the_slider_on_with_its_cards(perezvon_app, perezvon_client):
    from perezvon.core.demo import seed_demo

    demo = await seed_demo(perezvon_app)
    config = (await perezvon_client.get(f"/site/config?token={demo['site_token']}")).json()
    apps = {app["key"]: app for app in config["apps"]}
    assert apps["slider"]["source"] == "slider"
    assert [c["id"] for c in apps["slider"]["config"]["cards"]] == ["callback", "trade-in", "test-drive", "route"]
    assert {"slider_opened", "slider_card_click", "slider_lead"} <= set(config["events"])
    assert demo == await seed_demo(perezvon_app)  # idempotent


async def test_an_invalid_draft_is_refused_with_a_4xx(perezvon_app):
    connection = await _connection(slider={})
    editor = await make_user(level=GrantLevel.EDIT, connection=connection)
    transport = httpx.ASGITransport(app=create_app(perezvon_app, manage_lifecycle=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        csrf = await login(client, editor)
        url = f"/connections/{connection.id}/apps/slider"
        assert (await client.get(url)).status_code == 200
        draft = {"cards": [{"id": f"c{i}"} for i in range(13)], "look": {"card_border": "blue"}}
        refused = await client.post(url, data={"csrf_token": csrf, "settings_json": json.dumps(draft)})
        assert refused.status_code == 400
        data = json.loads(refused.text.split('id="editor-data">', 1)[1].split("</script>", 1)[0])
        assert set(data["errors"]) == {"cards", "look.card_border"}
        answer = await client.post(
            f"/connections/{connection.id}/editor/slider/draft",
            json={"settings": draft},
            headers={"X-CSRF-Token": csrf},
        )
        assert answer.status_code == 422 and "cards" in answer.json()["errors"]
        assert await enablement.stored_settings(connection, enablement.APPLICATION, "slider") == {}


async def test_the_editor_previews_each_screen_edits_the_chosen_card_and_saves(live_site, page):
    connection = await _connection(slider={})
    editor = await make_user(level=GrantLevel.EDIT, connection=connection)
    base = live_site.base_url
    await _sign_in(page, base, editor.phone)
    await page.emulate_media(reduced_motion="reduce")
    await page.goto(f"{base}/connections/{connection.id}/apps/slider")
    await _shown(page, "cards")
    preview = page.frame_locator("#pv-frame")
    slider = "[data-perezvon=slider]"
    assert await preview.locator(f"{slider} .card").count() == 3
    # the second card chosen above the preview; a click on a card's title edits that card's title
    await page.select_option("#pv-card", "1")
    await _shown(page, "cards")
    await preview.locator(f"{slider} .card[data-card=promo] h3").click()
    await _picked(page, "card_title")
    await page.fill("#ed-cards-1-title", "Минус 20% сегодня")
    await _poll(lambda: _text_is(preview, f"{slider} .card[data-card=promo] h3", "Минус 20% сегодня"))
    # the chosen card's screens, and the tab alone
    for screen in ("details", "form", "closing", "tab"):
        await page.select_option("#pv-screen", screen)
        await _shown(page, screen)
    await page.select_option("#pv-hours", "offhours")
    await page.select_option("#pv-screen", "closing")
    await _shown(page, "closing-offhours")
    await page.select_option("#pv-hours", "working")
    await page.select_option("#pv-screen", "tab")
    await _shown(page, "tab")
    await preview.locator(f"{slider} .tab").click()
    await _picked(page, "tab")
    await page.select_option("#ed-look-side", "left")
    await page.fill("#ed-look-tab_label", "Скидки")
    await _poll(lambda: _text_is(preview, f"{slider} .tab", "Скидки"))
    # a new card, then the panel again for the picture
    await page.click("#add-card")
    await page.select_option("#pv-screen", "cards")
    await _shown(page, "cards")
    assert await preview.locator(f"{slider} .card").count() == 4
    assert await page.is_checked("#ed-cards-3-enabled")  # a new card starts with the defaults
    # a click on a card in the preview chooses that card
    await preview.locator(f"{slider} .card[data-card=promo] h3").click()
    await _picked(page, "card_title")

    async def promo_chosen():
        return await page.input_value("#pv-card") == "1" and await page.is_visible("#ed-cards-1-title")

    await _poll(promo_chosen)
    await _screenshot(page, "admin-slider-editor.png")
    await page.click("#editor-save button[type=submit]")
    await page.wait_for_load_state()
    stored = await enablement.stored_settings(connection, enablement.APPLICATION, "slider")
    assert stored["cards"][1]["title"] == "Минус 20% сегодня" and len(stored["cards"]) == 4
    assert stored["look"]["side"] == "left" and stored["look"]["tab_label"] == "Скидки"
    # visitors see it
    await page.goto(live_site.page_url(connection))
    tab = page.locator(f"{slider} .tab")
    assert await tab.inner_text(timeout=20000) == "Скидки"
    assert (await tab.bounding_box())["x"] == 0
