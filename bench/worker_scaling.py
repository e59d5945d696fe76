"""Worker scaling (issue 15): one ``perezvon worker`` against two, the same backlog, PostgreSQL + the Redis server.

The figure: "two worker processes vs one (PostgreSQL): >= 1.7x callbacks/s".

What runs, all real processes on 127.0.0.1, once per round (``--workers`` 1, then 2):

* a fresh PostgreSQL database (dropped afterwards) and a flushed database of the Redis server;
* ``perezvon demo --json`` (migrate and seed), one ``perezvon web``, telephony by the simulator with the
  repository's plugins.toml, as a default install has it (a call is about 3 s; the mail plugin writes each
  call's e-mail to the outbox);
* ``--leads`` (3,000) leads posted to the demo site with no worker running (32 connections, distinct
  phones, client IPs rotated as in bench/lead_intake.py), so every round faces the same backlog;
* then the round's worker processes are started and the bench waits until every first attempt has ended.

Callbacks/s of a round is the backlog over the time from the first attempt's start (``attempts.started_at``)
until every first attempt has ended and no job is due in the queues any more: a callback is whole with the
notifications and pushes of its ending. The worker processes' start-up is not in it. The CPU of the workers,
of the web process and of the whole machine is read from the workers' start until then.

Exit status: 1 if a round leaves a call without its first attempt ended, or if two workers do less than
``--floor`` (1.7) times the callbacks/s of one; 2 if a round could not run.

    .venv/bin/python bench/worker_scaling.py [--leads 3000]

Figures go to stdout and bench/results/worker_scaling-postgres.json; the server logs to
bench/results/worker_scaling-postgres-<role>.log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import RESULTS, VENV_BIN, install_uvloop  # noqa: E402
from lead_intake import (  # noqa: E402
    CpuMeter,
    HttpConnection,
    LeadFactory,
    PostgresStore,
    Servers,
    Tally,
    flush_redis,
    parse_db_time,
    process_cpu_seconds,
    scan_log,
    send,
    wait_quiet,
)

SETTLE_TIMEOUT = 900.0  # seconds for one round's backlog to be called
CONNECTIONS = 32


class RoundServers(Servers):
    """The web process and ``count`` workers of one round, logged as ``worker_scaling-postgres-<role>.log``."""

    stop_order = ("worker1", "worker2", "worker3", "worker4", "web")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.bench = "worker_scaling"


async def post_backlog(factory: LeadFactory, tally: Tally, port: int, count: int) -> list[str]:
    """``count`` leads, CONNECTIONS at a time; the call ids of those answered 201 (all, or it raises)."""
    calls: list[str] = []
    refused: list[int | None] = []
    requests = [factory.next_request() for _ in range(count)]

    async def user(index: int) -> None:
        conn = HttpConnection(port)
        try:
            for raw in requests[index::CONNECTIONS]:
                status, answer = await send(conn, raw, tally)
                if status == 201 and answer:
                    calls.append(answer["call_id"])
                else:
                    refused.append(status)
        finally:
            conn.close()

    await asyncio.gather(*(user(i) for i in range(CONNECTIONS)))
    if refused:
        raise RuntimeError(f"{len(refused)} backlog leads refused, e.g. {refused[:5]} ({tally.samples})")
    return calls


async def wait_ended(store: PostgresStore, call_ids: list[str]) -> dict[str, tuple]:
    """Poll until every first attempt has ended (bounded by SETTLE_TIMEOUT); the rows."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        rows = await store.first_attempts(call_ids)
        ended = sum(1 for row in rows.values() if row[2] is not None)
        if ended == len(call_ids) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.5)


