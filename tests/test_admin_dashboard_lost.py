"""The dashboard's "lost" is the Lost status of docs/calls.md#display-statuses and nothing else (issue 18):
on known data with one call of every status, over real HTTP, in both languages."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import AsyncIterator

import pytest
from live_helpers import live_server
from test_admin_helpers import make_call, make_user, signed_in_over_http

from perezvon.core.call_filters import STATUSES
from perezvon.core.models import Connection, Project
from perezvon.web.app import create_app

MSK = dt.timezone(dt.timedelta(hours=3))


@pytest.fixture
async def live_admin(perezvon_app) -> AsyncIterator[str]:
    """The admin on a real port (PEREZVON_TEST_PORTS), in the test's event loop."""
    async with live_server(create_app(perezvon_app, manage_lifecycle=False)) as base:
        yield base


CARDS = {"ru": ["звонков", "обработано", "потеряно", "в работе"], "en": ["calls", "handled", "lost", "in progress"]}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_lost_counts_only_lost_calls(perezvon_app, live_admin, lang):
    project = await Project.create(name="Dashboard")
    site = await Connection.create(project=project, domain=f"dash-{uuid.uuid4().hex[:8]}.example")
    day = dt.datetime(2026, 5, 13, 12, 0, tzinfo=MSK)
    phones = iter(range(100))
    for status in STATUSES:  # one of each: pending, successful, lost, unsuccessful, failed, cancelled, notified
        await make_call(site, phone=f"+7916888{next(phones):04d}", created_at=day, status=status)
    for extra in ("lost", "cancelled", "notified", "notified"):
        await make_call(site, phone=f"+7916888{next(phones):04d}", created_at=day, status=extra)
    user = await make_user(level="view", connection=site)
    async with signed_in_over_http(live_admin, user, lang) as client:
        page = await client.get(f"/dashboard?connection={site.id}&date_from=2026-05-01&date_to=2026-05-31")
    assert page.status_code == 200
    stats = page.text[page.text.index('class="stats"') : page.text.index('class="charts"')]
    cards = re.findall(r'class="num">(\d+)</span>\s*([^<]+?)\s*</div>', stats)
    # 11 calls: 1 successful handled; 2 lost (not the 2 cancelled, 3 notified, unsuccessful or failed); 1 pending
    assert cards == list(zip(["11", "1", "2", "1"], CARDS[lang], strict=True))
