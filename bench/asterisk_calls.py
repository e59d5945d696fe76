"""Asterisk backend benchmark: many callbacks in flight through ONE worker, against the AMI emulator.

What it measures:

1. **In flight** -- ``--calls`` leads (default 500) are posted at ``--rate`` per second to
   ``perezvon web``; one ``perezvon worker`` places them through the ``asterisk`` plugin
   against ``tests/ami_emulator`` (this process, real TCP). Every call is a full
   operator-first callback: the operator answers, hears the announcement (real eSpeak NG
   audio, played out by the emulator at ``--speed`` times real time), presses 1, the
   client is rung, AMD says human, MixMonitor records, Bridge joins them, and the client
   hangs up after ``--talk`` nominal seconds. Reported: the most calls in flight at once
   (bridged pairs + legs being set up, counted from the emulator's live channels) and how
   many calls reached a final status in the database; any call left without one, or any
   lead without a call, fails the run.
2. **Lead accepted -> first Originate** -- for each 201 the client notes ``time.monotonic()``
   when the answer arrived; the emulator notes the monotonic time each ``Originate``
   arrived on its socket (same clock: one machine). p50/p99/max of the difference.
3. **Memory per in-flight callback** -- the worker's RSS (``/proc/<pid>/status``) sampled
   every 0.2 s: ``(RSS at the peak of calls in flight - RSS before the leads, after one
   warm-up call) / calls in flight at that moment``.

    .venv/bin/python bench/asterisk_calls.py [--calls 500] [--rate 20] [--speed 10] [--talk 400] [--db sqlite|postgres]

Uses SQLite in a temp dir and the Redis server at 127.0.0.1:6379 (database 12, flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]
from ami_emulator import AmiEmulator, Behaviour, Dtmf  # noqa: E402  (in the emulator process)
from lead_intake import CpuMeter, free_port, stats_ms  # noqa: E402

VENV_BIN = ROOT / ".venv" / "bin"
REDIS_URL = "redis://127.0.0.1:6379/12"
SECRET = "bench-secret"
OPERATOR = "74951234567"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Store:
    """The bench's own look into the database: SQLite file or a fresh PostgreSQL database."""

    def __init__(self, kind: str, data_dir: Path) -> None:
        self.kind, self.data_dir = kind, data_dir
        self.url = ""
        self.name = f"perezvon_bench_{os.getpid()}"

    @classmethod
    async def open(cls, kind: str, data_dir: Path) -> Store:
        store = cls(kind, data_dir)
        if kind == "postgres":
            import asyncpg

            admin = await asyncpg.connect("postgresql://postgres@127.0.0.1/postgres")
            await admin.execute(f'CREATE DATABASE "{store.name}"')
            await admin.close()
            store.url = f"postgres://postgres@127.0.0.1/{store.name}"
        return store

    async def fetch(self, sql: str, *params) -> list[tuple]:
        if self.kind == "sqlite":
            with sqlite3.connect(self.data_dir / "perezvon.sqlite3", timeout=30) as db:
                return db.execute(sql, params).fetchall()
        import asyncpg

        numbered = sql
        for i in range(1, len(params) + 1):
            numbered = numbered.replace("?", f"${i}", 1)
        conn = await asyncpg.connect(self.url.replace("postgres://", "postgresql://"))
        try:
            return [tuple(row) for row in await conn.fetch(numbered, *params)]
        finally:
            await conn.close()

    async def execute(self, sql: str, *params) -> None:
        await self.fetch(sql, *params)

    async def calls(self, ids: list[str]) -> list[tuple]:
        if self.kind == "sqlite":
            return await self.fetch(
                f"SELECT id, state, display_status FROM calls WHERE id IN ({','.join('?' * len(ids))})", *ids
            )
        import uuid

        return [
            (str(a), b, c)
            for a, b, c in await self.fetch(
                "SELECT id, state, display_status FROM calls WHERE id = ANY(?::uuid[])", [uuid.UUID(i) for i in ids]
            )
        ]

    async def close(self) -> None:
        if self.kind == "postgres":
            import asyncpg

            admin = await asyncpg.connect("postgresql://postgres@127.0.0.1/postgres")
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            await admin.close()


