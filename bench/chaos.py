"""Chaos bench: leads keep coming while the parts of Perezvon are killed and restarted (issue 13).

It starts everything itself, on ports 22000-22049 of 127.0.0.1:

* a PostgreSQL cluster (``initdb`` into a temp dir; binaries from /usr/lib/postgresql/*/bin),
* a ``redis-server`` with no persistence (a killed Redis comes back empty),
* ``perezvon demo`` (migrate and seed), one ``perezvon web`` and two ``perezvon worker``
  processes, telephony by the simulator with calls of about 3 s.

Then it sends leads at ``--rate`` per second for ``--seconds`` seconds; one in
``POISON_EVERY`` is poisoned (NUL or a lone surrogate in the name, NaN in
``extra``, a year-1 or year-9999 ``preferred_at``, JSON nested 5,000 deep).
A valid lead answered 503 or not answered at all (the web is down) is sent
again for up to two minutes, waiting 1 s, 2 s, 4 s ... up to 10 s between tries; a poisoned
one is sent once and its answer counted by cause. Meanwhile, at fixed shares
of the run:

* 15 %: ``kill -9`` a worker, restarted 3 s later;
* 30 %: ``kill -9`` Redis, restarted 10 s later (empty);
* 55 %: ``kill -9`` the web, restarted at once;
* 75 %: PostgreSQL restarted (fast shutdown: every session is cut, then started again).

After the last lead it waits (up to ``--drain`` seconds) until every call is
final, redials included (an attempt cut by a kill is redialled two minutes
later, as the redial matrix says), then reads the database and prints: leads
sent, 201s, refusals by cause and status, rows stored, calls final, calls
legitimately scheduled (a redial due later), calls stuck, and duplicate or
overlapping attempts. It exits 1 unless every 201 is stored, no call is
stuck, and no call was dialled twice at once.

    .venv/bin/python bench/chaos.py [--seconds 120] [--rate 50] [--drain 300] [--keep]

Overlapping attempts are counted two ways: attempts of one call whose times
overlap in the database, and attempts a worker was still running when
another process had already resolved them as interrupted (the worker logs
"ended after another worker had resolved it"; the redial matrix could then
have dialled a call still on the line).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from perezvon.core.testing import OwnPostgres, OwnRedis, free_port_in  # noqa: E402

PORTS = (22000, 22049)
PERZVON = [sys.executable, "-m", "perezvon.core.cli"]
POISON_EVERY = 10
#: how long a valid lead is sent again after a 503 or a refused connection, waiting 1 s, 2 s, 4 s ...
#: up to 10 s between tries (a client that retries every second would bury a web that is starting)
RETRY_FOR_SECONDS = 120
RETRY_FIRST, RETRY_CAP = 1.0, 10.0
#: a scheduled call this far past its due time after the drain is stuck (the sweep runs every 5 s)
OVERDUE_SECONDS = 60

PLUGINS = """
[perezvon]
telephony = "simulator"

