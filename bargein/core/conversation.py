"""The sans-IO conversation: events in, commands out. How it works, and why.

``Conversation.handle(event) -> list[Command]`` is the whole interface, in the manner of
h11: no awaits, sockets, devices or clock (time, where it matters, arrives inside events).
Adapters turn the wire and the devices into ``events`` and carry out the ``commands``; the
session glues them together. Everything here is tested by feeding event sequences.

The machine. Which state follows which is data (``bargein.states.table``), made a
``transitions`` machine by ``bargein.states.TableMachine``, whose every edge reports itself
(and the states it left and entered) when it fires. What a step asks for besides the
barge-in (actions, timers, held speech) and the program's own events are explained in
``bargein.core.actions``. This module maps events to triggers, owns the facts the guards ask about
(``playing``: the speaker holds assistant audio; ``generating``: a response not
interrupted is between ``response.created`` and ``response.done``; ``connected``;
``paused``) and does the work around the edges. Observers and the ``transition`` log line
get the edge that fired, with its own reason: two edges may share trigger, source and
destination (``interrupted -> responding`` on ``playback_flushed``, guarded by
``generating`` or by ``playing``), and guessing the edge back from those three reported
the wrong one. An event with no edge from the current state is illegal there: logged,
counted (``stats.illegal_events``), never raised, the state unchanged, because a server
that repeats or reorders events must not end a conversation.

The playback ledger (``ledger.py``) keeps, per assistant item, the audio received and the
milliseconds the speaker reports heard; heard never goes back and never passes received.
Without it a barge-in could only tell the server what was *sent* to the speaker, and the
model would believe the user heard words still in the device buffer. ``PlaybackFinished``
means all that was given was played: every item counts as heard to its end whatever the
report says (a resampler holds back a fraction of a millisecond), or a finished answer
would stay open and be truncated by the next barge-in.

The stale-audio gate (``_gated``) holds the responses whose audio must never play again:
those cut off by a barge-in, a pause or a disconnect, those the server has finished (no
audio is left to send; a repeated delta is a fault), replies refused during a pause. Their
deltas are dropped and counted (``stats.dropped_deltas``) whenever they arrive, and a
repeated ``response.created`` of one is ignored, except from a new server session: after a
reconnect, a response it announces under an id of the old session is its own (a server
may number responses per connection), while a delta it does not announce stays stale.
This is the classic leak: the cancel crosses deltas in flight, a server may send more after
it, and a queue cleared once plays them. The gate remembers the last ``GATE_KEEP`` ids it
closed, so hours of conversation cost it no more memory than minutes.

Where audio plays (``audible_states``). Assistant audio plays only in a state where a
barge-in can flush it (an interruptible one) or where the table says it may play (an
``audio_started`` edge that stays there: an uninterruptible greeting). Each delta checks
the state (a set lookup): a delta of the response playing that finds the machine
elsewhere fires ``audio_started`` again, so it plays where that edge leads or not at all.
A new response's audio arriving in ``interrupted`` (the speaker not yet flushed) is held,
counted as ``playing`` for the guards, and played once ``playback_flushed`` has led on;
a barge-in or a disconnect meanwhile drops it with its response, and so does its
``response.done`` (no audio of a finished response plays after its done).

The hot path. ``AudioDelta`` and ``MicAudio`` skip the dispatch table and the machine: a
delta costs the gate's set lookup, a comparison with the response playing, a ledger sum.
Only a response's first delta fires ``audio_started`` (dropped if that is illegal here).

The barge-in. A barge-in event (``events.BARGE_IN_EVENTS``: the server's turn detection,
a local detector, the program) fires its trigger; from an interruptible state it leads to
``interrupted``. Entering ``interrupted``, by whatever edge (a confirm window's timer
too), is the barge-in, and the core at once: emits ``FlushPlayback`` first, since the voice going
on is what the user notices; sends ``CancelResponse`` for each response still generating,
unless the trigger is the server's ``speech_started`` and the server cancels by itself
(``interrupt_response``; any other trigger, a timer's included, cancels), as a second
cancel only earns ``response_cancel_not_active``;
gates every response that may still make a sound (generating, or with audio not heard to
its end: a response already done may still be playing, and its item needs truncating);
and stops counting them as generating or playing, so the guards see what is left. A state
that is not interruptible keeps still: the signal is legal there and changes nothing.

Two phases (``bargein.states.two_phase``). A table may judge a sound before it cuts:
there an onset over the reply does not enter ``interrupted`` but ``ducked``, whose entry
action asks the speaker to duck (``DuckPlayback``) and whose timed edge is the confirm
window. Nothing is cancelled or gated while it judges: the reply's deltas keep arriving and
playing (``ducked`` is audible: an ``audio_started`` edge stays there). The window running
out, or ``words_heard`` (an ``InputTranscript`` of words that are not a backchannel,
``bargein.core.backchannel``), enters ``interrupted``: the barge-in above, unchanged, its
trigger the timer's or ``words_heard`` (so the core cancels). The sound ending first
(``local_speech_stopped``, the detector's stop edge; or the server's ``speech_stopped``
where the server judges) leads back into ``responding``, by history; ``ducked``'s exit
action restores the gain, whichever way it is left, and leaving it back into
``responding`` counts ``stats.false_interruptions``. ``local_speech_stopped`` and
``words_heard`` fire only where the table has an edge for them (elsewhere the end of a
sound or a transcript is no news, not an illegal event). A transcript that is a
backchannel, of the server's speech item heard over a reply that played on (or while
judging), counts ``stats.backchannels`` and never commits. Such a table sets
``server_interrupts=False``: the core then sends every ``session.update`` with
``interrupt_response: false`` (``ConfigureSession``'s config, through its
``with_interrupt_response``), so the server's turn detection cannot kill the reply before
the client has judged; the commit's ``response.cancel`` is the core's own. The cost is a
round trip on a committed cut (the server stops generating when the cancel arrives, not at
its own onset; what it sends meanwhile is gated); what it buys is a reply that survives a
cough.

Pending barge-ins (``settlement.py``). What was heard is known only once the speaker has
stopped (the device held some audio; the fade plays a little more), so the barge-in notes
the unsettled items it cut off and waits for ``PlaybackFlushed``. Each is then settled
once: ``TruncateItem`` at what was heard, never past what was received (the server refuses
that), ``DeleteItem`` when nothing was heard (the model must not build on words nobody
heard), nothing for an item that had played to its end. The record goes to
``interruptions``; ``playback_flushed`` leads to ``responding`` if a new response is under
way or playing, else to ``listening``. A pause while ``interrupted`` merges its items into
the waiting barge-in, so one report settles each item, and none twice.

Pauses. ``UserStop`` is an interruption by the program (flush, cancel, settle) into
``idle`` that holds until ``UserStart`` whatever the server says: ``session_ready`` and
``reconnected`` are guarded ``not paused``, so neither a reconnect nor a
``session.updated`` resumes what the user paused; ``start`` waits for ``connected``. No
microphone audio leaves ``idle``. A reply created during a pause (turn detection answering
what was said just before) is cancelled and its items deleted as they are announced:
nobody will hear it, so the model must not think it was said.

Tools, turns, the idle wait. Tool calls follow ``bargein.core.tool_calls``: a reply done
and played while a call it made runs rests in ``running_tools`` (the ``tools_running``
guard; interruptible, so the user speaking there is a barge-in that ends the calls) until
``tools_done``. Under manual turns (no turn detection on the server) a ``RequestResponse``,
the client detector's quiet (``TURN_TIMER``) or the push-to-talk key's release commits the
user's audio before the reply is asked for; under push-to-talk the microphone's audio goes
out only while the key is down, and its press is the program's barge-in. Once a reply has
played out and the machine rests in ``listening``, held tool outputs go, or else the idle
wait (``IDLE_TIMER``) starts; the user, the program or a new reply ends it.

A disconnect abandons what was in flight for good: open and generating responses gated,
the ledger, the pending barge-in and the reconciliation map dropped, the speaker flushed.
The new server session holds none of those items: nothing to truncate, nothing to play.
A reconnect is not readiness: the never-ready deadline runs again until the new server
session says ``session.created``; a ``Reconnected`` with no ``Disconnected`` before it
abandons what was in flight all the same.

Reconciling the server's complaints (``reconcile.py``). Each cancel, truncate and delete
is kept by its event id until its fate is known. ``response_cancel_not_active``, an error
naming a kept truncate or delete, or one that names no event but refuses ``audio_end_ms``
while a truncate is kept (a real server's answer to a truncate past the audio it holds,
followed by the truncate applied at its end), means the server got there first (it finished
the response; it holds less audio than we counted, or no longer the item): its view is the
true one and there is nothing to redo, so it is logged at info and counted
(``stats.benign_errors``), never fatal. Other errors are counted and logged; the
conversation goes on. A flood of one error is summarised, not echoed (``ERROR_SUMMARY_S``):
the first line, then one per 5 s with how many were held back; ``stats`` counts them all.

(The module is long, ~680 lines, because this account of why is a third of it, and the
handlers it explains share the facts above; the ledger, settlement, reconciliation,
stepping and actions already live in modules of their own.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from bargein.core import commands as c
from bargein.core import events as e
from bargein.core.actions import MicGate
from bargein.core.backchannel import is_backchannel, is_words
from bargein.core.ledger import PlaybackLedger
from bargein.core.liveness import LIVENESS_TIMERS, READY_TIMER, REPLY_TIMER, Liveness
from bargein.core.pcm import BYTES_PER_MS
from bargein.core.recent import RecentIds
from bargein.core.reconcile import SentCommands
from bargein.core.records import ConversationStats, Interruption, Observer
from bargein.core.settlement import PendingBargeIn, pend, settle_pending
from bargein.core.stepping import MachineDriver
from bargein.core.tool_calls import ToolCalls
from bargein.errors import ReplyStalled, ResponseDoneLost, SessionNeverReady
from bargein.logs import Repeats, get_logger
from bargein.states.machine import TableMachine
from bargein.states.names import DUCKED
from bargein.states.table import DEFAULT_TABLE, IDLE, INTERRUPTED, LISTENING, StateTable

log = get_logger(__name__)

ERROR_SUMMARY_S = 5.0
"""A flood of one server error (by type and code) or protocol violation logs its first
line, then one line per this many seconds with ``repeated=K``: how many were held back.
(The one clock the core reads, and only for its log lines: no command depends on it.)"""


OVERHEARD_LIMIT = 64
"""The most server speech items kept for classifying their transcripts (oldest forgotten)."""

GATE_KEEP = 1024
"""The most response ids the stale-audio gate remembers (``bargein.core.recent``): a
server's delta for a response a thousand responses old is not in any live exchange."""

