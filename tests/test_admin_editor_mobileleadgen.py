"""The mobile lead generator's visual editor in a real browser: the preview runs the real sheet, a
picked element's settings are edited (the generator's sheet, or its working/off-hours screens), each
screen can be previewed, and the draft is saved through the plugin's schema."""

from __future__ import annotations

from test_admin_editor import _connection, _picked, _poll, _shown, _sign_in, _text_is, live_site  # noqa: F401
from test_admin_helpers import make_user

from perezvon.core import enablement
from perezvon.core.models import GrantLevel

SHEET = "[data-perezvon=mobileleadgen]"


async def test_the_mobile_lead_generator_editor_previews_each_screen_and_saves(live_site, page):  # noqa: F811
    connection = await _connection(mobileleadgen={"generators": [{"id": "sale", "name": "Распродажа"}]})
    editor = await make_user(level=GrantLevel.EDIT, connection=connection)
    base = live_site.base_url
    await _sign_in(page, base, editor.phone)
    await page.emulate_media(reduced_motion="reduce")
    await page.goto(f"{base}/connections/{connection.id}/apps/mobileleadgen")
    await _shown(page, "cover")
    preview = page.frame_locator("#pv-frame")
    await preview.locator(f"{SHEET} .cover h2").click()
    await _picked(page, "text1")
    await page.fill("#ed-generators-0-working-cover-text1", "Минус 20% с телефона")
    await _poll(lambda: _text_is(preview, f"{SHEET} .cover h2", "Минус 20% с телефона"))
    await preview.locator(f"{SHEET} .grip").click()
    await _picked(page, "handle")
    await page.fill("#ed-generators-0-sheet-radius", "4")
    await page.locator("#ed-generators-0-sheet-radius").dispatch_event("change")

    async def square() -> bool:
        try:
            radius = await preview.locator(f"{SHEET} .box").evaluate("b => getComputedStyle(b).borderTopLeftRadius")
        except Exception:  # the frame is being redrawn with the new draft: look again
            return False
        return radius == "4px"

    await _poll(square)
    await page.select_option("#pv-screen", "call")
    await _shown(page, "call")
    await _poll(lambda: _count_is(preview, f"{SHEET} form input[type=tel]", 1))
    await page.select_option("#pv-hours", "offhours")
    await _shown(page, "call")
    # (the frame redraws: wait for the off-hours form rather than read the working one's)
    await _poll(lambda: _count_is(preview, f"{SHEET} form select", 2))  # the off-hours form asks for a time
    await page.select_option("#pv-screen", "timer")
    await _shown(page, "timer")
    await page.select_option("#pv-hours", "working")
    await page.select_option("#pv-screen", "cover")
    await _shown(page, "cover")
    await page.click("#editor-save button[type=submit]")
    await page.wait_for_load_state()
    stored = await enablement.stored_settings(connection, enablement.APPLICATION, "mobileleadgen")
    assert stored["generators"][0]["working"]["cover"]["text1"] == "Минус 20% с телефона"
    assert stored["generators"][0]["sheet"]["radius"] == 4


async def _count_is(frame, selector: str, count: int) -> bool:
    try:
        return await frame.locator(selector).count() == count
    except Exception:  # the frame is being redrawn
        return False
