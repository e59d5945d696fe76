"""An attempt's claim in one trip to the database.

Claiming attempt N of a call is two writes that stand or fall together: the call
goes from "scheduled for attempt N" to "dialling attempt N" (guarded, so only one
worker wins a race), and the attempt's row is inserted. As a Tortoise
transaction that is four trips (BEGIN, UPDATE, INSERT, COMMIT), each waiting for
a turn of the worker's event loop, with the process's one SQLite connection and
SQLite's write lock held all the while, and every other claim of the process
queued behind it. When a thousand calls end at once the turns are long, and the
claims of the visitors arriving then waited for each other for hundreds of
milliseconds (BENCHMARKS.md, "Reach burst").

Here the claim is one trip: on PostgreSQL one statement (the UPDATE in a
``WITH``, the INSERT taking its row, so nothing is inserted when the guard
fails); on SQLite, which has no writing ``WITH``, the two statements run
together in the connection's thread (:meth:`perezvon.core.sqlite.DialsFirstSqliteClient.in_one_trip`).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from tortoise import fields

from perezvon.core.models import Attempt, Call, CallState, stored_columns
from perezvon.core.sqlite import DialsFirstSqliteClient, insert_rows

#: PostgreSQL types of the attempt's columns, by field class (a parameter in a SELECT list needs one)
_PG_TYPES: dict[type, str] = {
    fields.UUIDField: "uuid",
    fields.IntField: "integer",
    fields.BigIntField: "bigint",
    fields.CharField: "text",
    fields.DatetimeField: "timestamptz",
}


def _attempt_row(attempt: Attempt) -> list[tuple[str, str, Any]]:
    """``(column, PostgreSQL type, value as stored)`` of every column of the new attempt (PostgreSQL)."""
    return [
        (column, next(t for cls, t in _PG_TYPES.items() if isinstance(field, cls)), value)
        for column, field, value in stored_columns(attempt)
    ]


async def claim(call_id: str, number: int, attempt: Attempt) -> bool:
    """Mark the call dialling attempt ``number`` and insert ``attempt``, if the call is still scheduled
    for that attempt; False (and nothing written) if another claim came first."""
    client = Call._meta.db
    call_key = Call._meta.fields_map["id"].to_db_value(call_id, Call)
    if client.capabilities.dialect == "sqlite":
        if not isinstance(client, DialsFirstSqliteClient):  # a transaction's wrapper: it has its own
            raise RuntimeError("an attempt is claimed in a transaction of its own, not inside another")
        insert, [values] = insert_rows([attempt])
        return await client.in_one_trip(
            lambda connection: _claim_in_sqlite(connection, call_key, number, insert, values)
        )
    row = _attempt_row(attempt)
    # $1 state, $2 number, $3 call id, $4 the state it must still be in, then the attempt's columns
    params: list[Any] = [str(CallState.DIALLING), number, call_key, str(CallState.SCHEDULED)]
    selected = []
    for column, pg_type, value in row:
        if column == "call_id":
            selected.append("claimed.id")
            continue
        params.append(value)
        selected.append(f"${len(params)}::{pg_type}")
    columns = ", ".join(column for column, _, _ in row)
    inserted = await client.execute_query_dict(
        "WITH claimed AS ("
        "UPDATE calls SET state = $1, attempts_made = $2, next_attempt_at = NULL "
        "WHERE id = $3 AND state = $4 AND attempts_made = $2 - 1 RETURNING id"
        f") INSERT INTO attempts ({columns}) SELECT {', '.join(selected)} FROM claimed RETURNING id",
        params,
    )
    return bool(inserted)


def _claim_in_sqlite(
    connection: sqlite3.Connection, call_key: Any, number: int, insert: str, values: list[Any]
) -> bool:
    """The claim's two statements, in the connection's thread, inside its transaction."""
    claimed = connection.execute(
        "UPDATE calls SET state = ?, attempts_made = ?, next_attempt_at = NULL "
        "WHERE id = ? AND state = ? AND attempts_made = ?",
        (str(CallState.DIALLING), number, call_key, str(CallState.SCHEDULED), number - 1),
    ).rowcount
    if claimed != 1:
        return False
    connection.execute(insert, values)
    return True
