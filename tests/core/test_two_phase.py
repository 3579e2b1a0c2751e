"""Two-phase barge-in in the core (``bargein.states.two_phase``): event sequences in, states
and commands out. A cough ducks and resumes; a long sound commits with exactly the instant
machine's flush, cancel and truncation; a transcript of words commits; backchannels are
counted; under server VAD the core sends ``interrupt_response: false`` and cancels itself."""

from __future__ import annotations

import pytest

from bargein.adapters.session_config import SemanticVad, ServerVad, SessionConfig
from bargein.core import Conversation
from bargein.core import commands as c
from bargein.core import events as e
from bargein.core.backchannel import is_backchannel, is_words
from bargein.states import DEFAULT_TABLE, StateTable
from bargein.states import diagram as d
from bargein.states.two_phase import (
    CONFIRM_MS,
    DUCK_GAIN,
    TWO_PHASE_SERVER_VAD_TABLE,
    TWO_PHASE_TABLE,
    two_phase_table,
)
from bargein.testing import feed, machine_tests
from tests.support import REPO

WINDOW = f"after_{CONFIRM_MS}ms@ducked"

test_machine_two_phase = machine_tests(TWO_PHASE_TABLE)
test_machine_two_phase_server_vad = machine_tests(TWO_PHASE_SERVER_VAD_TABLE)


def ms(n: float) -> bytes:
    return b"\x01\x00" * int(n * 24)


