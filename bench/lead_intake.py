"""Lead intake benchmark: throughput, latency, lead-to-first-dial and zero leads lost.

What it measures, per database (SQLite and/or PostgreSQL):

1. Throughput of ``POST /api/v1/leads`` against ONE web process: a closed loop
   of ``--concurrency`` keep-alive HTTP/1.1 connections, each with one request
   in flight, for ``--warmup`` seconds (discarded) and then ``--seconds``
   seconds. Reported: accepted leads per second (201 answers / elapsed),
   p50/p99/max latency, and every non-201 status counted by code. No worker
   runs during this phase, so the web process has the CPU to itself (apart
   from this load generator, Redis and the database: the box has 2 cores).
2. Lead-to-first-dial latency, with ``perezvon worker`` running: an open loop
   at ``--dial-rate`` leads/s for ``--dial-seconds`` seconds. For each 201 the
   client notes the wall clock (``time.time()``) when the answer arrived; once
   the calls have settled the script reads ``attempts.dialled_at`` (attempt 1:
   when the simulator began dialling the first leg) and reports
   ``dialled_at - received`` (p50/p99, min and max; negative values mean the
   dial began before the 201 reached the client and are shown as they are).
   This phase runs first, so the worker is not buried under the throughput
   phase's backlog of queued calls. The worker's CPU per lead counts a
   callback's whole work: from the first lead sent until every first attempt
   has ended and no job is due in the queues (the e-mails of the calls'
   endings written), idle polling included.
3. Zero leads lost: after both phases, the rows of the ``leads`` table for the
   bench connection are counted and matched (by lead id) against every 201
   answer of every phase. Any difference makes the script exit with 1.

How: the script starts the server processes itself (``perezvon demo --json``
to migrate and seed, ``perezvon web``, ``perezvon worker``) with a fresh data
dir, a fresh Redis database (``--redis-url``, FLUSHDB'd) and, for PostgreSQL,
a fresh database that is dropped at the end. The load generator is this
process: raw asyncio streams writing pre-built requests and parsing only the
status line, Content-Length and (for 201s) the JSON body, because on a 2-core
box an HTTP client library would take CPU away from the server it measures.

The per-IP rate limit (30 leads/min by default) stays on: as behind nginx,
each request carries ``X-Forwarded-For`` with a fake client IP that changes
every ``IPS_EVERY`` requests (uvicorn trusts that header from 127.0.0.1).
Every phone is distinct (+7916 and a counter), so no answer is a duplicate.

    .venv/bin/python bench/lead_intake.py [--db sqlite|postgres|both] [--seconds N] [--concurrency N]

``PEREZVON_BENCH_PORTS=first-last`` makes the servers listen on the first free ports of that range
(a shared machine where each user has a range of its own); any free port otherwise.

Numbers go to stdout and to bench/results/lead_intake-<db>.json; the server
logs are kept next to them (lead_intake-<db>-web.log, -worker.log), and with
``--py-spy`` collapsed-stack profiles of the worker (dial phase) and of the web
process (throughput window), summarised in the output. CPU use of each process
and of the box (including time stolen by the hypervisor) is reported because
on a shared 2-core VM the figures move with whatever else runs there.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import re
import resource
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import HOST, RESULTS, ROOT, VENV_BIN, ServerProcesses, run_each_database  # noqa: E402

POSTGRES_ADMIN_URL = "postgres://postgres@127.0.0.1/postgres"

IPS_EVERY = 20  # requests per fake client IP: below the default 30/minute limit
REQUEST_TIMEOUT = 30.0  # seconds; a request slower than this counts as an error
MAX_REQUESTS_PER_SECOND = 100_000  # a bound on every load loop, far above anything reachable
SETTLE_TIMEOUT = 60.0  # seconds to wait for the dial phase's first attempts to end
START_TIMEOUT = 60.0  # seconds for a server process to answer /healthz


# --- small helpers ------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (no interpolation: every reported value was observed)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def stats_ms(values: list[float]) -> dict[str, float | None]:
    """p50, p99, min and max of durations given in seconds, in milliseconds."""
    found = {
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "min": min(values, default=None),
        "max": max(values, default=None),
    }
    return {k: (None if v is None else round(v * 1000, 2)) for k, v in found.items()}


def free_port() -> int:
    """A free port: the first free one of PEREZVON_BENCH_PORTS ("first-last") when set, else any."""
    wanted = os.environ.get("PEREZVON_BENCH_PORTS", "")
    first, _, last = wanted.partition("-")
    for port in range(int(first), int(last or first) + 1) if wanted else [0]:
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError(f"no free port in PEREZVON_BENCH_PORTS={wanted}")


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, read from /proc (Linux; no psutil needed)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_ticks() -> tuple[int, int, int]:
    """(busy, stolen, total) jiffies of all cores, to tell whether the box itself was the limit.

    "Stolen" is time the hypervisor gave our virtual CPUs to someone else: on a shared
    VM it makes every figure here worse without any process of ours using the CPU.
    """
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, steal = values[3] + values[4], values[7]  # idle + iowait; steal
    return sum(values) - idle - steal, steal, sum(values)


class CpuMeter:
    """CPU use of some processes, of this one and of the whole box since it was made, in %."""

    def __init__(self, *pids: int) -> None:
        self.pids = pids
        self.start = time.perf_counter()
        self.procs = [process_cpu_seconds(pid) for pid in pids]
        self.own = own_cpu_seconds()
        self.ticks = machine_ticks()

    def read(self) -> tuple[float, ...]:
        """(% of one core for each pid..., % of one core for us, % busy and % stolen of the machine)."""
        elapsed = max(1e-9, time.perf_counter() - self.start)
        procs = [
            round(100 * (process_cpu_seconds(pid) - before) / elapsed, 1) for pid, before in zip(self.pids, self.procs)
        ]
        busy, steal, total = (now - before for now, before in zip(machine_ticks(), self.ticks))
        return (
            *procs,
            round(100 * (own_cpu_seconds() - self.own) / elapsed, 1),
            round(100 * busy / max(1, total), 1),
            round(100 * steal / max(1, total), 1),
        )


def parse_db_time(value) -> float:
    """A stored timestamp (aware datetime from asyncpg, ISO text from SQLite) as a Unix time."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:  # stored as UTC (use_tz=True)
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


