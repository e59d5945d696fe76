"""Tortoise's SQLite client, with the dial path first in line for the process's one connection.

Tortoise gives a process one SQLite connection and serialises every query and
transaction on it with one ``asyncio.Lock``. A worker that is pushing a thousand
ended calls would queue a new visitor's claim and dial behind all of those
queries. Here that lock is :class:`perezvon.core.dials_first.FirstInLine`: a task
placing a callback waits only for the query running now.

:meth:`DialsFirstSqliteClient.in_one_trip` runs a whole transaction in the
connection's thread. Through Tortoise each statement of a transaction is a trip
to that thread and back through the event loop, and a busy loop makes each
trip a loop turn long: the connection (and SQLite's write lock, which the web
process shares) stays held for all of those turns.

``core/db.py`` selects this module as the Tortoise engine for ``sqlite://`` URLs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tortoise.backends.sqlite.client import SqliteClient
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.models import Model

from perezvon.core.dials_first import FirstInLine
from perezvon.core.models import stored_columns

T = TypeVar("T")


class DialsFirstSqliteClient(SqliteClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = FirstInLine()  # type: ignore[assignment]  # acquire()/release(), as Tortoise uses it

    async def in_one_trip(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)`` inside ``BEGIN IMMEDIATE`` ... ``COMMIT``, run whole in the connection's
        thread: one trip however many statements it makes. An exception rolls it back; SQLite's
        errors come out as from Tortoise's own queries."""

        def transaction(connection: sqlite3.Connection) -> T:
            connection.execute("BEGIN IMMEDIATE")  # the write lock now: no upgrade to fail half-way
            try:
                result = work(connection)
            except BaseException:
                if connection.in_transaction:  # some errors (a full disk) have rolled it back already
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return result

        async with self.acquire_connection() as connection:
            try:
                # aiosqlite's queue to its thread, as its own execute() uses it; Tortoise already
                # reaches the sqlite3 connection the same way (``_conn``), for its row factory
                result: T = await connection._execute(transaction, connection._conn)
                return result
            except sqlite3.IntegrityError as exc:  # as Tortoise translates them
                raise IntegrityError(exc) from exc
            except sqlite3.OperationalError as exc:
                raise OperationalError(exc) from exc


def insert_rows(instances: Sequence[Model], *, or_ignore: bool = False) -> tuple[str, list[list[Any]]]:
    """The INSERT of new rows of one model and each row's values, for ``executemany`` inside
    :meth:`DialsFirstSqliteClient.in_one_trip`. Each value is what Tortoise itself would store
    (defaults and ``auto_now_add`` filled in); a generated key is left to SQLite. ``or_ignore``:
    a row whose key is taken already is skipped (Tortoise's ``ignore_conflicts``)."""
    rows = [stored_columns(instance) for instance in instances]
    columns = ", ".join(column for column, _, _ in rows[0])
    marks = ", ".join("?" for _ in rows[0])
    values = [[value for _, _, value in row] for row in rows]
    verb = "INSERT OR IGNORE" if or_ignore else "INSERT"
    return f"{verb} INTO {instances[0]._meta.db_table} ({columns}) VALUES ({marks})", values


client_class = DialsFirstSqliteClient
