"""A live Perezvon and a local test site for the browser tests of the site script.

One uvicorn server on a free loopback port answers both: requests for
``127.0.0.1`` go to Perezvon, requests for ``*.localhost`` (Chromium resolves
every ``*.localhost`` name to loopback) serve the pages in ``pages/`` with the
snippet of the connection named in the path, as a customer's site would. So
each test's connection has a domain of its own, and the script is cross-origin
exactly as on a real site.
"""
from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
import uuid
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route

PAGES = Path(__file__).with_name("pages")
ROUND_THE_CLOCK = {str(day): ["00:00", "24:00"] for day in range(1, 8)}


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
        path = PAGES / name
        if "/" in name or not path.is_file():
            return PlainTextResponse("no such page", status_code=404)
        token = request.path_params["token"]
        snippet = f'<script async src="{base_url}/inject?token={token}"></script>'
        return HTMLResponse(path.read_text().replace("<!--SNIPPET-->", snippet))

    return Starlette(routes=[Route("/t/{token}/{page}", page)])


class LiveServer:
    def __init__(self, perezvon_app) -> None:
        from web.app import create_app

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
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


@pytest.fixture(scope="session")
async def live(perezvon_app):
    server = LiveServer(perezvon_app)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def make_site(perezvon_app):
    """``await make_site(widget={...}, leadgen={...}, **connection_fields)``: a connection
    on its own ``*.localhost`` domain with the given apps on (settings as stored)."""
    from core.models import AppEnablement, Connection, OperatorNumber, Project

    async def make(*, widget: dict | None = None, leadgen: dict | None = None, **fields):
        project = await Project.create(name="Site script tests")
        fields.setdefault("schedule", ROUND_THE_CLOCK)
        connection = await Connection.create(project=project, domain=f"s{uuid.uuid4().hex[:10]}.localhost",
                                             name="Test shop", **fields)
        await OperatorNumber.create(connection=connection, phone="+74951234567")
        for key, settings in (("widget", widget), ("leadgen", leadgen)):
            if settings is not None:
                await AppEnablement.create(connection=connection, app_key=key, settings=settings)
        return connection

    return make
