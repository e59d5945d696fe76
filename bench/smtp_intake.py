"""Site-forms SMTP intake benchmark: throughput, end of DATA to first dial, zero messages lost.

What it measures, per database (SQLite and/or PostgreSQL):

1. End of DATA to first dial, with ``perezvon worker`` running: an open loop
   at ``--dial-rate`` form e-mails/s for ``--dial-seconds`` seconds. For each
   message the client notes the wall clock (``time.time()``) the moment it
   has written the final ``.`` of DATA; once the calls have been dialled the
   script reads ``attempts.dialled_at`` (attempt 1: when the simulator began
   dialling the first leg) and reports ``dialled_at - end of DATA``
   (p50/p99/min/max). This phase runs first, so the worker is not buried
   under the throughput phase's backlog of queued calls.
2. Throughput of ONE ``perezvon smtp`` process: a closed loop of
   ``--concurrency`` SMTP sessions, each sending one form e-mail after another
   (MAIL, RCPT, DATA, as a site's mail server does over one connection), for
   ``--warmup`` seconds (discarded) and then ``--seconds`` seconds. Reported:
   messages answered 250 per second, p50/p99/max from the end of DATA to the
   250, and every other reply counted by code. The worker is stopped, so the
   SMTP process has the CPU (apart from this load generator, Redis and the
   database).
3. Zero messages lost: every 250 must be a lead. The phones of every message
   answered 250, in every phase, are matched against the ``siteforms`` leads
   of the bench connection, and the ``siteforms_messages`` rows are counted.
   Any difference makes the script exit with 1.

The e-mail is what a WordPress site with PHPMailer sends: multipart/alternative,
a plain-text and an HTML part in UTF-8 quoted-printable, name, phone, page
URL with UTM -- about 2.5 KB. Every message has its own phone and Message-ID,
so none is a duplicate.

How: like bench/lead_intake.py (whose helpers it uses), the script starts the
processes itself (``perezvon demo --json`` to migrate and seed -- it prints the
demo connection's technical address --, ``perezvon smtp``, ``perezvon worker``)
with a fresh data dir, a fresh Redis database (``--redis-url``, FLUSHDB'd)
and, for PostgreSQL, a fresh database that is dropped at the end. The plugins
are the simulator (as in plugins.toml: 3 s ringing, speed 50) and siteforms
with its defaults, from a plugins file written into the data dir, so the
figures are the intake's whatever else plugins.toml switches on (``--plugins``
uses another file). The load generator is this process: raw asyncio streams
with pre-built messages.

    .venv/bin/python bench/smtp_intake.py [--db sqlite|postgres|both] [--seconds N] [--concurrency N]

Numbers go to stdout and to bench/results/smtp_intake-<db>.json, the server
logs next to them (smtp_intake-<db>-smtp.log, -worker.log), and with
``--py-spy`` a collapsed-stack profile of the SMTP process during the
throughput window (smtp_intake-<db>-smtp.pyspy.txt), summarised in the output.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import quopri
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lead_intake as common  # noqa: E402 - the sibling benchmark's helpers
from _harness import HOST, RESULTS, ROOT, VENV_BIN, ServerProcesses, run_each_database  # noqa: E402

REPLY_TIMEOUT = 30.0  # seconds; a message slower than this counts as an error
SETTLE_TIMEOUT = 60.0  # seconds to wait for the dial phase's first legs to be dialled
START_TIMEOUT = 60.0
MAX_MESSAGES_PER_SECOND = 100_000  # a bound on every load loop, far above anything reachable
BENCH_PLUGINS = """\
[perezvon]
telephony = "simulator"

[plugins.simulator]
enabled = true
ring_seconds = 3
talk_seconds = 150
speed = 50

