"""A minimal ctypes binding of libpulse's asynchronous API: what a playback stream needs.

Only the calls ``PulseSpeaker`` makes: a threaded main loop, a context, one playback stream
with its buffer attributes, write/flush/trigger, timing info and the underflow notice. Every
call that touches the context or the stream must hold the main loop's lock (``locked()``);
callbacks run on the main loop's own thread. libpulse ships with every PulseAudio and
PipeWire-pulse installation (Debian: ``libpulse0``); nothing is compiled.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

from bargein.errors import AudioDeviceError

# pulse/def.h
CONTEXT_READY, CONTEXT_FAILED, CONTEXT_TERMINATED = 4, 5, 6
STREAM_READY, STREAM_FAILED, STREAM_TERMINATED = 2, 3, 4
OPERATION_RUNNING = 0
CONTEXT_NOAUTOSPAWN = 0x1
STREAM_INTERPOLATE_TIMING = 0x2
STREAM_AUTO_TIMING_UPDATE = 0x8
STREAM_ADJUST_LATENCY = 0x2000
SEEK_RELATIVE = 0
SEEK_ABSOLUTE = 1
SAMPLE_S16LE = 3


class SampleSpec(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("rate", ctypes.c_uint32), ("channels", ctypes.c_uint8)]


class BufferAttr(ctypes.Structure):
    _fields_ = [
        ("maxlength", ctypes.c_uint32),
        ("tlength", ctypes.c_uint32),
        ("prebuf", ctypes.c_uint32),
        ("minreq", ctypes.c_uint32),
        ("fragsize", ctypes.c_uint32),
    ]


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class TimingInfo(ctypes.Structure):
    _fields_ = [
        ("timestamp", _Timeval),
        ("synchronized_clocks", ctypes.c_int),
        ("sink_usec", ctypes.c_uint64),
        ("source_usec", ctypes.c_uint64),
        ("transport_usec", ctypes.c_uint64),
        ("playing", ctypes.c_int),
        ("write_index_corrupt", ctypes.c_int),
        ("write_index", ctypes.c_int64),
        ("read_index_corrupt", ctypes.c_int),
        ("read_index", ctypes.c_int64),
        ("configured_sink_usec", ctypes.c_uint64),
        ("configured_source_usec", ctypes.c_uint64),
        ("since_underrun", ctypes.c_int64),
    ]


NOTIFY_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
SUCCESS_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)

_P = ctypes.c_void_p
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "pa_threaded_mainloop_new": (_P, []),
    "pa_threaded_mainloop_free": (None, [_P]),
    "pa_threaded_mainloop_start": (ctypes.c_int, [_P]),
    "pa_threaded_mainloop_stop": (None, [_P]),
    "pa_threaded_mainloop_lock": (None, [_P]),
    "pa_threaded_mainloop_unlock": (None, [_P]),
    "pa_threaded_mainloop_wait": (None, [_P]),
    "pa_threaded_mainloop_signal": (None, [_P, ctypes.c_int]),
    "pa_threaded_mainloop_get_api": (_P, [_P]),
    "pa_context_new": (_P, [_P, ctypes.c_char_p]),
    "pa_context_set_state_callback": (None, [_P, NOTIFY_CB, _P]),
    "pa_context_connect": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_int, _P]),
    "pa_context_get_state": (ctypes.c_int, [_P]),
    "pa_context_errno": (ctypes.c_int, [_P]),
    "pa_context_disconnect": (None, [_P]),
    "pa_context_unref": (None, [_P]),
    "pa_strerror": (ctypes.c_char_p, [ctypes.c_int]),
    "pa_stream_new": (_P, [_P, ctypes.c_char_p, ctypes.POINTER(SampleSpec), _P]),
    "pa_stream_set_state_callback": (None, [_P, NOTIFY_CB, _P]),
    "pa_stream_set_underflow_callback": (None, [_P, NOTIFY_CB, _P]),
    "pa_stream_connect_playback": (
        ctypes.c_int,
        [_P, ctypes.c_char_p, ctypes.POINTER(BufferAttr), ctypes.c_int, _P, _P],
    ),
    "pa_stream_get_state": (ctypes.c_int, [_P]),
    "pa_stream_write": (
        ctypes.c_int,
        [_P, ctypes.c_void_p, ctypes.c_size_t, _P, ctypes.c_int64, ctypes.c_int],
    ),
    "pa_stream_flush": (_P, [_P, SUCCESS_CB, _P]),
    "pa_stream_trigger": (_P, [_P, SUCCESS_CB, _P]),
    "pa_stream_update_timing_info": (_P, [_P, SUCCESS_CB, _P]),
    "pa_stream_get_timing_info": (ctypes.POINTER(TimingInfo), [_P]),
    "pa_stream_get_time": (ctypes.c_int, [_P, ctypes.POINTER(ctypes.c_uint64)]),
    "pa_stream_get_underflow_index": (ctypes.c_int64, [_P]),
    "pa_stream_get_buffer_attr": (ctypes.POINTER(BufferAttr), [_P]),
    "pa_stream_disconnect": (ctypes.c_int, [_P]),
    "pa_stream_unref": (None, [_P]),
    "pa_operation_get_state": (ctypes.c_int, [_P]),
    "pa_operation_unref": (None, [_P]),
}


@functools.cache
def load() -> Any:
    """libpulse with the signatures above, or AudioDeviceError when it is not installed."""
    name = ctypes.util.find_library("pulse") or "libpulse.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        raise AudioDeviceError(
            "libpulse is not installed (apt install libpulse0); no PulseAudio output"
        ) from None
    for fn, (restype, argtypes) in _SIGNATURES.items():
        func = getattr(lib, fn)
        func.restype = restype
        func.argtypes = argtypes
    return lib


class Connection:
    """A threaded main loop and a context connected to the PulseAudio (or PipeWire) server.

    Raises AudioDeviceError when no server answers within ``timeout_s``; autospawn is off,
    so a missing server is reported rather than started behind the caller's back.
    """

    def __init__(self, app_name: str = "bargein", timeout_s: float = 5.0) -> None:
        self.lib = load()
        self.loop = self.lib.pa_threaded_mainloop_new()
        self.signal_cb = NOTIFY_CB(lambda _obj, _ud: self.signal())
        self.context: int | None = None
        api = self.lib.pa_threaded_mainloop_get_api(self.loop)
        self.context = self.lib.pa_context_new(api, app_name.encode())
        self.lib.pa_context_set_state_callback(self.context, self.signal_cb, None)
        if self.lib.pa_context_connect(self.context, None, CONTEXT_NOAUTOSPAWN, None) < 0:
            reason = self.error()
            self._free()
            raise AudioDeviceError(f"no PulseAudio server reachable ({reason})")
        self.lib.pa_threaded_mainloop_start(self.loop)
        with self.locked():
            state = self.wait_for(
                lambda: self.lib.pa_context_get_state(self.context),
                {CONTEXT_READY, CONTEXT_FAILED, CONTEXT_TERMINATED},
                timeout_s,
            )
            reason = self.error() if state != CONTEXT_READY else ""
        if state != CONTEXT_READY:
            self.close()
            raise AudioDeviceError(f"no PulseAudio server reachable ({reason or 'timed out'})")

    def error(self) -> str:
        code = self.lib.pa_context_errno(self.context)
        return str(self.lib.pa_strerror(code).decode())

    def signal(self) -> None:
        """Wake whoever waits in ``wait_for`` (called from callbacks on the loop's thread)."""
        self.lib.pa_threaded_mainloop_signal(self.loop, 0)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.lib.pa_threaded_mainloop_lock(self.loop)
        try:
            yield
        finally:
            self.lib.pa_threaded_mainloop_unlock(self.loop)

    def wait_for(self, poll: Callable[[], int], until: set[int], timeout_s: float) -> int:
        """With the lock held: wait for callbacks until ``poll()`` is in ``until`` (or time out).

        The wait is woken by the callbacks' ``signal()``; the deadline is checked at each
        wake-up (a server that answers nothing at all is caught by libpulse's own timeouts,
        which fail the context or the operation and so wake the waiter).
        """
        deadline = time.monotonic() + timeout_s
        state = poll()
        while state not in until and time.monotonic() < deadline:
            self.lib.pa_threaded_mainloop_wait(self.loop)
            state = poll()
        return int(state)

    def wait_operation(self, op: int | None, timeout_s: float = 2.0) -> None:
        """With the lock held: wait until ``op`` is done, then release it."""
        if not op:
            return
        self.wait_for(
            lambda: self.lib.pa_operation_get_state(op) if op else 1,
            {1, 2},
            timeout_s,
        )
        self.lib.pa_operation_unref(op)

    def close(self) -> None:
        if self.loop is None:
            return
        with self.locked():
            if self.context:
                self.lib.pa_context_disconnect(self.context)
        self.lib.pa_threaded_mainloop_stop(self.loop)
        self._free()

    def _free(self) -> None:
        if self.context:
            self.lib.pa_context_unref(self.context)
            self.context = None
        if self.loop is not None:
            self.lib.pa_threaded_mainloop_free(self.loop)
            self.loop = None
