"""The example machines (``examples/machines``) in a real session against the simulator:
real sockets, the real transport and codec, memory audio on a clock that runs in real time.

The program's part (a tool's call and result, a local detector's onset and end of sound) is
played by the test through ``session.handle()``. Nothing waits a fixed time: each step
waits for what the conversation reports (a state, a barge-in), or for the session's clock.
"""

from __future__ import annotations

import pytest

from bargein.adapters.session_config import ServerVad, SessionConfig
from bargein.core import events as e
from bargein.testing import capture_logs
from examples.machines import CONFIRM, GREETING, THINKING, TOOLS
from examples.machines.tools import ToolCall, ToolResult
from tests.support.live import live
from tests.support.sim_support import serving, silence, tone

pytestmark = pytest.mark.e2e

LONG = ("This first answer is long enough that the user will surely cut in before it ends, "
        "which is the whole point of this test.")
SHORT = "Short second answer."


async def test_thinking_between_the_users_turn_and_the_answer() -> None:
    user = silence(200) + tone(600) + silence(1400) + tone(500) + silence(4000)
    async with serving(script=(LONG, SHORT), speed=4.0) as sim, \
            live(sim, THINKING, user, SessionConfig(turn_detection=ServerVad())) as run:
        await run.until(lambda: bool(run.interrupted()))
        record = sim.records[0]
        # the truncate is sent after the barge-in settles: wait for it before closing
        await run.until(lambda: bool(record.client_events("conversation.item.truncate")))
    moves = run.moves()
    assert ("listening", "thinking", "speech_stopped") in moves
    assert ("thinking", "responding", "audio_started") in moves, "the first audio leaves it"
    assert ("responding", "interrupted", "speech_started") in moves, "inherited barge-in"
    (barge,) = run.interrupted()
    (truncate,) = record.client_events("conversation.item.truncate")
    assert truncate["audio_end_ms"] == barge.settlements[0].audio_end_ms > 0


async def test_an_uninterruptible_greeting_holds_the_users_speech_and_answers_after() -> None:
    user = silence(200) + tone(600) + silence(6000)
    greeting = "Hello, and welcome to the lighthouse line."
    async with serving(script=(greeting, SHORT), speed=4.0) as sim:
        with capture_logs() as logs:
            async with live(sim, GREETING, user, SessionConfig(turn_detection=ServerVad())) as run:
                await run.reach("greeting", "listening")
                await run.until(lambda: len(run.session.figures) == 2
                                and all(f.status for f in run.session.figures.values()))
        record = sim.records[0]
    assert run.moves()[:2] == [("idle", "greeting", "session_ready"),
                               ("greeting", "listening", "playback_finished")]
    assert not run.interrupted(), "nothing cut the greeting"
    assert record.client_events("response.cancel") == []
    assert len(record.client_events("response.create")) == 1, "the entry action's request"
    (held,) = [x for x in logs if x["event"] == "held_audio_sent"]
    assert held["ms"] >= 800, "the user's words, held while the greeting played"
    first, second = run.session.figures.values()
    assert not first.interrupted and first.status == "completed"
    assert second.status == "completed", "the held words were answered after the greeting"


async def test_a_tool_call_waits_in_tool_running_and_its_result_asks_for_the_follow_up() -> None:
    user = silence(200) + tone(600) + silence(8000)
    async with serving(script=(SHORT, "The tool says: nine in the morning."), speed=4.0) as sim, \
            live(sim, TOOLS, user, SessionConfig(turn_detection=ServerVad())) as run:
        await run.reach("listening", "responding")
        run.session.handle(ToolCall("call_1", "opening_hours"))
        assert run.session.conversation.state == "tool_running"
        await run.until(lambda: any(f.status for f in run.session.figures.values()))
        assert run.session.conversation.state == "tool_running", "the answer waits for it"
        run.session.handle(ToolResult("call_1", '{"opens": "09:00"}'))
        await run.until(lambda: len(run.session.figures) == 2
                        and run.session.conversation.state == "listening")
        record = sim.records[0]
    moves = run.moves()
    assert ("responding", "tool_running", "tool_call") in moves
    assert ("tool_running", "responding", "tool_result") in moves
    assert len(record.client_events("response.create")) == 1, "the follow-up, asked by an action"
    follow_up = list(run.session.figures.values())[1]
    assert follow_up.status == "completed" and not follow_up.interrupted


async def test_confirm_then_commit_resumes_on_a_short_sound_and_commits_on_a_long_one() -> None:
    # in real time, so the reply is still being generated when the barge-in commits
    async with serving(script=(LONG, SHORT), speed=1.0) as sim, \
            live(sim, CONFIRM, silence(20000), SessionConfig(turn_detection=None)) as run:
        await run.reach("idle", "listening")
        run.session.handle(e.RequestResponse())
        await run.reach("thinking", "speaking")
        await run.clock_passes(300)
        run.session.handle(e.LocalSpeechStarted(run.clock.ms))   # a cough
        assert run.session.conversation.state == "confirming"
        await run.clock_passes(150)
        run.session.handle(e.LocalSpeechStopped())
        assert run.session.conversation.state == "speaking", "resumed where it was"
        assert not sim.records[0].client_events("response.cancel"), "nothing was cut"
        await run.clock_passes(300)
        heard_at_onset = max(run.session.sink.heard_ms().values())
        run.session.handle(e.LocalSpeechStarted(run.clock.ms))   # the user talks
        await run.until(lambda: bool(run.interrupted()))
        # the cancel goes out through the sender task: wait for the server's answer to it
        # (closing the session at once could stop it on a busy machine)
        await run.until(lambda: any(f.status == "cancelled"
                                    for f in run.session.figures.values()))
        record = sim.records[0]
    moves = run.moves()
    assert ("confirming", "speaking", "local_speech_stopped") in moves
    assert ("confirming", "interrupted", "after_600ms@confirming") in moves
    (barge,) = run.interrupted()
    assert barge.trigger == "after_600ms@confirming"
    assert len(record.client_events("response.cancel")) == 1, "bargein cancels when it commits"
    (truncate,) = record.client_events("conversation.item.truncate")
    assert truncate["audio_end_ms"] == barge.settlements[0].audio_end_ms
    # heard from the speaker's own count, not the clock: on a busy machine the reply's
    # audio may arrive late, and an underrun plays nothing while the clock moves on
    assert truncate["audio_end_ms"] > heard_at_onset, "it played on while judging"
