"""Tortoise's asyncpg client, except that a transaction that cannot begin leaves nothing behind.

Tortoise's ``TransactionContextPooled.__aenter__`` takes a connection from the
pool and makes the transaction the task's current connection *before* it sends
BEGIN. When BEGIN fails -- the connection was cut by a PostgreSQL restart --
``__aexit__`` never runs: the connection is never given back to the pool, and
the task keeps the dead transaction as its current connection, so every later
``in_transaction()`` in that task becomes a savepoint inside it and fails with
"connection is closed". A long-lived task (the intake's group writer) then
refused every lead until the process was restarted (bench/chaos.py found it).
Here the context undoes both before the error is raised.

The pool itself is fronted by :class:`_DialsFirstPool`: a callback being placed
takes the next free connection before the pushes waiting for one. And a connection
given back to the pool is not sent asyncpg's reset query (:func:`_keep_session`).

``core/db.py`` selects this module as the Tortoise engine for ``postgres://`` URLs.
"""

from __future__ import annotations

from typing import Any

from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
from tortoise.backends.base.client import TransactionContext, TransactionContextPooled
from tortoise.connection import get_connections

from perezvon.core.dials_first import FirstInLine


class _TransactionContext(TransactionContextPooled):
    __slots__ = ()

    async def __aenter__(self) -> Any:
        try:
            return await super().__aenter__()
        except BaseException:
            token = getattr(self, "token", None)  # set only once a connection was taken
            if token is not None:
                get_connections().reset(token)
            connection = getattr(self.client, "_connection", None)
            pool = self.client._parent._pool
            if connection is not None and pool is not None:
                await pool.release(connection)
            raise


class _DialsFirstPool:
    """The asyncpg pool behind a :class:`FirstInLine` of as many slots as it has connections.

    asyncpg hands out free connections first come, first served; with a thousand
    pushes waiting for one, a new visitor's claim and dial would wait behind them
    all. A task on the dial path takes the next free slot before any of them
    (core/dials_first.py). Tortoise only awaits ``acquire()`` and ``release()``;
    the rest (``close``, ``terminate``, ``expire_connections`` ...) is the pool's own.
    """

    def __init__(self, pool: Any, slots: int) -> None:
        self._pool = pool
        self._slots = FirstInLine(slots)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    async def acquire(self, *, timeout: float | None = None) -> Any:
        await self._slots.acquire()
        try:
            return await self._pool.acquire(timeout=timeout)
        except BaseException:
            self._slots.release()
            raise

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:
        try:
            await self._pool.release(connection, timeout=timeout)
        finally:
            self._slots.release()


async def _keep_session(connection: Any) -> None:
    """What the pool does to a connection given back, besides asyncpg's own part (listeners
    dropped, a transaction left open rolled back): nothing.

    Tortoise takes a pooled connection for every query outside a transaction. asyncpg's default
    reset then sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` -- a
    second round trip to the server for each query (py-spy put 5 % of a busy worker's samples in
    it). Perezvon leaves no such state on a pooled connection: no advisory lock, no cursor outside
    a transaction, no LISTEN, no session setting."""


class AsyncpgClient(AsyncpgDBClient):
    def _in_transaction(self) -> TransactionContext:
        return _TransactionContext(TransactionWrapper(self), self._pool_init_lock)

    async def create_pool(self, **kwargs: Any) -> Any:
        return _DialsFirstPool(await super().create_pool(reset=_keep_session, **kwargs), kwargs["max_size"])


client_class = AsyncpgClient
