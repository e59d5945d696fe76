"""A bad value already stored (from before the edge checked it) poisons no read (issue 13, item 3).

A lead whose ``preferred_at`` is year 1 with a +14:00 offset was accepted before the
intake checked the window; converting it to UTC overflows. Its call is still dialled,
and the read API, the admin's detail page and the export still work, for it and for
every page holding it. The migration clears such times.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid

import openpyxl
import pytest
from test_admin_helpers import login, make_user

from perezvon.core import intake as intake_module
from perezvon.core.access import create_api_key
from perezvon.core.models import Call, Lead

YEAR_ONE = "0001-01-01T00:00:00+14:00"


@pytest.fixture
async def stored_year_one(perezvon_app, perezvon_site, new_phone, monkeypatch):
    """A lead stored with year 1, as the intake took it before it checked the window. Only SQLite ever
    stored one (as text): PostgreSQL's driver converts it to UTC on writing and refused it."""
    if not perezvon_app.settings.uses_sqlite:
        pytest.skip("PostgreSQL never stored such a time")
    monkeypatch.setattr(intake_module, "_preferred_in_range", lambda preferred, now: True)
    accepted = await perezvon_app.intake.submit(
        {"token": perezvon_site.token, "phone": new_phone(), "consent": True, "preferred_at": YEAR_ONE},
        client_ip=None,
    )
    monkeypatch.undo()
    return accepted


async def test_the_read_api_and_the_admin_show_the_lead_without_the_unreadable_time(
    perezvon_client, perezvon_site, stored_year_one, new_phone
):
    other = await perezvon_client.post(
        "/api/v1/leads", json={"token": perezvon_site.token, "phone": new_phone(), "consent": True}
    )
    assert other.status_code == 201
    user = await make_user(staff=True)
    _, raw = await create_api_key(user)
    headers = {"Authorization": f"Bearer {raw}"}
    page = await perezvon_client.get(f"/api/v1/calls?connection={perezvon_site.id}", headers=headers)
    assert page.status_code == 200, page.text
    calls = {c["id"]: c for c in page.json()["calls"]}
    assert set(calls) == {stored_year_one.call_id, other.json()["call_id"]}  # the page holding it works for both
    assert calls[stored_year_one.call_id]["lead"]["preferred_at"] is None
    one = await perezvon_client.get(f"/api/v1/calls/{stored_year_one.call_id}", headers=headers)
    assert one.status_code == 200 and one.json()["lead"]["preferred_at"] is None
    await login(perezvon_client, user)
    detail = await perezvon_client.get(f"/calls/{stored_year_one.call_id}")
    assert detail.status_code == 200
    table = await perezvon_client.get(f"/calls?connection={perezvon_site.id}")
    assert table.status_code == 200


async def test_the_export_holds_the_row(perezvon_client, perezvon_site, stored_year_one):
    csrf = await login(perezvon_client, await make_user(staff=True))
    start = await perezvon_client.post("/calls/export", data={"csrf_token": csrf, "connection": str(perezvon_site.id)})
    assert start.status_code == 303
    location = start.headers["location"]
    deadline = time.monotonic() + 60
    while (state := (await perezvon_client.get(location + "/status")).json())["state"] == "running":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert state["state"] == "ready", state
    download = await perezvon_client.get(location + "/download")
    rows = list(openpyxl.load_workbook(io.BytesIO(download.content), read_only=True).active.iter_rows(values_only=True))
    assert len(rows) == 2 and stored_year_one.call_id in rows[1]


async def test_its_call_is_dialled(perezvon_run_jobs, stored_year_one):
    await perezvon_run_jobs()
    call = await Call.get(id=stored_year_one.call_id)
    assert call.attempts_made >= 1


async def test_the_migration_clears_unreadable_times(perezvon_app, stored_year_one):
    from tortoise import connections

    db = connections.get("default")
    _, before = await db.execute_query("SELECT COUNT(*) FROM leads WHERE preferred_at < '1900-01-01'")
    assert list(before[0])[0] >= 1

    from perezvon.core.migrations import __name__ as package

    migration = __import__(f"{package}.0007_unreadable_times", fromlist=["CLEAR_UNREADABLE"])
    for sql in migration.CLEAR_UNREADABLE:
        await db.execute_script(sql)
    _, rows = await db.execute_query("SELECT COUNT(*) FROM leads WHERE preferred_at < '1900-01-01'")
    assert list(rows[0])[0] == 0
    assert (await Lead.get(id=uuid.UUID(stored_year_one.lead_id))).preferred_at is None
