"""Attempt endings written in groups: a few statements for every attempt that ended together.

Each ending changes three tables: the call (its next attempt, or its final
status), the attempt (its outcome) and the operator number (its run of
unanswered attempts). Written one ending at a time, that is a transaction of
four or five statements per call, and the process that dials waits for the one
holding the database whenever it claims a new callback. When 1,000 calls end
within seconds (BENCHMARKS.md, "Reach burst"), those turns stand in front of new
visitors' dials. Here the endings that arrive together share one statement per
table, whatever their number: ``UPDATE ... FROM (VALUES ...)``, which SQLite
(3.33 and later) and PostgreSQL both understand. The call's update keeps its
guard (still dialling this very attempt) row by row and returns the calls it
changed, so an ending that lost a race with the sweep or another worker changes
nothing, as before. On SQLite the whole transaction is one trip to the
connection's thread, so the connection and the file's write lock are held for
the statements' own time, not for a turn of the event loop after each.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

from tortoise.transactions import in_transaction

from perezvon.core.models import Attempt, Call, CallState, OperatorNumber, PendingJob
from perezvon.core.sqlite import DialsFirstSqliteClient, insert_rows

#: the call's columns an ending sets, with their PostgreSQL types (parameters in VALUES need one)
CALL_COLUMNS = (
    ("state", "text"),
    ("display_status", "text"),
    ("reason", "text"),
    ("next_attempt_at", "timestamptz"),
    ("next_direction", "text"),
    ("duration_seconds", "integer"),
    ("is_target", "boolean"),
    ("recording", "text"),
    ("finished_at", "timestamptz"),
    ("operator_number", "text"),
)
#: columns an ending that schedules a redial leaves as they are (given as NULL, kept by COALESCE)
KEPT_WHEN_NULL = frozenset({"display_status", "duration_seconds", "is_target", "recording", "finished_at"})
ATTEMPT_COLUMNS = (
    ("ended_at", "timestamptz"),
    ("operator_status", "integer"),
    ("client_status", "integer"),
    ("duration_seconds", "integer"),
    ("display_status", "text"),
    ("reason", "text"),
    ("recording", "text"),
    ("recording_bytes", "bigint"),
    ("operator_number", "text"),
)


@dataclasses.dataclass(eq=False)
class EndingRows:
    """What one ending writes: ``call`` holds every column of :data:`CALL_COLUMNS` (None keeps
    those of :data:`KEPT_WHEN_NULL`), ``attempt`` every column of :data:`ATTEMPT_COLUMNS`;
    ``line``: the operator number's id and whether it answered, when the attempt counts for it."""

    call_id: str
    number: int
    call: dict[str, Any]
    attempt_id: str
    attempt: dict[str, Any]
    line: tuple[int, bool] | None = None


class _Values:
    """``(VALUES (...), (...)) AS v`` in the connection's dialect, with its parameters."""

    def __init__(self, dialect: str) -> None:
        self.postgres = dialect == "postgres"
        self.params: list[Any] = []

    def table(self, rows: list[tuple[Any, ...]], types: tuple[str, ...]) -> str:
        tuples = []
        for row in rows:
            marks = []
            for value, pg_type in zip(row, types):
                self.params.append(value)
                marks.append(f"${len(self.params)}::{pg_type}" if self.postgres else "?")
            tuples.append(f"({', '.join(marks)})")
        return f"(VALUES {', '.join(tuples)}) AS v"


def _db_values(model: type[Any], columns: tuple[tuple[str, str], ...], values: dict[str, Any]) -> list[Any]:
    """The values as the model's fields store them (SQLite keeps dates as text, Tortoise says how)."""
    fields = model._meta.fields_map
    return [None if values[name] is None else fields[name].to_db_value(values[name], None) for name, _ in columns]


Statement = tuple[str, list[Any]]