KEEP_INTERRUPTIONS = 100
"""The most recent settled barge-ins kept in ``Conversation.interruptions``
(``stats.interruptions`` counts every barge-in)."""

TURN_TIMER = "bargein:turn_end"
"""The quiet that ends a user turn under client turn detection (``client_turn_end_ms``)."""

IDLE_TIMER = "bargein:idle"
"""The user's silence after a reply played out (``SessionConfig.idle_timeout_ms``)."""

_WAKES: frozenset[type] = frozenset({
    *e.BARGE_IN_EVENTS, e.TalkPressed, e.UserMessage, e.RequestResponse, e.CommitInput,
    e.ResponseCreated, e.UserStop, e.Disconnected, e.Reconnected,
})
"""What ends the wait of the idle timeout: the user, the program, or a reply under way."""


class Conversation(MachineDriver):
    """The conversation state machine, with interruption done right.

    Stepping the machine, actions, timers and the program's events are ``MachineDriver``'s
    (``bargein.core.stepping``)."""

    def __init__(self, table: StateTable = DEFAULT_TABLE) -> None:
        self.table = table
        self.stats = ConversationStats()
        self.ledger = PlaybackLedger()
        self.interruptions: deque[Interruption] = deque(maxlen=KEEP_INTERRUPTIONS)
        """The settled barge-ins, the most recent ``KEEP_INTERRUPTIONS`` of them."""
        self.server_interrupts_response = True
        self.manual_turns = False
        """The configuration sent last has no turn detection on the server: the program
        ends each user turn, and a ``RequestResponse`` commits the user's audio first."""
        self.push_to_talk = False
        """...and a key ends it (``PushToTalk``): the user's audio is sent only while it is
        held (``TalkPressed`` .. ``TalkReleased``)."""
        self._key_down = False
        self.idle_timeout_ms: int | None = None
        """After a reply played out, the user's silence that asks for a reply (``IDLE_TIMER``)."""
        self.client_turn_end_ms: int | None = None
        """...and the local detector ends each turn (``ClientVad``): its
        ``LocalSpeechStopped`` in the user's turn starts ``TURN_TIMER``, a new onset stops
        it, and when it fires the user's audio is committed and the reply asked for."""
        self._observers: list[Observer] = []
        self._gated = RecentIds(GATE_KEEP)
        self._old_session: set[str] = set()
        """The gate as the last reconnect found it, less the ids seen since: the old server
        session's ids the new one has not used yet."""
        self._generating: set[str] = set()
        """Responses between ``response.created`` and ``response.done``, not interrupted."""
        self._audio_response: str | None = None
        self._playing = False
        self._connected = False
        self._session_ready = False
        """``session.created`` (or ``session.updated``) came on the connection open now: what
        the never-ready deadline waits for, after the first connection and after each
        reconnection alike."""
        self._paused = False
        self._refused = RecentIds(GATE_KEEP)
        """Replies created during a pause: cancelled, their items deleted (see "Pauses")."""
        self._refused_items = RecentIds(GATE_KEEP)
        self._pending: PendingBargeIn | None = None
        self._typed: list[str] = []
        """Typed messages that wait for the barge-in they caused to settle."""
        self._tools = ToolCalls()
        self.tool_policies: dict[str, str] = {}
        """Each declared tool's ``on_barge_in`` (``cancel``, ``finish`` or ``hold``), from the
        configuration sent last (``SessionConfig.tools``); an undeclared tool's is cancel."""
        self._sent = SentCommands()
        """Event id -> the cancel, truncate or delete sent with it (see "Reconciling")."""
        self._next_event = 0
        self._timers: set[str] = set()
        """Timers started and neither cancelled nor fired (see ``bargein.core.actions``)."""
        self._state_timers = {n: table.timers(n) for n in table.state_names}
        self._plain = frozenset(s.name for s in table.states
                                if not (s.on_enter or s.on_exit or self._state_timers[s.name]))
        self._quiet = frozenset(n for n in self._plain - {IDLE, INTERRUPTED}
                                if table.user_speech(n) == "send")
        self._mic = MicGate(table)
        self._audible = audible_states(table)
        self.repeats = Repeats(ERROR_SUMMARY_S)
        """Rate-limits the error lines of a flood (``bargein.logs.Repeats``)."""
        self.liveness: Liveness | None = None
        """The deadlines, once ``watch()`` was called (``bargein.core.liveness``)."""
        self._reply_seen = False
        self._reply_quiet = 0
        self._asked: str | None = None
        """The event id of the last ``response.create`` sent, until it is answered
        (``response.created``), refused (an error naming it) or lost with the connection."""
        self._overheard: dict[str, None] = {}
        """Server speech items that began while a reply played on (a two-phase table
        judging them, or not cutting for them): their transcripts are classified."""
        self._held: list[e.AudioDelta] = []
        """Deltas of a new response that arrived in ``interrupted``: played once it is left
        for a state where audio may play (see "Where audio plays")."""
        self._machine = TableMachine(table, {
            "playing": lambda: self._playing,
            "generating": lambda: bool(self._generating),
            "connected": lambda: self._connected,
            "paused": lambda: self._paused,
            "tools_running": lambda: self._tools.running(),
        })
        self._dispatch: dict[type, Callable[[Any], list[c.Command]]] = {
            **dict.fromkeys(e.BARGE_IN_EVENTS, self._on_barge_in_event),
            e.SessionReady: self._on_session_ready,
            e.SpeechStopped: lambda ev: self._fire("speech_stopped"),
            e.ResponseCreated: self._on_response_created,
            e.OutputItemAdded: self._on_output_item,
            e.ResponseDone: self._on_response_done,
            e.PlaybackProgress: self._on_progress,
            e.PlaybackFinished: self._on_finished,
            e.PlaybackFlushed: self._on_flushed,
            e.ItemTruncated: self._on_item_settled,
            e.ItemDeleted: self._on_item_settled,
            e.ServerError: self._on_error,
            e.ProtocolViolation: self._on_violation,
            e.Disconnected: self._on_disconnected,
            e.Reconnected: self._on_reconnected,
            e.UserStart: self._on_start,
            e.UserStop: self._on_stop,
            e.ConfigureSession: self._on_configure,
            e.RequestResponse: self._on_request_response,
            e.UserMessage: self._on_user_message,
            e.ToolCall: self._on_tool_call,
            e.ToolResult: self._on_tool_result,
            e.CommitInput: lambda ev: self._commit_turn(),
            e.ClearInput: self._on_clear_input,
            e.TalkPressed: self._on_talk_pressed,
            e.TalkReleased: self._on_talk_released,
            e.TimerFired: self._on_timer_fired,
            e.LocalSpeechStopped: self._on_local_speech_stopped,
            e.TranscriptDelta: _nothing,
            e.InputTranscript: self._on_input_transcript,
            e.UnknownServerEvent: _nothing,
        }

    # --- public ----------------------------------------------------------------------

    def add_observer(self, observer: Observer) -> Callable[[], None]:
        """Call ``observer`` on every fired edge; returns a function that removes it."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    def handle(self, event: e.Event) -> list[c.Command]:
        """Consume one event; return the commands it calls for, in order."""
        kind = type(event)
        if kind is e.AudioDelta:
            return self._on_audio(event)  # type: ignore[arg-type]
        if kind is e.MicAudio:
            if self.push_to_talk and not self._key_down:
                return []
            policy = self._mic.policy
            if policy == "send":
                log.debug("command", kind="SendAudio", audio_bytes=len(event.audio))  # type: ignore[union-attr]
                self._mic.uncommitted += len(event.audio)  # type: ignore[union-attr]
                return [c.SendAudio(event.audio)]  # type: ignore[union-attr]
            if policy == "hold":
                self._mic.hold(event.audio)  # type: ignore[union-attr]
            return []
        if self._old_session and kind is not e.ResponseCreated:
            self._old_session.discard(getattr(event, "response_id", ""))
        handler = self._dispatch.get(kind)
        if handler is None:
            if not isinstance(event, e.UserEvent):
                raise TypeError(f"Conversation.handle() takes a bargein event, not {kind.__name__}")
            commands = self._on_user_event(event)
        else:
            commands = handler(event)
        if IDLE_TIMER in self._timers and kind in _WAKES:
            self._timers.discard(IDLE_TIMER)
            commands = [c.CancelTimer(IDLE_TIMER), *commands]
        asked = _reply_asked(commands)
        if asked is not None:
            self._asked = asked
        if self.liveness is not None:
            commands = self._watch_reply(kind, commands)
        if commands and log.enabled("debug"):  # the fields cost to build: only when wanted
            for command in commands:
                log.debug("command", state=self.state, **c.log_fields(command))
        return commands

    # --- the machine -----------------------------------------------------------------

    def _event_id(self) -> str:
        self._next_event += 1
        return f"bargein_{self._next_event}"

    # --- audio, the hot path ---------------------------------------------------------

    def _on_audio(self, ev: e.AudioDelta) -> list[c.Command]:
        if self._old_session:
            self._old_session.discard(ev.response_id)  # seen unannounced: stays as it is
        if ev.response_id in self._gated:
            self.stats.dropped_deltas += 1
            self.stats.dropped_audio_ms += len(ev.audio) / BYTES_PER_MS
            return []
        return self._accept_audio(ev)

    def _accept_audio(self, ev: e.AudioDelta) -> list[c.Command]:
        rid = ev.response_id
        self._reply_seen = True
        moved = None
        if rid != self._audio_response or self._machine.state not in self._audible:
            if not self._machine.legal("audio_started"):
                self._fire("audio_started")  # logs and counts it
                self.stats.dropped_deltas += 1
                self.stats.dropped_audio_ms += len(ev.audio) / BYTES_PER_MS
                return []
            moved = self._fire("audio_started", ev)  # its step's commands come first
            if self._machine.state not in self._audible:
                # legal here, but no audio plays here: held until the state is left
                self._audio_response = None
                self._held.append(ev)
                self._playing = True  # owed to the speaker: the guards must see it
                return moved
            self._audio_response = rid
        self.ledger.item(ev.item_id, rid).received_bytes += len(ev.audio)
        self._playing = True
        log.debug("command", kind="PlayAudio", response_id=rid, item_id=ev.item_id,
                  audio_bytes=len(ev.audio))
        if moved:
            return [*moved, c.PlayAudio(rid, ev.item_id, ev.audio)]
        return [c.PlayAudio(rid, ev.item_id, ev.audio)]

    # --- server events ---------------------------------------------------------------

    def _on_session_ready(self, ev: e.SessionReady) -> list[c.Command]:
        self.server_interrupts_response = ev.interrupt_response
        self._connected = self._session_ready = True
        return self._ready() + self._fire("session_ready", ev)

    def _on_reconnected(self, ev: e.Reconnected) -> list[c.Command]:
        """A new connection, a new server session, not ready until it says so: the
        never-ready deadline runs again. Its ids owe nothing to the old session's (a server
        may number responses per connection): a response it *announces* under a gated id,
        before any other event of that id, is a new one (``_on_response_created``); an id
        it uses first in anything else (a delta it does not announce) stays as it was."""
        # the old server session is gone even if no Disconnected said so (a transport
        # always says it; an embedder's might not): abandon what was in flight first
        gone = self._abandon() if self._connected else []
        self._connected = True
        self._old_session = set(self._gated)
        self._mic.uncommitted = 0  # the new server session's input buffer is empty
        return gone + self._await_ready() + self._fire("reconnected", ev)

    def _on_response_created(self, ev: e.ResponseCreated) -> list[c.Command]:
        rid = ev.response_id
        self._asked = None
        if rid in self._old_session:  # the new server session's own response, same id
            self._old_session.discard(rid)
            self._gated.discard(rid)
        if rid in self._gated:
            return []
        if self._paused and self._connected:
            # turn detection answered what the user said just before the pause
            self._gated.add(rid)
            self._refused.add(rid)
            log.info("response_refused_while_paused", response_id=rid)
            return [self._sent.keep(c.CancelResponse(rid, self._event_id()))]
        if self._machine.legal("response_created"):
            self._generating.add(rid)
        return self._fire("response_created", ev)

    def _on_output_item(self, ev: e.OutputItemAdded) -> list[c.Command]:
        if ev.response_id in self._refused:
            if ev.item_id in self._refused_items:
                return []
            self._refused_items.add(ev.item_id)
            entry = self.ledger.items.get(ev.item_id)
            if entry is not None:  # announced before its reply: the delete settles it
                entry.settled = True
            return [self._sent.keep(c.DeleteItem(ev.item_id, self._event_id()))]
        if ev.response_id not in self._gated:
            self.ledger.item(ev.item_id, ev.response_id)
        return []

    def _on_response_done(self, ev: e.ResponseDone) -> list[c.Command]:
        self.ledger.complete_response(ev.response_id)
        self._sent.response_done(ev.response_id)
        if ev.response_id in self._gated:
            return []
        self._gated.add(ev.response_id)  # a finished response has no audio left to send
        if self._held:
            self._drop_held(ev.response_id)
        self._generating.discard(ev.response_id)
        return self._at_rest([*self._fire("response_done", ev),
                              *self._tools.response_done(ev.response_id, self._event_id)])

    def _on_tool_call(self, ev: e.ToolCall) -> list[c.Command]:
        """Run the call, unless its reply was cut off (see ``bargein.core.tool_calls``)."""
        cut = ev.response_id in self._gated or self._paused
        return self._tools.call(ev, cut=cut, policies=self.tool_policies,
                               event_id=self._event_id)

    def _on_tool_result(self, ev: e.ToolResult) -> list[c.Command]:
        commands = self._tools.result(ev, self._event_id, self._generating)
        if not self._tools.running():
            commands += self._fire_if_legal("tools_done", ev)
        return self._at_rest(commands)

    def _at_rest(self, before: list[c.Command]) -> list[c.Command]:
        """``before`` (what a reply's end or a call's output led to), and then, if the
        conversation is now at rest (a reply ended and played out, or its calls did, and
        ``before`` asks for no follow-up): held tool outputs go now
        (``bargein.core.tool_calls``); if none, the idle timeout starts. Under client turns
        the audio sent while the reply played (the room, the echo's residue: no barge-in
        came of it) is cleared, so the user's next turn commits only itself."""
        if self._machine.state != LISTENING or self._generating or self._playing \
                or _reply_asked(before) is not None:
            return before
        commands = self._tools.release(self._event_id)
        released = bool(commands)
        if self.client_turn_end_ms is not None and self._mic.uncommitted \
                and TURN_TIMER not in self._timers:
            self._mic.uncommitted = 0
            commands.append(c.ClearInputAudio(self._event_id()))
        if not released and self.idle_timeout_ms is not None and IDLE_TIMER not in self._timers:
            self._timers.add(IDLE_TIMER)
            commands.append(c.StartTimer(IDLE_TIMER, self.idle_timeout_ms))
        return before + commands

    def _on_idle(self) -> list[c.Command]:
        """The user stayed silent after the reply: ask for one (the model prompts them)."""
        self._timers.discard(IDLE_TIMER)
        if self._machine.state != LISTENING or self._generating or self._playing:
            return []
        log.info("idle_timeout", after_ms=self.idle_timeout_ms)
        commit = self._commit_turn() if self.manual_turns else []
        return [*commit, c.CreateResponse(self._event_id())]

    def _on_item_settled(self, ev: e.ItemTruncated | e.ItemDeleted) -> list[c.Command]:
        self._sent.item_settled(ev.item_id)
        return []

    def _on_error(self, ev: e.ServerError) -> list[c.Command]:
        if ev.event_id and ev.event_id == self._asked:
            self._asked = None  # the response.create was refused: no reply is coming
        benign, sent = self._sent.refused(ev.event_id, ev.code, ev.param)
        if benign:
            # The server had already finished (cancel) or holds less audio than we counted
            # (truncate): either way its view is the true one and there is nothing to redo.
            self.stats.benign_errors += 1
            log.info("server_error_reconciled", code=ev.code, message=ev.message,
                     command=None if sent is None else c.log_fields(sent))
            return []
        self.stats.server_errors += 1
        write, held = self.repeats.seen(("server_error", ev.type, ev.code))
        if write:
            fields = {"repeated": held, "in_s": ERROR_SUMMARY_S} if held else {}
            log.error("server_error", type=ev.type, code=ev.code, message=ev.message,
                      event_id=ev.event_id, state=self.state, **fields)
        return []

    def _on_violation(self, ev: e.ProtocolViolation) -> list[c.Command]:
        self.stats.protocol_violations += 1
        write, held = self.repeats.seen(("protocol_violation", ev.reason))
        if write:
            fields = {"repeated": held, "in_s": ERROR_SUMMARY_S} if held else {}
            log.error("protocol_violation", reason=ev.reason, state=self.state, **fields)
        return []

    def _on_disconnected(self, ev: e.Disconnected) -> list[c.Command]:
        """The server session is gone: whatever was in flight is abandoned for good."""
        return [*self._abandon(), *self._fire("disconnected", ev)]

    def _abandon(self) -> list[c.Command]:
        self._connected = self._session_ready = False
        self._asked = None
        self._gated |= self.ledger.open_responses()
        self._gated |= self._generating
        self._gated |= {held.response_id for held in self._held}
        self._held = []
        self._generating = set()
        self._audio_response = None
        self._pending = None
        calls = self._tools.abandon()
        if self._typed:  # they waited for a truncate that the lost session will never take
            log.warning("typed_messages_lost", count=len(self._typed),
                        reason="the connection dropped before they were sent")
            self._typed = []
        self.ledger = PlaybackLedger()
        self._sent.clear()
        self._playing = False
        return [c.FlushPlayback("disconnected"), *calls]

    # --- local events ----------------------------------------------------------------

    def _on_progress(self, ev: e.PlaybackProgress) -> list[c.Command]:
        self.ledger.record_heard(ev.heard_ms)
        return []

    def _on_finished(self, ev: e.PlaybackFinished) -> list[c.Command]:
        # The speaker played everything it was given: every item was heard as far as it was
        # received, whatever the report says (a resampler may hold back a sample tail).
        self.ledger.record_heard(ev.heard_ms)
        self.ledger.drained()
        self._playing = bool(self._held)
        if not self._generating:
            self._audio_response = None
            self.ledger.forget_finished()
        return self._at_rest(self._fire("playback_finished", ev))

    def _on_request_response(self, ev: e.RequestResponse) -> list[c.Command]:
        if self.state == IDLE:
            self.stats.illegal_events += 1
            log.warning("illegal_event", state=self.state, trigger="request_response")
            return []
        commit = self._commit_turn() if self.manual_turns else []
        return [*commit, c.CreateResponse(self._event_id())]

    def _on_local_speech_stopped(self, ev: e.LocalSpeechStopped) -> list[c.Command]:
        """Where the table judges a sound, its end; under client turns, in the user's turn,
        the start of the quiet that ends the turn (``TURN_TIMER``)."""
        commands = self._fire_if_legal("local_speech_stopped", ev)
        if self.client_turn_end_ms is not None and self._users_turn():
            self._timers.add(TURN_TIMER)
            commands.append(c.StartTimer(TURN_TIMER, self.client_turn_end_ms))
        return commands

    def _users_turn(self) -> bool:
        """Connected, nothing generating, nothing audible: the user has the floor."""
        return self.state != IDLE and not self._generating \
            and self._machine.state not in self._audible

    def _on_turn_end(self) -> list[c.Command]:
        """The user stayed quiet: commit what they said and ask for the reply."""
        self._timers.discard(TURN_TIMER)
        if not self._users_turn():
            return []
        commit = self._commit_turn()
        return [*commit, c.CreateResponse(self._event_id())] if commit else []

    def _on_user_message(self, ev: e.UserMessage) -> list[c.Command]:
        """Interrupt where the table lets the program interrupt, then the message and a
        response; while a barge-in waits for the speaker's count, after its settlement."""
        if self.state == IDLE:
            self.stats.illegal_events += 1
            log.warning("illegal_event", state=self.state, trigger="user_message")
            return []
        commands = self._fire("interrupt", ev) if self._machine.legal("interrupt") else []
        if self._pending is not None:
            self._typed.append(ev.text)
            return commands
        return commands + self._typed_message(ev.text)

    def _typed_message(self, text: str) -> list[c.Command]:
        return [c.CreateMessage("user", text, self._event_id()), c.CreateResponse(self._event_id())]

    def _commit_turn(self) -> list[c.Command]:
        """``input_audio_buffer.commit`` when the audio sent since the last one makes a turn
        (the server refuses less than 100 ms)."""
        if self.state == IDLE or not self._mic.take_turn():
            return []
        return [c.CommitInputAudio(self._event_id())]

    def _on_clear_input(self, ev: e.ClearInput) -> list[c.Command]:
        if self.state == IDLE:
            return []
        self._mic.uncommitted = 0
        return [c.ClearInputAudio(self._event_id())]

    def _on_talk_pressed(self, ev: e.TalkPressed) -> list[c.Command]:
        """Push-to-talk: the user takes the floor. A reply is interrupted (``interrupt``,
        where the table lets the program interrupt), the input buffer cleared (what it
        held was not meant for the model), and the user's audio sent from now on. Pressed
        while ``idle`` (connecting, paused), the key is down all the same: the audio goes out
        once the machine is live."""
        self._key_down = True
        if self.state == IDLE:
            return []
        commands = self._barge_in(ev, "interrupt") if self._machine.legal("interrupt") else []
        self._mic.uncommitted = 0
        return [*commands, c.ClearInputAudio(self._event_id())]

    @property
    def reply_asked(self) -> bool:
        """A ``response.create`` was sent and not yet answered: a reply is coming (the
        conversation is not quiet). Given up after the liveness bound (``reply_never_created``)."""
        return self._asked is not None

    @property
    def key_down(self) -> bool:
        """Push-to-talk: the key is down, the user has the floor (the conversation is not
        quiet, whatever its state)."""
        return self._key_down

    def _on_talk_released(self, ev: e.TalkReleased) -> list[c.Command]:
        """Push-to-talk: the user's turn is over; commit it and ask for the reply."""
        if not self._key_down:
            return []  # a release without a press: nothing was said
        self._key_down = False
        commit = self._commit_turn()
        if not commit:
            if self.state != IDLE:
                log.warning("push_to_talk_too_short", sent_ms=self._mic.uncommitted / BYTES_PER_MS,
                            reason="the server refuses a commit of less than 100 ms")
            return []
        return [*commit, c.CreateResponse(self._event_id())]

    def _on_start(self, ev: e.UserStart) -> list[c.Command]:
        self._paused = False
        return self._fire("start", ev)

    def _on_stop(self, ev: e.UserStop) -> list[c.Command]:
        """A pause is an interruption by the program: the same flush, cancel and truncate.
        It holds until ``UserStart``, whatever the server says meanwhile."""
        self._paused = True
        commands = self._interrupt("stop") if self.state != IDLE else []
        return commands + self._fire("stop", ev)

    # --- barge-in --------------------------------------------------------------------

    def _on_barge_in_event(self, ev: e.Event) -> list[c.Command]:
        return self._barge_in(ev, e.BARGE_IN_EVENTS[type(ev)])

    def _barge_in(self, ev: e.Event, trigger: str) -> list[c.Command]:
        """Interrupts when its edge enters ``interrupted`` (see ``_effects``); a local onset
        while a client turn's end is awaited continues the turn."""
        commands = self._fire(trigger, ev)
        if isinstance(ev, e.SpeechStarted | e.UserInterrupt | e.TalkPressed):  # a new turn:
            commands += self._tools.interrupted(  # calls end too
                self._tools.open_responses() - self._generating, "the user spoke while it ran",
                self._event_id)
        if TURN_TIMER in self._timers and isinstance(ev, e.LocalSpeechStarted):
            self._timers.discard(TURN_TIMER)
            commands.append(c.CancelTimer(TURN_TIMER))
        if isinstance(ev, e.SpeechStarted) and self._playing \
                and self._machine.state in self._audible:
            self._overheard[ev.item_id] = None  # the reply plays on over it
            while len(self._overheard) > OVERHEARD_LIMIT:
                del self._overheard[next(iter(self._overheard))]
        return commands

    def _fire_if_legal(self, trigger: str, ev: e.Event) -> list[c.Command]:
        """A trigger that is news only where the table has an edge for it (``QUIET_TRIGGERS``)."""
        return self._fire(trigger, ev) if self._machine.legal(trigger) else []

    def _on_input_transcript(self, ev: e.InputTranscript) -> list[c.Command]:
        """A transcript of the user's speech: a backchannel over the reply is counted; words
        fire ``words_heard`` where the table judges a sound (two-phase: commit)."""
        overheard = ev.item_id in self._overheard
        self._overheard.pop(ev.item_id, None)
        if is_backchannel(ev.transcript):
            if overheard or self._machine.state == DUCKED:
                self.stats.backchannels += 1
                log.info("backchannel", item_id=ev.item_id, transcript=ev.transcript,
                         state=self.state)
            return []
        if is_words(ev.transcript):
            return self._fire_if_legal("words_heard", ev)
        return []

    def _on_configure(self, ev: e.ConfigureSession) -> list[c.Command]:
        """``session.update``; a table that judges a barge-in itself (``server_interrupts``
        false) sends it with ``interrupt_response: false``, so the server cannot cut the
        reply before the client has judged (see "The barge-in")."""
        config = ev.config
        self.manual_turns = getattr(config, "manual_turns", False) is True
        self.push_to_talk = getattr(config, "push_to_talk", False) is True
        idle_ms = getattr(config, "idle_timeout_ms", None)
        self.idle_timeout_ms = idle_ms if isinstance(idle_ms, int) else None
        policies = getattr(config, "tool_policies", None)
        if isinstance(policies, dict):
            self.tool_policies = policies
        end_ms = getattr(config, "client_turn_end_ms", None)
        self.client_turn_end_ms = end_ms if isinstance(end_ms, int) else None
        judge = getattr(config, "with_interrupt_response", None)
        if not self.table.server_interrupts and callable(judge):
            config = judge(False)
        return [c.UpdateSession(config, self._event_id())]

    def _interrupt(self, trigger: str) -> list[c.Command]:
        """Flush, cancel if the server will not, and gate every response in the speaker."""
        responses = self.ledger.open_responses() | self._generating
        responses |= {held.response_id for held in self._held}
        self._held = []
        commands: list[c.Command] = [c.FlushPlayback(trigger)]
        server_cancels = trigger == "speech_started" and self.server_interrupts_response
        cancelled = () if server_cancels else tuple(sorted(self._generating))
        for response_id in cancelled:
            commands.append(self._sent.keep(c.CancelResponse(response_id, self._event_id())))
        self._gated |= responses
        self._generating = set()
        self._audio_response = None
        self._playing = False
        self.stats.interruptions += 1
        ordered = tuple(sorted(responses))
        self._pending = pend(self._pending, trigger, ordered, cancelled, self.ledger)
        log.info("barge_in", trigger=trigger, responses=ordered, cancel=cancelled)
        # a barge-in is a new turn: the calls of every reply end too (running_tools' own)
        return commands + self._tools.interrupted(
            responses | set(cancelled) | self._tools.open_responses(),
            f"the reply was interrupted ({trigger})", self._event_id)

    def _on_flushed(self, ev: e.PlaybackFlushed) -> list[c.Command]:
        """The speaker says what was heard: truncate or delete each interrupted item."""
        self.ledger.record_heard(ev.heard_ms)
        pending, self._pending = self._pending, None
        commands: list[c.Command] = []
        if pending is not None:
            settled, interruption = settle_pending(pending, self.ledger, ev.heard_ms,
                                                   self._event_id)
            commands += [self._sent.keep(command) for command in settled]
            for command in settled:  # an item of a refused reply is settled for good here:
                entry = self.ledger.items.get(command.item_id)  # announced again, it stays
                if entry is not None and entry.response_id in self._refused:
                    self._refused_items.add(command.item_id)
            self.interruptions.append(interruption)
            self.ledger.forget_finished()
            typed, self._typed = self._typed, []
            for text in typed:
                commands += self._typed_message(text)
        commands += self._fire("playback_flushed", ev)
        if self._held:
            held, self._held = self._held, []
            self._playing = False
            if self._machine.state in self._audible:
                for delta in held:
                    commands += self._accept_audio(delta)
            else:
                self._gated |= {delta.response_id for delta in held}
                self.stats.dropped_deltas += len(held)
                self.stats.dropped_audio_ms += sum(len(d.audio) for d in held) / BYTES_PER_MS
        return commands

    def _drop_held(self, response_id: str) -> None:
        """A response finished while its audio was held: none of it will play (the
        promise is that no audio of a finished response plays after its done)."""
        kept = [d for d in self._held if d.response_id != response_id]
        dropped = [d for d in self._held if d.response_id == response_id]
        self._held = kept
        self._playing = bool(kept)
        self.stats.dropped_deltas += len(dropped)
        self.stats.dropped_audio_ms += sum(len(d.audio) for d in dropped) / BYTES_PER_MS
        log.info("held_audio_dropped", response_id=response_id, deltas=len(dropped))


    # --- liveness (bargein.core.liveness) -----------------------------------------------

    def watch(self, liveness: Liveness | None = None) -> list[c.Command]:
        """Keep the deadlines of ``liveness`` from now on (the session calls this when it
        starts, the connection open); returns the commands that start them."""
        self.liveness = liveness or Liveness()
        return self._await_ready()

    def _await_ready(self) -> list[c.Command]:
        """Start the never-ready deadline, unless it runs or the session is ready."""
        if self.liveness is None or self._session_ready or READY_TIMER in self._timers:
            return []
        self._timers.add(READY_TIMER)
        return [c.StartTimer(READY_TIMER, self.liveness.ready_ms)]

    def _ready(self) -> list[c.Command]:
        if READY_TIMER not in self._timers:
            return []
        self._timers.discard(READY_TIMER)
        return [c.CancelTimer(READY_TIMER)]

    def _watch_reply(self, kind: type, commands: list[c.Command]) -> list[c.Command]:
        """Start the reply watch when a response is generating or asked for, stop it when
        none is."""
        if kind in _SIGNS_OF_LIFE:
            self._reply_seen = True
        running = REPLY_TIMER in self._timers
        awaited = self._generating or self._asked is not None
        if awaited and not running and self.liveness is not None:
            self._timers.add(REPLY_TIMER)
            self._reply_seen, self._reply_quiet = False, 0
            return [*commands, c.StartTimer(REPLY_TIMER, self.liveness.reply_check_ms)]
        if running and not awaited:
            self._timers.discard(REPLY_TIMER)
            return [*commands, c.CancelTimer(REPLY_TIMER)]
        return commands

    def _on_timer_fired(self, ev: e.TimerFired) -> list[c.Command]:
        if ev.name == TURN_TIMER and TURN_TIMER in self._timers:
            return self._on_turn_end()
        if ev.name == IDLE_TIMER and IDLE_TIMER in self._timers:
            return self._on_idle()
        if ev.name not in LIVENESS_TIMERS or ev.name not in self._timers:
            return self._on_timer(ev)
        self._timers.discard(ev.name)
        liveness = self.liveness or Liveness()
        if ev.name == READY_TIMER:
            if self._session_ready:
                return []
            error = SessionNeverReady(
                f"the server never said the session was ready: no usable session.created "
                f"within {liveness.ready_ms / 1000:g} s of connecting")
            # info: the session ends with the error, which the program reports (bargein
            # talk prints its one line); an error line too would say it twice
            log.info("session_never_ready", error=str(error), waited_ms=liveness.ready_ms)
            return [c.GiveUp(error)]
        if not self._generating:
            return self._reply_never_created(liveness) if self._asked is not None else []
        if self._reply_seen or self._playing:
            self._reply_seen, self._reply_quiet = False, 0
        else:
            self._reply_quiet += 1
            if self._reply_quiet >= liveness.reply_checks:
                return self._reply_dead(liveness)
        self._timers.add(REPLY_TIMER)
        return [c.StartTimer(REPLY_TIMER, liveness.reply_check_ms)]

    def _reply_never_created(self, liveness: Liveness) -> list[c.Command]:
        """A ``response.create`` with no answer at a check: once it has had none for the
        bound, it is given up (reported) and the conversation is at rest again."""
        self._reply_quiet += 1
        if self._reply_quiet < liveness.reply_checks:
            self._timers.add(REPLY_TIMER)
            return [c.StartTimer(REPLY_TIMER, liveness.reply_check_ms)]
        error = ReplyStalled(
            f"the server never answered response.create ({self._asked}): no response.created "
            f"within {liveness.reply_bound_ms / 1000:g} s; the conversation goes on")
        log.warning("reply_never_created", error=str(error), event_id=self._asked)
        self._asked = None
        return [c.Report(error)]

    def _reply_dead(self, liveness: Liveness) -> list[c.Command]:
        """Nothing of the generating replies for the bound: declare them dead, do the
        barge-in's work (flush, cancel, gate, settle) and move on."""
        dead = tuple(sorted(self._generating))
        played = any(item.heard_ms > 0 for item in self.ledger.items.values()
                     if item.response_id in dead)
        seconds = liveness.reply_bound_ms / 1000
        error: ReplyStalled
        if played:
            for rid in dead:  # what played out is kept whole: nothing more was coming
                self.ledger.complete_response(rid)
            error = ResponseDoneLost(
                f"reply {', '.join(dead)} played out and its response.done never came "
                f"({seconds:g} s): recovered as done, the conversation goes on")
        else:
            error = ReplyStalled(
                f"reply {', '.join(dead)} stopped arriving: nothing of it for {seconds:g} s; "
                "dropped, the conversation goes on")
        self.stats.dead_replies += len(dead)
        log.warning("reply_dead", error=str(error), kind=type(error).__name__,
                    responses=dead, state=self.state)
        commands: list[c.Command] = [c.Report(error), *self._interrupt("reply_timeout")]
        if self._machine.legal("playback_finished"):
            commands += self._fire("playback_finished")
        return commands


