"""Actions, timers, the program's own events and speech policies, fed as events."""

from __future__ import annotations

import pytest

from bargein.core import Conversation
from bargein.core import commands as c
from bargein.core import events as e
from bargein.core.actions import HOLD_LIMIT_MS, ActionContext
from bargein.errors import StateTableError
from bargein.states import DEFAULT_TABLE, State, TableMachine, Transition, after
from bargein.testing import feed, tone

seen: list[ActionContext] = []


def note(ctx: ActionContext) -> None:
    seen.append(ctx)


def greet(ctx: ActionContext) -> list[c.Command]:
    return [c.CreateResponse()]


def chime(ctx: ActionContext) -> list[c.Command]:
    return [c.PlayAudio("chime", "chime", tone(50))]


def broken(ctx: ActionContext) -> list[c.Command]:
    raise RuntimeError("a bug of the program's")


def not_a_command(ctx: ActionContext) -> list[str]:
    return ["hello"]


class ToolStarted(e.UserEvent):
    trigger = "tool_started"

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id


TABLE = DEFAULT_TABLE.extend(
    states=[
        State("greeting", False, "says hello", on_enter=(greet,), on_exit=(note,),
              user_speech="hold"),
        State("tool_running", parent="responding", on_enter=(note,)),
        State("confirming", user_speech="ignore"),
    ],
    transitions=[
        Transition("session_ready", "idle", "greeting", unless=("paused",)),
        Transition("playback_finished", "greeting", "listening", unless=("generating",),
                   actions=(chime, note)),
        Transition("response_done", "greeting", None),
        Transition("response_created", "greeting", None),
        Transition("audio_started", "greeting", None),
        Transition("tool_started", "responding", "tool_running", actions=(broken, not_a_command)),
        Transition("response_done", "tool_running", None),
        Transition("tool_done", "tool_running", "listening"),
        after(5000, "responding", None, reason="slow"),
        Transition("local_speech_started", "responding", "confirming"),
        after(600, "confirming", "interrupted", reason="confirmed"),
        Transition("resume", "confirming", "responding", history=True),
        Transition("playback_finished", "confirming", "listening", unless=("generating",)),
        Transition("audio_started", "confirming", None),  # the reply plays on while judged
    ],
    triggers=["tool_started", "tool_done", "resume"],
    name="actions",
)


def kinds(commands: list[c.Command]) -> list[str]:
    return [type(x).__name__ for x in commands]


def greeted() -> Conversation:
    conv = Conversation(TABLE)
    out = conv.handle(e.SessionReady(interrupt_response=True))
    (create,) = out
    assert conv.state == "greeting" and isinstance(create, c.CreateResponse)
    assert create.event_id.startswith("bargein_"), "a server command gets the core's event id"
    return conv


def test_entry_edge_and_exit_actions_run_in_statechart_order() -> None:
    seen.clear()
    conv = greeted()
    feed(conv, e.ResponseCreated("r1"), e.AudioDelta("r1", "i1", tone(100)),
         e.ResponseDone("r1", "completed"))
    out = conv.handle(e.PlaybackFinished({"i1": 100.0}))
    assert conv.state == "listening"
    assert kinds(out) == ["PlayAudio"]
    assert [(x.state, x.trigger, x.source, x.dest) for x in seen] == [
        ("greeting", "playback_finished", "greeting", "listening"),   # on_exit first
        (None, "playback_finished", "greeting", "listening"),         # then the edge's
    ]
    assert isinstance(seen[0].event, e.PlaybackFinished) and not seen[0].playing


def test_an_action_that_fails_is_counted_and_the_conversation_goes_on() -> None:
    seen.clear()
    conv = Conversation(TABLE)
    feed(conv, e.SessionReady(), e.ResponseDone("r0", "completed"),
         e.PlaybackFinished({}), e.ResponseCreated("r1"))
    assert conv.state == "responding"
    conv.handle(ToolStarted("call_1"))
    assert conv.state == "tool_running" and conv.stats.action_errors == 2
    assert isinstance(seen[-1].event, ToolStarted) and seen[-1].event.call_id == "call_1"
    assert seen[-1].generating == ("r1",)


def test_the_programs_triggers_must_be_declared_and_legal() -> None:
    conv = greeted()
    with pytest.raises(StateTableError, match="'nope', which state table 'actions' does not"):
        conv.handle(e.Signal("nope"))
    assert conv.handle(e.Signal("tool_done")) == [] and conv.stats.illegal_events == 1


def test_timers_start_on_entry_and_are_cancelled_on_exit() -> None:
    conv = Conversation(TABLE)
    feed(conv, e.SessionReady(), e.PlaybackFinished({}))
    out = conv.handle(e.ResponseCreated("r1"))
    assert out == [c.StartTimer("after_5000ms@responding", 5000)]
    out = conv.handle(e.Signal("tool_started"))   # a child: the parent's timer runs on
    assert not any(isinstance(x, c.TimerCommand) for x in out)
    assert conv.timers == {"after_5000ms@responding"}
    assert conv.handle(e.Disconnected()) == [c.FlushPlayback("disconnected"),
                                             c.CancelTimer("after_5000ms@responding")]
    assert conv.handle(e.TimerFired("after_5000ms@responding")) == []
    assert conv.stats.stale_timers == 1 and conv.state == "idle"