def speaking(conv: Conversation, audio_ms: int = 1000) -> list[c.Command]:
    """A reply r1 (item i1) under way with ``audio_ms`` of its audio played."""
    return feed(
        conv,
        e.SessionReady(interrupt_response=False),
        e.ResponseCreated("r1"),
        e.OutputItemAdded("r1", "i1"),
        *[e.AudioDelta("r1", "i1", ms(100)) for _ in range(audio_ms // 100)],
    )


def kinds(commands: list[c.Command]) -> list[str]:
    return [type(x).__name__ for x in commands]


def test_a_cough_ducks_the_reply_and_resumes_it_where_it_was() -> None:
    conv = Conversation(TWO_PHASE_TABLE)
    speaking(conv)
    assert conv.state == "speaking"
    out = conv.handle(e.LocalSpeechStarted(1000.0))
    assert conv.state == "ducked"
    assert out == [c.DuckPlayback(DUCK_GAIN), c.StartTimer(WINDOW, CONFIRM_MS)]
    # the reply plays on, ducked: its audio keeps arriving and playing
    played = conv.handle(e.AudioDelta("r1", "i1", ms(100)))
    assert kinds(played) == ["PlayAudio"]
    out = conv.handle(e.LocalSpeechStopped(1150.0))
    assert conv.state == "speaking", "back where it was"
    assert out == [c.CancelTimer(WINDOW), c.RestorePlayback()]
    assert conv.stats.false_interruptions == 1
    assert conv.stats.interruptions == 0 and not conv.interruptions
    assert conv.timers == frozenset()
    # the reply finishes as if nothing happened: no cancel, no truncate, ever
    rest = feed(conv, e.AudioDelta("r1", "i1", ms(100)), e.ResponseDone("r1", "completed"),
                e.PlaybackFinished({"i1": 1200.0}))
    assert conv.state == "listening"
    assert not [x for x in rest if isinstance(x, c.ServerCommand)]


def test_history_resumes_thinking_when_no_audio_has_come() -> None:
    conv = Conversation(TWO_PHASE_TABLE)
    feed(conv, e.SessionReady(interrupt_response=False), e.ResponseCreated("r1"))
    assert conv.state == "thinking"
    feed(conv, e.LocalSpeechStarted(10.0))
    assert conv.state == "ducked"
    feed(conv, e.LocalSpeechStopped(200.0))
    assert conv.state == "thinking", "history: the sub-state it was in"
    assert conv.machine.history["responding"] == "thinking"
    # the first audio arriving while ducked plays ducked, and the reply resumes speaking
    feed(conv, e.LocalSpeechStarted(300.0))
    out = conv.handle(e.AudioDelta("r1", "i1", ms(100)))
    assert conv.state == "ducked" and kinds(out) == ["PlayAudio"]
    feed(conv, e.LocalSpeechStopped(450.0))
    assert conv.state == "speaking", "its audio is playing now: it resumes speaking"
    assert conv.stats.false_interruptions == 2


def test_a_sound_that_lasts_the_window_commits_exactly_as_the_instant_machine() -> None:
    two = Conversation(TWO_PHASE_TABLE)
    speaking(two)
    feed(two, e.LocalSpeechStarted(1000.0), *[e.AudioDelta("r1", "i1", ms(100))] * 6)
    assert two.state == "ducked"
    out = two.handle(e.TimerFired(WINDOW))
    assert two.state == "interrupted"
    assert kinds(out) == ["FlushPlayback", "CancelResponse", "RestorePlayback"], \
        "flush first, then the cancel; the gain comes back after the flush"
    settle = two.handle(e.PlaybackFlushed({"i1": 1610.0}))
    assert two.state == "listening"

    instant = Conversation(DEFAULT_TABLE)
    speaking(instant, 1600)
    cut = instant.handle(e.LocalSpeechStarted(1600.0))
    settled = instant.handle(e.PlaybackFlushed({"i1": 1610.0}))

    def server(commands: list[c.Command]) -> list[object]:
        return [(type(x).__name__, getattr(x, "response_id", None),
                 getattr(x, "item_id", None), getattr(x, "audio_end_ms", None))
                for x in commands if isinstance(x, c.ServerCommand)]

    assert server(out) == server(cut) == [("CancelResponse", "r1", None, None)]
    assert server(settle) == server(settled) == [("TruncateItem", None, "i1", 1600)], \
        "truncated to what was heard, never past what was received"
    (barge,) = two.interruptions
    assert barge.trigger == WINDOW and barge.cancelled == ("r1",)
    assert two.stats.false_interruptions == 0
    # late deltas of the cut reply are dropped, as always
    assert two.handle(e.AudioDelta("r1", "i1", ms(100))) == []


def test_a_transcript_of_words_commits_a_backchannel_never_does() -> None:
    conv = Conversation(TWO_PHASE_TABLE)
    speaking(conv)
    feed(conv, e.LocalSpeechStarted(1000.0))
    assert conv.handle(e.InputTranscript("u1", "Mhm.")) == []
    assert conv.state == "ducked" and conv.stats.backchannels == 1
    assert conv.handle(e.InputTranscript("u1", "")) == [], "no words: nothing to confirm"
    out = conv.handle(e.InputTranscript("u2", "Wait, that's not what I asked."))
    assert conv.state == "interrupted"
    assert kinds(out) == ["FlushPlayback", "CancelResponse", "CancelTimer", "RestorePlayback"]
    assert conv.stats.interruptions == 1
    settled = conv.handle(e.PlaybackFlushed({"i1": 1000.0}))
    assert [(x.item_id, x.audio_end_ms) for x in settled if isinstance(x, c.TruncateItem)] \
        == [("i1", 1000)]
    (barge,) = conv.interruptions
    assert barge.trigger == "words_heard"


def test_transcripts_elsewhere_change_no_state() -> None:
    conv = Conversation(TWO_PHASE_TABLE)
    speaking(conv)
    assert conv.handle(e.InputTranscript("u0", "What time is it?")) == []
    assert conv.state == "speaking" and conv.stats.illegal_events == 0
    instant = Conversation()
    speaking(instant)
    assert instant.handle(e.InputTranscript("u0", "stop")) == []
    assert instant.handle(e.LocalSpeechStopped(10.0)) == []
    assert instant.state == "responding" and instant.stats.illegal_events == 0


def test_a_backchannel_the_server_heard_over_the_reply_is_counted() -> None:
    conv = Conversation(TWO_PHASE_TABLE)
    speaking(conv)
    feed(conv, e.SpeechStarted("u5", 900))
    assert conv.state == "speaking", "the local detector judges; the server's onset is ignored"
    feed(conv, e.SpeechStopped("u5", 1200), e.InputTranscript("u5", "uh-huh"))
    assert conv.stats.backchannels == 1 and conv.state == "speaking"


@pytest.mark.parametrize(("text", "backchannel", "words"), [
    ("Mhm.", True, False), ("uh-huh", True, False), ("Yeah, yeah.", True, False),
    ("I see", True, False), ("", False, False), ("...", False, False),
    ("stop", False, True), ("yeah but wait", False, True), ("No.", False, True),
])
def test_backchannels_by_their_words(text: str, backchannel: bool, words: bool) -> None:
    assert (is_backchannel(text), is_words(text)) == (backchannel, words)


def test_the_reply_ending_while_ducked_leads_to_listening_at_full_gain() -> None:
    conv = Conversation(TWO_PHASE_TABLE)
    speaking(conv)
    feed(conv, e.LocalSpeechStarted(1000.0), e.ResponseDone("r1", "completed"))
    assert conv.state == "ducked", "still playing"
    out = conv.handle(e.PlaybackFinished({"i1": 1000.0}))
    assert conv.state == "listening"
    assert out == [c.CancelTimer(WINDOW), c.RestorePlayback()]
    assert conv.stats.false_interruptions == 0, "nothing was resumed"


def test_a_disconnect_while_ducked_restores_the_gain() -> None:
    conv = Conversation(TWO_PHASE_TABLE)
    speaking(conv)
    feed(conv, e.LocalSpeechStarted(1000.0))
    out = conv.handle(e.Disconnected("dropped"))
    assert conv.state == "idle"
    assert c.RestorePlayback() in out and c.CancelTimer(WINDOW) in out
    assert out[0] == c.FlushPlayback("disconnected")


def sent_config(conv: Conversation, config: SessionConfig) -> SessionConfig:
    """The configuration of the ``session.update`` the core sends for ``config``."""
    (update,) = conv.handle(e.ConfigureSession(config))
    assert isinstance(update, c.UpdateSession) and isinstance(update.config, SessionConfig)
    return update.config


def test_two_phase_sends_interrupt_response_false_the_instant_machine_leaves_it() -> None:
    config = SessionConfig(turn_detection=ServerVad(silence_duration_ms=300))
    for table in (TWO_PHASE_TABLE, TWO_PHASE_SERVER_VAD_TABLE):
        sent = sent_config(Conversation(table), config)
        assert sent.turn_detection == ServerVad(silence_duration_ms=300,
                                                interrupt_response=False)
        wire = sent.to_wire("ga")["audio"]["input"]["turn_detection"]
        assert wire["interrupt_response"] is False
    semantic = SessionConfig(turn_detection=SemanticVad(eagerness="low"))
    sent = sent_config(Conversation(TWO_PHASE_TABLE), semantic)
    assert sent.to_wire("beta")["turn_detection"]["interrupt_response"] is False
    manual = SessionConfig(turn_detection=None)
    assert sent_config(Conversation(TWO_PHASE_TABLE), manual) is manual
    assert sent_config(Conversation(), config) is config, \
        "instant: the server's turn detection cuts the reply"


def test_under_server_vad_speech_started_ducks_speech_stopped_resumes() -> None:
    conv = Conversation(two_phase_table(local_detector=False))
    speaking(conv)
    out = conv.handle(e.SpeechStarted("u1", 900))
    assert conv.state == "ducked"
    assert out == [c.DuckPlayback(DUCK_GAIN), c.StartTimer(WINDOW, CONFIRM_MS)]
    out = conv.handle(e.SpeechStopped("u1", 1100))
    assert conv.state == "speaking" and out == [c.CancelTimer(WINDOW), c.RestorePlayback()]
    assert conv.stats.false_interruptions == 1
    # a real interruption: the core cancels itself when it commits (the server will not)
    feed(conv, e.SpeechStarted("u2", 1500))
    out = conv.handle(e.TimerFired(WINDOW))
    assert conv.state == "interrupted"
    (cancel,) = [x for x in out if isinstance(x, c.CancelResponse)]
    assert cancel.response_id == "r1" and cancel.event_id
    assert kinds(out)[0] == "FlushPlayback"


def test_the_server_flavour_cancels_even_when_the_server_says_it_would() -> None:
    """A server that still interrupts (the flag not applied) gets a cancel it may refuse:
    ``response_cancel_not_active`` is reconciled as benign."""
    conv = Conversation(TWO_PHASE_SERVER_VAD_TABLE)
    feed(conv, e.SessionReady(interrupt_response=True), e.ResponseCreated("r1"),
         e.AudioDelta("r1", "i1", ms(500)), e.SpeechStarted("u1", 400))
    out = conv.handle(e.TimerFired(WINDOW))
    (cancel,) = [x for x in out if isinstance(x, c.CancelResponse)]
    conv.handle(e.ServerError("invalid_request_error", "response_cancel_not_active", "none",
                              cancel.event_id))
    assert conv.stats.benign_errors == 1 and conv.stats.server_errors == 0


@pytest.mark.parametrize("t", [TWO_PHASE_TABLE, TWO_PHASE_SERVER_VAD_TABLE],
                         ids=lambda t: t.name)
def test_the_committed_diagrams_are_the_code(t: StateTable) -> None:
    diagrams = REPO / "diagrams"
    assert (diagrams / f"{t.name}.mmd").read_text() == d.to_mermaid(t), "run `make diagrams`"
    assert (diagrams / f"{t.name}.md").read_text() == d.to_markdown(t), "run `make diagrams`"
    assert "ducked --> interrupted : after 600 ms / words_heard / interrupt" in d.to_mermaid(t)


def test_the_readme_shows_the_two_phase_machine() -> None:
    assert d.to_mermaid(TWO_PHASE_TABLE) in (REPO / "README.md").read_text()