[plugins.simulator]
enabled = true
ring_seconds = 3
talk_seconds = 150
speed = 50            # a call ends in about 3 s
"""


def poisoned(kind: str, token: str, phone: str) -> bytes:
    """A lead the stores cannot hold, as raw JSON (json.dumps would refuse some of them)."""
    base = {"token": token, "phone": phone, "consent": True}
    if kind == "nul_in_name":
        return json.dumps({**base, "name": "a\u0000b"}).encode()
    if kind == "lone_surrogate":
        return json.dumps(base)[:-1].encode() + b', "name": "\\ud800"}'
    if kind == "nan_in_extra":
        return json.dumps(base)[:-1].encode() + b', "extra": {"score": NaN}}'
    if kind == "year_1_preferred_at":
        return json.dumps({**base, "preferred_at": "0001-01-01T00:00:00+14:00"}).encode()
    if kind == "year_9999_preferred_at":
        return json.dumps({**base, "preferred_at": "9999-12-31T23:59:59+00:00"}).encode()
    if kind == "deep_json":
        depth = 5000
        return json.dumps(base)[:-1].encode() + b', "extra": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"
    raise ValueError(kind)


POISONS = (
    "nul_in_name",
    "lone_surrogate",
    "nan_in_extra",
    "year_1_preferred_at",
    "year_9999_preferred_at",
    "deep_json",
)


class Stack:
    """PostgreSQL, Redis, the web and two workers, each killable and restartable."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.postgres = OwnPostgres(free_port_in(*PORTS), directory / "postgres")
        self.redis = OwnRedis(free_port_in(self.postgres.port + 1, PORTS[1]), directory / "redis")
        self.web_port = free_port_in(self.redis.port + 1, PORTS[1])
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        (directory / "plugins.toml").write_text(PLUGINS)
        self.env = {
            **os.environ,
            "PEREZVON_DATA_DIR": str(directory / "var"),
            "PEREZVON_DATABASE_URL": self.postgres.url,
            "PEREZVON_REDIS_URL": self.redis.url,
            "PEREZVON_PLUGINS": str(directory / "plugins.toml"),
            "PEREZVON_PUBLIC_URL": self.base_url,
            "PEREZVON_LEADS_PER_IP_PER_MINUTE": "1000000",  # one client sends every lead
            "PEREZVON_LOG_LEVEL": "INFO",
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self.demo: dict = {}

    def start_services(self) -> None:
        self.postgres.init()
        self.postgres.start()
        self.redis.start()
        out = subprocess.run(
            [*PERZVON, "demo", "--json"], env=self.env, cwd=self.dir, capture_output=True, text=True, timeout=300
        )
        if out.returncode:
            raise SystemExit(f"perezvon demo failed:\n{out.stderr[-3000:]}")
        self.demo = json.loads(out.stdout)

    def start(self, role: str) -> None:
        argv = ["web", "--port", str(self.web_port)] if role == "web" else ["worker"]
        with open(self.dir / f"{role}.log", "ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} start\n".encode())
            log.flush()
            self.processes[role] = subprocess.Popen(
                [*PERZVON, *argv],
                env=self.env,
                cwd=self.dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self, role: str) -> None:
        process = self.processes[role]
        process.kill()
        process.wait()

    def exited(self) -> list[str]:
        """The roles whose process ended on its own (nobody killed it)."""
        return [role for role, process in self.processes.items() if process.poll() is not None]

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.redis.kill()
        self.postgres.stop()

    def log_lines(self, needle: str) -> int:
        return sum(path.read_text(errors="replace").count(needle) for path in self.dir.glob("*.log") if path.is_file())


async def wait_healthy(stack: Stack, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            try:
                if (await client.get(f"{stack.base_url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"/healthz never answered 200; see the logs in {stack.dir}")
            await asyncio.sleep(0.2)


class Sender:
    def __init__(self, stack: Stack, client: httpx.AsyncClient) -> None:
        self.stack = stack
        self.client = client
        self.token = stack.demo["site_token"]
        self.sent = 0
        self.accepted: dict[str, str] = {}  # call id -> the status it was answered with (201, or 200: a repeat)
        self.answers: Counter[tuple[str, str]] = Counter()  # (kind, final status)
        self.retries = Counter[str]()  # what a valid lead was sent again after
        self.never_accepted = 0
        self.repeated_phones: set[str] = set()  # answered 200 "already requested": a lead must hold the phone
        self._numbers = iter(range(10**6))

    def phone(self) -> str:
        return f"+7916{random.randrange(10**6):06d}{next(self._numbers) % 10}"

    async def post(self, body: bytes) -> tuple[str, dict | None]:
        try:
            answer = await self.client.post(
                f"{self.stack.base_url}/api/v1/leads", content=body, headers={"Content-Type": "application/json"}
            )
        except httpx.TransportError as exc:
            return type(exc).__name__, None
        try:
            payload = answer.json()
        except ValueError:
            payload = None
        return str(answer.status_code), payload

    async def lead(self, kind: str) -> None:
        self.sent += 1
        phone = self.phone()
        if kind == "valid":
            body = json.dumps({"token": self.token, "phone": phone, "consent": True, "name": "Chaos"}).encode()
        else:
            body = poisoned(kind, self.token, phone)
        deadline = time.monotonic() + RETRY_FOR_SECONDS
        wait = RETRY_FIRST
        while True:
            status, payload = await self.post(body)
            if status == "201" and payload:
                self.accepted.setdefault(payload["call_id"], status)
            elif status == "200":  # a repeat carries no ids (docs/calls.md#duplicates): its lead is found by phone
                self.repeated_phones.add(phone)
            retry = kind == "valid" and (status.startswith("5") or not status.isdigit())
            if not retry or time.monotonic() > deadline:
                break
            self.retries[status] += 1
            await asyncio.sleep(wait * random.uniform(0.5, 1.0))
            wait = min(wait * 2, RETRY_CAP)
        self.answers[kind, status] += 1
        if kind == "valid" and status not in ("200", "201"):
            self.never_accepted += 1


async def chaos(stack: Stack, seconds: float, events: list[str]) -> None:
    """Kill and restart the parts at fixed shares of the run."""
    outage = min(10.0, seconds / 6)
    # its own threads: the event loop's default executor may be busy with the HTTP client's look-ups
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="chaos")
    loop = asyncio.get_running_loop()

    async def at(share: float) -> None:
        await asyncio.sleep(max(0.0, start + share * seconds - time.monotonic()))

    def note(what: str) -> None:
        events.append(f"{time.monotonic() - start:6.1f} s  {what}")
        print(events[-1], flush=True)

    start = time.monotonic()
    await at(0.15)
    stack.kill("worker1")
    note("kill -9 worker1")
    await asyncio.sleep(3)
    stack.start("worker1")
    note("worker1 restarted")
    await at(0.30)
    stack.redis.kill()
    note("kill -9 Redis")
    await asyncio.sleep(outage)
    await loop.run_in_executor(pool, stack.redis.start)
    note(f"Redis restarted (empty) after {outage:g} s")
    await at(0.55)
    stack.kill("web")
    note("kill -9 web")
    stack.start("web")
    note("web restarted")
    await at(0.75)
    await loop.run_in_executor(pool, stack.postgres.stop)
    note("PostgreSQL stopped (fast shutdown)")
    await loop.run_in_executor(pool, stack.postgres.start)
    note("PostgreSQL started")


async def call_states(db: asyncpg.Connection) -> dict[str, int]:
    rows = await db.fetch(
        """SELECT CASE
                    WHEN state = 'dialling' THEN 'dialling'
                    WHEN state = 'scheduled' AND next_attempt_at < now() - make_interval(secs => $1) THEN 'overdue'
                    WHEN state = 'scheduled' THEN 'scheduled'
                    ELSE 'final' END AS kind,
                  count(*) AS n
           FROM calls GROUP BY 1""",
        OVERDUE_SECONDS,
    )
    return {row["kind"]: row["n"] for row in rows}


async def run(args: argparse.Namespace) -> int:
    directory = Path(tempfile.mkdtemp(prefix="perezvon-chaos-"))
    directory.chmod(0o755)  # the PostgreSQL server runs as the postgres user
    stack = Stack(directory)
    print(
        f"chaos bench in {directory}: PostgreSQL :{stack.postgres.port}, Redis :{stack.redis.port}, web :{stack.web_port}"
    )
    events: list[str] = []
    try:
        stack.start_services()
        for role in ("web", "worker1", "worker2"):
            stack.start(role)
        await wait_healthy(stack)
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(30, connect=5), limits=httpx.Limits(max_connections=200)
        ) as client:
            sender = Sender(stack, client)
            chaos_task = asyncio.create_task(chaos(stack, args.seconds, events))
            leads: list[asyncio.Task] = []
            began = time.monotonic()
            n = 0
            while (elapsed := time.monotonic() - began) < args.seconds:
                due = int(elapsed * args.rate) + 1
                while n < due:
                    kind = (
                        POISONS[(n // POISON_EVERY) % len(POISONS)] if n % POISON_EVERY == POISON_EVERY - 1 else "valid"
                    )
                    leads.append(asyncio.create_task(sender.lead(kind)))
                    n += 1
                await asyncio.sleep(0.01)
            await chaos_task
            await asyncio.gather(*leads)
        sending = time.monotonic() - began
        died = stack.exited()
        db = await asyncpg.connect(stack.postgres.url.replace("postgres://", "postgresql://"))
        drained_in = None
        drain_start = time.monotonic()
        while time.monotonic() - drain_start < args.drain:
            states = await call_states(db)
            # every call final: the redials the kills caused (due 2 min later) have been made too
            if not states.get("dialling") and not states.get("overdue") and not states.get("scheduled"):
                drained_in = time.monotonic() - drain_start
                break
            await asyncio.sleep(2)
        states = await call_states(db)
        accepted_ids = list(sender.accepted)
        stored_ids = {
            str(row["id"])
            for row in await db.fetch("SELECT id FROM calls WHERE id::text = ANY($1::text[])", accepted_ids)
        }
        stored = len(stored_ids)
        missing = Counter(status for call_id, status in sender.accepted.items() if call_id not in stored_ids)
        rows = await db.fetchval("SELECT count(*) FROM leads")
        repeats_stored = await db.fetchval(
            "SELECT count(DISTINCT phone) FROM leads WHERE phone = ANY($1::text[])", list(sender.repeated_phones)
        )
        duplicates = await db.fetchval(
            "SELECT count(*) FROM (SELECT call_id, number FROM attempts GROUP BY 1, 2 HAVING count(*) > 1) d"
        )
        overlapping = await db.fetchval(
            """SELECT count(*) FROM attempts a JOIN attempts b ON a.call_id = b.call_id AND a.number < b.number
               WHERE b.started_at < COALESCE(a.ended_at, now())"""
        )
        attempts = await db.fetchval("SELECT count(*) FROM attempts")
        interrupted = await db.fetchval("SELECT count(*) FROM attempts WHERE reason LIKE 'attempt interrupted%'")
        await db.close()
        resolved_under = stack.log_lines("ended after another worker had resolved it")
    finally:
        stack.stop()

    refusals: dict[str, Counter[str]] = {}
    for (kind, status), count in sorted(sender.answers.items()):
        if kind != "valid":
            refusals.setdefault(kind, Counter())[status] += count
    accepted_poison = sum(c for kind, statuses in refusals.items() for s, c in statuses.items() if s in ("200", "201"))
    poison_5xx = sum(c for statuses in refusals.values() for s, c in statuses.items() if s.startswith("5"))
    print()
    print(f"ran {sending:.0f} s at {args.rate}/s; chaos:")
    for event in events:
        print("   ", event)
    print(f"leads sent:                 {sender.sent}")
    print(
        f"calls accepted:             {len(sender.accepted)} answered 201; valid leads never accepted: "
        f"{sender.never_accepted}"
    )
    print(
        f"answered 200 (a repeat):    {len(sender.repeated_phones)} phones, {repeats_stored} of them with a stored lead"
    )
    print(f"valid leads sent again:     {sum(sender.retries.values())} times, after {dict(sender.retries)}")
    print("poisoned leads, by cause and final status:")
    for kind, statuses in refusals.items():
        print(f"    {kind:24} {dict(statuses)}")
    print(f"rows stored (leads):        {rows}")
    print(f"accepted calls stored:      {stored} of {len(accepted_ids)}  (missing, by answer: {dict(missing)})")
    print(f"attempts:                   {attempts}  ({interrupted} interrupted by a kill)")
    print(f"calls final:                {states.get('final', 0)}")
    print(f"calls scheduled (later):    {states.get('scheduled', 0)}")
    print(
        f"calls stuck:                {states.get('dialling', 0) + states.get('overdue', 0)}"
        f"  (dialling {states.get('dialling', 0)}, overdue {states.get('overdue', 0)})"
    )
    print(
        f"drained in:                 {'%.0f s' % drained_in if drained_in is not None else f'not within {args.drain:g} s'}"
    )
    print(f"duplicate attempts:         {duplicates}")
    print(f"overlapping attempts:       {overlapping} in the database, {resolved_under} ended after being resolved")
    print(f"processes that exited:      {died or 'none'}")
    print(f"poisoned leads accepted:    {accepted_poison}; answered 5xx: {poison_5xx} (the edge validation's part)")
    failures = []
    if stored != len(accepted_ids):
        failures.append(f"{len(accepted_ids) - stored} accepted leads not stored")
    if repeats_stored != len(sender.repeated_phones):
        failures.append(f"{len(sender.repeated_phones) - repeats_stored} repeats answered 200 with no lead stored")
    if states.get("dialling", 0) + states.get("overdue", 0):
        failures.append("calls stuck")
    if duplicates or overlapping or resolved_under:
        failures.append("a call dialled twice at once")
    if died:
        failures.append(f"processes exited on their own: {died}")
    if failures:
        print("FAIL: " + "; ".join(failures))
        print(f"logs kept in {directory}")
        return 1
    print("OK")
    if not args.keep:
        shutil.rmtree(directory, ignore_errors=True)
    else:
        print(f"logs kept in {directory}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120, help="how long leads are sent (default 120)")
    parser.add_argument("--rate", type=float, default=50, help="leads per second (default 50)")
    parser.add_argument(
        "--drain", type=float, default=300, help="the longest wait for every call to be final (default 300)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir with the logs")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
