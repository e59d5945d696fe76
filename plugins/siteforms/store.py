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

from core.intake import RowInserter
from plugins.siteforms.models import InboundMessage, MessageStatus, RawMessage

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
        self._pending: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task | None = None
        self._lookups: list[_Lookup] = []
        self._lookup_wakeup = asyncio.Event()
        self._looker: asyncio.Task | None = None

    async def first_copy(self, address_id: int, key: str) -> dict[str, Any] | None:
        """``{"id", "lead_id", "call_id"}`` of the stored copy of a message, or None.

        Raises :class:`StoreUnavailable` when the database does not answer.
        """
        lookup = _Lookup(address_id, key, asyncio.get_running_loop().create_future())
        self._lookups.append(lookup)
        if self._looker is None or self._looker.done():
            self._looker = asyncio.create_task(self._lookup_loop(), name="siteforms-copy-lookup")
        self._lookup_wakeup.set()
        return await lookup.future

    async def _lookup_loop(self) -> None:
        while True:
            await self._lookup_wakeup.wait()
            self._lookup_wakeup.clear()
            while self._lookups:
                batch, self._lookups = self._lookups[:MAX_BATCH], self._lookups[MAX_BATCH:]
                try:
                    # both columns of the unique index, so it serves the query; pairs are matched below
                    rows = await InboundMessage.filter(
                        address_id__in={item.address_id for item in batch},
                        dedupe_key__in={item.key for item in batch},
                    ).values("id", "lead_id", "call_id", "address_id", "dedupe_key")
                except BaseException as exc:
                    for item in batch:
                        _settle(item.future, error=StoreUnavailable(str(exc)))
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                found = {(row["address_id"], row["dedupe_key"]): row for row in rows}
                for item in batch:
                    _settle(item.future, found.get((item.address_id, item.key)))

    async def save(self, row: dict[str, Any], raw: bytes) -> dict[str, Any]:
        """Commit one :class:`InboundMessage` row (``*_id`` keys) with its raw bytes.

        Returns the row as stored: when another copy of the message with the
        same dedupe key was committed first, it is stored as that copy's
        duplicate. Raises :class:`StoreUnavailable` when nothing was stored.
        """
        pending = _Pending(dict(row), raw, asyncio.get_running_loop().create_future())
        self._pending.append(pending)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="siteforms-message-writer")
        self._wakeup.set()
        return await pending.future

    async def _write_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    await self._write(batch)
                except BaseException as exc:  # never leave a session waiting
                    for item in batch:
                        _settle(item.future, error=StoreUnavailable(str(exc)))
                    if isinstance(exc, asyncio.CancelledError):
                        raise

    async def _insert(self, items: list[_Pending]) -> None:
        async with in_transaction():
            await self._messages.execute([item.row for item in items])
            await self._raws.execute([{"message_id": item.row["id"], "received_at": item.row["received_at"],
                                       "content": item.raw} for item in items])

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
                _settle(item.future, error=StoreUnavailable(str(exc)))
            return
        for item in batch:
            _settle(item.future, item.row)

    async def _write_alone(self, item: _Pending) -> None:
        try:
            try:
                await self._insert([item])
            except IntegrityError:
                first = await InboundMessage.filter(address_id=item.row["address_id"],
                                                    dedupe_key=item.row["dedupe_key"]).first().values("id")
                if first is None:
                    raise
                item.row.update(dedupe_key=None, status=MessageStatus.DUPLICATE, duplicate_of_id=first["id"])
                await self._insert([item])
        except Exception as exc:
            log.error("could not store received message %s: %s", item.row["id"], exc)
            _settle(item.future, error=StoreUnavailable(str(exc)))
            return
        _settle(item.future, item.row)

    async def close(self) -> None:
        for task in (self._writer, self._looker):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for item in [*self._pending, *self._lookups]:
            _settle(item.future, error=StoreUnavailable("the server is stopping"))
        self._pending.clear()
        self._lookups.clear()


def _settle(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():  # the session went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


async def purge_expired_raw(retention_days: int, now: dt.datetime | None = None) -> int:
    """Delete raw messages received more than ``retention_days`` ago; the message rows and leads stay."""
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=retention_days)
    return await RawMessage.filter(received_at__lt=cutoff).delete()