def emulator_main(conn, speed: float, talk: float) -> None:
    """The emulated Asterisk in a process of its own, so its event loop never delays the load
    generator's, and the arrival times it notes are not stretched by ours."""

    async def serve() -> None:
        emu = AmiEmulator(
            username="perezvon",
            secret=SECRET,
            speed=speed,
            async_agi_contexts={"perezvon-leg"},
            default_behaviour=Behaviour.human(2.0, hangup_after=talk, amd_after=1.5),
        )
        # the operator answers, and presses 1 once the announcement is over (it lasts ~6 s)
        emu.set_behaviour(OPERATOR, Behaviour.answers(1.0, dtmf=[Dtmf(25.0, "1")], hangup_after=talk + 200))
        await emu.start()
        conn.send(emu.port)
        timeline: list[tuple[float, int]] = []

        async def sample() -> None:
            while True:  # calls in flight = distinct attempts with a live channel
                timeline.append((time.monotonic(), len({c.uniqueid.rsplit("-", 1)[0] for c in emu.channels.values()})))
                await asyncio.sleep(0.1)

        sampler = asyncio.create_task(sample())
        while (command := await asyncio.to_thread(conn.recv)) != "stop":
            if command == "originates":
                conn.send([(str(a.get_ci("ChannelId", "")), a.at) for a in emu.actions("Originate")])
            elif command == "timeline":
                conn.send(timeline)
        sampler.cancel()
        await emu.stop()
        conn.send("stopped")

    asyncio.run(serve())


class EmulatorProcess:
    def __init__(self, speed: float, talk: float) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=emulator_main, args=(child, speed, talk), daemon=True)
        self.process.start()
        self.port = self.conn.recv()

    async def ask(self, command: str):
        self.conn.send(command)
        return await asyncio.to_thread(self.conn.recv)

    async def stop(self) -> None:
        if self.process.is_alive():
            await self.ask("stop")
        self.process.join(10)