[plugins.siteforms]
enabled = true
"""


# --- the messages ------------------------------------------------------------------------------


def _qp(text: str) -> bytes:
    return quopri.encodestring(text.encode()).replace(b"\n", b"\r\n")


class FormFactory:
    """Pre-built form e-mails: one template, a distinct phone and Message-ID in each."""

    def __init__(self, technical_email: str) -> None:
        self.to = technical_email
        self.count = 0
        plain = (
            "Имя: Bench {N}\nТелефон: {PHONE}\nСалон: Центральный\n"
            "Страница: https://localhost/kredit/?utm_source=bench&utm_medium=email&utm_campaign=smtp\n\n"
            "Сообщение:\nПерезвоните мне, пожалуйста, по поводу кредита.\n\n-- \n"
            "Это сообщение отправлено с сайта Демо (https://localhost)\n"
        )
        html = (
            "<html><body><table>"
            + "".join(
                f"<tr><td><b>{label}:</b></td><td>{value}</td></tr>"
                for label, value in (
                    ("Имя", "Bench {N}"),
                    ("Телефон", "{PHONE}"),
                    ("Салон", "Центральный"),
                    (
                        "Страница",
                        '<a href="https://localhost/kredit/?utm_source=bench&amp;utm_medium=email'
                        '&amp;utm_campaign=smtp">Кредит</a>',
                    ),
                    ("Сообщение", "Перезвоните мне, пожалуйста, по поводу кредита."),
                )
            )
            + "</table><p>Это сообщение отправлено с сайта Демо</p></body></html>\n"
        )
        boundary = "b1_bench0123456789abcdef"
        self.template = (
            (
                f"Date: Thu, 14 Mar 2024 12:00:00 +0300\r\nTo: {self.to}\r\n"
                "From: =?UTF-8?B?0JTQtdC80L4=?= <wordpress@localhost>\r\n"
                "Subject: =?UTF-8?B?0JfQsNGP0LLQutCwINGBINGB0LDQudGC0LA=?=\r\n"
                "Message-ID: <{MID}@bench.localhost>\r\nX-Mailer: PHPMailer 6.9.1 (https://github.com/PHPMailer/PHPMailer)\r\n"
                f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n\tboundary="{boundary}"\r\n\r\n'
                f"This is a multi-part message in MIME format.\r\n\r\n--{boundary}\r\n"
                "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            ).encode()
            + _qp(plain)
            + (
                f"\r\n--{boundary}\r\nContent-Type: text/html; charset=UTF-8\r\n"
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            ).encode()
            + _qp(html)
            + f"\r\n--{boundary}--\r\n".encode()
        )

    def next_message(self) -> tuple[str, bytes]:
        """(phone in E.164, the DATA bytes ending with the final dot)."""
        n = self.count
        if n >= 10**7:  # +7916 and seven digits: past this, phones would repeat (duplicates, not leads)
            raise RuntimeError("out of distinct phone numbers")
        self.count += 1
        phone = "+7916%07d" % n
        shown = f"8 (916) {phone[5:8]}-{phone[8:10]}-{phone[10:]}"
        body = (
            self.template.replace(b"{N}", str(n).encode())
            .replace(b"{PHONE}", shown.encode())
            .replace(b"{MID}", f"{n}.{time.time_ns()}".encode())
        )
        return phone, body + b".\r\n"  # no line of it starts with a dot: nothing to stuff


class SmtpSession:
    """One SMTP session: EHLO once, then MAIL/RCPT/DATA per message, reading each reply."""

    def __init__(self, port: int, sender: str, recipient: str) -> None:
        self.port, self.sender, self.recipient = port, sender, recipient
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _reply(self) -> int:
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("the server closed the session")
            if line[3:4] != b"-":
                return int(line[:3])

    async def _command(self, line: bytes) -> int:
        self.writer.write(line)
        return await self._reply()

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        if await self._reply() != 220 or await self._command(b"EHLO bench.localhost\r\n") != 250:
            raise ConnectionError("no greeting")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def send(self, data: bytes) -> tuple[int, float, float]:
        """(reply to DATA, wall clock at the end of DATA, perf counter at the end of DATA)."""
        if self.writer is None:
            await self.open()
        for line in (f"MAIL FROM:<{self.sender}>\r\n".encode(), f"RCPT TO:<{self.recipient}>\r\n".encode()):
            code = await self._command(line)
            if code != 250:
                return code, time.time(), time.perf_counter()
        if await self._command(b"DATA\r\n") != 354:
            return 0, time.time(), time.perf_counter()
        self.writer.write(data)
        await self.writer.drain()
        ended_wall, ended = time.time(), time.perf_counter()  # the final dot is on its way
        return await self._reply(), ended_wall, ended


@dataclasses.dataclass
class Tally:
    """Every reply of a run, across phases, for the zero-lost check."""

    accepted_phones: set[str] = dataclasses.field(default_factory=set)
    replies: Counter = dataclasses.field(default_factory=Counter)
    errors: Counter = dataclasses.field(default_factory=Counter)


async def send_one(session: SmtpSession, factory: FormFactory, tally: Tally) -> tuple[str, int | None, float, float]:
    phone, data = factory.next_message()
    try:
        async with asyncio.timeout(REPLY_TIMEOUT):
            code, ended_wall, ended = await session.send(data)
    except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
        tally.errors[type(exc).__name__] += 1
        session.close()  # the next message reconnects; a message is never resent (it might be a lead)
        return phone, None, time.time(), time.perf_counter()
    tally.replies[code] += 1
    if code == 250:
        tally.accepted_phones.add(phone)
    return phone, code, ended_wall, ended


# --- phase 1: end of DATA to first dial (open loop) -----------------------------------------------


async def dial_phase_send(
    factory: FormFactory, tally: Tally, *, port: int, rate: float, seconds: float
) -> dict[str, float]:
    """Send form e-mails on a fixed schedule; returns {phone: wall clock at the end of its DATA}."""
    pool: asyncio.Queue[SmtpSession] = asyncio.Queue()
    for _ in range(8):
        pool.put_nowait(SmtpSession(port, "wordpress@localhost", factory.to))
    ended_at: dict[str, float] = {}

    async def one() -> None:
        session = await pool.get()
        try:
            phone, code, ended_wall, _ = await send_one(session, factory, tally)
            if code == 250:
                ended_at[phone] = ended_wall
        finally:
            pool.put_nowait(session)

    tasks = []
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait().close()
    return ended_at


# --- phase 2: throughput (closed loop) --------------------------------------------------------------


async def throughput_phase(
    factory: FormFactory, tally: Tally, *, port: int, concurrency: int, warmup: float, seconds: float, server_pid: int
) -> dict:
    sessions = [SmtpSession(port, "wordpress@localhost", factory.to) for _ in range(concurrency)]
    await asyncio.gather(*(s.open() for s in sessions))
    latencies: list[float] = []
    window: Counter = Counter()
    ends: list[float] = []
    start = time.perf_counter()
    measure_from = start + warmup
    deadline = measure_from + seconds
    limit = int((warmup + seconds) * MAX_MESSAGES_PER_SECOND / concurrency) + 1
    meter: list = []

    async def sender(session: SmtpSession) -> None:
        for _ in range(limit):
            began = time.perf_counter()
            if began >= deadline:
                return
            if began >= measure_from and not meter:
                meter.append(common.CpuMeter(server_pid))
            _, code, _, ended = await send_one(session, factory, tally)
            done = time.perf_counter()
            if began >= measure_from:
                window[code if code is not None else "error"] += 1
                ends.append(done)
                if code is not None:
                    latencies.append(done - ended)

    await asyncio.gather(*(sender(s) for s in sessions))
    finished = max(ends) if ends else deadline
    smtp_cpu, client_cpu, busy, stolen = meter[0].read() if meter else (None,) * 4
    for session in sessions:
        session.close()
    elapsed = finished - measure_from
    accepted = window.get(250, 0)
    return {
        "concurrency": concurrency,
        "warmup_seconds": warmup,
        "elapsed_seconds": round(elapsed, 3),
        "accepted": accepted,
        "accepted_per_second": round(accepted / elapsed, 1) if elapsed > 0 else None,
        "data_end_to_250_ms": common.stats_ms(latencies),
        "replies": {str(k): v for k, v in sorted(window.items(), key=str)},
        "cpu": {
            "smtp_process_percent_of_one_core": smtp_cpu,
            "load_generator_percent_of_one_core": client_cpu,
            "machine_busy_percent": busy,
            "machine_stolen_percent": stolen,
            "cores": os.cpu_count(),
            "smtp_cpu_ms_per_accepted_message": round(smtp_cpu * 10 * elapsed / accepted, 3)
            if accepted and smtp_cpu is not None
            else None,
        },
    }


# --- the databases: what became of the messages --------------------------------------------------


class SqliteStore(common.SqliteStore):
    async def first_dials(self, connection_id: int) -> dict[str, tuple]:
        """{phone: (attempt started_at, dialled_at)} of the siteforms leads' first attempts."""
        rows = self._query(
            "SELECT leads.phone, attempts.started_at, attempts.dialled_at FROM leads "
            "JOIN calls ON calls.lead_id = leads.id JOIN attempts ON attempts.call_id = calls.id "
            "AND attempts.number = 1 WHERE leads.connection_id = ? AND leads.source = 'siteforms'",
            (connection_id,),
        )
        return {row[0]: row[1:] for row in rows}

    async def outcome(self, connection_id: int) -> tuple[set[str], Counter]:
        phones = {
            row[0]
            for row in self._query(
                "SELECT phone FROM leads WHERE connection_id = ? AND source = 'siteforms'", (connection_id,)
            )
        }
        statuses = Counter(
            dict(
                self._query(
                    "SELECT status, count(*) FROM siteforms_messages WHERE connection_id = ? GROUP BY status",
                    (connection_id,),
                )
            )
        )
        return phones, statuses


