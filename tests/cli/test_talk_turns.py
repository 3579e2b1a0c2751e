"""``bargein talk --turns client``: the server's turn detection off, this machine's voice
detector (Silero) ends the user's turn; bargein commits the audio and asks for the reply.
``--reply text``: written replies. Against the simulator, with a spoken WAV as the user (it
works without a microphone)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bargein.adapters.audio.wav import write_wav
from bargein.sim.record import ConnectionRecord
from bargein.sim.voice import speak
from tests.cli.test_cli import bargein
from tests.support.sim_support import serving, silence

pytestmark = pytest.mark.e2e


async def _talk(tmp_path: Path, *flags: str) -> tuple[str, ConnectionRecord]:
    """``bargein talk`` with ``flags``, a spoken question as the input, against the
    simulator (one reply: "At six."); its output, and the simulator's record."""
    question = speak("What time does the train leave tomorrow?", "espeak")
    wav = write_wav(tmp_path / "q.wav", silence(500) + question + silence(1500))
    async with serving(script=("At six.",), speed=4.0) as sim:
        code, out, err = await bargein(
            "talk", "--url", sim.url, *flags, "--input", str(wav),
            "--output", str(tmp_path / "o.wav"), "--linger", "1.5")
        record = sim.records[0]
    assert code == 0, err
    return out, record


async def test_the_local_detector_ends_the_turn_and_bargein_commits_it(tmp_path: Path) -> None:
    out, record = await _talk(tmp_path, "--turns", "client")
    (update,) = record.client_events("session.update")
    assert update["session"]["audio"]["input"]["turn_detection"] is None
    sent = [ev.type for ev in record if ev.type != "input_audio_buffer.append"]
    assert sent.count("input_audio_buffer.commit") == 1, sent
    assert sent.index("input_audio_buffer.commit") < sent.index("response.create"), sent
    (committed,) = record.server_events("input_audio_buffer.committed")
    (done,) = record.server_events("response.done")
    assert done["response"]["status"] == "completed"
    assert not record.server_events("input_audio_buffer.speech_started")  # the server's VAD is off
    assert not record.server_events("error")
    assert "turn detection: this machine's (silero), the server's off" in out
    assert committed["item_id"]


async def test_a_written_reply_is_shown_and_nothing_plays(tmp_path: Path) -> None:
    out, record = await _talk(tmp_path, "--reply", "text")
    (update,) = record.client_events("session.update")
    assert update["session"]["output_modalities"] == ["text"]
    assert '"At six."' in out, out
    assert not record.server_events("response.output_audio.delta")
