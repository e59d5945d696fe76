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
a burst of work that stands in front of the dial after it.

The open gate paces too: at most :data:`RELEASED_AT_ONCE` checkpoints pass per
loop turn, the rest queue up and go in order on the next turns. Why: asyncio runs
every callback that is ready in one turn before it looks at its sockets again,
and each step of a dial (the queue's poll coming back, the claim's query, the
line) needs a turn of its own. When a thousand calls end within a second, their
timers fire together; unpaced, one turn ran hundreds of endings, the next turn
more (they kept expiring while it ran), and a dial that started then waited
through several such turns: 0.5-1 s. Paced, a turn runs a few of them and a
dial's step waits for at most those. The measured effect is in BENCHMARKS.md
("Reach burst").
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
        #: checkpoints passed without waiting in the current loop turn (reset by the next turn)
        self._passed = 0

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

    def _pass_now(self) -> bool:
        """Whether a checkpoint may pass at once: nothing placed, nobody queued, this turn not used up."""
        if self._placing:
            return False
        if any(not waiter.done() for waiter in self._waiters):
            return False
        self._waiters.clear()  # only those that gave up are left
        if self._passed >= RELEASED_AT_ONCE:
            return False
        if not self._passed:
            asyncio.get_running_loop().call_soon(self._next_turn)
        self._passed += 1
        return True

    def _next_turn(self) -> None:
        self._passed = 0

    async def wait(self) -> None:
        """Return once no callback is being placed (or after :data:`MAX_WAIT_SECONDS`), and it is
        this caller's turn: at most :data:`RELEASED_AT_ONCE` go on per loop turn."""
        if self._pass_now():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if not self._placing:
            self._start_releasing()  # go with the ones being let go, behind them, from the next turn
        try:
            # not wait_for: on Python 3.11 it loses a cancellation that comes as the waiter is let go
            async with asyncio.timeout(MAX_WAIT_SECONDS):
                await waiter
        except TimeoutError:
            pass  # bounded: under a steady stream of dials the pushes slow down, never stop


#: the gate of the engine running the attempt in this task (set by the engine), for the core code a
#: telephony backend calls once a call is over (:func:`perezvon.core.recordings.keep_recording`)
current_gate: contextvars.ContextVar[DialsFirst | None] = contextvars.ContextVar("perezvon_dials_first", default=None)


async def after_the_dials() -> None:
    """:meth:`DialsFirst.wait` on the gate of the attempt this task runs; nothing outside an attempt."""
    gate = current_gate.get()
    if gate is not None:
        await gate.wait()


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
