"""CPU per outgoing POST: httpx's own transport vs. ``HttpPush`` (httpx over aiohttp), in one run.

Why ``perezvon.core.integrations.HttpPush`` sends through ``httpx-aiohttp``: the same
``--requests`` POSTs (a 1 KB JSON body, like a webhook) go to a local
receiver in a child process, first through a plain pooled
``httpx.AsyncClient``, then through ``HttpPush().client()``, with
``--concurrency`` requests in flight. Reported: this process's CPU time per
request, and requests per second.

    .venv/bin/python bench/http_push.py [--requests 3000] [--concurrency 200 50 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.deliveries import cpu_seconds, start_receiver  # noqa: E402

BODY = b'{"event": "lead_created", "padding": "' + b"x" * 1000 + b'"}'


async def measure(client, url: str, requests: int, concurrency: int) -> dict:
    slots = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with slots:
            response = await client.post(url, content=BODY, headers={"Content-Type": "application/json"})
            assert response.status_code == 200

    await asyncio.gather(*(one() for _ in range(min(requests, 500))))  # open the connections first
    cpu, started = cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(requests)))
    cpu, elapsed = cpu_seconds() - cpu, time.perf_counter() - started
    return {"cpu_ms_per_request": round(1000 * cpu / requests, 3), "per_second": round(requests / elapsed)}


async def main(args) -> None:
    import httpx

    from perezvon.core import outgoing
    from perezvon.core.integrations import HttpPush

    outgoing.configure(["127.0.0.1"])  # the receiver listens there (docs/admin.md#outgoing-requests)
    receiver, base = start_receiver(0)
    url = base + "/hook"
    try:
        for concurrency in args.concurrency:
            async with httpx.AsyncClient(
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=200)
            ) as plain:
                baseline = await measure(plain, url, args.requests, concurrency)
            push = HttpPush()
            ours = await measure(push.client(), url, args.requests, concurrency)
            await push.close()
            ratio = baseline["cpu_ms_per_request"] / ours["cpu_ms_per_request"]
            print(
                f"{concurrency:>4} in flight: httpx's transport {baseline} | HttpPush {ours} | CPU ratio {ratio:.1f}x",
                flush=True,
            )
    finally:
        receiver.terminate()
        receiver.join(5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[200, 50, 10])
    args = parser.parse_args()
    from perezvon.core.cli import _loop_factory

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main(args))
