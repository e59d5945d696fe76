"""Operator lines under a burst (issue 16): ``--numbers`` (20) operator numbers each limited to one call,
``--leads`` (200) leads arriving at once.

What runs, in this process: a Perezvon app on the embedded stores (SQLite in a temporary directory and
the embedded Redis) unless ``--database-url`` / ``--redis-url`` name servers, the production arq workers
(``perezvon.core.worker.build_workers``) and the API taking the leads over ASGI. Telephony is the
simulator with a fixed call: ``--ring`` simulated seconds of ringing per leg, ``--talk`` of conversation,
``--speed`` simulated seconds per real second (the operator's briefing and key press add their own few
simulated seconds: the real length of an attempt is measured, not assumed).

Checks (exit 1 if one fails):

* every lead is called: each call finished successful after exactly one attempt (no "operator busy");
* no line ever carries two calls: from the attempts' start and end times, per operator number;
* the queue drains in the time the lines allow: ``ceil(leads / numbers)`` rounds of the mean attempt
  length, plus ``--overhead`` (20 %) of it and ``--slack`` (3) seconds.

    .venv/bin/python bench/operator_lines.py [--numbers 20] [--leads 200] [--talk 30] [--speed 10]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PLUGINS = """
[perezvon]
telephony = "simulator"

[plugins.simulator]
enabled = true
ring_seconds = {ring}
talk_seconds = {talk}
speed = {speed}
"""


def most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    now = most = 0
    for _, step in events:  # an end sorts before a start at the same instant
        now += step
        most = max(most, now)
    return most


async def run(args: argparse.Namespace, data_dir: Path) -> int:
    import httpx

    from perezvon.core.app import Perezvon
    from perezvon.core.models import Attempt, Call, CallState, Connection, OperatorNumber, Project
    from perezvon.core.settings import Settings
    from perezvon.core.worker import build_workers
    from perezvon.web.app import create_app

    plugins = data_dir / "plugins.toml"
    plugins.write_text(PLUGINS.format(ring=args.ring, talk=args.talk, speed=args.speed))
    settings = Settings.from_env(
        env={},
        data_dir=data_dir,
        database_url=args.database_url or f"sqlite://{data_dir / 'bench.sqlite3'}",
        redis_url=args.redis_url,
        plugins_path=plugins,
        leads_per_ip_per_minute=10**6,
        connection_cache_seconds=0.0,
    )
    app = Perezvon(settings)
    await app.start(migrate=True)
    try:
        project = await Project.create(name="Operator lines bench")
        site = await Connection.create(
            project=project,
            domain=f"lines-{uuid.uuid4().hex[:6]}.bench",
            schedule={str(d): ["00:00", "24:00"] for d in range(1, 8)},
            line_strategy=args.strategy,
            line_wait_seconds=3600,
        )
        for i in range(args.numbers):
            await OperatorNumber.create(connection=site, phone=f"+7495{5550000 + i:07d}", max_calls=1, sort_order=i)
        workers = build_workers(app, periodic_plugin_jobs=False)
        task = asyncio.create_task(workers.async_run())
        transport = httpx.ASGITransport(app=create_app(app, manage_lifecycle=False))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

                async def post(i: int) -> str:
                    answer = await client.post(
                        "/api/v1/leads", json={"token": site.token, "phone": f"+7916{i:07d}", "consent": True}
                    )
                    answer.raise_for_status()
                    return str(answer.json()["call_id"])

                started = time.perf_counter()
                call_ids = list(await asyncio.gather(*(post(i) for i in range(args.leads))))
            posted = time.perf_counter() - started
            deadline = started + args.timeout
            while (done := await Call.filter(id__in=call_ids, state=CallState.FINISHED).count()) < args.leads:
                if time.perf_counter() > deadline:
                    break
                await asyncio.sleep(0.1)
            drained = time.perf_counter() - started
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await workers.close()
        calls = await Call.filter(id__in=call_ids)
        attempts = await Attempt.filter(call_id__in=call_ids)
        spans: dict[str, list[tuple[float, float]]] = {}
        for a in attempts:
            if a.ended_at is not None:
                spans.setdefault(a.operator_number, []).append((a.started_at.timestamp(), a.ended_at.timestamp()))
        lengths = [a.ended_at.timestamp() - a.started_at.timestamp() for a in attempts if a.ended_at is not None]
        mean = sum(lengths) / max(len(lengths), 1)
        rounds = math.ceil(args.leads / args.numbers)
        allowed = rounds * mean * (1 + args.overhead) + args.slack
        successful = sum(1 for c in calls if c.display_status == "successful" and c.attempts_made == 1)
        worst = max((most_at_once(s) for s in spans.values()), default=0)
        busiest = max((len(s) for s in spans.values()), default=0)
        print(f"operator numbers {args.numbers} (limit 1 each, {args.strategy}), leads {args.leads}")
        print(f"leads posted in {posted:.2f} s; calls finished {done}/{args.leads}")
        print(f"successful after one attempt {successful}/{args.leads}; attempts {len(attempts)}")
        print(f"numbers used {len(spans)}; most calls on one number at once {worst}; busiest number {busiest} calls")
        print(
            f"attempt length mean {mean:.2f} s (min {min(lengths, default=0):.2f}, max {max(lengths, default=0):.2f})"
        )
        print(f"drained in {drained:.2f} s; the lines allow {rounds} x {mean:.2f} s = {rounds * mean:.2f} s")
        print(f"limit checked: {allowed:.2f} s (+{args.overhead:.0%} +{args.slack:g} s)")
        failures = []
        if done < args.leads or successful < args.leads:
            failures.append("not every lead was called successfully at its first attempt")
        if worst > 1:
            failures.append("a line carried two calls at once")
        if drained > allowed:
            failures.append("the queue drained slower than the lines allow")
        for failure in failures:
            print("FAILED:", failure)
        return 1 if failures else 0
    finally:
        await app.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--numbers", type=int, default=20)
    parser.add_argument("--leads", type=int, default=200)
    parser.add_argument("--strategy", default="hunt", choices=["hunt", "round_robin", "ring_all"])
    parser.add_argument("--ring", type=float, default=2.0)
    parser.add_argument("--talk", type=int, default=30)
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--overhead", type=float, default=0.2)
    parser.add_argument("--slack", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="perezvon-lines-") as tmp:
        sys.exit(asyncio.run(run(args, Path(tmp))))


if __name__ == "__main__":
    main()
