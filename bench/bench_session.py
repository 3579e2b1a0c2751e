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

``--trees base@DIR`` runs the same rounds with bargein imported from ``DIR`` too (a ``git
worktree`` of an older commit, say), interleaved: before and after in one run. Each run is
a process of its own.

At real time, N sessions in one process (the event loop's own turns included), is
``bench_scale.py``; the same job over a socket against the simulator, beside a bare
websockets + msgspec client, the official SDK and openai-agents in the same run, is
``bench_clients.py``. Target: <= 3.5 ms CPU per session-second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", default="",
                        help="comma-separated label@DIR: also run bargein from DIR, "
                             "interleaved with this checkout")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
            cache_logger_on_first_use=True,
        )
        print(json.dumps({"run": asyncio.run(one_run()), "drive": asyncio.run(driver_run())}))
        return
    trees = [("this", "")] + [(t.partition("@")[0], os.path.abspath(t.partition("@")[2]))
                              for t in args.trees.split(",") if t]
    results: dict[str, list[dict[str, list[float]]]] = {label: [] for label, _ in trees}
    for _ in range(RUNS):  # interleaved, so that a busy moment weighs on all alike
        for label, tree in trees:
            env = {**os.environ, "PYTHONPATH": tree} if tree else dict(os.environ)
            out = subprocess.run([sys.executable, __file__, "--child"], capture_output=True,
                                 text=True, check=True, env=env)
            results[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'same job, in memory, virtual time; medians of ' + str(RUNS):52} "
          f"{'cpu ms/s':>9} {'wall ms/s':>10}  (load {os.getloadavg()[0]:.2f})")
    for label, _ in trees:
        runs = [r["run"] for r in results[label]]
        drives = [r["drive"] for r in results[label]]
        own = [(r[0] - d[0], r[1] - d[1]) for r, d in zip(runs, drives, strict=True)]
        for name, rows in ((f"[{label}] bargein Session, driven", runs),
                           (f"[{label}] the driving alone (no session)", drives),
                           (f"[{label}] bargein Session, its own (the difference)", own)):
            print(f"{name:52} {statistics.median(r[0] for r in rows):9.2f} "
                  f"{statistics.median(r[1] for r in rows):10.2f}")
    print("target <= 3.5 ms CPU per session-second; at real time, N sessions in one process: "
          "bench_scale.py; beside the SDK and openai-agents on one job: bench_clients.py")


if __name__ == "__main__":
    main()
