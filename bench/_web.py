"""A stand-in for ``perezvon web`` used by bench/lead_intake.py only when the real
command cannot reach its database.

Why it exists: ``perezvon web`` starts Perezvon (``Tortoise.init``) inside
uvicorn's lifespan task. Tortoise 1.x keeps its state in a context variable,
and uvicorn runs the lifespan in a task of its own, so request handlers never
see that state: every ``/api/v1/leads`` answers 500 "No TortoiseContext is
currently active" and ``/healthz`` reports a database error.

This runs the very same web app and uvicorn settings (``core.cli._uvicorn_server``)
but starts Perezvon *before* uvicorn, exactly as ``perezvon serve`` does, so the
handlers inherit the context. It runs no worker. Settings come from the same
PEREZVON_* environment variables.

    python bench/_web.py --host 127.0.0.1 --port 8000
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

from core.app import Perezvon
from core.cli import _uvicorn_server
from core.settings import Settings
from web.app import create_app


async def main(host: str, port: int) -> None:
    app = Perezvon(Settings.from_env())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    try:
        web = _uvicorn_server(create_app(app, manage_lifecycle=False), host, port)
        task = asyncio.create_task(web.serve())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
        web.should_exit = True
        stopper.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await app.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    logging.basicConfig(level=os.environ.get("PEREZVON_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("tortoise", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(main(args.host, args.port))
