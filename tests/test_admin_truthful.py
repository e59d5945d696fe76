"""Admin texts that tell the truth (issue 18), read over real HTTP and in Chromium, in both languages:
the site-code instruction names the closing ``</body>`` tag, the API-key help its ``Bearer <key>`` header,
and the export page's progress sentence
is right at every stage (counting, writing, ready, failed, stopped by a restart), whether rendered or
updated by the script."""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from live_helpers import live_server
from test_admin_helpers import PASSWORD, csrf_of, make_call, make_user, signed_in_over_http

from perezvon.core.models import Connection, Project
from perezvon.web.app import create_app


@pytest.fixture
async def live_admin(perezvon_app) -> AsyncIterator[str]:
    """The admin on a real port (PEREZVON_TEST_PORTS), in the test's event loop."""
    async with live_server(create_app(perezvon_app, manage_lifecycle=False)) as base:
        yield base


async def _site() -> Connection:
    project = await Project.create(name="Truthful texts")
    return await Connection.create(project=project, domain=f"truth-{uuid.uuid4().hex[:8]}.example", name="Сайт")


def _export_text(page: str) -> str:
    match = re.search(r'<p id="export-text">(.*?)</p>', page, re.S)
    assert match, "the export page has no progress sentence"
    return html.unescape(match.group(1)).strip()


SNIPPET_WORDS = {
    "ru": "Разместите этот код на всех страницах сайта перед закрывающим тегом &lt;/body&gt;. Он работает",
    "en": "Put this code on every page of the site, right before the closing &lt;/body&gt; tag. It works",
}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_site_code_instruction_names_the_closing_body_tag(perezvon_app, live_admin, lang):
    site = await _site()
    user = await make_user(level="view", connection=site)
    async with signed_in_over_http(live_admin, user, lang) as client:
        page = await client.get(f"/connections/{site.id}/settings/code")
    assert page.status_code == 200
    assert SNIPPET_WORDS[lang] in page.text  # shown as text, not swallowed as markup
    assert "тегом ." not in page.text and "closing  tag" not in page.text


API_KEY_WORDS = {
    "ru": "GET /api/v1/calls с заголовком Authorization: Bearer &lt;ключ&gt;.",
    "en": "GET /api/v1/calls with the header Authorization: Bearer &lt;key&gt;.",
}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_api_key_help_shows_the_header_with_its_placeholder(perezvon_app, live_admin, lang):
    user = await make_user(level="view", connection=await _site())
    async with signed_in_over_http(live_admin, user, lang) as client:
        page = await client.get("/profile")
    assert page.status_code == 200
    assert API_KEY_WORDS[lang] in page.text  # the placeholder is text, not an unknown tag the browser drops


EXPECTED = {
    "ru": {
        "counting": "Считаем звонки…",
        "running": "Записано 2 из 4 звонков…",
        "ready": "Готово: 4 звонка.",
        "failed": "Выгрузка не удалась. Повторите или сузьте условия.",
        "stopped": "Выгрузка остановилась: сервер перезапускали. Запустите её снова.",
    },
    "en": {
        "counting": "Counting the calls…",
        "running": "Written 2 of 4 calls…",
        "ready": "Ready: 4 calls.",
        "failed": "The export failed. Try again or narrow the filters.",
        "stopped": "The export stopped: the server was restarted. Start it again.",
    },
}
STAGES = {
    "counting": {"state": "running", "done": 0, "total": None, "error": ""},
    "running": {"state": "running", "done": 2, "total": 4, "error": ""},
    "ready": {"state": "ready", "done": 4, "total": 4, "error": ""},
    "failed": {"state": "failed", "done": 1, "total": 4, "error": "OperationalError"},
    # a run whose web process was restarted: its state is kept, nobody writes it any more
    "stopped": {"state": "running", "done": 1, "total": 4, "error": "", "beat": time.time() - 3600},
}


async def _set_stage(perezvon_app, location: str, user_id: int, stage: str) -> None:
    key = "pz:admin:export:" + location.rsplit("/", 1)[-1]
    await perezvon_app.redis.set(key, json.dumps({"user_id": user_id, "beat": time.time(), **STAGES[stage]}), ex=600)


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_export_progress_says_the_truth_at_every_stage(perezvon_app, live_admin, lang):
    site = await _site()
    for n in range(4):
        await make_call(site, phone=f"+7916777{lang == 'ru':d}{n:03d}")
    user = await make_user(level="view", connection=site)
    async with signed_in_over_http(live_admin, user, lang) as client:
        csrf = csrf_of((await client.get("/calls")).text)
        start = await client.post("/calls/export", data={"csrf_token": csrf, "connection": str(site.id)})
        assert start.status_code == 303
        location = start.headers["location"]
        deadline = time.monotonic() + 60
        while (state := (await client.get(location + "/status")).json())["state"] == "running":
            assert time.monotonic() < deadline, "the export did not finish"
            await asyncio.sleep(0.1)
        # the real run, finished: the page and the poll say the same true sentence
        assert state["text"] == EXPECTED[lang]["ready"]
        assert _export_text((await client.get(location)).text) == EXPECTED[lang]["ready"]
        # every stage a run goes through, as the page renders it and as the poll words it
        for stage, sentence in EXPECTED[lang].items():
            await _set_stage(perezvon_app, location, user.id, stage)
            assert _export_text((await client.get(location)).text) == sentence, stage
            status = (await client.get(location + "/status")).json()
            assert status["text"] == sentence, stage
            assert status["state"] == {"counting": "running", "stopped": "failed"}.get(stage, stage)


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_export_page_script_updates_to_the_true_sentence(perezvon_app, live_admin, browser, lang):
    """The page is opened while the run is counting; the script then follows it to the end."""
    site = await _site()
    await make_call(site, phone="+79167770999")
    user = await make_user(level="view", connection=site)
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        await context.add_cookies([{"name": "pz_lang", "value": lang, "url": live_admin}])
        page = await context.new_page()
        await page.goto(f"{live_admin}/login")
        await page.fill("#phone", user.phone)
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(lambda url: "/login" not in url)
        location = f"/exports/{uuid.uuid4().hex[:24]}"
        await _set_stage(perezvon_app, location, user.id, "counting")
        await page.goto(live_admin + location)
        text = page.locator("#export-text")
        assert (await text.text_content()).strip() == EXPECTED[lang]["counting"]
        assert not await page.locator("#export-download").is_visible()  # no download offered before the file
        await _set_stage(perezvon_app, location, user.id, "running")
        await page.wait_for_function(
            "expected => document.getElementById('export-text').textContent.trim() === expected",
            arg=EXPECTED[lang]["running"],
        )
        await _set_stage(perezvon_app, location, user.id, "ready")
        await page.locator("#export-download").wait_for(state="visible")
        assert (await text.text_content()).strip() == EXPECTED[lang]["ready"]
    finally:
        await context.close()
