"""One Redis command on a busy event loop: redis-py's own pool against ``PromptConnectionPool``.

redis-py 5 checks a connection it takes from its pool by reading it with a zero
timeout, which costs the command two turns of the event loop before it is sent
(``core/redis.py``, ``PromptConnectionPool``). A turn is cheap on an idle loop
and costs milliseconds on a worker's busy one, so the figure is taken with
``--busy`` other tasks on the loop (each yields once per turn, as the tasks of
calls in flight do) and with none.

What runs: this process and the Redis server at ``--redis-url`` (127.0.0.1:6379/13 by default);
``--commands`` (3,000) ``SET``s one after another through each pool, the two pools alternately,
``--rounds`` (2) times. Printed: wall and CPU time per command and the loop turns each took (the
busy tasks' turns counted while the commands ran). Exit 1 if the prompt pool is not faster per
command on the busy loop than redis-py's own.

    .venv/bin/python bench/redis_ready.py [--busy 50] [--commands 3000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

import uvloop
from redis.asyncio import Redis
from redis.asyncio.connection import ConnectionPool

from perezvon.core.redis import PromptConnectionPool


async def one_run(url: str, pool_class: type[ConnectionPool], commands: int, busy: int) -> dict[str, float]:
    redis = Redis(connection_pool=pool_class.from_url(url))
    await redis.set("pv:bench:ready", "0")
    turns = 0
    running = True

    async def other_task() -> None:
        nonlocal turns
        while running:
            turns += 1
            await asyncio.sleep(0)

    others = [asyncio.create_task(other_task()) for _ in range(busy)]
    await asyncio.sleep(0)
    turns, cpu, wall = 0, time.process_time(), time.perf_counter()
    for number in range(commands):
        await redis.set("pv:bench:ready", number)
    cpu, wall, counted = time.process_time() - cpu, time.perf_counter() - wall, turns
    running = False
    await asyncio.gather(*others)
    await redis.delete("pv:bench:ready")
    await redis.aclose()
    return {
        "wall_us": 1e6 * wall / commands,
        "cpu_us": 1e6 * cpu / commands,
        "turns": counted / max(busy, 1) / commands if busy else 0.0,
    }


async def main(args: argparse.Namespace) -> int:
    pools = {"redis-py": ConnectionPool, "prompt": PromptConnectionPool}
    results: dict[tuple[int, str], list[dict[str, float]]] = {}
    for busy in (0, args.busy):
        for _ in range(args.rounds):
            for name, pool_class in pools.items():  # alternately: the box's speed drifts between runs
                results.setdefault((busy, name), []).append(
                    await one_run(args.redis_url, pool_class, args.commands, busy)
                )
    for (busy, name), runs in results.items():
        wall = statistics.median(run["wall_us"] for run in runs)
        cpu = statistics.median(run["cpu_us"] for run in runs)
        turns = statistics.median(run["turns"] for run in runs)
        shown = f", {turns:.2f} loop turns" if busy else ""
        print(f"{busy:3d} other tasks, {name:8s}: {wall:7.1f} us wall, {cpu:6.1f} us CPU per command{shown}")
    stock = statistics.median(run["wall_us"] for run in results[(args.busy, "redis-py")])
    prompt = statistics.median(run["wall_us"] for run in results[(args.busy, "prompt")])
    print(f"busy loop: the prompt pool takes {prompt / stock:.2f} of redis-py's time per command")
    return 0 if prompt < stock else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--busy", type=int, default=50, help="other tasks on the loop, each yielding once a turn")
    parser.add_argument("--commands", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    sys.exit(uvloop.run(main(parser.parse_args())))
