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
   arrived on its socket (same clock: one machine). p50/p99/max of the difference, and the
   p99 of each 10 s of leads. The emulator shares the box's two cores with the worker and
   notes an Originate when its loop gets to it, so two more figures tell the parts apart:
   ``emulator_loop_lag_p99_ms_by_10_s`` (how late its 0.1 s sampling sleep woke) and
   ``lead_to_first_originate_sent_ms``, up to the moment the worker wrote the Originate to its
   socket (bench/originate_stamps/sitecustomize.py, loaded into the worker through
   ``PYTHONPATH``). The emulator keeps everything it has seen for the tests; what it has kept is
   frozen out of the garbage collector's reach every second (``gc.freeze``), or its full
   collections stall its loop for up to a second late in a run (``emulator_longest_collection_ms``).
3. **Memory per in-flight callback** -- the worker's RSS (``/proc/<pid>/status``) sampled
   every 0.2 s: ``(RSS at the peak of calls in flight - RSS before the leads, after one
   warm-up call) / calls in flight at that moment``.

    .venv/bin/python bench/asterisk_calls.py [--calls 500] [--rate 20] [--speed 10] [--talk 400] [--db sqlite|postgres]

4. **A pool of two PBXs, one killed mid-run** -- with ``--pbxs 2`` the worker dials through two
   emulators (``[[plugins.asterisk.servers]]``, docs/asterisk.md#a-pool-of-pbxs); ``--kill-after S``
   SIGKILLs the first one's process S seconds into the leads. Its calls in flight are interrupted
   and redialled on the other (the bench's redial matrix retries a telephony error after 3 s).
   Each emulator logs every channel's start and end to a file as it happens (the killed one's
   channels end at the kill); the run fails if a call is not final or if two attempts of one
   call -- on one PBX or on both -- were ever live at the same moment.

    .venv/bin/python bench/asterisk_calls.py --pbxs 2 --kill-after 10 --calls 300 --rate 20 --talk 200

Uses SQLite in a temp dir and the Redis server at 127.0.0.1:6379 (database 12, flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "tests")]
from _harness import RESULTS, ROOT, VENV_BIN  # noqa: E402
from ami_emulator import AmiEmulator, Behaviour, Dtmf  # noqa: E402  (in the emulator process)
from lead_intake import CpuMeter, free_port, machine_ticks, process_cpu_seconds, stats_ms  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/12"
SECRET = "bench-secret"
OPERATOR = "74951234567"


def busiest_second(marks: list[tuple[float, ...]], column: int) -> float:
    """The highest CPU use (% of one core) between two marks about a second apart."""
    rates = [
        100 * (later[column] - earlier[column]) / (later[0] - earlier[0])
        for earlier, later in itertools.pairwise(marks)
        if later[0] > earlier[0]
    ]
    return round(max(rates, default=0.0), 1)


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


class LoggingEmulator(AmiEmulator):
    """Notes each channel's start and end (monotonic time) in a file as it happens, line-buffered:
    a SIGKILLed emulator leaves what it saw."""

    channel_log: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: live channels per attempt (the uniqueid without its leg): calls in flight = its length,
        #: kept as channels come and go rather than counted over all of them ten times a second
        self.live_attempts: dict[str, int] = {}

    def _new_channel(self, req: Any, base: str, number: str) -> Any:
        chan = super()._new_channel(req, base, number)
        attempt = chan.uniqueid.rsplit("-", 1)[0]
        self.live_attempts[attempt] = self.live_attempts.get(attempt, 0) + 1
        if self.channel_log is not None:
            self.channel_log.write(f"start {chan.uniqueid} {time.monotonic()}\n")
        return chan

    def _destroy(self, chan: Any) -> None:
        if chan.uniqueid in self.channels:
            attempt = chan.uniqueid.rsplit("-", 1)[0]
            if self.live_attempts.get(attempt, 0) > 1:
                self.live_attempts[attempt] -= 1
            else:
                self.live_attempts.pop(attempt, None)
            if self.channel_log is not None:
                self.channel_log.write(f"end {chan.uniqueid} {time.monotonic()}\n")
        super()._destroy(chan)


