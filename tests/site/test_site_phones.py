"""One number, every way a visitor enters it, through the phone input the site runtime gives
every app (docs/site-script.md, "The phone input"): typed key by key, pasted from the clipboard
and autofilled by the browser, in the widget and in a lead generator. The entries and what
each must become are the table the server's own test reads too (tests/phone_cases.json,
tests/test_phones.py), so the browser and core/phones.py are held to the same rules."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sitehelpers import LEADGEN, WIDGET, ready, wait_for

from perezvon.core.i18n import gettext
from perezvon.core.models import Lead

CASES = json.loads((Path(__file__).parents[1] / "phone_cases.json").read_text())
ACCEPTED = [(case["entry"], case["e164"]) for case in CASES["accepted"]]
REFUSED = [(case["entry"], case["error"]) for case in CASES["refused"]]
WAYS = ("typed", "pasted", "autofilled")

#: the browser's own autofill sets the value and announces it with input and change events
AUTOFILL = """(input, text) => {
  input.value = text;
  input.dispatchEvent(new Event("input", { bubbles: true }));
  input.dispatchEvent(new Event("change", { bubbles: true }));
}"""


def shown_as(e164: str) -> str:
    """How the default mask "+7 (999) 999-99-99" shows a Russian number."""
    n = e164[2:]
    return f"+7 ({n[:3]}) {n[3:6]}-{n[6:8]}-{n[8:]}"


async def enter(page, box: str, entry: str, way: str) -> None:
    phone = page.locator(f"{box} input[type=tel]")
    if way == "typed":
        await phone.click()
        await phone.press_sequentially(entry)
    elif way == "filled":  # playwright's fill(): the whole text inserted at once over the field
        await phone.fill(entry)
    elif way == "pasted":
        await phone.click()
        await page.evaluate("text => navigator.clipboard.writeText(text)", entry)
        await page.keyboard.press("Control+V")
    else:
        await phone.evaluate(AUTOFILL, entry)


async def send(page, box: str) -> int:
    """Clicks the app's call button; the lead API's HTTP status."""
    return await send_from(page, f"{box} button.go")


async def newest_lead(site, count: int) -> Lead:
    async def stored():
        leads = await Lead.filter(connection_id=site.id).order_by("-created_at").all()
        return leads if len(leads) >= count else None

    return (await wait_for(stored, message=f"lead number {count}"))[0]


async def forget_duplicate(perezvon_app, site, e164: str) -> None:
    # the same number again within the duplicate window is answered with the first lead (200);
    # each form here must be a lead of its own
    await perezvon_app.redis.delete(f"pv:dup:{site.id}:{e164}")


@pytest.fixture
async def clipboard_page(page):
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    return page


@pytest.mark.parametrize("way", (*WAYS, "filled"))
async def test_the_widget_takes_every_form_of_the_number(way, live, make_site, clipboard_page, perezvon_app):
    page = clipboard_page
    site = await make_site(widget={"thresholds": {"time_seconds": 0, "exit": False, "scroll_percent": 0}})
    await page.goto(live.page_url(site))
    await ready(page)
    for number, (entry, e164) in enumerate(ACCEPTED, start=1):
        await page.locator("[data-perezvon=widget] .btn").click()  # the call button opens it
        await page.locator(WIDGET).wait_for(timeout=20000)
        await enter(page, WIDGET, entry, way)
        assert await page.locator(f"{WIDGET} input[type=tel]").input_value() == shown_as(e164), (way, entry)
        assert await send(page, WIDGET) == 201, (way, entry)
        await page.locator("[data-perezvon=widget] [data-screen=closing]").wait_for(state="attached", timeout=20000)
        lead = await newest_lead(site, number)
        assert (lead.phone, lead.source) == (e164, "widget"), (way, entry)
        await forget_duplicate(perezvon_app, site, e164)
        await page.keyboard.press("Escape")
        await page.locator(WIDGET).wait_for(state="detached", timeout=10000)


@pytest.mark.parametrize("way", WAYS)
async def test_the_lead_generator_takes_every_form_of_the_number(way, live, make_site, clipboard_page, perezvon_app):
    page = clipboard_page
    generator = {
        "id": "phones",
        "trigger": {"kind": "time", "time_seconds": 1},
        "working": {"call": {"curtain_on": "time", "curtain_delay_seconds": 0}},
    }
    site = await make_site(leadgen={"generators": [generator]})
    await page.add_init_script("localStorage.clear()")  # a new visitor each time: the generator shows again
    for number, (entry, e164) in enumerate(ACCEPTED, start=1):
        await page.goto(live.page_url(site))
        await page.locator("[data-perezvon=leadgen] [data-screen=call]").wait_for(state="attached", timeout=20000)
        await page.locator(f"{LEADGEN} input[type=tel]").wait_for(timeout=10000)
        await enter(page, LEADGEN, entry, way)
        assert await page.locator(f"{LEADGEN} input[type=tel]").input_value() == shown_as(e164), (way, entry)
        assert await send(page, LEADGEN) == 201, (way, entry)
        await page.locator("[data-perezvon=leadgen] [data-screen=timer]").wait_for(state="attached", timeout=20000)
        lead = await newest_lead(site, number)
        assert (lead.phone, lead.source) == (e164, "leadgen"), (way, entry)
        await forget_duplicate(perezvon_app, site, e164)


@pytest.mark.parametrize("way", ("pasted", "autofilled"))
async def test_letters_and_extensions_stay_as_entered_and_are_refused_as_the_server_refuses_them(
    way, live, make_site, clipboard_page
):
    page = clipboard_page
    site = await make_site(widget={"thresholds": {"time_seconds": 0, "exit": False, "scroll_percent": 0}})
    await page.goto(live.page_url(site))
    await ready(page)
    await page.locator("[data-perezvon=widget] .btn").click()
    await page.locator(WIDGET).wait_for(timeout=20000)
    phone = page.locator(f"{WIDGET} input[type=tel]")
    for entry, error in REFUSED:
        await phone.evaluate("input => { input.value = ''; input.dispatchEvent(new Event('input')); }")
        await enter(page, WIDGET, entry, way)
        assert await phone.input_value() == entry  # never cut to fit the mask
        await page.locator(f"{WIDGET} button.go").click()
        message = page.locator(f"{WIDGET} .fld:has(input[type=tel]) .err")
        assert await message.text_content() == gettext(error, "ru"), (way, entry)
        assert await phone.get_attribute("aria-invalid") == "true"
    assert await Lead.filter(connection_id=site.id).count() == 0


async def test_typing_over_the_mask_edits_digits_not_brackets(live, make_site, page):
    site = await make_site(widget={"thresholds": {"time_seconds": 0, "exit": False, "scroll_percent": 0}})
    await page.goto(live.page_url(site))
    await ready(page)
    await page.locator("[data-perezvon=widget] .btn").click()
    phone = page.locator(f"{WIDGET} input[type=tel]")
    await phone.click()
    await phone.press_sequentially("9165554433")
    await phone.press_sequentially("7")  # a key past the end is refused, as maxlength would
    assert await phone.input_value() == "+7 (916) 555-44-33"
    # Backspace just after the mask's ") " deletes the digit before it
    await phone.evaluate("input => input.setSelectionRange(9, 9)")
    await page.keyboard.press("Backspace")
    assert await phone.input_value() == "+7 (915) 554-43-3"
    await page.keyboard.press("6")  # typed where the caret is, not at the end
    assert await phone.input_value() == "+7 (916) 555-44-33"


#: a third-party app that only uses the runtime's public interface for its phone field
CALLMEBACK_JS = """
window.Perezvon.define("callmeback", function (ctx) {
  var host = ctx.mount("callmeback"), phone = ctx.phoneInput("Телефон", "+7 (999) 999-99-99", "cmb-phone");
  var form = ctx.el("form", { novalidate: true, style: { position: "fixed", top: "20px", left: "20px", width: "320px", background: "#fff" } },
    [phone.node, ctx.el("button", { type: "submit", text: "Позвоните мне" })]);
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    if (!phone.check()) return;
    ctx.submit({ phone: phone.value(), consent: true }, ctx.detail({ trigger: "button" }))
      .then(function (res) { form.setAttribute("data-sent", res.lead_id); });
  });
  host.root.appendChild(form);
  ctx.ready();
});
"""


async def test_a_third_party_app_gets_the_same_phone_input(perezvon_app, make_site, clipboard_page, tmp_path):
    from marshmallow import Schema
    from sitehelpers import LiveServer

    from perezvon.api import Application
    from perezvon.core import enablement

    page = clipboard_page
    script = tmp_path / "callmeback.js"
    script.write_text(CALLMEBACK_JS)

    class CallMeBack(Application):
        key = "callmeback"
        title = "Call me back"
        lead_source = "api"
        settings_schema = Schema
        client_script = script

    registry = perezvon_app.host.registry
    registry.current_plugin = "callmeback_plugin"
    registry.add_application(CallMeBack())
    registry.current_plugin = "?"
    server = LiveServer(perezvon_app, int(os.environ.get("PEREZVON_TEST_APP_PORT", "0")))  # serves the app's code
    await server.start()
    try:
        for way, (entry, e164) in zip(WAYS, [ACCEPTED[0], ACCEPTED[5], ACCEPTED[9]]):
            site = await make_site()
            await enablement.enable(site, enablement.APPLICATION, "callmeback")
            await page.goto(server.page_url(site))
            await ready(page, "callmeback")
            box = "[data-perezvon=callmeback] form"
            await enter(page, box, entry, way)
            assert await page.locator(f"{box} input[type=tel]").input_value() == shown_as(e164), (way, entry)
            assert await send_from(page, f"{box} button") == 201
            lead = await newest_lead(site, 1)
            assert (lead.phone, lead.source) == (e164, "api"), (way, entry)
    finally:
        await server.stop()
        del registry.applications["callmeback"]
        del registry.owner[("application", "callmeback")]


async def send_from(page, button: str) -> int:
    async with page.expect_response(lambda r: r.url.endswith("/api/v1/leads") and r.request.method == "POST") as sent:
        await page.locator(button).click()
    return (await sent.value).status
