"""Opening PortAudio streams through pyaudio (the ``audio`` extra), with one-line typed errors.

Shared by the speaker and the microphone: lazy import (so bargein works without the extra),
the device's rate choice (24 kHz if the device takes it, else its default rate, which the
adapter resamples), the translation of PortAudio failures into AudioDeviceError, and the
one lock for PortAudio's process-wide state (``PORTAUDIO_LOCK``).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import math
import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from bargein.core.pcm import RATE
from bargein.errors import AudioDeviceError
from bargein.logs import get_logger

log = get_logger(__name__)

PORTAUDIO_LOCK = threading.RLock()
"""Held for every PortAudio call that changes its process-wide state: making or ending a
PyAudio (``Pa_Initialize``, ``Pa_Terminate``), opening or closing a stream. PortAudio keeps
one list of open streams per process and changes it in ``Pa_OpenStream``, ``Pa_CloseStream``
and ``Pa_Terminate`` without a lock of its own: a stream closed in one thread (a speaker's
flush) while another thread opened one (its worker, opening a spare) could be left in that
list freed, for ``Pa_Terminate`` to close again. Never held for a start or an abort, which
change no list and which a flush must not wait behind: a flush aborts (``abort_stream``) and
leaves the close to the thread that opens. Taken through ``portaudio_state()``."""
_LOCK_WAIT_S = 2.0


@contextlib.contextmanager
def portaudio_state() -> Iterator[None]:
    """Hold ``PORTAUDIO_LOCK`` for a call that changes PortAudio's state; after
    ``_LOCK_WAIT_S`` go on without it, with a warning (``portaudio_lock_timeout``): a thread
    stuck in a wedged device's open holds it, and a microphone that cannot close (or a
    program that cannot start) is worse than the race the lock is there for."""
    held = PORTAUDIO_LOCK.acquire(timeout=_LOCK_WAIT_S)
    if not held:
        log.warning("portaudio_lock_timeout", waited_s=_LOCK_WAIT_S)
    try:
        yield
    finally:
        if held:
            PORTAUDIO_LOCK.release()


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence what ALSA/JACK print to fd 2 while PortAudio probes its host APIs."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def load_pyaudio() -> Any:
    """Import pyaudio, or explain how to get it."""
    try:
        import pyaudio  # optional extra, imported on first use
    except ImportError:
        raise AudioDeviceError(
            "pyaudio is not installed: pip install 'bargein[audio]' (needs portaudio19-dev)"
        ) from None
    return pyaudio


_ALSA_HANDLER: list[object] = []
"""The no-op ALSA error handler, kept alive while the library may call it."""


def _quiet_alsa() -> None:
    """Route ALSA's own messages (``ALSA lib pcm.c:...: underrun occurred``, printed to
    stderr from C whenever a stream is recovered) nowhere: a library prints nothing unless
    asked, and PortAudio reports what matters (an underflow is counted, a failure raised).
    ALSA has one handler per process; it is set once, when bargein first opens a device, and
    only where libasound is loaded (Linux)."""
    if _ALSA_HANDLER:
        return
    try:
        alsa = ctypes.CDLL(ctypes.util.find_library("asound") or "libasound.so.2")
    except OSError:
        return
    # void handler(const char *file, int line, const char *function, int err, const char *fmt,
    # ...): the variadic tail is never read
    handler_type = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                    ctypes.c_int, ctypes.c_char_p)
    handler = handler_type(lambda *_: None)
    alsa.snd_lib_error_set_handler(handler)
    _ALSA_HANDLER.append(handler)
    # ALSA's default again before the interpreter (and the handler) goes away
    atexit.register(alsa.snd_lib_error_set_handler, None)


def new_pyaudio() -> Any:
    """A PyAudio instance, created without the host APIs' probing noise on stderr (and ALSA's
    later messages silenced: ``_quiet_alsa``)."""
    pyaudio = load_pyaudio()
    _quiet_alsa()
    with portaudio_state(), _quiet_stderr():
        return pyaudio.PyAudio()


def terminate(pa: Any) -> None:
    """End ``pa`` (closing the streams it still has) under ``PORTAUDIO_LOCK``."""
    with portaudio_state():
        pa.terminate()


def close_stream(stream: Any) -> None:
    """Close ``stream`` (an active one is aborted first) under ``PORTAUDIO_LOCK``."""
    with portaudio_state():
        stream.close()


def abort_stream(stream: Any) -> bool:
    """Stop ``stream`` at once (``Pa_AbortStream``: what PortAudio and the sound server hold is
    dropped, not played) without closing it, so without ``PORTAUDIO_LOCK``; True when the
    stream is still open, for its owner to ``close_stream`` later.

    pyaudio's ``Stream`` has no ``abort()``; its C module has ``abort_stream``, which this
    calls (present in 0.2.14, the only release the declared range holds). Where it is
    missing, the stream is closed instead (which aborts it too), under the lock: False. An
    abort that fails raises OSError, and pyaudio has then closed the stream itself, without
    the lock: the one close the lock does not cover."""
    from pyaudio import _portaudio  # the C module; looked up per call, so a test can hold it

    abort = getattr(_portaudio, "abort_stream", None)
    inner = getattr(stream, "_stream", None)
    if abort is None or inner is None:
        close_stream(stream)
        return False
    abort(inner)
    return True


def open_stream(
    *,
    output: bool,
    block_frames: int,
    callback: Callable[[bytes | None, int, dict[str, float], int], tuple[bytes | None, int]],
    device_index: int | None = None,
    rate: int | None = None,
    pa: Any = None,
) -> tuple[Any, Any, int]:
    """Open (not start) a mono int16 callback stream; return (PyAudio, stream, device rate).

    ``pa`` opens it on an existing PyAudio (which a failure leaves alone); by default each
    stream gets a PyAudio of its own, terminated if the stream cannot open."""
    pyaudio = load_pyaudio()
    own = pa is None
    if own:
        pa = new_pyaudio()
    kind = "output" if output else "input"
    try:
        info = (
            pa.get_device_info_by_index(device_index)
            if device_index is not None
            else (
                pa.get_default_output_device_info()
                if output
                else pa.get_default_input_device_info()
            )
        )
        chosen = rate if rate is not None else _pick_rate(pa, pyaudio, info, output)
        with portaudio_state():
            stream = pa.open(
                format=pyaudio.paInt16,
                channels=1,
                rate=chosen,
                output=output,
                input=not output,
                frames_per_buffer=block_frames * chosen // RATE,
                output_device_index=device_index if output else None,
                input_device_index=None if output else device_index,
                stream_callback=callback,
                start=False,
            )
    except (OSError, ValueError) as exc:
        if own:
            terminate(pa)
        raise AudioDeviceError(
            f"no usable audio {kind} device ({exc}); is an audio server running?"
        ) from None
    return pa, stream, chosen


def start_stream(
    pa: Any, stream: Any, reopen: Callable[[], tuple[Any, Any, int]], kind: str,
    attempts: int = 3,
) -> tuple[Any, Any]:
    """Start a stream opened by ``open_stream``; return the (PyAudio, stream) that runs.

    PortAudio waits one second for its audio thread to start and, when it has not (a starved
    machine, not a missing device), fails with ``paTimedOut`` and leaves the stream closed: it
    is then opened again with ``reopen`` (``open_stream`` with the same arguments), up to
    ``attempts`` times in all, before the failure is an AudioDeviceError."""
    for attempt in range(attempts):
        if attempt:
            pa, stream, _ = reopen()
        try:
            stream.start_stream()
            return pa, stream
        except OSError as exc:
            with contextlib.suppress(Exception):
                close_stream(stream)
            terminate(pa)
            if attempt == attempts - 1:
                raise AudioDeviceError(f"the audio {kind} stream did not start ({exc})") from None
    raise AssertionError("unreachable")


def _pick_rate(pa: Any, pyaudio: Any, info: dict[str, Any], output: bool) -> int:
    direction = "output" if output else "input"
    try:
        pa.is_format_supported(
            RATE,
            **{f"{direction}_device": info["index"], f"{direction}_channels": 1},
            **{f"{direction}_format": pyaudio.paInt16},
        )
    except ValueError:
        return int(info["defaultSampleRate"])
    return RATE


class MonotonicClock:
    """Maps PortAudio's stream times onto ``time.monotonic()`` (PortAudio on ALSA stamps with
    the wall clock, ``CLOCK_REALTIME``, measured), so a speaker's DAC times and a
    microphone's ADC times meet on one clock (the echo canceller's and the session's).

    ``calibrate(stream)`` reads the stream's clock between two monotonic readings (the
    tightest of three), before the stream starts: the offset is then exact to microseconds.
    A callback's own reading (``now - current_time``) carries however long it waited for the
    interpreter lock, tens of ms on a busy machine: without the calibration the offset is the
    smallest such reading so far, too large at first (measured on the pyaudio speaker: counts
    at a flush 2.5-3 ms short). The readings still watch the calibration: their smallest of
    the last 64 is never below the truth, so one below it, or more than ``MOVED_S`` above it,
    means the host's clock moved (a wall clock stepped or slewed), and is taken instead."""

    MOVED_S = 0.020

    def __init__(self) -> None:
        self._offsets: deque[float] = deque(maxlen=64)
        self._offset: float | None = None

    def calibrate(self, stream: Any) -> None:
        """Take the offset from ``stream.get_time()``, bracketed by ``time.monotonic()``."""
        spans = []
        for _ in range(3):
            before = time.monotonic()
            at = float(stream.get_time())
            after = time.monotonic()
            spans.append((after - before, (before + after) / 2 - at))
        self._offset = min(spans)[1]

    def offset(self, current_time: float) -> float:
        """Seconds to add to a PortAudio time of this callback (``time_info["current_time"]``)."""
        self._offsets.append(time.monotonic() - current_time)
        seen = min(self._offsets)
        if self._offset is None or seen < self._offset or seen - self._offset > self.MOVED_S:
            self._offset = seen
        return self._offset


