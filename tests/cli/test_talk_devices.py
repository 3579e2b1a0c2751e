"""`bargein talk` with its defaults — the microphone and the speaker — on real devices:
speech goes into PulseAudio's virtual microphone, the speaker's monitor records what a
listener would have heard.

The test waits for what the live view says (the session is ready, the second answer has
played) with generous deadlines, never for a fixed time, and reads what was heard from the
recorded samples themselves, so a busy machine cannot fail it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bargein.adapters.audio.wav import write_wav
from bargein.sim.voice import speak
from tests.cli.test_cli import DEADLINE_S, SCRIPT, env, lines_until
from tests.support.pulse_env import MIC, MonitorRecorder, sounding_ms, speech_like
from tests.support.sim_support import serving, silence

pytestmark = [pytest.mark.device, pytest.mark.usefixtures("pulse")]
LOUD = 64  # a sample above this is sound
FADE = 120  # samples: the 5 ms fade of a cut


def bursts(samples: np.ndarray[Any, Any], gap_ms: int = 300) -> list[tuple[int, int]]:
    """(start, end) sample spans of sound separated by at least ``gap_ms`` of quiet."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > LOUD)
    spans: list[tuple[int, int]] = []
    for index in loud.tolist():
        if spans and index - spans[-1][1] < gap_ms * 24:
            spans[-1] = (spans[-1][0], index + 1)
        else:
            spans.append((index, index + 1))
    return spans


def position_in(reply: np.ndarray[Any, Any], piece: np.ndarray[Any, Any]) -> int:
    """Where ``piece`` (recorded) sits in ``reply``: the offset of least squared difference."""
    ref = reply.astype(np.float64)
    rec = piece.astype(np.float64)
    n = len(rec)
    energy = np.concatenate(([0.0], np.cumsum(ref**2)))
    window_energy = energy[n:] - energy[:-n]
    cross = np.correlate(ref, rec, mode="valid")
    return int(np.argmin(window_energy - 2 * cross))


def heard_range_ms(reply: np.ndarray[Any, Any], recorded: np.ndarray[Any, Any], end: int
                   ) -> tuple[float, float]:
    """How much of ``reply`` was heard when the sound that ends at ``end`` was cut: located by
    the 20 ms before its fade, so silence the device inserted earlier (an underrun) cannot
    skew it. A cut inside the reply's own pause between words is known only to lie between
    the last sound before it and the next (the fade, all silence, is then not seen)."""
    window = 480
    at = position_in(reply, recorded[end - FADE - window : end - FADE])
    last_sound = at + window + FADE
    after = np.flatnonzero(np.abs(reply[last_sound:].astype(np.int32)) > LOUD)
    next_sound = last_sound + (int(after[0]) if len(after) else 0)
    return (last_sound - FADE) / 24, (next_sound + FADE) / 24


def answered_after_the_barge_in(lines: list[str]) -> bool:
    """The live view shows a barge-in, then an answer played to its end."""
    text = "".join(lines)
    return "BARGE-IN" in text and "playback_finished" in text.split("BARGE-IN", 1)[1]


async def test_talk_on_microphone_and_speaker(tmp_path: Path) -> None:
    user = write_wav(tmp_path / "user.wav", speech_like(600) + silence(1400)
                     + speech_like(500, seed=1) + silence(500))
    monitor = MonitorRecorder()
    try:
        async with serving(script=SCRIPT, speed=4.0) as sim:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bargein", "talk", "--url", sim.url,
                "--barge-in", "instant",  # the 500 ms barge-in cuts at once (two-phase: below)
                "--log-format", "json", "--log-level", "info",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env())
            # connected, the session ready, the microphone streaming: the user speaks
            shown = await lines_until(proc, lambda seen: "idle -> listening" in "".join(seen))
            await asyncio.to_thread(subprocess.run, ["paplay", "-d", MIC, str(user)],
                                    check=True, timeout=DEADLINE_S)
            shown += await lines_until(proc, answered_after_the_barge_in)
            proc.send_signal(signal.SIGINT)
            out, err = await asyncio.wait_for(proc.communicate(), DEADLINE_S)
            record = sim.records[0]
    finally:
        heard = monitor.stop()
    assert proc.returncode == 130, err.decode()  # Ctrl-C
    logs = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    (interrupted,) = [x for x in logs if x["event"] == "interrupted"]
    (truncate,) = record.client_events("conversation.item.truncate")
    assert interrupted["settlements"][0]["audio_end_ms"] == truncate["audio_end_ms"]
    assert "BARGE-IN" in "".join(shown) + out.decode()

    first = np.frombuffer(speak(SCRIPT[0], "synthetic"), dtype="<i2")
    second = np.frombuffer(speak(SCRIPT[1], "synthetic"), dtype="<i2")
    spans = bursts(heard)
    assert len(spans) == 2, f"the cut answer, then the next one whole: {spans}"
    # what the speaker's monitor heard of the first answer is what the server was told
    low, high = heard_range_ms(first, heard, spans[0][1])
    assert low - 15 <= truncate["audio_end_ms"] <= high + 15, (low, high, truncate)
    # the next answer whole: all of its sound, and it ends as it should
    start, end = spans[1]
    assert abs(sounding_ms(heard[start:end]) - sounding_ms(second)) <= 15, "the next answer whole"
    ((_, second_end),) = bursts(second, gap_ms=10**6)
    assert abs(position_in(second, heard[end - 480 : end]) + 480 - second_end) <= 24 * 15
