"""Ducking: the level drops from the next block on (a ramp, no click), comes back on 1.0, and
neither the queued audio nor what counts as heard moves.

The in-memory sink is judged sample by sample against a twin that was not ducked, on one
virtual clock. The device speakers are judged on the PulseAudio null sink's monitor: the
item is a steady tone, its level is read in 5 ms windows of the recording, and "when the duck
was asked" is the position the speaker said was sounding then (no wall clock in a verdict).
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from bargein.adapters.audio.memory import MemorySink, VirtualClock
from bargein.adapters.audio.playout import FADE_MS
from bargein.adapters.audio.protocols import AudioSink, Duckable
from bargein.adapters.audio.pulse_speaker import PulseSpeaker
from bargein.adapters.audio.pyaudio_speaker import PyAudioSpeaker
from bargein.errors import AudioError
from tests.support.pulse_env import DEADLINE_S, MS, SPEAKER, sounding_ms, wait_until

BLOCK = 240  # 10 ms
LATENCY = 480
RAMP = round(FADE_MS * MS)
WINDOW = 5 * MS


def tone(ms: int, amplitude: float = 8000.0, hz: float = 200.0) -> bytes:
    """A steady sine: its level in any 5 ms window is the same, so a duck shows plainly."""
    t = np.arange(ms * MS) / (MS * 1000)
    return bytes(np.rint(amplitude * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes())


def samples(pcm: bytes) -> npt.NDArray[np.int16]:
    return np.frombuffer(pcm, dtype="<i2")


def max_step(x: npt.NDArray[np.int16]) -> int:
    """The largest sample-to-sample jump: a click is a jump far above the signal's own."""
    return int(np.abs(np.diff(x.astype(np.int32))).max())


def test_every_speaker_is_duckable() -> None:
    assert issubclass(MemorySink, Duckable)
    assert issubclass(PulseSpeaker, Duckable)
    assert issubclass(PyAudioSpeaker, Duckable)


def _pair() -> tuple[VirtualClock, MemorySink, MemorySink]:
    clock = VirtualClock()
    ducked = MemorySink(clock, block_frames=BLOCK, latency_frames=LATENCY)
    plain = MemorySink(clock, block_frames=BLOCK, latency_frames=LATENCY)
    return clock, ducked, plain


def test_memory_duck_starts_at_the_next_block_ramped_and_restores() -> None:
    clock, ducked, plain = _pair()
    item = tone(1200)
    for sink in (ducked, plain):
        sink.play("a", item)
    clock.advance_ms(300)  # the block at 300 ms has been pulled
    ducked.duck(0.25)
    assert ducked.heard_ms() == plain.heard_ms()
    clock.advance_ms(400)
    ducked.duck(1.0)
    assert ducked.heard_ms() == plain.heard_ms()
    clock.advance_ms(800)
    out, ref = samples(ducked.output()), samples(plain.output())
    assert ducked.heard_ms() == plain.heard_ms() == {"a": 1200.0}

    onset = 300 * MS + BLOCK + LATENCY  # the next pull after the call, sounding after latency
    assert np.array_equal(out[:onset], ref[:onset])
    ramped = out[onset : onset + RAMP].astype(float)
    assert np.all(np.abs(ramped) <= np.abs(ref[onset : onset + RAMP]) + 1)
    low = slice(onset + RAMP, 700 * MS + LATENCY)
    assert np.abs(out[low] - np.rint(ref[low] * 0.25)).max() <= 1
    back = 700 * MS + BLOCK + LATENCY  # restored from the next pull after duck(1.0)
    assert np.array_equal(out[back + RAMP : 1200 * MS], ref[back + RAMP : 1200 * MS])
    for at in (onset, back):  # ramps, not steps: no jump beyond the tone's own
        assert max_step(out[at - WINDOW : at + RAMP + WINDOW]) <= 1.2 * max_step(ref)


def test_memory_duck_without_a_ramp_would_click() -> None:
    """The click measure can fail: a bare step to 0.25 makes a jump far above the tone's own."""
    ref = samples(tone(100))
    hit = int(np.argmax(np.abs(ref[1180:1320]))) + 1180  # step where the tone is loud
    stepped = ref.astype(float)
    stepped[hit:] *= 0.25
    assert max_step(np.rint(stepped).astype(np.int16)) > 5 * max_step(ref)


def test_memory_flush_while_ducked_fades_from_the_ducked_level_and_ends_the_duck() -> None:
    clock, ducked, plain = _pair()
    for sink in (ducked, plain):
        sink.play("a", tone(1000))
    clock.advance_ms(200)
    ducked.duck(0.25)
    clock.advance_ms(200)
    assert ducked.flush().heard_ms == plain.flush().heard_ms
    clock.advance_ms(100)
    for sink in (ducked, plain):
        sink.play("b", tone(300))
    clock.advance_ms(600)
    out, ref = samples(ducked.output()), samples(plain.output())
    fade_at = 400 * MS + BLOCK + LATENCY  # the fade is the next block after the flush
    assert np.abs(out[fade_at : fade_at + RAMP]).max() <= 0.25 * 8000 + 1
    assert np.array_equal(out[fade_at + RAMP + 1 :], ref[fade_at + RAMP + 1 :])  # "b" at full
    assert ducked.heard_ms() == plain.heard_ms()


def test_a_duck_outside_zero_to_one_is_refused() -> None:
    clock = VirtualClock()
    sink = MemorySink(clock)
    with pytest.raises(AudioError):
        sink.duck(1.5)
    with pytest.raises(AudioError):
        sink.duck(-0.1)


# -- the device speakers -------------------------------------------------------------------------


