"""Helpers for the browser tests of the site script (imported by the test modules)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import socket
import time
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route

PAGES = Path(__file__).with_name("pages")
#: ``shop.html`` is the demo's sample shop page itself (``/site/try``), so the screenshots show what a newcomer sees
DEMO_SHOP = Path(__file__).resolve().parents[2] / "web" / "static" / "site" / "try.html"

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
    await page.wait_for_function(
        f"window.Perezvon && window.Perezvon.readyAt && window.Perezvon.readyAt.{app} >= 0", timeout=20000
    )


def session_state(token: str, *, minutes_ago: float, shown: dict | None = None, pages: int = 3) -> str:
    """An init script that puts a visitor session started ``minutes_ago`` into localStorage."""
    start = int((time.time() - minutes_ago * 60) * 1000)
    state = {
        "vid": "v" * 24,
        "start": start,
        "pages": pages,
        "shown": shown or {},
        "ref": "",
        "channel": "direct",
        "utm": {"source": "", "medium": "", "campaign": "", "content": "", "term": ""},
    }
    return f"localStorage.setItem({json.dumps('perezvon:' + token[:10])}, {json.dumps(json.dumps(state))});"


def closed_now_schedule(timezone: str = "UTC") -> dict:
    """A weekly schedule that is closed right now and open for an hour later today or tomorrow."""
    now = dt.datetime.now(dt.UTC)
    opens = (now + dt.timedelta(hours=3)).replace(minute=0)
    day = str(opens.isoweekday())
    schedule = {str(d): None for d in range(1, 8)}
    schedule[day] = [
        opens.strftime("%H:00"),
        (opens + dt.timedelta(hours=1)).strftime("%H:00").replace("00:00", "24:00"),
    ]
    return schedule


class PublicAt:
    """The session's Perezvon, seen through another public URL (the live server's)."""

    def __init__(self, app, url: str) -> None:
        self._app = app
        self.settings = dataclasses.replace(app.settings, public_url=url)

    def __getattr__(self, name):
        return getattr(self._app, name)


def _site_app(base_url: str) -> Starlette:
    async def page(request):
        name = request.path_params["page"]
        path = DEMO_SHOP if name == "shop.html" else PAGES / name
        if "/" in name or not path.is_file():
            return PlainTextResponse("no such page", status_code=404)
        token = request.path_params["token"]
        snippet = f'<script async src="{base_url}/inject?token={token}"></script>'
        return HTMLResponse(path.read_text().replace("<!--SNIPPET-->", snippet))

    return Starlette(routes=[Route("/t/{token}/{page}", page)])


class LiveServer:
    def __init__(self, perezvon_app, port: int = 0) -> None:
        from perezvon.web.app import create_app

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a given port, again right after a run
        self.sock.bind(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.perezvon = create_app(PublicAt(perezvon_app, self.base_url), manage_lifecycle=False)
        self.site = _site_app(self.base_url)

        async def dispatch(scope, receive, send):
            host = dict(scope.get("headers") or []).get(b"host", b"").decode()
            target = self.site if host.split(":")[0].endswith(".localhost") else self.perezvon
            await target(scope, receive, send)

        config = uvicorn.Config(dispatch, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or self.task.done():
                raise RuntimeError("the live server did not start")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task:
            await asyncio.wait_for(self.task, 10)

    def page_url(self, connection, page: str = "index.html", query: str = "") -> str:
        return f"http://{connection.domain}:{self.port}/t/{connection.token}/{page}{query}"