class PostgresStore(common.PostgresStore):
    async def first_dials(self, connection_id: int) -> dict[str, tuple]:
        rows = await self._fetch(
            "SELECT leads.phone, attempts.started_at, attempts.dialled_at FROM leads "
            "JOIN calls ON calls.lead_id = leads.id JOIN attempts ON attempts.call_id = calls.id "
            "AND attempts.number = 1 WHERE leads.connection_id = $1 AND leads.source = 'siteforms'",
            connection_id,
        )
        return {row[0]: (row[1], row[2]) for row in rows}

    async def outcome(self, connection_id: int) -> tuple[set[str], Counter]:
        phones = {
            row[0]
            for row in await self._fetch(
                "SELECT phone FROM leads WHERE connection_id = $1 AND source = 'siteforms'", connection_id
            )
        }
        statuses = Counter(
            {
                row[0]: row[1]
                for row in await self._fetch(
                    "SELECT status, count(*) FROM siteforms_messages WHERE connection_id = $1 GROUP BY status",
                    connection_id,
                )
            }
        )
        return phones, statuses


async def wait_dialled(store, connection_id: int, phones: list[str]) -> dict[str, tuple]:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    dials: dict[str, tuple] = {}
    while time.monotonic() < deadline:
        dials = await store.first_dials(connection_id)
        if all(p in dials and dials[p][1] is not None for p in phones):
            break
        await asyncio.sleep(0.5)
    return dials


