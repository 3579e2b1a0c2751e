"""The sans-IO conversation: events in, commands out.

``Conversation.handle(event)`` is the whole interface. It never awaits, opens a socket,
touches a device or reads a clock. The state machine comes from a ``StateTable``
(``bargein.states``); this module holds what happens around the edges: the barge-in
algorithm, the playback ledger, the stale-audio gate and the reconciliation of the
server's harmless complaints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from transitions import Machine, MachineError

from bargein.core import commands as c
from bargein.core import events as e
from bargein.core.ledger import PlaybackLedger, Settlement, settle
from bargein.core.pcm import BYTES_PER_MS
from bargein.states.table import DEFAULT_TABLE, IDLE, StateTable

log = structlog.get_logger(__name__)

BENIGN_ERROR_CODES = frozenset({"response_cancel_not_active"})
"""Errors that only mean the server got there first."""


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One fired edge, as observers see it (``source == dest`` for internal edges)."""

    source: str
    dest: str
    trigger: str
    reason: str


@dataclass(frozen=True, slots=True)
class Interruption:
    """One barge-in, settled: what was cancelled and what each item kept."""

    trigger: str
    response_ids: tuple[str, ...]
    cancelled: tuple[str, ...]
    settlements: tuple[Settlement, ...]


@dataclass(slots=True)
class ConversationStats:
    """Counters an operator wants at 3 a.m."""

    illegal_events: int = 0
    dropped_deltas: int = 0
    dropped_audio_ms: float = 0.0
    benign_errors: int = 0
    server_errors: int = 0
    protocol_violations: int = 0
    interruptions: int = 0


Observer = Callable[[TransitionRecord], None]


@dataclass(slots=True)
class _Pending:
    """A barge-in waiting for the speaker to say what was heard."""

    trigger: str
    response_ids: tuple[str, ...]
    cancelled: tuple[str, ...]
    item_ids: list[str] = field(default_factory=list)


class _Model:
    """What ``transitions`` decorates, so its trigger methods stay off ``Conversation``."""


