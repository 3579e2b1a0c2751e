"""Flat over hours: what a progress tick reports and what a sink holds stay bounded however
long the conversation (counted deterministically on a virtual clock, never timed)."""

from __future__ import annotations

import tracemalloc
import wave
from pathlib import Path

import numpy as np

from bargein.adapters.audio.memory import MemorySink, VirtualClock
from bargein.adapters.audio.playout import KEEP_SETTLED
from bargein.adapters.audio.wav import WavSink

MS = 24


def _tone(ms: int, value: int = 1000) -> bytes:
    return np.full(ms * MS, value, dtype="<i2").tobytes()


def _converse(sink: MemorySink, clock: VirtualClock, items: int, start: int = 0) -> list[int]:
    """Items of 200 ms, each followed by 100 ms of silence; the report's size at each tick."""
    sizes = []
    for i in range(start, start + items):
        sink.play(f"item_{i}", _tone(200, value=1000 + i % 7))
        for _ in range(15):  # 20 ms progress ticks
            clock.advance_ms(20)
            sizes.append(len(sink.heard_ms()))
    return sizes


def test_a_progress_tick_reports_a_bounded_number_of_items() -> None:
    clock = VirtualClock()
    sink = MemorySink(clock)
    early = _converse(sink, clock, 40)
    late = _converse(sink, clock, 400, start=40)
    assert max(late) <= KEEP_SETTLED + 2
    assert max(late) == max(early)  # the same after 440 items as after 40
    assert sink._playout.tracked_items() <= KEEP_SETTLED + 2


def test_a_finished_item_is_still_reported_while_it_is_recent() -> None:
    clock = VirtualClock()
    sink = MemorySink(clock)
    sink.play("first", _tone(300))
    clock.advance_ms(400)
    sink.play("second", _tone(700))
    clock.advance_ms(800)
    assert sink.heard_ms() == {"first": 300.0, "second": 700.0}


def _grown_bytes(run: object, first: int, then: int) -> int:
    """Bytes allocated and still held between ``first`` and ``first + then`` steps."""
    assert callable(run)
    run(first)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run(then)
        return int(tracemalloc.get_traced_memory()[0] - before)
    finally:
        tracemalloc.stop()


def test_a_memory_sink_with_keep_ms_holds_a_bounded_window() -> None:
    clock = VirtualClock()
    sink = MemorySink(clock, keep_ms=2000)
    done = [0]

    def run(items: int) -> None:
        _converse(sink, clock, items, start=done[0])
        done[0] += items

    grown = _grown_bytes(run, 20, 600)  # 3 minutes more of conversation
    assert grown < 200_000  # the unbounded sink holds ~5.8 MB more here
    out = np.frombuffer(sink.output(), dtype="<i2")
    assert len(out) == 2000 * MS and sink.output_start == clock.samples - 2000 * MS
    assert out.any()


def test_a_memory_sink_keeps_everything_by_default() -> None:
    clock = VirtualClock()
    sink = MemorySink(clock)
    _converse(sink, clock, 20)
    out = np.frombuffer(sink.output(), dtype="<i2")
    assert len(out) == clock.samples and sink.output_start == 0
    assert np.count_nonzero(out) == 20 * 200 * MS


def test_a_wav_sink_streams_to_its_file_and_holds_nothing(tmp_path: Path) -> None:
    clock = VirtualClock()
    sink = WavSink(tmp_path / "out.wav", clock)
    done = [0]

    def run(items: int) -> None:
        _converse(sink, clock, items, start=done[0])
        done[0] += items

    grown = _grown_bytes(run, 20, 600)
    assert grown < 200_000
    sink.close()
    with wave.open(str(tmp_path / "out.wav"), "rb") as wav:
        assert wav.getnframes() == clock.samples
        out = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert np.count_nonzero(out) == 620 * 200 * MS
    # item 450, played at 135 s, sounds for its 200 ms from the next 10 ms block on
    window = out[135_000 * MS : 135_300 * MS]
    assert np.all(window[10 * MS : 210 * MS] == 1000 + 450 % 7)
    assert not window[: 10 * MS].any() and not window[210 * MS :].any()
