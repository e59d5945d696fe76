"""Reach burst (issue 17): 1,000 calls finish at once, every reach plugin on; does any new lead's dial wait?

The figure: "1,000 calls finishing at once queue all their notifications and pushes without delaying
any dial (lead -> first dial p99 unchanged within 10 %)".

What runs, all real processes on 127.0.0.1:

* ``perezvon demo --json`` (migrate and seed), one ``perezvon web`` and ``--workers`` ``perezvon worker``
  processes, telephony by the simulator (``ring_seconds`` 3, ``talk_seconds`` 120, ``speed`` 3: a call
  lasts about 42 s, long enough to post the burst, let it be dialled, and start the stream before it ends);
  the embedded stores (SQLite + the embedded Redis, shared by the processes through the data dir) unless
  ``--db postgres`` (a fresh database on the local server, dropped afterwards);
* in a child process, the local emulators of the test suite as real HTTP servers, each answering every
  request after a random 50-200 ms (``--latency``): Bitrix24 (tests/bitrix24_emulator.py), amoCRM
  (tests/amocrm_emulator.py), SMS.ru (tests/sms_emulator.py) and the Telegram Bot API
  (tests/telegram_emulator.py, under uvicorn); e-mail goes to the mail plugin's outbox (no relay).

Set-up: ``--sites`` (100) burst sites in one project, each with Bitrix24 (incoming webhook), amoCRM
(an account of its own, on a port of its own: amoCRM allows 7 requests/s per account, and the plugin
paces itself to that; its code is exchanged for tokens by the first push), the SMS follow-up/business
card by SMS.ru, and one recipient: a full-access user who gets the e-mails and has linked a Telegram
chat. The demo site, which takes the measured stream, has none of these, in all rounds.

Rounds:

1. **baseline**: ``--rate`` (20) new leads/s for ``--seconds`` (30) to the demo site; lead -> first dial is
   ``attempts.dialled_at`` (the simulator starts the operator leg) minus the moment the 201 reached the
   client, as in bench/lead_intake.py.
2. **burst**: ``--burst`` (1,000) leads are posted to the burst sites at once (32 connections), all are
   dialled, and the same stream is started so that the 1,000 calls end about ``--lead-in`` (10) s into
   it. Every call ending queues its pushes (Bitrix24 telephony finish, the amoCRM call note, the SMS
   business card) and notifications (Telegram, e-mail) at that moment, on top of the intake's (Bitrix24
   and amoCRM leads, Telegram "new lead") still draining. Reported: the stream's lead -> first dial
   (all of it, and the leads sent while the 1,000 calls were ending), when the calls ended, and how long
   until every push and notification of the 1,000 calls was counted at the emulators (or in the outbox).
3. **baseline again** (unless ``--no-second-baseline``): the first round repeated, once both queues
   are empty again, as a measure of the run-to-run noise.

``--split-queues`` runs the pushes in a process of their own, as docs/deploy.md describes: instead of
one ``perezvon worker``, ``perezvon worker --queue callbacks`` and ``perezvon worker --queue deliveries``,
the latter under ``nice -n`` ``--deliveries-nice`` (0). ``--py-spy`` profiles worker1 (the one placing the
calls) during each stream. ``--loop-trace`` writes the worker processes' long loop turns and database
waits to bench/results/reach_burst-<db>-looptrace.<pid>.json (bench/looptrace/sitecustomize.py; read with
bench/looptrace/report.py); the traced workers run asyncio's own loop, so compare traced runs with traced runs.

Exit status: 1 if any push or notification of the burst is missing, or if the burst round's p99 is more
than 10 % above the first baseline's AND more than ``--floor-ms`` (5 ms) above it: a p99 of 600 values moves
by a few ms between two runs of the same code (BENCHMARKS.md); 5 ms keeps a regression of a real size
visible while not failing on that jitter. 2 if a round could not run.

    .venv/bin/python bench/reach_burst.py [--db sqlite|postgres] [--burst 1000] [--rate 20] [--seconds 30]

Figures go to stdout and bench/results/reach_burst-<db>.json; the server logs to
bench/results/reach_burst-<db>-<role>.log.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import HOST, RESULTS, ROOT, VENV_BIN, ServerProcesses, install_uvloop  # noqa: E402
from lead_intake import (  # noqa: E402
    CpuMeter,
    HttpConnection,
    LeadFactory,
    PostgresStore,
    SqliteStore,
    Tally,
    dial_phase_send,
    dial_report,
    free_port,
    parse_db_time,
    percentile,
    profile_summary,
    scan_log,
    send,
)

TELEGRAM_TOKEN = "123456789:TEST-token-for-the-bench-only-00001"
FIRST_CHAT = 7_000_001
B24_USER, B24_SECRET = "1", "w3bh00ksecretabc9"
SMSRU_KEY = "7A1B2C3D-0000-1111-2222-333344445555"  # what tests/sms_emulator.py's SMS.ru accepts
AMO_CLIENT_ID = "0a1b2c3d-0000-4000-8000-0123456789ab"  # tests/amocrm_emulator.py's integration
AMO_CLIENT_SECRET = "s3cr3t-Xq9v8LmN4oP2rT6uW1yZ"
AMO_PIPELINE, AMO_STATUS = 5501, 142001
START_TIMEOUT = 60.0
DELIVERY_TIMEOUT = 600.0  # seconds after the burst for every push and notification to arrive

PLUGINS = """
[perezvon]
telephony = "simulator"

