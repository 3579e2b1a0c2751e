"""A barge-in always lands: the counterexamples of issue 15, shrunk, as plain tests.

The property tests (``test_conversation_invariants.py``) hold the three promises over
random sequences; these are the sequences that broke them before the fix."""

from __future__ import annotations

from bargein.core import Conversation
from bargein.core import commands as c
from bargein.core import events as e
from bargein.core.conversation import audible_states
from bargein.states import DEFAULT_TABLE


def ms(n: int) -> bytes:
    return b"\1\0" * 24 * n


def feed(conv: Conversation, *events: e.Event) -> list[c.Command]:
    out: list[c.Command] = []
    for event in events:
        out += conv.handle(event)
    return out


def kinds(commands: list[c.Command]) -> list[str]:
    return [type(x).__name__ for x in commands]


def test_a_done_of_another_response_does_not_leave_responding_while_one_generates() -> None:
    """The hostile server's sequence: r2 done while r1 still generates and the speaker
    has drained moved the machine to ``listening``; r1 played on there and the user's
    ``speech_started`` did nothing."""
    conv = Conversation()
    feed(conv, e.SessionReady(interrupt_response=True), e.ResponseCreated("r1"),
         e.AudioDelta("r1", "i1", ms(300)), e.ResponseCreated("r2"),
         e.PlaybackFinished({"i1": 300.0}))
    assert conv.state == "responding"
    feed(conv, e.ResponseDone("r2", "completed"))
    assert conv.state == "responding", "r1 is still generating"
    assert kinds(feed(conv, e.AudioDelta("r1", "i1", ms(300)))) == ["PlayAudio"]
    out = feed(conv, e.SpeechStarted("u1", 0))
    assert conv.state == "interrupted"
    assert kinds(out) == ["FlushPlayback"], "the server cancels (interrupt_response)"
    out = feed(conv, e.PlaybackFlushed({"i1": 310.0}))
    assert [(type(x).__name__, getattr(x, "audio_end_ms", None)) for x in out] == [
        ("TruncateItem", 310)]
    assert conv.state == "listening"


def test_the_done_of_the_last_response_still_ends_the_turn() -> None:
    conv = Conversation()
    feed(conv, e.SessionReady(), e.ResponseCreated("r1"), e.ResponseCreated("r2"),
         e.ResponseDone("r2", "completed"))
    assert conv.state == "responding"
    feed(conv, e.ResponseDone("r1", "completed"))
    assert conv.state == "listening"


def test_audio_of_a_new_reply_is_held_while_interrupted_and_plays_after_the_flush() -> None:
    """Audio played in ``interrupted`` (not interruptible) could not be flushed by a
    second barge-in; it is now held until the flush is confirmed."""
    conv = Conversation()
    feed(conv, e.SessionReady(), e.ResponseCreated("r1"), e.AudioDelta("r1", "i1", ms(100)),
         e.UserInterrupt())
    assert conv.state == "interrupted"
    feed(conv, e.ResponseCreated("r2"))
    assert feed(conv, e.AudioDelta("r2", "i2", ms(40))) == [], "held, not played"
    assert feed(conv, e.SpeechStarted("u2", 0)) == [], "nothing queued, nothing to flush"
    out = feed(conv, e.PlaybackFlushed({"i1": 50.0}))
    assert kinds(out) == ["TruncateItem", "PlayAudio"]
    assert conv.state == "responding"
    assert kinds(feed(conv, e.UserInterrupt())) == ["FlushPlayback", "CancelResponse"]


def test_held_audio_of_a_reply_done_meanwhile_never_plays() -> None:
    """No audio of a finished response plays after its done, held or not."""
    conv = Conversation()
    feed(conv, e.SessionReady(), e.ResponseCreated("r1"), e.AudioDelta("r1", "i1", ms(100)),
         e.UserInterrupt(), e.ResponseCreated("r2"), e.AudioDelta("r2", "i2", ms(40)),
         e.ResponseDone("r2", "completed"))
    out = feed(conv, e.PlaybackFlushed({"i1": 50.0}))
    assert kinds(out) == ["TruncateItem"] and conv.state == "listening"
    assert conv.stats.dropped_deltas == 1


