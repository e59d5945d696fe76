"""Helpers for the browser tests of the site script (imported by the test modules)."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import time

WIDGET = "[data-perezvon=widget] .box"
LEADGEN = "[data-perezvon=leadgen] .box"

#: records every event of the bus in window.__events, and checks a throwing handler breaks nothing
RECORD_EVENTS = """
window.__events = [];
window.Perezvon = { q: [
  ["*", function (detail, name) { window.__events.push([name, JSON.parse(JSON.stringify(detail || {}))]); }],
  ["widget_shown", function () { throw new Error("a broken integration handler"); }],
  ["lead_sending", function (payload) { payload.extra.tracker = { session: "abc-123" }; }]
] };
"""


async def wait_for(condition, timeout: float = 20.0, interval: float = 0.1, message: str = "condition"):
    """Poll ``await condition()`` until it is truthy; the machine is slow and shared."""
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        await asyncio.sleep(interval)


async def events(page, name: str | None = None) -> list:
    found = await page.evaluate("window.__events || []")
    return [detail for event, detail in found if name is None or event == name]


async def ready(page, app: str = "widget") -> None:
    """The app has started (its triggers are armed)."""
    await page.wait_for_function(f"window.Perezvon && window.Perezvon.readyAt && window.Perezvon.readyAt.{app} >= 0",
                                 timeout=20000)


def session_state(token: str, *, minutes_ago: float, shown: dict | None = None, pages: int = 3) -> str:
    """An init script that puts a visitor session started ``minutes_ago`` into localStorage."""
    start = int((time.time() - minutes_ago * 60) * 1000)
    state = {"vid": "v" * 24, "start": start, "pages": pages, "shown": shown or {}, "ref": "", "channel": "direct",
             "utm": {"source": "", "medium": "", "campaign": "", "content": "", "term": ""}}
    return f"localStorage.setItem({json.dumps('perezvon:' + token[:10])}, {json.dumps(json.dumps(state))});"


def closed_now_schedule(timezone: str = "UTC") -> dict:
    """A weekly schedule that is closed right now and open for an hour later today or tomorrow."""
    now = dt.datetime.now(dt.UTC)
    opens = (now + dt.timedelta(hours=3)).replace(minute=0)
    day = str(opens.isoweekday())
    schedule = {str(d): None for d in range(1, 8)}
    schedule[day] = [opens.strftime("%H:00"), (opens + dt.timedelta(hours=1)).strftime("%H:00").replace("00:00", "24:00")]
    return schedule