def dial_report(ended_at: dict[str, float], dials: dict[str, tuple]) -> dict:
    to_dial, to_start = [], []
    for phone, data_end in ended_at.items():
        started, dialled = dials.get(phone, (None, None))
        if started is not None:
            to_start.append(common.parse_db_time(started) - data_end)
        if dialled is not None:
            to_dial.append(common.parse_db_time(dialled) - data_end)
    return {
        "n": len(to_dial),
        "accepted": len(ended_at),
        "never_dialled": len(ended_at) - len(to_dial),
        "data_end_to_dialled_ms": common.stats_ms(to_dial),
        "data_end_to_attempt_started_ms": common.stats_ms(to_start),
    }


# --- the processes ----------------------------------------------------------------------------------


class Servers(ServerProcesses):
    """``perezvon smtp`` and ``perezvon worker`` of one run."""

    stop_order = ("worker", "smtp")

    def __init__(self, db: str, database_url: str, redis_url: str, data_dir: Path, plugins: Path | None) -> None:
        self.smtp_port = common.free_port()
        if plugins is None:
            plugins = data_dir / "plugins.toml"
            plugins.write_text(BENCH_PLUGINS)
        super().__init__(
            "smtp_intake",
            db,
            {
                **os.environ,
                "PEREZVON_DATA_DIR": str(data_dir),
                "PEREZVON_DATABASE_URL": database_url,
                "PEREZVON_REDIS_URL": redis_url,
                "PEREZVON_PLUGINS": str(plugins),
                "PEREZVON_LOG_LEVEL": "WARNING",
            },
        )

    def demo(self) -> dict:
        demo = super().demo()
        if "technical_email" not in demo:
            raise RuntimeError("perezvon demo printed no technical_email: is siteforms enabled in plugins.toml?")
        return demo

    def start_smtp(self) -> None:
        self.start("smtp", [str(VENV_BIN / "perezvon"), "smtp", "--host", HOST, "--smtp-port", str(self.smtp_port)])
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.procs["smtp"].poll() is not None:
                raise RuntimeError(
                    f"perezvon smtp exited with {self.procs['smtp'].returncode}; see {self.logs['smtp']}"
                )
            try:
                with socket.create_connection((HOST, self.smtp_port), timeout=2) as sock:
                    if sock.recv(100).startswith(b"220"):
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"perezvon smtp did not answer within {START_TIMEOUT:.0f} s; see {self.logs['smtp']}")


