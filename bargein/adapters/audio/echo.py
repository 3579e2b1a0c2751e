"""Echo cancellation for the microphone: WebRTC's canceller (AEC3), fed what the speaker played.

``EchoCanceller`` is a processing step a program can use on its own: hand it the reference,
exactly the samples a speaker wrote with the time each reaches the DAC
(``reference(pcm, dac_time_ms)``), and each captured frame with the time its first sample
left the ADC (``process(AudioFrame)``); it returns the frame with the speaker's echo removed.
Both times are on one clock (the device adapters use ``time.monotonic()`` in ms). The
canceller is LiveKit's build of WebRTC's audio processing module
(``livekit.rtc.AudioProcessingModule``, in the ``livekit`` wheel of the ``audio`` extra),
run at 24 kHz in 10 ms frames (it takes 24 kHz as it is: no resampling).

**Alignment by device time.** AEC3 finds the echo path itself, but only within about 500 ms
after the reference it was given, and not before it (measured: a reference that leads its
echo by 5 ms to 500 ms is cancelled by 40-54 dB; one that arrives with its echo or later, or
leads by 550 ms or more, by 1-14 dB). A speaker hands audio far ahead of playback (the
PulseAudio speaker up to 2 s), so the reference is kept on a timeline by DAC time, and before
each 10 ms of capture taken at ADC time ``t`` the canceller feeds AEC3 the reference that
sounds at ``t + lead_ms``: the reference leads by ``lead_ms`` plus whatever the room adds,
which AEC3 estimates. That lead is the delay told to ``set_stream_delay_ms`` for each frame.
It is 15 ms: room for the devices' timestamp errors (on PulseAudio the echo of a 30 ms
loopback came 30-35 ms after its DAC time, measured), and yet within what the speaker has
written when the capture is processed: a 20 ms frame is processed 20-40 ms after its first
sample was captured, and the pyaudio speaker writes only its latency (about 30 ms) ahead of
playback, the PulseAudio speaker a new reply 10 ms ahead. With a 30 ms lead the pyaudio
speaker's reference came too late in some runs on a busy machine (nearly all of it: 8 dB
removed instead of 50). What the speaker wrote where the reference had been read already is
counted in ``stats.late_ms``; a stretch no speaker wrote is silence.

**Warm-up.** AEC3 starts with a cautious suppressor and converges within the first 100 ms of
echo (measured on synthetic rooms: 21-31 dB removed in that first 100 ms, 30-50 dB after).
The first ``warmup_ms`` (200 ms) of capture that follows reference audio are muted, so the
few ms of echo before convergence reach no voice detector; a user who speaks in the first
200 ms of the first reply loses those 200 ms. ``warming_up`` says whether it is still on.

**ERLE.** The echo return loss enhancement is measured on what passed: capture energy over
cleaned energy, one figure per second of echo (10 ms pieces where the speaker played within
the last 300 ms and the microphone heard something, above -60 dBFS, after the warm-up).
``erle_db`` is the median of the last 10 such seconds, ``stats.erle_db`` of the last 10
minutes: a median, because a user speaking over the echo makes a second read as little
removed (their voice is rightly kept), and such seconds are the exception. A debug line
``echo_erle`` reports both every 5 s of echo.

Options, decided by measurement on synthetic rooms (bench/bench_echo.py): the high-pass
filter is on (cheap, removes rumble and DC); noise suppression is off by default (10 dB more
of a residual that is already 30-50 dB down, but it also reshapes the user's voice, which the
server's own noise reduction can do); automatic gain control is off (it lifted the residual
and lost 6-10 dB of ERLE, and it makes levels meaningless to an energy detector).
"""

from __future__ import annotations

import math
import statistics
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from bargein.adapters.audio.protocols import AudioFrame
from bargein.core.pcm import RATE, pcm16_samples
from bargein.errors import EchoCancellerError
from bargein.logs import get_logger

log = get_logger(__name__)

PIECE = RATE // 100
"""Samples per 10 ms: the only frame length the audio processing module takes."""
_PER_MS = RATE / 1000
_ECHO_WINDOW = 30  # pieces (300 ms) after reference audio during which echo is expected
_REF_FLOOR = (32768 * 10 ** (-50 / 20)) ** 2  # -50 dBFS: reference counted as sound
_MIC_FLOOR = (32768 * 10 ** (-60 / 20)) ** 2  # -60 dBFS: a capture with something in it
_SECOND = 100  # echo pieces per ERLE figure
_RECENT = 10  # figures behind ``erle_db``
_LOG_EVERY = 5  # figures between debug lines

ReferenceTap = Callable[[npt.NDArray[np.int16], float], None]
"""What a speaker calls with each write: ``tap(samples, dac_time_ms)``, 24 kHz samples and
the DAC time of the first in ms on ``time.monotonic()`` (``EchoCanceller.reference``)."""


