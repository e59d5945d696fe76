"""A trace of a worker's event loop, for the benches (``bench/reach_burst.py --loop-trace``).

Python imports ``sitecustomize`` at start-up from ``PYTHONPATH``; the bench puts this
directory there and names an output file in ``PEREZVON_LOOP_TRACE``. In a
``perezvon worker`` process (and no other) it then:

* runs asyncio's own event loop instead of uvloop, whose callbacks cannot be timed
  from Python (so the traced worker is somewhat slower than the real one: compare
  traced runs with traced runs);
* times every loop turn in which the callbacks took over 10 ms, and writes, for
  each, when it was, how long, how many callbacks ran and the six that took most,
  each named by its task's coroutine and the coroutine it resumed from;
* times each garbage collection over 5 ms (generation, ms, objects collected);
* times how long each task waits for, and holds, the process's database turn
  (``perezvon.core.dials_first.FirstInLine``): the dial path's waits over 5 ms, with
  the holder it waited for, and every hold over 10 ms.

The lists go to ``<PEREZVON_LOOP_TRACE>.<pid>.json`` every 5 s and at exit.
``python bench/looptrace/report.py FILE`` prints them.
"""

from __future__ import annotations

import os
import sys

if os.environ.get("PEREZVON_LOOP_TRACE") and sys.argv[1:2] == ["worker"]:
    import asyncio
    import asyncio.base_events
    import atexit
    import collections
    import json
    import threading
    import time

    sys.modules["uvloop"] = None  # type: ignore[assignment]  # perezvon falls back to asyncio's loop

    LONG_TURN = 0.010
    LONG_WAIT = 0.005
    LONG_HOLD = 0.010
    long_turns: list[tuple] = []
    db_waits: list[tuple] = []
    db_holds: list[tuple] = []
    this_turn: collections.Counter[str] = collections.Counter()
    callbacks_this_turn = [0]

    import gc

    LONG_COLLECTION = 0.005
    collections_over: list[tuple] = []
    collection_started = [0.0]

    def time_collections(phase: str, info: dict) -> None:
        if phase == "start":
            collection_started[0] = time.perf_counter()
            return
        took = time.perf_counter() - collection_started[0]
        if took > LONG_COLLECTION:
            collections_over.append((time.time(), info["generation"], round(took * 1000, 1), info["collected"]))

    gc.callbacks.append(time_collections)

    def coroutine_name(task: asyncio.Task | None) -> str:
        return getattr(task.get_coro(), "__qualname__", "?") if task is not None else "?"

    def callback_name(callback: object) -> str:
        task = getattr(callback, "__self__", None)
        if not isinstance(task, asyncio.Task):
            return "callback " + getattr(callback, "__qualname__", type(callback).__name__)
        inner = task.get_coro()
        for _ in range(40):  # down to the coroutine the task resumes from
            awaited = getattr(inner, "cr_await", None)
            if awaited is None or not hasattr(awaited, "cr_await"):
                break
            inner = awaited
        return f"{coroutine_name(task)} > {getattr(inner, '__qualname__', '?')}"

    run_handle = asyncio.events.Handle._run

    def timed_run(self: asyncio.events.Handle) -> None:
        name = callback_name(self._callback)
        started = time.perf_counter()
        try:
            run_handle(self)
        finally:
            this_turn[name] += time.perf_counter() - started
            callbacks_this_turn[0] += 1

    run_once = asyncio.base_events.BaseEventLoop._run_once

    def timed_run_once(self: asyncio.base_events.BaseEventLoop) -> None:
        this_turn.clear()
        callbacks_this_turn[0] = 0
        run_once(self)
        busy = sum(this_turn.values())
        if busy > LONG_TURN:
            top = [(name, round(seconds * 1000, 1)) for name, seconds in this_turn.most_common(6)]
            long_turns.append((time.time(), round(busy * 1000, 1), callbacks_this_turn[0], top))

    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]
    asyncio.base_events.BaseEventLoop._run_once = timed_run_once  # type: ignore[method-assign]

    def trace_database_turns() -> None:
        from perezvon.core import dials_first

        line = dials_first.FirstInLine
        acquire, release = line.acquire, line.release
        held: dict[int, tuple[float, str]] = {}
        holder = [""]

        async def timed_acquire(self: dials_first.FirstInLine) -> bool:
            asked = time.perf_counter()
            result = await acquire(self)
            got = time.perf_counter()
            task = asyncio.current_task()
            name = coroutine_name(task)
            if dials_first.on_the_dial_path.get() and got - asked > LONG_WAIT:
                db_waits.append((time.time(), round((got - asked) * 1000, 1), name, holder[0]))
            held[id(task)] = (got, name)
            holder[0] = name
            return result

        def timed_release(self: dials_first.FirstInLine) -> None:
            taken = held.pop(id(asyncio.current_task()), None)
            if taken is not None and time.perf_counter() - taken[0] > LONG_HOLD:
                db_holds.append((time.time(), round((time.perf_counter() - taken[0]) * 1000, 1), taken[1]))
            release(self)

        line.acquire, line.release = timed_acquire, timed_release  # type: ignore[method-assign]

    def dump() -> None:
        target = f"{os.environ['PEREZVON_LOOP_TRACE']}.{os.getpid()}.json"
        with open(target, "w") as out:
            json.dump(
                {"long_turns": long_turns, "db_waits": db_waits, "db_holds": db_holds, "collections": collections_over},
                out,
            )

    def in_the_background() -> None:
        # the database lock class exists once perezvon is imported (the start of the process)
        while "perezvon.core.dials_first" not in sys.modules:
            time.sleep(0.05)
        time.sleep(0.5)
        trace_database_turns()
        while True:
            time.sleep(5)
            try:
                dump()
            except RuntimeError:  # a list grew while it was written: the next round writes it
                pass

    atexit.register(dump)
    threading.Thread(target=in_the_background, name="loop-trace", daemon=True).start()