def start_profiler(db: str, pid: int, seconds: float) -> subprocess.Popen | None:
    spy = shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")
    if spy is None:
        print("py-spy not found: `.venv/bin/pip install py-spy` to profile", flush=True)
        return None
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
            str(RESULTS / f"smtp_intake-{db}-smtp.pyspy.txt"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# --- one run -------------------------------------------------------------------------------------------


async def measure_dial(
    servers: Servers, store, factory: FormFactory, tally: Tally, connection_id: int, args: argparse.Namespace
) -> dict:
    servers.start("worker", [str(VENV_BIN / "perezvon"), "worker"])
    # warm up (caches, the worker's start): until these are dialled the worker is not ready
    warm = await dial_phase_send(factory, tally, port=servers.smtp_port, rate=5, seconds=1)
    await wait_dialled(store, connection_id, list(warm))
    print(
        f"{servers.db}: dial phase, {args.dial_rate:g} form e-mails/s for {args.dial_seconds:g} s, worker running",
        flush=True,
    )
    load_average = os.getloadavg()[0]
    cpu = common.CpuMeter(servers.procs["smtp"].pid, servers.procs["worker"].pid)
    ended_at = await dial_phase_send(
        factory, tally, port=servers.smtp_port, rate=args.dial_rate, seconds=args.dial_seconds
    )
    smtp_cpu, worker_cpu, client_cpu, busy, stolen = cpu.read()
    dials = await wait_dialled(store, connection_id, list(ended_at))
    servers.stop("worker")
    report = dial_report(ended_at, dials)
    report.update(
        rate_per_second=args.dial_rate,
        load_average_before=load_average,
        cpu={
            "smtp_process_percent_of_one_core": smtp_cpu,
            "worker_process_percent_of_one_core": worker_cpu,
            "load_generator_percent_of_one_core": client_cpu,
            "machine_busy_percent": busy,
            "machine_stolen_percent": stolen,
        },
    )
    return report


async def run(db: str, args: argparse.Namespace) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix=f"perezvon-bench-smtp-{db}-"))
    store = SqliteStore(data_dir) if db == "sqlite" else PostgresStore()
    servers = Servers(db, store.url, args.redis_url, data_dir, args.plugins)
    for old in RESULTS.glob(f"smtp_intake-{db}-*"):
        old.unlink()
    common.flush_redis(args.redis_url)
    await store.create()
    result: dict = {"db": db, "database_url": store.url, "redis_url": args.redis_url}
    try:
        demo = servers.demo()
        result["technical_email"] = demo["technical_email"]
        factory = FormFactory(demo["technical_email"])
        result["message_bytes"] = len(factory.next_message()[1])
        factory.count = 0
        tally = Tally()
        servers.start_smtp()
        result["dial"] = await measure_dial(servers, store, factory, tally, demo["connection_id"], args)
        print(
            f"{db}: throughput phase, {args.concurrency} SMTP sessions, {args.warmup:g} s warm-up + {args.seconds:g} s",
            flush=True,
        )
        load_average = os.getloadavg()[0]
        spies: list = []
        if args.py_spy:  # the measured window only: py-spy starts when the warm-up ends
            asyncio.get_running_loop().call_later(
                args.warmup, lambda: spies.append(start_profiler(db, servers.procs["smtp"].pid, args.seconds))
            )
        result["throughput"] = await throughput_phase(
            factory,
            tally,
            port=servers.smtp_port,
            concurrency=args.concurrency,
            warmup=args.warmup,
            seconds=args.seconds,
            server_pid=servers.procs["smtp"].pid,
        )
        result["throughput"]["load_average_before"] = load_average
        for spy in filter(None, spies):
            spy.wait(timeout=60)
            result["profile"] = common.profile_summary(RESULTS / f"smtp_intake-{db}-smtp.pyspy.txt")
        phones, statuses = await store.outcome(demo["connection_id"])
        result["lost_check"] = {
            "answers_250": len(tally.accepted_phones),
            "leads": len(phones),
            "lost": len(tally.accepted_phones - phones),
            "leads_never_answered_250": len(phones - tally.accepted_phones),
            "message_rows_by_status": dict(statuses),
        }
        result["all_replies"] = {str(k): v for k, v in sorted(tally.replies.items())}
        result["transport_errors"] = dict(tally.errors)
    finally:
        servers.stop_all()
        result["killed_after_sigint"] = servers.killed
        result["server_logs"] = {
            role: {"path": str(path.relative_to(ROOT)), **common.scan_log(path)} for role, path in servers.logs.items()
        }
        await store.drop()
        common.flush_redis(args.redis_url)
        shutil.rmtree(data_dir, ignore_errors=True)
    return result


