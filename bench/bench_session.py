"""CPU time of one whole bargein ``Session`` per second of conversation, audio both ways.

A session on virtual time (``MemoryServer(answer=True)``, ``MemorySource`` mic frames of
20 ms, a ``MemorySink`` keeping its last 10 s) talks for 60 simulated seconds: every 6 s a
3 s reply in 100 ms deltas, every fourth one cut off by a barge-in. The figure is this
process's CPU time (``process_time``) per simulated second, beside the wall time; no socket
and no JSON are involved, so it is the session's own cost (mic path, core, playout, progress
polling), not the codec's or the transport's.

The driving is not free: ``VirtualTime.advance`` lets the event loop turn 16 times per 20 ms
step, and the memory server queues every event. So the same driving runs again with no
session (a task only takes the server's events), interleaved with the session's runs, and
the table prints both and their difference, the session's own cost. Medians of 5 each.

At real time, N sessions in one process (the event loop's own turns included), is
``bench_scale.py``; the same job over a socket against the simulator, beside a bare
websockets + msgspec client, the official SDK and openai-agents in the same run, is
``bench_clients.py``. Target: <= 3.5 ms CPU per session-second.
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
RUNS = 5


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


async def driver_run() -> tuple[float, float]:
    """The same driving with no session: a task that only takes the server's events."""
    time_, server = VirtualTime(), MemoryServer(answer=True)

    async def take() -> None:
        async for _ in server.transport.events():
            pass

    reader = asyncio.create_task(take())
    await server.emit(e.SessionReady(interrupt_response=False))
    cpu, wall = time.process_time(), time.perf_counter()
    for n in range(SECONDS * 1000 // CYCLE_MS):
        await cycle(time_, server, n)
    spent, walled = time.process_time() - cpu, time.perf_counter() - wall
    reader.cancel()
    return spent * 1000 / SECONDS, walled * 1000 / SECONDS


def main() -> None:
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=True,
    )
    runs, drives = [], []
    for _ in range(RUNS):  # interleaved, so that a busy moment weighs on both alike
        runs.append(asyncio.run(one_run()))
        drives.append(asyncio.run(driver_run()))
    own = [(r[0] - d[0], r[1] - d[1]) for r, d in zip(runs, drives, strict=True)]
    print(f"{'same job, in memory, virtual time; medians of ' + str(RUNS):52} "
          f"{'cpu ms/s':>9} {'wall ms/s':>10}")
    for name, rows in (("bargein Session, driven", runs),
                       ("the driving alone (no session)", drives),
                       ("bargein Session, its own (the difference)", own)):
        print(f"{name:52} {statistics.median(r[0] for r in rows):9.2f} "
              f"{statistics.median(r[1] for r in rows):10.2f}")
    print("target <= 3.5 ms CPU per session-second; at real time, N sessions in one process: "
          "bench_scale.py; beside the SDK and openai-agents on one job: bench_clients.py")


if __name__ == "__main__":
    main()