# --- the requests ---------------------------------------------------------------------


class LeadFactory:
    """Pre-built HTTP/1.1 requests, each with a distinct phone and a rotating client IP.

    One counter per run (shared by all phases), so no phone and no IP window repeats.
    """

    def __init__(self, token: str, port: int) -> None:
        self.token = token
        self.port = port
        self.count = 0

    def next_request(self) -> bytes:
        n = self.count
        if n >= 10**7:  # +7916 and seven digits: past this, phones would repeat (duplicates, not leads)
            raise RuntimeError("out of distinct phone numbers")
        self.count += 1
        ip = n // IPS_EVERY
        client_ip = f"10.{(ip >> 16) & 255}.{(ip >> 8) & 255}.{ip & 255}"
        body = (
            '{"token":"%s","phone":"+7916%07d","consent":true,"name":"Bench %d",'
            '"page_url":"http://localhost/bench","utm":{"source":"bench"}}' % (self.token, n, n)
        ).encode()
        head = (
            f"POST /api/v1/leads HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
            f"Content-Type: application/json\r\nX-Forwarded-For: {client_ip}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    @property
    def client_ips(self) -> int:
        return (self.count + IPS_EVERY - 1) // IPS_EVERY


class HttpConnection:
    """One keep-alive HTTP/1.1 connection: write a request, read status + Content-Length body."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"content-length:")
        if at < 0:  # uvicorn always sends it for these responses; anything else is a surprise
            raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
        length = int(lower[at + 15 : lower.index(b"\r\n", at)])
        body = await self.reader.readexactly(length)
        if b"connection: close" in lower:
            self.close()
        return status, body


@dataclasses.dataclass
class Tally:
    """Every answer of a run, across phases, for the zero-leads-lost check."""

    accepted_ids: set[str] = dataclasses.field(default_factory=set)
    answers_201: int = 0
    statuses: Counter = dataclasses.field(default_factory=Counter)
    errors: Counter = dataclasses.field(default_factory=Counter)  # no answer: timeout, reset, ...
    samples: dict[int, str] = dataclasses.field(default_factory=dict)  # one body per non-201 status

    def record(self, status: int, body: bytes) -> dict | None:
        self.statuses[status] += 1
        if status != 201:
            self.samples.setdefault(status, body[:300].decode("utf-8", "replace"))
            return None
        answer = json.loads(body)
        self.answers_201 += 1
        self.accepted_ids.add(answer["lead_id"])
        return answer


async def send(conn: HttpConnection, raw: bytes, tally: Tally) -> tuple[int | None, dict | None]:
    """One request; (status, 201 answer) or (None, None) on a transport error."""
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            status, body = await conn.request(raw)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, RuntimeError) as exc:
        tally.errors[type(exc).__name__] += 1
        conn.close()  # the next request reconnects; a POST is never retried (it might be a lead)
        return None, None
    return status, tally.record(status, body)


# --- phase 1: throughput (closed loop) -------------------------------------------------


async def throughput_phase(
    factory: LeadFactory, tally: Tally, *, port: int, concurrency: int, warmup: float, seconds: float, server_pid: int
) -> dict:
    connections = [HttpConnection(port) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in connections))
    latencies: list[float] = []
    window = Counter()  # statuses of the measured window only
    ends: list[float] = []
    start = time.perf_counter()
    measure_from = start + warmup
    deadline = measure_from + seconds
    limit = int((warmup + seconds) * MAX_REQUESTS_PER_SECOND / concurrency) + 1
    meter: list[CpuMeter] = []  # made when the window opens

    async def user(conn: HttpConnection) -> None:
        for _ in range(limit):
            began = time.perf_counter()
            if began >= deadline:
                return
            if began >= measure_from and not meter:  # the first user to cross the line starts it
                meter.append(CpuMeter(server_pid))
            status, _ = await send(conn, factory.next_request(), tally)
            done = time.perf_counter()
            if began >= measure_from:  # only requests started inside the window are measured
                window[status if status is not None else "error"] += 1
                ends.append(done)
                if status is not None:
                    latencies.append(done - began)

    await asyncio.gather(*(user(c) for c in connections))
    finished = max(ends) if ends else deadline
    web_cpu, client_cpu, machine_busy, stolen = meter[0].read() if meter else (None,) * 4
    for conn in connections:
        conn.close()
    elapsed = finished - measure_from
    accepted = window.get(201, 0)
    return {
        "concurrency": concurrency,
        "warmup_seconds": warmup,
        "elapsed_seconds": round(elapsed, 3),
        "accepted": accepted,
        "accepted_per_second": round(accepted / elapsed, 1) if elapsed > 0 else None,
        "latency_ms": stats_ms(latencies),
        "statuses": {str(k): v for k, v in sorted(window.items(), key=str)},
        "cpu": {
            "web_process_percent_of_one_core": web_cpu,
            "load_generator_percent_of_one_core": client_cpu,
            "machine_busy_percent": machine_busy,
            "machine_stolen_percent": stolen,
            "cores": os.cpu_count(),
            # steadier than leads/s when the box is shared: what one lead costs the web process
            "web_cpu_ms_per_accepted_lead": round(web_cpu * 10 * elapsed / accepted, 3) if accepted else None,
        },
    }


# --- phase 2: lead-to-first-dial (open loop at a fixed rate) ------------------------------


async def dial_phase_send(
    factory: LeadFactory, tally: Tally, *, port: int, rate: float, seconds: float
) -> dict[str, float]:
    """Send leads on a fixed schedule; returns {call_id: wall-clock time the 201 arrived}."""
    pool: asyncio.Queue[HttpConnection] = asyncio.Queue()
    for _ in range(8):  # enough for tens of leads/s at millisecond latencies
        pool.put_nowait(HttpConnection(port))
    received: dict[str, float] = {}

    async def one(raw: bytes) -> None:
        conn = await pool.get()
        try:
            status, answer = await send(conn, raw, tally)
            if status == 201:
                received[answer["call_id"]] = time.time()  # the moment the client has its 201
        finally:
            pool.put_nowait(conn)

    tasks = []
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(factory.next_request())))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait().close()
    return received


def dial_report(received: dict[str, float], attempts: dict[str, tuple]) -> dict:
    """Latencies from the client's 201 to the worker's start and to the first leg's dial."""
    to_dial, to_start, start_to_dial = [], [], []
    for call_id, got_201 in received.items():
        started, dialled, _ended = attempts.get(call_id, (None, None, None))
        if started is not None:
            to_start.append(parse_db_time(started) - got_201)
        if dialled is not None:
            to_dial.append(parse_db_time(dialled) - got_201)
            start_to_dial.append(parse_db_time(dialled) - parse_db_time(started))

    return {
        "n": len(to_dial),
        "accepted": len(received),
        "never_dialled": len(received) - len(to_dial),
        "negative": sum(1 for v in to_dial if v < 0),
        "received_to_dialled_ms": stats_ms(to_dial),
        # where the time goes: the worker picking the job up vs the attempt's own set-up
        "received_to_attempt_started_ms": stats_ms(to_start),
        "attempt_started_to_dialled_ms": stats_ms(start_to_dial),
    }


# --- the databases ----------------------------------------------------------------------


class SqliteStore:
    name = "sqlite"

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "perezvon.sqlite3"
        self.url = f"sqlite://{self.path}"

    async def create(self) -> None:
        pass  # `perezvon demo` creates the file

    async def drop(self) -> None:
        pass  # the data dir is removed with it

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        # a reader beside the server's writers: WAL mode, wait for locks rather than fail
        with sqlite3.connect(self.path, timeout=30) as db:
            return db.execute(sql, params).fetchall()

    async def lead_ids(self, connection_id: int) -> tuple[int, set[str]]:
        count = self._query("SELECT count(*) FROM leads WHERE connection_id = ?", (connection_id,))[0][0]
        ids = {row[0] for row in self._query("SELECT id FROM leads WHERE connection_id = ?", (connection_id,))}
        return count, ids

    async def first_attempts(self, call_ids: list[str]) -> dict[str, tuple]:
        rows = self._query("SELECT call_id, started_at, dialled_at, ended_at FROM attempts WHERE number = 1")
        wanted = set(call_ids)
        return {row[0]: row[1:] for row in rows if row[0] in wanted}


class PostgresStore:
    name = "postgres"

    def __init__(self) -> None:
        self.database = f"perezvon_bench_{secrets.token_hex(4)}"
        self.url = f"postgres://postgres@127.0.0.1/{self.database}"

    async def _admin(self, sql: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def create(self) -> None:
        await self._admin(f'CREATE DATABASE "{self.database}"')

    async def drop(self) -> None:
        await self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    async def _fetch(self, sql: str, *args) -> list:
        import asyncpg

        conn = await asyncpg.connect(self.url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    async def lead_ids(self, connection_id: int) -> tuple[int, set[str]]:
        count = (await self._fetch("SELECT count(*) FROM leads WHERE connection_id = $1", connection_id))[0][0]
        rows = await self._fetch("SELECT id FROM leads WHERE connection_id = $1", connection_id)
        return count, {str(row[0]) for row in rows}

    async def first_attempts(self, call_ids: list[str]) -> dict[str, tuple]:
        rows = await self._fetch(
            "SELECT call_id, started_at, dialled_at, ended_at FROM attempts "
            "WHERE number = 1 AND call_id = ANY($1::uuid[])",
            call_ids,
        )
        return {str(row[0]): (row[1], row[2], row[3]) for row in rows}


# --- the server processes -----------------------------------------------------------------


class Servers(ServerProcesses):
    """``perezvon web`` and ``perezvon worker`` of one run."""

    stop_order = ("worker", "web")

    def __init__(self, db: str, database_url: str, redis_url: str, data_dir: Path) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "PEREZVON_DATA_DIR": str(data_dir),
            "PEREZVON_DATABASE_URL": database_url,
            "PEREZVON_REDIS_URL": redis_url,
            "PEREZVON_PLUGINS": str(ROOT / "plugins.toml"),
            "PEREZVON_PUBLIC_URL": f"http://{HOST}:{self.port}",
        }
        env.pop("PEREZVON_LEADS_PER_IP_PER_MINUTE", None)  # the default limit stays on
        super().__init__("lead_intake", db, env)

    def start_web(self) -> subprocess.Popen:
        return self.start("web", [str(VENV_BIN / "perezvon"), "web", "--host", HOST, "--port", str(self.port)])

    def health(self) -> tuple[int | None, dict]:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.port}/healthz", timeout=5) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except (OSError, ValueError):
            return None, {}

    def wait_healthy(self, want_worker: bool = False) -> dict:
        """Poll /healthz until it is 200 (and, if asked, a worker heartbeat is there)."""
        deadline = time.monotonic() + START_TIMEOUT
        report: dict = {}
        while time.monotonic() < deadline:
            if self.procs["web"].poll() is not None:
                raise RuntimeError(
                    f"the web process exited with {self.procs['web'].returncode}; see {self.logs['web']}"
                )
            status, report = self.health()
            # a web without a worker answers 503 naming only the workers as down (docs/deploy.md)
            if status == 200 or (not want_worker and status == 503 and report.get("down") == ["workers"]):
                return report
            time.sleep(0.2)
        raise RuntimeError(
            f"no healthy /healthz within {START_TIMEOUT:.0f} s (last: {report}); see {self.logs.get('web')}"
        )


def scan_log(path: Path) -> dict:
    """Errors and warnings a server printed: counts and a few distinct examples."""
    if not path.exists():
        return {}
    text = path.read_text(errors="replace")
    interesting = re.compile(r"Traceback|\bERROR\b|\bWARNING\b|\bCRITICAL\b|Exception|Error:")
    lines = [line for line in text.splitlines() if interesting.search(line)]
    examples: list[str] = []
    for line in lines:
        short = re.sub(r"^\S+ \S+ ", "", line)[:240]  # drop the timestamp so repeats collapse
        if short not in examples:
            examples.append(short)
    return {"lines": len(lines), "tracebacks": text.count("Traceback"), "examples": examples[:8]}


def start_profiler(db: str, role: str, pid: int, seconds: float) -> subprocess.Popen | None:
    """py-spy on a server process for one phase (``--py-spy``); collapsed stacks, low overhead."""
    spy = shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")
    if spy is None:
        print("py-spy not found: `.venv/bin/pip install py-spy` to profile", flush=True)
        return None
    out = RESULTS / f"lead_intake-{db}-{role}.pyspy.txt"
    return subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def profile_summary(path: Path, top: int = 10) -> dict:
    """Where a profiled process spent its samples: by leaf function, and by our own code inclusively."""
    if not path.exists():
        return {}
    leaf, ours, total = Counter(), Counter(), 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        leaf[frames[-1]] += int(count)
        for frame in set(frames):  # inclusive: a frame counts once per sample
            if re.search(r"[(/](core|web|plugins)/\w+\.py", frame) and "core/cli.py" not in frame:
                ours[frame] += int(count)

    def share(counter: Counter) -> list[str]:
        return [f"{100 * n / total:.0f}% {frame}" for frame, n in counter.most_common(top)]

    return {"samples": total, "path": str(path.relative_to(ROOT)), "self": share(leaf), "inclusive_ours": share(ours)}


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


# --- one run --------------------------------------------------------------------------------


async def wait_settled(store, call_ids: list[str]) -> dict[str, tuple]:
    """Poll until every first attempt has ended (bounded); the calls take ~3 s of simulated talk."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    attempts: dict[str, tuple] = {}
    while time.monotonic() < deadline:
        attempts = await store.first_attempts(call_ids)
        if len(attempts) == len(call_ids) and all(a[2] is not None for a in attempts.values()):
            break
        await asyncio.sleep(0.5)
    return attempts


async def wait_quiet(redis_url: str, timeout: float = SETTLE_TIMEOUT) -> float:
    """Poll until no job is due in either queue (a running job stays in its queue until it ends); the time."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now_ms = int(time.time() * 1000)
            if not sum(client.zcount(queue, 0, now_ms) for queue in ("arq:queue", "arq:queue:deliveries")):
                break
            await asyncio.sleep(0.1)
        return time.time()
    finally:
        client.close()


async def measure_dial(servers: Servers, store, factory: LeadFactory, tally: Tally, args: argparse.Namespace) -> dict:
    """Phase 2 (run first): the worker faces only these calls, not the throughput phase's backlog."""
    servers.start("worker", [str(VENV_BIN / "perezvon"), "worker"])
    servers.wait_healthy(want_worker=True)
    warm = await dial_phase_send(factory, tally, port=servers.port, rate=5, seconds=1)  # cold caches
    await wait_settled(store, list(warm))
    print(
        f"{servers.db}: dial phase, {args.dial_rate:g} leads/s for {args.dial_seconds:g} s, worker running", flush=True
    )
    load_average = os.getloadavg()[0]
    worker_pid = servers.procs["worker"].pid
    spy = start_profiler(servers.db, "worker", worker_pid, args.dial_seconds) if args.py_spy else None
    cpu = CpuMeter(servers.procs["web"].pid, worker_pid)
    worker_cpu_before = process_cpu_seconds(worker_pid)
    received = await dial_phase_send(factory, tally, port=servers.port, rate=args.dial_rate, seconds=args.dial_seconds)
    web, worker, client, busy, stolen = cpu.read()  # the sending window only: settling is idle waiting
    attempts = await wait_settled(store, list(received))
    # the callbacks' whole work: their first attempts, and the e-mails and pushes of their endings
    # (counted up to the moment nothing is due in the queues, and the idle polling until then), per lead
    await wait_quiet(args.redis_url)
    worker_cpu = process_cpu_seconds(worker_pid) - worker_cpu_before
    if spy is not None:
        spy.wait(timeout=60)
    servers.stop("worker")
    report = dial_report(received, attempts)
    report.update(
        rate_per_second=args.dial_rate,
        load_average_before=load_average,
        cpu={
            "web_process_percent_of_one_core": web,
            "worker_process_percent_of_one_core": worker,
            "load_generator_percent_of_one_core": client,
            "machine_busy_percent": busy,
            "machine_stolen_percent": stolen,
            "worker_cpu_ms_per_lead": round(1000 * worker_cpu / len(received), 2) if received else None,
        },
    )
    return report


async def measure_throughput(servers: Servers, factory: LeadFactory, tally: Tally, args: argparse.Namespace) -> dict:
    """Phase 1: the web process alone (the worker is stopped by now)."""
    print(
        f"{servers.db}: throughput phase, {args.concurrency} connections, "
        f"{args.warmup:g} s warm-up + {args.seconds:g} s",
        flush=True,
    )
    load_average = os.getloadavg()[0]
    web_pid = servers.procs["web"].pid
    spies: list = []
    if args.py_spy:  # the measured window only: py-spy starts when the warm-up ends
        asyncio.get_running_loop().call_later(
            args.warmup, lambda: spies.append(start_profiler(servers.db, "web", web_pid, args.seconds))
        )
    report = await throughput_phase(
        factory,
        tally,
        port=servers.port,
        concurrency=args.concurrency,
        warmup=args.warmup,
        seconds=args.seconds,
        server_pid=web_pid,
    )
    for spy in filter(None, spies):
        spy.wait(timeout=60)
    report["load_average_before"] = load_average
    return report


async def lost_check(store, connection_id: int, tally: Tally) -> dict:
    """Rows in `leads` for the bench connection against every 201 of every phase, count and ids."""
    count, stored = await store.lead_ids(connection_id)
    return {
        "answers_201": tally.answers_201,
        "rows": count,
        "lost": tally.answers_201 - count,
        "ids_answered_not_stored": len(tally.accepted_ids - stored),
        "ids_stored_not_answered": len(stored - tally.accepted_ids),
    }


async def run(db: str, args: argparse.Namespace) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix=f"perezvon-bench-{db}-"))
    store = SqliteStore(data_dir) if db == "sqlite" else PostgresStore()
    servers = Servers(db, store.url, args.redis_url, data_dir)
    for old in RESULTS.glob(f"lead_intake-{db}-*"):
        old.unlink()
    flush_redis(args.redis_url)
    await store.create()
    result: dict = {"db": db, "database_url": store.url, "redis_url": args.redis_url}
    try:
        demo = servers.demo()
        factory = LeadFactory(demo["site_token"], servers.port)
        tally = Tally()
        servers.start_web()
        servers.wait_healthy()
        result["dial"] = await measure_dial(servers, store, factory, tally, args)
        result["throughput"] = await measure_throughput(servers, factory, tally, args)
        if args.py_spy:
            result["profiles"] = {
                role: profile_summary(RESULTS / f"lead_intake-{db}-{role}.pyspy.txt") for role in ("web", "worker")
            }
        # every 201 was sent after its commit; reading after the load is over changes nothing
        result["lost_check"] = await lost_check(store, demo["connection_id"], tally)
        result["all_statuses"] = {str(k): v for k, v in sorted(tally.statuses.items())}
        result["transport_errors"] = dict(tally.errors)
        result["non_201_samples"] = {str(k): v for k, v in tally.samples.items()}
        result["rate_limit"] = (
            f"on (default 30/min per IP); X-Forwarded-For rotated every {IPS_EVERY} "
            f"requests over {factory.client_ips} fake client IPs"
        )
    finally:
        servers.stop_all()
        result["killed_after_sigint"] = servers.killed
        result["server_logs"] = {
            role: {"path": str(path.relative_to(ROOT)), **scan_log(path)} for role, path in servers.logs.items()
        }
        await store.drop()
        flush_redis(args.redis_url)  # the throughput phase left thousands of queued attempts
        shutil.rmtree(data_dir, ignore_errors=True)
    return result


