"""``GET /healthz``: 200 when the database and Redis answer; worker state for information."""

from __future__ import annotations

import json
import time

from starlette.requests import Request
from starlette.responses import JSONResponse
from tortoise import connections

from perezvon.core.callbacks import WORKER_STALE_SECONDS, WORKERS_KEY
from perezvon.core.redis import ping


async def healthz(request: Request) -> JSONResponse:
    app = request.app.state.perezvon
    report: dict[str, object] = {}
    try:
        await connections.get("default").execute_query("SELECT 1")
        report["database"] = "ok"
    except Exception as exc:
        report["database"] = f"error: {exc}"
    report["redis"] = "ok" if await ping(app.redis) else "error: not answering"
    workers = []
    if report["redis"] == "ok":
        for raw in (await app.redis.hgetall(WORKERS_KEY)).values():
            beat = json.loads(raw)
            if time.time() - beat["at"] < WORKER_STALE_SECONDS:
                workers.append(beat)
    report["workers"] = workers
    report["telephony"] = ([w["telephony"] for w in workers] or ["no worker seen"])[0]
    healthy = report["database"] == "ok" and report["redis"] == "ok"
    return JSONResponse(
        {"ok": healthy, **report}, status_code=200 if healthy else 503, headers={"Cache-Control": "no-store"}
    )
