"""Admin benchmark: the Calls table's first page and the .xlsx export, on a big table.

What it measures, per database (SQLite and/or PostgreSQL):

1. Server time of the Calls table's first page (``GET /calls``, 50 rows,
   filtered by a 31-day date range and one connection) with ``--calls``
   calls in the database (default 1,000,000, spread over 20 connections and
   365 days). The request goes through the whole ASGI app in-process (session,
   grant check, queries, template) with httpx's ASGI transport, so "server
   time" excludes only the network. Also the same page of the read API
   (``GET /api/v1/calls``) and the Calls table with no filter at all.
   ``--repeat`` runs each; p50, p95 and max are reported.
   With ``--masked``, the same pages also for two non-staff users with a
   project grant -- one who sees clients' contacts, one who does not (phones
   masked, docs/admin.md#who-may-do-what) -- requests of the two interleaved,
   and the phone-mask cache emptied before each masked request, so every
   masked row is formatted from scratch (the cold case).
2. The .xlsx export of ``--export`` calls (default 100,000: two connections'
   calls): wall time, rows/s, CPU time of the process (all threads; what the
   export costs when the shared box is busy), and the peak RSS of the process
   that ran it -- a fresh process, so the seeding's memory is not counted.
   Every call is seeded with one attempt and one in 20 with a user tag, so the
   attempt chain and tags columns are filled as in real data.

Seeding, the page timings and the export each run in their own process
(``--phase``); the parent starts them in order on one fresh database (a
SQLite file in a temp dir, or a new PostgreSQL database, dropped at the end)
and an embedded Redis (or ``--redis-url``).

    .venv/bin/python bench/admin_calls.py [--db sqlite|postgres|both] [--calls N] [--export N] [--masked] [--skip-export]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONNECTIONS = 20
DAYS = 365
BATCH = 5000


def settings_for(args):
    from perezvon.core.settings import Settings

    return Settings.from_env(
        env={},
        data_dir=Path(args.data_dir),
        database_url=args.database_url,
        redis_url=args.redis_url,
        plugins_path=ROOT / "plugins.toml",
    )


async def seed(args) -> dict:
    from perezvon.core.app import Perezvon
    from perezvon.core.models import Attempt, Call, CallTag, Connection, Lead, Project

    app = Perezvon(settings_for(args))
    await app.start(migrate=True)
    try:
        project = await Project.create(name="Bench")
        connections = [
            await Connection.create(project=project, domain=f"bench{n}.example", name=f"Bench {n}")
            for n in range(CONNECTIONS)
        ]
        now = dt.datetime.now(dt.UTC)
        rng = random.Random(7)
        started = time.perf_counter()
        statuses = ["successful"] * 6 + ["lost", "unsuccessful", "failed", "cancelled"]
        sources = ["widget", "widget", "leadgen", "siteforms", "api"]
        channels = ["direct", "organic", "ads", "referral", "social"]
        made = 0
        while made < args.calls:
            n = min(BATCH, args.calls - made)
            leads, calls, attempts, tags = [], [], [], []
            for i in range(n):
                connection = connections[(made + i) % CONNECTIONS]
                when = now - dt.timedelta(seconds=rng.randrange(DAYS * 86400))
                lead = Lead(
                    id=uuid.uuid4(),
                    connection_id=connection.id,
                    source=rng.choice(sources),
                    phone=f"+7916{rng.randrange(10**7):07d}",
                    name=f"Клиент {made + i}",
                    created_at=when,
                    channel=rng.choice(channels),
                    utm_source="yandex",
                    page_url="https://bench.example/",
                    visit={"pages": rng.randrange(1, 20), "seconds_on_site": rng.randrange(5, 900), "trigger": "time"},
                )
                status = rng.choice(statuses)
                leads.append(lead)
                calls.append(
                    Call(
                        id=uuid.uuid4(),
                        lead_id=lead.id,
                        connection_id=connection.id,
                        created_at=when,
                        state="finished",
                        display_status=status,
                        attempts_made=1,
                        operator_number="+74951234567",
                        duration_seconds=150 if status == "successful" else 0,
                        is_unique=rng.random() < 0.8,
                        is_target=status == "successful",
                        reason="the callback took place" if status == "successful" else "busy",
                    )
                )
                # every call has its attempt (the export's "Attempt chain"); one in 20 a user tag
                attempts.append(
                    Attempt(
                        call_id=calls[-1].id,
                        number=1,
                        direction="operator_first",
                        started_at=when,
                        operator_status=200,
                        client_status=200 if status == "successful" else 486,
                        duration_seconds=calls[-1].duration_seconds,
                        display_status=status,
                        reason=calls[-1].reason,
                    )
                )
                if rng.random() < 0.05:
                    tags.append(
                        CallTag(
                            call_id=calls[-1].id,
                            connection_id=calls[-1].connection_id,
                            name=rng.choice(["VIP", "повторно", "опт"]),
                        )
                    )
            from tortoise.transactions import in_transaction

            async with in_transaction():
                await Lead.bulk_create(leads)
                await Call.bulk_create(calls)
                await Attempt.bulk_create(attempts)
                await CallTag.bulk_create(tags)
            made += n
            if made % 100000 == 0:
                print(f"  seeded {made} calls ({time.perf_counter() - started:.0f} s)", flush=True)
        if not app.settings.uses_sqlite:
            from tortoise import connections as tconn

            await tconn.get("default").execute_script("ANALYZE")
        else:
            from tortoise import connections as tconn

            await tconn.get("default").execute_script("ANALYZE")
        return {
            "seeded": made,
            "seed_seconds": round(time.perf_counter() - started, 1),
            "connection_ids": [c.id for c in connections],
        }
    finally:
        await app.stop()


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
        "runs": len(ordered),
    }


async def pages(args) -> dict:
    import httpx

    from perezvon.core.access import create_api_key
    from perezvon.core.app import Perezvon
    from perezvon.core.auth import hash_password
    from perezvon.core.models import Connection, User
    from perezvon.web.app import create_app

    app = Perezvon(settings_for(args))
    await app.start()
    try:
        user = await User.create(
            phone=f"+7925{random.randrange(10**7):07d}", password_hash=hash_password("bench pw 123"), is_staff=True
        )
        _, key = await create_api_key(user)
        connection = await Connection.get(domain="bench3.example")
        today = dt.datetime.now(dt.UTC).date()
        window = f"date_from={today - dt.timedelta(days=45)}&date_to={today - dt.timedelta(days=15)}"
        transport = httpx.ASGITransport(app=create_app(app, manage_lifecycle=False))
        results = {}
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            page = await client.get("/login")
            import re

            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            await client.post("/login", data={"phone": user.phone, "password": "bench pw 123", "csrf_token": csrf})
            cases = {
                "calls_table_range_and_connection": (f"/calls?connection={connection.id}&{window}", {}),
                "read_api_range_and_connection": (
                    f"/api/v1/calls?connection={connection.id}&{window}",
                    {"Authorization": f"Bearer {key}"},
                ),
                "calls_table_unfiltered": ("/calls", {}),
                "calls_table_second_page": (None, {}),
            }
            first = await client.get(cases["calls_table_range_and_connection"][0])
            assert first.status_code == 200 and first.text.count('class="call ') == 50, first.status_code
            next_url = re.search(r'href="(/calls\?[^"]*cursor=[^"]+)"', first.text).group(1).replace("&amp;", "&")
            cases["calls_table_second_page"] = (next_url, {})
            for name, (url, headers) in cases.items():
                samples = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    response = await client.get(url, headers=headers)
                    samples.append(time.perf_counter() - started)
                    assert response.status_code == 200, (name, response.status_code)
                results[name] = percentiles(samples)
                print(f"  {name}: {results[name]}", flush=True)
        if args.masked:
            results.update(await masked_pages(args, app, connection, window))
        return results
    finally:
        await app.stop()


async def masked_pages(args, app, connection, window: str) -> dict:
    """The Calls table and the read API for a non-staff user who sees clients' contacts and one who does
    not, interleaved request by request (same data, same moment), the mask cache cold for each."""
    import re

    import httpx

    from perezvon.core.access import create_api_key
    from perezvon.core.auth import hash_password
    from perezvon.core.masking import mask_phone
    from perezvon.core.models import AccessGrant, User
    from perezvon.web.app import create_app

    transport = httpx.ASGITransport(app=create_app(app, manage_lifecycle=False))
    clients, keys = {}, {}
    for variant, sees in (("unmasked", True), ("masked", False)):
        user = await User.create(
            phone=f"+7926{random.randrange(10**7):07d}", password_hash=hash_password("bench pw 123")
        )
        await AccessGrant.create(user=user, project_id=connection.project_id, level="view", may_see_contacts=sees)
        _, keys[variant] = await create_api_key(user)
        client = httpx.AsyncClient(transport=transport, base_url="http://bench")
        page = await client.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        await client.post("/login", data={"phone": user.phone, "password": "bench pw 123", "csrf_token": csrf})
        clients[variant] = client
    cases = {
        "calls_table_range_and_connection": f"/calls?connection={connection.id}&{window}",
        "calls_table_unfiltered": "/calls",
        "read_api_range_and_connection": f"/api/v1/calls?connection={connection.id}&{window}",
    }
    results = {}
    try:
        check = await clients["masked"].get(cases["calls_table_range_and_connection"])
        assert check.text.count('class="call ') == 50 and check.text.count("***-**-") >= 50, "not masked"
        for name, url in cases.items():
            samples: dict[str, list[float]] = {"unmasked": [], "masked": []}
            for _ in range(args.repeat):
                for variant in ("unmasked", "masked"):
                    headers = {"Authorization": f"Bearer {keys[variant]}"} if url.startswith("/api/") else {}
                    mask_phone.cache_clear()
                    started = time.perf_counter()
                    response = await clients[variant].get(url, headers=headers)
                    samples[variant].append(time.perf_counter() - started)
                    assert response.status_code == 200, (name, variant, response.status_code)
            for variant, taken in samples.items():
                results[f"{name}_{variant}_user"] = percentiles(taken)
                print(f"  {name} ({variant} user): {results[f'{name}_{variant}_user']}", flush=True)
    finally:
        for client in clients.values():
            await client.aclose()
    return results


async def export(args) -> dict:
    from perezvon.core.app import Perezvon
    from perezvon.core.call_filters import filtered_calls, parse_filters
    from perezvon.core.models import Connection
    from perezvon.web.admin.export import Exporter

    app = Perezvon(settings_for(args))
    await app.start()
    try:
        per_connection = max(1, args.calls // CONNECTIONS)
        wanted = max(1, round(args.export / per_connection))
        ids = [c.id for c in await Connection.all().order_by("id").limit(wanted)]

        class Params(dict):
            def getlist(self, key):
                return [str(i) for i in ids] if key == "connection" else []

        filters = parse_filters(Params())
        rows = await filtered_calls(filters, None).count()
        path = Path(args.data_dir) / "bench-export.xlsx"
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started, cpu_started = time.perf_counter(), time.process_time()
        written = await Exporter("ru").write(filters, None, path)
        seconds = time.perf_counter() - started
        # CPU seconds of this process (all its threads): what the export costs, less the box's noise
        cpu_seconds = time.process_time() - cpu_started
        load = open("/proc/loadavg").read().split()[0] if Path("/proc/loadavg").exists() else None
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result = {
            "rows": written,
            "expected_rows": rows,
            "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu_seconds, 2),
            "load_average_1min_after": load,
            "rows_per_second": round(written / seconds),
            "file_mb": round(path.stat().st_size / 2**20, 1),
            "peak_rss_mb": round(peak),
            "rss_before_export_mb": round(rss_before),
        }
        print(f"  export: {result}", flush=True)
        return result
    finally:
        await app.stop()


PHASES = {"seed": seed, "pages": pages, "export": export}


def run_phase(args, phase: str) -> dict:
    command = [
        sys.executable,
        __file__,
        "--phase",
        phase,
        "--data-dir",
        args.data_dir,
        "--database-url",
        args.database_url,
        "--calls",
        str(args.calls),
        "--export",
        str(args.export),
        "--repeat",
        str(args.repeat),
        *(["--masked"] if args.masked else []),
    ]
    if args.redis_url:
        command += ["--redis-url", args.redis_url]
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    sys.stdout.write(out.stdout.split("RESULT ", 1)[0])
    return json.loads(out.stdout.split("RESULT ", 1)[1])


async def postgres_database(base: str) -> tuple[str, str]:
    from urllib.parse import urlsplit, urlunsplit

    import asyncpg

    name = f"perezvon_bench_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(base)
    admin = await asyncpg.connect(urlunsplit(("postgresql", *parts[1:])))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, "", "")), name


async def drop_postgres(base: str, name: str) -> None:
    from urllib.parse import urlsplit, urlunsplit

    import asyncpg

    parts = urlsplit(base)
    admin = await asyncpg.connect(urlunsplit(("postgresql", *parts[1:])))
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--postgres-url", default="postgres://postgres@127.0.0.1/postgres")
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--export", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--phase", choices=list(PHASES))
    parser.add_argument("--data-dir")
    parser.add_argument("--database-url")
    parser.add_argument(
        "--masked", action="store_true", help="also time the pages for users with and without the contacts right"
    )
    parser.add_argument("--skip-export", action="store_true", help="time the pages only")
    args = parser.parse_args()
    if args.phase:
        result = asyncio.run(PHASES[args.phase](args))
        print("RESULT " + json.dumps(result, default=str), flush=True)
        return 0
    report = {}
    for db in ["sqlite", "postgres"] if args.db == "both" else [args.db]:
        with tempfile.TemporaryDirectory(prefix="perezvon-admin-bench-") as data_dir:
            args.data_dir = data_dir
            dropped = None
            if db == "sqlite":
                args.database_url = f"sqlite://{data_dir}/bench.sqlite3"
            else:
                args.database_url, dropped = asyncio.run(postgres_database(args.postgres_url))
            try:
                print(f"{db}: seeding {args.calls} calls", flush=True)
                report[db] = {"seed": run_phase(args, "seed")}
                report[db]["pages"] = run_phase(args, "pages")
                if not args.skip_export:
                    report[db]["export"] = run_phase(args, "export")
            finally:
                if dropped:
                    asyncio.run(drop_postgres(args.postgres_url, dropped))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "admin_calls.json").write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
