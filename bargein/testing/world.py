"""The world the generated tests play around a conversation, and the promises they check.

``World`` plays everything that talks to the core: a server that creates responses, sends
their audio and finishes them (and, as real servers do, sometimes repeats or reorders
events), a speaker that reports what was played, a program that pauses, interrupts and
sends its own events, a clock that fires the timers the core started. ``World.alphabet()``
is what it may do next; ``World.feed()`` hands one event to the conversation and checks,
on what came back, the core's promises:

- no stale audio: no audio of a response the core cut off (a barge-in, a pause, a
  disconnect) or that the server finished is ever played again;
- truncation within what was received: a truncate's ``audio_end_ms`` is more than 0 and
  at most the audio played of that item, and each item is truncated or deleted once;
- every cancel names a response the server announced and has not finished, once; every
  server command's event id is fresh; every timer cancelled was running, and the core's
  timers are the ones its commands started;
- tool calls: a call runs once; the program's output goes once, only for a call that ran,
  has its result and was not cancelled, appended; a call cancelled while the server
  session lives (a barge-in, a pause), and a whole call announced and not run (its reply
  was cut), gets exactly one cancellation output in that same step, inserted right after
  the call's item (``after_item_id``), and that step asks for no reply; a lost connection
  sends no output; no call gets a second output;
- no microphone audio sent while ``idle``, no action that raised, a state of the table.

"Never stuck" is the exploration's (``bargein.testing.explore``): it needs the whole graph.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from bargein.core import Conversation
from bargein.core import commands as c
from bargein.core import events as e
from bargein.core.pcm import BYTES_PER_MS
from bargein.states.names import IDLE

DELTA_MS = 100
MIC_MS = 20

UserEvents = Mapping[str, Callable[[], e.UserEvent]]
"""For a trigger of the program's, how to make its event (default: ``Signal(trigger)``)."""


