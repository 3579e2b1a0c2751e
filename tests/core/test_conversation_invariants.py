"""Random event sequences must never break the promises of the core."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from bargein.core import Conversation
from bargein.core import commands as c
from bargein.core import events as e
from bargein.core.conversation import audible_states
from bargein.states import DEFAULT_TABLE, State, Transition
from examples.machines import CONFIRM

RESPONSES = st.sampled_from(["r1", "r2", "r3"])
ITEM_NO = st.integers(min_value=1, max_value=2)
HEARD = st.floats(min_value=0, max_value=5000, allow_nan=False)

THINKING = DEFAULT_TABLE.extend(
    states=[State("thinking", interruptible=True)],
    transitions=[
        Transition("speech_stopped", "listening", "thinking"),
        Transition("audio_started", "thinking", "responding"),
        Transition("response_created", "thinking", None),
        Transition("response_done", "thinking", "listening", unless=("generating",)),
        Transition("response_done", "thinking", None),
    ],
)

pytestmark = pytest.mark.slow


class ConversationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.conv = Conversation(THINKING)
        self.played_bytes: dict[str, int] = defaultdict(int)
        self.settled: Counter[str] = Counter()
        self.live: set[str] = set()
        """Responses the core accepted (created, or audio played) and has not yet cut off."""
        self.stale: set[str] = set()
        """Responses whose audio must never play again: cut off by a flush, or done."""
        self.known: set[str] = set()
        """Every response id an event has named."""
        self.old_session: set[str] = set()
        """The ids known at the last reconnect, less those seen since: a new server session
        may announce a response under one of them before anything else of it, and that one
        is new, its items new items (a server that numbers responses per connection); an id
        it uses first in anything else (a delta it does not announce) stays as it was."""
        self.queued = False
        """Assistant audio given to the speaker and neither flushed nor played out."""
        self.barge_in_events: tuple[type, ...] = (e.SpeechStarted, e.LocalSpeechStarted,
                                                  e.UserInterrupt)
        """Events that must flush queued audio (a two-phase table judges a local onset)."""

    def _feed(self, event: e.Event) -> None:
        if isinstance(event, e.Reconnected):
            self.old_session = set(self.known)
        elif isinstance(event, e.ResponseCreated) and event.response_id in self.old_session:
            # announced first: the new session's own response, and its items new items
            self.stale.discard(event.response_id)
            for item in [i for i in self.settled if i.startswith(f"{event.response_id}-")]:
                del self.settled[item]
                self.played_bytes.pop(item, None)
        rid = getattr(event, "response_id", "")
        if rid:
            self.known.add(rid)
            self.old_session.discard(rid)
        illegal = self.conv.stats.illegal_events
        before = self.conv.state
        queued = self.queued
        commands = self.conv.handle(event)
        kinds = [type(cmd) for cmd in commands]
        # 1. audio plays only where a barge-in can flush it, or where the table says so
        if c.PlayAudio in kinds:
            assert self.conv.state in audible_states(self.conv.table), \
                f"audio played in {self.conv.state}"
            self.queued = True
        # 2. a barge-in trigger with assistant audio queued always flushes
        if queued and isinstance(event, self.barge_in_events):
            assert c.FlushPlayback in kinds, f"{event} in {before} flushed nothing"
        if c.FlushPlayback in kinds or isinstance(event, e.PlaybackFinished):
            self.queued = c.PlayAudio in kinds[max(i for i, k in enumerate(kinds)
                                                   if k is c.FlushPlayback) + 1:] \
                if c.FlushPlayback in kinds else False
        # 3. a response.done moves the machine only when no other response is generating
        if isinstance(event, e.ResponseDone) and self.conv.state != before:
            assert not self.conv.facts.generating, \
                f"response.done of {event.response_id} moved {before} -> " \
                f"{self.conv.state} while {self.conv.facts.generating} generate"
        accepted = self.conv.stats.illegal_events == illegal
        if accepted and isinstance(event, e.ResponseCreated | e.AudioDelta):
            self.live.add(event.response_id)
        for cmd in commands:
            if isinstance(cmd, c.PlayAudio):
                assert cmd.response_id not in self.stale, "audio of an interrupted reply"
                self.played_bytes[cmd.item_id] += len(cmd.audio)
            elif isinstance(cmd, c.TruncateItem):
                self.settled[cmd.item_id] += 1
                assert 0 < cmd.audio_end_ms <= self.played_bytes[cmd.item_id] / 48
            elif isinstance(cmd, c.DeleteItem):
                self.settled[cmd.item_id] += 1
            elif isinstance(cmd, c.FlushPlayback):
                self.stale |= self.live
                self.live.clear()
        if isinstance(event, e.ResponseDone):
            self.stale.add(event.response_id)

    @rule()
    def session_ready(self) -> None:
        self._feed(e.SessionReady(interrupt_response=False))

    @rule(rid=RESPONSES)
    def response_created(self, rid: str) -> None:
        self._feed(e.ResponseCreated(rid))

    @rule(rid=RESPONSES, n=ITEM_NO)
    def item_added(self, rid: str, n: int) -> None:
        self._feed(e.OutputItemAdded(rid, f"{rid}-i{n}"))

    @rule(rid=RESPONSES, n=ITEM_NO, ms=st.integers(min_value=1, max_value=400))
    def audio(self, rid: str, n: int, ms: int) -> None:
        self._feed(e.AudioDelta(rid, f"{rid}-i{n}", b"\0\0" * 24 * ms))

    @rule(rid=RESPONSES, status=st.sampled_from(["completed", "cancelled"]))
    def response_done(self, rid: str, status: str) -> None:
        self._feed(e.ResponseDone(rid, status))

    @rule(event=st.sampled_from([
        e.SpeechStarted("u", 0), e.SpeechStopped("u", 0), e.LocalSpeechStarted(0.0),
        e.UserInterrupt(), e.UserStop(), e.UserStart(), e.Disconnected(), e.Reconnected(),
        e.RequestResponse(), e.ServerError("invalid_request_error", "x", "y", "bargein_1"),
        e.MicAudio(b"\0\0" * 480),
    ]))
    def simple(self, event: e.Event) -> None:
        self._feed(event)

    @rule(heard=st.dictionaries(st.sampled_from(["r1-i1", "r1-i2", "r2-i1", "r3-i2"]), HEARD))
    def flushed(self, heard: dict[str, float]) -> None:
        self._feed(e.PlaybackFlushed(heard))

    @rule(heard=st.dictionaries(st.sampled_from(["r1-i1", "r1-i2", "r2-i1", "r3-i2"]), HEARD))
    def progress(self, heard: dict[str, float]) -> None:
        self._feed(e.PlaybackProgress(heard))

    @rule(heard=st.dictionaries(st.sampled_from(["r1-i1", "r1-i2", "r2-i1", "r3-i2"]), HEARD))
    def finished(self, heard: dict[str, float]) -> None:
        self._feed(e.PlaybackFinished(heard))

    @invariant()
    def state_is_known(self) -> None:
        assert self.conv.state in THINKING.state_names

    @invariant()
    def each_item_settled_at_most_once(self) -> None:
        assert all(n <= 1 for n in self.settled.values()), self.settled


ConversationMachine.TestCase.settings = settings(max_examples=1000, stateful_step_count=40,
                                                 deadline=None)
TestConversationInvariants = ConversationMachine.TestCase


class NestedConversationMachine(ConversationMachine):
    """The same promises on a nested machine with a timed edge, history and a trigger of
    the program's (``examples.machines.confirm``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = Conversation(CONFIRM)
        self.barge_in_events = (e.SpeechStarted, e.UserInterrupt)

    @rule(data=st.data())
    def timer_fires(self, data: st.DataObject) -> None:
        running = sorted(self.conv.timers)
        if running:
            self._feed(e.TimerFired(data.draw(st.sampled_from(running))))

    @rule()
    def sound_ended(self) -> None:
        self._feed(e.LocalSpeechStopped())

    @invariant()
    def state_is_known(self) -> None:
        assert self.conv.state in CONFIRM.resting_states


NestedConversationMachine.TestCase.settings = settings(max_examples=300,
                                                       stateful_step_count=40, deadline=None)
TestNestedConversationInvariants = NestedConversationMachine.TestCase