[plugins.simulator]
enabled = true
ring_seconds = 3
talk_seconds = 120
speed = 3             # about 42 s a call: the burst is posted, dialled, and ends inside the stream

[plugins.mail]
enabled = true        # no relay: each e-mail is a file in <data dir>/outbox

[plugins.bitrix24]
enabled = true

[plugins.amocrm]
enabled = true

[plugins.sms]
enabled = true
provider = "none"     # the follow-up's provider is set per connection

[plugins.telegram]
enabled = true
token = "{token}"
api_url = "{telegram_url}"
poll_timeout = 5

[plugins.reports]
enabled = true

[plugins.widget]
enabled = true

[plugins.leadgen]
enabled = true

[plugins.webhooks]
enabled = true
"""


# --- the emulators, in a child process -------------------------------------------------------------


def emulators_main(
    ports: dict[str, int], amo_ports: list[int], chats: list[int], amo_codes: list[str], latency: tuple[float, float]
) -> None:
    """Bitrix24, amoCRM, SMS.ru and the Bot API from tests/, each behind a 50-200 ms answer delay."""
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    import uvicorn
    from amocrm_emulator import AmoCRM
    from bitrix24_emulator import Bitrix24Emulator
    from sms_emulator import Providers
    from telegram_emulator import BotApiEmulator

    b24, amo, sms, bot = Bitrix24Emulator(B24_USER, B24_SECRET), AmoCRM(), Providers(), BotApiEmulator(TELEGRAM_TOKEN)
    amo.codes.update(amo_codes)
    for chat in chats:
        bot.chats[chat] = {"id": chat, "first_name": "Оператор"}

    def b24_answer(method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        status, answer = b24.answer(method, target, headers.get("content-type", ""), body)
        return status, "application/json", json.dumps(answer, ensure_ascii=False).encode()

    def amo_answer(method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        amo.requests.append((method, target, headers, b""))  # bodies not kept: 1,000s of calls
        status, payload = amo.answer(method, target, headers, body)
        data = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        return status, "application/problem+json" if status >= 400 else "application/hal+json", data

    def sms_answer(method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        parts = urlsplit(target)  # as tests/sms_emulator.py's Providers reads a request
        raw = parts.query if method == "GET" else body.decode("utf-8")
        params = {k: v[0] for k, v in parse_qs(raw or parts.query, keep_blank_values=True).items()}
        sms.requests.append((method, parts.path, {}, {}))
        status, payload = sms.answer(method, parts.path, headers, params)
        data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        return status, "application/json; charset=utf-8", data.encode()

    def stats(method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        counts = {
            "bitrix24": {
                "requests": len(b24.calls),
                "refused": len(b24.refused),
                "contacts": len(b24.contacts),
                "leads": len(b24.leads),
                "calls_finished": len(b24.statistics),
            },
            "amocrm": {
                "requests": len(amo.requests),
                "contacts": len(amo.contacts),
                "leads": len(amo.leads),
                "call_notes": sum(1 for n in amo.notes if n.get("note_type") in ("call_in", "call_out")),
            },
            "sms": {"requests": len(sms.requests), "sent": len(sms.sent), "phones": len({p for _, p, _ in sms.sent})},
            "telegram": {
                "send_tries": len(bot.attempts),
                "refused": sum(1 for a in bot.attempts if a[3] != 200),
                "sent": len(bot.sent),
            },
        }
        return 200, "application/json", json.dumps(counts).encode()

    async def serve(port: int, respond: Any, delay: bool = True) -> asyncio.Server:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while line := await reader.readline():
                    method, target, _ = line.decode("latin-1").split(" ", 2)
                    headers: dict[str, str] = {}
                    while (header := await reader.readline()) not in (b"\r\n", b""):
                        name, value = header.decode("latin-1").split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                    body = await reader.readexactly(int(headers.get("content-length", 0)))
                    if delay:
                        await asyncio.sleep(random.uniform(*latency))
                    status, kind, data = respond(method, target, headers, body)
                    writer.write(
                        f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                        + data
                    )
                    await writer.drain()
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        return await asyncio.start_server(handle, HOST, port, backlog=1024)

    telegram_app = bot.app()

    async def slow_telegram(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(random.uniform(*latency))
        await telegram_app(scope, receive, send)

    async def main() -> None:
        servers = [
            await serve(ports["bitrix24"], b24_answer),
            *[await serve(port, amo_answer) for port in amo_ports],  # one amoCRM account a site
            await serve(ports["sms"], sms_answer),
            await serve(ports["stats"], stats, delay=False),
        ]
        config = uvicorn.Config(
            slow_telegram, host=HOST, port=ports["telegram"], log_level="warning", lifespan="off", backlog=1024
        )
        await asyncio.gather(uvicorn.Server(config).serve(), *(s.serve_forever() for s in servers))

    asyncio.run(main())


def emulator_stats(port: int) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"http://{HOST}:{port}/stats", timeout=10) as answer:
        return json.loads(answer.read())


# --- Perezvon's processes and the set-up ---------------------------------------------------------------


class Servers(ServerProcesses):
    stop_order = ("worker1", "worker2", "worker3", "worker4", "web")  # the web owns the embedded Redis

    def __init__(self, db: str, env: dict[str, str], port: int) -> None:
        super().__init__("reach_burst", db, env)
        self.port = port

    def wait_healthy(self, want_worker: bool = False) -> None:
        """Poll /healthz until 200 (a web alone answers 503 naming only the workers as down)."""
        import urllib.error
        import urllib.request

        deadline, report = time.monotonic() + START_TIMEOUT, {}
        while time.monotonic() < deadline:
            for role, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{role} exited ({proc.returncode}); see {self.logs[role]}")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/healthz", timeout=5) as answer:
                    status, report = answer.status, json.loads(answer.read())
            except urllib.error.HTTPError as exc:
                status, report = exc.code, json.loads(exc.read() or b"{}")
            except (urllib.error.URLError, OSError):
                status = None
            if status == 200 or (not want_worker and status == 503 and report.get("down") == ["workers"]):
                return
            time.sleep(0.2)
        raise RuntimeError(f"no healthy /healthz within {START_TIMEOUT:.0f} s ({report}); see {self.logs.get('web')}")


async def set_up_burst_sites(
    env: dict[str, str], ports: dict[str, int], amo_ports: list[int], amo_codes: list[str], plugins: bool = True
) -> list[str]:
    """The burst sites with every reach plugin, one Telegram-linked e-mail recipient each; their tokens."""
    from perezvon.core import enablement
    from perezvon.core.app import Perezvon
    from perezvon.core.demo import ROUND_THE_CLOCK
    from perezvon.core.models import AccessGrant, Connection, NotificationRecipient, OperatorNumber, Project, User
    from perezvon.core.settings import Settings
    from perezvon.plugins.bitrix24.integration import Bitrix24Settings
    from perezvon.plugins.sms.followup import SmsFollowUp
    from perezvon.plugins.telegram.models import TelegramLink

    app = Perezvon(Settings.from_env(env=env))
    await app.start()
    try:
        bitrix24 = Bitrix24Settings().load(
            {"webhook_url": f"http://{HOST}:{ports['bitrix24']}/rest/{B24_USER}/{B24_SECRET}/", "responsible_id": 7}
        )
        amocrm = {
            "account": "",
            "client_id": AMO_CLIENT_ID,
            "client_secret": AMO_CLIENT_SECRET,
            "redirect_uri": "https://crm.example.com/amocrm/callback",
            "authorization_code": "",
            "pipeline_id": AMO_PIPELINE,
            "status_id": AMO_STATUS,
        }
        sms = SmsFollowUp.settings_schema().load(
            {
                "provider": "smsru",
                "api_id": SMSRU_KEY,
                "base_url": f"http://{HOST}:{ports['sms']}",
                "company": "Автосалон Восток",
                "phone": "+7 495 123-45-67",
                "opt_out_link": False,
            }
        )
        project = await Project.create(name="Burst")
        tokens, now = [], dt.datetime.now(dt.UTC)
        for i, (amo_port, amo_code) in enumerate(zip(amo_ports, amo_codes, strict=True)):
            connection = await Connection.create(
                project=project, domain=f"burst{i}.bench", name=f"Burst {i}", schedule=ROUND_THE_CLOCK
            )
            await OperatorNumber.create(connection=connection, phone="+74951234567")
            for key in ("widget", "leadgen"):  # the site apps whose leads carry the visitor's consent (SMS)
                await enablement.enable(connection, enablement.APPLICATION, key)
            if not plugins:  # --no-plugins: the same calls ending, with nothing to push
                tokens.append(connection.token)
                continue
            await enablement.enable(connection, enablement.INTEGRATION, "bitrix24", bitrix24)
            # an amoCRM account of its own (amoCRM allows 7 requests/s per account: 100 sites on one account
            # would need minutes for 1,000 leads); its code is exchanged for tokens by the first push
            account = {**amocrm, "account": f"http://{HOST}:{amo_port}", "authorization_code": amo_code}
            await enablement.enable(connection, enablement.INTEGRATION, "amocrm", account)
            await enablement.enable(connection, enablement.INTEGRATION, "sms", sms)
            user = await User.create(phone=f"+7900{i:07d}", email=f"burst{i}@example.com", first_name="Оператор")
            await AccessGrant.create(user=user, level="full", project=project)
            await NotificationRecipient.create(connection=connection, email=user.email)
            await TelegramLink.create(user_id=user.id, chat_id=FIRST_CHAT + i, language="ru", linked_at=now)
            tokens.append(connection.token)
        return tokens
    finally:
        await app.stop()


# --- the load ---------------------------------------------------------------------------------------


async def post_burst(port: int, tokens: list[str], count: int, tally: Tally) -> dict[str, str]:
    """``count`` widget leads spread over the burst sites, 32 at a time; {call_id: phone}."""
    requests = []
    for n in range(count):
        body = json.dumps(
            {
                "token": tokens[n % len(tokens)],
                "phone": f"+7917{n:07d}",
                "consent": True,
                "source": "widget",
                "name": f"Burst {n}",
            }
        ).encode()
        head = (
            f"POST /api/v1/leads HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
            f"X-Forwarded-For: 10.200.{n // 250}.{n % 250}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        requests.append((head.encode() + body, f"+7917{n:07d}"))
    calls: dict[str, str] = {}
    refused: list[int | None] = []

    async def user(index: int) -> None:
        conn = HttpConnection(port)
        for raw, phone in requests[index::32]:
            status, answer = await send(conn, raw, tally)
            if status == 201 and answer:
                calls[answer["call_id"]] = phone
            else:
                refused.append(status)
        conn.close()

    await asyncio.gather(*(user(i) for i in range(32)))
    if refused:
        raise RuntimeError(f"{len(refused)} burst leads refused, e.g. {refused[:5]} ({tally.samples})")
    return calls


async def wait_attempts(store: Any, call_ids: list[str], column: int, timeout: float) -> dict[str, tuple]:
    """Poll until every first attempt has ``column`` set (1 dialled, 2 ended); the rows."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await store.first_attempts(call_ids)
        done = sum(1 for r in rows.values() if r[column] is not None)
        if done == len(call_ids) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.5)


