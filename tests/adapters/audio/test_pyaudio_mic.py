"""The real pyaudio microphone, fed by paplay into the virtual microphone sink."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from bargein.adapters.audio.protocols import AudioFrame
from bargein.adapters.audio.pyaudio_mic import PyAudioMicrophone
from bargein.adapters.audio.wav import write_wav
from tests.support.pulse_env import MIC, MS, sounding_span, speech_like

pytestmark = [pytest.mark.device, pytest.mark.usefixtures("pulse")]
FRAME_BYTES = 20 * MS * 2


async def _capture(mic: PyAudioMicrophone, seconds: float) -> list[AudioFrame]:
    frames: list[AudioFrame] = []

    async def collect() -> None:
        async for frame in mic.frames():
            frames.append(frame)

    task = asyncio.create_task(collect())
    await asyncio.sleep(seconds)
    mic.close()
    await asyncio.wait_for(task, 2.0)
    return frames


@pytest.mark.parametrize("device_rate", [None, 48000])
async def test_injected_speech_arrives_in_timestamped_20ms_frames(
    tmp_path: Path, device_rate: int | None
) -> None:
    speech = speech_like(600, seed=7)
    write_wav(tmp_path / "speech.wav", speech)
    mic = PyAudioMicrophone(device_rate=device_rate)
    player = subprocess.Popen(
        ["bash", "-c", f"sleep 0.2; paplay -d {MIC} {tmp_path / 'speech.wav'}"]
    )
    frames = await _capture(mic, 1.5)
    player.wait(timeout=5)
    assert mic.dropped == 0
    assert len(frames) >= 60
    assert all(len(f.pcm) == FRAME_BYTES for f in frames)
    steps = np.diff([f.captured_at_ms for f in frames])
    assert np.allclose(steps, 20.0, atol=1.0)
    captured = np.frombuffer(b"".join(f.pcm for f in frames), dtype="<i2")
    start, end = sounding_span(captured)
    assert abs((end - start) / MS - 600.0) <= 10.0
    # The waveform itself came through. PulseAudio sometimes rate-adapts a fresh paplay
    # stream by ~1% (the lag then drifts by a few samples per 50 ms), so compare 50 ms windows,
    # each at its own best lag.
    ref = np.frombuffer(speech, dtype="<i2").astype(np.float64)
    window = 50 * MS
    scores = []
    for at in range(0, 500 * MS, window):
        piece = ref[at : at + window]
        scores.append(
            max(
                np.corrcoef(captured[s : s + window].astype(np.float64), piece)[0, 1]
                for s in range(max(0, start + at - 120), start + at + 120)
            )
        )
    assert np.median(scores) > 0.85, scores


async def test_a_slow_consumer_loses_the_oldest_frames_and_they_are_counted() -> None:
    mic = PyAudioMicrophone(max_frames=5)
    await asyncio.sleep(0.5)  # nobody reads: ~25 frames captured, the queue holds 5
    started = time.monotonic()
    first = None
    async for frame in mic.frames():
        first = frame
        break
    assert time.monotonic() - started < 0.05
    mic.close()
    assert first is not None
    # ~25 frames were captured while nobody read; only the newest 5 were kept.
    assert mic.dropped >= 15
