"""Soak (issue 15): 1,000 barge-ins faster than real time, on a MemoryServer and virtual time.

Each cycle is a user turn answered by a 2 s reply that the user cuts off after 300 ms (the
server's turn detection cancels it), followed by late deltas of the cancelled reply, as a
server sends them. After each cycle the soak checks what must hold: the machine back in
``listening`` (not stuck), the interrupted item truncated once, nothing of the cancelled
reply played after the barge-in settled (no stale audio). Every 100 cycles it prints the
Python heap in use (``tracemalloc``), the process's peak RSS, and the sizes of what a long
conversation keeps (the session's per-response figures, the core's gate).

    .venv/bin/python bench/bench_soak.py [CYCLES]
"""

from __future__ import annotations

import asyncio
import gc
import logging
import resource
import sys
import time
import tracemalloc

import structlog

from bargein.adapters.audio.memory import MemorySink, MemorySource
from bargein.core import commands as c
from bargein.core import events as e
from bargein.session import Session
from bargein.testing import MemoryServer, VirtualTime, deltas, reply

REPLY_MS = 2000
CUT_AFTER_MS = 300
LATE_DELTAS = 3


async def soak(cycles: int) -> int:
    time_, server = VirtualTime(), MemoryServer()
    source, sink = MemorySource(time_.clock, b""), MemorySink(time_.clock, keep_ms=1000)
    session = Session(server.transport, source, sink, clock=time_.now, sleep=time_.sleep,
                      linger_s=None)
    conv = session.conversation
    problems: list[str] = []
    tracemalloc.start()
    started = time.perf_counter()
    async with session:
        await server.emit(e.SessionReady(interrupt_response=True))
        await time_.advance(100)
        print(f"{'barge-ins':>9} {'heap MiB':>9} {'peak RSS MiB':>12} {'figures':>8} "
              f"{'gated':>6} {'ledger':>6} {'server log':>10} {'wall s':>7}")
        for n in range(1, cycles + 1):
            rid, item = f"resp_{n}", f"item_{n}"
            await server.emit(e.SpeechStopped(f"u{n}", 0), *reply(rid, item, REPLY_MS,
                                                                    done=False))
            await time_.advance(CUT_AFTER_MS, step_ms=20)
            truncates = len(server.commands(c.TruncateItem))
            await server.emit(e.SpeechStarted(f"u{n}b", 0),
                              e.ResponseDone(rid, "cancelled", "turn_detected"))
            await time_.advance(60, step_ms=20)
            heard = sink.heard_ms().get(item, 0.0)
            await server.emit(*deltas(rid, item, 100 * LATE_DELTAS))  # late, after the cancel
            await time_.advance(140, step_ms=20)
            if conv.state != "listening":
                problems.append(f"cycle {n}: stuck in {conv.state}")
            if sink.heard_ms().get(item, 0.0) != heard:
                problems.append(f"cycle {n}: stale audio of {rid}")
            if len(server.commands(c.TruncateItem)) != truncates + 1:
                problems.append(f"cycle {n}: {item} not truncated once")
            server.sent.clear()  # the test server's own log is not bargein's memory
            if n % 100 == 0:
                gc.collect()
                heap, _ = tracemalloc.get_traced_memory()
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(f"{n:>9} {heap / 2**20:>9.2f} {rss:>12.1f} {len(session.figures):>8} "
                      f"{len(conv._gated):>6} {len(conv.ledger.items):>6} "
                      f"{len(server.sent):>10} {time.perf_counter() - started:>7.1f}")
    tracemalloc.stop()
    stats = conv.stats
    print(f"{cycles} barge-ins in {time_.ms / 1000:.0f} s of virtual time, "
          f"{time.perf_counter() - started:.0f} s of wall time; interruptions "
          f"{stats.interruptions}, late deltas dropped {stats.dropped_deltas}, illegal events "
          f"{stats.illegal_events}, server errors {stats.server_errors}")
    print(f"stale audio / stuck / truncation problems: {len(problems)}")
    for problem in problems[:10]:
        print("  " + problem)
    return 1 if problems else 0


def main(argv: list[str]) -> int:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
                        cache_logger_on_first_use=True)
    cycles = int(argv[0]) if argv else 1000
    return asyncio.run(soak(cycles))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
