"""Flat over hours: one whole ``Session`` early in a conversation and after hours of it.

Runs a conversation on virtual time (``VirtualTime``, ``MemoryServer(answer=True)``,
``MemorySource`` mic frames every 20 ms, a ``MemorySink`` keeping its last 10 s): every 6 s
the assistant answers with 3 s of audio in 100 ms deltas; every fourth answer is cut off by
a barge-in 1 s in (flush, cancel, truncate). No wall-clock time passes, so the conversation
runs as fast as the CPU allows; the figures are CPU time of this process
(``process_time``), per second of conversation and per server event, over a window of
cycles measured after the first minute and again at the end, with the resident set size
(``/proc/self/statm``) at both ends.

``--quick`` (the default) runs 20 simulated minutes; ``--full`` runs 2 hours (issue 14's
target: per-event cost at 2 hours within 10 % of 1 minute, RSS growth <= 20 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import statistics
import time

import structlog

from bargein import Session
from bargein.adapters.audio.memory import MemorySink, MemorySource
from bargein.core import events as e
from bargein.testing import MemoryServer, VirtualTime
from bargein.testing.memory_server import reply

CYCLE_MS = 6000
REPLY_MS = 3000
WINDOW = 10  # cycles per measured window (one minute)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def cycle(time_: VirtualTime, server: MemoryServer, n: int) -> int:
    """One 6 s turn; returns the number of server events it emitted."""
    server.sent.clear()  # the memory server's own record of commands is not the session's
    rid, item = f"resp_{n}", f"item_{n}"
    if n % 4 == 3:  # cut off by the user 1 s in
        events = reply(rid, item, REPLY_MS, done=False)
        await server.emit(*events)
        await time_.advance(1000, step_ms=20)
        await server.emit(e.SpeechStarted(f"user_{n}", int(time_.ms)))
        await time_.advance(500, step_ms=20)
        await server.emit(e.SpeechStopped(f"user_{n}", int(time_.ms)))
        await time_.advance(CYCLE_MS - 1500, step_ms=20)
        return len(events) + 2
    events = reply(rid, item, REPLY_MS)
    await server.emit(*events)
    await time_.advance(CYCLE_MS, step_ms=20)
    return len(events)


async def window(time_: VirtualTime, server: MemoryServer, start: int) -> tuple[float, float]:
    """(CPU ms per session-second, CPU us per server event) over WINDOW cycles."""
    cpu = time.process_time()
    events = 0
    for n in range(start, start + WINDOW):
        events += await cycle(time_, server, n)
    spent = time.process_time() - cpu
    return spent * 1000 / (WINDOW * CYCLE_MS / 1000), spent * 1e6 / events


async def run(minutes: float) -> None:
    time_, server = VirtualTime(), MemoryServer(answer=True)
    source, sink = MemorySource(time_.clock), MemorySink(time_.clock, keep_ms=10_000)
    total = int(minutes * 60_000 / CYCLE_MS)
    async with Session(server.transport, source, sink, clock=time_.now, sleep=time_.sleep):
        await server.emit(e.SessionReady(interrupt_response=False))
        for n in range(WINDOW):  # the first minute: warm-up
            await cycle(time_, server, n)
        gc.collect()
        rss_start = rss_mb()
        early = [await window(time_, server, WINDOW * (1 + k)) for k in range(3)]
        n = WINDOW * 4
        wall = time.perf_counter()
        while n < total - 3 * WINDOW:
            await cycle(time_, server, n)
            n += 1
        middle_s = time.perf_counter() - wall
        late = [await window(time_, server, n + WINDOW * k) for k in range(3)]
        gc.collect()
        rss_end = rss_mb()
    print(f"simulated {time_.ms / 60_000:.1f} min of conversation "
          f"({middle_s:.0f} s wall for the middle); medians of 3 one-minute windows")
    print(f"{'when':22} {'cpu ms/session-s':>17} {'cpu us/server event':>20} {'RSS MB':>8}")
    for name, rows, rss in (("minutes 1-4", early, rss_start), ("last 3 minutes", late, rss_end)):
        print(f"{name:22} {statistics.median(r[0] for r in rows):17.2f} "
              f"{statistics.median(r[1] for r in rows):20.2f} {rss:8.1f}")
    ratio = statistics.median(r[1] for r in late) / statistics.median(r[1] for r in early)
    print(f"late/early per event: {ratio:.2f} (target <= 1.10); "
          f"RSS growth {rss_end - rss_start:+.1f} MB (target <= 20 MB over 2 h)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="20 simulated minutes (default)")
    group.add_argument("--full", action="store_true", help="2 simulated hours")
    parser.add_argument("--minutes", type=float, help="any other length")
    args = parser.parse_args()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=True,
    )
    minutes = args.minutes or (120.0 if args.full else 20.0)
    asyncio.run(run(max(minutes, 8.0)))


if __name__ == "__main__":
    main()