def emulator_main(conn, speed: float, talk: float, channel_log: str = "") -> None:
    """The emulated Asterisk in a process of its own, so its event loop never delays the load
    generator's, and the arrival times it notes are not stretched by ours."""

    async def serve() -> None:
        emu = LoggingEmulator(
            username="perezvon",
            secret=SECRET,
            speed=speed,
            async_agi_contexts={"perezvon-leg"},
            default_behaviour=Behaviour.human(2.0, hangup_after=talk, amd_after=1.5),
        )
        # the operator answers, and presses 1 once the announcement is over (it lasts ~6 s)
        emu.set_behaviour(OPERATOR, Behaviour.answers(1.0, dtmf=[Dtmf(25.0, "1")], hangup_after=talk + 200))
        if channel_log:
            emu.channel_log = open(channel_log, "a", buffering=1)  # noqa: SIM115  (open while it serves)
        await emu.start()
        conn.send(emu.port)
        timeline: list[tuple[float, int]] = []
        #: (when, how late the sampler's 0.1 s sleep woke): the emulator's own loop lag, which its
        #: Originate stamps carry
        lags: list[tuple[float, float]] = []

        async def sample() -> None:
            while True:  # calls in flight = distinct attempts with a live channel
                timeline.append((time.monotonic(), len(emu.live_attempts)))
                asleep = time.monotonic()
                await asyncio.sleep(0.1)
                lags.append((asleep, time.monotonic() - asleep - 0.1))

        # The emulator keeps every event, action and hung-up channel it has seen (the tests read
        # them): hundreds of thousands of objects by the end of a 5,000-call run, which each full
        # collection walked, stalling its loop for up to a second (longer than the worker's Ping
        # timeout). What it has kept so far is moved out of the collector's reach once a second.
        gc_pauses: list[tuple[float, float]] = []
        gc_started = [0.0]

        def time_collections(phase: str, info: dict) -> None:
            if phase == "start":
                gc_started[0] = time.monotonic()
            else:
                gc_pauses.append((gc_started[0], time.monotonic() - gc_started[0]))

        gc.callbacks.append(time_collections)

        async def freeze() -> None:
            while True:
                await asyncio.sleep(1.0)
                gc.freeze()

        freezer = asyncio.create_task(freeze())
        sampler = asyncio.create_task(sample())
        while (command := await asyncio.to_thread(conn.recv)) != "stop":
            if command == "originates":
                conn.send([(str(a.get_ci("ChannelId", "")), a.at) for a in emu.actions("Originate")])
            elif command == "timeline":
                conn.send(timeline)
            elif command == "lags":
                conn.send(lags)
            elif command == "gc_pauses":
                conn.send(gc_pauses)
        sampler.cancel()
        freezer.cancel()
        await emu.stop()
        conn.send("stopped")

    asyncio.run(serve())


class EmulatorProcess:
    def __init__(self, speed: float, talk: float, channel_log: str = "") -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=emulator_main, args=(child, speed, talk, channel_log), daemon=True)
        self.process.start()
        self.port = self.conn.recv()

    async def ask(self, command: str):
        self.conn.send(command)
        return await asyncio.to_thread(self.conn.recv)

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no goodbye on its sockets' behalf beyond what the kernel does
        self.process.join(10)

    async def stop(self) -> None:
        if self.process.is_alive():
            await self.ask("stop")
        self.process.join(10)


def plugins_toml(port: int, pool: list[int] | None = None) -> str:
    if pool:
        servers = "".join(
            f"""
[[plugins.asterisk.servers]]
name = "pbx{i + 1}"
host = "127.0.0.1"
port = {pbx_port}
username = "perezvon"
secret = "{SECRET}"
"""
            for i, pbx_port in enumerate(pool)
        )
        return f"""
[perezvon]
telephony = "asterisk"

[plugins.asterisk]
enabled = true
ping_interval_seconds = 1
ping_timeout_seconds = 1
reconnect_max_seconds = 2
{servers}
[plugins.speech]
enabled = true
"""
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


