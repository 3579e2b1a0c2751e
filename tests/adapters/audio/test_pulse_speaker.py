"""The native PulseAudio speaker on a null sink, judged by sample positions in the sink's monitor.

Nothing here reads the wall clock for a verdict: the monitor recording is a sample timeline,
the item is located in it by its content, and "when the flush happened" is the position the
speaker said was sounding at that moment. Waits are on conditions with generous deadlines.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from bargein.adapters.audio import speaker as speaker_module
from bargein.adapters.audio.pulse_speaker import PulseSpeaker
from bargein.adapters.audio.pyaudio_speaker import PyAudioSpeaker
from bargein.errors import AudioDeviceError
from tests.support import REPO
from tests.support.pulse_env import SPEAKER, sounding_span, speech_like

pytestmark = [pytest.mark.device, pytest.mark.usefixtures("pulse")]
MS = 24  # samples per ms
DEADLINE_S = 30.0


def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition`` (polled), failing only after a generous deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


class Monitor:
    """Reads the speaker sink's monitor with parec; stops only once it holds what was played.

    On a loaded machine parec runs late, and stopping it drops what it had not delivered
    yet: ``stop()`` first waits (generous deadline) until the recording shows sound followed
    by ``quiet_ms`` of silence, so the end of what was played is in it.
    """

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [
                *("parec", "--latency-msec=5", "--format=s16le", "--rate=24000"),
                *("--channels=1", "--raw", "-d", f"{SPEAKER}.monitor"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._data = bytearray()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        _until(lambda: len(self._data) > 0, "the monitor to record")

    def _read(self) -> None:
        assert self._proc.stdout is not None
        while chunk := os.read(self._proc.stdout.fileno(), 4800):
            with self._lock:
                self._data += chunk

    def samples(self) -> npt.NDArray[np.int16]:
        with self._lock:
            raw = bytes(self._data[: len(self._data) // 2 * 2])
        return np.frombuffer(raw, dtype="<i2")

    def _quiet_after_sound(self, quiet_ms: int) -> bool:
        recorded = self.samples()
        loud = np.flatnonzero(np.abs(recorded.astype(np.int32)) > 64)
        return len(loud) > 0 and len(recorded) - int(loud[-1]) > quiet_ms * MS

    def stop(self, quiet_ms: int = 100) -> npt.NDArray[np.int16]:
        try:
            _until(lambda: self._quiet_after_sound(quiet_ms), "the monitor to catch up")
        finally:
            self._proc.terminate()
            self._proc.wait(timeout=DEADLINE_S)
            self._thread.join(timeout=DEADLINE_S)
        return self.samples()


def _locate(recorded: npt.NDArray[np.int16], item: npt.NDArray[np.int16]) -> int:
    """Index in ``recorded`` of the item's first sample, found by matching its content."""
    start, _ = sounding_span(recorded)
    probe = item[480:720].astype(np.int64)
    window = recorded[max(0, start - 240) : start + 2400].astype(np.int64)
    errors = [np.abs(window[i : i + len(probe)] - probe).sum() for i in range(len(window) - 720)]
    best = int(np.argmin(errors))
    assert errors[best] / len(probe) < 2.0, "the item's audio was not found on the monitor"
    return max(0, start - 240) + best - 480


def _step(samples: npt.NDArray[np.int16]) -> int:
    return int(np.abs(np.diff(samples.astype(np.int32))).max())


