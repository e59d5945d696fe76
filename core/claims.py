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

:class:`AttemptStarts` groups what arrives at once. On SQLite every commit waits
for the one write lock the web process shares and syncs the file, so at a hundred
new calls a second the claims, one commit each, queued behind each other for
hundreds of milliseconds (BENCHMARKS.md, "Callbacks in flight"): the claims that
arrive while one group is written go together in the next, one commit for the
group, each still guarded on its own. And the moment each attempt's first leg
was dialled (``attempts.dialled_at``) is written for a group at once, on either
database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import sqlite3
from typing import Any

from tortoise import fields

from perezvon.core.batching import Batcher, settle
from perezvon.core.models import Attempt, Call, CallState, stored_columns
from perezvon.core.sqlite import DialsFirstSqliteClient, insert_rows

#: claims, and dial moments, written in one group at most
GROUP_AT_MOST = 200

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


@dataclasses.dataclass(eq=False)
class _Claim:
    call_key: Any
    number: int
    insert: str
    values: list[Any]
    future: asyncio.Future[bool]


@dataclasses.dataclass(eq=False)
class _Dialled:
    attempt_key: Any
    at: dt.datetime
    future: asyncio.Future[None]


class AttemptStarts:
    """The claims and dial moments of the attempts a process starts, written in groups.

    A group is written as soon as the one before it is done: a claim that finds
    nothing being written goes at once, alone. If a group's transaction fails
    (the database is away, its lock was not had in time), every claim in it fails,
    as each would have on its own; the jobs are retried and the sweep resolves
    the calls.
    """

    def __init__(self) -> None:
        self._claims: Batcher[_Claim] = Batcher(self._claim_group, name="perezvon-claims", max_batch=GROUP_AT_MOST)
        self._dialled: Batcher[_Dialled] = Batcher(
            self._dialled_group, name="perezvon-dialled", max_batch=GROUP_AT_MOST
        )

    async def claim(self, call_id: str, number: int, attempt: Attempt) -> bool:
        """:func:`claim`; on SQLite in one commit with the claims that arrive meanwhile."""
        client = Call._meta.db
        if client.capabilities.dialect != "sqlite" or not isinstance(client, DialsFirstSqliteClient):
            return await claim(call_id, number, attempt)  # PostgreSQL writes concurrently; a transaction refuses
        insert, [values] = insert_rows([attempt])
        call_key = Call._meta.fields_map["id"].to_db_value(call_id, Call)
        claimed: bool = await self._claims.submit(
            _Claim(call_key, number, insert, values, asyncio.get_running_loop().create_future())
        )
        return claimed

    async def _claim_group(self, batch: list[_Claim]) -> None:
        client = Call._meta.db
        assert isinstance(client, DialsFirstSqliteClient), "only SQLite's claims are grouped"
        claimed = await client.in_one_trip(
            lambda connection: [
                _claim_in_sqlite(connection, item.call_key, item.number, item.insert, item.values) for item in batch
            ]
        )
        for item, won in zip(batch, claimed, strict=True):
            settle(item.future, won)

    async def dialled(self, attempt: Attempt) -> None:
        """Store ``attempt.dialled_at``, with those of the attempts dialled meanwhile."""
        assert attempt.dialled_at is not None, "set when the first leg is dialled"
        key = Attempt._meta.fields_map["id"].to_db_value(attempt.id, Attempt)
        await self._dialled.submit(_Dialled(key, attempt.dialled_at, asyncio.get_running_loop().create_future()))

    async def _dialled_group(self, batch: list[_Dialled]) -> None:
        client = Attempt._meta.db
        column = Attempt._meta.fields_map["dialled_at"]
        if isinstance(client, DialsFirstSqliteClient):
            rows = [(column.to_db_value(item.at, Attempt), item.attempt_key) for item in batch]
            await client.in_one_trip(
                lambda connection: connection.executemany("UPDATE attempts SET dialled_at = ? WHERE id = ?", rows)
            )
        elif client.capabilities.dialect == "sqlite":  # inside a transaction (tests): one at a time
            for item in batch:
                await Attempt.filter(id=item.attempt_key).update(dialled_at=item.at)
        else:
            await client.execute_query(
                "UPDATE attempts SET dialled_at = v.at FROM unnest($1::uuid[], $2::timestamptz[]) AS v(id, at) "
                "WHERE attempts.id = v.id",
                [[item.attempt_key for item in batch], [item.at for item in batch]],
            )
        for item in batch:
            settle(item.future)

    async def close(self) -> None:
        await self._claims.close()
        await self._dialled.close()
