"""The trade-in form's visual editor in a real browser (docs/tradein.md#settings): the preview runs the
real site script and is brought to each step; a picked element edits its settings; the save stores them."""

from __future__ import annotations

import pytest
from test_admin_editor import _connection, _picked, _poll, _shown, _sign_in, _text_is
from test_admin_helpers import make_user

from perezvon.core import enablement
from perezvon.core.models import GrantLevel


@pytest.fixture
async def live_site(perezvon_app):
    from sitehelpers import LiveServer  # tests/site, put on the path by test_admin_editor

    server = LiveServer(perezvon_app)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_the_trade_in_editor_previews_each_step_and_saves_a_picked_element(live_site, page):
    connection = await _connection(tradein={})
    editor = await make_user(level=GrantLevel.EDIT, connection=connection)
    base = live_site.base_url
    await _sign_in(page, base, editor.phone)
    await page.emulate_media(reduced_motion="reduce")
    await page.goto(f"{base}/connections/{connection.id}/apps/tradein")
    await _shown(page, "tab")
    preview = page.frame_locator("#pv-frame")
    await preview.locator("[data-perezvon=tradein] .tab").click()
    await _picked(page, "tab")
    await page.fill("#ed-look-tab_text", "Обменяйте авто")
    await _poll(lambda: _text_is(preview, "[data-perezvon=tradein] .tab", "Обменяйте авто"))
    for screen in ("car", "year", "photos", "phone"):
        await page.select_option("#pv-screen", screen)
        await _shown(page, screen, exact=True)
    await preview.locator("[data-perezvon=tradein] .go").click()
    await _picked(page, "button")
    await page.click("#editor-save button[type=submit]")
    await page.wait_for_load_state()
    stored = await enablement.stored_settings(connection, enablement.APPLICATION, "tradein")
    assert stored["look"]["tab_text"] == "Обменяйте авто"
