"""In-memory audio source and sink on a virtual clock, for deterministic tests without devices.

The clock counts samples at 24 kHz and moves only when told to (by a test, or by the WAV source
as it reads its file). The sink behaves like a device: it pulls fixed blocks from its queue on
that clock, each block sounding ``latency_frames`` after it is pulled, and it fades and counts
on flush exactly as the pyaudio speaker does, so figures from either are comparable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping

import numpy as np
import numpy.typing as npt

from bargein.adapters.audio.playout import Playout, to_ms
from bargein.adapters.audio.protocols import AudioFrame, FlushReport
from bargein.core.pcm import RATE, pcm16_samples
from bargein.errors import AudioError


class VirtualClock:
    """Capture time in samples at 24 kHz, shared by a source and the sink that plays against it.

    Advance it from the event loop's thread: listeners (sinks, sources) run synchronously.
    """

    def __init__(self) -> None:
        self._samples = 0
        self._listeners: list[Callable[[int], None]] = []

    @property
    def samples(self) -> int:
        return self._samples

    @property
    def ms(self) -> float:
        return self._samples * 1000.0 / RATE

    def advance_ms(self, ms: float) -> None:
        self.advance_samples(round(ms * RATE / 1000))

    def advance_samples(self, n: int) -> None:
        if n < 0:
            raise AudioError(f"a clock cannot go backwards ({n} samples)")
        self._samples += n
        for listener in list(self._listeners):
            listener(self._samples)

    def subscribe(self, listener: Callable[[int], None]) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[int], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)


class MemorySink:
    """An AudioSink whose device is simulated on a VirtualClock; ``output()`` is what sounded."""

    def __init__(
        self, clock: VirtualClock, *, block_frames: int = 240, latency_frames: int = 480
    ) -> None:
        if block_frames <= 0 or latency_frames < 0:
            raise AudioError("block_frames must be positive and latency_frames not negative")
        self._clock = clock
        self._block = block_frames
        self._latency = latency_frames
        self._playout = Playout(RATE)
        self._next_pull = clock.samples
        self._sounded: list[tuple[int, npt.NDArray[np.int16]]] = []  # (start sample, block)
        self._closed = False
        clock.subscribe(self._tick)

    def _tick(self, now: int) -> None:
        while self._next_pull <= now:
            start = self._next_pull + self._latency
            block = self._playout.pull(self._block, starts_at=start / RATE)
            if block.any():
                self._sounded.append((start, block))
            self._next_pull += self._block

    def play(self, item_id: str, pcm: bytes) -> None:
        if not self._closed:
            self._playout.push(item_id, pcm16_samples(pcm))

    def flush(self) -> FlushReport:
        final, silent_after_s = self._playout.flush(self._clock.samples / RATE)
        return FlushReport(heard_ms=to_ms(final, RATE), silent_after_ms=silent_after_s * 1000)

    def heard_ms(self) -> Mapping[str, float]:
        return to_ms(self._playout.heard_samples(self._clock.samples / RATE), RATE)

    @property
    def idle(self) -> bool:
        return self._playout.idle(self._clock.samples / RATE)

    def output(self) -> bytes:
        """What sounded, aligned to the clock: sample n is what played at clock sample n."""
        end = self._clock.samples
        out = np.zeros(end, dtype=np.int16)
        for start, block in self._sounded:
            if start < end:
                n = min(len(block), end - start)
                out[start : start + n] = block[:n]
        return out.astype("<i2").tobytes()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._clock.unsubscribe(self._tick)


class MemorySource:
    """An AudioSource that yields ``pcm`` in frames as the clock passes them, then silence.

    A frame is yielded once the clock has reached its end (it has been fully "captured").
    """

    def __init__(self, clock: VirtualClock, pcm: bytes = b"", *, frame_ms: int = 20) -> None:
        if frame_ms <= 0:
            raise AudioError(f"frame_ms must be positive, got {frame_ms}")
        self._clock = clock
        self._samples = pcm16_samples(pcm)
        self._frame = frame_ms * RATE // 1000
        self._origin = clock.samples
        self._closed = False
        self._wake: asyncio.Event | None = None

    async def frames(self) -> AsyncIterator[AudioFrame]:
        wake = self._wake = asyncio.Event()

        def on_tick(_: int) -> None:
            wake.set()

        self._clock.subscribe(on_tick)
        try:
            index = 0
            while not self._closed:
                start = index * self._frame
                if self._origin + start + self._frame > self._clock.samples:
                    wake.clear()
                    await wake.wait()
                    continue
                chunk = self._samples[start : start + self._frame]
                frame = np.zeros(self._frame, dtype=np.int16)
                frame[: len(chunk)] = chunk
                yield AudioFrame(
                    frame.astype("<i2").tobytes(), (self._origin + start) * 1000.0 / RATE
                )
                index += 1
        finally:
            self._clock.unsubscribe(on_tick)

    def close(self) -> None:
        self._closed = True
        if self._wake is not None:
            self._wake.set()
