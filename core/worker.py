"""The arq worker: callback attempts, integration pushes, notifications, the sweep."""
from __future__ import annotations

from typing import Any

from arq import cron
from arq.worker import Worker, func

from core.app import Perezvon
from core.redis import redis_settings

#: a call (ringing + talk) may last long; arq must not cancel it
ATTEMPT_TIMEOUT = 4 * 3600
#: the worker runs many calls at once: they mostly wait on the PBX
MAX_JOBS = 1000
#: how often an idle worker looks for due jobs (lead-to-dial latency lives here)
POLL_DELAY = 0.02


def _every(seconds: float) -> set[int]:
    step = max(1, int(seconds))
    return set(range(0, 60, step))


def build_worker(app: Perezvon, *, burst: bool = False, handle_signals: bool = True) -> Worker:
    """An arq worker for ``app``; ``app`` must be started (``await app.start()``)."""
    jobs = app.host.job_functions()
    sweep = jobs.pop("core.sweep")
    functions = [
        func(job, name=name, timeout=ATTEMPT_TIMEOUT if name == "core.place_attempt" else 300,
             max_tries=3 if name == "core.place_attempt" else 10)
        for name, job in jobs.items()
    ]

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx["perezvon"] = app
        await app.start_engine()

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        await app.stop_engine()

    return Worker(
        functions=functions,
        cron_jobs=[cron(sweep, name="core.sweep", second=_every(app.settings.sweep_seconds),
                        run_at_startup=True, unique=True, timeout=120)],
        redis_settings=redis_settings(app.redis_url),
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        handle_signals=handle_signals,
        burst=burst,
        max_jobs=MAX_JOBS,
        poll_delay=POLL_DELAY,
        keep_result=0,  # results are in the database; a kept result would block re-queueing a job id
        job_timeout=300,
        ctx={},
    )