async def write_endings(endings: list[EndingRows], pending: list[tuple[str, PendingJob]]) -> set[str]:
    """Write the endings in one transaction; returns the ids of the calls changed.

    A call is changed only while it is still dialling the ending's attempt; the
    attempt rows, the operator numbers and the ``pending`` jobs (``(call id, row)``:
    what the ending calls for, so the sweep finds it if its queueing is lost) are
    written for those calls only. On SQLite the transaction is one trip to the
    connection's thread (:meth:`perezvon.core.sqlite.DialsFirstSqliteClient.in_one_trip`).
    """
    if not endings:
        return set()
    # each call once: a call ends one attempt at a time, but a repeated id must not make an UPDATE ambiguous
    endings = list({ending.call_id: ending for ending in endings}.values())
    client = Call._meta.db
    if isinstance(client, DialsFirstSqliteClient):
        return await client.in_one_trip(lambda connection: _write_in_sqlite(connection, endings, pending))
    dialect = client.capabilities.dialect
    async with in_transaction() as connection:
        # "_dict": the one that hands back RETURNING's rows
        returned = await connection.execute_query_dict(*_calls_update(dialect, endings))
        changed = {str(row["id"]) for row in returned}
        done = [ending for ending in endings if ending.call_id in changed]
        if done:
            await connection.execute_query(*_attempts_update(dialect, done))
            lines = _lines_update(dialect, done)
            if lines is not None:
                await connection.execute_query(*lines)
        rows = [row for call_id, row in pending if call_id in changed]
        if rows:
            await PendingJob.bulk_create(rows, ignore_conflicts=True, using_db=connection)
    return changed


def _write_in_sqlite(
    connection: sqlite3.Connection, endings: list[EndingRows], pending: list[tuple[str, PendingJob]]
) -> set[str]:
    """:func:`write_endings`'s statements, run in the SQLite connection's thread."""
    changed = {str(row[0]) for row in connection.execute(*_calls_update("sqlite", endings)).fetchall()}
    done = [ending for ending in endings if ending.call_id in changed]
    if done:
        connection.execute(*_attempts_update("sqlite", done))
        lines = _lines_update("sqlite", done)
        if lines is not None:
            connection.execute(*lines)
    rows = [row for call_id, row in pending if call_id in changed]
    if rows:
        insert, values = insert_rows(rows, or_ignore=True)  # a job remembered already stays as it is
        connection.executemany(insert, values)
    return changed


def _calls_update(dialect: str, endings: list[EndingRows]) -> Statement:
    """The calls' update, guarded row by row (still dialling this attempt), returning the ids it changed."""
    values = _Values(dialect)
    rows = [(ending.call_id, ending.number, *_db_values(Call, CALL_COLUMNS, ending.call)) for ending in endings]
    table = values.table(rows, ("uuid", "integer", *(pg_type for _, pg_type in CALL_COLUMNS)))
    assignments = ", ".join(
        f"{name} = COALESCE(v.column{i}, calls.{name})" if name in KEPT_WHEN_NULL else f"{name} = v.column{i}"
        for i, (name, _) in enumerate(CALL_COLUMNS, start=3)
    )
    values.params.append(str(CallState.DIALLING))
    state_mark = f"${len(values.params)}" if values.postgres else "?"
    return (
        f"UPDATE calls SET {assignments} FROM {table} "
        f"WHERE calls.id = v.column1 AND calls.attempts_made = v.column2 AND calls.state = {state_mark} "
        "RETURNING calls.id",
        values.params,
    )


def _attempts_update(dialect: str, endings: list[EndingRows]) -> Statement:
    values = _Values(dialect)
    rows = [(ending.attempt_id, *_db_values(Attempt, ATTEMPT_COLUMNS, ending.attempt)) for ending in endings]
    table = values.table(rows, ("uuid", *(pg_type for _, pg_type in ATTEMPT_COLUMNS)))
    assignments = ", ".join(f"{name} = v.column{i}" for i, (name, _) in enumerate(ATTEMPT_COLUMNS, start=2))
    return f"UPDATE attempts SET {assignments} FROM {table} WHERE attempts.id = v.column1", values.params


def _lines_update(dialect: str, endings: list[EndingRows]) -> Statement | None:
    """Each operator number's run of unanswered attempts, in the order the attempts ended: an answer
    starts the run again from 0, each unanswered attempt after it adds one. None: no number counts."""
    runs: dict[int, tuple[bool, int]] = {}  # number id -> (the run started again, attempts to add)
    for ending in endings:
        if ending.line is None:
            continue
        number_id, answered = ending.line
        restarted, added = runs.get(number_id, (False, 0))
        runs[number_id] = (True, 0) if answered else (restarted, added + 1)
    if not runs:
        return None
    values = _Values(dialect)
    table = values.table(
        [(number_id, int(restarted), added) for number_id, (restarted, added) in runs.items()],
        ("integer", "integer", "integer"),
    )
    return (
        f"UPDATE {OperatorNumber._meta.db_table} SET failures_in_row = "
        "CASE WHEN v.column2 = 1 THEN v.column3 ELSE failures_in_row + v.column3 END "
        f"FROM {table} WHERE {OperatorNumber._meta.db_table}.id = v.column1",
        values.params,
    )