@runtime_checkable
class ReferenceSource(Protocol):
    """A speaker that can hand every sample it writes, with its DAC time, to a tap."""

    def tap_reference(self, tap: ReferenceTap | None) -> None: ...


@dataclass(frozen=True, slots=True)
class EchoStats:
    """What the canceller has seen so far (see ``EchoCanceller``)."""

    processed_ms: float
    echo_ms: float
    """Capture measured for ERLE: the speaker played within 300 ms and the microphone heard
    something (after the warm-up)."""
    erle_db: float | None
    """Echo removed: the median of the per-second figures of the last 10 minutes (None
    before the first second of echo)."""
    late_ms: float
    """Reference written after its time had been fed (lost for cancellation)."""
    unwritten_ms: float
    """Reference fed before any speaker had written it (silence assumed)."""
    errors: int
    """10 ms pieces passed through uncancelled because the module failed."""


def _load_apm(
    noise_suppression: bool, high_pass_filter: bool, auto_gain_control: bool
) -> tuple[Any, Any]:
    """A ready module and livekit's frame class, or EchoCancellerError in one line when
    livekit is missing or broken."""
    try:
        from livekit import rtc  # optional extra, imported on first use

        apm = rtc.AudioProcessingModule(
            echo_cancellation=True,
            noise_suppression=noise_suppression,
            high_pass_filter=high_pass_filter,
            auto_gain_control=auto_gain_control,
        )
        probe = rtc.AudioFrame(bytes(PIECE * 2), RATE, 1, PIECE)
        apm.process_reverse_stream(probe)
        apm.set_stream_delay_ms(0)
        apm.process_stream(probe)
    except ImportError:
        raise EchoCancellerError(
            "echo cancellation needs livekit: pip install 'bargein[audio]' "
            "(or turn it off: --no-echo-cancel)"
        ) from None
    except Exception as exc:  # a native library that fails to load or run
        raise EchoCancellerError(
            f"echo cancellation is unavailable ({type(exc).__name__}: {exc}); "
            "turn it off with --no-echo-cancel"
        ) from None
    return apm, rtc.AudioFrame


