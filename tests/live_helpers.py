"""Shared helper of the tests that need the web app on a real port (no tests here)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator

import uvicorn

#: where the live servers of these tests listen (PEREZVON_TEST_PORTS="first-last"; any free port when unset)
PORTS = os.environ.get("PEREZVON_TEST_PORTS", "")


def _socket() -> socket.socket:
    """A listening-ready socket on 127.0.0.1: the first free port of PEREZVON_TEST_PORTS, else any."""
    candidates = [0]
    if PORTS:
        first, _, last = PORTS.partition("-")
        candidates = list(range(int(first), int(last or first) + 1))
    for port in candidates:
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
            return sock
        except OSError:
            sock.close()
    raise RuntimeError(f"no free port in {PORTS}")


@contextlib.asynccontextmanager
async def live_server(app) -> AsyncIterator[str]:
    """``app`` served by uvicorn on a real port, in the test's event loop; yields its base URL."""
    sock = _socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", backlog=2048))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the web server did not start"
        assert not task.done(), task.exception() if task.done() else None
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        sock.close()