# --- output ------------------------------------------------------------------------------------


def summary(result: dict) -> list[str]:
    db, t, d, lost = result["db"], result["throughput"], result["dial"], result["lost_check"]
    lat = t["latency_ms"]
    non_201 = {k: v for k, v in t["statuses"].items() if k != "201"}
    lines = [
        f"{db}: accepted {t['accepted']} leads in {t['elapsed_seconds']:.1f} s = {t['accepted_per_second']:.0f}/s, "
        f"p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms; "
        f"201s={lost['answers_201']} rows={lost['rows']} lost={lost['lost']}",
        f"{db}: lead-to-first-dial p50 {d['received_to_dialled_ms']['p50']} ms, "
        f"p99 {d['received_to_dialled_ms']['p99']} ms, min {d['received_to_dialled_ms']['min']} ms, "
        f"max {d['received_to_dialled_ms']['max']} ms (n={d['n']}, {d['rate_per_second']:g} leads/s"
        + (f", {d['never_dialled']} never dialled" if d["never_dialled"] else "")
        + (f", {d['negative']} negative" if d["negative"] else "")
        + ")",
        f"{db}:   of which 201 -> worker starts the attempt p50 {d['received_to_attempt_started_ms']['p50']} ms, "
        f"attempt start -> first leg dialled p50 {d['attempt_started_to_dialled_ms']['p50']} ms",
        f"{db}:   non-201 in the measured window: {non_201 or 'none'}; all phases: {result['all_statuses']}; "
        f"transport errors: {result['transport_errors'] or 'none'}",
        f"{db}:   CPU during the window: web {t['cpu']['web_process_percent_of_one_core']}% of a core, "
        f"load generator {t['cpu']['load_generator_percent_of_one_core']}%, "
        f"machine {t['cpu']['machine_busy_percent']}% busy + {t['cpu']['machine_stolen_percent']}% stolen "
        f"by the hypervisor ({t['cpu']['cores']} cores); {t['concurrency']} connections; "
        f"web CPU per accepted lead {t['cpu']['web_cpu_ms_per_accepted_lead']} ms",
        f"{db}:   CPU during the dial phase: web {d['cpu']['web_process_percent_of_one_core']}%, "
        f"worker {d['cpu']['worker_process_percent_of_one_core']}% of a core, "
        f"machine {d['cpu']['machine_busy_percent']}% busy + {d['cpu']['machine_stolen_percent']}% stolen; "
        f"worker CPU per lead {d['cpu']['worker_cpu_ms_per_lead']} ms",
        f"{db}:   rate limit {result['rate_limit']}; 1-minute load average "
        f"before the phases: dial {d['load_average_before']:.2f}, throughput {t['load_average_before']:.2f} "
        "(other work on this box skews the figures)",
    ]
    if lost["ids_answered_not_stored"] or lost["ids_stored_not_answered"]:
        lines.append(
            f"{db}:   ids answered 201 but not stored: {lost['ids_answered_not_stored']}, "
            f"stored but never answered 201: {lost['ids_stored_not_answered']}"
        )
    for role, log in result["server_logs"].items():
        if log.get("lines"):
            lines.append(
                f"{db}:   {role} log ({log['path']}): {log['lines']} error/warning lines, "
                f"{log['tracebacks']} tracebacks, e.g. {log['examples'][:3]}"
            )
    for role, profile in result.get("profiles", {}).items():
        if profile:
            lines.append(
                f"{db}:   py-spy {role} ({profile['samples']} samples, {profile['path']}), top self: "
                + "; ".join(profile["self"][:6])
            )
            lines.append(
                f"{db}:   py-spy {role}, top of our code (inclusive): " + "; ".join(profile["inclusive_ours"][:6])
            )
    if result.get("killed_after_sigint"):
        lines.append(f"{db}:   did not stop within 30 s of SIGINT and were killed: {result['killed_after_sigint']}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured throughput window (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="throughput warm-up, not measured (default 2)")
    # a closed loop: latency is about concurrency / throughput, so 32 in flight at once
    # (far more than any one site sends) shows the throughput without queueing inflating p99
    parser.add_argument("--concurrency", type=int, default=32, help="keep-alive connections, one request each")
    parser.add_argument("--dial-rate", type=float, default=30.0, help="leads/s in the dial phase (default 30)")
    parser.add_argument("--dial-seconds", type=float, default=10.0, help="length of the dial phase (default 10)")
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/14",
        help="a Redis database for the bench alone: it is FLUSHDB'd before and after",
    )
    parser.add_argument(
        "--py-spy",
        action="store_true",
        help="profile the worker (dial phase) and the web process (throughput window) with py-spy",
    )
    args = parser.parse_args()
    if not 1 <= args.concurrency <= 1000 or not 0 < args.seconds <= 3600 or not 0 < args.dial_rate <= 1000:
        parser.error("keep --concurrency in 1..1000, --seconds in (0, 3600], --dial-rate in (0, 1000]")
    if "127.0.0.1" not in args.redis_url and "localhost" not in args.redis_url:
        parser.error("--redis-url must be a local Redis")
    return run_each_database(
        args,
        run,
        summary,
        bench="lead_intake",
        lost=leads_lost,
        lost_message="LEADS LOST: the leads table and the 201 answers differ (see above)",
    )


def leads_lost(result: dict) -> bool:
    check = result["lost_check"]
    return bool(check["lost"] != 0 or check["ids_answered_not_stored"] or check["ids_stored_not_answered"])


if __name__ == "__main__":
    sys.exit(main())
