"""The speaker on any PortAudio host: a deep device buffer that a flush drops by aborting.

Why this mechanism (measured on PortAudio 19.6 through ALSA's pulse plugin into a PulseAudio
null sink, judged by the sink's monitor): PortAudio cannot take back what it has handed on. A
fade written by the next callback sounds only after everything the device holds (two periods
and the server's buffer: ≈30 ms at 240-frame blocks), and a buffer small enough to stop soon
is one a busy machine runs dry (6-200 dropouts a minute of reply beside two CPU hogs). So:

- **A deep buffer, no dropouts.** The device period is at least ``buffer_ms / 2`` (PortAudio
  keeps two; 50 ms by default): the audio thread can be late by that much without a dropout.
  pyaudio does not pass a suggested latency, so the period is what sets the depth.
- **A reply starts at once all the same.** Audio handed to a running stream sounds after
  everything it holds, silence included; so once audio that came to an idle speaker fills two
  periods, the worker aborts the idle stream and starts the spare, whose first block sounds at
  once (what the idle stream had already taken goes back to the queue: ``Playout.rewind``);
  not when a stream has started since the audio came, as after a flush: it took that first.
- **A flush aborts the stream** (``Pa_AbortStream``), which drops what PortAudio and the
  server hold: the sound stops where the device was, 1.5-2.5 ms after the call (its cost on
  the caller's thread; ``stop_stream()`` waits for a period instead, and sound goes on
  meanwhile). A second stream, opened beforehand, is started in a worker thread, so the next
  reply needs no wait to open one. The aborted stream is closed by the worker: once it runs,
  the worker is the one thread that opens and closes this speaker's streams, under
  ``PORTAUDIO_LOCK`` (PortAudio's list of open streams has no lock of its own), and a flush
  never waits behind an open.
- **A flush never waits for a start or an open.** Starting a stream (and opening the next
  spare) can take tens of ms on a busy machine, or a second and retries when PortAudio's
  start times out; the worker does both without the lock a flush takes, which is held only
  to swap streams and abort one (≈2 ms). A flush that lands while the worker is starting a
  stream has nothing sounding to abort: it drops the queue and counts what was heard at
  once, and the worker aborts that stream as soon as its start returns (what it took after
  the flush goes back to the queue), then starts another. An abort that fails is logged
  (``speaker_abort_failed``) and the speaker goes on. ``close()`` aborts the live stream and
  leaves the rest to the worker, waiting for it 2 s at most: a worker stuck in a wedged
  device is left behind (a daemon thread) with a warning (``speaker_close_stuck``).
- **No fade.** The fade a flush would play cannot reach the listener: the cut is a hard one
  at the device's position, and a newly started stream loses its first 3.5-4.5 ms (measured:
  of a fade played first, only its last 10-25 samples sounded, 4-6 ms after the cut). So a
  flush here is a cut where the audio was, with the step that makes (the bench's
  ``cut/speech`` column); ``PulseSpeaker`` is the path that stops without a click. A started
  stream's first 10 ms are silence, so what a reply plays is not what gets lost.
- **Heard-ms exact at the cut.** Each block is stamped with PortAudio's
  ``output_buffer_dac_time``, mapped onto ``time.monotonic()`` per stream (``MonotonicClock``),
  so the count survives a restart whatever a host's stream clock does. At a flush, what had
  reached the DAC when the abort returned was heard; nothing after it was.

``underruns`` counts the callbacks PortAudio flagged as late (``paOutputUnderflow``) while audio
was queued: dropouts the listener heard. ``duck(gain)`` lowers the level from the next
callback's block on (a 5 ms ramp); it cannot reach the blocks already inside the device, so it
is heard up to the buffer's depth and a period later (up to 150 ms by default: the price of
the deep buffer; an abort would cut the reply with a gap and a click instead).
``tap_reference(tap)`` hands every block the callback writes, silence included, at 24 kHz
with its DAC time on ``time.monotonic()`` in ms: the echo canceller's reference. On a
PulseAudio or PipeWire-pulse server, ``open_speaker()`` chooses ``PulseSpeaker`` instead.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from bargein.adapters.audio.device import (
    MonotonicClock,
    SampleClock,
    abort_stream,
    close_stream,
    load_pyaudio,
    open_stream,
    start_stream,
    terminate,
)
from bargein.adapters.audio.echo import ReferenceTap
from bargein.adapters.audio.playout import Playout, to_ms
from bargein.adapters.audio.protocols import FlushReport
from bargein.adapters.audio.resample import StreamResampler
from bargein.core.pcm import RATE, pcm16_samples
from bargein.errors import AudioDeviceError
from bargein.logs import get_logger

log = get_logger(__name__)

BUFFER_MS = 100.0
"""Default device buffering: two periods of 50 ms. Deeper rides out more (beside two CPU hogs
on a shared 2-core machine at load 7-12 the audio thread's callbacks came up to 760 ms apart:
a 100 ms buffer ran dry 16 times a minute, a 500 ms one never in the same run, measured), but a
callback takes a whole period at once and plays what is not there yet as silence: with 250 ms
periods a reply streamed at twice real time had a 640 ms hole near its start (measured)."""
_START_ATTEMPTS = 3
_HEAD_MS = 10.0  # silence a started stream plays first: it loses its first 3.5-4.5 ms
_CLOSE_WAIT_S = 2.0  # how long close() waits for the worker (and for the lock)


class _Output:
    """One PortAudio stream of the speaker: its clock on ``time.monotonic()``, and whether it
    has played its first block yet."""

    __slots__ = ("clock", "fresh", "stream")

    def __init__(self) -> None:
        self.stream: Any = None
        self.clock = MonotonicClock()
        self.fresh = True


class PyAudioSpeaker:
    """AudioSink on the default (or given) PortAudio output device.

    ``block_frames`` (24 kHz frames) is the least callback block; the device's period is the
    larger of it and ``buffer_ms / 2``. A flush drops the buffer, so its depth does not delay a
    stop. ``device_rate`` forces the device rate (otherwise 24 kHz when the device takes it,
    else its default rate, resampled to).
    """

    def __init__(
        self,
        *,
        block_frames: int = 240,
        buffer_ms: float = BUFFER_MS,
        device_index: int | None = None,
        device_rate: int | None = None,
    ) -> None:
        if block_frames <= 0 or buffer_ms < 0:
            raise AudioDeviceError(
                f"block_frames must be positive and buffer_ms not negative, got {block_frames}"
                f" and {buffer_ms}"
            )
        self.block_frames = block_frames
        self.period_frames = max(block_frames, round(buffer_ms / 2 * RATE / 1000))
        pyaudio = load_pyaudio()
        self._continue = int(pyaudio.paContinue)
        self._underflow_flag = int(pyaudio.paOutputUnderflow)
        self._underruns = 0
        self._closed_at: float | None = None
        self._tap: ReferenceTap | None = None
        self._tap_resampler: StreamResampler | None = None
        self._resamplers: dict[str, StreamResampler] = {}
        # the streams' state, and every abort of a stream; never held for a start or an open
        self._lock = threading.Lock()
        self._due = threading.Event()  # a restart (or the close) for the worker
        self._busy = False  # the worker is starting or opening a stream, without the lock
        self._abort_started = False  # a flush came meanwhile: abort the stream it starts
        # the live stream that audio came to while idle: restarted once it fills two periods
        self._idle_live: _Output | None = None
        self._failure: AudioDeviceError | None = None
        self._aborted: deque[Any] = deque()  # streams aborted and still open: the worker's
        self._opener = functools.partial(
            open_stream, output=True, block_frames=self.period_frames,
            device_index=device_index,
        )
        first = _Output()
        opener = functools.partial(
            self._opener, callback=functools.partial(self._callback, first), rate=device_rate
        )
        self._pa, first.stream, self.device_rate = opener()
        self._playout = Playout(self.device_rate)
        self._prefill = (2 * self.period_frames * self.device_rate // RATE
                         + round(_HEAD_MS * self.device_rate / 1000))
        self._blocks = SampleClock(self.device_rate)
        self._latency = float(first.stream.get_output_latency())
        first.clock.calibrate(first.stream)
        self._pa, first.stream = start_stream(self._pa, first.stream, opener, "output")
        self._live: _Output | None = first
        try:
            self._spare: _Output | None = self._open()
        except AudioDeviceError:
            terminate(self._pa)
            raise
        self._worker = threading.Thread(
            target=self._restarts, name="bargein-speaker-restart", daemon=True
        )
        self._worker.start()

    def _open(self) -> _Output:
        """A stream on this speaker's PyAudio, opened and not started."""
        out = _Output()
        _, out.stream, _ = self._opener(
            callback=functools.partial(self._callback, out), rate=self.device_rate, pa=self._pa
        )
        return out

    def _start(self, out: _Output | None) -> _Output:
        """Start ``out`` (or a stream opened now); a start that timed out on a starved machine
        is tried again on a stream opened afresh."""
        for attempt in range(_START_ATTEMPTS):
            if attempt or out is None:
                out = self._open()
            try:
                out.clock.calibrate(out.stream)
                out.stream.start_stream()
                return out
            except OSError as exc:
                with contextlib.suppress(OSError):
                    close_stream(out.stream)
                if attempt == _START_ATTEMPTS - 1:
                    raise AudioDeviceError(
                        f"the audio output stream did not start again ({exc})"
                    ) from None
        raise AssertionError("unreachable")

    def _abort(self, out: _Output) -> float:
        """Abort ``out``'s stream, for the worker to close (``_close_aborted``); return when
        its sound stopped, as near as this thread can tell: when the abort returned, which is
        once the server has dropped what it held (1.5-2.5 ms). A thread that then waits to run
        again counts that wait as heard (beside two CPU hogs, a count once 5.5 ms past the end
        of the null sink's monitor, which itself runs 2-3 ms ahead of the DAC). The time
        before the call plus the shortest abort so far was tried instead: a slow abort, during
        which the sound goes on, then counted short (5.9 ms before the monitor's end, beside
        two hogs), and its median error was 0.4-0.6 ms larger (bench_speaker). A failure is
        logged, not raised: the stream is given up either way (pyaudio closes a stream whose
        abort failed), and the caller's state stays whole."""
        try:
            if abort_stream(out.stream):
                self._aborted.append(out.stream)
        except OSError as exc:
            log.warning("speaker_abort_failed", error=str(exc))
        return time.monotonic()

    def _close_aborted(self) -> None:
        """Close the streams aborted so far (the worker's, without the speaker's lock). A
        close that fails is logged (``speaker_close_failed``): the stream is stopped either
        way."""
        while self._aborted:
            try:
                close_stream(self._aborted.popleft())
            except OSError as exc:
                log.warning("speaker_close_failed", error=str(exc))

    def _abort_and_rewind(self, out: _Output) -> None:
        """Abort ``out`` (with the lock held); what it took and had not sounded goes back to
        the head of the queue (``Playout.rewind``), to be handed to the next stream."""
        self._playout.rewind(self._abort(out))

    def _restarts(self) -> None:
        """The worker: after a flush, or when audio comes to an idle speaker, abort the live
        stream (if any) and bring up the spare; after ``close()``, close the streams aborted
        and terminate PortAudio (every stream of this speaker: ``close()`` leaves that
        here)."""
        while True:
            self._due.wait()
            with self._lock:
                self._due.clear()
                if self._closed_at is not None:
                    break
                live, self._live = self._live, None
                if live is not None:  # idle: what it handed (silence, or the first of
                    self._abort_and_rewind(live)  # new audio) goes back to the queue
                spare, self._spare = self._spare, None
                self._busy, self._abort_started = True, False
            try:
                self._bring_up(spare)
            except AudioDeviceError as exc:
                log.error("speaker_restart_failed", error=str(exc))
                self._failure = exc
            finally:
                with self._lock:
                    self._busy = False
        self._close_aborted()
        terminate(self._pa)

    def _bring_up(self, spare: _Output | None) -> None:
        """Start ``spare`` (or a stream opened now), close the streams aborted so far (after
        the start, so that the next reply does not wait for them) and open the next spare,
        without the lock. A flush or a close meanwhile has the started stream aborted at once;
        a flush has also asked for the next restart. A spare that fails to open is logged
        (``speaker_spare_open_failed``) and the reply plays on: the next restart opens a stream
        itself (a failure there fails the speaker)."""
        out = self._start(spare)
        with self._lock:
            if self._abort_started or self._closed_at is not None:
                self._abort_and_rewind(out)  # what it took after the cut: handed again
                return
            self._live = out
        self._close_aborted()
        try:
            spare = self._open()
        except AudioDeviceError as exc:  # the live stream plays on; the next restart opens one
            log.warning("speaker_spare_open_failed", error=str(exc))
            return
        with self._lock:
            self._spare = spare

    def _callback(
        self,
        out: _Output,
        _in: bytes | None,
        frame_count: int,
        time_info: dict[str, float],
        status: int,
    ) -> tuple[bytes, int]:
        current = time_info["current_time"]
        offset = out.clock.offset(current)
        starts_at = (time_info["output_buffer_dac_time"] or current + self._latency) + offset
        underflow = bool(status & self._underflow_flag)
        if out.fresh:  # a newly started stream loses its first few ms: they carry silence
            out.fresh = False
            underflow = True  # the reference's clock starts again here
            head = min(frame_count, round(_HEAD_MS * self.device_rate / 1000))
            block = np.zeros(frame_count, dtype=np.int16)
            block[head:] = self._playout.pull(
                frame_count - head, starts_at + head / self.device_rate)
        else:
            if underflow and self._playout.has_queued():
                self._underruns += 1
            block = self._playout.pull(frame_count, starts_at)
        tap = self._tap
        if tap is not None:
            dac_ms = self._blocks.block(starts_at * 1000, frame_count, broke=underflow)
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
        return self._closed_at if self._closed_at is not None else time.monotonic()

    @property
    def output_latency_ms(self) -> float:
        """PortAudio's estimate of the time from a callback's block to the listener."""
        return self._latency * 1000

    @property
    def underruns(self) -> int:
        """Callbacks PortAudio flagged as late while audio was waiting (dropouts heard)."""
        return self._underruns

    def play(self, item_id: str, pcm: bytes) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed_at is not None:
            return
        if self.device_rate != RATE:
            resampler = self._resamplers.setdefault(
                item_id, StreamResampler(RATE, self.device_rate)
            )
            pcm = resampler.process(pcm)
        if self._playout.idle(time.monotonic()):
            self._idle_live = self._live  # None: a stream is to start, and takes this first
        self._playout.push(item_id, pcm16_samples(pcm))
        # behind the idle stream's buffer of silence: start a stream afresh to be heard soon,
        # once there is enough to fill it (a started stream takes two periods at once, and
        # what it lacks it plays as silence); not if another stream has started since
        idle_live = self._idle_live
        if idle_live is not None and self._playout.queued_samples() >= self._prefill:
            self._idle_live = None
            if idle_live is self._live:
                self._due.set()

    def duck(self, gain: float) -> None:
        """Play from the next block on at ``gain`` (1.0 restores), ramped over 5 ms. Queued
        audio and heard counts are unchanged; a flush ends the duck."""
        self._playout.duck(gain)

    def flush(self) -> FlushReport:
        """Abort the stream (what the device and the server hold is dropped, not heard), drop
        the queue, and start the spare stream in the worker. Blocks for the abort only, never
        for a stream the worker is starting or opening (one starting now is aborted by the
        worker when its start returns)."""
        self._resamplers.clear()
        self._idle_live = None
        with self._lock:
            live, self._live = self._live, None
            stopped = self._abort(live) if live is not None else self._now()
            final, _ = self._playout.cut(stopped, fade=False)
            restart = live is not None or self._busy
            if self._busy:
                self._abort_started = True
        if restart:
            self._due.set()
        return FlushReport(heard_ms=to_ms(final, self.device_rate), silent_after_ms=0.0)

    def heard_ms(self) -> Mapping[str, float]:
        return to_ms(self._playout.heard_samples(self._now()), self.device_rate)

    @property
    def idle(self) -> bool:
        return self._playout.idle(self._now())

    def ends_in_s(self) -> float:
        """Seconds until all audio given so far has sounded, if no more comes (audio not yet
        handed to the device sounds no sooner than its output latency from now)."""
        now = self._now()
        return self._playout.ends_in(now, now + self._latency)

    def close(self) -> None:
        """Stop at once (the live stream is aborted; buffered audio is dropped, not counted);
        the worker then terminates PortAudio. Returns within ``_CLOSE_WAIT_S``: a worker stuck
        in a wedged device (in a start, an open or an abort) is left behind with a warning."""
        deadline = time.monotonic() + _CLOSE_WAIT_S
        if self._lock.acquire(timeout=_CLOSE_WAIT_S):
            try:
                if self._closed_at is not None:
                    return
                self._closed_at = time.monotonic()
                live, self._live = self._live, None
                if live is not None:
                    self._abort(live)
            finally:
                self._lock.release()
        elif self._closed_at is None:  # an abort holds the lock: the worker sees this after it
            self._closed_at = time.monotonic()
        self._due.set()
        self._worker.join(max(0.0, deadline - time.monotonic()))
        if self._worker.is_alive():
            log.warning("speaker_close_stuck", waited_s=_CLOSE_WAIT_S,
                        detail="a PortAudio call of the speaker's worker has not returned")
