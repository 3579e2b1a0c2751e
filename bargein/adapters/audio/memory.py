"""In-memory audio source and sink on a virtual clock, for deterministic tests without devices.

The clock counts samples at 24 kHz and moves only when told to (by a test, or by the WAV source
as it reads its file). The sink behaves like a device: it pulls fixed blocks from its queue on
that clock (the blocks a tick of the clock makes due, as one pull), each block sounding
``latency_frames`` after it is pulled, and it fades and counts on flush exactly as the pyaudio
speaker does, so figures from either are comparable.

Memory: by default the sink keeps every block it played, so ``output()`` can return the whole
conversation: about 48 KB per second of assistant audio (plus ~150 bytes of bookkeeping per
pull), some 90 MB per 30 minutes of continuous reply. Pass ``keep_ms`` to keep only
the last ``keep_ms`` of output (``output()`` then starts at ``output_start``); ``WavSink``
streams to its file instead and keeps nothing. A tick with nothing queued costs no numpy work.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping

import numpy as np
import numpy.typing as npt

from bargein.adapters.audio.playout import Playout, to_ms
from bargein.adapters.audio.protocols import AudioFrame, FlushReport, frames_of
from bargein.core.pcm import RATE, SAMPLE_BYTES, check_pcm16, pcm16_samples
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
    """An AudioSink whose device is simulated on a VirtualClock; ``output()`` is what sounded.

    ``keep_ms=None`` (the default) keeps all that sounded (see the module's note on memory);
    a number keeps the last ``keep_ms`` before the clock, and ``output()`` begins at clock
    sample ``output_start``.
    """

    def __init__(
        self,
        clock: VirtualClock,
        *,
        block_frames: int = 240,
        latency_frames: int = 480,
        keep_ms: float | None = None,
    ) -> None:
        if block_frames <= 0 or latency_frames < 0:
            raise AudioError("block_frames must be positive and latency_frames not negative")
        if keep_ms is not None and keep_ms < 0:
            raise AudioError(f"keep_ms cannot be negative, got {keep_ms}")
        self._clock = clock
        self._block = block_frames
        self._latency = latency_frames
        self._keep = None if keep_ms is None else round(keep_ms * RATE / 1000)
        self._playout = Playout(RATE)
        self._next_pull = clock.samples
        self._sounded: deque[tuple[int, npt.NDArray[np.int16]]] = deque()  # (start, block)
        self._start = 0  # clock sample where output() begins
        self._closed = False
        clock.subscribe(self._tick)

    @property
    def output_start(self) -> int:
        """The clock sample ``output()``'s first sample sounded at (0 unless ``keep_ms``)."""
        return self._start

    def _tick(self, now: int) -> None:
        if self._next_pull <= now:
            # the blocks due by now, pulled as one: the same samples at the same times as
            # one pull per block (heard counts are per sample, and nothing can duck or flush
            # between pulls made in one tick), for one pull's bookkeeping
            frames = ((now - self._next_pull) // self._block + 1) * self._block
            if self._playout.has_queued():  # else an underrun: silence, nothing to record
                start = self._next_pull + self._latency
                self._sounded.append((start, self._playout.pull(frames, starts_at=start / RATE)))
            self._next_pull += frames
        if self._keep is not None:
            self._retire(now - self._keep)

    def _retire(self, before: int) -> None:
        """Let go of the blocks that ended sounding before clock sample ``before``."""
        sounded = self._sounded
        while sounded and sounded[0][0] + len(sounded[0][1]) <= before:
            self._retired(*sounded.popleft())
        self._start = max(self._start, before)

    def _retired(self, start: int, block: npt.NDArray[np.int16]) -> None:
        """A block leaves memory (``WavSink`` writes it out)."""

    def play(self, item_id: str, pcm: bytes) -> None:
        if not self._closed:
            self._playout.push(item_id, pcm16_samples(pcm))

    def duck(self, gain: float) -> None:
        """Play from the next pulled block on at ``gain`` (1.0 restores), ramped over 5 ms;
        blocks already pulled sound as they were (``latency_frames``, like a device's
        buffer). Queued audio and heard counts are unchanged; a flush ends the duck."""
        self._playout.duck(gain)

    def flush(self) -> FlushReport:
        final, silent_after_s = self._playout.flush(self._clock.samples / RATE)
        return FlushReport(heard_ms=to_ms(final, RATE), silent_after_ms=silent_after_s * 1000)

    def heard_ms(self) -> Mapping[str, float]:
        return to_ms(self._playout.heard_samples(self._clock.samples / RATE), RATE)

    @property
    def idle(self) -> bool:
        return self._playout.idle(self._clock.samples / RATE)

    def ends_in_s(self) -> float:
        """Seconds until all audio given so far has sounded (the next pull's block sounds
        ``latency_frames`` after it), if no more comes."""
        now = self._clock.samples
        return self._playout.ends_in(now / RATE, (max(self._next_pull, now) + self._latency) / RATE)

    def output(self) -> bytes:
        """What sounded, aligned to the clock: sample n is what played at clock sample
        ``output_start + n`` (``output_start`` is 0 unless ``keep_ms`` was given)."""
        return self._render(self._start, self._clock.samples)

    def _render(self, origin: int, end: int) -> bytes:
        """The kept blocks over clock samples [origin, end), silence where none sounded."""
        out = np.zeros(max(0, end - origin), dtype="<i2")
        for start, block in self._sounded:
            lo, hi = max(start, origin), min(start + len(block), end)
            if lo < hi:
                out[lo - origin : hi - origin] = block[lo - start : hi - start]
        return out.tobytes()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._clock.unsubscribe(self._tick)


class MemorySource:
    """An AudioSource that delivers ``pcm`` in frames as the clock passes them, then silence.

    A frame is delivered (or yielded) once the clock has reached its end (it has been fully
    "captured"), in the tick that reached it.
    """

    def __init__(self, clock: VirtualClock, pcm: bytes = b"", *, frame_ms: int = 20) -> None:
        if frame_ms <= 0:
            raise AudioError(f"frame_ms must be positive, got {frame_ms}")
        check_pcm16(pcm)
        self._clock = clock
        self._pcm = bytes(pcm)  # frames are slices of it: no numpy work per frame
        self._frame = frame_ms * RATE // 1000
        self._origin = clock.samples
        self._closed = False
        self._closing: list[asyncio.Future[None]] = []
        """What each ``deliver()`` awaits until ``close()``."""

    async def deliver(self, on_frame: Callable[[AudioFrame], None]) -> None:
        """Hand each frame to ``on_frame`` in the clock's tick that passes its end (the
        frames it has passed already, at once); return once closed."""
        clock, pcm, frame = self._clock, self._pcm, self._frame
        size = frame * SAMPLE_BYTES
        index = 0

        def on_tick(now: int) -> None:
            nonlocal index
            while not self._closed and self._origin + (index + 1) * frame <= now:
                start = index * frame
                chunk = pcm[start * SAMPLE_BYTES : start * SAMPLE_BYTES + size]
                if len(chunk) < size:  # the pcm is over: silence from there on
                    chunk += bytes(size - len(chunk))
                index += 1
                on_frame(AudioFrame(chunk, (self._origin + start) * 1000.0 / RATE))

        closing = asyncio.get_running_loop().create_future()
        self._closing.append(closing)
        clock.subscribe(on_tick)
        try:
            on_tick(clock.samples)
            if not self._closed:
                await closing
        finally:
            clock.unsubscribe(on_tick)
            self._closing.remove(closing)

    def frames(self) -> AsyncIterator[AudioFrame]:
        return frames_of(self.deliver)

    def close(self) -> None:
        self._closed = True
        for closing in self._closing:
            if not closing.done():
                closing.set_result(None)
