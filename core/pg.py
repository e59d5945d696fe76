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

``core/db.py`` selects this module as the Tortoise engine for ``postgres://`` URLs.
"""

from __future__ import annotations

from typing import Any

from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
from tortoise.backends.base.client import TransactionContext, TransactionContextPooled
from tortoise.connection import get_connections


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


class AsyncpgClient(AsyncpgDBClient):
    def _in_transaction(self) -> TransactionContext:
        return _TransactionContext(TransactionWrapper(self), self._pool_init_lock)


client_class = AsyncpgClient
