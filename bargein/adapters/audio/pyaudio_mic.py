"""The microphone: a PortAudio callback stream cut into 20 ms frames at 24 kHz mono.

The audio thread never waits: it resamples, cuts frames, and appends them to a bounded deque
(dropping the oldest when the consumer falls behind, and counting them), then has the event
loop hand them over (``call_soon_threadsafe``; ``deliver``, or ``frames()`` built on it).
Each frame carries the capture time of its first sample, in ms on ``time.monotonic()``'s
clock (the session's, and the speakers' DAC times'):
PortAudio's ``input_buffer_adc_time`` for the stream's first block, then the sample count
since, because the device's samples are contiguous while that estimate jitters with the
scheduling of the audio thread on a busy machine (``device.SampleClock``: taken afresh on an
input overflow or a stamp 100 ms away, and following a drifting device clock 0.3 ms a second
at most, never by a step, which the echo canceller could not follow).

``processor`` is a step each frame passes through on the audio thread before it is queued:
an ``EchoCanceller``'s ``process`` (``bargein.adapters.audio.echo``), so what the microphone
yields is already clean and the session needs to know nothing of it.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable

from bargein.adapters.audio.device import (
    MonotonicClock,
    SampleClock,
    close_stream,
    load_pyaudio,
    open_stream,
    start_stream,
    terminate,
)
from bargein.adapters.audio.protocols import AudioFrame, frames_of
from bargein.adapters.audio.resample import StreamResampler
from bargein.core.pcm import BYTES_PER_MS, RATE


class PyAudioMicrophone:
    """AudioSource on the default (or given) PortAudio input device."""

    def __init__(
        self,
        *,
        frame_ms: int = 20,
        max_frames: int = 50,
        block_frames: int = 480,
        device_index: int | None = None,
        device_rate: int | None = None,
        processor: Callable[[AudioFrame], AudioFrame] | None = None,
    ) -> None:
        self.processor = processor
        self._frame_bytes = frame_ms * BYTES_PER_MS
        self._frames: deque[AudioFrame] = deque()
        self._max_frames = max_frames
        self._lock = threading.Lock()
        self._pending = bytearray()
        self._pending_at_ms = 0.0
        self._monotonic = MonotonicClock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: Callable[[], None] | None = None
        """What ``deliver()`` has the loop call when frames are queued (or the stream closed)."""
        self._closed = False
        self.dropped = 0  # frames discarded because the consumer fell behind
        pyaudio = load_pyaudio()
        self._continue = int(pyaudio.paContinue)
        self._overflow = int(pyaudio.paInputOverflow)
        opener = functools.partial(
            open_stream,
            output=False,
            block_frames=block_frames,
            callback=self._callback,
            device_index=device_index,
            rate=device_rate,
        )
        self._pa, self._stream, self.device_rate = opener()
        self._monotonic.calibrate(self._stream)  # before the first block's stamp anchors the count
        self._blocks = SampleClock(self.device_rate)
        self._resampler = (
            StreamResampler(self.device_rate, RATE) if self.device_rate != RATE else None
        )
        self._pa, self._stream = start_stream(self._pa, self._stream, opener, "input")

    def _callback(
        self, in_data: bytes | None, count: int, time_info: dict[str, float], status: int
    ) -> tuple[None, int]:
        pcm = in_data or b""
        if self._resampler is not None:
            pcm = self._resampler.process(pcm)
        now = time_info["current_time"]
        stamp = (time_info["input_buffer_adc_time"] or now) + self._monotonic.offset(now)
        captured_ms = self._blocks.block(stamp * 1000, count, broke=bool(status & self._overflow))
        if not self._pending:
            self._pending_at_ms = captured_ms
        self._pending += pcm
        ready: list[AudioFrame] = []
        while len(self._pending) >= self._frame_bytes:
            ready.append(AudioFrame(bytes(self._pending[: self._frame_bytes]), self._pending_at_ms))
            del self._pending[: self._frame_bytes]
            self._pending_at_ms += self._frame_bytes * 1000 / (2 * RATE)
        if ready and self.processor is not None:
            ready = [self.processor(frame) for frame in ready]
        if ready:
            with self._lock:
                for frame in ready:
                    if len(self._frames) >= self._max_frames:
                        self._frames.popleft()
                        self.dropped += 1
                    self._frames.append(frame)
            self._notify()
        return None, self._continue

    def _notify(self) -> None:
        loop, drain = self._loop, self._drain
        if loop is not None and drain is not None:
            try:
                loop.call_soon_threadsafe(drain)
            except RuntimeError:  # the loop has closed; nobody is listening any more
                self._loop = None

    async def deliver(self, on_frame: Callable[[AudioFrame], None]) -> None:
        """Hand the queued frames to ``on_frame`` in the loop's call that the audio thread
        asks for; return once closed."""
        loop = asyncio.get_running_loop()
        closed = loop.create_future()
        frames, lock = self._frames, self._lock

        def drain() -> None:
            while True:
                with lock:
                    frame = frames.popleft() if frames else None
                if frame is None:
                    break
                on_frame(frame)
            if self._closed and not closed.done():
                closed.set_result(None)

        self._loop, self._drain = loop, drain
        try:
            drain()  # what was captured before
            await closed
        finally:
            self._drain = None

    def frames(self) -> AsyncIterator[AudioFrame]:
        return frames_of(self.deliver)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        close_stream(self._stream)
        terminate(self._pa)
        self._notify()
