"""The virtual-clock sink and source: deterministic counting, fading and silence."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest

from bargein.adapters.audio.memory import MemorySink, MemorySource, VirtualClock
from bargein.adapters.audio.protocols import (
    AudioFrame,
    AudioSink,
    AudioSource,
    Delivering,
    frames_of,
)
from bargein.errors import AudioDeviceError, AudioError, PcmError

MS = 24


def _tone(ms: int, value: int = 1000) -> bytes:
    return np.full(ms * MS, value, dtype="<i2").tobytes()


def test_sink_and_source_satisfy_the_protocols() -> None:
    clock = VirtualClock()
    assert isinstance(MemorySink(clock), AudioSink)
    assert isinstance(MemorySource(clock), AudioSource)
    assert isinstance(MemorySource(clock), Delivering)


def test_heard_lags_handed_by_the_output_latency() -> None:
    clock = VirtualClock()
    sink = MemorySink(clock, block_frames=240, latency_frames=480)  # 10 ms blocks, 20 ms latency
    sink.play("a", _tone(100))
    assert sink.heard_ms() == {}
    assert not sink.idle
    clock.advance_ms(30)  # blocks pulled at 0..30 ms; the first sounds from 20 ms
    assert sink.heard_ms() == {"a": pytest.approx(10.0)}
    clock.advance_ms(15)
    assert sink.heard_ms() == {"a": pytest.approx(25.0)}
    clock.advance_ms(200)
    assert sink.heard_ms() == {"a": pytest.approx(100.0)}
    assert sink.idle


def test_the_sink_foresees_when_its_audio_ends() -> None:
    clock = VirtualClock()
    sink = MemorySink(clock, block_frames=240, latency_frames=480)
    assert sink.ends_in_s() == 0.0
    sink.play("a", _tone(100))  # pulled from 0 ms on, each block sounding 20 ms later
    assert sink.ends_in_s() == pytest.approx(0.120)
    clock.advance_ms(30)  # pulled up to the block sounding 50-60; 60 ms queued
    assert sink.ends_in_s() == pytest.approx(0.090)
    sink.play("b", _tone(50))
    assert sink.ends_in_s() == pytest.approx(0.140)
    clock.advance_ms(140)
    assert sink.idle and sink.ends_in_s() == 0.0


def test_flush_counts_handed_blocks_and_the_fade_then_goes_silent() -> None:
    clock = VirtualClock()
    sink = MemorySink(clock, block_frames=240, latency_frames=480)
    sink.play("a", _tone(50))
    sink.play("b", _tone(200, value=2000))
    clock.advance_ms(60)  # pulled 7 blocks (70 ms): all of a, 20 ms of b; 40 ms heard
    report = sink.flush()
    assert report.heard_ms == {"a": pytest.approx(50.0), "b": pytest.approx(25.0)}
    # The handed blocks end at 70 + 20 ms latency = 90 ms, then 5 ms of fade: silent at 95 ms.
    assert report.silent_after_ms == pytest.approx(35.0)
    clock.advance_ms(100)
    assert sink.heard_ms() == report.heard_ms
    assert sink.idle
    out = np.frombuffer(sink.output(), dtype="<i2")
    sounding = np.flatnonzero(out)
    assert sounding[0] == 20 * MS
    assert 94 * MS < sounding[-1] < 95 * MS  # nothing after the fade
    fade = out[90 * MS : 95 * MS]
    assert fade[0] < 2000 and np.all(np.diff(fade) <= 0) and fade[-1] < 2000 / 100


def test_output_is_aligned_to_the_clock_and_silent_where_nothing_played() -> None:
    clock = VirtualClock()
    sink = MemorySink(clock, block_frames=240, latency_frames=0)
    clock.advance_ms(100)
    sink.play("a", _tone(10, value=7))
    clock.advance_ms(100)
    out = np.frombuffer(sink.output(), dtype="<i2")
    assert len(out) == 200 * MS
    # Pulled at the first block boundary after play (100 ms, already pulled) -> 110 ms.
    assert np.flatnonzero(out).tolist() == list(range(110 * MS, 120 * MS))


async def test_source_yields_frames_as_the_clock_passes_them_then_silence() -> None:
    clock = VirtualClock()
    pcm = np.arange(30 * MS, dtype="<i2").tobytes()
    source = MemorySource(clock, pcm)
    frames = source.frames()
    pending = asyncio.ensure_future(anext(frames))
    await asyncio.sleep(0)
    assert not pending.done()  # nothing captured yet
    clock.advance_ms(20)
    first = await asyncio.wait_for(pending, 60)  # at once; generous for a busy machine
    assert first.captured_at_ms == 0.0 and first.pcm == pcm[: 20 * MS * 2]
    clock.advance_ms(40)
    second = await anext(frames)
    third = await anext(frames)
    assert second.captured_at_ms == 20.0
    assert second.pcm[: 10 * MS * 2] == pcm[20 * MS * 2 :]
    assert second.pcm[10 * MS * 2 :] == bytes(10 * MS * 2)
    assert third.pcm == bytes(20 * MS * 2)
    source.close()
    with pytest.raises(StopAsyncIteration):
        await anext(frames)


async def test_source_delivers_each_frame_in_the_tick_that_passes_it() -> None:
    """``deliver``: no loop turn between the clock's tick and the frame's handling."""
    clock = VirtualClock()
    clock.advance_ms(20)  # the source's origin: where the clock is when it is made
    source = MemorySource(clock, np.arange(60 * MS, dtype="<i2").tobytes())
    clock.advance_ms(20)  # one frame passed before delivery starts
    got: list[float] = []
    delivering = asyncio.ensure_future(source.deliver(lambda f: got.append(f.captured_at_ms)))
    await asyncio.sleep(0)
    assert got == [20.0], "the frame that had passed, handed over as delivery starts"
    clock.advance_ms(20)
    assert got == [20.0, 40.0]
    clock.advance_ms(50)
    assert got == [20.0, 40.0, 60.0, 80.0], "two frames in one tick; the next not whole yet"
    source.close()
    await asyncio.wait_for(delivering, 60)
    clock.advance_ms(100)
    assert got == [20.0, 40.0, 60.0, 80.0], "nothing after close"


async def test_frames_of_yields_what_deliver_hands_over_and_raises_its_failure() -> None:
    async def deliver(on_frame: Callable[[AudioFrame], None]) -> None:
        on_frame(AudioFrame(b"a", 0.0))  # before its first wait
        await asyncio.sleep(0)
        on_frame(AudioFrame(b"b", 20.0))
        on_frame(AudioFrame(b"c", 40.0))
        await asyncio.sleep(0)
        raise AudioDeviceError("the device went away")

    frames = frames_of(deliver)
    assert [(await anext(frames)).pcm for _ in range(3)] == [b"a", b"b", b"c"]
    with pytest.raises(AudioDeviceError, match="went away"):
        await anext(frames)


async def test_frames_of_ends_when_deliver_returns() -> None:
    async def deliver(on_frame: Callable[[AudioFrame], None]) -> None:
        on_frame(AudioFrame(b"a", 0.0))
        await asyncio.sleep(0)

    assert [f.pcm async for f in frames_of(deliver)] == [b"a"]


def test_bad_input_is_a_typed_error() -> None:
    clock = VirtualClock()
    with pytest.raises(AudioError, match="backwards"):
        clock.advance_samples(-1)
    with pytest.raises(PcmError, match="odd length"):
        MemorySink(clock).play("a", b"\x00")
    with pytest.raises(AudioError, match="block_frames"):
        MemorySink(clock, block_frames=0)