class _Timeline:
    """The reference by absolute sample index (DAC time x 24), in a ring of ``size`` samples.

    Every index in ``[read, read + size)`` has its own slot; slots are zeroed as they are
    read, so an index nobody wrote reads as silence.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.ring = np.zeros(size, dtype=np.int16)
        self.read: int | None = None  # next index to feed; None before any write or read
        self.written_end: int | None = None
        self.late = 0  # samples written behind ``read``
        self.unwritten = 0  # samples read beyond ``written_end``

    def write(self, start: int, samples: npt.NDArray[np.int16]) -> None:
        if self.read is None:
            self.read = start
        end = start + len(samples)
        if start < self.read:
            behind = min(end, self.read) - start
            self.late += behind
            samples, start = samples[behind:], start + behind
        samples = samples[: max(0, self.read + self.size - start)]  # beyond the ring: dropped
        if not len(samples):
            return
        self.written_end = max(self.written_end or 0, start + len(samples))
        slot = start % self.size
        first = min(len(samples), self.size - slot)
        self.ring[slot : slot + first] = samples[:first]
        self.ring[: len(samples) - first] = samples[first:]

    def take(self, start: int, n: int) -> npt.NDArray[np.int16]:
        """The reference at ``[start, start + n)``; what lies between the last read and
        ``start`` is skipped (zeroed)."""
        if self.read is not None and start > self.read:
            self._clear(self.read, min(start - self.read, self.size))
        slot = start % self.size
        idx = (slot + np.arange(n)) % self.size
        out = self.ring[idx].copy()
        self.ring[idx] = 0
        end = start + n
        if self.written_end is None or self.written_end < end:
            self.unwritten += min(n, end - (self.written_end or start))
        self.read = end
        return out

    def _clear(self, start: int, n: int) -> None:
        slot = start % self.size
        first = min(n, self.size - slot)
        self.ring[slot : slot + first] = 0
        self.ring[: n - first] = 0


class EchoCanceller:
    """Removes the speaker's echo from captured frames (see the module's note).

    ``reference()`` may be called from any thread (a speaker's audio thread);
    ``process()`` from one thread at a time (the microphone's). Frames are PCM16 mono at
    24 kHz, whole multiples of 10 ms. Raises ``EchoCancellerError`` when livekit is missing
    or its module fails to start.
    """

    def __init__(
        self,
        *,
        lead_ms: float = 15.0,
        warmup_ms: float = 200.0,
        noise_suppression: bool = False,
        high_pass_filter: bool = True,
        auto_gain_control: bool = False,
        history_s: float = 8.0,
    ) -> None:
        if not 0 <= lead_ms <= 400:
            raise EchoCancellerError(f"lead_ms must be within 0-400 ms, got {lead_ms}")
        self.lead_ms = lead_ms
        self._apm, self._frame_type = _load_apm(
            noise_suppression, high_pass_filter, auto_gain_control
        )
        self._lock = threading.Lock()
        self._timeline = _Timeline(round(history_s * RATE))
        self._warmup_left = round(warmup_ms / 10)
        self._since_ref = _ECHO_WINDOW  # pieces since reference audio was fed
        self._sums = [0.0, 0.0]  # capture and cleaned energy of this second's echo pieces
        self._figures: deque[float] = deque(maxlen=600)  # ERLE of each second of echo, dB
        self._echo_pieces = 0
        self._pieces = 0
        self._errors = 0

    # -- the reference ----------------------------------------------------------------------

    def reference(self, samples: bytes | npt.NDArray[np.int16], dac_time_ms: float) -> None:
        """The speaker wrote ``samples`` (24 kHz) whose first reaches the DAC at
        ``dac_time_ms``. A later write over the same time replaces it (a flush's fade)."""
        pcm = pcm16_samples(samples) if isinstance(samples, bytes) else samples
        with self._lock:
            self._timeline.write(round(dac_time_ms * _PER_MS), pcm)

    # -- the capture ------------------------------------------------------------------------

    def process(self, frame: AudioFrame) -> AudioFrame:
        """The frame with the echo removed (same length and capture time)."""
        mic = pcm16_samples(frame.pcm)
        if len(mic) % PIECE:
            raise EchoCancellerError(
                f"frames must be whole multiples of 10 ms, got {len(mic) / _PER_MS:g} ms"
            )
        out = np.empty_like(mic)
        for k in range(0, len(mic), PIECE):
            at = round((frame.captured_at_ms + k / _PER_MS + self.lead_ms) * _PER_MS)
            with self._lock:
                far = self._timeline.take(at, PIECE)
            out[k : k + PIECE] = self._piece(far, mic[k : k + PIECE])
        return AudioFrame(out.astype("<i2", copy=False).tobytes(), frame.captured_at_ms)

    def _piece(
        self, far: npt.NDArray[np.int16], near: npt.NDArray[np.int16]
    ) -> npt.NDArray[np.int16]:
        self._pieces += 1
        if float(np.mean(far.astype(np.float64) ** 2)) > _REF_FLOOR:
            self._since_ref = 0
        else:
            self._since_ref += 1
        far_frame = self._frame_type(far.tobytes(), RATE, 1, PIECE)
        near_frame = self._frame_type(near.tobytes(), RATE, 1, PIECE)
        try:
            self._apm.process_reverse_stream(far_frame)
            self._apm.set_stream_delay_ms(round(self.lead_ms))
            self._apm.process_stream(near_frame)
        except Exception as exc:  # the native module failed: pass the capture as it is
            self._errors += 1
            if self._errors == 1:
                log.error("echo_cancel_failed", error=f"{type(exc).__name__}: {exc}")
            return near
        cleaned = np.frombuffer(bytes(near_frame.data), dtype="<i2")
        if self._since_ref >= _ECHO_WINDOW:
            return cleaned
        if self._warmup_left > 0:
            self._warmup_left -= 1
            return np.zeros_like(cleaned)
        self._measure(near, cleaned)
        return cleaned

    def _measure(self, near: npt.NDArray[np.int16], cleaned: npt.NDArray[np.int16]) -> None:
        mic_e = float(np.mean(near.astype(np.float64) ** 2))
        if mic_e < _MIC_FLOOR:
            return
        out_e = float(np.mean(cleaned.astype(np.float64) ** 2))
        self._echo_pieces += 1
        self._sums = [self._sums[0] + mic_e, self._sums[1] + out_e]
        if self._echo_pieces % _SECOND:
            return
        self._figures.append(10 * math.log10(self._sums[0] / max(self._sums[1], 1.0)))
        self._sums = [0.0, 0.0]
        if len(self._figures) % _LOG_EVERY == 0:
            log.debug("echo_erle", erle_db=self.erle_db, overall_db=self.stats.erle_db,
                      echo_s=self._echo_pieces / 100)

    # -- what it measured -------------------------------------------------------------------

    @property
    def erle_db(self) -> float | None:
        """Echo removed in the last 10 seconds of echo, in dB: the median of their per-second
        figures (None before the first second of echo)."""
        if not self._figures:
            return None
        return statistics.median(list(self._figures)[-_RECENT:])

    @property
    def warming_up(self) -> bool:
        """True until the first ``warmup_ms`` of capture after reference audio have passed."""
        return self._warmup_left > 0

    @property
    def stats(self) -> EchoStats:
        timeline = self._timeline
        return EchoStats(
            processed_ms=self._pieces * 10.0,
            echo_ms=self._echo_pieces * 10.0,
            erle_db=statistics.median(self._figures) if self._figures else None,
            late_ms=timeline.late / _PER_MS,
            unwritten_ms=timeline.unwritten / _PER_MS,
            errors=self._errors,
        )
