"""The real pyaudio speaker on a PulseAudio null sink, judged by what the sink's monitor heard."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from bargein.adapters.audio.pyaudio_speaker import PyAudioSpeaker
from tests.support.pulse_env import (
    REPO,
    MonitorRecorder,
    sounding_ms,
    sounding_span,
    speech_like,
)

pytestmark = [pytest.mark.device, pytest.mark.usefixtures("pulse")]
MS = 24  # samples per ms


def _play(speaker: PyAudioSpeaker, item_id: str, pcm: bytes, chunk_ms: int = 100) -> None:
    step = chunk_ms * MS * 2
    for i in range(0, len(pcm), step):
        speaker.play(item_id, pcm[i : i + step])


@pytest.mark.parametrize("block", [240, 480, 960])
def test_flush_reports_what_the_monitor_heard(block: int) -> None:
    speaker = PyAudioSpeaker(block_frames=block)
    recorder = MonitorRecorder()
    try:
        time.sleep(0.15)
        _play(speaker, "item_a", speech_like(1500))
        time.sleep(0.4)
        probed_at = time.monotonic()
        probed = speaker.heard_ms()["item_a"]
        time.sleep(0.2)
        flushed_at = time.monotonic()
        report = speaker.flush()
        assert time.monotonic() - flushed_at < 0.005  # flush never waits for the device
        time.sleep(0.25 + block / 24000 * 3)
        assert speaker.idle
        after = speaker.heard_ms()
    finally:
        speaker.close()
        recorded = recorder.stop()
    start, end = sounding_span(recorded)
    heard_on_monitor = sounding_ms(recorded)
    assert abs(report.heard_ms["item_a"] - heard_on_monitor) <= 10.0
    assert after["item_a"] == report.heard_ms["item_a"]
    # Mid-play, heard_ms() agrees with the monitor at that moment (which lags by its own
    # few ms of capture latency), not with what had been handed to the device.
    on_monitor_then = (recorder.arrived_by(probed_at) - start) / MS
    assert abs(probed - on_monitor_then) <= 10.0
    # Silence arrives when the flush said it would (the monitor adds its own ~5-10 ms), and
    # that is no later than the device's output latency plus one block and the 5 ms fade.
    silent_after_ms = (recorder.arrival_time(end - 1) - flushed_at) * 1000
    assert silent_after_ms <= report.silent_after_ms + 15.0
    bound = speaker.output_latency_ms + block / MS + 5.0
    assert report.silent_after_ms <= bound + 5.0
    # The fade: the last 5 ms ramp down instead of cutting off.
    tail = np.abs(recorded[end - 2 * MS : end].astype(np.int32))
    assert tail.max() < 0.5 * np.abs(recorded[end - 10 * MS : end - 5 * MS].astype(np.int32)).max()


def test_heard_counts_each_item_and_grows_only_as_audio_sounds() -> None:
    speaker = PyAudioSpeaker(block_frames=240)
    recorder = MonitorRecorder()
    try:
        time.sleep(0.15)
        assert speaker.idle
        _play(speaker, "first", speech_like(300, seed=1))
        _play(speaker, "second", speech_like(1000, seed=2))
        assert not speaker.idle
        assert speaker.heard_ms().get("first", 0.0) < 20.0  # handed over is not heard
        time.sleep(0.7)
        mid = speaker.heard_ms()
        report = speaker.flush()
        time.sleep(0.3)
    finally:
        speaker.close()
        recorded = recorder.stop()
    assert mid["first"] == pytest.approx(300.0)
    # The device's latency keeps the heard total behind the wall clock (0.7 s since play).
    assert 300.0 < mid["first"] + mid["second"] < 700.0
    assert report.heard_ms["first"] == pytest.approx(300.0)
    total = report.heard_ms["first"] + report.heard_ms["second"]
    assert abs(total - sounding_ms(recorded)) <= 10.0


def test_underrun_plays_silence_not_stale_samples() -> None:
    speaker = PyAudioSpeaker(block_frames=480)
    recorder = MonitorRecorder()
    try:
        time.sleep(0.15)
        speaker.play("a", speech_like(200, seed=3))
        time.sleep(0.5)
        assert speaker.idle
        speaker.play("b", speech_like(200, seed=4))
        time.sleep(0.45)
        heard = speaker.heard_ms()
    finally:
        speaker.close()
        recorded = recorder.stop()
    assert heard == {"a": pytest.approx(200.0), "b": pytest.approx(200.0)}
    # 400 ms of sound with a silent gap of at least 200 ms between: no block was replayed.
    start, end = sounding_span(recorded)
    assert sounding_ms(recorded) == pytest.approx(400.0, abs=10.0)
    assert (end - start) / MS - sounding_ms(recorded) >= 200.0


def test_device_at_48k_is_resampled_and_still_counted_exactly() -> None:
    speaker = PyAudioSpeaker(block_frames=480, device_rate=48000)
    recorder = MonitorRecorder()
    try:
        assert speaker.device_rate == 48000
        time.sleep(0.15)
        _play(speaker, "x", speech_like(1000, seed=5))
        time.sleep(0.5)
        report = speaker.flush()
        time.sleep(0.3)
    finally:
        speaker.close()
        recorded = recorder.stop()
    assert abs(report.heard_ms["x"] - sounding_ms(recorded)) <= 10.0


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
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=30
    )
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith(f"AudioDeviceError | no usable audio {kind} device")
    assert out.stderr == ""  # no ALSA/JACK probing noise, no traceback