class SampleClock:
    """The time of a stream's blocks: the device's stamp for the first block, then the count
    of samples since. The device's samples are contiguous while its stamps jitter with the
    scheduling of the audio thread: on a busy machine, with callbacks 100 ms late, PortAudio's
    stamps through PulseAudio wandered by +-20 ms around the count (measured), and taking each
    such stamp as the truth moved the capture 20 ms against the echo canceller's reference,
    which then lost its echo path for seconds. So the count rules: the clock is taken afresh
    only when the stream broke (an overflow or underflow) or a stamp is more than
    ``JUMP_MS`` away (audio really lost or repeated).

    It follows a device clock that drifts from the system's, but never by a step, and never
    fast: once a second, when the median disagreement of that second's stamps is more than
    ``TOLERANCE_MS``, the clock runs ``SLEW_MS_PER_S`` fast or slow towards them through the
    next second, a fraction of a sample per block (0.3 ms a second: three times the drift of a
    poor device clock, 100 ppm). A step is what the echo canceller cannot follow: PortAudio's
    stamps through PulseAudio moved 22 ms at once a few seconds into a capture while the
    samples did not (the canceller had been removing 50 dB), and a clock that stepped with them
    took the echo path from the canceller for 1.8 s, echo that a detector took for speech
    (measured). Nor can it follow a fast slew: beside two CPU hogs the stamps' median sat over
    5 ms off the count for seconds while the echo path stood still (a loopback on one PulseAudio
    server), and a clock moving 1 ms a second after them cost the echo canceller most of its
    50 dB (the worst second of each such run: 5-20 dB; it moved in 10 of 19 runs of the device
    echo test); at 0.3 ms a second every second kept 42-55 dB (6 of 6 runs)."""

    JUMP_MS = 100.0
    TOLERANCE_MS = 5.0
    SLEW_MS_PER_S = 0.3

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._next_ms: float | None = None
        self._errors: list[float] = []  # stamp minus count, since the last correction
        self._counted_ms = 0.0  # of audio since the last correction
        self._pace = 1.0  # ms of clock per ms of audio counted (1.0: no slew)

    def block(self, stamp_ms: float, frames: int, *, broke: bool = False) -> float:
        """When the block of ``frames`` samples stamped ``stamp_ms`` starts, in ms."""
        block_ms = frames * 1000 / self.rate
        at = self._next_ms
        if at is None or broke or abs(stamp_ms - at) > self.JUMP_MS:
            at = stamp_ms
            self._errors.clear()
            self._counted_ms = 0.0
            self._pace = 1.0
        else:
            self._errors.append(stamp_ms - at)
            self._counted_ms += block_ms
            if self._counted_ms >= 1000.0:
                drift = statistics.median(self._errors)
                off = abs(drift) > self.TOLERANCE_MS
                self._pace = 1.0 + (math.copysign(self.SLEW_MS_PER_S, drift) / 1000 if off else 0.0)
                self._errors.clear()
                self._counted_ms = 0.0
        self._next_ms = at + block_ms * self._pace
        return at
