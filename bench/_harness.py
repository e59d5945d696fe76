"""What the end-to-end benches (lead_intake.py, smtp_intake.py) share: Perezvon's processes, run per database.

:class:`ServerProcesses` starts ``perezvon`` commands in their own sessions with
their output in ``bench/results/<bench>-<db>-<role>.log``, and stops them with
SIGINT (killing, and noting, any that do not stop within 30 s).
:func:`run_each_database` runs a bench once per database asked for, saves each
result as JSON, prints its summary, and turns lost work into the exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import signal
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
RESULTS = ROOT / "bench" / "results"
HOST = "127.0.0.1"  # the only target, ever


class ServerProcesses:
    """The Perezvon processes of one run of ``bench`` on ``db``, their environment and their logs."""

    #: the roles :meth:`stop_all` stops, in this order (the consumers of a queue before its producers)
    stop_order: tuple[str, ...] = ()

    def __init__(self, bench: str, db: str, env: dict[str, str]) -> None:
        self.bench = bench
        self.db = db
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        #: roles that did not stop within 30 s of SIGINT and were killed
        self.killed: list[str] = []

    def demo(self) -> dict:
        """``perezvon demo --json`` in this run's environment: the demo company's ids and tokens."""
        out = subprocess.run(
            [str(VENV_BIN / "perezvon"), "demo", "--json"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode != 0:
            raise RuntimeError(f"perezvon demo failed ({out.returncode}):\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def start(self, role: str, argv: list[str]) -> subprocess.Popen:
        log = RESULTS / f"{self.bench}-{self.db}-{role}.log"
        self.logs[role] = log
        handle = open(log, "ab")
        handle.write(f"--- {dt.datetime.now().isoformat(timespec='seconds')} {' '.join(argv)}\n".encode())
        handle.flush()
        # own session: a Ctrl-C at the terminal reaches only us, and we stop them in order
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        handle.close()
        self.procs[role] = proc
        return proc

    def stop(self, role: str) -> int | None:
        proc = self.procs.pop(role, None)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.killed.append(role)
                proc.kill()
                proc.wait(timeout=10)
        return proc.returncode

    def stop_all(self) -> None:
        for role in self.stop_order:
            self.stop(role)


def install_uvloop() -> None:
    """The load generator on uvloop when it is installed: its own CPU use matters on a 2-core box."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass


def run_each_database(
    args: argparse.Namespace,
    run: Callable[[str, argparse.Namespace], Awaitable[dict]],
    summary: Callable[[dict], list[str]],
    *,
    bench: str,
    lost: Callable[[dict], bool],
    lost_message: str,
) -> int:
    """``run(db, args)`` for each database in ``args.db``; 0 when all went well, 1 when ``lost(result)``
    says work was lost, 2 when a run failed (one database failing does not hide the other's figures)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    install_uvloop()

    anything_lost, broken, blocks = False, False, []
    for db in ("sqlite", "postgres") if args.db == "both" else (args.db,):
        try:
            result = asyncio.run(run(db, args))
        except Exception as exc:
            broken = True
            blocks.append([f"{db}: FAILED: {type(exc).__name__}: {exc}"])
            print(blocks[-1][0], flush=True)
            continue
        (RESULTS / f"{bench}-{db}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        blocks.append(summary(result))
        print("\n".join(blocks[-1]), flush=True)
        anything_lost = anything_lost or lost(result)
    print("\n=== summary ===")
    for block in blocks:
        print("\n".join(block[:2]))
    if anything_lost:
        print(lost_message)
    return 1 if anything_lost else 2 if broken else 0
