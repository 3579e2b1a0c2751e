"""``bargein talk`` beyond the default turn: ``--turns client`` (the server's turn detection
off, this machine's voice detector, Silero, ends the user's turn; bargein commits the audio and
asks for the reply), ``--reply text`` (written replies), ``--tools MODULE:NAME`` (functions
the assistant calls). Against the simulator, with a spoken WAV as the user (no microphone
needed)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from bargein.adapters.audio.wav import write_wav
from bargein.sim import ToolCall, parse_script
from bargein.sim.record import ConnectionRecord
from bargein.sim.script import Entry
from bargein.sim.voice import speak
from tests.cli.test_cli import bargein, env, one_clear_line
from tests.support.sim_support import serving, silence
from tests.support.waiting import DEADLINE_S, eventually

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

TRAINS = """
def departure(city: str) -> str:
    "When the next train to a city leaves."
    return "6:30 from platform four"

TOOLS = [departure]
"""


async def _talk(tmp_path: Path, *flags: str, script: tuple[Entry, ...] = ("At six.",)
                ) -> tuple[str, ConnectionRecord]:
    """``bargein talk`` with ``flags``, a spoken question as the input, modules in
    ``tmp_path`` importable, against the simulator saying ``script``; its output, and the
    simulator's record."""
    question = speak("What time does the train leave tomorrow?", "espeak")
    wav = write_wav(tmp_path / "q.wav", silence(500) + question + silence(1500))
    async with serving(script=script, speed=4.0) as sim:
        code, out, err = await bargein(
            "talk", "--url", sim.url, *flags, "--input", str(wav),
            "--output", str(tmp_path / "o.wav"), "--linger", "1.5",
            environ=env(PYTHONPATH=os.pathsep.join((str(tmp_path), str(ROOT)))))
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


async def test_push_to_talk_sends_the_turn_between_two_presses_of_enter(tmp_path: Path) -> None:
    """``--turns push-to-talk`` with Enter on a pipe: nothing goes out before the press;
    after it the spoken question does; the second press commits it before the reply is
    asked for, and the server's conversation holds the user's item before the reply."""
    question = speak("What time does the train leave tomorrow?", "espeak")
    wav = write_wav(tmp_path / "q.wav", silence(500) + question + silence(1500))
    frames_of_question = (500 + len(question) // 48) // 20  # 20 ms frames, 24 kHz pcm16
    async with serving(script=("At six.",), speed=4.0) as sim:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bargein", "talk", "--url", sim.url, "--turns", "push-to-talk",
            "--input", str(wav), "--output", str(tmp_path / "o.wav"), "--linger", "1.5",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env())
        assert proc.stdin is not None

        def sent(kind: str) -> int:
            return len(sim.records[0].client_events(kind)) if sim.records else 0

        def kinds() -> list[str]:  # what was sent, for a failure's message
            return [ev.type for ev in sim.records[0] if ev.type != "input_audio_buffer.append"
                    ] if sim.records else []

        await eventually(lambda: sent("session.update") == 1)
        assert sent("input_audio_buffer.append") == 0  # nothing before the key
        proc.stdin.write(b"\n")  # the key goes down (maybe before the session is live)
        await eventually(lambda: sent("input_audio_buffer.append") >= frames_of_question)
        proc.stdin.write(b"\n")  # ...and up: the turn is sent
        await eventually(lambda: sent("response.create") == 1, kinds)
        proc.stdin.close()
        out, err = await asyncio.wait_for(proc.communicate(), DEADLINE_S)
        record = sim.records[0]
    assert proc.returncode == 0, err
    (update,) = record.client_events("session.update")
    assert update["session"]["audio"]["input"]["turn_detection"] is None
    sent_kinds = [ev.type for ev in record if ev.type != "input_audio_buffer.append"]
    assert sent_kinds.index("input_audio_buffer.commit") < sent_kinds.index("response.create")
    (committed,) = record.server_events("input_audio_buffer.committed")
    reply_items = [x["item"]["id"] for x in record.server_events("conversation.item.added")
                   if x["item"].get("role") == "assistant"]
    added = {x["item"]["id"]: x["previous_item_id"]
             for x in record.server_events("conversation.item.added")}
    assert added[reply_items[0]] == committed["item_id"], "the user's item, then the reply"
    assert not record.server_events("error")
    assert "turn detection: push-to-talk" in out.decode()
    assert "sent: Enter to talk again" in out.decode()


async def test_a_written_reply_is_shown_and_nothing_plays(tmp_path: Path) -> None:
    out, record = await _talk(tmp_path, "--reply", "text")
    (update,) = record.client_events("session.update")
    assert update["session"]["output_modalities"] == ["text"]
    assert '"At six."' in out, out
    assert not record.server_events("response.output_audio.delta")


async def test_tools_from_a_module_are_declared_run_and_answered(tmp_path: Path) -> None:
    (tmp_path / "trains.py").write_text(TRAINS)
    out, record = await _talk(
        tmp_path, "--tools", "trains:TOOLS",
        script=(ToolCall("departure", {"city": "York"}, "It leaves at {output}."),))
    (update,) = record.client_events("session.update")
    assert [t["name"] for t in update["session"]["tools"]] == ["departure"]
    (output,) = record.client_events("conversation.item.create")
    assert output["item"]["output"] == "6:30 from platform four"
    assert '"It leaves at 6:30 from platform four."' in out, out


async def test_the_example_tools_and_script_run_a_call_to_its_follow_up(tmp_path: Path) -> None:
    """``bargein talk --tools examples.tools:TOOLS`` against the example script's first
    entry: the departure lookup runs, its output is sent, the follow-up says it."""
    script = parse_script((ROOT / "examples" / "tools_script.txt").read_text())
    out, record = await _talk(tmp_path, "--tools", "examples.tools:TOOLS", script=script[:1])
    (update,) = record.client_events("session.update")
    assert [t["name"] for t in update["session"]["tools"]] == [
        "departure", "book_seat", "send_ticket"]
    (output,) = record.client_events("conversation.item.create")
    assert output["item"]["output"] == "6:30 from platform four"
    assert '"The next train to York leaves at 6:30 from platform four."' in out, out
    assert not record.server_events("error")


async def test_tools_that_cannot_be_loaded_are_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "broken_tools.py").write_text("TOOLS = [1, 2]\n")
    for spec, said in (("nowhere:TOOLS", "cannot import 'nowhere'"),
                       ("broken_tools:TOOLS", "is not a function or a list of functions"),
                       ("broken_tools:MISSING", "broken_tools has no 'MISSING'"),
                       ("broken_tools", "--tools takes MODULE:NAME")):
        code, _, err = await bargein("talk", "--url", "ws://127.0.0.1:9/v1", "--tools", spec,
                                     "--input", str(tmp_path / "none.wav"),
                                     environ=env(PYTHONPATH=str(tmp_path)))
        one_clear_line(code, err, said)
