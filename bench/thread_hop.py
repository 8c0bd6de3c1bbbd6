"""What one hop to a worker thread costs the event loop's process, and what a bare executor would.

PostgreSQL's service calls run in a thread (`Call.run`: `anyio.to_thread.run_sync` with the
app's `CapacityLimiter`). This times that hop against `loop.run_in_executor` on a
`ThreadPoolExecutor` of the same size (with the caller's context copied, as anyio does) for a
function that does nothing: the process CPU per hop, under uvloop as the server runs.
Interleaved rounds; the median is the figure to quote.

  .venv/bin/python bench/thread_hop.py --hops 5000 --rounds 7
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import functools
import statistics
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import uvloop
from anyio import CapacityLimiter, to_thread


def nothing() -> None:
    return None


async def cpu_per_hop(hop: Callable[[], Awaitable[None]], hops: int) -> float:
    started = time.process_time()
    for _ in range(hops):
        await hop()
    return (time.process_time() - started) / hops * 1e6


async def measure(hops: int, rounds: int, threads: int) -> dict[str, list[float]]:
    limiter = CapacityLimiter(threads)
    executor = ThreadPoolExecutor(threads)
    loop = asyncio.get_running_loop()

    async def through_anyio() -> None:
        await to_thread.run_sync(nothing, limiter=limiter)

    async def through_executor() -> None:
        await loop.run_in_executor(executor, functools.partial(contextvars.copy_context().run, nothing))

    figures: dict[str, list[float]] = {"anyio to_thread": [], "bare executor": []}
    try:
        for _ in range(rounds):
            figures["anyio to_thread"].append(await cpu_per_hop(through_anyio, hops))
            figures["bare executor"].append(await cpu_per_hop(through_executor, hops))
    finally:
        executor.shutdown()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hops", type=int, default=5000, help="hops per round and kind")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=4, help="the limiter's and the executor's size")
    a = parser.parse_args()
    figures = uvloop.run(measure(a.hops, a.rounds, a.threads))
    for kind, values in figures.items():
        rounds = ", ".join(f"{value:.1f}" for value in values)
        print(f"{kind}: median {statistics.median(values):.1f} µs of CPU per hop (rounds: {rounds})")


if __name__ == "__main__":
    main()
