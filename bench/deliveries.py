"""Delivery benchmark: deliveries/s through one worker, and a slow integration vs. the callback.

1. Throughput: ``--count`` ``lead_created`` deliveries of the signed-webhooks
   plugin are queued at once (one call each, rows made directly) and ONE
   worker process (this one, the production ``perezvon.core.worker.build_workers``:
   its deliveries worker takes them) pushes them to a local HTTP receiver
   that answers 200 at once. Reported: stored
   successful deliveries per second, from the first job picked up to the last
   ``Delivery`` row written (every try is a real HTTP POST with HMAC signing
   and a database insert).
2. Slow integrations: all four server-side integrations plus webhooks are
   switched on for a connection and pointed at a receiver that takes
   ``--slow`` seconds (5 by default) to answer every request. ``--leads``
   leads are posted through the real web app (ASGI) at ``--rate`` per second
   while the worker runs, and lead -> first dial (``attempts.dialled_at`` -
   the moment the 201 arrived) is reported, next to the same run with no
   integration switched on.

The receiver runs in a child process (plain asyncio streams), so its work is
not counted against the worker. SQLite in a fresh temp dir and an embedded
Redis unless ``--database-url`` / ``--redis-url`` are given.

    .venv/bin/python bench/deliveries.py [--count 2000] [--slow 5] [--leads 40] [--rate 10]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def receiver_main(port_queue, delay: float) -> None:
    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                if delay:
                    await asyncio.sleep(delay)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port_queue.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


def start_receiver(delay: float) -> tuple[multiprocessing.Process, str]:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=receiver_main, args=(queue, delay), daemon=True)
    process.start()
    return process, f"http://127.0.0.1:{queue.get(timeout=30)}"


async def stop_workers(workers, task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await workers.close()  # jobs cut short by the stop; their rows are counted already


def cpu_seconds() -> float:
    """CPU time of this process (the worker; the receivers run in children)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def make_app(args, data_dir: Path):
    from perezvon.core.app import Perezvon
    from perezvon.core.settings import Settings

    settings = Settings.from_env(
        env={},
        data_dir=data_dir,
        database_url=args.database_url or f"sqlite://{data_dir / 'bench.sqlite3'}",
        redis_url=args.redis_url,
        plugins_path=ROOT / "plugins.toml",
        leads_per_ip_per_minute=10**6,
        connection_cache_seconds=0.0,
        outgoing_allow=("127.0.0.1",),  # the bench's receivers listen there (docs/admin.md#outgoing-requests)
    )
    app = Perezvon(settings)
    await app.start(migrate=True)
    if args.redis_url:
        await app.redis.flushdb()
    return app


async def new_site(name: str):
    from perezvon.core.models import Connection, OperatorNumber, Project

    project = await Project.create(name=name)
    connection = await Connection.create(
        project=project,
        domain=f"{name}-{uuid.uuid4().hex[:6]}.bench",
        schedule={str(d): ["00:00", "24:00"] for d in range(1, 8)},
    )
    await OperatorNumber.create(connection=connection, phone="+74951234567")
    return connection


async def throughput(app, url: str, count: int) -> dict:
    from perezvon.core import enablement
    from perezvon.core.models import Call, Delivery, Lead
    from perezvon.core.queue import JobQueue, delivery_job
    from perezvon.core.worker import build_workers

    site = await new_site("throughput")
    await enablement.enable(
        site,
        enablement.INTEGRATION,
        "webhooks",
        {"url": url + "/hook", "secret": "bench-secret-0123456789", "events": ["lead_created"]},
    )
    now = dt.datetime.now(dt.UTC)
    leads = [
        Lead(id=uuid.uuid4(), connection_id=site.id, source="api", phone=f"+7916{i:07d}", created_at=now)
        for i in range(count)
    ]
    await Lead.bulk_create(leads, batch_size=500)
    # finished calls: only the deliveries run, no attempt competes for the worker
    calls = [
        Call(id=uuid.uuid4(), lead_id=lead.id, connection_id=site.id, created_at=now, state="finished")
        for lead in leads
    ]
    await Call.bulk_create(calls, batch_size=500)
    await JobQueue(app.redis).enqueue([delivery_job("webhooks", "lead_created", str(c.id)) for c in calls])
    before_ok, before_failed = (await Delivery.filter(ok=True).count(), await Delivery.filter(ok=False).count())
    workers = build_workers(app)
    task = asyncio.create_task(workers.async_run())
    started, cpu_before = time.perf_counter(), cpu_seconds()
    while (done := await Delivery.filter(ok=True).count() - before_ok) < count:
        if time.perf_counter() - started > 600:
            break
        await asyncio.sleep(0.05)
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu_before
    await stop_workers(workers, task)
    failed = await Delivery.filter(ok=False).count() - before_failed
    return {
        "deliveries": done,
        "failed_tries": failed,
        "seconds": round(elapsed, 2),
        "per_second": round(done / elapsed, 1),
        # what the box's load cannot inflate much: the worker's own CPU, and the rate it allows
        "cpu_ms_per_delivery": round(1000 * cpu / max(done, 1), 2),
        "per_second_of_one_busy_core": round(done / cpu, 1) if cpu else None,
    }


