"""The Calls table and the dashboard at laptop width, in a real Chromium (issue 18).

With realistic long data (long site names, tags, UTM sources, pages) the Calls
table's default columns fit 1440x900 and 1280 without sideways scrolling; the
column chooser is remembered per user on the server; the filters are
searchable chips over the plain form (same query string); the dashboard's
charts are readable at 1280 px (label sizes, nothing overlapping, nothing cut)
and its filters are the Calls table's. ``PEREZVON_ADMIN_SCREENSHOTS=1`` also
writes docs/img/admin-calls.png and docs/img/admin-dashboard.png.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from live_helpers import live_server
from test_admin_helpers import PASSWORD, csrf_of, login, make_call, make_user

from perezvon.core.models import CallTag, Connection, Project, User
from perezvon.web.admin.table_columns import DEFAULT_KEYS, PREFERENCE
from perezvon.web.app import create_app

DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
MSK = dt.timezone(dt.timedelta(hours=3))
TODAY = dt.datetime.now(MSK).replace(hour=12, minute=0, second=0, microsecond=0)
USER_TAGS = [
    "тест-драйв",
    "трейд-ин: длинный тег, который менеджер написал про машину",
    "VIP-клиент",
    "перезвонить в понедельник",
]
LONG_SOURCE = "yandex_direct_search_campaign_moscow_region_spring_sale_2026"
LONG_PAGE = (
    "https://avtodom-premium-moscow.example/catalog/new-cars/crossovers/model-x5-xdrive40i-m-sport?utm_term=long"
)


@pytest.fixture
async def live_admin(perezvon_app) -> AsyncIterator[str]:
    async with live_server(create_app(perezvon_app, manage_lifecycle=False)) as base:
        yield base


@pytest.fixture
async def busy_site() -> Connection:
    """A connection with a month of calls carrying long values where people type long values."""
    project = await Project.create(name="Автодом Премиум")
    site = await Connection.create(
        project=project,
        domain=f"avtodom-premium-moscow-{uuid.uuid4().hex[:6]}.example",
        name="Автодом Премиум — отдел продаж новых автомобилей",
    )
    chance = random.Random(18)
    statuses = ["successful"] * 6 + ["lost", "unsuccessful", "cancelled", "notified", "pending"]
    number = 0
    for days_ago in range(30):
        for _ in range(chance.randint(1, 9)):
            number += 1
            # office hours, busier on weekdays' late mornings, as a dealership's calls come
            hour = min(max(int(chance.gauss(12.5, 3)), 8), 20)
            when = (TODAY - dt.timedelta(days=days_ago)).replace(hour=hour, minute=chance.randint(0, 59))
            call = await make_call(
                site,
                phone=f"+7916{number:07d}",
                name=chance.choice(["Константин Константинопольский-Щедрин", "Анна", "Иван"]),
                created_at=when,
                status=chance.choice(statuses),
                source=chance.choice(["api", "siteforms"]),
                utm_source=chance.choice([LONG_SOURCE, "google", ""]),
                page_url=LONG_PAGE,
            )
            for tag in chance.sample(USER_TAGS, chance.randint(0, 3)):
                await CallTag.create(call=call, name=tag)
    return site


def _screenshot_dir(tmp_path: Path) -> Path:
    return DOCS_IMG if os.environ.get("PEREZVON_ADMIN_SCREENSHOTS") else tmp_path


async def _signed_in_page(
    browser, base: str, user: User, *, width: int, height: int = 900, lang: str = "ru", **options
):
    context = await browser.new_context(viewport={"width": width, "height": height}, locale="ru-RU", **options)
    await context.add_cookies([{"name": "pz_lang", "value": lang, "url": base}])
    page = await context.new_page()
    await page.goto(f"{base}/login")
    await page.fill("#phone", user.phone)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(lambda url: "/login" not in url)
    return context, page


async def _sideways(page) -> dict[str, list[int]]:
    return await page.evaluate(
        """() => {
            const root = document.documentElement, wrap = document.querySelector('.table-wrap');
            return {root: [root.scrollWidth, root.clientWidth], wrap: [wrap.scrollWidth, wrap.clientWidth]};
        }"""
    )


async def _headers(page) -> list[str]:
    return await page.eval_on_selector_all("table.calls thead th", "cells => cells.map(c => c.className)")


async def test_the_calls_table_fits_a_laptop(live_admin, browser, busy_site, tmp_path):
    user = await make_user(level="view", connection=busy_site)
    context, page = await _signed_in_page(browser, live_admin, user, width=1440)
    try:
        await page.goto(f"{live_admin}/calls")
        assert await page.locator("tr.call").count() == 50  # a full page of long rows
        assert await _headers(page) == [f"col-{key}" for key in DEFAULT_KEYS]
        assert LONG_SOURCE in await page.get_attribute("td.col-source .cut[title^=yandex]", "title")
        sizes = await _sideways(page)
        assert sizes["root"][0] <= sizes["root"][1], sizes
        assert sizes["wrap"][0] <= sizes["wrap"][1], sizes
        path = _screenshot_dir(tmp_path) / "admin-calls.png"
        await page.screenshot(path=str(path))
        assert path.stat().st_size > 30_000
        await page.set_viewport_size({"width": 1280, "height": 800})
        sizes = await _sideways(page)
        assert sizes["root"][0] <= sizes["root"][1] and sizes["wrap"][0] <= sizes["wrap"][1], sizes

        # every column added: the table scrolls inside its frame, the time column stays in view
        await page.click(".column-chooser summary")
        for box in await page.query_selector_all(".column-form input[name=columns]:not(:checked)"):
            await box.check()
        await page.click(".column-form button.primary")
        await page.wait_for_selector("th.col-page")
        sizes = await _sideways(page)
        assert sizes["root"][0] <= sizes["root"][1], sizes  # the page itself still does not scroll
        assert sizes["wrap"][0] > sizes["wrap"][1], sizes
        stays = await page.evaluate(
            """() => {
                const wrap = document.querySelector('.table-wrap');
                wrap.scrollLeft = 600;
                const cell = document.querySelector('tr.call td.col-time').getBoundingClientRect();
                const site = document.querySelector('tr.call td.col-site').getBoundingClientRect();
                return [wrap.scrollLeft, cell.left - wrap.getBoundingClientRect().left, site.left < cell.left];
            }"""
        )
        assert stays[0] > 0 and abs(stays[1]) <= 2 and stays[2], stays
    finally:
        await context.close()


async def test_the_column_choice_is_remembered_per_user(live_admin, browser, busy_site):
    anna = await make_user(level="view", connection=busy_site)
    boris = await make_user(level="view", connection=busy_site)
    context, page = await _signed_in_page(browser, live_admin, anna, width=1440)
    try:
        await page.goto(f"{live_admin}/calls?status=successful")
        await page.click(".column-chooser summary")
        assert await page.is_disabled(".column-form input[value=time]")  # the link to the call is always there
        await page.check(".column-form input[value=page]")
        await page.check(".column-form input[value=operator]")
        await page.uncheck(".column-form input[value=source]")
        await page.click(".column-form button.primary")
        await page.wait_for_selector("th.col-page")
        assert "status=successful" in page.url  # back to the same filtered table
        chosen = await _headers(page)
        assert "col-page" in chosen and "col-operator" in chosen and "col-source" not in chosen
        await page.reload()
        assert await _headers(page) == chosen
    finally:
        await context.close()
    # a fresh browser (no cookies, no storage) of the same user: the server remembers
    context, page = await _signed_in_page(browser, live_admin, anna, width=1440, lang="en")
    try:
        await page.goto(f"{live_admin}/calls")
        assert await _headers(page) == chosen
        assert "Page" in await page.inner_text("table.calls thead")
    finally:
        await context.close()
    context, page = await _signed_in_page(browser, live_admin, boris, width=1440)
    try:
        await page.goto(f"{live_admin}/calls")
        assert await _headers(page) == [f"col-{key}" for key in DEFAULT_KEYS]
    finally:
        await context.close()


async def test_saving_columns_ignores_unknown_names_and_refuses_bad_input(perezvon_client, perezvon_site):
    user = await make_user(level="view", connection=perezvon_site)
    csrf = await login(perezvon_client, user)
    answer = await perezvon_client.post(
        "/calls/columns",
        data={"csrf_token": csrf, "columns": ["status", "no_such_column", "page"], "back": "/calls?status=lost"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/calls?status=lost"
    await user.refresh_from_db()
    assert user.preferences[PREFERENCE] == ["time", "status", "page"]  # the table's order, time always in
    # a choice saved before a column was dropped still shows the rest
    user.preferences = {PREFERENCE: ["retired_column", "status"]}
    await user.save(update_fields=["preferences"])
    table = await perezvon_client.get("/calls")
    assert 'class="col-time"' in table.text and 'class="col-status"' in table.text
    assert "retired_column" not in table.text
    # not a choice: nothing but unknown names, too many names, too long a name -- 400 in the user's language
    for columns in (["no_such_column"], [], ["status"] * 65, ["x" * 65]):
        refused = await perezvon_client.post("/calls/columns", data={"csrf_token": csrf, "columns": columns})
        assert refused.status_code == 400, columns
        assert "столб" in refused.text
    # a foreign "back" never leaves the admin
    answer = await perezvon_client.post(
        "/calls/columns", data={"csrf_token": csrf, "columns": ["status"], "back": "https://evil.example/"}
    )
    assert answer.headers["location"] == "/calls"
    answer = await perezvon_client.post("/calls/columns", data={"csrf_token": csrf, "action": "reset"})
    assert answer.status_code == 303
    await user.refresh_from_db()
    assert PREFERENCE not in user.preferences
    assert csrf_of((await perezvon_client.get("/calls")).text)


def _query(url: str) -> list[tuple[str, str]]:
    return sorted(parse_qsl(urlsplit(url).query, keep_blank_values=True))


async def test_chip_filters_by_typing_and_choosing(live_admin, browser, busy_site):
    user = await make_user(level="view", connection=busy_site)
    context, page = await _signed_in_page(browser, live_admin, user, width=1440)
    try:
        await page.goto(f"{live_admin}/calls")
        assert await page.locator("select[name=tag]").is_hidden()  # the plain list is kept, hidden, in the form
        tags = page.locator(".chips[data-for=tag] input")
        # keyboard only: type, the first match is active, Enter chooses it
        await tags.fill("трейд")
        await tags.press("Enter")
        # the mouse: type part of a word, click the option
        await tags.fill("vip")
        await page.click(".chips[data-for=tag] .chips-list li:has-text('VIP-клиент')")
        chips = page.locator(".chips[data-for=tag] .chip-text")
        assert await chips.all_inner_texts() == ["VIP-клиент", USER_TAGS[1]]  # in the list's order, as the URL
        # Backspace in the empty box takes the last chip off; the × button takes a chip off
        await tags.press("Backspace")
        assert await chips.all_inner_texts() == ["VIP-клиент"]
        await page.click(".chips[data-for=tag] .chip button")
        assert await chips.count() == 0
        await tags.fill("vip")
        await tags.press("ArrowDown")
        await tags.press("Enter")
        await tags.fill("трейд")
        await tags.press("Enter")
        assert await chips.all_inner_texts() == ["VIP-клиент", USER_TAGS[1]]
        await tags.fill("nothing like this")
        assert await page.inner_text(".chips[data-for=tag] .chips-list") == "Ничего не найдено"
        await tags.press("Escape")
        statuses = page.locator(".chips[data-for=status] input")
        await statuses.fill("успеш")
        await statuses.press("Enter")
        await page.click(".filters button[type=submit]")
        await page.wait_for_url(lambda url: "tag=" in url)
        with_chips = _query(page.url)
        assert ("tag", USER_TAGS[1]) in with_chips and ("tag", "VIP-клиент") in with_chips
        assert ("status", "successful") in with_chips
        rows = await page.locator("tr.call td.col-user_tags").all_inner_texts()
        assert rows and all("VIP-клиент" in row and "трейд-ин" in row for row in rows)
        assert await page.locator("tr.call td.col-status .status-successful").count() == len(rows)
    finally:
        await context.close()
    # the same choice in the plain form, without JavaScript: the very same query string
    context, page = await _signed_in_page(browser, live_admin, user, width=1440, java_script_enabled=False)
    try:
        await page.goto(f"{live_admin}/calls")
        await page.select_option("select[name=tag]", [USER_TAGS[1], "VIP-клиент"])
        await page.select_option("select[name=status]", ["successful"])
        await page.click(".filters button[type=submit]")
        await page.wait_for_url(lambda url: "tag=" in url)
        assert _query(page.url) == with_chips
    finally:
        await context.close()


GEOMETRY = """() => Array.from(document.querySelectorAll('svg.chart')).map(svg => {
    const box = svg.getBoundingClientRect();
    const scale = box.width / svg.viewBox.baseVal.width;
    const rect = r => { const b = r.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
    return {
        card: svg.closest('section').querySelector('h2').textContent,
        svg: [box.left, box.top, box.right, box.bottom],
        texts: Array.from(svg.querySelectorAll('text')).map(t => ({
            text: t.textContent, box: rect(t), label: t.classList.contains('chart-label'),
            px: parseFloat(getComputedStyle(t).fontSize) * scale,
        })),
        bars: Array.from(svg.querySelectorAll('rect')).map(rect),
    };
})"""


def _overlap(a: list[float], b: list[float], slack: float = 0.5) -> bool:
    return a[0] < b[2] - slack and b[0] < a[2] - slack and a[1] < b[3] - slack and b[1] < a[3] - slack


async def test_the_dashboard_reads_well_at_1280(live_admin, browser, busy_site, tmp_path):
    user = await make_user(level="view", connection=busy_site)
    context, page = await _signed_in_page(browser, live_admin, user, width=1280)
    try:
        await page.goto(f"{live_admin}/calls")
        calls_tags = await page.eval_on_selector_all("select[name=tag] option", "o => o.map(x => x.value)")
        await page.goto(f"{live_admin}/dashboard")
        # the Calls table's filters, tags and all
        dashboard_tags = await page.eval_on_selector_all("select[name=tag] option", "o => o.map(x => x.value)")
        assert dashboard_tags == calls_tags and set(USER_TAGS) <= set(dashboard_tags)
        assert await page.locator(".filters .chips").count() == 4
        assert await page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        path = tmp_path / "admin-dashboard.png"
        await page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 30_000
        if os.environ.get("PEREZVON_ADMIN_SCREENSHOTS"):
            await page.screenshot(path=str(DOCS_IMG / "admin-dashboard.png"), full_page=True)
        charts = await page.evaluate(GEOMETRY)
        assert len(charts) == 5
        for chart in charts:
            texts = chart["texts"]
            assert texts, chart["card"]
            for item in texts:
                assert 11 <= item["px"] <= 14, (chart["card"], item)
                # inside the chart: nothing cut at either edge
                assert item["box"][0] >= chart["svg"][0] - 0.5 and item["box"][2] <= chart["svg"][2] + 0.5, item
                for bar in chart["bars"]:
                    assert not _overlap(item["box"], bar), (chart["card"], item["text"], bar)
            for index, item in enumerate(texts):
                for other in texts[index + 1 :]:
                    assert not _overlap(item["box"], other["box"]), (chart["card"], item["text"], other["text"])
        per_day = next(c for c in charts if c["card"] == "Звонки по дням")
        first_label = next(t for t in per_day["texts"] if t["label"])
        assert first_label["box"][0] >= per_day["svg"][0]
        assert first_label["text"] == (TODAY - dt.timedelta(days=29)).strftime("%d.%m")
    finally:
        await context.close()