def test_a_disconnect_drops_held_audio_for_good() -> None:
    conv = Conversation()
    feed(conv, e.SessionReady(), e.ResponseCreated("r1"), e.AudioDelta("r1", "i1", ms(100)),
         e.UserInterrupt(), e.ResponseCreated("r2"), e.AudioDelta("r2", "i2", ms(40)),
         e.Disconnected(), e.Reconnected())
    assert feed(conv, e.PlaybackFlushed({}), e.AudioDelta("r2", "i2", ms(40))) == []


def test_a_barge_in_with_audio_queued_flushes_after_a_stray_done() -> None:
    """A random sequence's shrunk form: audio queued, a stray ``response.done`` of a
    response never created, then the barge-in."""
    conv = Conversation()
    feed(conv, e.SessionReady(), e.ResponseCreated("r1"), e.AudioDelta("r1", "i1", ms(20)),
         e.PlaybackFinished({}), e.ResponseDone("r3", "completed"),
         e.AudioDelta("r1", "i1", ms(20)))
    assert kinds(feed(conv, e.LocalSpeechStarted(0.0)))[0] == "FlushPlayback"


def test_the_default_tables_audible_states() -> None:
    # running_tools is interruptible: a new reply's audio there leads to responding
    assert audible_states(DEFAULT_TABLE) == {"responding", "running_tools"}


def test_an_item_of_a_reply_refused_in_a_pause_is_deleted_once() -> None:
    """Found by bench/bench_properties.py (seed 37264, shrunk by hand): an item announced
    before its reply, the reply refused during a pause (its items deleted as announced),
    then a barge-in deleted the item a second time."""
    conv = Conversation()
    out = feed(conv, e.OutputItemAdded("r1", "r1-i2"), e.UserStop(),
               e.SessionReady(interrupt_response=False), e.ResponseCreated("r1"),
               e.UserStart(), e.ResponseCreated("r3"), e.AudioDelta("r3", "r3-i1", ms(50)),
               e.OutputItemAdded("r1", "r1-i2"), e.SpeechStarted("u", 0),
               e.PlaybackFlushed({}))
    deleted = [x.item_id for x in out if isinstance(x, c.DeleteItem)]
    assert deleted.count("r1-i2") == 1, deleted


def test_an_item_of_a_refused_reply_settled_by_a_pause_is_not_deleted_when_announced_again(
        ) -> None:
    """bench_properties seed 71809, shrunk by hand: the item, announced before its reply
    (refused during a first pause), was settled by a second pause's flush; announced again,
    it was deleted a second time."""
    conv = Conversation()
    out = feed(conv, e.OutputItemAdded("r1", "r1-i2"), e.UserStop(), e.SessionReady(),
               e.ResponseCreated("r1"), e.UserStart(), e.SessionReady(), e.UserStop(),
               e.PlaybackFlushed({}), e.OutputItemAdded("r1", "r1-i2"))
    deleted = [x.item_id for x in out if isinstance(x, c.DeleteItem)]
    assert deleted == ["r1-i2"], deleted


def test_an_item_deleted_while_its_pause_waits_for_the_flush_is_not_deleted_again() -> None:
    """bench_properties seed 69256, shrunk by hand: the pause's flush report came after
    the refused reply's item had been deleted as announced."""
    conv = Conversation()
    out = feed(conv, e.OutputItemAdded("r2", "r2-i1"), e.SessionReady(), e.UserStop(),
               e.ResponseCreated("r2"), e.OutputItemAdded("r2", "r2-i1"),
               e.PlaybackFlushed({}))
    deleted = [x.item_id for x in out if isinstance(x, c.DeleteItem)]
    assert deleted.count("r2-i1") == 1, deleted