async def pool_figures(store: Store, call_ids: list[str], logs: list[Path], killed_at: float) -> dict[str, Any]:
    """What the channel logs of the pool say: attempts per PBX, the calls interrupted by the kill and
    redialled, and the calls with two attempts live at once (on one PBX or across both)."""
    live: dict[str, list[tuple[int, str, float, float]]] = {}  # call -> (pbx, attempt, start, end)
    per_pbx = []
    for i, log in enumerate(logs):
        starts: dict[str, float] = {}
        ends: dict[str, float] = {}
        for line in log.read_text().splitlines() if log.exists() else []:
            kind, uniqueid, at = line.split()
            (starts if kind == "start" else ends)[uniqueid] = float(at)
        attempts = set()
        for uniqueid, start in starts.items():
            if not uniqueid.startswith("pv-"):
                continue
            end = ends.get(uniqueid) or (killed_at if i == 0 and killed_at else time.monotonic())
            tag = uniqueid.split("-", 2)[2][:-1]  # <call>-<attempt>
            call, attempt = tag.rsplit("-", 1)
            attempts.add(tag)
            live.setdefault(call, []).append((i, attempt, start, end))
        per_pbx.append(len(attempts))
    twice = 0
    for legs in live.values():
        spans: dict[tuple[int, str], tuple[float, float]] = {}
        for pbx, attempt, start, end in legs:
            s0, e0 = spans.get((pbx, attempt), (start, end))
            spans[(pbx, attempt)] = (min(s0, start), max(e0, end))
        ordered = sorted(spans.values())
        if any(later[0] < earlier[1] for earlier, later in itertools.pairwise(ordered)):
            twice += 1
    redialled = await store.fetch(
        f"SELECT COUNT(DISTINCT call_id) FROM attempts WHERE number > 1 AND call_id IN ({','.join('?' * len(call_ids))})"
        if store.kind == "sqlite"
        else "SELECT COUNT(DISTINCT call_id) FROM attempts WHERE number > 1 AND call_id::text = ANY(?::text[])",
        *(call_ids if store.kind == "sqlite" else [call_ids]),
    )
    return {
        "attempts_per_pbx": per_pbx,
        "killed_pbx": "pbx1" if killed_at else None,
        "calls_redialled": redialled[0][0],
        "dialled_twice_at_once": twice,
    }


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
    parser.add_argument("--pbxs", type=int, choices=[1, 2], default=1, help="2: a pool of two emulated PBXs")
    parser.add_argument(
        "--kill-after", type=float, default=0.0, help="with --pbxs 2: SIGKILL the first PBX this many seconds in"
    )
    args = parser.parse_args()

    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    data_dir = Path(tempfile.mkdtemp(prefix="pv-bench-asterisk-"))
    channel_logs = [data_dir / f"channels-{i}.log" for i in range(args.pbxs)]
    emus = [EmulatorProcess(args.speed, args.talk, str(log) if args.pbxs > 1 else "") for log in channel_logs]
    emu = emus[-1]  # the one never killed answers the bench's questions
    (data_dir / "plugins.toml").write_text(plugins_toml(emu.port, [e.port for e in emus] if args.pbxs > 1 else None))
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
    # when each Originate left the worker (bench/originate_stamps/sitecustomize.py)
    sent_log = data_dir / "originates-sent.log"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "bench" / "originate_stamps"), env.get("PYTHONPATH")]))
    env["PEREZVON_ORIGINATE_STAMPS"] = str(sent_log)
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
    if args.pbxs > 1:  # a call interrupted by the killed PBX is redialled soon, so the run can end
        await store.execute(
            "UPDATE connections SET redial_matrix = ?"
            + ("::jsonb" if store.kind == "postgres" else "")
            + " WHERE id = ?",
            json.dumps({"operator_first": {"*": {"500-*": {"period": 3, "direction": "operator_first"}}}}),
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
            killing = args.pbxs > 1 and args.kill_after > 0
            emulator_pids = [one.process.pid for one in (emus[1:] if killing else emus)]  # not the one killed
            # (when, worker CPU seconds, emulators' CPU seconds, the box's busy seconds over its cores):
            # the busiest second of each, since an emulator that runs out of CPU answers late and its
            # lateness would count as the platform's -- and so does a box with no core left
            cpu_marks: list[tuple[float, float, float, float]] = []
            tick = os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
            sampling = True

            async def sample() -> None:
                while sampling:
                    rss.append((time.monotonic(), rss_kib(worker_pid)))
                    if len(rss) % 10 == 1:
                        emulators = sum(process_cpu_seconds(pid) for pid in emulator_pids)
                        box = machine_ticks()[0] / tick
                        cpu_marks.append((time.monotonic(), process_cpu_seconds(worker_pid), emulators, box))
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
            meter = CpuMeter(worker_pid, procs["web"].pid, *emulator_pids)
            started = time.monotonic()
            killed_at = 0.0
            if args.pbxs > 1 and args.kill_after > 0:

                async def kill_later() -> None:
                    nonlocal killed_at
                    await asyncio.sleep(args.kill_after)
                    emus[0].kill()
                    killed_at = time.monotonic()

                killer = asyncio.create_task(kill_later())
            tasks = []
            for i in range(args.calls):
                tasks.append(asyncio.create_task(post(i)))
                await asyncio.sleep(max(0.0, started + (i + 1) / args.rate - time.monotonic()))
            accepted = dict(await asyncio.gather(*tasks))
            if killed_at == 0.0 and args.pbxs > 1 and args.kill_after > 0:
                await killer
            deadline = time.monotonic() + args.talk / args.speed + 120
            while True:
                left = sum(
                    1
                    for _, state, _ in await store.calls(list(accepted))
                    if state not in ("finished", "scheduled", "notified")
                )
                if args.pbxs > 1:  # a redial scheduled after the kill is not final yet
                    left += sum(1 for _, state, _ in await store.calls(list(accepted)) if state == "scheduled")
                if not left or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            sampling = False
            await sampler
            if spy is not None:
                spy.send_signal(2)
                spy.wait(30)
                print(f"worker profile: {profile}", file=sys.stderr)
            worker_cpu, web_cpu, *emulator_cpu, own_cpu, box_busy, box_stolen = meter.read()

        rows = await store.calls(list(accepted))
        statuses: dict[str, int] = {}
        for _, state, status in rows:
            statuses[f"{state}/{status}"] = statuses.get(f"{state}/{status}", 0) + 1
        first_originate: dict[str, float] = {}
        if args.pbxs > 1:  # the killed PBX cannot be asked: its channel log says when each call began there
            for log in channel_logs:
                for line in log.read_text().splitlines():
                    kind, uniqueid, at = line.split()
                    if kind == "start" and uniqueid.startswith("pv-"):
                        key = uniqueid.split("-")[2]
                        first_originate[key] = min(first_originate.get(key, float(at)), float(at))
        for channel_id, at in (await emu.ask("originates"))[originate_before:]:
            first_originate.setdefault(channel_id.split("-")[2], at)
        first_sent: dict[str, float] = {}
        for line in sent_log.read_text().splitlines() if sent_log.exists() else []:
            channel_id, at = line.split()
            first_sent.setdefault(channel_id.split("-")[2], float(at))

        def since_accepted(first: dict[str, float]) -> list[float]:
            """Each accepted lead's time to its first Originate in ``first`` (keyed as the ChannelId)."""
            return [
                first[cid.replace("-", "")[:20]] - at
                for cid, at in accepted.items()
                if cid.replace("-", "")[:20] in first
            ]

        # the peak of calls in flight, and the worker's memory at that moment (nearest sample)
        peak_at, peak_in_flight = max(await emu.ask("timeline"), key=lambda point: point[1])
        peak_rss = min(rss, key=lambda point: abs(point[0] - peak_at))[1]
        to_originate = since_accepted(first_originate)
        # when in the run the slow ones were: the p99 of the leads accepted in each 10 s
        by_window: dict[int, list[float]] = {}
        for cid, at in accepted.items():
            if cid.replace("-", "")[:20] in first_originate:
                by_window.setdefault(int((at - started) // 10), []).append(
                    first_originate[cid.replace("-", "")[:20]] - at
                )
        lag_by_window: dict[int, list[float]] = {}
        for at, lag in await emu.ask("lags"):
            lag_by_window.setdefault(int((at - started) // 10), []).append(lag)
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
            "lead_to_first_originate_p99_ms_by_10_s": [stats_ms(by_window[w])["p99"] for w in sorted(by_window)],
            # the same up to the moment the worker wrote the Originate to its socket: the platform's own
            # part, without the emulator's lag in reading it
            "lead_to_first_originate_sent_ms": stats_ms(since_accepted(first_sent)),
            "emulator_loop_lag_p99_ms_by_10_s": [
                stats_ms(lag_by_window[w])["p99"] for w in sorted(lag_by_window) if 0 <= w < len(by_window)
            ],
            "emulator_longest_collection_ms": round(
                1000 * max((pause for at, pause in await emu.ask("gc_pauses") if at >= started), default=0.0), 1
            ),
            "never_originated": len(accepted) - len(to_originate),
            "worker_rss_baseline_mib": round(baseline_kib / 1024, 1),
            "worker_rss_at_peak_mib": round(peak_rss / 1024, 1),
            "kib_per_call_in_flight": round((peak_rss - baseline_kib) / max(1, peak_in_flight), 1),
            "cpu_percent": {
                "worker": worker_cpu,
                "web": web_cpu,
                "emulator": round(sum(emulator_cpu), 1),
                "bench": own_cpu,
                "worker_busiest_second": busiest_second(cpu_marks, 1),
                "emulator_busiest_second": busiest_second(cpu_marks, 2),
                "box_busiest_second": busiest_second(cpu_marks, 3),  # % of all its cores
                "box_busy": box_busy,
                "box_stolen": box_stolen,
            },
        }
        if args.pbxs > 1:
            result["pool"] = await pool_figures(store, list(accepted), channel_logs, killed_at)
        print(json.dumps(result, indent=2, ensure_ascii=False))
        if result["not_final"] or result["never_originated"] or len(rows) != len(accepted):
            raise SystemExit("some calls did not reach a final status")
        if args.pbxs > 1 and result["pool"]["dialled_twice_at_once"]:
            raise SystemExit("a call was dialled twice at once")
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for one in emus:
            await one.stop()
        await store.close()
        # the servers' logs outlive the run's data: bench/results/asterisk_calls-<db>-<role>.log
        RESULTS.mkdir(exist_ok=True)
        for role in procs:
            with contextlib.suppress(OSError):
                shutil.copyfile(logs / f"{role}.log", RESULTS / f"asterisk_calls-{args.db}-{role}.log")
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