class Conversation:
    """The conversation state machine, with interruption done right."""

    def __init__(self, table: StateTable = DEFAULT_TABLE) -> None:
        self.table = table
        self.stats = ConversationStats()
        self.ledger = PlaybackLedger()
        self.interruptions: list[Interruption] = []
        self.server_interrupts_response = True
        self._observers: list[Observer] = []
        self._gated: set[str] = set()
        self._generating: set[str] = set()
        """Responses between ``response.created`` and ``response.done``, not interrupted."""
        self._audio_response: str | None = None
        self._playing = False
        self._connected = False
        self._paused = False
        self._refused: set[str] = set()
        """Responses the server created while the program had paused: cancelled, and their
        items deleted, since nobody will hear them."""
        self._refused_items: set[str] = set()
        self._pending: _Pending | None = None
        self._sent: dict[str, tuple[str, str]] = {}
        self._next_event = 0
        self._model: Any = _Model()
        self._reasons = {(t.trigger, t.source, t.dest): t.reason for t in table.edges()}
        predicates: dict[str, Callable[[], bool]] = {
            "playing": lambda: self._playing,
            "generating": lambda: bool(self._generating),
            "connected": lambda: self._connected,
            "paused": lambda: self._paused,
        }
        self._machine = Machine(
            model=self._model,
            states=list(table.state_names),
            initial=table.initial,
            transitions=[
                {
                    "trigger": t.trigger,
                    "source": t.source,
                    "dest": t.dest,
                    "conditions": [predicates[n] for n in t.conditions],
                    "unless": [predicates[n] for n in t.unless],
                }
                for t in table.edges()
            ],
            auto_transitions=False,
            ignore_invalid_triggers=False,
            send_event=False,
        )
        self._dispatch: dict[type, Callable[[Any], list[c.Command]]] = {
            e.SessionReady: self._on_session_ready,
            e.SpeechStarted: lambda ev: self._barge_in("speech_started"),
            e.LocalSpeechStarted: lambda ev: self._barge_in("local_speech_started"),
            e.UserInterrupt: lambda ev: self._barge_in("interrupt"),
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
            e.ConfigureSession: lambda ev: [c.UpdateSession(ev.config, self._event_id())],
            e.RequestResponse: self._on_request_response,
            e.TranscriptDelta: _nothing,
            e.InputTranscript: _nothing,
            e.UnknownServerEvent: _nothing,
        }

    # --- public ----------------------------------------------------------------------

    @property
    def state(self) -> str:
        state: str = self._model.state
        return state

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
            if self._model.state == IDLE:
                return []
            log.debug("command", kind="SendAudio", audio_bytes=len(event.audio))  # type: ignore[union-attr]
            return [c.SendAudio(event.audio)]  # type: ignore[union-attr]
        handler = self._dispatch.get(kind)
        if handler is None:
            raise TypeError(f"Conversation.handle() takes a bargein event, not {kind.__name__}")
        commands = handler(event)
        for command in commands:
            log.debug("command", state=self.state, **_fields(command))
        return commands

    # --- the machine -----------------------------------------------------------------

    def _fire(self, trigger: str) -> list[c.Command]:
        """Fire ``trigger``; an illegal one is logged and counted, never raised."""
        source = self._model.state
        try:
            self._model.trigger(trigger)
        except MachineError:
            self.stats.illegal_events += 1
            log.warning("illegal_event", state=source, trigger=trigger)
            return []
        dest = self._model.state
        reason = self._reasons.get((trigger, source, dest if dest != source else None), "")
        if dest != source or reason:
            record = TransitionRecord(source, dest, trigger, reason)
            log.info("transition", source=source, dest=dest, trigger=trigger, reason=reason,
                     responses=sorted(self._generating))
            for observer in list(self._observers):
                try:
                    observer(record)
                except Exception:  # an observer's bug must not break the conversation
                    log.exception("observer_failed", observer=repr(observer))
        return []

    def _legal(self, trigger: str) -> bool:
        return trigger in self._machine.get_triggers(self._model.state)

    def _event_id(self) -> str:
        self._next_event += 1
        return f"bargein_{self._next_event}"

    # --- audio, the hot path ---------------------------------------------------------

    def _on_audio(self, ev: e.AudioDelta) -> list[c.Command]:
        rid = ev.response_id
        if rid in self._gated:
            self.stats.dropped_deltas += 1
            self.stats.dropped_audio_ms += len(ev.audio) / BYTES_PER_MS
            return []
        if rid != self._audio_response:
            if not self._legal("audio_started"):
                self._fire("audio_started")  # logs and counts it
                self.stats.dropped_deltas += 1
                self.stats.dropped_audio_ms += len(ev.audio) / BYTES_PER_MS
                return []
            self._audio_response = rid
            self._fire("audio_started")
        self.ledger.item(ev.item_id, rid).received_bytes += len(ev.audio)
        self._playing = True
        log.debug("command", kind="PlayAudio", response_id=rid, item_id=ev.item_id,
                  audio_bytes=len(ev.audio))
        return [c.PlayAudio(rid, ev.item_id, ev.audio)]

    # --- server events ---------------------------------------------------------------

    def _on_session_ready(self, ev: e.SessionReady) -> list[c.Command]:
        self.server_interrupts_response = ev.interrupt_response
        self._connected = True
        return self._fire("session_ready")

    def _on_reconnected(self, ev: e.Reconnected) -> list[c.Command]:
        self._connected = True
        return self._fire("reconnected")

    def _on_response_created(self, ev: e.ResponseCreated) -> list[c.Command]:
        rid = ev.response_id
        if rid in self._gated:
            return []
        if self._paused and self._connected:
            # turn detection answered what the user said just before the pause
            self._gated.add(rid)
            self._refused.add(rid)
            event_id = self._event_id()
            self._sent[event_id] = ("cancel", rid)
            log.info("response_refused_while_paused", response_id=rid)
            return [c.CancelResponse(rid, event_id)]
        if self._legal("response_created"):
            self._generating.add(rid)
        return self._fire("response_created")

    def _on_output_item(self, ev: e.OutputItemAdded) -> list[c.Command]:
        if ev.response_id in self._refused:
            if ev.item_id in self._refused_items:
                return []
            self._refused_items.add(ev.item_id)
            event_id = self._event_id()
            self._sent[event_id] = ("delete", ev.item_id)
            return [c.DeleteItem(ev.item_id, event_id)]
        if ev.response_id not in self._gated:
            self.ledger.item(ev.item_id, ev.response_id)
        return []

    def _on_response_done(self, ev: e.ResponseDone) -> list[c.Command]:
        self.ledger.complete_response(ev.response_id)
        self._sent = {k: v for k, v in self._sent.items() if v != ("cancel", ev.response_id)}
        if ev.response_id in self._gated:
            return []
        self._gated.add(ev.response_id)  # a finished response has no audio left to send
        self._generating.discard(ev.response_id)
        return self._fire("response_done")

    def _on_item_settled(self, ev: e.ItemTruncated | e.ItemDeleted) -> list[c.Command]:
        self._sent = {k: v for k, v in self._sent.items() if v[1] != ev.item_id}
        return []

    def _on_error(self, ev: e.ServerError) -> list[c.Command]:
        sent = self._sent.pop(ev.event_id or "", None)
        refused_settlement = sent is not None and sent[0] in ("truncate", "delete")
        if ev.code in BENIGN_ERROR_CODES or refused_settlement:
            # The server had already finished (cancel) or holds less audio than we counted
            # (truncate): either way its view is the true one and there is nothing to redo.
            self.stats.benign_errors += 1
            log.info("server_error_reconciled", code=ev.code, message=ev.message, command=sent)
            return []
        self.stats.server_errors += 1
        log.error("server_error", type=ev.type, code=ev.code, message=ev.message,
                  event_id=ev.event_id, state=self.state)
        return []

    def _on_violation(self, ev: e.ProtocolViolation) -> list[c.Command]:
        self.stats.protocol_violations += 1
        log.error("protocol_violation", reason=ev.reason, state=self.state)
        return []

    def _on_disconnected(self, ev: e.Disconnected) -> list[c.Command]:
        """The server session is gone: whatever was in flight is abandoned for good."""
        self._connected = False
        self._gated |= self.ledger.open_responses()
        self._gated |= self._generating
        self._generating = set()
        self._audio_response = None
        self._pending = None
        self.ledger = PlaybackLedger()
        self._sent.clear()
        self._playing = False
        self._fire("disconnected")
        return [c.FlushPlayback("disconnected")]

    # --- local events ----------------------------------------------------------------

    def _on_progress(self, ev: e.PlaybackProgress) -> list[c.Command]:
        self.ledger.record_heard(ev.heard_ms)
        return []

    def _on_finished(self, ev: e.PlaybackFinished) -> list[c.Command]:
        # The speaker played everything it was given: every item was heard as far as it was
        # received, whatever the report says (a resampler may hold back a sample tail).
        self.ledger.record_heard(ev.heard_ms)
        self.ledger.drained()
        self._playing = False
        if not self._generating:
            self._audio_response = None
            self.ledger.forget_finished()
        return self._fire("playback_finished")

    def _on_request_response(self, ev: e.RequestResponse) -> list[c.Command]:
        if self.state == IDLE:
            self.stats.illegal_events += 1
            log.warning("illegal_event", state=self.state, trigger="request_response")
            return []
        return [c.CreateResponse(self._event_id())]

    def _on_start(self, ev: e.UserStart) -> list[c.Command]:
        self._paused = False
        return self._fire("start")

    def _on_stop(self, ev: e.UserStop) -> list[c.Command]:
        """A pause is an interruption by the program: the same flush, cancel and truncate.
        It holds until ``UserStart``, whatever the server says meanwhile."""
        self._paused = True
        commands = self._interrupt("stop") if self.state != IDLE else []
        self._fire("stop")
        return commands

    # --- barge-in --------------------------------------------------------------------

    def _barge_in(self, trigger: str) -> list[c.Command]:
        source = self._model.state
        self._fire(trigger)
        if not self.table.state(source).interruptible or self._model.state == source:
            return []
        return self._interrupt(trigger)

    def _interrupt(self, trigger: str) -> list[c.Command]:
        """Flush, cancel if the server will not, and gate every response in the speaker."""
        responses = self.ledger.open_responses() | self._generating
        commands: list[c.Command] = [c.FlushPlayback(trigger)]
        server_cancels = trigger == "speech_started" and self.server_interrupts_response
        cancelled = () if server_cancels else tuple(sorted(self._generating))
        for response_id in cancelled:
            event_id = self._event_id()
            self._sent[event_id] = ("cancel", response_id)
            commands.append(c.CancelResponse(response_id, event_id))
        self._gated |= responses
        self._generating = set()
        self._audio_response = None
        self._playing = False
        self.stats.interruptions += 1
        ordered = tuple(sorted(responses))
        items = [i.item_id for i in self.ledger.unsettled(ordered)]
        if self._pending is not None:  # a second interruption before the first flush report
            items = self._pending.item_ids + [i for i in items if i not in self._pending.item_ids]
        self._pending = _Pending(trigger, ordered, cancelled, items)
        log.info("barge_in", trigger=trigger, responses=ordered, cancel=cancelled)
        return commands

    def _on_flushed(self, ev: e.PlaybackFlushed) -> list[c.Command]:
        """The speaker says what was heard: truncate or delete each interrupted item."""
        self.ledger.record_heard(ev.heard_ms)
        pending, self._pending = self._pending, None
        commands: list[c.Command] = []
        if pending is not None:
            settlements = []
            for item_id in pending.item_ids:
                item = self.ledger.items.get(item_id)
                if item is None:  # heard to its end (and forgotten) before the report came
                    continue
                s = settle(item, ev.heard_ms.get(item_id, 0.0))
                settlements.append(s)
                event_id = self._event_id()
                if s.action == "truncate":
                    commands.append(c.TruncateItem(item_id, s.audio_end_ms, 0, event_id))
                elif s.action == "delete":
                    commands.append(c.DeleteItem(item_id, event_id))
                else:
                    continue
                self._sent[event_id] = (s.action, item_id)
            self.interruptions.append(
                Interruption(pending.trigger, pending.response_ids, pending.cancelled,
                             tuple(settlements))
            )
            self.ledger.forget_finished()
        self._fire("playback_flushed")
        return commands


def _nothing(_event: object) -> list[c.Command]:
    return []


def _fields(value: object) -> dict[str, object]:
    """A command or record as log fields, with audio shown as its length only."""
    out: dict[str, object] = {"kind": type(value).__name__}
    for name in getattr(value, "__slots__", ()):
        v = getattr(value, name)
        out[name] = f"<{len(v)} bytes>" if isinstance(v, bytes) else v
    return out
