"""`bargein talk` with its defaults — the microphone and the speaker — on real PortAudio
streams: speech goes into PulseAudio's virtual microphone, the speaker's monitor records
what a listener would have heard."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bargein.adapters.audio.wav import write_wav
from bargein.sim.voice import speak
from tests.cli.test_cli import SCRIPT, env
from tests.support.pulse_env import MIC, MonitorRecorder, speech_like
from tests.support.sim_support import serving, silence

pytestmark = [pytest.mark.device, pytest.mark.usefixtures("pulse")]


def bursts(samples: np.ndarray, gap_ms: int = 300, threshold: int = 64) -> list[tuple[int, int]]:
    """(start, end) sample spans of sound separated by at least ``gap_ms`` of quiet."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold)
    spans: list[tuple[int, int]] = []
    for index in loud.tolist():
        if spans and index - spans[-1][1] < gap_ms * 24:
            spans[-1] = (spans[-1][0], index + 1)
        else:
            spans.append((index, index + 1))
    return spans


async def test_talk_on_microphone_and_speaker(tmp_path: Path) -> None:
    user = write_wav(tmp_path / "user.wav", speech_like(600) + silence(1400)
                     + speech_like(500, seed=1) + silence(500))
    monitor = MonitorRecorder()
    try:
        async with serving(script=SCRIPT, speed=4.0) as sim:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bargein", "talk", "--url", sim.url,
                "--log-format", "json", "--log-level", "info",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env())
            await asyncio.sleep(1.5)  # connected, microphone streaming
            await asyncio.to_thread(subprocess.run, ["paplay", "-d", MIC, str(user)],
                                    check=True, timeout=20)
            await asyncio.sleep(4)  # the second answer plays out
            proc.send_signal(signal.SIGINT)
            out, err = await asyncio.wait_for(proc.communicate(), 20)
            record = sim.records[0]
    finally:
        heard = monitor.stop()
    assert proc.returncode == 130, err.decode()  # Ctrl-C
    logs = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    (interrupted,) = [x for x in logs if x["event"] == "interrupted"]
    (truncate,) = record.client_events("conversation.item.truncate")
    assert interrupted["settlements"][0]["audio_end_ms"] == truncate["audio_end_ms"]
    assert "BARGE-IN" in out.decode()

    first = np.frombuffer(speak(SCRIPT[0], "synthetic"), dtype="<i2")
    lead = int(np.flatnonzero(np.abs(first.astype(np.int32)) > 64)[0])
    spans = bursts(heard)
    assert len(spans) == 2, f"the cut answer, then the next one whole: {spans}"
    played_ms = (spans[0][1] - (spans[0][0] - lead)) / 24
    # what the speaker's monitor heard of the first answer is what the server was told
    assert abs(played_ms - truncate["audio_end_ms"]) <= 15, (played_ms, truncate)
    second = np.frombuffer(speak(SCRIPT[1], "synthetic"), dtype="<i2")
    ((start, end),) = bursts(second, gap_ms=10**6)
    assert abs((spans[1][1] - spans[1][0]) - (end - start)) <= 24 * 15, "the next answer whole"
