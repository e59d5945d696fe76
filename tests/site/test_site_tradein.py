"""The trade-in form in Chromium on a phone (390x844) and a desktop (1280x800) (docs/tradein.md): its tab
styled and placed by the settings, the steps and their checks, a photo upload, the lead stored with
the car and the photos, the admin's call page showing them, and the simulator's callback in which the
operator hears the car."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from pathlib import Path

import pytest
from sitehelpers import RECORD_EVENTS, events, ready, wait_for

from perezvon.core import enablement
from perezvon.core.models import Call, GrantLevel, Lead
from perezvon.plugins.tradein.photos import folder

BOX = "[data-perezvon=tradein] .box"
TAB = "[data-perezvon=tradein] .tab"
SETTINGS = {
    "look": {"tab_background": "#123456", "tab_side": "bottom", "accent": "#b91c1c"},
    "makes": "Kia: Rio, Ceed, Sportage\nLada: Vesta, Granta",
    "min_year": 2000,
}
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}

#: a real JPEG and PNG drawn by the browser's canvas, and a GIF the form refuses
PICTURE = """(type) => { const c = document.createElement('canvas'); c.width = 64; c.height = 48;
  const g = c.getContext('2d'); g.fillStyle = '#c00'; g.fillRect(0, 0, 64, 48); g.fillStyle = '#fff'; g.fillRect(8, 8, 20, 20);
  return c.toDataURL(type).split(',')[1]; }"""
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"


async def step_is(page, name: str) -> None:
    await page.wait_for_function(
        f"document.querySelector('[data-perezvon=tradein]').shadowRoot.querySelector('.box')"
        f".getAttribute('data-step') === {name!r}",
        timeout=20000,
    )


async def error_of(page, control: str) -> str:
    return (await page.locator(f"{BOX} {control}").get_attribute("aria-invalid") or "") and (
        await page.locator(f"{BOX} {control} ~ .err").text_content() or ""
    )


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_the_form_step_by_step_leaves_a_lead_with_the_car_and_photos_called_back_with_the_car(
    viewport, live, make_site, browser, perezvon_app, perezvon_run_jobs, tmp_path
):
    site = await make_site()
    await enablement.enable(site, enablement.APPLICATION, "tradein", SETTINGS)
    phone_sized = viewport == "phone"
    context = await browser.new_context(
        viewport=VIEWPORTS[viewport], is_mobile=phone_sized, has_touch=phone_sized, locale="ru-RU"
    )
    try:
        page = await context.new_page()
        await page.add_init_script(RECORD_EVENTS)
        await page.goto(live.page_url(site, page="shop.html"))
        await ready(page, "tradein")

        # the tab: styled and placed by the settings, inside the viewport
        tab = page.locator(TAB)
        assert await tab.text_content() == "Оценить авто в трейд-ин"
        assert await tab.evaluate("n => getComputedStyle(n).backgroundColor") == "rgb(18, 52, 86)"
        box = await tab.bounding_box()
        assert box and box["y"] + box["height"] <= VIEWPORTS[viewport]["height"] and box["x"] < 40
        await tab.click()
        await step_is(page, "car")
        assert (await events(page, "tradein_opened"))[0]["trigger"] == "button"
        form = await page.locator(BOX).bounding_box()
        assert form and form["x"] >= 0 and form["x"] + form["width"] <= VIEWPORTS[viewport]["width"]

        # step 1: the make and model are required; the models follow the make (the edited list)
        await page.locator(f"{BOX} button.go").click()
        assert await error_of(page, "#pvti-make") == "Выберите марку"
        assert await page.locator(f"{BOX} #pvti-make option").all_text_contents() == ["—", "Kia", "Lada"]
        await page.locator(f"{BOX} #pvti-make").select_option(label="Kia")
        assert await page.locator(f"{BOX} #pvti-model option").all_text_contents() == ["—", "Rio", "Ceed", "Sportage"]
        await page.locator(f"{BOX} #pvti-model").select_option("Rio")
        assert await page.locator(f"{BOX} button.go").evaluate("n => getComputedStyle(n).backgroundColor") == (
            "rgb(185, 28, 28)"
        )
        await page.locator(f"{BOX} button.go").click()

        # step 2: the year within the range (2000 by the settings .. this year), the mileage a number
        await step_is(page, "year")
        await page.locator(f"{BOX} #pvti-year").fill("1999")
        await page.locator(f"{BOX} #pvti-km").fill("85000")
        await page.locator(f"{BOX} button.go").click()
        assert (await error_of(page, "#pvti-year")).startswith("Год от 2000 до ")
        await page.locator(f"{BOX} #pvti-year").fill("2017")
        await page.locator(f"{BOX} button.go").click()

        # step 3: photos; a GIF is refused in the page, two real pictures are taken
        await step_is(page, "photos")
        await page.locator(f"{BOX} #pvti-photo").set_input_files(
            [{"name": "car.gif", "mimeType": "image/gif", "buffer": GIF}]
        )
        assert await error_of(page, "#pvti-photo") == "Только JPEG, PNG или WebP"
        jpeg = base64.b64decode(await page.evaluate(PICTURE, "image/jpeg"))
        png = base64.b64decode(await page.evaluate(PICTURE, "image/png"))
        await page.locator(f"{BOX} #pvti-photo").set_input_files(
            [
                {"name": "front.jpg", "mimeType": "image/jpeg", "buffer": jpeg},
                {"name": "side.png", "mimeType": "image/png", "buffer": png},
            ]
        )
        assert await page.locator(f"{BOX} .pics img").count() == 2
        assert await page.locator(f"{BOX} .pick").text_content() == "Выбрать фото (2)"
        if viewport == "phone" and os.environ.get("PEREZVON_SCREENSHOTS"):
            await page.screenshot(path=str(Path(os.environ["PEREZVON_SCREENSHOTS"]) / "tradein-phone.png"))
        if viewport == "desktop" and os.environ.get("PEREZVON_SCREENSHOTS"):
            await page.screenshot(path=str(Path(os.environ["PEREZVON_SCREENSHOTS"]) / "tradein.png"))
        await page.locator(f"{BOX} button.go").click()

        # step 4: the phone and consent
        await step_is(page, "phone")
        await page.locator(f"{BOX} button.go").click()
        assert await error_of(page, "input[type=tel]") == "Введите номер телефона полностью"
        await page.locator(f"{BOX} input[type=tel]").click()
        await page.locator(f"{BOX} input[type=tel]").press_sequentially("9123456789")
        await page.locator(f"{BOX} button.go").click()
        await step_is(page, "done")
        assert "Оценщик перезвонит" in await page.locator(BOX).text_content()
        assert [e["step"] for e in await events(page, "tradein_step")] == [2, 3, 4]

        # the lead: its source, the car, the photos on disk as sent
        leads = await wait_for(lambda: Lead.filter(connection_id=site.id).all(), message="the lead")
        lead = leads[0]
        assert (lead.source, lead.phone) == ("tradein", "+79123456789")
        assert {k: lead.extra[k] for k in ("make", "model", "year", "mileage")} == {
            "make": "Kia",
            "model": "Rio",
            "year": 2017,
            "mileage": 85000,
        }
        photos = lead.extra["photos"]
        assert [p.rsplit(".", 1)[1] for p in photos] == ["jpg", "png"]
        where = folder(perezvon_app.settings.data_dir, site.id)
        assert [(where / p).read_bytes() for p in photos] == [jpeg, png]
        assert (await events(page, "tradein_lead"))[0]["lead_id"] == str(lead.id)

        # called back on the simulator: the operator hears the car
        await perezvon_run_jobs()
        call = await Call.get(lead_id=lead.id)
        backend = perezvon_app.host.telephony_backend()
        # other tests dial the same visitor number: this lead's attempt is the newest one
        ours = [log for log in backend.recent if any(step[:3] == ("dial", "client", lead.phone) for step in log)][-1]
        said = [step[2] for step in ours if step[:2] == ("say", "operator")]
        assert said and "Трейд-ин: Kia Rio 2017 года, пробег 85000 километров." in said[0]

        # the admin's call page, for a user who may view the site: the car and the photos themselves
        await _admin_sees_the_lead(page, live, site, call, len(photos))
    finally:
        await context.close()


async def _admin_sees_the_lead(page, live, site, call, count: int) -> None:
    from test_admin_helpers import PASSWORD, make_user

    viewer = await make_user(level=GrantLevel.VIEW, connection=site)
    await page.goto(f"{live.base_url}/login")
    await page.fill("#phone", viewer.phone)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(lambda url: "/login" not in url)
    await page.goto(f"{live.base_url}/calls/{call.id}")
    rows = page.locator("dl.app-rows")
    await rows.wait_for()
    shown = dict(zip(await rows.locator("dt").all_text_contents(), await rows.locator("dd").all_text_contents()))
    assert shown == {"Марка": "Kia", "Модель": "Rio", "Год выпуска": "2017", "Пробег, км": "85 000", "Фотографии": ""}
    images = page.locator("dl.app-rows img")
    assert await images.count() == count
    # polled from here: the admin's CSP forbids the string evaluation wait_for_function would use
    deadline = time.monotonic() + 20
    while not await images.evaluate_all("els => els.every(i => i.complete && i.naturalWidth === 64)"):
        assert time.monotonic() < deadline, "the thumbnails did not load"
        await asyncio.sleep(0.1)
    # thumbnails, styled by the admin's stylesheet (its CSP allows no inline style)
    assert await images.first.evaluate("n => getComputedStyle(n).maxWidth") == "160px"
    if os.environ.get("PEREZVON_SCREENSHOTS"):
        await rows.scroll_into_view_if_needed()
        await page.screenshot(path=str(Path(os.environ["PEREZVON_SCREENSHOTS"]) / "tradein-call.png"))
