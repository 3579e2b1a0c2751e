"""The core, in the h11 manner: feed event sequences, assert states and commands."""

from __future__ import annotations

import pytest

from bargein.adapters.session_config import SessionConfig
from bargein.core import Conversation, TransitionRecord
from bargein.core import commands as c
from bargein.core import events as e
from bargein.core.liveness import REPLY_TIMER, Liveness
from bargein.errors import StateTableError
from bargein.states import BARGE_IN_TRIGGERS, DEFAULT_TABLE, State, StateTable, Transition
from bargein.testing import capture_logs, feed


def ms(n: float) -> bytes:
    """``n`` ms of PCM16 24 kHz audio."""
    return b"\x01\x00" * int(n * 24)


def kinds(commands: list[c.Command]) -> list[str]:
    return [type(x).__name__ for x in commands]


def responding(conv: Conversation, rid: str = "r1", item: str = "i1", *, audio_ms: int = 1000,
               interrupt_response: bool = True) -> list[c.Command]:
    return feed(
        conv,
        e.SessionReady(interrupt_response=interrupt_response),
        e.SpeechStarted("u1", 100),
        e.SpeechStopped("u1", 900),
        e.ResponseCreated(rid),
        e.OutputItemAdded(rid, item),
        *[e.AudioDelta(rid, item, ms(100)) for _ in range(audio_ms // 100)],
    )


def test_starts_idle_and_session_ready_listens() -> None:
    conv = Conversation()
    assert conv.state == "idle"
    assert conv.handle(e.SessionReady()) == []
    assert conv.state == "listening"


def test_audio_deltas_play_in_order() -> None:
    conv = Conversation()
    out = responding(conv, audio_ms=300)
    assert conv.state == "responding"
    plays = [x for x in out if isinstance(x, c.PlayAudio)]
    assert [(p.response_id, p.item_id, len(p.audio)) for p in plays] == [("r1", "i1", 4800)] * 3
    assert conv.ledger.items["i1"].received_ms == 300


def test_the_whole_barge_in_story() -> None:
    """Audio playing -> speech started -> flush + cancel -> 730 ms heard -> truncate 730 ->
    late deltas dropped -> listening."""
    conv = Conversation()
    responding(conv, audio_ms=2000, interrupt_response=False)
    out = conv.handle(e.SpeechStarted("u2", 3000))
    assert conv.state == "interrupted"
    assert out[0] == c.FlushPlayback("speech_started")
    assert isinstance(out[1], c.CancelResponse) and out[1].response_id == "r1"
    assert len(out) == 2
    out = conv.handle(e.PlaybackFlushed({"i1": 730.6}))
    assert len(out) == 1 and isinstance(out[0], c.TruncateItem)
    assert (out[0].item_id, out[0].audio_end_ms, out[0].content_index) == ("i1", 730, 0)
    assert conv.state == "listening"
    assert feed(conv, *[e.AudioDelta("r1", "i1", ms(100)) for _ in range(5)]) == []
    assert conv.stats.dropped_deltas == 5 and conv.stats.dropped_audio_ms == 500
    assert feed(conv, e.ResponseDone("r1", "cancelled", "client_cancelled")) == []
    assert conv.state == "listening"
    (interruption,) = conv.interruptions
    assert interruption.cancelled == ("r1",)
    assert interruption.settlements[0].action == "truncate"


def test_server_side_cancel_is_not_duplicated() -> None:
    conv = Conversation()
    responding(conv, interrupt_response=True)
    out = conv.handle(e.SpeechStarted("u2", 3000))
    assert kinds(out) == ["FlushPlayback"]


@pytest.mark.parametrize(
    ("event", "trigger"),
    [(e.LocalSpeechStarted(10.0), "local_speech_started"), (e.UserInterrupt(), "interrupt")],
)
def test_local_interrupts_always_cancel(event: e.Event, trigger: str) -> None:
    conv = Conversation()
    responding(conv, interrupt_response=True)
    out = conv.handle(event)
    assert out == [c.FlushPlayback(trigger), c.CancelResponse("r1", out[1].event_id)]  # type: ignore[union-attr]


def test_barge_in_after_response_done_while_audio_plays() -> None:
    conv = Conversation()
    responding(conv, audio_ms=2000, interrupt_response=False)
    assert conv.handle(e.ResponseDone("r1", "completed")) == []
    assert conv.state == "responding", "audio still playing keeps the machine responding"
    out = conv.handle(e.SpeechStarted("u2", 2500))
    assert kinds(out) == ["FlushPlayback"], "nothing to cancel: generation is over"
    out = conv.handle(e.PlaybackFlushed({"i1": 1200.0}))
    assert out == [c.TruncateItem("i1", 1200, 0, out[0].event_id)]  # type: ignore[union-attr]


def test_barge_in_before_anything_was_heard_deletes() -> None:
    conv = Conversation()
    responding(conv, audio_ms=300, interrupt_response=False)
    feed(conv, e.SpeechStarted("u2", 1000))
    out = conv.handle(e.PlaybackFlushed({"i1": 0.0}))
    assert kinds(out) == ["DeleteItem"] and out[0].item_id == "i1"  # type: ignore[union-attr]


def test_item_without_audio_yet_is_deleted() -> None:
    conv = Conversation()
    feed(conv, e.SessionReady(interrupt_response=False), e.ResponseCreated("r1"),
         e.OutputItemAdded("r1", "i1"))
    out = feed(conv, e.SpeechStarted("u2", 1000), e.PlaybackFlushed({}))
    assert kinds(out) == ["FlushPlayback", "CancelResponse", "DeleteItem"]


def test_truncate_never_exceeds_received_audio() -> None:
    conv = Conversation()
    responding(conv, audio_ms=500)
    feed(conv, e.SpeechStarted("u2", 1000))
    out = conv.handle(e.PlaybackFlushed({"i1": 9000.0}))
    assert out[0] == c.TruncateItem("i1", 500, 0, out[0].event_id)  # type: ignore[union-attr]


def test_item_that_finished_playing_is_never_truncated() -> None:
    conv = Conversation()
    responding(conv, audio_ms=500)
    feed(conv, e.ResponseDone("r1", "completed"), e.PlaybackProgress({"i1": 500.0}))
    out = feed(conv, e.SpeechStarted("u2", 1000), e.PlaybackFlushed({"i1": 500.0}))
    assert kinds(out) == ["FlushPlayback"]
    assert conv.interruptions[0].settlements == ()


def test_two_item_response_is_settled_item_by_item() -> None:
    conv = Conversation()
    responding(conv, audio_ms=400, interrupt_response=False)
    feed(conv, e.OutputItemAdded("r1", "i2"), e.AudioDelta("r1", "i2", ms(600)),
         e.OutputItemAdded("r1", "i3"))
    feed(conv, e.PlaybackProgress({"i1": 400.0}))
    out = feed(conv, e.SpeechStarted("u2", 5000),
               e.PlaybackFlushed({"i1": 400.0, "i2": 250.0}))
    server = [x for x in out if isinstance(x, c.TruncateItem | c.DeleteItem)]
    assert [(type(x).__name__, x.item_id) for x in server] == [
        ("TruncateItem", "i1"),  # all received audio heard, but the response was still going
        ("TruncateItem", "i2"),
        ("DeleteItem", "i3"),
    ]
    assert [x.audio_end_ms for x in server if isinstance(x, c.TruncateItem)] == [400, 250]


def test_playback_finished_after_done_returns_to_listening() -> None:
    conv = Conversation()
    responding(conv, audio_ms=300)
    feed(conv, e.ResponseDone("r1", "completed"))
    assert conv.state == "responding"
    feed(conv, e.PlaybackFinished({"i1": 300.0}))
    assert conv.state == "listening"
    out = feed(conv, e.SpeechStarted("u3", 9000))
    assert out == [] and conv.state == "listening"


def test_done_after_playback_finished_returns_to_listening() -> None:
    conv = Conversation()
    responding(conv, audio_ms=300)
    feed(conv, e.PlaybackFinished({"i1": 300.0}))
    assert conv.state == "responding", "still generating: more audio may come"
    feed(conv, e.ResponseDone("r1", "completed"))
    assert conv.state == "listening"


def test_next_response_plays_after_an_interruption() -> None:
    conv = Conversation()
    responding(conv, interrupt_response=False)
    feed(conv, e.SpeechStarted("u2", 3000), e.PlaybackFlushed({"i1": 100.0}))
    out = feed(conv, e.ResponseCreated("r2"), e.OutputItemAdded("r2", "i9"),
               e.AudioDelta("r1", "i1", ms(20)), e.AudioDelta("r2", "i9", ms(20)))
    assert [(x.response_id, x.item_id) for x in out if isinstance(x, c.PlayAudio)] == [("r2", "i9")]
    assert conv.state == "responding"


def test_benign_errors_are_reconciled_not_raised() -> None:
    conv = Conversation()
    responding(conv, interrupt_response=False)
    cancel = feed(conv, e.UserInterrupt())[1]
    truncate = conv.handle(e.PlaybackFlushed({"i1": 500.0}))[0]
    assert isinstance(cancel, c.CancelResponse) and isinstance(truncate, c.TruncateItem)
    feed(
        conv,
        e.ServerError("invalid_request_error", "response_cancel_not_active", "no active response",
                      cancel.event_id),
        e.ServerError("invalid_request_error", "invalid_value",
                      "Audio content of 400ms is already shorter than 500ms", truncate.event_id),
    )
    assert conv.stats.benign_errors == 2 and conv.stats.server_errors == 0
    assert conv.state == "listening"


def test_other_errors_are_counted_and_logged() -> None:
    conv = Conversation()
    responding(conv)
    with capture_logs() as logs:
        feed(conv, e.ServerError("server_error", None, "boom"), e.ProtocolViolation("bad json"))
    assert conv.stats.server_errors == 1 and conv.stats.protocol_violations == 1
    assert [x["event"] for x in logs if x["log_level"] == "error"] == [
        "server_error", "protocol_violation"]
    assert conv.state == "responding"


def test_illegal_events_never_raise() -> None:
    conv = Conversation()
    with capture_logs() as logs:
        out = feed(conv, e.ResponseCreated("r1"), e.AudioDelta("r1", "i1", ms(10)),
                   e.RequestResponse())
    assert out == [] and conv.state == "idle"
    assert conv.stats.illegal_events == 3
    assert {x["state"] for x in logs if x["event"] == "illegal_event"} == {"idle"}


def test_not_an_event_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="bargein event"):
        Conversation().handle("speech_started")  # type: ignore[arg-type]


def test_disconnect_abandons_the_response_for_good() -> None:
    conv = Conversation()
    responding(conv)
    out = conv.handle(e.Disconnected("network"))
    assert out == [c.FlushPlayback("disconnected")] and conv.state == "idle"
    assert conv.handle(e.PlaybackFlushed({"i1": 300.0})) == [], "no server to truncate on"
    feed(conv, e.Reconnected())
    assert conv.state == "listening"
    assert conv.handle(e.AudioDelta("r1", "i1", ms(10))) == []


def test_mic_audio_is_sent_only_when_live() -> None:
    conv = Conversation()
    assert conv.handle(e.MicAudio(ms(20))) == []
    conv.handle(e.SessionReady())
    (send,) = conv.handle(e.MicAudio(ms(20)))
    assert isinstance(send, c.SendAudio) and len(send.audio) == 960


def test_stop_pauses_like_an_interruption_and_start_resumes() -> None:
    conv = Conversation()
    responding(conv)
    out = conv.handle(e.UserStop())
    assert kinds(out) == ["FlushPlayback", "CancelResponse"] and conv.state == "idle"
    assert kinds(conv.handle(e.PlaybackFlushed({"i1": 200.0}))) == ["TruncateItem"]
    assert conv.handle(e.MicAudio(ms(20))) == []
    conv.handle(e.UserStart())
    assert conv.state == "listening"


def test_configure_and_request_response() -> None:
    conv = Conversation()
    conv.handle(e.SessionReady())
    (update,) = conv.handle(e.ConfigureSession({"voice": "x"}))
    (create,) = conv.handle(e.RequestResponse())
    assert isinstance(update, c.UpdateSession) and update.config == {"voice": "x"}
    assert isinstance(create, c.CreateResponse) and create.event_id != update.event_id


def test_manual_turns_commit_the_users_audio_before_each_response() -> None:
    """With turn detection off nothing else commits: a response asked for without a commit
    would not hear the user. Less than the server's minimum (100 ms) is not sent."""
    conv = Conversation()
    conv.handle(e.SessionReady(interrupt_response=False))
    conv.handle(e.ConfigureSession(SessionConfig(turn_detection=None)))
    assert conv.manual_turns
    assert kinds(feed(conv, *[e.MicAudio(ms(20)) for _ in range(4)])) == ["SendAudio"] * 4
    assert kinds(conv.handle(e.RequestResponse())) == ["CreateResponse"]  # 80 ms: too short
    conv.handle(e.MicAudio(ms(20)))
    commit, create = conv.handle(e.RequestResponse())  # 100 ms in the server's buffer
    assert isinstance(commit, c.CommitInputAudio) and isinstance(create, c.CreateResponse)
    assert commit.event_id and commit.event_id != create.event_id
    assert kinds(conv.handle(e.RequestResponse())) == ["CreateResponse"]  # nothing new: a greeting


def test_client_turns_end_when_the_local_detector_hears_quiet_long_enough() -> None:
    from bargein.adapters.session_config import ClientVad
    from bargein.core.conversation import TURN_TIMER

    conv = Conversation()
    conv.handle(e.SessionReady(interrupt_response=False))
    conv.handle(e.ConfigureSession(SessionConfig(turn_detection=ClientVad(end_after_ms=400))))
    conv.handle(e.LocalSpeechStarted(0.0))
    conv.handle(e.MicAudio(ms(600)))
    assert conv.handle(e.LocalSpeechStopped()) == [c.StartTimer(TURN_TIMER, 400)]
    assert conv.handle(e.LocalSpeechStarted(900.0)) == [c.CancelTimer(TURN_TIMER)]  # goes on
    assert conv.handle(e.TimerFired(TURN_TIMER)) == []  # stale: the turn went on
    assert conv.handle(e.LocalSpeechStopped()) == [c.StartTimer(TURN_TIMER, 400)]
    assert kinds(conv.handle(e.TimerFired(TURN_TIMER))) == ["CommitInputAudio", "CreateResponse"]
    # the reply plays: a sound's end over it is no turn's end
    feed(conv, e.ResponseCreated("r1"), e.OutputItemAdded("r1", "i1"),
         e.AudioDelta("r1", "i1", ms(500)))
    assert conv.handle(e.LocalSpeechStopped()) == []
    # what was sent while it played is cleared once it played out: the next turn is the user's
    conv.handle(e.MicAudio(ms(500)))
    assert kinds(feed(conv, e.ResponseDone("r1", "completed"),
                      e.PlaybackFinished({"i1": 500.0}))) == ["ClearInputAudio"]
    conv.handle(e.MicAudio(ms(60)))
    conv.handle(e.LocalSpeechStopped())
    assert conv.handle(e.TimerFired(TURN_TIMER)) == []  # 60 ms of its own: no turn


def test_push_to_talk_sends_only_while_the_key_is_down_and_commits_on_release() -> None:
    from bargein.adapters.session_config import PushToTalk

    conv = Conversation()
    conv.handle(e.ConfigureSession(SessionConfig(turn_detection=PushToTalk())))
    assert conv.handle(e.TalkReleased()) == []  # a release without a press
    assert conv.handle(e.TalkPressed()) == []  # pressed while connecting: the key is down...
    conv.handle(e.SessionReady(interrupt_response=False))
    conv.handle(e.MicAudio(ms(200)))  # ...and the audio goes once live
    assert kinds(conv.handle(e.TalkReleased())) == ["CommitInputAudio", "CreateResponse"]
    assert conv.stats.illegal_events == 0
    assert conv.manual_turns and conv.push_to_talk
    assert conv.handle(e.MicAudio(ms(300))) == []  # key up: nothing goes out
    assert kinds(conv.handle(e.TalkPressed())) == ["ClearInputAudio"]
    assert kinds(feed(conv, *[e.MicAudio(ms(20)) for _ in range(10)])) == ["SendAudio"] * 10
    assert kinds(conv.handle(e.TalkReleased())) == ["CommitInputAudio", "CreateResponse"]
    assert conv.handle(e.MicAudio(ms(20))) == []
    # the reply plays; the key goes down again: the reply is cut as by speech, then cleared
    feed(conv, e.ResponseCreated("r1"), e.OutputItemAdded("r1", "i1"),
         e.AudioDelta("r1", "i1", ms(500)))
    out = conv.handle(e.TalkPressed())
    assert kinds(out) == ["FlushPlayback", "CancelResponse", "ClearInputAudio"]
    assert conv.state == "interrupted" and not conv.interruptions
    conv.handle(e.PlaybackFlushed({"i1": 200.0}))
    assert conv.interruptions[0].trigger == "interrupt"
    conv.handle(e.MicAudio(ms(40)))
    with capture_logs() as logs:
        assert conv.handle(e.TalkReleased()) == []  # 40 ms: the server would refuse it
    assert [x["event"] for x in logs] == ["push_to_talk_too_short"]


def test_the_idle_timeout_counts_from_when_the_reply_played_out() -> None:
    from bargein.core.conversation import IDLE_TIMER

    conv = Conversation()
    feed(conv, e.SessionReady(interrupt_response=False),
         e.ConfigureSession(SessionConfig(idle_timeout_ms=8000)),
         e.ResponseCreated("r1"), e.OutputItemAdded("r1", "i1"),
         e.AudioDelta("r1", "i1", ms(3000)))
    assert conv.handle(e.ResponseDone("r1", "completed")) == []  # the server is done...
    # ...the speaker is not: the wait starts when it says so
    assert c.StartTimer(IDLE_TIMER, 8000) in conv.handle(e.PlaybackFinished({"i1": 3000.0}))
    with capture_logs() as logs:
        assert kinds(conv.handle(e.TimerFired(IDLE_TIMER))) == ["CreateResponse"]
    assert [x["event"] for x in logs if x["event"] != "command"] == ["idle_timeout"]
    # the nudge plays out: the wait starts again, and the user speaking ends it
    feed(conv, e.ResponseCreated("r2"), e.ResponseDone("r2", "completed"))
    assert IDLE_TIMER in conv.timers
    assert conv.handle(e.SpeechStarted("u1", 0))[0] == c.CancelTimer(IDLE_TIMER)
    assert conv.handle(e.TimerFired(IDLE_TIMER)) == []  # stale


def test_no_idle_timeout_after_a_barge_in_or_without_one_configured() -> None:
    from bargein.core.conversation import IDLE_TIMER

    conv = Conversation()
    feed(conv, e.SessionReady(interrupt_response=False), e.ResponseCreated("r1"),
         e.ResponseDone("r1", "completed"))
    assert conv.state == "listening" and IDLE_TIMER not in conv.timers  # none configured
    feed(conv, e.ConfigureSession(SessionConfig(idle_timeout_ms=5000)), e.ResponseCreated("r2"),
         e.OutputItemAdded("r2", "i2"), e.AudioDelta("r2", "i2", ms(500)),
         e.LocalSpeechStarted(0.0), e.PlaybackFlushed({"i2": 100.0}))
    assert conv.state == "listening" and IDLE_TIMER not in conv.timers  # the user has the floor


def test_commit_and_clear_the_input_as_the_program_asks() -> None:
    conv = Conversation()
    assert conv.handle(e.CommitInput()) == [] and conv.handle(e.ClearInput()) == []  # idle
    conv.handle(e.SessionReady())
    assert not conv.manual_turns  # server VAD: the server commits, RequestResponse does not
    conv.handle(e.MicAudio(ms(300)))
    assert kinds(conv.handle(e.RequestResponse())) == ["CreateResponse"]
    assert kinds(conv.handle(e.ClearInput())) == ["ClearInputAudio"]
    assert conv.handle(e.CommitInput()) == []  # cleared: nothing to commit
    conv.handle(e.MicAudio(ms(300)))
    assert kinds(conv.handle(e.CommitInput())) == ["CommitInputAudio"]
    assert conv.handle(e.CommitInput()) == []
    conv.handle(e.MicAudio(ms(300)))
    conv.handle(e.Reconnected())  # a new server session: its buffer is empty
    conv.handle(e.SessionReady())
    assert conv.handle(e.CommitInput()) == []


def test_a_typed_message_interrupts_and_follows_the_truncate() -> None:
    conv = Conversation()
    responding(conv, interrupt_response=False)
    flush, cancel = conv.handle(e.UserMessage("Stop, what about Tuesday?"))
    assert isinstance(flush, c.FlushPlayback) and isinstance(cancel, c.CancelResponse)
    assert conv.state == "interrupted"
    truncate, message, create = conv.handle(e.PlaybackFlushed({"i1": 500.0}))
    assert isinstance(truncate, c.TruncateItem) and truncate.audio_end_ms == 500
    assert isinstance(message, c.CreateMessage) and isinstance(create, c.CreateResponse)
    assert (message.role, message.text) == ("user", "Stop, what about Tuesday?")
    assert len({cancel.event_id, truncate.event_id, message.event_id, create.event_id}) == 4
    assert conv.interruptions[-1].trigger == "interrupt"


def test_a_typed_message_while_listening_is_sent_at_once() -> None:
    conv = Conversation()
    assert conv.handle(e.UserMessage("hello")) == [] and conv.stats.illegal_events == 1  # idle
    conv.handle(e.SessionReady())
    assert kinds(conv.handle(e.UserMessage("hello"))) == ["CreateMessage", "CreateResponse"]
    assert conv.state == "listening" and not conv.interruptions


def test_a_typed_message_waiting_on_a_barge_in_is_dropped_loudly_with_the_connection() -> None:
    conv = Conversation()
    responding(conv, interrupt_response=False)
    conv.handle(e.UserMessage("are you there?"))
    with capture_logs() as logs:
        conv.handle(e.Disconnected("gone"))
    assert ("typed_messages_lost", "warning") in [(x["event"], x["log_level"]) for x in logs]
    conv.handle(e.Reconnected())
    conv.handle(e.SessionReady())
    assert not [x for x in conv.handle(e.PlaybackFlushed({})) if isinstance(x, c.CreateMessage)]


def test_a_clamped_truncate_errors_without_an_event_id_and_is_reconciled() -> None:
    """A real server refuses a truncate past the audio it holds with an error naming no
    event, only the parameter, then applies it clamped (``truncated`` at the end)."""
    conv = Conversation()
    responding(conv, interrupt_response=False)
    conv.handle(e.UserInterrupt())
    (truncate,) = conv.handle(e.PlaybackFlushed({"i1": 900.0}))
    assert isinstance(truncate, c.TruncateItem)
    feed(conv, e.ServerError("invalid_request_error", "invalid_value", "too long", None,
                             "audio_end_ms"),
         e.ItemTruncated("i1", 850))
    assert conv.stats.benign_errors == 1 and conv.stats.server_errors == 0
    # with nothing kept (the truncate settled), the same error is a real one
    conv.handle(e.ServerError("invalid_request_error", "invalid_value", "too long", None,
                              "audio_end_ms"))
    assert conv.stats.server_errors == 1


def test_observers_see_every_transition_with_reason() -> None:
    conv = Conversation()
    seen: list[TransitionRecord] = []
    remove = conv.add_observer(seen.append)
    responding(conv, interrupt_response=False)
    feed(conv, e.SpeechStarted("u2", 1), e.PlaybackFlushed({"i1": 1.0}))
    assert [(r.source, r.dest, r.trigger) for r in seen] == [
        ("idle", "listening", "session_ready"),
        ("listening", "responding", "response_created"),
        ("responding", "interrupted", "speech_started"),
        ("interrupted", "listening", "playback_flushed"),
    ]
    assert seen[2].reason == "barge-in"
    remove()
    feed(conv, e.Disconnected())
    assert len(seen) == 4


def test_a_failing_observer_does_not_break_the_conversation() -> None:
    conv = Conversation()

    def broken(_: TransitionRecord) -> None:
        raise RuntimeError("observer bug")

    conv.add_observer(broken)
    with capture_logs() as logs:
        conv.handle(e.SessionReady())
    assert conv.state == "listening"
    assert any(x["event"] == "observer_failed" for x in logs)


def test_transitions_and_commands_are_logged_as_structured_events() -> None:
    conv = Conversation()
    responding(conv, interrupt_response=False)
    with capture_logs() as logs:
        feed(conv, e.SpeechStarted("u2", 1), e.PlaybackFlushed({"i1": 640.0}))
    transitions = [x for x in logs if x["event"] == "transition"]
    assert transitions[0]["source"] == "responding" and transitions[0]["dest"] == "interrupted"
    truncate = next(x for x in logs if x.get("kind") == "TruncateItem")
    assert truncate["audio_end_ms"] == 640 and truncate["item_id"] == "i1"


# --- every edge of the default table ---------------------------------------------------

def _drive_to(conv: Conversation, state: str) -> None:
    if state == "idle":
        return
    conv.handle(e.SessionReady(interrupt_response=False))
    if state == "responding":
        feed(conv, e.ResponseCreated("r1"), e.AudioDelta("r1", "i1", ms(100)))
    if state == "interrupted":
        feed(conv, e.ResponseCreated("r1"), e.AudioDelta("r1", "i1", ms(100)),
             e.UserInterrupt())
    if state == "running_tools":
        feed(conv, e.ResponseCreated("r1"), e.ToolCall("r1", "fc1", "c1", "f", "{}"),
             e.ResponseDone("r1", "completed"))
    assert conv.state == state


def _event_for(trigger: str) -> e.Event:
    events: dict[str, e.Event] = {
        "session_ready": e.SessionReady(),
        "reconnected": e.Reconnected(),
        "disconnected": e.Disconnected(),
        "start": e.UserStart(),
        "stop": e.UserStop(),
        "speech_started": e.SpeechStarted("u", 0),
        "local_speech_started": e.LocalSpeechStarted(0.0),
        "interrupt": e.UserInterrupt(),
        "speech_stopped": e.SpeechStopped("u", 0),
        "response_created": e.ResponseCreated("r2"),
        "audio_started": e.AudioDelta("r2", "i2", ms(10)),
        "response_done": e.ResponseDone("r1", "completed"),
        "playback_finished": e.PlaybackFinished({"i1": 100.0}),
        "playback_flushed": e.PlaybackFlushed({"i1": 50.0}),
        "tools_done": e.ToolResult("c1", "{}"),
    }
    return events[trigger]


GUARDED = {(edge.source, edge.trigger) for edge in DEFAULT_TABLE.edges()
           if edge.conditions or edge.unless}
EDGES = [
    (edge.source, edge.trigger, edge.dest)
    for edge in DEFAULT_TABLE.edges()
    if (edge.source, edge.trigger) not in GUARDED
]


@pytest.mark.parametrize(("source", "trigger", "dest"), EDGES)
def test_every_unconditional_edge(source: str, trigger: str, dest: str | None) -> None:
    conv = Conversation()
    _drive_to(conv, source)
    before = conv.stats.illegal_events
    conv.handle(_event_for(trigger))
    assert conv.stats.illegal_events == before
    assert conv.state == (dest or source)


def test_guarded_edges_out_of_idle() -> None:
    # idle --session_ready / reconnected [not paused]--> listening, else stays
    for event in (e.SessionReady(), e.Reconnected()):
        conv = Conversation()
        conv.handle(event)
        assert conv.state == "listening"
        conv = Conversation()
        feed(conv, e.UserStop(), event)
        assert conv.state == "idle" and conv.stats.illegal_events == 0
    # idle --start [connected]--> listening, else stays
    conv = Conversation()
    conv.handle(e.UserStart())
    assert conv.state == "idle" and conv.stats.illegal_events == 0
    feed(conv, e.SessionReady(), e.UserStop(), e.UserStart())
    assert conv.state == "listening"


def test_a_pause_holds_whatever_the_server_says() -> None:
    conv = Conversation()
    feed(conv, e.SessionReady(), e.UserStop())
    assert feed(conv, e.ConfigureSession({}), e.SessionReady(), e.Disconnected(),
                e.Reconnected(), e.SessionReady())[0].__class__ is c.UpdateSession
    assert conv.state == "idle"
    assert conv.handle(e.MicAudio(ms(20))) == [], "no microphone audio while paused"


def test_a_reply_created_during_a_pause_is_cancelled_and_its_items_deleted() -> None:
    conv = Conversation()
    feed(conv, e.SessionReady(), e.SpeechStopped("u", 900), e.UserStop())
    (cancel,) = conv.handle(e.ResponseCreated("r1"))
    assert isinstance(cancel, c.CancelResponse) and cancel.response_id == "r1"
    (delete,) = conv.handle(e.OutputItemAdded("r1", "i1"))
    assert isinstance(delete, c.DeleteItem) and delete.item_id == "i1"
    assert feed(conv, e.AudioDelta("r1", "i1", ms(40)), e.ResponseDone("r1", "cancelled")) == []
    assert conv.stats.illegal_events == 0 and conv.state == "idle"


def test_a_drained_speaker_means_every_item_was_heard_to_its_end() -> None:
    """A resampling speaker may report a fraction of a ms less than it was given; once it
    has played everything, nothing of that answer may be truncated at the next barge-in."""
    conv = Conversation()
    responding(conv, audio_ms=1000, interrupt_response=False)
    feed(conv, e.ResponseDone("r1", "completed"), e.PlaybackFinished({"i1": 999.4}))
    assert conv.state == "listening"
    out = feed(conv, e.ResponseCreated("r2"), e.AudioDelta("r2", "i2", ms(500)),
               e.SpeechStarted("u2", 5000), e.PlaybackFlushed({"i2": 305.0}))
    assert [(type(x).__name__, getattr(x, "item_id", None)) for x in out
            if isinstance(x, c.TruncateItem | c.DeleteItem)] == [("TruncateItem", "i2")]


def test_conditional_edges() -> None:
    # responding --response_done [not playing]--> listening
    conv = Conversation()
    _drive_to(conv, "responding")
    feed(conv, e.PlaybackFinished({"i1": 100.0}), e.ResponseDone("r1", "completed"))
    assert conv.state == "listening"
    # interrupted --playback_flushed [generating]--> responding
    conv = Conversation()
    _drive_to(conv, "interrupted")
    feed(conv, e.ResponseCreated("r2"), e.PlaybackFlushed({"i1": 1.0}))
    assert conv.state == "responding"
    # interrupted --playback_flushed [playing]--> responding
    conv = Conversation()
    _drive_to(conv, "interrupted")
    # (audio held in interrupted of a response not announced: a done would drop it)
    out = feed(conv, e.AudioDelta("r2", "i2", ms(10)), e.PlaybackFlushed({"i1": 1.0}))
    assert conv.state == "responding"
    assert isinstance(out[-1], c.PlayAudio), "the held audio plays once the flush is confirmed"


# --- extension -------------------------------------------------------------------------

THINKING = DEFAULT_TABLE.extend(
    states=[State("thinking", interruptible=True, description="the user stopped; no audio yet")],
    transitions=[
        Transition("speech_stopped", "listening", "thinking", reason="user finished"),
        Transition("audio_started", "thinking", "responding", reason="first audio"),
        Transition("response_created", "thinking", None),
        Transition("response_done", "thinking", "listening", reason="nothing to say"),
    ],
    name="with_thinking",
)

GREETING = DEFAULT_TABLE.extend(
    states=[State("greeting", interruptible=False)],
    transitions=[
        Transition("session_ready", "idle", "greeting"),
        Transition("audio_started", "greeting", None),
        Transition("response_created", "greeting", None),
        Transition("playback_finished", "greeting", "listening", unless=("generating",)),
        Transition("response_done", "greeting", None),
    ],
)


def test_custom_interruptible_state_gets_the_barge_in_edge() -> None:
    conv = Conversation(THINKING)
    feed(conv, e.SessionReady(interrupt_response=False), e.SpeechStarted("u", 0),
         e.SpeechStopped("u", 800))
    assert conv.state == "thinking"
    feed(conv, e.ResponseCreated("r1"), e.OutputItemAdded("r1", "i1"))
    out = conv.handle(e.SpeechStarted("u2", 1200))
    assert conv.state == "interrupted"
    assert kinds(out) == ["FlushPlayback", "CancelResponse"]
    assert kinds(conv.handle(e.PlaybackFlushed({}))) == ["DeleteItem"]
    feed(conv, e.SpeechStopped("u2", 2000), e.ResponseCreated("r2"),
         e.AudioDelta("r2", "i2", ms(10)))
    assert conv.state == "responding"


def test_non_interruptible_state_ignores_barge_in() -> None:
    conv = Conversation(GREETING)
    feed(conv, e.SessionReady(interrupt_response=False), e.ResponseCreated("r1"),
         e.AudioDelta("r1", "i1", ms(500)))
    assert conv.state == "greeting"
    assert conv.handle(e.SpeechStarted("u", 100)) == []
    assert conv.state == "greeting" and conv.stats.illegal_events == 0
    feed(conv, e.ResponseDone("r1", "completed"), e.PlaybackFinished({"i1": 500.0}))
    assert conv.state == "listening"


@pytest.mark.parametrize(
    ("states", "transitions", "match"),
    [
        ([], [Transition("nope", "idle", "listening")], "unknown trigger"),
        ([], [Transition("start", "idle", "nowhere")], "unknown state"),
        ([], [Transition("start", "idle", "listening", conditions=("sunny",))],
         "unknown condition"),
        ([State("idle")], [], "names a state twice"),
    ],
)
def test_bad_tables_are_refused(states: list[State], transitions: list[Transition],
                                match: str) -> None:
    with pytest.raises(StateTableError, match=match):
        DEFAULT_TABLE.extend(states, transitions)


def test_table_without_core_states_is_refused() -> None:
    with pytest.raises(StateTableError, match="lacks core states"):
        StateTable(states=(State("idle"),), transitions=())



def test_every_response_in_flight_is_cancelled_and_gated() -> None:
    conv = Conversation()
    feed(conv, e.SessionReady(interrupt_response=False), e.ResponseCreated("r1"),
         e.ResponseCreated("r2"))
    out = conv.handle(e.UserInterrupt())
    assert [x.response_id for x in out if isinstance(x, c.CancelResponse)] == ["r1", "r2"]
    conv.handle(e.PlaybackFlushed({}))
    assert feed(conv, e.AudioDelta("r1", "i1", ms(10)), e.AudioDelta("r2", "i2", ms(10))) == []


def test_an_item_heard_to_its_end_before_the_flush_report_is_left_alone() -> None:
    conv = Conversation()
    feed(conv, e.SessionReady(interrupt_response=False), e.AudioDelta("r1", "i1", ms(10)),
         e.SpeechStarted("u", 0), e.ResponseDone("r1", "completed"),
         e.PlaybackFinished({"i1": 10.0}))
    assert conv.handle(e.PlaybackFlushed({"i1": 10.0})) == []
    assert conv.state == "listening"


# --- which edge fired ------------------------------------------------------------------

def _flushed_reason(*before_flush: e.Event) -> TransitionRecord:
    conv = Conversation()
    _drive_to(conv, "interrupted")
    feed(conv, *before_flush)
    seen: list[TransitionRecord] = []
    conv.add_observer(seen.append)
    with capture_logs() as logs:
        conv.handle(e.PlaybackFlushed({"i1": 1.0}))
    (record,) = seen
    (logged,) = [x for x in logs if x["event"] == "transition"]
    assert logged["reason"] == record.reason
    return record


def test_the_two_flushed_edges_back_to_responding_report_their_own_reason() -> None:
    """``interrupted -> responding`` has two edges (``[generating]`` and ``[playing]``):
    observers and logs get the reason of the edge that actually fired."""
    generating = _flushed_reason(e.ResponseCreated("r2"))
    assert (generating.source, generating.dest) == ("interrupted", "responding")
    assert generating.reason == "flushed; a new response is under way"
    playing = _flushed_reason(e.AudioDelta("r2", "i2", ms(10)))
    assert (playing.source, playing.dest) == ("interrupted", "responding")
    assert playing.reason == "flushed; a new response is playing"
    both = _flushed_reason(e.ResponseCreated("r2"), e.AudioDelta("r2", "i2", ms(10)))
    assert both.reason == "flushed; a new response is under way", "table order: first wins"


def test_barge_in_events_fire_the_tables_barge_in_triggers() -> None:
    """One list of barge-in events; its triggers are the table's, in the table's order."""
    assert tuple(e.BARGE_IN_EVENTS.values()) == BARGE_IN_TRIGGERS
    for kind, trigger in e.BARGE_IN_EVENTS.items():
        assert _event_for(trigger).__class__ is kind


# --- reconciliation: each kept command is forgotten when its fate is known -----------------

def test_a_confirmed_truncate_is_no_longer_reconciled() -> None:
    conv = Conversation()
    responding(conv, interrupt_response=False)
    cancel = feed(conv, e.UserInterrupt())[1]
    (truncate,) = conv.handle(e.PlaybackFlushed({"i1": 500.0}))
    assert isinstance(cancel, c.CancelResponse) and isinstance(truncate, c.TruncateItem)
    feed(conv, e.ResponseDone("r1", "cancelled"), e.ItemTruncated("i1", 500))
    feed(
        conv,
        e.ServerError("invalid_request_error", "invalid_value", "late", truncate.event_id),
        e.ServerError("invalid_request_error", "other", "late", cancel.event_id),
    )
    assert conv.stats.benign_errors == 0 and conv.stats.server_errors == 2


def test_a_refused_delete_is_reconciled_and_logged_with_its_command() -> None:
    conv = Conversation()
    feed(conv, e.SessionReady(interrupt_response=False), e.ResponseCreated("r1"),
         e.OutputItemAdded("r1", "i1"), e.UserInterrupt())
    (delete,) = conv.handle(e.PlaybackFlushed({}))
    assert isinstance(delete, c.DeleteItem)
    with capture_logs() as logs:
        conv.handle(e.ServerError("invalid_request_error", "item_not_found", "gone",
                                  delete.event_id))
    assert conv.stats.benign_errors == 1 and conv.stats.server_errors == 0
    (logged,) = [x for x in logs if x["event"] == "server_error_reconciled"]
    assert logged["command"] == {"kind": "DeleteItem", "item_id": "i1",
                                 "event_id": delete.event_id}


def test_a_reply_asked_for_is_awaited_until_created_refused_or_lost() -> None:
    conv = Conversation()
    conv.liveness = Liveness()
    feed(conv, e.SessionReady())
    (ask, watch) = conv.handle(e.RequestResponse())
    assert isinstance(ask, c.CreateResponse) and watch == c.StartTimer(REPLY_TIMER, 2500)
    assert conv.reply_asked
    assert conv.handle(e.ResponseCreated("r1"))[-1:] == []  # the watch goes on, generating
    assert not conv.reply_asked
    feed(conv, e.ResponseDone("r1", "completed"))
    (ask, _) = conv.handle(e.RequestResponse())
    out = conv.handle(e.ServerError("invalid_request_error", "bad", "nope", ask.event_id))
    assert not conv.reply_asked and out == [c.CancelTimer(REPLY_TIMER)]
    (ask, _) = conv.handle(e.RequestResponse())
    feed(conv, e.Disconnected("gone"))
    assert not conv.reply_asked
