"""Riding out a lost Redis or database: what such a failure looks like, and backing off.

A worker, ``perezvon web`` and ``perezvon serve`` keep running through an
outage of Redis or the database (docs/deploy.md): the worker's poll loop waits
and tries again (``core/worker.py``), a request that needed the missing part
answers 503 (``web/unavailable.py``), and ``/healthz`` names the part that is down.
Failures that are *not* a lost connection (a bug, bad data) are not hidden
behind this: :func:`is_outage` tells them apart.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from redis import exceptions as redis_errors
from redis.backoff import EqualJitterBackoff
from tortoise.exceptions import DBConnectionError, IntegrityError, ValidationError

log = logging.getLogger("perezvon.outages")

T = TypeVar("T")

#: the first wait after a failure, and the longest: a restarted service is picked up within this
BACKOFF_BASE = 0.25
BACKOFF_CAP = 10.0

#: what a lost, refused or timed-out connection to Redis or the database raises
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # also BusyLoadingError: a restarted Redis still loading
    redis_errors.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # "connection is closed" after a PostgreSQL restart
    # a connection the server is cutting while a query starts on it: "cannot switch to state 11;
    # another operation (2) is in progress" (2: consuming the server's "terminating connection")
    asyncpg.InternalClientError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, or starting up ("cannot connect now")
    DBConnectionError,
    ConnectionError,  # refused or reset sockets (OSError subclasses)
    TimeoutError,
)
#: socket errors of a service that is not there (ENOENT: a unix socket removed with its server)
_LOST_CONNECTION_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EPIPE,
    errno.ENOENT,
    errno.ETIMEDOUT,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
}


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) is a lost connection to Redis or the database."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OUTAGE_ERRORS):
            return True
        if isinstance(current, OSError) and (
            current.errno in _LOST_CONNECTION_ERRNOS
            # asyncio's create_connection to a host name with several addresses, all refused
            or str(current).startswith("Multiple exceptions: ")
        ):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


class Backoff:
    """Waits that double from :data:`BACKOFF_BASE` up to :data:`BACKOFF_CAP` (redis-py's equal jitter backoff)."""

    def __init__(self, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> None:
        self._backoff = EqualJitterBackoff(cap=cap, base=base)
        self.failures = 0

    def next(self) -> float:
        delay = self._backoff.compute(self.failures)
        self.failures += 1
        return float(delay)

    def reset(self) -> None:
        self.failures = 0


def is_data_error(exc: BaseException) -> bool:
    """The values were refused, not the connection: by a field's own check (ValidationError), or by
    the database -- tortoise wraps the driver's data errors (asyncpg's DataError family, sqlite's
    encoding errors) as IntegrityError or OperationalError with the driver's exception as the cause."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, IntegrityError | ValidationError | ValueError | TypeError | OverflowError | UnicodeError):
            return True
        if type(seen).__name__ in ("DataError", "CharacterNotInRepertoireError", "UntranslatableCharacterError"):
            return True
        if any(cls.__name__ == "DataError" for cls in type(seen).__mro__):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def until_connected(what: str, connect: Callable[[], Awaitable[T]]) -> T:
    """``await connect()`` until it succeeds, waiting with back-off after each lost connection.

    A process that starts while Redis or the database is down (a reboot that
    starts the parts in another order, a restart during maintenance) waits for
    it instead of exiting. Other errors (a wrong password, a bad URL) are raised.
    """
    backoff = Backoff()
    while True:
        try:
            return await connect()
        except Exception as exc:
            if not is_outage(exc):
                raise
            delay = backoff.next()
            log.warning("%s does not answer (%s); trying again in %.1f s", what, exc or type(exc).__name__, delay)
            await asyncio.sleep(delay)
