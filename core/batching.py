"""Work that concurrent callers hand to one task, which does it for all of them at once.

The intake commits the leads that arrive together in one transaction (group
commit), and a plugin can do the same for its own rows. Each caller waits on
its own future and gets its own answer; :class:`Batcher` only owns the
hand-over: the queue, the one worker task, the group size, and that no caller
is ever left waiting when the work fails or the batcher stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar


class HasFuture(Protocol):
    future: asyncio.Future[Any]


Item = TypeVar("Item", bound=HasFuture)


def settle(future: asyncio.Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    """Answer a waiting caller, unless it went away (a disconnected client)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Batcher(Generic[Item]):
    """Runs ``process(batch)`` for the items submitted meanwhile, at most ``max_batch`` at a time
    (after ``linger_seconds``, when given: items that trickle in still share a batch).

    ``process`` settles each item's future. If it raises, every item of the
    batch still waiting gets ``failed(exc)`` as its error.
    """

    def __init__(
        self,
        process: Callable[[list[Item]], Awaitable[None]],
        *,
        name: str,
        max_batch: int,
        failed: Callable[[BaseException], BaseException] = lambda exc: exc,
        linger_seconds: float = 0.0,
    ) -> None:
        self.process = process
        self.name = name
        self.max_batch = max_batch
        self.failed = failed
        #: how long a batch short of ``max_batch`` waits for more items before it is processed
        self.linger_seconds = linger_seconds
        self._pending: list[Item] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Any:
        self._pending.append(item)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=self.name)
        self._wakeup.set()
        return await item.future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self.linger_seconds and len(self._pending) < self.max_batch:
                await asyncio.sleep(self.linger_seconds)
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                try:
                    await self.process(batch)
                except BaseException as exc:  # never leave a caller waiting
                    for item in batch:
                        settle(item.future, error=self.failed(exc))
                    if isinstance(exc, asyncio.CancelledError):
                        raise

    async def close(self, error: BaseException | None = None) -> None:
        """Stop the task; callers still queued get ``error`` (or a cancellation)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for item in self._pending:
            if error is not None:
                settle(item.future, error=error)
            else:
                item.future.cancel()
        self._pending.clear()
