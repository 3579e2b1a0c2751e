"""CPU time of one whole bargein ``Session`` per second of conversation, audio both ways.

A session on virtual time (``MemoryServer(answer=True)``, ``MemorySource`` mic frames of
20 ms, a ``MemorySink`` keeping its last 10 s) talks for 60 simulated seconds: every 6 s a
3 s reply in 100 ms deltas, every fourth one cut off by a barge-in. The figure is this
process's CPU time (``process_time``) per simulated second, median of 5 runs, beside the
wall time; no socket and no JSON are involved, so it is the session's own cost (mic path,
core, playout, progress polling), not the codec's or the transport's.

The same job over a socket against the simulator, side by side with a bare websockets +
msgspec client, the official SDK and openai-agents, is ``bench_clients.py``. Target: <= 3.5 ms
CPU per session-second.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time

import structlog
from bench_long import CYCLE_MS, cycle  # bench/ is on sys.path when run as a script

from bargein import Session
from bargein.adapters.audio.memory import MemorySink, MemorySource
from bargein.core import events as e
from bargein.testing import MemoryServer, VirtualTime

SECONDS = 60


async def one_run() -> tuple[float, float]:
    time_, server = VirtualTime(), MemoryServer(answer=True)
    source, sink = MemorySource(time_.clock), MemorySink(time_.clock, keep_ms=10_000)
    async with Session(server.transport, source, sink, clock=time_.now, sleep=time_.sleep):
        await server.emit(e.SessionReady(interrupt_response=False))
        cpu, wall = time.process_time(), time.perf_counter()
        for n in range(SECONDS * 1000 // CYCLE_MS):
            await cycle(time_, server, n)
        spent, walled = time.process_time() - cpu, time.perf_counter() - wall
    return spent * 1000 / SECONDS, walled * 1000 / SECONDS


def main() -> None:
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=True,
    )
    runs = [asyncio.run(one_run()) for _ in range(5)]
    print(f"{'client (same job, in memory, virtual time)':44} {'cpu ms/s':>9} {'wall ms/s':>10}")
    print(f"{'bargein Session':44} {statistics.median(r[0] for r in runs):9.2f} "
          f"{statistics.median(r[1] for r in runs):10.2f}")
    print("target <= 3.5 ms CPU per session-second; other clients: bench_clients.py")


if __name__ == "__main__":
    main()
