"""Tortoise's SQLite client, with the dial path first in line for the process's one connection.

Tortoise gives a process one SQLite connection and serialises every query and
transaction on it with one ``asyncio.Lock``. A worker that is pushing a thousand
ended calls would queue a new visitor's claim and dial behind all of those
queries. Here that lock is :class:`perezvon.core.dials_first.FirstInLine`: a task
placing a callback waits only for the query running now.

``core/db.py`` selects this module as the Tortoise engine for ``sqlite://`` URLs.
"""

from __future__ import annotations

from typing import Any

from tortoise.backends.sqlite.client import SqliteClient

from perezvon.core.dials_first import FirstInLine


class DialsFirstSqliteClient(SqliteClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = FirstInLine()  # type: ignore[assignment]  # acquire()/release(), as Tortoise uses it


client_class = DialsFirstSqliteClient
