"""Cost of the sans-IO core per audio delta (fast path) and per state-changing event, and
of the table's machine alone per trigger (flat default and nested two-phase tables).

Prints a table of medians over repeated runs: CPU time of this thread (``time.thread_time``,
what a busy shared machine inflates less) beside wall time (``perf_counter``). bargein's
loggers are set to WARNING, as a production application runs them: a disabled info or
debug line then costs its level check, and the figures are the core's own.
Targets (issue 14, CPU time): <= 5 us per delta, <= 10 us per state-changing event.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from functools import partial

from bargein.core import Conversation
from bargein.core import events as e
from bargein.states import DEFAULT_TABLE, StateTable, TableMachine
from bargein.states.two_phase import CONFIRM_MS, TWO_PHASE_TABLE

DELTA = b"\x01\x00" * 24 * 40  # 40 ms of audio, a typical server delta


Timing = tuple[float, float]  # (cpu us, wall us) per event


def _timed(run: object, n: int) -> Timing:
    assert callable(run)
    cpu, wall = time.thread_time(), time.perf_counter()
    run()
    return ((time.thread_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6)


def per_delta(n: int) -> Timing:
    conv = Conversation()
    for ev in (e.SessionReady(), e.ResponseCreated("r1"), e.AudioDelta("r1", "i1", DELTA)):
        conv.handle(ev)
    deltas = [e.AudioDelta("r1", "i1", DELTA) for _ in range(n)]
    handle = conv.handle

    def run() -> None:
        for ev in deltas:
            handle(ev)

    return _timed(run, n)


def per_gated_delta(n: int) -> Timing:
    conv = Conversation()
    for ev in (e.SessionReady(interrupt_response=False), e.ResponseCreated("r1"),
               e.AudioDelta("r1", "i1", DELTA), e.UserInterrupt(), e.PlaybackFlushed({})):
        conv.handle(ev)
    deltas = [e.AudioDelta("r1", "i1", DELTA) for _ in range(n)]

    def run() -> None:
        for ev in deltas:
            conv.handle(ev)

    return _timed(run, n)


def per_state_change(n: int) -> Timing:
    """One barge-in cycle is 5 state-changing events; report the cost per event."""
    return _cycles(Conversation(), n, lambda i, rid, item: (
        e.ResponseCreated(rid),
        e.AudioDelta(rid, item, DELTA),
        e.SpeechStarted(f"u{i}", i),
        e.PlaybackFlushed({item: 20.0}),
        e.SpeechStopped(f"u{i}", i),
    ))


def per_two_phase_change(n: int) -> Timing:
    """One two-phase cycle (``TWO_PHASE_TABLE``) is 7 state-changing events: a reply
    (``thinking``, then ``speaking`` on its first audio), a cough ducked and resumed, a
    sound that lasts the window and commits, the flush back to ``listening``."""
    window = e.TimerFired(f"after_{CONFIRM_MS}ms@ducked")
    return _cycles(Conversation(TWO_PHASE_TABLE), n, lambda i, rid, item: (
        e.ResponseCreated(rid),
        e.AudioDelta(rid, item, DELTA),
        e.LocalSpeechStarted(i),
        e.LocalSpeechStopped(i),
        e.LocalSpeechStarted(i),
        window,
        e.PlaybackFlushed({item: 20.0}),
    ))


def _cycles(conv: Conversation, n: int,
            cycle: Callable[[int, str, str], tuple[e.Event, ...]]) -> Timing:
    """``n`` cycles of ``conv`` (ready first), each of response ``r{i}`` and item ``i{i}``;
    the cost per event."""
    conv.handle(e.SessionReady(interrupt_response=False))
    cycles = [cycle(i, f"r{i}", f"i{i}") for i in range(n)]

    def run() -> None:
        for events in cycles:
            for ev in events:
                conv.handle(ev)

    return _timed(run, n * len(cycles[0]))


def _machine_cycle(table: StateTable, triggers: tuple[str, ...], n: int) -> Timing:
    facts = {"playing": False, "generating": False, "connected": True, "paused": False,
             "tools_running": False}
    machine = TableMachine(table, {name: partial(facts.__getitem__, name) for name in facts})
    machine.step("session_ready")
    step = machine.step

    def run() -> None:
        for _ in range(n):
            for trigger in triggers:
                step(trigger)

    return _timed(run, n * len(triggers))


def machine_flat(n: int) -> Timing:
    """``TableMachine.step`` alone, default table: listening -> responding ->
    interrupted -> listening."""
    return _machine_cycle(DEFAULT_TABLE, ("response_created", "speech_started",
                                          "playback_flushed"), n)


def machine_two_phase(n: int) -> Timing:
    """``TableMachine.step`` alone, two-phase table: thinking -> speaking -> ducked ->
    speaking (history) -> ducked -> interrupted -> listening."""
    return _machine_cycle(TWO_PHASE_TABLE, (
        "response_created", "audio_started", "local_speech_started", "local_speech_stopped",
        "local_speech_started", f"after_{CONFIRM_MS}ms@ducked", "playback_flushed"), n)


def main() -> None:
    logging.getLogger("bargein").setLevel(logging.WARNING)
    rows: list[tuple[str, Callable[[int], Timing], int, float | None]] = [
        ("audio delta, fast path", per_delta, 20_000, 5.0),
        ("audio delta, stale (dropped)", per_gated_delta, 20_000, 5.0),
        ("state-changing event (barge-in cycle)", per_state_change, 2_000, 10.0),
        ("state-changing event, two-phase cycle", per_two_phase_change, 1_500, 10.0),
        ("machine step alone, flat default", machine_flat, 5_000, None),
        ("machine step alone, two-phase (nested)", machine_two_phase, 2_000, None),
    ]
    print(f"{'what':40} {'cpu med us':>10} {'cpu min':>8} {'wall med':>9} {'target cpu':>10}")
    for name, fn, n, target in rows:
        runs = [fn(n) for _ in range(7)]
        cpu = [r[0] for r in runs]
        wall = statistics.median(r[1] for r in runs)
        goal = "-" if target is None else f"{target:.1f}"
        print(f"{name:40} {statistics.median(cpu):10.2f} {min(cpu):8.2f} {wall:9.2f} "
              f"{goal:>10}")


if __name__ == "__main__":
    main()