def _audio(ms: int) -> bytes:
    return b"\x01\x00" * (ms * BYTES_PER_MS // 2)


@dataclass
class World:
    """The server, speaker, program and clock around one conversation, and what they saw."""

    triggers: tuple[str, ...] = ()
    user_events: UserEvents = field(default_factory=dict)
    responses: int = 0
    current: str | None = None
    announced: set[str] = field(default_factory=set)
    done: set[str] = field(default_factory=set)
    played: Counter[str] = field(default_factory=Counter)
    """Bytes of audio the core played, per item of a server response."""
    live: set[str] = field(default_factory=set)
    stale: set[str] = field(default_factory=set)
    settled: Counter[str] = field(default_factory=Counter)
    cancelled: set[str] = field(default_factory=set)
    event_ids: set[str] = field(default_factory=set)
    timers: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)
    """Tool calls the core ran (``RunTool``) whose result has not come."""
    tool_events: Counter[str] = field(default_factory=Counter)
    """Per call id: ``run``, ``result``, ``cancel``, ``output`` (what happened to it)."""
    call_items: dict[str, str] = field(default_factory=dict)
    """The item of each whole call the server announced, by call id."""

    def copy(self) -> World:
        """An independent copy (its containers hold strings only: copied one level deep)."""
        return replace(
            self, announced=set(self.announced), done=set(self.done),
            played=Counter(self.played), live=set(self.live), stale=set(self.stale),
            settled=Counter(self.settled), cancelled=set(self.cancelled),
            event_ids=set(self.event_ids), timers=set(self.timers), calls=set(self.calls),
            tool_events=Counter(self.tool_events), call_items=dict(self.call_items))

    # --- what may happen next ----------------------------------------------------------

    def alphabet(self) -> list[tuple[str, e.Event]]:
        """Every event the world may send now, each with a short label."""
        rid = self.current or f"r{self.responses + 1}"
        item = f"{rid}_item"
        heard = {i: self.played[i] / BYTES_PER_MS for i in self.played}
        out: list[tuple[str, e.Event]] = [
            ("session ready", e.SessionReady(interrupt_response=True)),
            ("reconnected", e.Reconnected()),
            ("disconnected", e.Disconnected("dropped")),
            ("program starts", e.UserStart()),
            ("program stops", e.UserStop()),
            ("server hears speech", e.SpeechStarted("user_item", 0)),
            ("local detector hears speech", e.LocalSpeechStarted(0.0)),
            ("local detector hears it end", e.LocalSpeechStopped(0.0)),
            ("user's words transcribed", e.InputTranscript("user_item", "wait, stop")),
            ("program interrupts", e.UserInterrupt()),
            ("speech stops", e.SpeechStopped("user_item", 500)),
            ("response created", e.ResponseCreated(f"r{self.responses + 1}")),
            (f"audio of {rid}", e.AudioDelta(rid, item, _audio(DELTA_MS))),
            (f"{rid} done", e.ResponseDone(rid, "completed")),
            ("speaker played all", e.PlaybackFinished(heard)),
            ("speaker flushed", e.PlaybackFlushed({i: ms / 2 for i, ms in heard.items()})),
            ("microphone", e.MicAudio(_audio(MIC_MS))),
        ]
        # one call at a time keeps the graph finite; two calls of one reply are the core
        # tests' (tests/core/test_tool_calls.py)
        if self.calls:
            out += [(f"tool result of {call}", e.ToolResult(call, "{}"))
                    for call in sorted(self.calls)]
        elif self.current is not None:  # a call belongs to a reply the server announced
            out.append((f"{rid} calls a tool",
                        e.ToolCall(rid, f"{rid}_fc", f"{rid}_call", "lookup", "{}")))
        out += [(f"timer {name}", e.TimerFired(name)) for name in sorted(self.timers)]
        for trigger in self.triggers:
            make = self.user_events.get(trigger)
            out.append((f"program's {trigger}", make() if make else e.Signal(trigger)))
        return out

    # --- one event, checked ------------------------------------------------------------

    def feed(self, conversation: Conversation, event: e.Event) -> tuple[list[c.Command], list[str]]:
        """Hand ``event`` to ``conversation``; its commands and the promises they broke."""
        stats = conversation.stats
        illegal, interruptions, errors = (stats.illegal_events, stats.interruptions,
                                          stats.action_errors)
        commands = conversation.handle(event)
        problems: list[str] = []
        accepted = stats.illegal_events == illegal
        if isinstance(event, e.ResponseCreated):
            self.responses += 1
            self.current = event.response_id
            self.announced.add(event.response_id)
        elif isinstance(event, e.AudioDelta):
            if self.current is None:
                self.responses += 1
                self.current = event.response_id
            self.announced.add(event.response_id)
        if accepted and isinstance(event, e.ResponseCreated | e.AudioDelta):
            self.live.add(event.response_id)
        if isinstance(event, e.ToolResult):
            self.calls.discard(event.call_id)
            self.tool_events[f"{event.call_id} result"] += 1
        owed = self._owed(event, commands)
        if isinstance(event, e.ToolCall) and event.complete:
            self.call_items[event.call_id] = event.item_id
        for command in commands:
            problems += self._check(command, event)
        problems += self._closed(event, commands, owed)
        cut = stats.interruptions > interruptions or isinstance(event, e.Disconnected | e.UserStop)
        if cut and any(isinstance(x, c.FlushPlayback) for x in commands):
            self.stale |= self.live
            self.live.clear()
        if isinstance(event, e.ResponseDone):
            self.stale.add(event.response_id)
            self.done.add(event.response_id)
            self.live.discard(event.response_id)
            self.current = None
        if isinstance(event, e.TimerFired):
            self.timers.discard(event.name)
        if isinstance(event, e.Disconnected | e.Reconnected):  # a new server session: its
            self.calls.clear()  # call ids are its own, the old session's calls are over
            self.tool_events.clear()
            self.call_items.clear()
        if stats.action_errors > errors:
            problems.append("an action raised or returned something that is not a command")
        if self.timers != conversation.timers:
            problems.append(f"the core runs timers {sorted(conversation.timers)} but its "
                            f"commands started {sorted(self.timers)}")
        if conversation.state not in conversation.table.resting_states:
            problems.append(f"the machine rests in {conversation.state!r}, not a resting state")
        if conversation.state == IDLE and any(isinstance(x, c.SendAudio) for x in commands):
            problems.append("microphone audio sent while idle")
        return commands, problems

    def _check(self, command: c.Command, event: e.Event) -> list[str]:
        out: list[str] = []
        event_id = getattr(command, "event_id", "")
        if event_id:
            if event_id in self.event_ids:
                out.append(f"event id {event_id!r} used twice")
            self.event_ids.add(event_id)
        if isinstance(command, c.PlayAudio):
            if command.response_id in self.announced:
                if command.response_id in self.stale:
                    out.append(f"stale audio: {command.response_id} played after it was cut "
                               "off or finished")
                self.played[command.item_id] += len(command.audio)
        elif isinstance(command, c.TruncateItem):
            received = self.played[command.item_id] / BYTES_PER_MS
            if not 0 < command.audio_end_ms <= received or command.content_index != 0:
                out.append(f"truncate of {command.item_id} at {command.audio_end_ms} ms "
                           f"(content {command.content_index}); {received:.0f} ms received")
            out += self._settle(command.item_id)
        elif isinstance(command, c.DeleteItem):
            out += self._settle(command.item_id)
        elif isinstance(command, c.CancelResponse):
            rid = command.response_id
            if rid not in self.announced or rid in self.done or rid in self.cancelled:
                out.append(f"cancel of {rid}: not announced, already done, or cancelled before")
            if not command.event_id:
                out.append(f"cancel of {rid} without an event id")
            self.cancelled.add(rid)
        elif isinstance(command, c.RunTool | c.CancelTool | c.SendToolOutput):
            out += self._tool_command(command)
        elif isinstance(command, c.StartTimer):
            if command.ms <= 0:
                out.append(f"timer {command.name} started for {command.ms} ms")
            self.timers.add(command.name)
        elif isinstance(command, c.CancelTimer):
            if command.name not in self.timers:
                out.append(f"timer {command.name} cancelled but not running")
            self.timers.discard(command.name)
        return out

    def _owed(self, event: e.Event, commands: list[c.Command]) -> set[str]:
        """The calls that must get a cancellation output in this step: those cancelled
        while the server session lives, and a whole call announced for the first time and
        not run."""
        if isinstance(event, e.Disconnected | e.Reconnected):
            return set()
        owed = {x.call_id for x in commands if isinstance(x, c.CancelTool)}
        seen = self.tool_events
        if isinstance(event, e.ToolCall) and event.complete and not any(
                seen[f"{event.call_id} {what}"] for what in ("run", "output")) and not any(
                isinstance(x, c.RunTool) and x.call_id == event.call_id for x in commands):
            owed.add(event.call_id)
        return owed

    def _closed(self, event: e.Event, commands: list[c.Command], owed: set[str]) -> list[str]:
        """Each call owed a cancellation output got exactly one, and no reply was asked
        for with it; a lost connection sends no output."""
        outputs = [x for x in commands if isinstance(x, c.SendToolOutput)]
        if isinstance(event, e.Disconnected | e.Reconnected) and outputs:
            return ["a tool output sent for a server session that is gone"]
        closing = sorted(x.call_id for x in outputs if x.after_item_id)
        out: list[str] = []
        if closing != sorted(owed):
            out.append(f"cancellation outputs for calls {closing}, but {sorted(owed)} were "
                       "cancelled or not run")
        if closing and any(isinstance(x, c.CreateResponse) for x in commands):
            out.append("a reply asked for with a cancellation output: the user has the floor")
        return out

    def _tool_command(self, command: c.RunTool | c.CancelTool | c.SendToolOutput) -> list[str]:
        """A call runs once; the program's output goes once, only for a call that ran, has
        its result and was not cancelled; a cancellation output once, only for a call
        cancelled or not run, right after its item; a cancel only for a call that runs."""
        call, seen = command.call_id, self.tool_events
        if isinstance(command, c.RunTool):
            self.calls.add(call)
            seen[f"{call} run"] += 1
            return [f"tool call {call} run twice"] if seen[f"{call} run"] > 1 else []
        if isinstance(command, c.CancelTool):
            self.calls.discard(call)
            seen[f"{call} cancel"] += 1
            if not seen[f"{call} run"] or seen[f"{call} result"] or seen[f"{call} cancel"] > 1:
                return [f"cancel of tool call {call}: not running"]
            return []
        seen[f"{call} output"] += 1
        if command.after_item_id:
            item = self.call_items.get(call)
            if item is None or command.after_item_id != item or seen[f"{call} output"] > 1 \
                    or (seen[f"{call} run"] and not seen[f"{call} cancel"]):
                return [f"cancellation output of tool call {call}: not a whole call cancelled "
                        f"or not run, not after its item {item}, or a second output"]
            return []
        if not seen[f"{call} result"] or seen[f"{call} cancel"] or seen[f"{call} output"] > 1:
            return [f"output of tool call {call}: no result, cancelled, or sent twice"]
        return []

    def _settle(self, item: str) -> list[str]:
        self.settled[item] += 1
        if item not in self.played:
            return [f"{item} truncated or deleted, but none of its audio was played"]
        if self.settled[item] > 1:
            return [f"{item} truncated or deleted twice"]
        return []

    def key(self) -> tuple[object, ...]:
        """What of the world decides what can happen next (for merging configurations)."""
        current = self.current
        return (current is not None, current in self.stale if current else False,
                tuple(sorted(self.timers)), bool(self.calls))
