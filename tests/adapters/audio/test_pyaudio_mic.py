"""The real pyaudio microphone, fed by paplay into the virtual microphone sink.

The tests wait for what they need (the first frame, the end of the injected speech, frames
dropped) with generous deadlines, never for a fixed time, so a busy machine cannot fail them.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from bargein.adapters.audio.protocols import AudioFrame
from bargein.adapters.audio.pyaudio_mic import PyAudioMicrophone
from bargein.adapters.audio.wav import write_wav
from tests.support.pulse_env import DEADLINE_S, MIC, MS, sounding_span, speech_like

pytestmark = [pytest.mark.device, pytest.mark.usefixtures("pulse")]
FRAME_BYTES = 20 * MS * 2


async def _capture(
    mic: PyAudioMicrophone,
    started: Callable[[], None],
    done: Callable[[list[AudioFrame]], bool],
) -> list[AudioFrame]:
    """Frames from the first until ``done(frames)``; ``started()`` once the first is in."""
    frames: list[AudioFrame] = []

    async def collect() -> None:
        async for frame in mic.frames():
            frames.append(frame)
            if len(frames) == 1:
                started()
            if done(frames):
                return

    try:
        await asyncio.wait_for(collect(), DEADLINE_S)
    finally:
        mic.close()
    return frames


def _next_without_waiting(frames: AsyncIterator[AudioFrame]) -> AudioFrame:
    """The iterator's next frame, which must be there already: it may not wait for one."""
    step = cast(Coroutine[Any, Any, AudioFrame], frames.__anext__())
    try:
        step.send(None)
    except StopIteration as finished:
        return cast(AudioFrame, finished.value)
    step.close()
    raise AssertionError("no frame was waiting: the iterator had to wait for the device")


@pytest.mark.parametrize("device_rate", [None, 48000])
async def test_injected_speech_arrives_in_timestamped_20ms_frames(
    tmp_path: Path, device_rate: int | None
) -> None:
    speech = speech_like(600, seed=7)
    write_wav(tmp_path / "speech.wav", speech)
    # room for every frame of the test: this consumer never falls behind by design
    mic = PyAudioMicrophone(device_rate=device_rate, max_frames=10_000)
    players: list[subprocess.Popen[bytes]] = []

    def start_speaking() -> None:  # the microphone is capturing: the user speaks
        players.append(subprocess.Popen(["paplay", "-d", MIC, str(tmp_path / "speech.wav")]))

    def spoken_and_quiet(frames: list[AudioFrame]) -> bool:
        """paplay has finished, its speech came through and 500 ms of silence followed."""
        if players[0].poll() is None or len(frames) < 26:
            return False
        loud = [bool(np.abs(np.frombuffer(f.pcm, dtype="<i2")).max() > 64) for f in frames]
        return any(loud) and not any(loud[-25:])

    try:
        frames = await _capture(mic, start_speaking, spoken_and_quiet)
    finally:
        for player in players:
            player.wait(timeout=DEADLINE_S)
    assert players[0].returncode == 0
    assert mic.dropped == 0
    assert len(frames) >= 55  # 600 ms of speech and the 500 ms of quiet after it
    assert all(len(f.pcm) == FRAME_BYTES for f in frames)
    steps = np.diff([f.captured_at_ms for f in frames])
    assert np.allclose(steps, 20.0, atol=1.0), steps
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
    try:
        # nobody reads: the queue holds the newest 5 frames, the older ones are dropped
        deadline = asyncio.get_running_loop().time() + DEADLINE_S
        while mic.dropped < 15:
            assert asyncio.get_running_loop().time() < deadline, "no frame was ever dropped"
            await asyncio.sleep(0.01)
        frames = cast(AsyncGenerator[AudioFrame, None], mic.frames())  # an async generator
        first = await asyncio.wait_for(anext(frames), DEADLINE_S)
        # the queue was full: it is handed over whole, the rest of it there at once
        rest = [_next_without_waiting(frames) for _ in range(4)]
        await frames.aclose()
    finally:
        mic.close()
    assert all(len(frame.pcm) == FRAME_BYTES for frame in (first, *rest))
    assert mic.dropped >= 15
