"""What a step of the machine asks for besides the barge-in: actions, timers, and what
becomes of the user's speech. How it works, and why.

A fired edge (a ``bargein.states.Step``) lists the states it left, innermost first, and the
states it entered, outermost first. ``Conversation`` then produces, in this order:

1. the barge-in, when the step entered ``interrupted`` (flush first: the voice going on is
   what the user notices; see ``bargein.core.conversation``). Entering ``interrupted`` is
   what interrupts, whatever led there: an interruptible state's automatic edge, a
   confirm window's timer (``confirming -> interrupted`` after 600 ms), a program's event;
2. for each state left: ``CancelTimer`` for each of its timed edges, then its ``on_exit``
   actions;
3. the edge's ``actions``;
4. for each state entered: its ``on_enter`` actions, then ``StartTimer`` for each of its
   timed edges;
5. the user's audio held during the states left, when the new state sends it.

This is the statechart order (exit, transition, entry); ``transitions`` reports the
states left and entered in that order (innermost left first, outermost entered first).

Timers stay outside the core. A timed edge, ``after(600, "confirming", "interrupted")``,
is a trigger named after its state (``after_600ms@confirming``); entering the state emits
``StartTimer(name, 600)``, leaving it ``CancelTimer(name)``, and whoever owns a clock (the
session on its ``clock``/``sleep``, ``bargein.testing`` on a virtual one, a test by hand)
hands back ``TimerFired(name)``, which fires the trigger. The core keeps the set of timers
it runs: a ``TimerFired`` of a timer it cancelled or never started (a late report) is
counted (``stats.stale_timers``) and ignored, so no edge fires for a state already left.
A timer fires once; a refusing guard then spends it. A parent's timer runs while the
machine is anywhere inside the parent. The table's initial state is not entered (the
machine starts in it), so its timers never start: ``bargein check`` says so.

Actions are functions of an ``ActionContext`` (the trigger, the states, the event, the
facts the guards ask about) that return bargein commands, or ``None``. They do no IO, so
feeding events is enough to test them. A server command they return without an
``event_id`` gets one from the core, and a cancel, truncate or delete is kept for
reconciliation like the core's own. An action that raises, or returns something that is not
a command, is logged and counted (``stats.action_errors``); the conversation goes on, as
it does when an observer fails.

The user's speech (``State.user_speech``): ``send`` streams the microphone to the server;
``ignore`` drops it, so the server never hears it (its turn detection cannot cancel an
uninterruptible greeting or disclaimer behind the machine's back); ``hold`` keeps it
(up to ``HOLD_LIMIT_MS``, the oldest dropped beyond) and sends it all when the machine
enters a state that sends, so the server hears the user after the segment and answers
then. ``idle`` never sends; audio held when the machine falls back to ``idle`` is dropped
(the server session it was for is gone, or the program paused).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterable
from typing import Literal, NamedTuple

from bargein.core import commands as c
from bargein.core import events as e
from bargein.core.pcm import BYTES_PER_MS
from bargein.core.records import ConversationStats
from bargein.logs import get_logger
from bargein.states.names import IDLE
from bargein.states.table import Action, StateTable

log = get_logger(__name__)

HOLD_LIMIT_MS = 30_000
"""The most audio a ``hold`` state keeps; older audio is dropped first."""

MicPolicy = Literal["send", "drop", "hold"]

_WITH_EVENT_ID = (c.CancelResponse, c.TruncateItem, c.DeleteItem, c.UpdateSession,
                  c.CreateResponse, c.CreateMessage, c.CommitInputAudio, c.ClearInputAudio)


class ActionContext(NamedTuple):
    """What an action knows: the edge's trigger, the innermost states before and after, the
    state whose ``on_enter``/``on_exit`` this is (``None`` for an edge's action), the event
    that fired the edge (``None`` when the core fired it on its own), and the facts.
    (Immutable; a named tuple, not a frozen dataclass: one is built per action of a step,
    and a tuple costs a fifth as much to build, ``bench/bench_core.py``.)"""

    trigger: str
    source: str
    dest: str
    state: str | None
    event: e.Event | None
    playing: bool
    generating: tuple[str, ...]
    connected: bool
    paused: bool


def run_actions(
    actions: Iterable[Action],
    context: ActionContext,
    stats: ConversationStats,
    event_id: Callable[[], str],
) -> list[c.Command]:
    """Every command ``actions`` return for ``context``; server commands get event ids."""
    out: list[c.Command] = []
    for action in actions:
        try:
            result = action(context)
            produced = [] if result is None else list(result)
            for command in produced:
                if not isinstance(command, c.COMMAND_TYPES):
                    raise TypeError(f"returned {command!r}, which is not a bargein command")
        except Exception as exc:  # a program's bug must not break the conversation
            stats.action_errors += 1
            log.exception("action_failed", action=getattr(action, "__name__", repr(action)),
                          state=context.state, trigger=context.trigger,
                          error=f"{type(exc).__name__}: {exc}")
            continue
        for command in produced:
            if isinstance(command, _WITH_EVENT_ID) and not command.event_id:
                command = dataclasses.replace(command, event_id=event_id())
            out.append(command)
    return out


MIN_COMMIT_BYTES = 100 * BYTES_PER_MS
"""The least audio a commit takes: the server refuses a shorter one
(``input_audio_buffer_commit_empty``)."""


class MicGate:
    """What becomes of microphone audio in the current state: sent, dropped or held; and how
    much was sent since the last commit (``uncommitted``, what a commit would take)."""

    __slots__ = ("_held", "_held_bytes", "_policies", "policy", "uncommitted")

    def __init__(self, table: StateTable) -> None:
        table_policy: dict[str, MicPolicy] = {"send": "send", "ignore": "drop", "hold": "hold"}
        self._policies: dict[str, MicPolicy] = {
            n: "drop" if n == IDLE else table_policy[table.user_speech(n)]
            for n in table.state_names
        }
        self.policy: MicPolicy = self._policies[table.entry(table.initial)]
        self._held: deque[bytes] = deque()
        self._held_bytes = 0
        self.uncommitted = 0
        """Bytes sent since the last commit or clear (the conversation adds what it sends)."""

    def __deepcopy__(self, memo: dict[int, object]) -> MicGate:
        """A copy for ``Conversation.snapshot()``: the policies are the table's, shared."""
        twin = MicGate.__new__(MicGate)
        twin._policies, twin.policy = self._policies, self.policy
        twin._held, twin._held_bytes = deque(self._held), self._held_bytes
        twin.uncommitted = self.uncommitted
        return twin

    def take_turn(self) -> bool:
        """A commit is due: whether enough audio was sent since the last one to make a user
        turn (``MIN_COMMIT_BYTES``); if so, the count starts again. Too little stays counted,
        as it stays in the server's buffer for the next commit."""
        if self.uncommitted < MIN_COMMIT_BYTES:
            return False
        self.uncommitted = 0
        return True

    def hold(self, audio: bytes) -> None:
        self._held.append(audio)
        self._held_bytes += len(audio)
        while self._held_bytes > HOLD_LIMIT_MS * BYTES_PER_MS and len(self._held) > 1:
            self._held_bytes -= len(self._held.popleft())

    @property
    def held_ms(self) -> float:
        return self._held_bytes / BYTES_PER_MS

    def enter(self, state: str) -> list[c.Command]:
        """The machine now rests in ``state``: the held audio, if that state sends it."""
        before, self.policy = self.policy, self._policies[state]
        if before != "hold" or self.policy == "hold" or not self._held:
            return []
        held, self._held, self._held_bytes = self._held, deque(), 0
        if self.policy == "drop":
            log.info("held_audio_dropped", ms=round(sum(map(len, held)) / BYTES_PER_MS, 1),
                     state=state)
            return []
        log.info("held_audio_sent", ms=round(sum(map(len, held)) / BYTES_PER_MS, 1), state=state)
        self.uncommitted += sum(map(len, held))
        return [c.SendAudio(audio) for audio in held]
