"""``/healthz`` latency while 20 logins run at once: argon2 on the event loop vs. in the hashing pool.

Why ``perezvon.core.auth.verify_password_off_loop`` exists (issue 13): one argon2 verification
takes tens of milliseconds of CPU; checked on the event loop, 20 logins at once hold up every
other request of the process -- in ``perezvon serve`` the same loop takes leads and dials calls.

Two servers run side by side, each in a child process of its own (uvicorn, SQLite and an
embedded Redis in a temporary directory, the same code): ``loop`` checks passwords on the
event loop, as before the change (the bench swaps the pool out for a direct call), ``pool``
is the code as it is. Their rounds alternate. A round: ``--logins`` users sign in at once (each
its own client, right passwords), while one more client asks ``/healthz`` again and again; its
latencies are collected. Before the rounds, ``/healthz`` alone (idle).

    .venv/bin/python bench/login_loop.py [--rounds 10] [--logins 20] [--port 23010]

Ports ``--port`` and ``--port`` + 1 on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PASSWORD = "bench password 123"
MODES = ("loop", "pool")


def user_phone(n: int) -> str:
    return f"+7925900{n:04d}"


async def serve(mode: str, port: int, data_dir: str, users: int) -> None:
    """The child process: one Perezvon web app, with ``users`` users who share one password."""
    import uvicorn

    from perezvon.core import auth
    from perezvon.core.app import Perezvon
    from perezvon.core.models import User
    from perezvon.core.settings import Settings
    from perezvon.web.admin.views import auth as auth_views
    from perezvon.web.app import create_app

    if mode == "loop":  # what the code did before: argon2 right on the event loop

        async def verify_on_the_loop(stored_hash: str | None, password: str) -> bool:
            return auth.verify_password(stored_hash, password)

        auth_views.verify_password_off_loop = verify_on_the_loop
    settings = Settings.from_env(env={}, data_dir=Path(data_dir), plugins_path=ROOT / "plugins.toml")
    app = Perezvon(settings)
    await app.start(migrate=True)
    stored = auth.hash_password(PASSWORD)
    for n in range(users):
        await User.create(phone=user_phone(n), password_hash=stored, first_name="Bench")
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(app, manage_lifecycle=False), host=HOST, port=port, log_level="warning", lifespan="off"
        )
    )
    print("ready", flush=True)
    try:
        await server.serve()
    finally:
        await app.stop()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def one_round(base: str, logins: int) -> tuple[list[float], float]:
    import httpx

    clients = [httpx.AsyncClient(base_url=base, timeout=60) for _ in range(logins)]
    probe = httpx.AsyncClient(base_url=base, timeout=60)
    try:
        forms = []
        for client in clients:
            page = await client.get("/login")
            forms.append(re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1))
        await probe.get("/healthz")  # its connection is open before the round
        latencies: list[float] = []
        running = True

        async def ask_health() -> None:
            while running:
                started = time.perf_counter()
                answer = await probe.get("/healthz")
                latencies.append(time.perf_counter() - started)
                assert answer.status_code in (200, 503)

        async def sign_in(n: int) -> None:
            answer = await clients[n].post(
                "/login", data={"phone": user_phone(n), "password": PASSWORD, "csrf_token": forms[n]}
            )
            assert answer.status_code == 303, answer.status_code

        health = asyncio.create_task(ask_health())
        started = time.perf_counter()
        await asyncio.gather(*(sign_in(n) for n in range(logins)))
        elapsed = time.perf_counter() - started
        running = False
        await health
        return latencies, elapsed
    finally:
        for client in (*clients, probe):
            await client.aclose()


async def idle_health(base: str, count: int = 50) -> list[float]:
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=60) as probe:
        await probe.get("/healthz")
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            await probe.get("/healthz")
            latencies.append(time.perf_counter() - started)
        return latencies


def ms(value: float) -> str:
    return f"{1000 * value:.1f}"


async def main(args) -> None:
    servers = {}
    with tempfile.TemporaryDirectory(prefix="perezvon-login-bench-") as tmp:
        try:
            for offset, mode in enumerate(MODES):
                data_dir = Path(tmp) / mode
                servers[mode] = (
                    subprocess.Popen(
                        [sys.executable, __file__, "--serve", mode, "--port", str(args.port + offset)]
                        + ["--data-dir", str(data_dir), "--logins", str(args.logins)],
                        cwd=ROOT,
                        stdout=subprocess.PIPE,
                        text=True,
                        env={**os.environ, "PYTHONUNBUFFERED": "1"},
                    ),
                    f"http://{HOST}:{args.port + offset}",
                )
            for mode, (process, _) in servers.items():
                line = process.stdout.readline()
                if line.strip() != "ready":
                    raise RuntimeError(f"the {mode} server did not start: {line!r}")
            idle = {mode: await idle_health(base) for mode, (_, base) in servers.items()}
            during: dict[str, list[float]] = {mode: [] for mode in MODES}
            walls: dict[str, list[float]] = {mode: [] for mode in MODES}
            for _ in range(args.rounds):
                for mode in MODES:  # alternated, so both see the same machine
                    latencies, elapsed = await one_round(servers[mode][1], args.logins)
                    during[mode].extend(latencies)
                    walls[mode].append(elapsed)
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(timeout=30)
    print(f"{args.logins} logins at once, {args.rounds} rounds per mode, /healthz asked again and again meanwhile")
    print(f"argon2 threads in the pool: min(4, CPUs) = {min(4, os.cpu_count() or 1)}")
    print("| argon2 | /healthz idle p50 | /healthz during logins p50 | p99 | max | answers | 20 logins took (median) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode in MODES:
        print(
            f"| {'on the event loop' if mode == 'loop' else 'in the hashing pool'} | {ms(statistics.median(idle[mode]))} ms"
            f" | {ms(statistics.median(during[mode]))} ms | {ms(percentile(during[mode], 0.99))} ms"
            f" | {ms(max(during[mode]))} ms | {len(during[mode])} | {ms(statistics.median(walls[mode]))} ms |"
        )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--port", type=int, default=23010)
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    if arguments.serve:
        asyncio.run(serve(arguments.serve, arguments.port, arguments.data_dir, arguments.logins))
    else:
        asyncio.run(main(arguments))
