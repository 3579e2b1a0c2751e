"""``bargein talk`` in a room (issue 12): an open speaker whose sound leaks back into the
microphone at -20 dB, 30 ms later, on the real pyaudio microphone and PulseAudio speaker of
the private PulseAudio, against the simulator. With its defaults on the speaker (two-phase
barge-in, Silero VAD, echo cancellation): the reply's own echo never interrupts it, a cough
over it does not cancel it, a "yeah" ducks it and it resumes, and the user talking over it
commits one barge-in that cancels and truncates the reply.

The lab (``bench/lab_room.py``) measures the same scene at more levels and delays, with
rates and latencies; this test holds the behaviour."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bargein.adapters.audio.wav import write_wav
from bargein.sim.voice import speak
from tests.cli.test_cli import env
from tests.support.pulse_env import DEADLINE_S, MonitorRecorder, echo_room, sounding_ms
from tests.support.sim_support import serving

pytestmark = [pytest.mark.device, pytest.mark.e2e, pytest.mark.usefixtures("pulse")]

QUESTION = "What time does the train leave tomorrow morning?"
ANSWER = (
    "The first train leaves at half past six from platform four, and it stops at every "
    "station until the river. If you would rather not change, take the express at ten past "
    "nine: it is a little dearer, but you will be there before noon with time for lunch, "
    "and the views along the coast are lovely in the morning light."
)
INTERRUPTION = "Wait, stop please, I need to ask you something else about the ticket."


def cough() -> bytes:
    """150 ms of noise with a fast attack and a decay, at a speaking level: a cough."""
    rng = np.random.default_rng(7)
    n = 150 * 24
    envelope = np.minimum(1.0, np.arange(n) / 240) * np.exp(-np.arange(n) / (n / 3))
    return (12000 * envelope * rng.standard_normal(n)).clip(-32767, 32767).astype("<i2").tobytes()


async def read_lines(proc: asyncio.subprocess.Process, seen: list[str]) -> None:
    """Keep the live view's lines as they come, so that what was shown by any moment is
    known then (a snapshot of ``seen``)."""
    assert proc.stdout is not None
    while raw := await proc.stdout.readline():
        seen.append(raw.decode())


async def lines_until(seen: list[str], fragment: str) -> None:
    """Wait until a line of the live view holds ``fragment``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not any(fragment in line for line in seen):
        if loop.time() > deadline:
            raise AssertionError(f"{fragment!r} never came:\n" + "".join(seen))
        await asyncio.sleep(0.02)


async def sound_recorded(monitor: MonitorRecorder, ms: float) -> None:
    """Wait until the speaker has sounded ``ms`` more than when called (its monitor says)."""
    start = sounding_ms(monitor.so_far())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while sounding_ms(monitor.so_far()) < start + ms:
        if loop.time() > deadline:
            raise AssertionError(f"the speaker did not sound {ms} ms more")
        await asyncio.sleep(0.05)


async def test_echo_never_interrupts_a_cough_cancels_nothing_and_speech_cuts_once(
        tmp_path: Path) -> None:
    question = write_wav(tmp_path / "q.wav", speak(QUESTION, "espeak"))
    coughed = write_wav(tmp_path / "cough.wav", cough())
    talking = write_wav(tmp_path / "stop.wav", speak(INTERRUPTION, "espeak"))
    backchannel = write_wav(tmp_path / "yeah.wav", speak("Yeah.", "espeak"))  # 340 ms
    seen: list[str] = []
    with echo_room(f"room{os.getpid()}") as (speaker, mic):
        monitor = MonitorRecorder(sink=speaker)
        try:
            # in real time: the reply is still being generated when the user cuts it
            async with serving(script=(ANSWER, "Of course, go ahead."), speed=1.0,
                               voice="espeak") as sim:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bargein", "talk", "--url", sim.url,
                    "--log-format", "json", "--log-level", "info",
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                    env=env(PULSE_SINK=speaker, PULSE_SOURCE=f"{mic}.monitor"))
                reader = asyncio.create_task(read_lines(proc, seen))
                try:
                    await lines_until(seen, "idle -> listening")
                    mode = next(line for line in seen if line.startswith("talking to"))
                    await asyncio.to_thread(subprocess.run, ["paplay", "-d", mic, str(question)],
                                            check=True, timeout=DEADLINE_S)
                    await lines_until(seen, "-> speaking")
                    await sound_recorded(monitor, 4000)  # 4 s of the reply, and its echo
                    echo_only = "".join(seen)
                    await asyncio.to_thread(subprocess.run, ["paplay", "-d", mic, str(coughed)],
                                            check=True, timeout=DEADLINE_S)
                    await sound_recorded(monitor, 2000)  # the cough judged, the reply on
                    after_cough = "".join(seen)
                    await asyncio.to_thread(subprocess.run,
                                            ["paplay", "-d", mic, str(backchannel)],
                                            check=True, timeout=DEADLINE_S)
                    await sound_recorded(monitor, 2000)  # ducked, judged, resumed
                    after_backchannel = "".join(seen)[len(after_cough):]
                    cancels_before = len(sim.records[0].client_events("response.cancel"))
                    await asyncio.to_thread(subprocess.run, ["paplay", "-d", mic, str(talking)],
                                            check=True, timeout=DEADLINE_S)
                    await lines_until(seen, "BARGE-IN")
                finally:
                    proc.send_signal(signal.SIGINT)
                    await asyncio.wait_for(reader, DEADLINE_S)
                    out, err = await asyncio.wait_for(proc.communicate(), DEADLINE_S)
                record = sim.records[0]
        finally:
            monitor.stop()
    assert proc.returncode == 130, err.decode()[-2000:]
    assert "two-phase barge-in on local voice detection (silero)" in mode, mode
    assert "echo is removed" in mode, mode
    assert "-> ducked" not in echo_only, "the reply's own echo ducked it:\n" + echo_only
    assert "BARGE-IN" not in after_cough and cancels_before == 0, \
        "a cough cancelled the reply:\n" + after_cough
    assert "BARGE-IN" not in after_backchannel and "-> ducked" in after_backchannel \
        and "ducked -> speaking" in after_backchannel, \
        "a backchannel ducks the reply and it resumes:\n" + after_backchannel
    logs = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    (interrupted,) = [x for x in logs if x["event"] == "interrupted"]
    assert interrupted["trigger"] in ("after_600ms@ducked", "words_heard"), interrupted
    assert len(record.client_events("response.cancel")) == 1, "bargein cancels when it cuts:\n" \
        + "".join(seen) + out.decode()
    (truncate,) = record.client_events("conversation.item.truncate")
    assert interrupted["settlements"][0]["audio_end_ms"] == truncate["audio_end_ms"] > 4000
    assert "Traceback" not in err.decode()