@pytest.mark.parametrize("block", [240, 480])
def test_flush_is_silent_within_one_block_without_a_click_and_counts_exactly(block: int) -> None:
    pcm = speech_like(1500, seed=11)
    item = np.frombuffer(pcm, dtype="<i2")
    speaker = PulseSpeaker(block_frames=block)
    recorder = Monitor()
    try:
        speaker.play("item_a", pcm)
        _until(lambda: speaker.heard_ms().get("item_a", 0.0) >= 400.0, "400 ms to sound")
        sounding_at_flush = speaker.heard_ms()["item_a"]
        report = speaker.flush()
        _until(lambda: speaker.idle, "the speaker to go idle")
        after = speaker.heard_ms()
        underruns = speaker.underruns
    finally:
        speaker.close()
        recorded = recorder.stop()
    base = _locate(recorded, item)
    _, end = sounding_span(recorded)
    heard_on_monitor = (end - base) / MS
    heard = report.heard_ms["item_a"]
    # Exact: what the speaker reports is what the monitor played, within 2 ms; unless the
    # process stalled between choosing the cut and writing it, so that the server had read
    # past the cut already (counted in late_cuts): its monitor then holds up to a block more.
    slack = 2.0 if speaker.late_cuts == 0 else block / MS
    assert abs(heard - heard_on_monitor) <= slack, (heard, heard_on_monitor, speaker.late_cuts)
    assert after["item_a"] == heard
    # Up to the cut the monitor holds the item sample for sample: nothing dropped, no gap
    # (from its first millisecond on: on a starved machine the sink's very first samples
    # were once read as silence, 1.3 of mean error over the whole item, a start not a gap).
    cut = round((heard - 5.0) * MS)
    played = recorded[base + MS : base + cut].astype(np.int32)
    assert np.abs(played - item[MS:cut].astype(np.int32)).mean() < 1.0
    # Silent within one block of the flush: from the position sounding at the flush to the
    # last audible sample on the monitor (1 ms for the interpolated clock's reading).
    assert heard_on_monitor - sounding_at_flush <= block / MS + 1.0
    assert report.silent_after_ms <= block / MS
    # No click: where the sound meets silence the steps are far below the speech's own.
    assert (
        _step(recorded[end - MS // 2 : end + 2 * MS])
        < _step(recorded[end - 15 * MS : end - 5 * MS]) / 4
    )
    assert underruns == 0


def test_each_item_counted_and_a_new_reply_plays_from_its_first_sample() -> None:
    first, second = speech_like(300, seed=1), speech_like(700, seed=2)
    speaker = PulseSpeaker(block_frames=240)
    recorder = Monitor()
    try:
        assert speaker.idle
        speaker.play("first", first)
        assert speaker.heard_ms().get("first", 0.0) < 20.0  # handed over is not heard
        _until(lambda: speaker.idle, "the first reply to play out")
        speaker.play("second", second)
        _until(lambda: speaker.idle, "the second reply to play out")
        heard = speaker.heard_ms()
        underruns = speaker.underruns
    finally:
        speaker.close()
        recorded = recorder.stop()
    assert heard == {"first": pytest.approx(300.0), "second": pytest.approx(700.0)}
    assert underruns == 0  # a new item after a silence is not a dropout
    # The second reply is on the monitor from its very first sample (no rewind ate its start).
    item = np.frombuffer(second, dtype="<i2")
    tail = recorded[sounding_span(recorded)[0] + 300 * MS :]
    base = _locate(tail, item)
    assert np.abs(tail[base : base + len(item)].astype(np.int32) - item).mean() < 1.0


def test_an_item_that_goes_on_after_running_dry_is_an_underrun() -> None:
    speaker = PulseSpeaker(block_frames=240)
    try:
        speaker.play("a", speech_like(100, seed=3))
        _until(lambda: speaker.idle, "the audio to run out")
        speaker.play("a", speech_like(100, seed=4))  # the same item, late: a dropout
        speaker.play("b", speech_like(100, seed=5))  # follows on at once: none
        _until(lambda: speaker.idle, "the audio to run out")
        speaker.play("c", speech_like(100, seed=6))  # a new item after silence: none
        assert speaker.underruns == 1
    finally:
        speaker.close()


@pytest.mark.parametrize("kind", ["pulse", "pyaudio"])
def test_each_speaker_foresees_when_its_audio_ends(kind: str) -> None:
    """``ends_in_s()``: what the session's monitor times its end-of-reply poll by. The end it
    foresees is no sooner than the audio's own length after it was given, no later than
    that plus the device's latency and a margin, and 0 once all has sounded."""
    speaker = PulseSpeaker(block_frames=240) if kind == "pulse" else PyAudioSpeaker()
    try:
        assert speaker.ends_in_s() == 0.0
        given = time.monotonic()
        speaker.play("a", speech_like(400, seed=7))
        ends_in = speaker.ends_in_s()
        asked = time.monotonic()
        latency_s = speaker.output_latency_ms / 1000
        assert asked + ends_in >= given + 0.400 - 0.002
        assert asked + ends_in <= asked + 0.400 + latency_s + 0.250
        _until(lambda: speaker.idle, "the audio to play out")
        assert speaker.ends_in_s() == 0.0
    finally:
        speaker.close()


def test_open_speaker_picks_the_native_speaker_when_a_server_answers() -> None:
    chosen = speaker_module.open_speaker()
    try:
        assert isinstance(chosen, PulseSpeaker)
    finally:
        chosen.close()


def test_open_speaker_falls_back_to_pyaudio_when_pulse_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import bargein.adapters.audio.pulse_speaker as pulse_speaker

    def unreachable(**_: object) -> PulseSpeaker:
        raise AudioDeviceError("no PulseAudio server reachable (Connection refused)")

    monkeypatch.setattr(pulse_speaker, "PulseSpeaker", unreachable)
    chosen = speaker_module.open_speaker()
    try:
        assert isinstance(chosen, PyAudioSpeaker)
    finally:
        chosen.close()
    with pytest.raises(AudioDeviceError, match="no PulseAudio server reachable"):
        speaker_module.open_speaker(backend="pulse")


@pytest.mark.parametrize("backend", ["auto", "pulse"])
def test_no_audio_server_at_all_is_one_typed_line(backend: str) -> None:
    env = {**os.environ, "PULSE_SERVER": "unix:/nonexistent/bargein-socket"}
    code = (
        "from bargein.errors import BargeinError\n"
        "from bargein.adapters.audio.speaker import open_speaker\n"
        f"try:\n    open_speaker(backend={backend!r})\n"
        "except BargeinError as e:\n    print(type(e).__name__, '|', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith("AudioDeviceError | "), lines
    assert "no PulseAudio server reachable" in lines[0]
    if backend == "auto":
        assert "no usable audio output device" in lines[0]  # pyaudio was tried too
    assert out.stderr == ""