_SIGNS_OF_LIFE: frozenset[type] = frozenset({
    e.ResponseCreated, e.OutputItemAdded, e.TranscriptDelta, e.ToolCall, e.ResponseDone,
    e.PlaybackProgress,
})
"""Events that show a reply is alive (besides its audio, counted on the hot path)."""


def _reply_asked(commands: list[c.Command]) -> str | None:
    """The event id of the last reply ``commands`` ask for (``response.create``), if any."""
    asked = None
    for command in commands:
        if type(command) is c.CreateResponse:
            asked = command.event_id
    return asked


def _nothing(_event: object) -> list[c.Command]:
    return []


def audible_states(table: StateTable) -> frozenset[str]:
    """The states where assistant audio may play: the interruptible ones (a barge-in
    there flushes it), and those the table lets audio play in by an ``audio_started``
    edge of their own or of an ancestor that stays (an uninterruptible greeting, a confirm
    window). Never ``interrupted``: audio of a new response arriving there is held until
    it is left. (``listening``'s ``audio_started`` leaves it: the audio plays where it leads.)"""
    sources = {t.source for t in table.edges()
               if t.trigger == "audio_started" and t.dest in (None, t.source)}
    return frozenset(
        name for name in table.state_names
        if name != INTERRUPTED and (table.interruptible(name)
                                    or any(s in sources for s in table.path(name)))
    )
