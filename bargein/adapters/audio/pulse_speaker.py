"""The speaker on PulseAudio (or PipeWire's pulse server) through libpulse: stops in one block.

Why a native path next to pyaudio: PortAudio cannot take back what it has handed on. Its blocks
and the sound server's buffer play out after a flush (≈30 ms at 240-frame blocks, measured),
and the small buffer that keeps that short is what a busy machine runs dry (7-13 dropouts a
minute of reply under load, measured). A PulseAudio stream is a timeline the client may write
anywhere ahead of what the sink has read (``pa_stream_write`` with ``PA_SEEK_ABSOLUTE``), so:

- **Deep buffer, no dropouts.** Every queued sample is handed to the server at once, up to
  ``lead_ms`` (2 s) ahead of playback, and the stream never runs dry: the writer thread keeps
  about a second of zeros queued beyond the audio. A stalled Python process, a garbage
  collection or CPU hogs beside it do not starve the device: the server paces the audio.
- **A flush stops within one block, without a click.** The sink reads at most its latency
  ahead of playback; the stream asks for a sink latency of one block less the fade and a
  2.5 ms margin (``PA_STREAM_ADJUST_LATENCY``). A flush picks the cut ``q`` = what is playing
  + that latency + the margin (the server cannot have read that far), writes a 5 ms fade of
  the samples at ``q`` at ``q`` and zeros over the rest of what it had handed over: one write,
  no round trip, nothing to wait for. The fade joins the last sample heard without a step.
- **Heard-ms exact.** Audio sits at stream positions this class chose; the server's clock
  (``pa_stream_get_time``, interpolated) says which position is sounding, and at a flush the
  count is exact by construction: everything before ``q`` sounds, then the fade, nothing else.
  Measured on the monitor of a null sink: the recording matches the item sample for sample up
  to ``q``, then the fade.
- **No rewinds.** Audio is always written past what the sink can have read (a new reply after a
  silence 20 ms further still: a starved sink reads ahead in a burst), because a write behind
  the read index makes the server rewind its sink, and on a null sink that lost 1-3 ms of the
  start of every reply (measured). ``late_cuts`` counts
  the writes (a flush's or a duck's) the server had read past anyway (0 in every measured
  run).

- **Ducking within one block.** ``duck(gain)`` takes back what the sink cannot have read yet
  (from the same cut point as a flush) and writes it again at the new gain, ramped over 5 ms
  from the level at that point: one write, no click, the same samples at the same positions,
  so heard counts do not move.
- **A reference for the echo canceller.** ``tap_reference(tap)`` hands every write (audio,
  fades, the zeros over what a flush dropped) to ``tap(samples, dac_time_ms)``, its DAC time
  on ``time.monotonic()`` in ms: stream position ``q`` sounds at ``anchor + q / rate``, the
  anchor read off the server's clock (steady within 0.1 ms once the first timing update is
  in, 4 ms off before it, measured). It is taken again only when the server's clock moves
  more than 20 ms from it (a device clock drifting from the system's): every move shifts the
  reference against the echo, and the canceller needs a second or more to find it again.

``underruns`` counts the dropouts a listener hears: audio of an item that had to be placed
later than where the item left off, because the stream had played past that point (the
speaker got it too late). The end of a reply is not one.

``open_speaker()`` in ``bargein.adapters.audio.speaker`` picks this speaker whenever a
PulseAudio server answers, and the pyaudio speaker otherwise.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from bargein.adapters.audio import libpulse
from bargein.adapters.audio.echo import ReferenceTap
from bargein.adapters.audio.playout import FADE_MS, Playout, to_ms
from bargein.adapters.audio.protocols import FlushReport
from bargein.core.pcm import RATE, pcm16_samples
from bargein.errors import AudioDeviceError

_BYTES = 2  # per sample: s16le mono
_NO_LIMIT = 0xFFFFFFFF  # (uint32_t) -1: the server's default
_MARGIN_USEC = 2500  # past the farthest the sink can have read: the write's trip to the server
_START_AHEAD = 480  # more for audio after a silence (20 ms; see ``_pump``)
_PAD = RATE // 2  # zeros kept queued beyond the audio (500 ms), so the stream never runs dry
_ZEROS = bytes(_PAD * _BYTES)
_REANCHOR_MS = 20.0  # the DAC-time anchor is taken again when the server's clock moves this far


class PulseSpeaker:
    """AudioSink on a PulseAudio/PipeWire-pulse server: audio placed on the stream's timeline.

    ``block_frames`` (24 kHz frames) bounds the stop: silent within one block of a flush (the
    sink latency asked for is the block less the fade and a margin). ``lead_ms`` is how far
    ahead of playback audio is handed to the server. ``device`` names a sink (default: the
    server's default sink).
    """

    device_rate = RATE  # the server resamples to the device

    def __init__(
        self,
        *,
        block_frames: int = 240,
        lead_ms: float = 2000.0,
        device: str | None = None,
        app_name: str = "bargein",
    ) -> None:
        if block_frames <= 0:
            raise AudioDeviceError(f"block_frames must be positive, got {block_frames}")
        self.block_frames = block_frames
        self._lead = round(lead_ms * RATE / 1000)
        self._playout = Playout(RATE)
        self._pump_lock = threading.Lock()
        self._audio_end = 0  # stream position where the last handed audio ends
        self._zeros_end = 0  # the server's write index: where the last write ended
        self._last_item: str | None = None  # item of the last handed audio (None after a cut)
        self._closed_at: float | None = None
        self._underruns = 0
        self._cut_at = 0
        self.late_cuts = 0  # writes the server had already read past (diagnostic)
        self.clock_misses = 0  # readings of the server clock that had no data (diagnostic)
        self._clock = (time.monotonic(), 0)  # (when, position) of the last good reading
        self._anchor_ms: float | None = None  # monotonic ms when stream position 0 sounds
        self._tap: ReferenceTap | None = None
        self._conn = libpulse.Connection(app_name)
        lib = self._lib = self._conn.lib
        self._check_cb = libpulse.SUCCESS_CB(self._check_cut)
        self._stream: int | None = None
        spec = libpulse.SampleSpec(libpulse.SAMPLE_S16LE, RATE, 1)
        # With PA_STREAM_ADJUST_LATENCY the sink latency asked for is (tlength - 2 minreq) / 2:
        # ask for what leaves room in one block for the cut's margin and the fade.
        reserve = round((FADE_MS * 1000 + _MARGIN_USEC) * RATE / 1e6)
        sink_frames = max(RATE // 1000, block_frames - reserve)
        attr = libpulse.BufferAttr(
            maxlength=_NO_LIMIT,
            tlength=4 * sink_frames * _BYTES,
            prebuf=_BYTES,  # play as soon as anything is there
            minreq=sink_frames * _BYTES,
            fragsize=_NO_LIMIT,
        )
        flags = (
            libpulse.STREAM_INTERPOLATE_TIMING
            | libpulse.STREAM_AUTO_TIMING_UPDATE
            | libpulse.STREAM_ADJUST_LATENCY
        )
        with self._conn.locked():
            stream = lib.pa_stream_new(
                self._conn.context, b"bargein speaker", ctypes.byref(spec), None
            )
            state = None
            if stream:
                self._stream = stream
                lib.pa_stream_set_state_callback(stream, self._conn.signal_cb, None)
                sink = device.encode() if device else None
                connected = lib.pa_stream_connect_playback(
                    stream, sink, ctypes.byref(attr), flags, None, None
                )
                if connected >= 0:
                    state = self._conn.wait_for(
                        lambda: lib.pa_stream_get_state(stream),
                        {libpulse.STREAM_READY, libpulse.STREAM_FAILED, libpulse.STREAM_TERMINATED},
                        5.0,
                    )
            reason = self._conn.error()
            if state == libpulse.STREAM_READY:
                self._write_zeros(0)
        if state != libpulse.STREAM_READY:
            self._release()
            raise AudioDeviceError(f"no usable audio output device on PulseAudio ({reason})")
        self._wake = threading.Condition()
        self._writer = threading.Thread(target=self._top_up, name="bargein-pulse", daemon=True)
        self._writer.start()

    # -- the server's clock ------------------------------------------------------------------

    def _playing(self) -> int:
        """With the loop locked: the stream position sounding now (server clock, interpolated).

        When the server's clock has no data (before its first timing reply, or while libpulse
        holds an index it knows to be stale) the last reading is carried forward on the
        monotonic clock: the stream never stops (zeros between replies), and an estimate
        that runs ahead only moves audio a little later, never behind what was read.
        """
        usec = ctypes.c_uint64(0)
        now = time.monotonic()
        if self._lib.pa_stream_get_time(self._stream, ctypes.byref(usec)) < 0:
            self.clock_misses += 1
            since, position = self._clock
            return position + int((now - since) * RATE)
        position = int(usec.value * RATE // 1_000_000)
        self._clock = (now, position)
        anchor = now * 1000 - usec.value / 1000
        if self._anchor_ms is None or abs(anchor - self._anchor_ms) > _REANCHOR_MS:
            self._anchor_ms = anchor
        return position

    def _safe(self, playing: int) -> int:
        """With the loop locked: the first position the sink cannot have read yet."""
        info = self._lib.pa_stream_get_timing_info(self._stream)
        sink = max(info.contents.configured_sink_usec, info.contents.sink_usec) if info else 0
        return playing + -(-(sink + _MARGIN_USEC) * RATE // 1_000_000)

    def _now(self) -> float:
        if self._closed_at is not None:
            return self._closed_at
        with self._conn.locked():
            return self._playing() / RATE

    @property
    def output_latency_ms(self) -> float:
        """The sink latency the server granted this stream (what sounds after a flush)."""
        with self._conn.locked():
            info = self._lib.pa_stream_get_timing_info(self._stream)
            return float(info.contents.configured_sink_usec) / 1000 if info else 0.0

    @property
    def underruns(self) -> int:
        """Times an item's audio came too late to follow on where it left off (a dropout)."""
        return self._underruns

    # -- writing -----------------------------------------------------------------------------

    def _write(self, data: bytes | npt.NDArray[np.int16], at: int) -> None:
        """With the loop locked: put samples at stream position ``at``.

        The server reads only up to its write index, which is where this write ends: zeros
        queued beyond it before are out of reach, so callers write zeros again after audio.
        """
        if isinstance(data, bytes):
            pointer: int | bytes = data
            nbytes = len(data)
        else:
            pointer, nbytes = data.ctypes.data, data.nbytes
        self._lib.pa_stream_write(
            self._stream, pointer, nbytes, None, at * _BYTES, libpulse.SEEK_ABSOLUTE
        )
        self._zeros_end = at + nbytes // _BYTES
        if self._tap is not None and self._anchor_ms is not None:
            samples = np.frombuffer(data, dtype="<i2") if isinstance(data, bytes) else data
            self._tap(samples, self._anchor_ms + at * 1000 / RATE)

    def _write_zeros(self, playing: int) -> None:
        """With the loop locked: keep about ``_PAD`` of zeros queued beyond audio and playback."""
        start = self._zeros_end
        if start <= playing:  # it ran dry after all (this process stalled)
            start = self._safe(playing)
        target = max(self._audio_end, playing) + _PAD
        if target - start >= _PAD // 2:
            self._write(_ZEROS[: (target - start) * _BYTES], start)

    def _pump(self) -> None:
        """Hand queued audio to the server, up to ``lead`` ahead of playback."""
        with self._pump_lock:
            if self._closed_at is not None:
                return
            with self._conn.locked():
                playing = self._playing()
                at = self._audio_end
                safe = self._safe(playing)
                if at < safe:  # the stream has played past where the audio left off
                    # a reply after a silence is placed further ahead than a flush cuts: a
                    # sink starved beside busy processes reads ahead in a burst once it runs,
                    # and a write behind its read index rewinds it and loses the reply's
                    # first ms (seen once beside two CPU hogs: 2 ms); 20 ms later is not heard
                    at = safe + _START_AHEAD
                samples, items = self._playout.take(self._lead - (at - playing), at / RATE)
                if not len(samples):
                    return
                if at > self._audio_end and items[0] == self._last_item:
                    self._underruns += 1  # the same item goes on after a gap: a dropout
                self._write(samples, at)
                self._audio_end = at + len(samples)
                self._last_item = items[-1]
                self._write_zeros(playing)

    def _top_up(self) -> None:
        """Keep audio beyond the lead and the zeros beyond the audio coming as playback goes on."""
        while True:
            with self._wake:
                if self._closed_at is not None:
                    return
                self._wake.wait(timeout=0.1 if self._playout.queued_samples() else 0.25)
                if self._closed_at is not None:
                    return
            self._pump()
            with self._pump_lock, self._conn.locked():
                if self._closed_at is None:
                    self._write_zeros(self._playing())

    def _request_check(self) -> None:
        """With the loop locked: ask the server where it had read when the last cut arrived."""
        checked = self._lib.pa_stream_update_timing_info(self._stream, self._check_cb, None)
        if checked:
            self._lib.pa_operation_unref(checked)

    def _check_cut(self, _stream: int, ok: int, _userdata: int) -> None:
        """On the loop's thread: had the server read up to the cut when the fade arrived?

        A write behind the read index makes the server rewind its sink to the write, so the
        read index then sits exactly on the cut: ``>=`` catches those too.
        """
        info = self._lib.pa_stream_get_timing_info(self._stream)
        if ok and info and info.contents.read_index // _BYTES >= self._cut_at:
            self.late_cuts += 1

    def tap_reference(self, tap: ReferenceTap | None) -> None:
        """Hand every write from now on to ``tap(samples, dac_time_ms)`` (``None`` stops):
        an ``EchoCanceller``'s reference."""
        with self._conn.locked():
            self._tap = tap

    def duck(self, gain: float) -> None:
        """Play at ``gain`` (1.0 restores) from the first position the sink cannot have read,
        ramped over 5 ms: what was handed from there is written again at the new level.
        Queued audio and heard counts are unchanged; a flush ends the duck."""
        with self._pump_lock:
            if self._closed_at is not None:
                return
            with self._conn.locked():
                playing = self._playing()
                handed = self._audio_end
                cut = min(self._safe(playing), handed)
                self._playout.duck(gain)
                if handed > cut:
                    self._playout.rewind(cut / RATE)
                    samples, _ = self._playout.take(handed - cut, cut / RATE)
                    self._write(samples, cut)
                    self._audio_end = cut + len(samples)
                    self._write_zeros(playing)
                    self._cut_at = cut
                    self._request_check()

    # -- the AudioSink protocol --------------------------------------------------------------

    def play(self, item_id: str, pcm: bytes) -> None:
        if self._closed_at is not None:
            return
        self._playout.push(item_id, pcm16_samples(pcm))
        self._pump()

    def flush(self) -> FlushReport:
        """Fade out at the first position the sink cannot have read; zeros after. Never waits."""
        with self._pump_lock:
            if self._closed_at is not None:
                return FlushReport(heard_ms=self.heard_ms())
            with self._conn.locked():
                playing = self._playing()
                handed = self._audio_end
                cut = min(self._safe(playing), handed)
                sounding = handed > playing  # else it already ran dry: nothing to fade
                final, faded = self._playout.cut(cut / RATE, fade=sounding)
                self._last_item = None
                if faded:
                    samples, _ = self._playout.take(faded, cut / RATE)
                    self._write(samples, cut)
                end = cut + faded
                if handed > end:  # over what was handed; the zeros after it are out of reach
                    zeros = handed - end + _PAD
                    self._write(bytes(zeros * _BYTES), end)
                self._audio_end = end
                self._cut_at = cut
                self._write_zeros(playing)
                self._request_check()
        return FlushReport(
            heard_ms=to_ms(final, RATE), silent_after_ms=max(0, end - playing) / RATE * 1000
        )

    def heard_ms(self) -> Mapping[str, float]:
        return to_ms(self._playout.heard_samples(self._now()), RATE)

    @property
    def idle(self) -> bool:
        return self._playout.idle(self._now())

    def ends_in_s(self) -> float:
        """Seconds until all audio given so far has sounded, if no more comes (the next
        audio written sounds no sooner than the sink's latency from now)."""
        now = self._now()
        return self._playout.ends_in(now, now + self.output_latency_ms / 1000)

    def close(self) -> None:
        """Stop at once: what the server still holds is dropped, and not counted as heard."""
        if self._closed_at is not None:
            return
        with self._pump_lock:
            self._closed_at = self._now()
        with self._wake:
            self._wake.notify()
        self._writer.join(timeout=5)
        self._release()

    def _release(self) -> None:
        if self._stream is not None:
            with self._conn.locked():
                self._lib.pa_stream_disconnect(self._stream)
                self._lib.pa_stream_unref(self._stream)
            self._stream = None
        self._conn.close()
