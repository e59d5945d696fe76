"""Received messages, looked up and written in groups; and the retention of their raw bytes.

The SMTP server answers 250 only once a message's row and raw bytes are
committed. One commit per message would make the disk's fsync the limit of
the whole server (SQLite commits with ``synchronous=FULL``), so concurrent
sessions hand their rows to one writer task that commits everything waiting
in one transaction -- the same group commit the core's intake uses -- and
each session gets its answer after that commit.

The look-up of an earlier copy of each message (same address, same dedupe
key) is grouped the same way: on SQLite every query waits its turn on the one
connection, behind the commits, so one query for all waiting messages costs
a single turn instead of one each.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from perezvon.api import Batcher, RowInserter, settle
from perezvon.plugins.siteforms.models import InboundMessage, MessageStatus, RawMessage

log = logging.getLogger("perezvon.siteforms")

MAX_BATCH = 200


class StoreUnavailable(Exception):
    """The message could not be committed; the sender must try again later (SMTP 451)."""


@dataclasses.dataclass
class _Pending:
    row: dict[str, Any]
    raw: bytes
    future: asyncio.Future


@dataclasses.dataclass
class _Lookup:
    address_id: int
    key: str
    future: asyncio.Future


class MessageStore:
    def __init__(self) -> None:
        self._messages = RowInserter(InboundMessage)
        self._raws = RowInserter(RawMessage)
        self._writer = Batcher(
            self._write,
            name="siteforms-message-writer",
            max_batch=MAX_BATCH,
            failed=lambda exc: StoreUnavailable(str(exc)),
        )
        self._looker = Batcher(
            self._look_up,
            name="siteforms-copy-lookup",
            max_batch=MAX_BATCH,
            failed=lambda exc: StoreUnavailable(str(exc)),
        )

    async def first_copy(self, address_id: int, key: str) -> dict[str, Any] | None:
        """``{"id", "lead_id", "call_id"}`` of the stored copy of a message, or None.

        Raises :class:`StoreUnavailable` when the database does not answer.
        """
        return await self._looker.submit(_Lookup(address_id, key, asyncio.get_running_loop().create_future()))

    async def _look_up(self, batch: list[_Lookup]) -> None:
        # both columns of the unique index, so it serves the query; pairs are matched below
        rows = await InboundMessage.filter(
            address_id__in={item.address_id for item in batch},
            dedupe_key__in={item.key for item in batch},
        ).values("id", "lead_id", "call_id", "address_id", "dedupe_key")
        found = {(row["address_id"], row["dedupe_key"]): row for row in rows}
        for item in batch:
            settle(item.future, found.get((item.address_id, item.key)))

    async def save(self, row: dict[str, Any], raw: bytes) -> dict[str, Any]:
        """Commit one :class:`InboundMessage` row (``*_id`` keys) with its raw bytes.

        Returns the row as stored: when another copy of the message with the
        same dedupe key was committed first, it is stored as that copy's
        duplicate. Raises :class:`StoreUnavailable` when nothing was stored.
        """
        return await self._writer.submit(_Pending(dict(row), raw, asyncio.get_running_loop().create_future()))

    async def _insert(self, items: list[_Pending]) -> None:
        async with in_transaction():
            await self._messages.execute([item.row for item in items])
            await self._raws.execute(
                [
                    {"message_id": item.row["id"], "received_at": item.row["received_at"], "content": item.raw}
                    for item in items
                ]
            )

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            await self._insert(batch)
        except IntegrityError:  # a copy of one of them got in first: sort it out row by row
            for item in batch:
                await self._write_alone(item)
            return
        except Exception as exc:
            log.error("could not store %d received messages: %s", len(batch), exc)
            for item in batch:
                settle(item.future, error=StoreUnavailable(str(exc)))
            return
        for item in batch:
            settle(item.future, item.row)

    async def _write_alone(self, item: _Pending) -> None:
        try:
            try:
                await self._insert([item])
            except IntegrityError:
                first = (
                    await InboundMessage.filter(address_id=item.row["address_id"], dedupe_key=item.row["dedupe_key"])
                    .first()
                    .values("id")
                )
                if first is None:
                    raise
                item.row.update(dedupe_key=None, status=MessageStatus.DUPLICATE, duplicate_of_id=first["id"])
                await self._insert([item])
        except Exception as exc:
            log.error("could not store received message %s: %s", item.row["id"], exc)
            settle(item.future, error=StoreUnavailable(str(exc)))
            return
        settle(item.future, item.row)

    async def close(self) -> None:
        stopping = StoreUnavailable("the server is stopping")
        await self._writer.close(stopping)
        await self._looker.close(stopping)


async def purge_expired_raw(retention_days: int, now: dt.datetime | None = None) -> int:
    """Delete raw messages received more than ``retention_days`` ago; the message rows and leads stay."""
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=retention_days)
    return await RawMessage.filter(received_at__lt=cutoff).delete()