async def one_round(workers: int, args: argparse.Namespace) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="perezvon-bench-scaling-"))
    store = PostgresStore()
    servers = RoundServers("postgres", store.url, args.redis_url, data_dir)
    flush_redis(args.redis_url)
    await store.create()
    try:
        demo = servers.demo()
        factory, tally = LeadFactory(demo["site_token"], servers.port), Tally()
        servers.start_web()
        servers.wait_healthy()
        posted_at = time.monotonic()
        calls = await post_backlog(factory, tally, servers.port, args.leads)
        print(
            f"round of {workers}: {len(calls)} leads queued in {time.monotonic() - posted_at:.1f} s; "
            f"starting {workers} worker(s)",
            flush=True,
        )
        roles = [f"worker{n}" for n in range(1, workers + 1)]
        pids = [servers.start(role, [str(VENV_BIN / "perezvon"), "worker"]).pid for role in roles]
        before = [process_cpu_seconds(pid) for pid in pids]
        workers_started = time.time()
        meter = CpuMeter(servers.procs["web"].pid, *pids)
        rows = await wait_ended(store, calls)
        quiet = await wait_quiet(args.redis_url, SETTLE_TIMEOUT)
        *cpu, _load_generator, machine_busy, stolen = meter.read()
        worker_cpu = sum(process_cpu_seconds(pid) - b for pid, b in zip(pids, before))
        started = [parse_db_time(row[0]) for row in rows.values() if row[0] is not None]
        ended = [parse_db_time(row[2]) for row in rows.values() if row[2] is not None]
        # a callback's work goes on after its call: the notifications and pushes of its ending
        span = quiet - min(started) if started else None
        return {
            "workers": workers,
            "leads": len(calls),
            "first_attempts_ended": len(ended),
            "not_ended": len(calls) - len(ended),
            "span_seconds": round(span, 2) if span else None,
            "callbacks_per_second": round(len(ended) / span, 1) if span else None,
            # what the span leaves out: the workers' start-up before the first attempt, and after the last
            "workers_started_to_first_attempt_seconds": round(min(started) - workers_started, 2) if started else None,
            "last_call_end_to_quiet_seconds": round(quiet - max(ended), 2) if ended else None,
            "cpu": {
                "web_percent_of_one_core": cpu[0],
                "workers_percent_of_one_core": cpu[1:],
                "machine_busy_percent": machine_busy,
                "machine_stolen_percent": stolen,
                "cores": os.cpu_count(),
                # the workers' whole CPU from their start (start-up included) per callback
                "worker_cpu_ms_per_callback": round(1000 * worker_cpu / len(ended), 2) if ended else None,
            },
        }
    finally:
        servers.stop_all()
        logs = {role: {"path": str(path), **scan_log(path)} for role, path in servers.logs.items()}
        await store.drop()
        flush_redis(args.redis_url)
        shutil.rmtree(data_dir, ignore_errors=True)
        print(f"round of {workers}: server logs {json.dumps(logs, ensure_ascii=False)[:600]}", flush=True)


def line(report: dict) -> str:
    cpu = report["cpu"]
    return (
        f"{report['workers']} worker(s): {report['first_attempts_ended']}/{report['leads']} callbacks in "
        f"{report['span_seconds']} s = {report['callbacks_per_second']}/s; CPU: workers "
        f"{cpu['workers_percent_of_one_core']}% of a core, web {cpu['web_percent_of_one_core']}%, machine "
        f"{cpu['machine_busy_percent']}% busy + {cpu['machine_stolen_percent']}% stolen ({cpu['cores']} cores); "
        f"worker CPU per callback {cpu['worker_cpu_ms_per_callback']} ms"
    )


async def run(args: argparse.Namespace) -> dict:
    for old in RESULTS.glob("worker_scaling-postgres-*"):
        old.unlink()
    rounds = []
    for workers in (1, 2) if not args.one else (1,):
        rounds.append(await one_round(workers, args))
        print(line(rounds[-1]), flush=True)
    if args.one:
        return {"rounds": rounds, "ratio": None, "floor": args.floor}
    one, two = (r["callbacks_per_second"] for r in rounds)
    return {"rounds": rounds, "ratio": round(two / one, 2) if one and two else None, "floor": args.floor}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=3000, help="the backlog each round calls (default 3000)")
    parser.add_argument("--floor", type=float, default=1.7, help="the ratio two workers must reach (default 1.7)")
    parser.add_argument(
        "--one", action="store_true", help="only the round of one worker: its CPU per callback, no ratio"
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/13",
        help="a database of the local Redis server for the bench alone: it is FLUSHDB'd before and after",
    )
    args = parser.parse_args()
    if not 100 <= args.leads <= 100_000:
        parser.error("keep --leads in 100..100000")
    if "127.0.0.1" not in args.redis_url and "localhost" not in args.redis_url:
        parser.error("--redis-url must be a local Redis")
    RESULTS.mkdir(parents=True, exist_ok=True)
    install_uvloop()
    try:
        result = asyncio.run(run(args))
    except Exception as exc:
        print(f"FAILED: {type(exc).__name__}: {exc}", flush=True)
        return 2
    (RESULTS / "worker_scaling-postgres.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print("\n=== summary ===")
    for report in result["rounds"]:
        print(line(report))
    if not args.one:
        print(f"two workers / one: {result['ratio']}x callbacks/s (floor {args.floor}x)")
    missing = sum(r["not_ended"] for r in result["rounds"])
    if missing:
        print(f"{missing} calls without their first attempt ended")
    return 1 if missing or (not args.one and (result["ratio"] is None or result["ratio"] < args.floor)) else 0


if __name__ == "__main__":
    sys.exit(main())
