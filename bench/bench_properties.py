"""The core's property tests, run over many random event sequences (issue 15: >= 100,000).

``tests/core/test_conversation_invariants.py`` holds the promises (no stale audio, each
item settled once, truncation within what was received, audio only where it may play, a
barge-in with audio queued always flushes, a ``response.done`` moves the machine only when
nothing else generates) and runs them under hypothesis with its default example counts.
Hypothesis spends most of its time on shrinking and bookkeeping; this drives the very same
rule methods and invariants with a plain seeded random generator, fast enough for a six-
figure count, in one process per core. A failure prints its seed and the steps, replayable
with ``--seed``.

    .venv/bin/python bench/bench_properties.py [COUNT] [--seed N]

COUNT defaults to ``$BARGEIN_PROPERTY_SEQUENCES`` or 100,000 sequences of 40 steps, split
between the flat (thinking) and the nested (confirm) machine, 3 to 1 as in the suite.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bargein.core import events as e
from tests.core.test_conversation_invariants import (
    ConversationMachine,
    NestedConversationMachine,
)

STEPS = 40
RIDS = ["r1", "r2", "r3"]
ITEMS = ["r1-i1", "r1-i2", "r2-i1", "r3-i2"]
SIMPLE: list[e.Event] = [
    e.SpeechStarted("u", 0), e.SpeechStopped("u", 0), e.LocalSpeechStarted(0.0),
    e.UserInterrupt(), e.UserStop(), e.UserStart(), e.Disconnected(), e.Reconnected(),
    e.RequestResponse(), e.ServerError("invalid_request_error", "x", "y", "bargein_1"),
    e.MicAudio(b"\0\0" * 480),
]


def _heard(rng: random.Random) -> dict[str, float]:
    return {rng.choice(ITEMS): rng.uniform(0, 5000) for _ in range(rng.randint(0, 3))}


def _steps(m: ConversationMachine) -> list[Callable[[random.Random], str]]:
    def created(r: random.Random) -> str:
        rid = r.choice(RIDS)
        m.response_created(rid)
        return f"created {rid}"

    def item(r: random.Random) -> str:
        rid, n = r.choice(RIDS), r.randint(1, 2)
        m.item_added(rid, n)
        return f"item {rid}-i{n}"

    def audio(r: random.Random) -> str:
        rid, n, ms = r.choice(RIDS), r.randint(1, 2), r.randint(1, 400)
        m.audio(rid, n, ms)
        return f"audio {rid}-i{n} {ms} ms"

    def done(r: random.Random) -> str:
        rid, status = r.choice(RIDS), r.choice(["completed", "cancelled"])
        m.response_done(rid, status)
        return f"done {rid} {status}"

    def simple(r: random.Random) -> str:
        event = r.choice(SIMPLE)
        m.simple(event)
        return repr(event)

    def flushed(r: random.Random) -> str:
        heard = _heard(r)
        m.flushed(heard)
        return f"flushed {heard}"

    def progress(r: random.Random) -> str:
        heard = _heard(r)
        m.progress(heard)
        return f"progress {heard}"

    def finished(r: random.Random) -> str:
        heard = _heard(r)
        m.finished(heard)
        return f"finished {heard}"

    def ready(r: random.Random) -> str:
        m.session_ready()
        return "session ready"

    steps: list[Callable[[random.Random], str]] = [
        ready, created, item, audio, audio, done, simple, flushed, progress, finished]
    if isinstance(m, NestedConversationMachine):
        def timer(r: random.Random) -> str:
            running = sorted(m.conv.timers)
            if not running:
                return "no timer"
            name = r.choice(running)
            m._feed(e.TimerFired(name))
            return f"timer {name}"

        def ended(r: random.Random) -> str:
            m.sound_ended()
            return "local speech stopped"

        steps += [timer, ended]
    return steps


def run_one(seed: int) -> str | None:
    """One random sequence; its steps and the broken promise, or None."""
    rng = random.Random(seed)
    nested = seed % 4 == 3
    m: ConversationMachine = NestedConversationMachine() if nested else ConversationMachine()
    steps = _steps(m)
    done: list[str] = []
    try:
        for _ in range(STEPS):
            done.append(rng.choice(steps)(rng))
            m.state_is_known()
            m.each_item_settled_at_most_once()
    except AssertionError as exc:
        return f"seed {seed} ({'confirm' if nested else 'thinking'}): {exc}\n  " + \
            "\n  ".join(done)
    return None


def run_range(bounds: tuple[int, int]) -> tuple[int, list[str]]:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
                        cache_logger_on_first_use=True)
    logging.disable(logging.CRITICAL)
    failures = [f for f in map(run_one, range(*bounds)) if f is not None]
    return bounds[1] - bounds[0], failures[:3]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="The core's property tests over many random "
                                     "event sequences (see the module's docstring).")
    parser.add_argument("count", nargs="?", type=int,
                        default=int(os.environ.get("BARGEIN_PROPERTY_SEQUENCES", 100_000)),
                        help="how many sequences (default $BARGEIN_PROPERTY_SEQUENCES or 100000)")
    parser.add_argument("--seed", type=int, help="replay one sequence and print its steps")
    args = parser.parse_args(argv)
    if args.seed is not None:
        print(run_one(args.seed) or "held")
        return 0
    count = args.count
    chunk = 2_000
    ranges = [(lo, min(lo + chunk, count)) for lo in range(0, count, chunk)]
    start = time.perf_counter()
    ran, failures = 0, []
    with multiprocessing.Pool(os.cpu_count() or 1) as pool:
        for n, bad in pool.imap_unordered(run_range, ranges):
            ran += n
            failures += bad
    took = time.perf_counter() - start
    print(f"property sequences: {ran:,} of {STEPS} steps ({ran * 3 // 4:,} thinking, "
          f"{ran // 4:,} confirm) in {took:.0f} s; broken: {len(failures)}")
    for failure in failures[:3]:
        print(failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
