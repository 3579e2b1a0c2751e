"""The real pyaudio speaker on a PulseAudio null sink, judged by what the sink's monitor heard.

Nothing here sleeps for a fixed time and hopes the device got there: each test waits (with a
generous deadline) for what it needs to have happened, and times what the monitor recorded
by its sample positions (``MonitorRecorder.recorded_at``), not by when this process happened
to read them, so a busy machine cannot fail it. What a busy machine can do is starve the
device into dropouts, which PortAudio reports and which loosen the count by a device buffer
each (``_tolerance_ms``); without one, the count is exact to 10 ms.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pytest

from bargein.adapters.audio.pyaudio_speaker import PyAudioSpeaker
from tests.support import REPO
from tests.support.pulse_env import (
    DEADLINE_S,
    MonitorRecorder,
    sounding_ms,
    sounding_span,
    speech_like,
    wait_until,
)

pytestmark = [pytest.mark.device, pytest.mark.usefixtures("pulse")]
MS = 24  # samples per ms


def _play(speaker: PyAudioSpeaker, item_id: str, pcm: bytes, chunk_ms: int = 100) -> None:
    step = chunk_ms * MS * 2
    for i in range(0, len(pcm), step):
        speaker.play(item_id, pcm[i : i + step])


def _heard(speaker: PyAudioSpeaker, item_id: str) -> float:
    return speaker.heard_ms().get(item_id, 0.0)


def _wait_heard(speaker: PyAudioSpeaker, item_id: str, ms: float) -> None:
    wait_until(lambda: _heard(speaker, item_id) >= ms, DEADLINE_S,
               f"{item_id}: {ms} ms never sounded")


def _wait_idle(speaker: PyAudioSpeaker) -> None:
    wait_until(lambda: speaker.idle, DEADLINE_S, "the speaker never went idle")


class _StreamCalls:
    """Stands in for the speaker's PortAudio stream and notes every method called on it."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.called: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.called.append(name)
        return getattr(self.stream, name)


def _tolerance_ms(speaker: PyAudioSpeaker) -> float:
    """How far the speaker's count may be from what the monitor heard: 10 ms (the monitor's own
    capture and 0.5 ms windows), plus a device buffer for each dropout PortAudio reported.

    When a starved machine lets the device run dry, PortAudio's recovery drops audio that was
    already inside the device, which the speaker had counted by its DAC time and cannot know
    was lost: a limit of the PortAudio path (``PulseSpeaker`` keeps a deep server-side buffer
    instead). Without a dropout the count must be exact to 10 ms."""
    return 10.0 + speaker.underruns * speaker.output_latency_ms


def _probe(speaker: PyAudioSpeaker, item_id: str) -> tuple[float, float, float]:
    """(before, heard ms, after): heard_ms() was taken between the two monotonic times."""
    before = time.monotonic()
    heard = _heard(speaker, item_id)
    return before, heard, time.monotonic()


@pytest.mark.parametrize("block", [240, 480, 960])
def test_flush_reports_what_the_monitor_heard(block: int) -> None:
    speaker = PyAudioSpeaker(block_frames=block)
    recorder = MonitorRecorder()
    length_ms = 5000  # long enough that the flush below always lands mid-item
    try:
        recorder.wait_recording()
        item = speech_like(length_ms)
        _play(speaker, "item_a", item)
        _wait_heard(speaker, "item_a", 400)
        probe = _probe(speaker, "item_a")
        _wait_heard(speaker, "item_a", 600)
        calls = _StreamCalls(speaker._stream)
        speaker._stream = calls
        flush_began = time.monotonic()
        report = speaker.flush()
        flush_ended = time.monotonic()
        speaker._stream = calls.stream
        # flush never waits for the device: at most it reads the stream's clock
        assert set(calls.called) <= {"get_time"}, calls.called
        _wait_idle(speaker)
        after = speaker.heard_ms()
    finally:
        speaker.close()
        recorded = recorder.stop()
    assert report.heard_ms["item_a"] < length_ms, "the flush came after the item had ended"
    _, end = sounding_span(recorded)
    heard_on_monitor = sounding_ms(recorded)
    tolerance = _tolerance_ms(speaker)
    assert abs(report.heard_ms["item_a"] - heard_on_monitor) <= tolerance, speaker.underruns
    assert after["item_a"] == report.heard_ms["item_a"]
    # Mid-play, heard_ms() agrees with what the monitor had recorded at that moment (give or
    # take its own few ms of capture latency), not with what had been handed to the device.
    before, probed, probed_after = probe
    on_monitor_before = recorder.sounded_by(recorded, before)
    on_monitor_after = recorder.sounded_by(recorded, probed_after)
    assert on_monitor_before - tolerance <= probed <= on_monitor_after + tolerance, (
        on_monitor_before, probed, on_monitor_after, speaker.underruns)
    # Silence arrives when the flush said it would: no more sound after the flush than it
    # said (the monitor adds its own ~5-10 ms). Counted in sound, not in time: a dropout after
    # the flush delays the rest by its silence, but cannot make more of it.
    sounded_after = sounding_ms(recorded[recorder.recorded_by(flush_ended) : end])
    assert sounded_after <= report.silent_after_ms + 15.0, (
        sounded_after, (recorder.recorded_at(end - 1) - flush_began) * 1000, report,
        speaker.underruns)
    # and that is no later than the device's output latency plus one block and the 5 ms fade
    bound = speaker.output_latency_ms + block / MS + 5.0
    assert report.silent_after_ms <= bound + tolerance - 5.0, (report, speaker.underruns)
    # The fade: the last 5 ms ramp down instead of cutting off: the sound's last 2 ms are far
    # below the item's own level there (the fade is of the 5 ms that would have come next;
    # compared with the item, as a dropout may have left silence before it on the monitor).
    tail = np.abs(recorded[end - 2 * MS : end].astype(np.int32))
    cut = round(report.heard_ms["item_a"] * MS) - 5 * MS
    level = np.abs(np.frombuffer(item, dtype="<i2")[cut : cut + 5 * MS].astype(np.int32)).max()
    assert tail.max() < 0.5 * level, (tail.max(), level)