def summary(result: dict) -> list[str]:
    db, t, d, lost = result["db"], result["throughput"], result["dial"], result["lost_check"]
    lat, dial = t["data_end_to_250_ms"], d["data_end_to_dialled_ms"]
    others = {k: v for k, v in t["replies"].items() if k != "250"}
    lines = [
        f"{db}: accepted {t['accepted']} form e-mails in {t['elapsed_seconds']:.1f} s = "
        f"{t['accepted_per_second']:.0f}/s into one perezvon smtp; end of DATA -> 250 p50 {lat['p50']} ms, "
        f"p99 {lat['p99']} ms, max {lat['max']} ms; 250s={lost['answers_250']} leads={lost['leads']} "
        f"lost={lost['lost']}",
        f"{db}: end of DATA -> first leg dialled p50 {dial['p50']} ms, p99 {dial['p99']} ms, min {dial['min']} ms, "
        f"max {dial['max']} ms (n={d['n']}, {d['rate_per_second']:g} e-mails/s"
        + (f", {d['never_dialled']} never dialled" if d["never_dialled"] else "")
        + ")",
        f"{db}:   of which end of DATA -> worker starts the attempt p50 "
        f"{d['data_end_to_attempt_started_ms']['p50']} ms; message {result['message_bytes']} bytes",
        f"{db}:   other replies in the window: {others or 'none'}; all phases: {result['all_replies']}; "
        f"transport errors: {result['transport_errors'] or 'none'}; message rows: "
        f"{lost['message_rows_by_status']}",
        f"{db}:   CPU during the window: smtp {t['cpu']['smtp_process_percent_of_one_core']}% of a core, "
        f"load generator {t['cpu']['load_generator_percent_of_one_core']}%, machine "
        f"{t['cpu']['machine_busy_percent']}% busy + {t['cpu']['machine_stolen_percent']}% stolen "
        f"({t['cpu']['cores']} cores); {t['concurrency']} sessions; smtp CPU per accepted message "
        f"{t['cpu']['smtp_cpu_ms_per_accepted_message']} ms",
        f"{db}:   CPU during the dial phase: smtp {d['cpu']['smtp_process_percent_of_one_core']}%, worker "
        f"{d['cpu']['worker_process_percent_of_one_core']}% of a core, machine {d['cpu']['machine_busy_percent']}% "
        f"busy + {d['cpu']['machine_stolen_percent']}% stolen; 1-minute load average before: dial "
        f"{d['load_average_before']:.2f}, throughput {t['load_average_before']:.2f}",
    ]
    profile = result.get("profile")
    if profile:
        lines.append(
            f"{db}:   py-spy smtp ({profile['samples']} samples, {profile['path']}), top self: "
            + "; ".join(profile["self"][:6])
        )
        lines.append(f"{db}:   py-spy smtp, top of our code (inclusive): " + "; ".join(profile["inclusive_ours"][:8]))
    for role, log in result["server_logs"].items():
        if log.get("lines"):
            lines.append(
                f"{db}:   {role} log ({log['path']}): {log['lines']} error/warning lines, "
                f"{log['tracebacks']} tracebacks, e.g. {log['examples'][:3]}"
            )
    if result.get("killed_after_sigint"):
        lines.append(f"{db}:   did not stop within 30 s of SIGINT and were killed: {result['killed_after_sigint']}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured throughput window (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="throughput warm-up, not measured (default 2)")
    # a closed loop, as in bench/lead_intake.py: many sites' mail servers delivering at once
    parser.add_argument("--concurrency", type=int, default=32, help="SMTP sessions sending at once (default 32)")
    parser.add_argument("--dial-rate", type=float, default=30.0, help="form e-mails/s in the dial phase (default 30)")
    parser.add_argument("--dial-seconds", type=float, default=10.0, help="length of the dial phase (default 10)")
    parser.add_argument(
        "--py-spy", action="store_true", help="profile the SMTP process during the throughput window with py-spy"
    )
    parser.add_argument(
        "--plugins",
        type=Path,
        default=None,
        help="a plugins.toml to use instead of the bench's own (simulator + siteforms)",
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/13",
        help="a Redis database for the bench alone: it is FLUSHDB'd before and after",
    )
    args = parser.parse_args()
    if not 1 <= args.concurrency <= 500 or not 0 < args.seconds <= 3600 or not 0 < args.dial_rate <= 1000:
        parser.error("keep --concurrency in 1..500, --seconds in (0, 3600], --dial-rate in (0, 1000]")
    if "127.0.0.1" not in args.redis_url and "localhost" not in args.redis_url:
        parser.error("--redis-url must be a local Redis")
    return run_each_database(
        args,
        run,
        summary,
        bench="smtp_intake",
        lost=messages_lost,
        lost_message="MESSAGES LOST: 250 answers and siteforms leads differ (see above)",
    )


def messages_lost(result: dict) -> bool:
    check = result["lost_check"]
    return bool(check["lost"]) or bool(check["leads_never_answered_250"])


if __name__ == "__main__":
    sys.exit(main())
