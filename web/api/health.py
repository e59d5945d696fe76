"""``GET /healthz``: which part of Perezvon is down, for a supervisor, a load balancer or a person.

200 only when the database and Redis answer and at least one worker has
written its heartbeat within :data:`~perezvon.core.callbacks.WORKER_STALE_SECONDS`
(every worker writes one every few seconds, ``CallbackEngine._keep_alive``), and
at least one process sends the pushes (``core/worker.py``: a worker of both queues
or ``perezvon worker --queue deliveries``); else 503 with ``down`` naming the
parts: ``database``, ``redis``, ``workers``, ``deliveries``.
Each check is given :data:`CHECK_SECONDS`, so the answer stays quick while a
part hangs rather than refuses (docs/deploy.md).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from tortoise import connections

from perezvon.core.callbacks import WORKERS_KEY, fresh_beats
from perezvon.core.queue import DELIVERY_WORKERS_KEY

#: the longest one check may take
CHECK_SECONDS = 1.0


async def _database() -> str:
    try:
        await asyncio.wait_for(connections.get("default").execute_query("SELECT 1"), CHECK_SECONDS)
    except TimeoutError:
        return f"down: no answer within {CHECK_SECONDS:g} s"
    except Exception as exc:
        return f"down: {type(exc).__name__}: {exc}"[:300]
    return "ok"


async def _redis(redis: Any) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """Redis's state and the fresh heartbeats of the callbacks and the deliveries workers, in one round trip."""
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.ping()
            pipe.hgetall(WORKERS_KEY)
            pipe.hgetall(DELIVERY_WORKERS_KEY)
            _, beats, delivery_beats = await asyncio.wait_for(pipe.execute(), CHECK_SECONDS)
    except TimeoutError:
        return f"down: no answer within {CHECK_SECONDS:g} s", [], []
    except Exception as exc:
        return f"down: {type(exc).__name__}: {exc}"[:300], [], []
    now = time.time()
    return "ok", fresh_beats(beats, now), fresh_beats(delivery_beats, now)


async def healthz(request: Request) -> JSONResponse:
    app = request.app.state.perezvon
    database, (redis, workers, deliveries) = await asyncio.gather(_database(), _redis(app.redis))
    down = [part for part, state in (("database", database), ("redis", redis)) if state != "ok"]
    if redis == "ok":  # with Redis down the heartbeats cannot be read: that is the cause
        if not workers:
            down.append("workers")
        elif not deliveries:  # calls are placed, their pushes and notifications wait for a process
            down.append("deliveries")
    report: dict[str, object] = {
        "ok": not down,
        "down": down,
        "database": database,
        "redis": redis,
        "workers": workers,
        "deliveries": deliveries,
        "telephony": ([w.get("telephony") for w in workers] or ["no worker seen"])[0],
        # each PBX of the pool as the first worker sees it (docs/asterisk.md#a-pool-of-pbxs)
        "pbxs": ([w.get("pbxs") or [] for w in workers] or [[]])[0],
    }
    return JSONResponse(report, status_code=503 if down else 200, headers={"Cache-Control": "no-store"})