def test_heard_counts_each_item_and_grows_only_as_audio_sounds() -> None:
    speaker = PyAudioSpeaker(block_frames=240)
    recorder = MonitorRecorder()
    try:
        recorder.wait_recording()
        assert speaker.idle
        handed = time.monotonic()
        _play(speaker, "first", speech_like(300, seed=1))
        _play(speaker, "second", speech_like(3000, seed=2))
        assert not speaker.idle
        # handed over is not heard: no more than the time since, latency aside
        early = _heard(speaker, "first")
        assert early <= (time.monotonic() - handed) * 1000, early
        _wait_heard(speaker, "first", 300)
        _wait_heard(speaker, "second", 100)
        before = time.monotonic()
        mid = speaker.heard_ms()
        probed_after = time.monotonic()
        report = speaker.flush()
        _wait_idle(speaker)
    finally:
        speaker.close()
        recorded = recorder.stop()
    assert mid["first"] == pytest.approx(300.0)
    # The heard total follows what the monitor had recorded then, not what was handed over.
    on_monitor_before = recorder.sounded_by(recorded, before)
    on_monitor_after = recorder.sounded_by(recorded, probed_after)
    total_then = mid["first"] + mid["second"]
    tolerance = _tolerance_ms(speaker)
    assert on_monitor_before - tolerance <= total_then <= on_monitor_after + tolerance, (
        on_monitor_before, total_then, on_monitor_after, speaker.underruns)
    assert report.heard_ms["first"] == pytest.approx(300.0)
    assert report.heard_ms["second"] < 3000.0, "the flush came after the item had ended"
    total = report.heard_ms["first"] + report.heard_ms["second"]
    assert abs(total - sounding_ms(recorded)) <= tolerance, speaker.underruns


def test_underrun_plays_silence_not_stale_samples() -> None:
    speaker = PyAudioSpeaker(block_frames=480)
    recorder = MonitorRecorder()
    try:
        recorder.wait_recording()
        speaker.play("a", speech_like(200, seed=3))
        _wait_idle(speaker)
        time.sleep(0.3)  # at least 300 ms with nothing to play: the device runs dry
        speaker.play("b", speech_like(200, seed=4))
        _wait_idle(speaker)
        heard = speaker.heard_ms()
    finally:
        speaker.close()
        recorded = recorder.stop()
    assert heard == {"a": pytest.approx(200.0), "b": pytest.approx(200.0)}
    # 400 ms of sound with a silent gap of at least 200 ms between: no block was replayed.
    start, end = sounding_span(recorded)
    assert sounding_ms(recorded) == pytest.approx(400.0, abs=_tolerance_ms(speaker))
    assert (end - start) / MS - sounding_ms(recorded) >= 200.0


def test_device_at_48k_is_resampled_and_still_counted_exactly() -> None:
    speaker = PyAudioSpeaker(block_frames=480, device_rate=48000)
    recorder = MonitorRecorder()
    try:
        assert speaker.device_rate == 48000
        recorder.wait_recording()
        _play(speaker, "x", speech_like(3000, seed=5))
        _wait_heard(speaker, "x", 500)
        report = speaker.flush()
        _wait_idle(speaker)
    finally:
        speaker.close()
        recorded = recorder.stop()
    assert report.heard_ms["x"] < 3000.0, "the flush came after the item had ended"
    assert abs(report.heard_ms["x"] - sounding_ms(recorded)) <= _tolerance_ms(speaker)


@pytest.mark.parametrize(
    ("adapter", "kind"),
    [("pyaudio_speaker.PyAudioSpeaker", "output"), ("pyaudio_mic.PyAudioMicrophone", "input")],
)
def test_no_audio_server_is_one_typed_line(adapter: str, kind: str) -> None:
    module, name = adapter.split(".")
    env = {**os.environ, "PULSE_SERVER": "unix:/nonexistent/bargein-socket"}
    code = (
        "from bargein.errors import BargeinError\n"
        f"from bargein.adapters.audio.{module} import {name}\n"
        f"try:\n    {name}()\n"
        "except BargeinError as e:\n    print(type(e).__name__, '|', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
        timeout=DEADLINE_S,
    )
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith(f"AudioDeviceError | no usable audio {kind} device")
    assert out.stderr == ""  # no ALSA/JACK probing noise, no traceback