async def lead_to_dial(app, slow_url: str | None, leads: int, rate: float) -> dict:
    import httpx

    from perezvon.core import enablement
    from perezvon.core.models import Attempt
    from perezvon.core.worker import build_workers
    from perezvon.web.app import create_app

    site = await new_site("slow" if slow_url else "plain")
    if slow_url:
        for key, settings in {
            "webhooks": {"url": slow_url + "/hook", "secret": "bench-secret-0123456789", "timeout": 30},
            "calltouch": {"site_id": "123", "api_token": "t", "api_url": slow_url},
            "comagic": {"access_token": "k" * 32, "site_id": 1, "successful_tag_id": 1, "api_url": slow_url},
            "google_analytics": {"measurement_id": "G-BENCH1234", "api_secret": "s", "mp_url": slow_url + "/mp"},
            "metrika": {"counter_id": "12345678"},
        }.items():
            await enablement.enable(site, enablement.INTEGRATION, key, settings)
    workers = build_workers(app)
    task = asyncio.create_task(workers.async_run())
    received: dict[str, float] = {}
    transport = httpx.ASGITransport(app=create_app(app, manage_lifecycle=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for i in range(leads):
            response = await client.post(
                "/api/v1/leads",
                json={"token": site.token, "phone": f"+7917{uuid.uuid4().int % 10**7:07d}", "consent": True},
            )
            assert response.status_code == 201, response.text
            received[response.json()["call_id"]] = time.time()
            await asyncio.sleep(1 / rate)
    deadline = time.monotonic() + 120
    while await Attempt.filter(call_id__in=list(received), dialled_at__not_isnull=True).count() < leads:
        assert time.monotonic() < deadline, "calls were not dialled"
        await asyncio.sleep(0.1)
    rows = await Attempt.filter(call_id__in=list(received), number=1).values_list("call_id", "dialled_at")
    waits = [(dialled.timestamp() - received[str(call_id)]) * 1000 for call_id, dialled in rows]
    await stop_workers(workers, task)
    return {
        "leads": leads,
        "p50_ms": round(pct(waits, 50), 1),
        "p99_ms": round(pct(waits, 99), 1),
        "max_ms": round(max(waits), 1),
    }


async def main(args) -> None:
    fast, fast_url = start_receiver(0)
    slow, slow_url = start_receiver(args.slow)
    with tempfile.TemporaryDirectory(prefix="perezvon-bench-") as tmp:
        app = await make_app(args, Path(tmp))
        try:
            print(
                f"throughput ({args.count} webhook deliveries, one worker):",
                await throughput(app, fast_url, args.count),
                flush=True,
            )
            if not args.skip_dial:
                print(
                    "lead -> first dial, no integrations:",
                    await lead_to_dial(app, None, args.leads, args.rate),
                    flush=True,
                )
                print(
                    f"lead -> first dial, 4 integrations + webhooks answering in {args.slow:g} s:",
                    await lead_to_dial(app, slow_url, args.leads, args.rate),
                    flush=True,
                )
        finally:
            await app.stop()
    for process in (fast, slow):
        process.terminate()
        process.join(5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--slow", type=float, default=5.0)
    parser.add_argument("--leads", type=int, default=40)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--database-url", default=os.environ.get("PEREZVON_DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("PEREZVON_REDIS_URL"))
    parser.add_argument("--skip-dial", action="store_true", help="measure the throughput only")
    parser.add_argument(
        "--plain-asyncio",
        action="store_true",
        help="run on asyncio's own loop instead of the one `perezvon worker` uses (uvloop)",
    )
    args = parser.parse_args()
    from perezvon.core.cli import _loop_factory

    with asyncio.Runner(loop_factory=None if args.plain_asyncio else _loop_factory()) as runner:
        runner.run(main(args))
