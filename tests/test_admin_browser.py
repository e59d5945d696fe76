"""The admin in a real browser (Debian Chromium via playwright), end to end.

A staff member signs in, sets up a connection from scratch, changes its
settings; a lead arrives and shows up in the Calls table; it is tagged,
exported and the .xlsx is opened with openpyxl; then each access level sees
what it may. Screenshots of the main pages go to docs/img/admin-*.png (README).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import openpyxl
import pytest
import uvicorn
from test_admin_helpers import PASSWORD, make_user

from perezvon.core.models import Call, Connection, Project
from perezvon.web.app import create_app

#: the screenshots in docs/img are refreshed only when asked (PEREZVON_ADMIN_SCREENSHOTS=1), so that
#: running the tests never changes tracked files; otherwise they go to a temp dir
SCREENSHOTS = (
    Path(__file__).resolve().parent.parent / "docs" / "img"
    if os.environ.get("PEREZVON_ADMIN_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "perezvon-admin-screenshots"
)


@pytest.fixture
async def live_admin(perezvon_app):
    """The web app on a real port, in the test's event loop."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(perezvon_app, manage_lifecycle=False), log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the web server did not start"
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


async def sign_in(page, base: str, phone: str, password: str = PASSWORD) -> None:
    await page.goto(f"{base}/login")
    await page.fill("#phone", phone)
    await page.fill("#password", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(lambda url: "/login" not in url)


async def shot(page, name: str, *, for_docs: bool = True) -> None:
    """A screenshot; ``for_docs=False`` keeps it out of docs/img (tests/test_admin_layout.py makes the
    pictures of the Calls table and the dashboard, on a month of realistic data)."""
    folder = SCREENSHOTS if for_docs else Path(tempfile.gettempdir()) / "perezvon-admin-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"admin-{name}.png"
    await page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 10_000  # a real page, not a blank one


async def wait_for(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.1)


async def test_set_up_a_site_and_work_its_calls(perezvon_app, live_admin, page, perezvon_run_jobs):
    base = live_admin
    staff = await make_user(staff=True, first_name="Ирина")
    await sign_in(page, base, staff.phone)
    await page.goto(f"{base}/lang/en?next=/staff/projects")

    # a project and a connection from scratch
    company = f"Autohaus {uuid.uuid4().hex[:4]}"
    await page.fill("#f-name", company)
    await page.fill("#f-legal_entity", "Autohaus LLC")
    await page.fill("#f-manager_name", "Irina Petrova")
    await page.click("button.primary")
    await page.wait_for_url("**/projects/*")
    project = await Project.get(name=company)
    await page.goto(f"{base}/staff/connections?project={project.id}")
    domain = f"cars-{uuid.uuid4().hex[:6]}.example"
    await page.fill("#domain", domain)
    await page.fill(
        "#cname", "Cars & Co"
    )  # escaping is checked in test_admin_calls.py; these pages are the docs' pictures
    await page.click("button.primary")
    await page.wait_for_url("**/settings/general")
    connection = await Connection.get(domain=domain)

    # General: Save/Cancel appear only once something changed; a bad value is refused next to its field
    assert not await page.is_visible(".save-bar button.primary")
    await page.fill("#f-timer_seconds", "-1")
    assert await page.is_visible(".save-bar button.primary")
    await page.click(".save-bar button.primary")
    assert await page.locator(".field-number.has-error .error").count() >= 1
    await page.fill("#f-timer_seconds", "45")
    await page.click(".save-bar button.primary")
    await page.wait_for_selector(".flash")
    assert (await Connection.get(id=connection.id)).timer_seconds == 45

    # Numbers: an operator number
    await page.goto(f"{base}/connections/{connection.id}/settings/numbers")
    await page.fill("input[name=phone]", "+7 495 765-43-21")
    await page.click("text=Add number")
    await page.wait_for_selector("text=+74957654321")

    # Working hours: round the clock, so the lead is called at once
    await page.goto(f"{base}/connections/{connection.id}/settings/hours")
    for day in "1234567":
        await page.check(f"input[name=works_{day}]")
        await page.fill(f"input[name=open_{day}]", "00:00")
        await page.fill(f"input[name=close_{day}]", "24:00")
    await page.click(".save-bar button.primary")
    await page.wait_for_selector(".flash")
    assert (await Connection.get(id=connection.id)).schedule["7"] == ["00:00", "24:00"]

    # Telephony: client first, a redial rule
    await page.goto(f"{base}/connections/{connection.id}/settings/telephony")
    await page.select_option("#f-first_direction", "client_first")
    # the built-in rule for a busy operator, changed: stored as that one rule's override
    await page.locator("tr.rule-built_in:has(input[value='486-*'])").first.locator("input[name$=_period]").fill("90")
    await page.click(".save-bar button.primary")
    await page.wait_for_selector(".flash")
    await shot(page, "telephony")
    saved = await Connection.get(id=connection.id)
    assert saved.telephony["first_direction"] == "client_first"
    assert saved.redial_matrix == {"operator_first": {"*": {"486-*": {"period": 90, "direction": "operator_first"}}}}

    # Site code
    await page.goto(f"{base}/connections/{connection.id}/settings/code")
    assert connection.token in await page.inner_text("#snippet")

    # a lead arrives (as the site script would send it) and the simulator calls back
    async with httpx.AsyncClient(base_url=base) as client:
        answer = await client.post(
            "/api/v1/leads",
            json={
                "token": connection.token,
                "phone": "+7 916 555-12-34",
                "consent": True,
                "name": "Anna Smirnova",
                "page_url": f"https://{domain}/sale",
                "utm": {"source": "yandex"},
                "visit": {"pages": 3, "trigger": "exit"},
            },
        )
        assert answer.status_code == 201, answer.text
    call_id = answer.json()["call_id"]
    await perezvon_run_jobs()
    await wait_for(lambda: Call.filter(id=call_id, state="finished").exists())

    await page.goto(f"{base}/calls?connection={connection.id}")
    row = page.locator("tr.call").first
    assert "+79165551234" in await row.inner_text()
    assert "Anna Smirnova" in await row.inner_text()
    await shot(page, "calls", for_docs=False)

    # tag it in the detail panel
    await row.locator("a").first.click()
    await page.wait_for_url(lambda url: f"/calls/{call_id}" in url)
    await page.fill("input[name=name]", "test drive")
    await page.click("text=Add tag")
    await page.wait_for_selector(".user-tags .tag")
    assert await page.inner_text(".user-tags") == "test drive"
    await shot(page, "call")

    # export the filtered set and open it
    await page.goto(f"{base}/calls?connection={connection.id}")
    await page.click("text=Export .xlsx")
    await page.wait_for_url("**/exports/*")
    link = page.locator("#export-download")
    await link.wait_for(state="visible", timeout=30000)
    async with page.expect_download() as download_info:
        await link.click()
    download = await download_info.value
    workbook = openpyxl.load_workbook(io.BytesIO(Path(await download.path()).read_bytes()), read_only=True)
    rows = list(workbook.active.iter_rows(values_only=True))
    assert len(rows) == 2 and "+79165551234" in rows[1] and "test drive" in rows[1] and "yandex" in rows[1]

    # the connection page with its cards, the projects list and the dashboard
    await page.goto(f"{base}/connections/{connection.id}")
    await shot(page, "connection")
    await page.goto(f"{base}/projects")
    assert company in await page.inner_text("main")
    await shot(page, "projects")
    await page.goto(f"{base}/dashboard?connection={connection.id}")
    assert "1" in await page.inner_text(".stats")
    await shot(page, "dashboard", for_docs=False)


async def test_each_access_level_in_the_browser(perezvon_app, perezvon_site, live_admin, browser):
    from test_admin_helpers import make_call

    base = live_admin
    call = await make_call(perezvon_site, phone="+79167770011")
    project = await Project.get(id=perezvon_site.project_id)
    users = {
        "view": await make_user(level="view", connection=perezvon_site),
        "edit": await make_user(level="edit", project=project),
        "full": await make_user(level="full", project=project),
    }
    for level, user in users.items():
        context = await browser.new_context(viewport={"width": 1024, "height": 768}, locale="ru-RU")  # a tablet
        page = await context.new_page()
        try:
            await sign_in(page, base, user.phone)
            await page.goto(f"{base}/calls/{call.id}")
            can_tag = await page.locator("input[name=name]").count() > 0
            assert can_tag == (level != "view"), level
            await page.goto(f"{base}/connections/{perezvon_site.id}/settings/general")
            editable = await page.locator("#f-name").is_enabled()
            assert editable == (level != "view"), level
            await page.goto(f"{base}/connections/{perezvon_site.id}")
            switches = await page.locator("form[action$='/toggle']").count()
            assert (switches > 0) == (level == "full") or not perezvon_app.host.registry.applications
            response = await page.goto(f"{base}/staff/users")
            assert response.status == 403
            assert "Звонки" in await page.inner_text("header")  # Russian by the browser's language
        finally:
            await context.close()
