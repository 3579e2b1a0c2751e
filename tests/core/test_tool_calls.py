"""Tool calls in the core (``bargein.core.tool_calls``): event sequences in, commands out.
Each of the rules: what runs, what is sent, when the follow-up is asked for, and what a
barge-in, a new turn or a lost connection does to a call (and which calls are answered as
cancelled or not run)."""

from __future__ import annotations

import json
from unittest.mock import ANY

from bargein.adapters.session_config import SessionConfig, ToolSpec
from bargein.core import Conversation
from bargein.core import commands as c
from bargein.core import events as e
from bargein.core.tool_calls import CANCELLED_OUTPUT, NOT_RUN_OUTPUT
from bargein.testing import capture_logs, feed

SPECS = (ToolSpec("lookup", "", {"type": "object"}),
         ToolSpec("book", "", {"type": "object"}, on_barge_in="finish"))


def ms(n: float) -> bytes:
    return b"\x01\x00" * int(n * 24)


def kinds(commands: list[c.Command]) -> list[str]:
    return [type(x).__name__ for x in commands]


def calling(name: str = "lookup", *, complete: bool = True, audio_ms: int = 0) -> Conversation:
    """A reply (r1) that says something and calls ``name`` (call c1); not done yet."""
    conv = Conversation()
    feed(conv, e.SessionReady(interrupt_response=False),
         e.ConfigureSession(SessionConfig(tools=SPECS)), e.ResponseCreated("r1"),
         e.OutputItemAdded("r1", "i1"), *[e.AudioDelta("r1", "i1", ms(100))
                                            for _ in range(audio_ms // 100)])
    assert conv.tool_policies == {"lookup": "cancel", "book": "finish"}
    out = conv.handle(e.ToolCall("r1", "fc1", "c1", name, '{"q": 1}', complete=complete))
    if complete:
        assert out == [c.RunTool("c1", name, '{"q": 1}')]
    return conv


def test_a_call_runs_its_output_is_sent_and_the_follow_up_asked_when_the_reply_is_done() -> None:
    conv = calling()
    assert conv.handle(e.ResponseDone("r1", "completed")) == []  # the output is not in yet
    output, follow_up = conv.handle(e.ToolResult("c1", '{"a": 2}'))
    assert isinstance(output, c.SendToolOutput) and (output.call_id, output.output) == (
        "c1", '{"a": 2}')
    assert isinstance(follow_up, c.CreateResponse) and follow_up.event_id != output.event_id


def test_an_output_before_the_reply_is_done_waits_for_it() -> None:
    conv = calling()
    assert kinds(conv.handle(e.ToolResult("c1", "ok"))) == ["SendToolOutput"]
    assert kinds(conv.handle(e.ResponseDone("r1", "completed"))) == ["CreateResponse"]


def test_two_calls_of_one_reply_have_one_follow_up_after_both() -> None:
    conv = calling()
    assert kinds(conv.handle(e.ToolCall("r1", "fc2", "c2", "lookup", "{}"))) == ["RunTool"]
    conv.handle(e.ResponseDone("r1", "completed"))
    assert kinds(conv.handle(e.ToolResult("c2", "two"))) == ["SendToolOutput"]
    assert kinds(conv.handle(e.ToolResult("c1", "one"))) == ["SendToolOutput", "CreateResponse"]


def answer(out: list[c.Command]) -> list[tuple[str, str, str]]:
    """The outputs among ``out``: (call id, output, the item it goes after)."""
    return [(x.call_id, x.output, x.after_item_id) for x in out
            if isinstance(x, c.SendToolOutput)]


def test_a_call_whose_arguments_never_ended_never_runs_and_gets_nothing() -> None:
    with capture_logs() as logs:
        conv = calling(complete=False)
    assert conv.handle(e.ResponseDone("r1", "cancelled")) == []
    assert [x["reason"] for x in logs if x["event"] == "tool_call_not_run"] == [
        "its arguments never ended"]


def test_a_whole_call_of_a_cut_reply_never_runs_and_is_answered_not_run_after_its_item() -> None:
    """The server keeps the whole call: it gets an output saying it did not run, inserted
    after the call's item, and no follow-up (the user has the floor)."""
    conv = calling(audio_ms=500)
    conv.handle(e.UserInterrupt())
    with capture_logs() as logs:
        out = conv.handle(e.ToolCall("r1", "fc2", "c2", "lookup", "{}"))
    assert kinds(out) == ["SendToolOutput"]
    assert answer(out) == [("c2", NOT_RUN_OUTPUT, "fc2")]
    assert json.loads(NOT_RUN_OUTPUT) == {"not_run": ANY}
    assert [x["reason"] for x in logs if x["event"] == "tool_call_not_run"] == [
        "its reply was cut off"]
    assert conv.handle(e.ToolCall("r1", "fc2", "c2", "lookup", "{}")) == []  # told again
    assert not [x for x in conv.handle(e.ResponseDone("r1", "cancelled"))
                if isinstance(x, c.CreateResponse)]


def test_a_barge_in_cancels_a_call_answers_it_cancelled_and_drops_its_late_output() -> None:
    conv = calling(audio_ms=500)
    with capture_logs() as logs:
        out = conv.handle(e.UserInterrupt())
        assert c.CancelTool("c1") in out
        assert answer(out) == [("c1", CANCELLED_OUTPUT, "fc1")]
        assert json.loads(CANCELLED_OUTPUT) == {"cancelled": ANY}
        assert not [x for x in out if isinstance(x, c.CreateResponse)]
        assert conv.handle(e.ToolResult("c1", "too late")) == []
    assert [x["event"] for x in logs if x["event"].startswith("tool_")] == [
        "tool_call_cancelled", "tool_result_dropped"]
    conv.handle(e.PlaybackFlushed({"i1": 200}))
    assert conv.handle(e.ResponseDone("r1", "cancelled")) == []  # no follow-up
    assert conv.handle(e.ToolCall("r1", "fc1", "c1", "lookup", '{"q": 1}')) == []  # again


def test_a_pause_cancels_a_call_and_answers_it_cancelled() -> None:
    conv = calling(audio_ms=500)
    out = conv.handle(e.UserStop())
    assert c.CancelTool("c1") in out and answer(out) == [("c1", CANCELLED_OUTPUT, "fc1")]


def test_a_finish_tool_sends_its_output_after_a_barge_in_but_asks_for_no_follow_up() -> None:
    conv = calling("book", audio_ms=500)
    interrupted = conv.handle(e.UserInterrupt())
    assert not [x for x in interrupted if isinstance(x, c.CancelTool | c.SendToolOutput)]
    out = conv.handle(e.ToolResult("c1", "booked"))
    assert answer(out) == [("c1", "booked", "")]  # appended, as any program's output
    assert conv.handle(e.ResponseDone("r1", "cancelled")) == []


def test_the_user_speaking_while_a_call_runs_ends_it_as_a_barge_in_would() -> None:
    conv = calling()
    conv.handle(e.ResponseDone("r1", "completed"))  # nothing plays: the call runs
    out = conv.handle(e.SpeechStarted("u2", 5000))
    assert c.CancelTool("c1") in out and answer(out) == [("c1", CANCELLED_OUTPUT, "fc1")]
    assert not [x for x in out if isinstance(x, c.CreateResponse)]
    assert conv.handle(e.ToolResult("c1", "late")) == []


def test_a_call_announced_again_after_its_output_went_does_not_run_again() -> None:
    conv = calling()
    conv.handle(e.ToolResult("c1", "ok"))
    assert conv.handle(e.ToolCall("r1", "fc1", "c1", "lookup", '{"q": 1}')) == []


def test_a_lost_connection_cancels_every_open_call_and_sends_no_output() -> None:
    conv = calling()
    with capture_logs() as logs:
        out = conv.handle(e.Disconnected("gone"))
    assert c.CancelTool("c1") in out and answer(out) == []  # the server session is gone
    assert [x["log_level"] for x in logs if x["event"] == "tool_call_cancelled"] == ["warning"]
    conv.handle(e.Reconnected())
    assert conv.handle(e.ToolResult("c1", "late")) == []


SPECS_HOLD = (*SPECS, ToolSpec("order", "", {"type": "object"}, on_barge_in="hold"))


def test_the_machine_rests_in_running_tools_while_a_call_runs_and_leaves_when_it_ends() -> None:
    conv = calling(audio_ms=300)
    conv.handle(e.ResponseDone("r1", "completed"))
    assert conv.state == "responding"  # its audio still plays
    conv.handle(e.PlaybackFinished({"i1": 300}))
    assert conv.state == "running_tools"
    assert kinds(conv.handle(e.ToolResult("c1", "ok"))) == ["SendToolOutput", "CreateResponse"]
    assert conv.state == "listening"
    conv.handle(e.ResponseCreated("r2"))
    assert conv.state == "responding"


def test_a_reply_done_with_nothing_to_play_goes_straight_to_running_tools() -> None:
    conv = calling()
    conv.handle(e.ResponseDone("r1", "completed"))
    assert conv.state == "running_tools"


def test_a_call_that_ended_before_its_reply_did_leaves_no_running_tools_state() -> None:
    conv = calling()
    conv.handle(e.ToolResult("c1", "ok"))
    conv.handle(e.ResponseDone("r1", "completed"))
    assert conv.state == "listening"


def test_a_local_onset_in_running_tools_is_a_barge_in_that_cancels_the_call() -> None:
    conv = calling()
    conv.handle(e.ResponseDone("r1", "completed"))
    out = conv.handle(e.LocalSpeechStarted(0.0))
    assert kinds(out) == ["FlushPlayback", "CancelTool", "SendToolOutput"]
    assert answer(out) == [("c1", CANCELLED_OUTPUT, "fc1")] and conv.state == "interrupted"
    conv.handle(e.PlaybackFlushed({}))
    assert conv.state == "listening"
    assert conv.handle(e.ToolResult("c1", "late")) == []


def held_call() -> Conversation:
    """``order`` (hold policy) called by r1, which a barge-in cut off mid-reply."""
    conv = Conversation()
    feed(conv, e.SessionReady(interrupt_response=True),
         e.ConfigureSession(SessionConfig(tools=SPECS_HOLD)), e.ResponseCreated("r1"),
         e.OutputItemAdded("r1", "i1"), e.AudioDelta("r1", "i1", ms(500)))
    assert kinds(conv.handle(e.ToolCall("r1", "fc1", "c1", "order", "{}"))) == ["RunTool"]
    out = conv.handle(e.SpeechStarted("u1", 100))
    assert not [x for x in out if isinstance(x, c.CancelTool)]
    feed(conv, e.PlaybackFlushed({"i1": 200}))
    return conv


def test_a_held_output_waits_for_the_reply_to_the_user_and_then_goes_with_a_follow_up() -> None:
    conv = held_call()
    with capture_logs() as logs:
        assert conv.handle(e.ToolResult("c1", "ordered")) == []  # the user has the floor
    assert [x["event"] for x in logs if x["event"].startswith("tool_")] == ["tool_result_held"]
    assert conv.state == "listening"
    feed(conv, e.SpeechStopped("u1", 900), e.ResponseCreated("r2"),
         e.OutputItemAdded("r2", "i2"), e.AudioDelta("r2", "i2", ms(200)))
    assert conv.handle(e.ResponseDone("r2", "completed")) == []  # the reply still plays
    out = conv.handle(e.PlaybackFinished({"i2": 200}))
    assert kinds(out) == ["SendToolOutput", "CreateResponse"]
    assert out[0] == c.SendToolOutput("c1", "ordered", out[0].event_id)  # type: ignore[union-attr]
    assert conv.handle(e.ToolResult("c1", "twice")) == []


def test_a_held_result_that_comes_after_the_reply_to_the_user_goes_at_once() -> None:
    conv = held_call()
    feed(conv, e.ResponseCreated("r2"), e.ResponseDone("r2", "completed"))
    assert conv.state == "listening"
    assert kinds(conv.handle(e.ToolResult("c1", "ordered"))) == ["SendToolOutput",
                                                                "CreateResponse"]


def test_a_held_output_is_dropped_with_the_connection_and_logged() -> None:
    conv = held_call()
    conv.handle(e.ToolResult("c1", "ordered"))
    with capture_logs() as logs:
        out = conv.handle(e.Disconnected("gone"))
    assert not [x for x in out if isinstance(x, c.CancelTool | c.SendToolOutput)]
    assert [x["reason"] for x in logs if x["event"] == "tool_result_dropped"] == [
        "held, and the connection was lost"]


def test_a_follow_up_asked_for_is_not_rest_no_idle_timeout_starts() -> None:
    """The output completes a reply that is done and played: the follow-up is asked for,
    and the idle timeout does not start (the next reply is on its way); once that one has
    played out, it does."""
    conv = calling()
    feed(conv, e.ConfigureSession(SessionConfig(tools=SPECS, idle_timeout_ms=8000)),
         e.ResponseDone("r1", "completed"))
    assert conv.state == "running_tools"
    assert kinds(conv.handle(e.ToolResult("c1", "ok"))) == ["SendToolOutput", "CreateResponse"]
    assert conv.state == "listening"
    feed(conv, e.ResponseCreated("r2"), e.OutputItemAdded("r2", "i2"),
         e.AudioDelta("r2", "i2", ms(100)), e.ResponseDone("r2", "completed"))
    assert conv.handle(e.PlaybackFinished({"i2": 100.0})) == [
        c.StartTimer("bargein:idle", 8000)]