class _Monitor:
    """The speaker sink's monitor, recorded with parec until ``stop()``."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [
                *("parec", "--latency-msec=5", "--format=s16le", "--rate=24000"),
                *("--channels=1", "--raw", "-d", f"{SPEAKER}.monitor"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.data = bytearray()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while chunk := os.read(fd, 4800):
            self.data += chunk

    def levels_after_sound(self, quiet_ms: int) -> bool:
        """The recording holds sound followed by ``quiet_ms`` of silence."""
        rec = samples(bytes(self.data[: len(self.data) // 2 * 2]))
        if len(rec) < quiet_ms * MS or np.abs(rec).max() <= 64:
            return False
        return bool(np.abs(rec[-quiet_ms * MS :]).max() <= 64)

    def stop(self) -> npt.NDArray[np.int16]:
        self._proc.terminate()
        self._proc.wait(timeout=DEADLINE_S)
        self._thread.join(timeout=DEADLINE_S)
        return samples(bytes(self.data[: len(self.data) // 2 * 2]))


def _window_levels(x: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
    n = len(x) // WINDOW * WINDOW
    squares = (x[:n].astype(np.float64) ** 2).reshape(-1, WINDOW)
    return np.asarray(np.sqrt(squares.mean(axis=1)), dtype=np.float64)


Span = tuple[float, float]


def _duck_on_device(sink: AudioSink, duck: Callable[[float], None]) -> tuple[
    npt.NDArray[np.int16], Span, Span
]:
    """Play a 1.5 s tone, duck to 0.25 once 400 ms were heard and restore at 900 ms; return
    the item's stretch of the recording and the ms heard just before and just after each
    duck was asked (the call lies between: a busy machine may pause the test in between)."""
    monitor = _Monitor()
    wait_until(lambda: len(monitor.data) > 0, message="waiting for the monitor to record")
    sink.play("a", tone(1500))
    wait_until(lambda: sink.heard_ms().get("a", 0) >= 400, message="waiting for 400 ms heard")
    before = sink.heard_ms()["a"]
    duck(0.25)
    down_at = (before, sink.heard_ms()["a"])
    wait_until(lambda: sink.heard_ms().get("a", 0) >= 900, message="waiting for 900 ms heard")
    before = sink.heard_ms()["a"]
    duck(1.0)
    up_at = (before, sink.heard_ms()["a"])
    wait_until(lambda: sink.idle, message="waiting for the tone to end")
    assert sink.heard_ms() == {"a": 1500.0}  # unchanged by the duck
    wait_until(lambda: monitor.levels_after_sound(100),
               message="waiting for the tone's end on the monitor")
    rec = monitor.stop()
    # nothing skipped, nothing repeated: counted in sound, so that an underrun's silence
    # (a starved machine) lengthens the span but adds nothing; the item is judged on its
    # sound alone, where the ms heard place it
    assert abs(sounding_ms(rec) - 1500) <= 1
    return _sound_only(rec), down_at, up_at


def _sound_only(x: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """``x`` without its silent milliseconds (before, after, and an underrun's in between)."""
    n = len(x) // MS * MS
    ms = x[:n].reshape(-1, MS)
    kept: npt.NDArray[np.int16] = ms[np.abs(ms.astype(np.int32)).max(axis=1) > 64].reshape(-1)
    return kept


def _judge(item: npt.NDArray[np.int16], down_at: Span, up_at: Span, reach_ms: float,
           late_writes: int = 0) -> None:
    """The level is down to a quarter within ``reach_ms`` of the position sounding when the duck
    was asked, back to full within ``reach_ms`` of the restore, with no click at either
    (unless the speaker counted a write the server had read past: a stalled process)."""
    levels = _window_levels(item) / (8000 / np.sqrt(2))
    low = np.flatnonzero(levels < 0.3)
    assert len(low), "the tone was never ducked"
    down_ms, up_ms = low[0] * 5, (low[-1] + 1) * 5
    assert down_at[0] <= down_ms <= down_at[1] + reach_ms, (down_at, down_ms)
    assert up_at[0] <= up_ms <= up_at[1] + reach_ms, (up_at, up_ms)
    assert np.all(np.abs(levels[(down_ms + 10) // 5 : (up_ms - 10) // 5] - 0.25) < 0.03)
    steps = np.abs(np.diff(item.astype(np.int32)))
    worst = int(np.argmax(steps))
    # the tone's own largest step, and what a 5 ms ramp of gain adds to it (~12 %)
    assert late_writes or steps[worst] <= 1.5 * max_step(samples(tone(100))), (
        f"a click of {steps[worst]} at {worst / MS:.1f} ms (ducked at {down_ms}, up at {up_ms})"
    )


@pytest.mark.device
@pytest.mark.usefixtures("pulse")
def test_pulse_speaker_ducks_within_one_block() -> None:
    sink = PulseSpeaker(block_frames=BLOCK)
    try:
        item, down_at, up_at = _duck_on_device(sink, sink.duck)
    finally:
        sink.close()
    # the cut point is within the block, the ramp within 5 ms, levels are 5 ms windows
    _judge(item, down_at, up_at, reach_ms=10 + FADE_MS + 5, late_writes=sink.late_cuts)


@pytest.mark.device
@pytest.mark.usefixtures("pulse")
def test_pyaudio_speaker_ducks_from_its_next_block() -> None:
    sink = PyAudioSpeaker(block_frames=BLOCK)
    try:
        item, down_at, up_at = _duck_on_device(sink, sink.duck)
        latency = sink.output_latency_ms
    finally:
        sink.close()
    # what PortAudio holds (its latency) sounds first, then the next block (a device period)
    # ramps; levels are 5 ms windows
    period_ms = sink.period_frames / MS
    _judge(item, down_at, up_at, reach_ms=latency + period_ms + FADE_MS + 5)
