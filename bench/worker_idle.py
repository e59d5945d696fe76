"""What an idle worker process costs: its CPU, and the Redis commands it sends, per second.

A worker with nothing to do still polls its two queues, beats its heartbeats and
keeps its listeners; that cost is paid every second of every deployment, and
in a bench it is spread over the leads (``lead_intake.py`` counts a worker's
idle polling in its CPU per lead). The Redis command counts do not depend on
the machine's speed, so they show a change in polling even where the CPU
figure is lost in this shared VM's noise.

What runs: ``perezvon demo --json`` (migrate and seed a fresh data dir), then
``perezvon worker`` alone on the embedded SQLite and the embedded Redis, which
no other process uses. After ``--warmup`` seconds (start-up, the first sweep),
the worker's CPU time (``/proc/<pid>/stat``) and the Redis server's command
counts (``INFO commandstats``) are read, and again ``--seconds`` later.
Printed: CPU ms per second, Redis commands per second, and the commands by kind.

    .venv/bin/python bench/worker_idle.py [--seconds 20] [--warmup 5]

To compare with an earlier version of the core: ``git checkout <rev> -- core``, run,
``git checkout HEAD -- core``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import ROOT, VENV_BIN  # noqa: E402
from lead_intake import process_cpu_seconds  # noqa: E402


def command_counts(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the idle worker is measured")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds left to start-up before measuring")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pv-idle-") as data_dir:
        env = {
            **os.environ,
            "PEREZVON_DATA_DIR": data_dir,
            "PEREZVON_PLUGINS": str(ROOT / "plugins.toml"),
            "PEREZVON_LOG_LEVEL": "WARNING",
        }
        for name in ("PEREZVON_DATABASE_URL", "PEREZVON_REDIS_URL"):  # the embedded stores, no one else's
            env.pop(name, None)
        subprocess.run(
            [str(VENV_BIN / "perezvon"), "demo", "--json"], cwd=ROOT, env=env, check=True, capture_output=True
        )
        log = Path(data_dir) / "worker.log"
        with open(log, "wb") as out:
            worker = subprocess.Popen(
                [str(VENV_BIN / "perezvon"), "worker"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            socket_path = Path(data_dir) / "redis" / "redis.sock"
            deadline = time.monotonic() + 60
            while b"is running" not in log.read_bytes():
                if worker.poll() is not None or time.monotonic() > deadline:
                    print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
                    return 1
                time.sleep(0.1)
            client = redis.Redis(unix_socket_path=str(socket_path))
            time.sleep(args.warmup)
            cpu_before, commands_before, started = (
                process_cpu_seconds(worker.pid),
                command_counts(client),
                time.monotonic(),
            )
            time.sleep(args.seconds)
            cpu_after, commands_after = process_cpu_seconds(worker.pid), command_counts(client)
            elapsed = time.monotonic() - started
            client.close()
        finally:
            worker.send_signal(signal.SIGINT)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()

    by_kind = {
        name: round((calls - commands_before.get(name, 0)) / elapsed, 2)
        for name, calls in commands_after.items()
        if calls > commands_before.get(name, 0) and name != "info"  # our own reads
    }
    result = {
        "seconds": round(elapsed, 1),
        "worker_cpu_ms_per_second": round(1000 * (cpu_after - cpu_before) / elapsed, 2),
        "redis_commands_per_second": round(sum(by_kind.values()), 2),
        "by_kind": dict(sorted(by_kind.items(), key=lambda item: -item[1])),
    }
    print(json.dumps(result, indent=2))
    print(
        f"idle worker over {result['seconds']} s: {result['worker_cpu_ms_per_second']} ms of CPU a second, "
        f"{result['redis_commands_per_second']} Redis commands a second"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
