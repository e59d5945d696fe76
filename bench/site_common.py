"""Shared by the site-script benchmarks: a demo Perezvon web process in a fresh data dir."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PERZVON = [sys.executable, "-m", "perezvon.core.cli"]


def free_port() -> int:
    """PEREZVON_BENCH_PORT when given (engineers sharing a machine each have a range), else a free one."""
    if os.environ.get("PEREZVON_BENCH_PORT"):
        return int(os.environ["PEREZVON_BENCH_PORT"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gz(data: bytes) -> int:
    return len(gzip.compress(data, 9))


def steal_ticks() -> tuple[int, int]:
    """(all ticks, stolen ticks) of the machine, from /proc/stat."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(fields), (fields[7] if len(fields) > 7 else 0)


def busy_ticks() -> int:
    """Ticks the machine's CPUs spent on anything but idle, I/O wait and steal."""
    user, nice, system, idle, iowait, irq, softirq, steal, *_ = (
        int(x) for x in open("/proc/stat").readline().split()[1:]
    )
    return user + nice + system + irq + softirq


def process_ticks(*pids: int) -> int:
    """User + system ticks of these processes (and of their reaped children)."""
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total


def children_of(pid: int) -> list[int]:
    try:
        return [int(x) for x in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []


class DemoServer:
    """``perezvon demo`` then ``perezvon web`` on a free port, one process, its own data dir."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="perezvon-site-bench-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PEREZVON_DATA_DIR": str(self.dir),
            "PEREZVON_PUBLIC_URL": self.url,
            "PEREZVON_PLUGINS": str(ROOT / "plugins.toml"),
            "PEREZVON_LOG_LEVEL": "WARNING",
        }
        self.env.pop("PEREZVON_REDIS_URL", None)
        self.env.pop("PEREZVON_DATABASE_URL", None)
        self.proc: subprocess.Popen | None = None
        self.demo: dict = {}

    def __enter__(self) -> DemoServer:
        out = subprocess.run(
            [*PERZVON, "demo", "--json"], cwd=ROOT, env=self.env, check=True, capture_output=True, text=True
        ).stdout
        self.demo = json.loads(out.strip().splitlines()[-1])
        self.log = open(self.dir / "web.log", "w")
        self.proc = subprocess.Popen(
            [*PERZVON, "web", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=2).read()
                break
            except urllib.error.HTTPError:  # it answers: 503 names what is down (no worker runs here)
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"perezvon web did not start; see {self.dir / 'web.log'}")
                time.sleep(0.2)
        return self

    @property
    def token(self) -> str:
        return self.demo["site_token"]

    def get(self, path: str, headers: dict | None = None) -> tuple[int, object, bytes]:
        request = urllib.request.Request(self.url + path, headers=headers or {})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