def test_a_confirm_window_commits_the_barge_in_when_its_timer_fires() -> None:
    conv = Conversation(TABLE)
    feed(conv, e.SessionReady(interrupt_response=True), e.PlaybackFinished({}),
         e.ResponseCreated("r1"), e.AudioDelta("r1", "i1", tone(1000)))
    out = conv.handle(e.LocalSpeechStarted(10.0))
    assert conv.state == "confirming"
    assert out == [c.CancelTimer("after_5000ms@responding"),
                   c.StartTimer("after_600ms@confirming", 600)]
    assert kinds(feed(conv, e.AudioDelta("r1", "i1", tone(100)))) == ["PlayAudio"], \
        "nothing is cut while the sound is judged"
    out = conv.handle(e.TimerFired("after_600ms@confirming"))
    assert conv.state == "interrupted"
    assert kinds(out) == ["FlushPlayback", "CancelResponse"], \
        "committed by bargein: it cancels, whatever the server's interrupt_response"
    out = conv.handle(e.PlaybackFlushed({"i1": 700.0}))
    assert [(type(x).__name__, getattr(x, "audio_end_ms", None)) for x in out] == [
        ("TruncateItem", 700)]


def test_a_false_alarm_resumes_where_it_was() -> None:
    conv = Conversation(TABLE)
    feed(conv, e.SessionReady(), e.PlaybackFinished({}), e.ResponseCreated("r1"),
         e.Signal("tool_started"), e.LocalSpeechStarted(0.0))
    assert conv.state == "confirming"
    out = conv.handle(e.Signal("resume"))
    assert conv.state == "tool_running"
    assert out == [c.CancelTimer("after_600ms@confirming"),
                   c.StartTimer("after_5000ms@responding", 5000)]


def test_speech_is_held_during_a_segment_and_sent_after() -> None:
    conv = greeted()
    assert conv.handle(e.MicAudio(tone(20))) == [], "held, not sent"
    feed(conv, e.MicAudio(tone(20)), e.ResponseCreated("r1"), e.AudioDelta("r1", "i1", tone(40)),
         e.ResponseDone("r1", "completed"))
    out = conv.handle(e.PlaybackFinished({"i1": 40.0}))
    assert kinds(out) == ["PlayAudio", "SendAudio", "SendAudio"]
    assert kinds(conv.handle(e.MicAudio(tone(20)))) == ["SendAudio"]


def test_held_speech_is_dropped_on_a_disconnect_and_bounded() -> None:
    conv = greeted()
    for _ in range(HOLD_LIMIT_MS // 1000 + 5):
        conv.handle(e.MicAudio(tone(1000)))
    assert conv.held_audio_ms == HOLD_LIMIT_MS
    assert kinds(conv.handle(e.Disconnected())) == ["FlushPlayback"]
    assert conv.held_audio_ms == 0
    feed(conv, e.Reconnected())
    assert kinds(conv.handle(e.MicAudio(tone(20)))) == ["SendAudio"]


def test_ignored_speech_is_never_sent() -> None:
    conv = Conversation(TABLE)
    feed(conv, e.SessionReady(), e.PlaybackFinished({}), e.ResponseCreated("r1"),
         e.LocalSpeechStarted(0.0))
    assert conv.handle(e.MicAudio(tone(20))) == []
    feed(conv, e.Signal("resume"))
    assert kinds(conv.handle(e.MicAudio(tone(20)))) == ["SendAudio"]


def test_snapshot_and_restore() -> None:
    conv = Conversation(TABLE)
    feed(conv, e.SessionReady(), e.PlaybackFinished({}), e.ResponseCreated("r1"),
         e.AudioDelta("r1", "i1", tone(300)))
    snap = conv.snapshot()
    feed(conv, e.SpeechStarted("u", 0), e.PlaybackFlushed({"i1": 10.0}))
    assert conv.state == "listening" and conv.interruptions
    conv.restore(snap)
    assert conv.state == "responding" and not conv.interruptions
    assert conv.timers == {"after_5000ms@responding"}
    out = feed(conv, e.SpeechStarted("u", 0), e.PlaybackFlushed({"i1": 20.0}))
    assert [getattr(x, "audio_end_ms", None) for x in out if isinstance(x, c.TruncateItem)] \
        == [20]


def test_audio_deltas_of_the_playing_response_never_reach_the_machine(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    conv = Conversation(TABLE)
    feed(conv, e.SessionReady(), e.PlaybackFinished({}), e.ResponseCreated("r1"),
         e.AudioDelta("r1", "i1", tone(20)))

    def refuse(*_: object) -> None:
        raise AssertionError("the fast path went through the machine")

    monkeypatch.setattr(TableMachine, "step", refuse)
    monkeypatch.setattr(TableMachine, "legal", refuse)
    assert kinds(feed(conv, *[e.AudioDelta("r1", "i1", tone(20)) for _ in range(5)])) == \
        ["PlayAudio"] * 5
