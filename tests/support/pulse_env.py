"""A private PulseAudio for tests of the real pyaudio adapters, and a recorder of what it played.

``require_pulse()`` (behind the ``pulse`` fixture in ``tests/conftest.py``) starts the daemon
with scripts/start-pulse.sh when it is not already running and exports its environment
before any PyAudio is created. It skips only where no audio server can be started at all (no
``pulseaudio`` binary).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.support import REPO

PULSE_DIR = Path(os.environ.get("BARGEIN_PULSE_DIR", "/tmp/bargein-pulse"))
RATE = 24000
MS = RATE // 1000  # samples per ms
SPEAKER = "ci_speaker"
MIC = "ci_mic"
DEADLINE_S = 60.0
"""How long a device test waits for something it expects: generous, because a machine under
load is slow, and waiting costs nothing when it is not."""


def wait_until(
    condition: Callable[[], object], timeout: float = DEADLINE_S, message: str = ""
) -> None:
    """Poll ``condition`` until it is true; fail with ``message`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message or f"not true within {timeout:g} s: {condition}")
        time.sleep(0.005)


def ensure_pulse() -> None:
    """Start (or reuse) the private daemon and export its variables into ``os.environ``."""
    started = subprocess.run(
        ["bash", str(REPO / "scripts" / "start-pulse.sh")],
        capture_output=True,
        text=True,
        env={**os.environ, "BARGEIN_PULSE_DIR": str(PULSE_DIR)},
        timeout=120,
    )
    if started.returncode != 0:
        raise RuntimeError(f"scripts/start-pulse.sh failed: {started.stderr.strip()}")
    for line in (PULSE_DIR / "env").read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        os.environ[name] = value


def require_pulse() -> None:
    """Start the private daemon for a test, or skip it where no audio server can run at all."""
    if shutil.which("pulseaudio") is None or shutil.which("parec") is None:
        pytest.skip("no audio server can be started: pulseaudio/pulseaudio-utils not installed")
    ensure_pulse()


class MonitorRecorder:
    """Records a sink's monitor with parec, noting when each chunk arrived (monotonic clock).

    The reading thread may be late under load, so a chunk's arrival says only that its samples
    were recorded no later than that. The sink records in real time, so sample n was recorded
    at ``origin + n / RATE``: the earliest arrival of all, ``origin``, is when sample 0 was
    recorded (plus the monitor's own few ms of capture latency), whatever the load.
    """

    def __init__(self, sink: str = SPEAKER, latency_ms: int = 5) -> None:
        self._proc = subprocess.Popen(
            [
                "parec",
                f"--latency-msec={latency_ms}",
                "--format=s16le",
                f"--rate={RATE}",
                "--channels=1",
                "--raw",
                "-d",
                f"{sink}.monitor",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._chunks: list[bytes] = []
        self._arrivals: list[tuple[float, int]] = []  # (time, total samples received by then)
        self._total = 0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while True:
            data = os.read(fd, 480)
            if not data:
                return
            now = time.monotonic()
            self._chunks.append(data)
            self._total += len(data) // 2
            self._arrivals.append((now, self._total))

    def wait_recording(self, timeout: float = DEADLINE_S) -> None:
        """Return once the monitor delivers audio (so nothing played from now on is missed)."""
        wait_until(lambda: self._total > 0, timeout, "the monitor recorder never started")

    def so_far(self) -> npt.NDArray[np.int16]:
        """Every sample read until now, the recorder still running."""
        raw = b"".join(self._chunks)
        return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2")

    def stop(self) -> npt.NDArray[np.int16]:
        """Stop recording once everything played until now is in, and return every sample.

        parec may be behind on a busy machine: stopped at once, it would lose what it has not
        yet read from the server, the end of the sound among it."""
        now = time.monotonic()
        if self._arrivals:
            wait_until(
                lambda: self._total >= int((now - self.origin) * RATE),
                DEADLINE_S,
                "the monitor never caught up with the present",
            )
        self._proc.terminate()
        self._proc.wait(timeout=DEADLINE_S)
        self._thread.join(timeout=DEADLINE_S)
        raw = b"".join(self._chunks)
        return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2")

    @property
    def origin(self) -> float:
        """When sample 0 was recorded (monotonic clock): the earliest arrival of all, taken
        back by the samples that had arrived with it (the more arrivals, the closer)."""
        if not self._arrivals:
            raise AssertionError("the monitor recorded nothing")
        return min(at - total / RATE for at, total in self._arrivals)

    def recorded_by(self, moment: float) -> int:
        """How many samples the monitor had recorded by ``moment`` (monotonic clock)."""
        return max(0, int((moment - self.origin) * RATE))

    def sounded_by(self, recorded: npt.NDArray[np.int16], moment: float) -> float:
        """Milliseconds of sound (``sounding_ms``) among what the monitor had recorded by
        ``moment``: a device that ran dry meanwhile recorded silence, which is not counted."""
        return sounding_ms(recorded[: self.recorded_by(moment)])

    def recorded_at(self, sample_index: int) -> float:
        """When the monitor recorded ``sample_index`` (monotonic clock)."""
        return self.origin + (sample_index + 1) / RATE

    def arrived_by(self, moment: float) -> int:
        """How many samples this process had read by ``moment``: late on a busy machine (use
        ``recorded_by`` to time the audio itself)."""
        return max((total for at, total in self._arrivals if at <= moment), default=0)

    def arrival_time(self, sample_index: int) -> float:
        """When this process read the chunk holding ``sample_index``: late on a busy machine
        (use ``recorded_at`` to time the audio itself)."""
        for at, total in self._arrivals:
            if total > sample_index:
                return at
        raise ValueError(f"sample {sample_index} was never recorded")


def sounding_span(samples: npt.NDArray[np.int16], threshold: int = 64) -> tuple[int, int]:
    """First and one-past-last sample index above ``threshold`` (raises if all silent)."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold)
    if len(loud) == 0:
        raise AssertionError("the monitor recorded only silence")
    return int(loud[0]), int(loud[-1]) + 1


def speech_like(ms: int, seed: int = 0, amplitude: float = 9000.0) -> bytes:
    """A voiced, syllable-modulated harmonic signal at 24 kHz: speech-like, never silent."""
    rng = np.random.default_rng(seed)
    n = ms * RATE // 1000
    t = np.arange(n) / RATE
    f0 = 140 + 35 * np.sin(2 * np.pi * 1.3 * t + rng.uniform(0, 6.28))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 20))
    syllables = 0.65 + 0.35 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6.28))
    signal = voice * syllables
    return bytes(np.rint(amplitude * signal / np.max(np.abs(signal))).astype("<i2").tobytes())


def sounding_ms(samples: npt.NDArray[np.int16], threshold: int = 64) -> float:
    """Milliseconds of sound, in 0.5 ms windows: gaps (an underrun's silence) do not count."""
    window = MS // 2
    usable = len(samples) // window * window
    peaks = np.abs(samples[:usable].astype(np.int32)).reshape(-1, window).max(axis=1)
    return float(np.count_nonzero(peaks > threshold)) / 2


def pactl(*args: str) -> str:
    return subprocess.run(["pactl", *args], check=True, capture_output=True, text=True,
                          timeout=DEADLINE_S).stdout.strip()


@contextlib.contextmanager
def echo_room(tag: str, level_db: float = -20.0, delay_ms: int = 30) -> Iterator[tuple[str, str]]:
    """(speaker sink, microphone sink) of the caller's own, on the private PulseAudio, with
    the speaker's monitor looped into the microphone at ``level_db`` and ``delay_ms``: an
    open speaker in a room. ``adjust_time=0``: the loopback's own rate corrections moved the
    echo path by 10-40 ms under load (measured). Both are removed afterwards."""
    speaker, mic = f"{tag}_speaker", f"{tag}_mic"
    modules = []
    try:
        for sink in (speaker, mic):
            modules.append(pactl("load-module", "module-null-sink", f"sink_name={sink}",
                                 "format=s16le", "rate=24000", "channels=1"))
        loop = pactl("load-module", "module-loopback", f"source={speaker}.monitor",
                     f"sink={mic}", f"latency_msec={delay_ms}", "adjust_time=0",
                     "source_dont_move=true", "sink_dont_move=true")
        modules.append(loop)
        inputs = pactl("list", "sink-inputs").split("Sink Input #")[1:]
        index = next(i.split()[0] for i in inputs if re.search(rf"Owner Module: {loop}\b", i))
        pactl("set-sink-input-volume", index, f"{level_db:g}dB")
        for sink in (speaker, mic):  # out of a fresh null sink's first 2 s idle block
            pactl("suspend-sink", sink, "1")
            pactl("suspend-sink", sink, "0")
        yield speaker, mic
    finally:
        for module in reversed(modules):
            pactl("unload-module", module)
