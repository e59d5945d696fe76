"""Dials first: while a callback is being placed, the pushes of the same process step aside.

A worker process runs the callbacks queue and the deliveries queue on one event
loop (and, on SQLite, through one database connection). When many calls end at
once, their pushes and notifications -- thousands of small steps, each some CPU
and a query or two -- would stand in front of the next visitor's dial on that
loop and that connection. So every stretch from "an attempt job starts" to "its
first leg is dialled" is a *placing*, and the deliveries side waits at its
checkpoints (a job starting, a batch about to touch the database, a request
about to go out) while any placing is open.

A wait is bounded (:data:`MAX_WAIT_SECONDS`): under a steady stream of dials the
pushes slow down but never stop. Waiters are let go a few at a time
(:data:`RELEASED_AT_ONCE` per loop turn), so the gate opening does not turn into
a burst of work that stands in front of the dial after it. The measured effect
is in BENCHMARKS.md ("Reach burst").
"""

from __future__ import annotations

import asyncio
import collections
import contextvars

#: the longest a push waits at one checkpoint for the placings to end
MAX_WAIT_SECONDS = 1.0
#: how many waiting pushes resume per turn of the event loop once no callback is being placed
RELEASED_AT_ONCE = 8


class Placing:
    """One callback being placed; :meth:`done` (idempotent) ends it."""

    __slots__ = ("_gate", "_open")

    def __init__(self, gate: DialsFirst) -> None:
        self._gate = gate
        self._open = True

    def done(self) -> None:
        if self._open:
            self._open = False
            self._gate._ended()


class DialsFirst:
    """The process's gate between the callbacks being placed and everything that can wait."""

    def __init__(self) -> None:
        self._placing = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._releasing = False

    @property
    def placing_now(self) -> int:
        return self._placing

    def placing(self) -> Placing:
        """Mark a callback as being placed until the returned handle's ``done()``."""
        self._placing += 1
        return Placing(self)

    def _ended(self) -> None:
        self._placing -= 1
        if self._placing == 0:
            self._start_releasing()

    def _start_releasing(self) -> None:
        if self._waiters and not self._releasing:
            self._releasing = True
            asyncio.get_running_loop().call_soon(self._release_some)

    def _release_some(self) -> None:
        """Let :data:`RELEASED_AT_ONCE` waiters go, and the next ones on the next loop turn,
        for as long as nothing is being placed."""
        if self._placing:  # a new dial started meanwhile: the rest wait for it
            self._releasing = False
            return
        released = 0
        while self._waiters and released < RELEASED_AT_ONCE:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                released += 1
        if self._waiters:
            asyncio.get_running_loop().call_soon(self._release_some)
        else:
            self._releasing = False

    async def wait(self) -> None:
        """Return once no callback is being placed (or after :data:`MAX_WAIT_SECONDS`)."""
        if not self._placing:
            if not any(not waiter.done() for waiter in self._waiters):
                self._waiters.clear()  # only those that gave up are left
                return
            self._start_releasing()  # join the ones being let go, behind them
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, MAX_WAIT_SECONDS)
        except TimeoutError:
            pass  # bounded: under a steady stream of dials the pushes slow down, never stop


#: true in the tasks placing a callback, until its first leg is dialled: their database turns come first
on_the_dial_path: contextvars.ContextVar[bool] = contextvars.ContextVar("perezvon_on_the_dial_path", default=False)


class FirstInLine:
    """A lock (or, with ``slots``, a semaphore) served first come, first served -- except that a
    task :data:`on_the_dial_path` goes before every waiter that is not.

    SQLite gives a process one connection, and Tortoise serialises every query and
    transaction on it with one lock (``core/sqlite.py``); PostgreSQL gives it a pool
    of a few connections (``core/pg.py``). With thousands of pushes queued for them,
    a new visitor's claim and dial would wait behind all of those queries; with this
    in front they wait at most for the queries that hold the connections now.
    """

    def __init__(self, slots: int = 1) -> None:
        self._slots = slots
        self._free = slots
        self._first: collections.deque[asyncio.Future[None]] = collections.deque()
        self._rest: collections.deque[asyncio.Future[None]] = collections.deque()

    def locked(self) -> bool:
        return self._free == 0

    async def acquire(self) -> bool:
        if self._free and not self._first and not self._rest:
            self._free -= 1
            return True
        line = self._first if on_the_dial_path.get() else self._rest
        waiter = asyncio.get_running_loop().create_future()
        line.append(waiter)
        try:
            await waiter  # release() hands its slot over by setting the result
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed over just as we were cancelled: pass it on
                self.release()
            else:
                line.remove(waiter)
            raise
        return True

    def release(self) -> None:
        for line in (self._first, self._rest):
            while line:
                waiter = line.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the slot goes straight to this waiter
                    return
        if self._free == self._slots:
            raise RuntimeError("released more often than acquired")
        self._free += 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()