def plugins_toml(port: int) -> str:
    return f"""
[perezvon]
telephony = "asterisk"

[plugins.asterisk]
enabled = true
host = "127.0.0.1"
port = {port}
username = "perezvon"
secret = "{SECRET}"

[plugins.speech]
enabled = true
"""


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rate", type=float, default=20.0, help="leads per second")
    parser.add_argument("--speed", type=float, default=10.0, help="emulated time runs this much faster")
    parser.add_argument(
        "--talk",
        type=float,
        default=400.0,
        help="nominal seconds each conversation lasts (long enough for all calls to overlap)",
    )
    parser.add_argument(
        "--db",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="postgres: a fresh database on 127.0.0.1 (dropped at the end)",
    )
    parser.add_argument("--py-spy", action="store_true", help="profile the worker (collapsed stacks in the temp dir)")
    args = parser.parse_args()

    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    data_dir = Path(tempfile.mkdtemp(prefix="pv-bench-asterisk-"))
    emu = EmulatorProcess(args.speed, args.talk)
    (data_dir / "plugins.toml").write_text(plugins_toml(emu.port))
    web_port = free_port()
    env = {
        **os.environ,
        "PEREZVON_DATA_DIR": str(data_dir),
        "PEREZVON_REDIS_URL": REDIS_URL,
        "PEREZVON_PLUGINS": str(data_dir / "plugins.toml"),
        "PEREZVON_LOG_LEVEL": "WARNING",
        "PEREZVON_LEADS_PER_IP_PER_MINUTE": "1000000",
        "PEREZVON_PUBLIC_URL": f"http://127.0.0.1:{web_port}",
    }
    env.pop("PEREZVON_DATABASE_URL", None)
    store = await Store.open(args.db, data_dir)
    if store.url:
        env["PEREZVON_DATABASE_URL"] = store.url
    demo = json.loads(
        subprocess.run(
            [str(VENV_BIN / "perezvon"), "demo", "--json"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    # one operator number for the bench connection, whatever the demo made
    await store.execute(
        "UPDATE operator_numbers SET phone = ?, extension = '' WHERE connection_id = ?",
        "+" + OPERATOR,
        demo["connection_id"],
    )
    logs = data_dir / "logs"
    logs.mkdir()
    procs = {
        role: subprocess.Popen(
            [str(VENV_BIN / "perezvon"), *argv],
            env=env,
            cwd=ROOT,
            stdout=open(logs / f"{role}.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        for role, argv in (("web", ["web", "--port", str(web_port)]), ("worker", ["worker"]))
    }
    worker_pid = procs["worker"].pid
    base = f"http://127.0.0.1:{web_port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=httpx.Limits(max_connections=64)) as client:
            for _ in range(300):
                try:
                    if (await client.get("/healthz")).json().get("telephony") == "ok":
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            else:
                raise SystemExit("the worker never reported the Asterisk link up")

            async def post(i: int) -> tuple[str, float]:
                response = await client.post(
                    "/api/v1/leads",
                    headers={"Origin": "http://localhost:3000"},
                    json={"token": demo["site_token"], "phone": f"+7916{i:07d}", "consent": True},
                )
                received = time.monotonic()
                assert response.status_code == 201, response.text
                return response.json()["call_id"], received

            # warm-up: one whole call, so code paths, caches and the announcement exist before measuring
            warm_id, _ = await post(9_999_999)
            while (await store.calls([warm_id]))[0][1] != "finished":
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)
            baseline_kib = rss_kib(worker_pid)
            originate_before = len(await emu.ask("originates"))
            rss: list[tuple[float, int]] = []
            sampling = True

            async def sample() -> None:
                while sampling:
                    rss.append((time.monotonic(), rss_kib(worker_pid)))
                    await asyncio.sleep(0.1)

            sampler = asyncio.create_task(sample())
            spy = None
            if args.py_spy:
                profile = Path(tempfile.gettempdir()) / "asterisk_calls-worker.collapsed"
                spy = subprocess.Popen(
                    [
                        str(VENV_BIN / "py-spy"),
                        "record",
                        "--format",
                        "raw",
                        "--rate",
                        "200",
                        "--nonblocking",
                        "-o",
                        str(profile),
                        "--pid",
                        str(worker_pid),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            meter = CpuMeter(worker_pid, procs["web"].pid)
            started = time.monotonic()
            tasks = []
            for i in range(args.calls):
                tasks.append(asyncio.create_task(post(i)))
                await asyncio.sleep(max(0.0, started + (i + 1) / args.rate - time.monotonic()))
            accepted = dict(await asyncio.gather(*tasks))
            deadline = time.monotonic() + args.talk / args.speed + 120
            while True:
                left = sum(
                    1
                    for _, state, _ in await store.calls(list(accepted))
                    if state not in ("finished", "scheduled", "notified")
                )
                if not left or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            sampling = False
            await sampler
            if spy is not None:
                spy.send_signal(2)
                spy.wait(30)
                print(f"worker profile: {profile}", file=sys.stderr)
            worker_cpu, web_cpu, own_cpu, box_busy, box_stolen = meter.read()

        rows = await store.calls(list(accepted))
        statuses: dict[str, int] = {}
        for _, state, status in rows:
            statuses[f"{state}/{status}"] = statuses.get(f"{state}/{status}", 0) + 1
        first_originate: dict[str, float] = {}
        for channel_id, at in (await emu.ask("originates"))[originate_before:]:
            first_originate.setdefault(channel_id.split("-")[2], at)
        # the peak of calls in flight, and the worker's memory at that moment (nearest sample)
        peak_at, peak_in_flight = max(await emu.ask("timeline"), key=lambda point: point[1])
        peak_rss = min(rss, key=lambda point: abs(point[0] - peak_at))[1]
        to_originate = [
            first_originate[cid.replace("-", "")[:20]] - at
            for cid, at in accepted.items()
            if cid.replace("-", "")[:20] in first_originate
        ]
        result = {
            "db": args.db,
            "calls": args.calls,
            "accepted": len(accepted),
            "speed": args.speed,
            "talk_nominal_s": args.talk,
            "peak_in_flight": peak_in_flight,
            "final_statuses": statuses,
            "not_final": sum(n for k, n in statuses.items() if not k.startswith("finished")),
            "lead_to_first_originate_ms": stats_ms(to_originate),
            "never_originated": len(accepted) - len(to_originate),
            "worker_rss_baseline_mib": round(baseline_kib / 1024, 1),
            "worker_rss_at_peak_mib": round(peak_rss / 1024, 1),
            "kib_per_call_in_flight": round((peak_rss - baseline_kib) / max(1, peak_in_flight), 1),
            "cpu_percent": {
                "worker": worker_cpu,
                "web": web_cpu,
                "bench+emulator": own_cpu,
                "box_busy": box_busy,
                "box_stolen": box_stolen,
            },
        }
        print(json.dumps(result, indent=2, ensure_ascii=False))
        if result["not_final"] or result["never_originated"] or len(rows) != len(accepted):
            raise SystemExit("some calls did not reach a final status")
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        await emu.stop()
        await store.close()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
