"""The speaker: a PortAudio callback stream that knows what has actually left the device.

The callback pulls one block at a time from the shared Playout and stamps it with PortAudio's
``output_buffer_dac_time``; ``heard_ms()`` compares those stamps with ``stream.get_time()``,
so audio still waiting in the device's buffers is not counted as heard. The stream runs from
construction to close (playing silence when idle), because a newly started stream drops its
first 5-10 ms. ``flush()`` never touches the stream: it swaps the queue for a 5 ms fade, which
the next callback plays, and reports what will have sounded by then. Audio already inside the
device (PortAudio keeps two blocks, PulseAudio ~10 ms more) still plays out before the fade;
``FlushReport.silent_after_ms`` says when the output is silent.

This is the portable path (any PortAudio host). On a PulseAudio or PipeWire-pulse server,
``PulseSpeaker`` stops within one block and never runs dry under load; ``open_speaker()``
chooses it there. ``underruns`` counts the callbacks PortAudio flagged as late
(``paOutputUnderflow``) while audio was queued: dropouts the listener heard.

``duck(gain)`` lowers the level from the next callback's block on (a 5 ms ramp); like a flush
it cannot reach the blocks already inside the device. ``tap_reference(tap)`` hands every
block the callback writes, silence included, at 24 kHz with its DAC time on
``time.monotonic()`` in ms: the echo canceller's reference.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np

from bargein.adapters.audio.device import (
    MonotonicClock,
    SampleClock,
    load_pyaudio,
    open_stream,
    start_stream,
)
from bargein.adapters.audio.echo import ReferenceTap
from bargein.adapters.audio.playout import Playout, to_ms
from bargein.adapters.audio.protocols import FlushReport
from bargein.adapters.audio.resample import StreamResampler
from bargein.core.pcm import RATE, pcm16_samples
from bargein.errors import AudioDeviceError


class PyAudioSpeaker:
    """AudioSink on the default (or given) PortAudio output device.

    ``block_frames`` is the device block in 24 kHz frames (240, 480 or 960 = 10, 20, 40 ms):
    smaller blocks stop sooner and cost more wake-ups. ``device_rate`` forces the device rate
    (otherwise 24 kHz when the device takes it, else its default rate, resampled to).
    """

    def __init__(
        self,
        *,
        block_frames: int = 240,
        device_index: int | None = None,
        device_rate: int | None = None,
    ) -> None:
        if block_frames <= 0:
            raise AudioDeviceError(f"block_frames must be positive, got {block_frames}")
        opener = functools.partial(
            open_stream,
            output=True,
            block_frames=block_frames,
            callback=self._callback,
            device_index=device_index,
            rate=device_rate,
        )
        self._pa, self._stream, self.device_rate = opener()
        self.block_frames = block_frames
        self._playout = Playout(self.device_rate)
        self._resamplers: dict[str, StreamResampler] = {}
        self._latency = float(self._stream.get_output_latency())
        pyaudio = load_pyaudio()
        self._continue = int(pyaudio.paContinue)
        self._underflow_flag = int(pyaudio.paOutputUnderflow)
        self._underruns = 0
        self._closed_at: float | None = None
        self._tap: ReferenceTap | None = None
        self._tap_resampler: StreamResampler | None = None
        self._monotonic = MonotonicClock()
        self._blocks = SampleClock(self.device_rate)
        self._pa, self._stream = start_stream(self._pa, self._stream, opener, "output")

    def _callback(
        self, _in: bytes | None, frame_count: int, time_info: dict[str, float], status: int
    ) -> tuple[bytes, int]:
        underflow = bool(status & self._underflow_flag)
        if underflow and self._playout.queued_samples():
            self._underruns += 1
        starts_at = time_info["output_buffer_dac_time"] or (
            time_info["current_time"] + self._latency
        )
        block = self._playout.pull(frame_count, starts_at)
        tap = self._tap
        if tap is not None:
            dac_s = starts_at + self._monotonic.offset(time_info["current_time"])
            dac_ms = self._blocks.block(dac_s * 1000, frame_count, broke=underflow)
            written = block
            if self._tap_resampler is not None:
                written = np.frombuffer(self._tap_resampler.process(block.tobytes()), "<i2")
            tap(written, dac_ms)
        return block.tobytes(), self._continue

    def tap_reference(self, tap: ReferenceTap | None) -> None:
        """Hand each block written from now on to ``tap(samples_24k, dac_time_ms)``
        (``None`` stops): an ``EchoCanceller``'s reference."""
        if tap is not None and self.device_rate != RATE:
            self._tap_resampler = StreamResampler(self.device_rate, RATE)
        self._tap = tap

    def _now(self) -> float:
        return self._closed_at if self._closed_at is not None else float(self._stream.get_time())

    @property
    def output_latency_ms(self) -> float:
        """PortAudio's estimate of the time from a callback's block to the listener."""
        return self._latency * 1000

    @property
    def underruns(self) -> int:
        """Callbacks PortAudio flagged as late while audio was waiting (dropouts heard)."""
        return self._underruns

    def play(self, item_id: str, pcm: bytes) -> None:
        if self._closed_at is not None:
            return
        if self.device_rate != RATE:
            resampler = self._resamplers.setdefault(
                item_id, StreamResampler(RATE, self.device_rate)
            )
            pcm = resampler.process(pcm)
        self._playout.push(item_id, pcm16_samples(pcm))

    def duck(self, gain: float) -> None:
        """Play from the next block on at ``gain`` (1.0 restores), ramped over 5 ms. Queued
        audio and heard counts are unchanged; a flush ends the duck."""
        self._playout.duck(gain)

    def flush(self) -> FlushReport:
        self._resamplers.clear()
        final, silent_after_s = self._playout.flush(self._now())
        return FlushReport(
            heard_ms=to_ms(final, self.device_rate), silent_after_ms=silent_after_s * 1000
        )

    def heard_ms(self) -> Mapping[str, float]:
        return to_ms(self._playout.heard_samples(self._now()), self.device_rate)

    @property
    def idle(self) -> bool:
        return self._playout.idle(self._now())

    def close(self) -> None:
        """Stop at once (PortAudio aborts on close; buffered audio is dropped, not counted)."""
        if self._closed_at is not None:
            return
        self._closed_at = float(self._stream.get_time())
        self._stream.close()
        self._pa.terminate()