def outbox_count(outbox: Path, call_ids: set[str]) -> int:
    """E-mails about the burst calls' results in the mail plugin's outbox: ``<stamp>-<kind>-<call id>.eml``."""
    if not outbox.is_dir():
        return 0
    return sum(
        1
        for f in outbox.glob("*.eml")
        if ("-call_succeeded-" in f.name or "-call_failed-" in f.name) and f.stem[-36:] in call_ids
    )


def p95_ms(received: dict[str, float], attempts: dict[str, tuple]) -> float | None:
    waits = [parse_db_time(attempts[c][1]) - t for c, t in received.items() if c in attempts and attempts[c][1]]
    found = percentile(waits, 95)
    return None if found is None else round(found * 1000, 2)


def expected_counts(burst: int, sites: int) -> dict[str, dict[str, int]]:
    """What the emulators must have counted once the burst is delivered (every call answered)."""
    return {
        "bitrix24": {"leads": burst, "calls_finished": burst},
        "amocrm": {"leads": burst, "call_notes": burst},
        "sms": {"phones": burst},
        # a "new lead" message and a call result for each call, to the one linked chat of its site
        "telegram": {"sent": 2 * burst},
        "mail": {"results": burst},
    }


async def stream_round(
    name: str, servers: Servers, store: Any, factory: LeadFactory, tally: Tally, args: argparse.Namespace
) -> tuple[dict, dict[str, float], dict[str, tuple]]:
    pids = [p.pid for p in servers.procs.values()]
    load = os.getloadavg()
    cpu = CpuMeter(*pids)
    spy = None
    if args.py_spy:  # the worker's stacks during the stream, to see where its time goes
        spy = subprocess.Popen(
            [
                str(VENV_BIN / "py-spy"),
                "record",
                "--pid",
                str(servers.procs["worker1"].pid),
                "--duration",
                str(round(args.seconds)),
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(RESULTS / f"reach_burst-{servers.db}-{name}.pyspy.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    t0 = time.time()
    received = await dial_phase_send(factory, tally, port=servers.port, rate=args.rate, seconds=args.seconds)
    t1 = time.time()
    *proc_cpu, client, busy, stolen = cpu.read()
    attempts = await wait_attempts(store, list(received), 1, 60)
    report = dial_report(received, attempts)
    if spy is not None:
        spy.wait(timeout=60)
        report["py_spy_worker"] = profile_summary(RESULTS / f"reach_burst-{servers.db}-{name}.pyspy.txt", top=12)
    report.update(
        round=name,
        p95_ms=p95_ms(received, attempts),
        window=[t0, t1],
        rate_per_second=args.rate,
        load_average_1_5_15_before=[round(v, 2) for v in load],
        cpu={
            "processes_percent_of_one_core": dict(zip(servers.procs, proc_cpu)),
            "load_generator_percent_of_one_core": client,
            "machine_busy_percent": busy,
            "machine_stolen_percent": stolen,
            "cores": os.cpu_count(),
        },
    )
    return report, received, attempts


async def wait_quiet(store: Any, call_ids: list[str], data_dir: Path) -> None:
    """The round's calls ended and no job is due in either queue: the next round starts from a quiet system."""
    import redis

    await wait_attempts(store, call_ids, 2, 120)
    client = redis.Redis(unix_socket_path=str(data_dir / "redis" / "redis.sock"))
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            now_ms = int(time.time() * 1000)
            if not sum(client.zcount(q, 0, now_ms) for q in ("arq:queue", "arq:queue:deliveries")):
                break
            await asyncio.sleep(0.5)
    finally:
        client.close()
    await asyncio.sleep(3)


async def run(db: str, args: argparse.Namespace) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix=f"perezvon-reach-{db}-"))
    store = SqliteStore(data_dir) if db == "sqlite" else PostgresStore()
    ports = {k: free_port() for k in ("bitrix24", "sms", "telegram", "stats")}
    amo_ports = sorted({free_port() for _ in range(args.sites * 3)} - set(ports.values()))[: args.sites]
    taken = {*ports.values(), *amo_ports}  # none is bound yet: free_port() could hand one out again
    web_port = next(port for port in iter(free_port, None) if port not in taken)
    amo_codes = ["def50200" + os.urandom(40).hex() for _ in range(args.sites)]
    chats = [FIRST_CHAT + i for i in range(args.sites)]
    emulators = multiprocessing.Process(
        target=emulators_main, args=(ports, amo_ports, chats, amo_codes, tuple(args.latency)), daemon=True
    )
    emulators.start()
    plugins = data_dir / "plugins.toml"
    plugins.write_text(PLUGINS.format(token=TELEGRAM_TOKEN, telegram_url=f"http://{HOST}:{ports['telegram']}"))
    env = {
        **os.environ,
        "PEREZVON_DATA_DIR": str(data_dir),
        "PEREZVON_DATABASE_URL": store.url,
        "PEREZVON_PLUGINS": str(plugins),
        "PEREZVON_PUBLIC_URL": f"http://{HOST}:{web_port}",
        "PEREZVON_LEADS_PER_IP_PER_MINUTE": "1000000",
        "PEREZVON_OUTGOING_ALLOW": HOST,  # the emulators listen there
        "PEREZVON_LOG_LEVEL": "WARNING",
    }
    env.pop("PEREZVON_REDIS_URL", None)  # the embedded Redis, shared through the data dir
    if args.loop_trace:  # bench/looptrace/sitecustomize.py, in the worker processes only
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "bench" / "looptrace"), env.get("PYTHONPATH")]))
        env["PEREZVON_LOOP_TRACE"] = str(RESULTS / f"reach_burst-{db}-looptrace")
    servers = Servers(db, env, web_port)
    for old in RESULTS.glob(f"reach_burst-{db}-*"):
        old.unlink()
    await store.create()
    result: dict[str, Any] = {"db": db, "args": dict(vars(args))}
    try:
        for _ in range(100):  # the emulators' child is up when its stats answer
            try:
                emulator_stats(ports["stats"])
                break
            except OSError:
                await asyncio.sleep(0.1)
        demo = servers.demo()
        tokens = await set_up_burst_sites(env, ports, amo_ports, amo_codes, not args.no_plugins)
        servers.start("web", [str(VENV_BIN / "perezvon"), "web", "--host", HOST, "--port", str(web_port)])
        servers.wait_healthy()
        if args.split_queues:  # the callbacks and the deliveries queue in processes of their own
            for n, queue in ((1, "callbacks"), (2, "deliveries")):
                nice = ["nice", "-n", str(args.deliveries_nice)] if queue == "deliveries" else []
                servers.start(f"worker{n}", [*nice, str(VENV_BIN / "perezvon"), "worker", "--queue", queue])
        else:
            for n in range(1, args.workers + 1):
                servers.start(f"worker{n}", [str(VENV_BIN / "perezvon"), "worker"])
        servers.wait_healthy(want_worker=True)
        factory, tally = LeadFactory(demo["site_token"], web_port), Tally()
        warm = await dial_phase_send(factory, tally, port=web_port, rate=5, seconds=2)
        await wait_attempts(store, list(warm), 1, 60)

        print(f"{db}: baseline round, {args.rate:g} leads/s for {args.seconds:g} s", flush=True)
        baseline, received, attempts = await stream_round("baseline", servers, store, factory, tally, args)
        # how long a call lasts here (dialled -> ended), to land the burst's end inside the next stream
        await wait_quiet(store, list(received), data_dir)
        attempts = await store.first_attempts(list(received))
        lengths = sorted(parse_db_time(a[2]) - parse_db_time(a[1]) for a in attempts.values() if a[2] and a[1])
        call_seconds = lengths[len(lengths) // 2]
        result["call_seconds_median"] = round(call_seconds, 2)
        result["baseline"] = baseline

        before = emulator_stats(ports["stats"])
        print(f"{db}: burst round: {args.burst} leads to {args.sites} sites, then the stream", flush=True)
        burst_load = os.getloadavg()
        posted_at = time.time()
        burst_calls = await post_burst(web_port, tokens, args.burst, tally)
        posted_in = time.time() - posted_at
        burst_ids = list(burst_calls)
        dialled = await wait_attempts(store, burst_ids, 1, 120)
        last_dialled = max(parse_db_time(a[1]) for a in dialled.values() if a[1])
        start_at = last_dialled + call_seconds - args.lead_in
        await asyncio.sleep(max(0.0, start_at - time.time()))

        expected = {} if args.no_plugins else expected_counts(args.burst, args.sites)
        outbox = data_dir / "outbox"
        complete_at: dict[str, float] = {}
        progress: list[tuple[float, dict]] = []

        async def watch() -> None:
            deadline = time.monotonic() + DELIVERY_TIMEOUT
            while True:
                now_counts = emulator_stats(ports["stats"])
                now_counts["mail"] = {"results": outbox_count(outbox, set(burst_ids))}
                progress.append((time.time(), now_counts))
                for service, wanted in expected.items():
                    got = now_counts[service]
                    base = before.get(service, {})
                    if service not in complete_at and all(got[k] - base.get(k, 0) >= v for k, v in wanted.items()):
                        complete_at[service] = time.time()
                if len(complete_at) == len(expected) or time.monotonic() > deadline:
                    return
                await asyncio.sleep(0.25)

        watcher = asyncio.create_task(watch())
        burst, received_b, attempts_b = await stream_round("burst", servers, store, factory, tally, args)
        burst["load_average_1_5_15_before_the_burst_was_posted"] = [round(v, 2) for v in burst_load]
        ended = await wait_attempts(store, burst_ids, 2, 180)
        ends = sorted(parse_db_time(a[2]) for a in ended.values() if a[2])
        await watcher
        first_end, last_end = ends[0], ends[-1]
        window = burst["window"]
        # the stream's leads sent while the 1,000 calls were ending and their pushes queued (+ 5 s)
        during = {c: t for c, t in received_b.items() if first_end - 1 <= t <= last_end + 5}
        burst["during_the_finish"] = dial_report(during, attempts_b)
        burst["during_the_finish"]["p95_ms"] = p95_ms(during, attempts_b)
        last = progress[-1][1]
        missing = {
            service: {k: v - (last[service][k] - before.get(service, {}).get(k, 0)) for k, v in wanted.items()}
            for service, wanted in expected.items()
        }
        missing = {s: {k: v for k, v in m.items() if v > 0} for s, m in missing.items()}
        result["burst"] = burst
        result["burst_calls"] = {
            "calls": len(burst_ids),
            "posted_in_seconds": round(posted_in, 2),
            "ended_first_relative_to_stream_start_s": round(first_end - window[0], 2),
            "ended_spread_seconds": round(last_end - first_end, 2),
            "ended_inside_the_stream": sum(1 for e in ends if window[0] <= e <= window[1]),
            "delivered_seconds_after_the_first_call_ended": {
                s: round(t - first_end, 1) for s, t in sorted(complete_at.items(), key=lambda kv: kv[1])
            },
            "all_delivered_seconds_after_the_first_call_ended": (
                round(max(complete_at.values()) - first_end, 1)
                if complete_at and len(complete_at) == len(expected)
                else None
            ),
            "all_delivered_seconds_after_the_burst_was_posted": (
                round(max(complete_at.values()) - posted_at, 1)
                if complete_at and len(complete_at) == len(expected)
                else None
            ),
            "expected": expected,
            "counted": {s: {k: last[s][k] - before.get(s, {}).get(k, 0) for k in last[s]} for s in last},
            "missing": {s: m for s, m in missing.items() if m},
        }
        await wait_quiet(store, list(received_b), data_dir)
        if args.second_baseline:
            print(f"{db}: baseline round again", flush=True)
            again, received_2, _ = await stream_round("baseline-again", servers, store, factory, tally, args)
            result["baseline_again"] = again
    finally:
        servers.stop_all()
        result["killed_after_sigint"] = servers.killed
        result["server_logs"] = {
            role: {"path": str(path.relative_to(ROOT)), **scan_log(path)} for role, path in servers.logs.items()
        }
        emulators.terminate()
        emulators.join(5)
        await store.drop()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    return result


# --- output ------------------------------------------------------------------------------------------


def verdict(result: dict, floor_ms: float) -> tuple[bool, bool, float | None]:
    """(dial held, nothing missing, p99 ratio)."""
    base = result["baseline"]["received_to_dialled_ms"]["p99"]
    burst = result["burst"]["received_to_dialled_ms"]["p99"]
    ratio = burst / base if base else None
    held = burst <= max(base * 1.10, base + floor_ms) and not result["burst"]["never_dialled"]
    return held, not result["burst_calls"]["missing"], ratio


def summary(result: dict, floor_ms: float) -> list[str]:
    db = result["db"]
    lines = []
    for key in ("baseline", "burst", "baseline_again"):
        r = result.get(key)
        if not r:
            continue
        d, c = r["received_to_dialled_ms"], r["cpu"]
        lines.append(
            f"{db}: {r['round']:<14} lead -> first dial p50 {d['p50']} / p95 {_p95(r)} / p99 {d['p99']} / max "
            f"{d['max']} ms (n={r['n']}, never dialled {r['never_dialled']}); CPU "
            + ", ".join(f"{k} {v}%" for k, v in c["processes_percent_of_one_core"].items())
            + f", load generator {c['load_generator_percent_of_one_core']}%, machine {c['machine_busy_percent']}% "
            f"busy + {c['machine_stolen_percent']}% stolen; load avg before {r['load_average_1_5_15_before']}"
        )
        if key == "burst":
            f = r["during_the_finish"]["received_to_dialled_ms"]
            lines.append(
                f"{db}:   leads sent while the burst ended (n={r['during_the_finish']['n']}): "
                f"p50 {f['p50']} / p99 {f['p99']} / max {f['max']} ms"
            )
    b = result["burst_calls"]
    lines.append(
        f"{db}: burst: {b['calls']} calls posted in {b['posted_in_seconds']} s; they ended "
        f"{b['ended_first_relative_to_stream_start_s']} s into the stream, within {b['ended_spread_seconds']} s "
        f"({b['ended_inside_the_stream']} inside the stream window); call length {result['call_seconds_median']} s"
    )
    lines.append(
        f"{db}: burst: every push and notification delivered "
        f"{b['all_delivered_seconds_after_the_first_call_ended']} s after the first call ended "
        f"({b['all_delivered_seconds_after_the_burst_was_posted']} s after the burst was posted); per service: "
        f"{b['delivered_seconds_after_the_first_call_ended']}"
    )
    lines.append(f"{db}: burst: counted {b['counted']}")
    lines.append(f"{db}: burst: missing {b['missing'] or 'nothing'}")
    held, complete, ratio = verdict(result, floor_ms)
    lines.append(
        f"{db}: p99 burst / baseline = {ratio:.2f} (limit: 1.10, or +{floor_ms:g} ms if that is larger): "
        + ("HELD" if held else "NOT HELD")
        + ("" if complete else "; PUSHES OR NOTIFICATIONS MISSING")
    )
    for role, log in result["server_logs"].items():
        if log.get("lines"):
            lines.append(
                f"{db}:   {role} log ({log['path']}): {log['lines']} error/warning lines, "
                f"{log['tracebacks']} tracebacks, e.g. {log['examples'][:3]}"
            )
    return lines


def _p95(report: dict) -> float | None:
    return report.get("p95_ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--burst", type=int, default=1000, help="calls that end at once (default 1000)")
    parser.add_argument("--sites", type=int, default=100, help="sites the burst is spread over (default 100)")
    parser.add_argument("--rate", type=float, default=20.0, help="new leads/s of the measured stream (default 20)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the stream (default 30)")
    parser.add_argument("--lead-in", type=float, default=10.0, help="s of stream before the burst ends (default 10)")
    parser.add_argument("--workers", type=int, default=1, choices=range(1, 5), help="perezvon worker processes")
    parser.add_argument("--latency", type=float, nargs=2, default=(0.05, 0.2), help="emulators' answer delay, s")
    parser.add_argument("--floor-ms", type=float, default=5.0, help="p99 may always grow this much (default 5)")
    parser.add_argument("--no-second-baseline", dest="second_baseline", action="store_false")
    parser.add_argument(
        "--split-queues",
        action="store_true",
        help="run the callbacks queue and the deliveries queue in two processes (perezvon worker --queue)",
    )
    parser.add_argument(
        "--no-plugins", action="store_true", help="a control: the burst sites get no reach plugin (nothing to push)"
    )
    parser.add_argument(
        "--deliveries-nice",
        type=int,
        default=0,
        help="with --split-queues: the deliveries process's niceness (0-19), so the OS runs the callbacks first",
    )

    parser.add_argument("--py-spy", action="store_true", help="profile worker1 during each stream (py-spy)")
    parser.add_argument(
        "--loop-trace",
        action="store_true",
        help="trace the workers' event loops and database turns (bench/looptrace; asyncio's loop, not uvloop)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data dir (outbox, database)")
    args = parser.parse_args()
    if args.burst < 1 or args.sites < 1 or not 0 < args.rate <= 200 or not args.lead_in < args.seconds:
        parser.error("--burst and --sites >= 1, --rate in (0, 200], --lead-in < --seconds")
    RESULTS.mkdir(parents=True, exist_ok=True)
    install_uvloop()
    try:
        result = asyncio.run(run(args.db, args))
    except Exception as exc:
        print(f"{args.db}: FAILED: {type(exc).__name__}: {exc}", flush=True)
        return 2
    (RESULTS / f"reach_burst-{args.db}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print("\n".join(summary(result, args.floor_ms)), flush=True)
    held, complete, _ = verdict(result, args.floor_ms)
    return 0 if held and complete else 1


if __name__ == "__main__":
    sys.exit(main())
