"""The conversation's states and transitions, as data (a little over 400 lines: the data
classes, their validation messages and the default table itself, which is most of it).

This table is the single source of truth: ``bargein.core.Conversation`` builds its machine
from it (``bargein.states.machine``), extensions derive new tables from it, the checks
(``bargein.states.check``) and the generated tests (``bargein.testing``) read it, and the
diagrams in ``diagrams/`` are rendered from it. Nothing about which state follows which
lives anywhere else.

Triggers are named after what happened (``speech_started``, ``response_done``); the core
maps each input event to its trigger, a program's own events (``UserEvent``) fire the
triggers the table declares (``StateTable.triggers``), and a timed edge (``after``) fires
when its state has lasted long enough. ``dest=None`` marks an internal transition: the
event is legal in that state and changes nothing. An event with no edge at all from the
current state is illegal there: the core logs and counts it, and stays where it is.

Statecharts. A state may have a ``parent``: it is then a sub-state, and inherits its
parent's edges (an event with no edge of the child's own, or whose edges' guards all
refuse, is tried on the parent), its ``interruptible`` flag and its ``user_speech`` policy
unless it sets its own. An edge into a compound state enters its ``initial`` child (or
the compound itself when it has none); ``history=True`` enters instead the child it was
in when it was last left (shallow history). A timed edge, ``after(600, "confirming",
"interrupted")``, fires 600 ms after its state was entered unless the state was left
first. A state's ``on_enter``/``on_exit`` actions and an edge's ``actions`` are functions
that return bargein commands (see ``bargein.core.actions``).

(A little over 400 lines: the default machine, a hundred lines of data, lives here beside
the classes it is written in, so that reading one file tells the whole default.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bargein.errors import StateTableError
from bargein.states.names import (
    BARGE_IN_TRIGGERS,
    CONDITIONS,
    CORE_STATES,
    IDLE,
    INTERRUPTED,
    LEAVE_TRIGGERS,
    LISTENING,
    RESPONDING,
    RUNNING_TOOLS,
    SPEECH_POLICIES,
    TRIGGERS,
    SpeechPolicy,
    timer_trigger,
)

__all__ = [
    "BARGE_IN_TRIGGERS", "CONDITIONS", "CORE_STATES", "DEFAULT_TABLE", "IDLE", "INTERRUPTED",
    "LEAVE_TRIGGERS", "LISTENING", "RESPONDING", "RUNNING_TOOLS", "SPEECH_POLICIES", "TRIGGERS",
    "Action", "SpeechPolicy", "State", "StateTable", "TableProblems", "Transition", "after",
    "timer_trigger",
]

Action = Callable[[Any], Iterable[Any] | None]
"""An entry, exit or edge action: called with a ``bargein.core.actions.ActionContext``,
returns the commands to carry out (or ``None``)."""


class TableProblems(StateTableError):
    """A table that cannot drive the core; ``problems`` holds one line per problem."""

    def __init__(self, table: str, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(f"state table {table!r}: " + "; ".join(self.problems))


@dataclass(frozen=True, slots=True)
class State:
    """A conversation state.

    An interruptible state gets the barge-in edges by itself. ``interruptible`` and
    ``user_speech`` left ``None`` are the parent's (for a top-level state: not
    interruptible, speech sent). ``description`` says what the state means, in the
    README's state table and the diagrams. ``parent`` makes it a sub-state; ``initial``
    names the child an edge into this state enters. ``on_enter``/``on_exit`` are actions.
    """

    name: str
    interruptible: bool | None = None
    description: str = ""
    parent: str | None = None
    initial: str | None = None
    on_enter: tuple[Action, ...] = ()
    on_exit: tuple[Action, ...] = ()
    user_speech: SpeechPolicy | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "on_enter", tuple(self.on_enter))
        object.__setattr__(self, "on_exit", tuple(self.on_exit))


@dataclass(frozen=True, slots=True)
class Transition:
    """One edge: ``trigger`` moves ``source`` to ``dest`` (``None``: stay) when the
    ``conditions`` hold and the ``unless`` predicates do not. Edges of one trigger and
    source are tried in table order; the first that passes wins. ``actions`` run when it
    fires; ``history`` enters ``dest``'s last active child; ``after_ms`` marks a timed edge
    (write those with ``after()``)."""

    trigger: str
    source: str
    dest: str | None
    conditions: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()
    reason: str = ""
    actions: tuple[Action, ...] = ()
    history: bool = False
    after_ms: int | None = None

    def __post_init__(self) -> None:
        for name in ("conditions", "unless", "actions"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def requires(self) -> frozenset[tuple[str, bool]]:
        """The guards as literals: ``(condition, True)``, ``(unless, False)``."""
        return frozenset([(c, True) for c in self.conditions] + [(u, False) for u in self.unless])


def after(
    ms: int,
    source: str,
    dest: str | None,
    *,
    conditions: Iterable[str] = (),
    unless: Iterable[str] = (),
    reason: str = "",
    actions: Iterable[Action] = (),
    history: bool = False,
) -> Transition:
    """A timed edge: ``ms`` milliseconds after ``source`` was entered, unless it was left
    first. Its trigger is ``timer_trigger(source, ms)``."""
    return Transition(timer_trigger(source, ms), source, dest, tuple(conditions), tuple(unless),
                      reason, tuple(actions), history, ms)


def _stay(source: str, *triggers: str) -> tuple[Transition, ...]:
    return tuple(Transition(t, source, None) for t in triggers)


def _awaiting_a_reply(source: str) -> tuple[Transition, ...]:
    """The edges of a state with nothing playing, where a reply may start: a response or
    its audio leads to ``responding``; the rest of a reply's life, and readiness, are legal
    and change nothing."""
    return (
        Transition("response_created", source, RESPONDING, reason="response created"),
        Transition("audio_started", source, RESPONDING, reason="audio arrived"),
        *_stay(source, "session_ready", "start", "speech_stopped", "response_done",
               "playback_finished", "playback_flushed"),
    )


@dataclass(frozen=True, slots=True)
class StateTable:
    """States and hand-written edges; ``edges()`` adds the automatic ones. ``triggers``
    are the program's own (fired with ``bargein.core.events.UserEvent``).
    ``server_interrupts=False`` says the table judges a barge-in before cutting the reply
    (two-phase, ``bargein.states.two_phase``): the server's turn detection must not cancel
    the reply first, so the core sends ``interrupt_response: false`` in every
    ``session.update`` and cancels itself when it commits."""

    states: tuple[State, ...]
    transitions: tuple[Transition, ...]
    initial: str = IDLE
    name: str = "conversation"
    triggers: tuple[str, ...] = ()
    server_interrupts: bool = True
    _index: dict[str, State] = field(init=False, repr=False, compare=False)
    _children: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _paths: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _edges: tuple[Transition, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from bargein.states.validate import structural_problems

        object.__setattr__(self, "states", tuple(self.states))
        object.__setattr__(self, "transitions", tuple(self.transitions))
        object.__setattr__(self, "triggers", tuple(self.triggers))
        object.__setattr__(self, "_index", {s.name: s for s in self.states})
        problems = structural_problems(self)
        if problems:
            raise TableProblems(self.name, problems)
        children: dict[str, list[str]] = {s.name: [] for s in self.states}
        for s in self.states:
            if s.parent is not None:
                children[s.parent].append(s.name)
        object.__setattr__(self, "_children", {k: tuple(v) for k, v in children.items()})
        paths: dict[str, tuple[str, ...]] = {}
        for s in self.states:
            chain = [s.name]
            while (up := self._index[chain[-1]].parent) is not None:
                chain.append(up)
            paths[s.name] = tuple(reversed(chain))
        object.__setattr__(self, "_paths", paths)
        object.__setattr__(self, "_edges", self._build_edges())

    # --- reading the table -------------------------------------------------------------

    def state(self, name: str) -> State:
        return self._index[name]

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    @property
    def nested(self) -> bool:
        """Whether any state has a parent."""
        return any(s.parent is not None for s in self.states)

    def parent(self, name: str) -> str | None:
        return self._index[name].parent

    def children(self, name: str) -> tuple[str, ...]:
        return self._children[name]

    def path(self, name: str) -> tuple[str, ...]:
        """The state's ancestors and itself, outermost first."""
        return self._paths[name]

    def interruptible(self, name: str) -> bool:
        """Whether a barge-in leads out of ``name`` by default (its own flag, else its
        nearest ancestor's, else not)."""
        for n in reversed(self._paths[name]):
            flag = self._index[n].interruptible
            if flag is not None:
                return flag
        return False

    def user_speech(self, name: str) -> SpeechPolicy:
        """What becomes of the user's audio in ``name`` (its own policy, else its nearest
        ancestor's, else ``send``); see ``bargein.states.names.SPEECH_POLICIES``."""
        for n in reversed(self._paths[name]):
            policy = self._index[n].user_speech
            if policy is not None:
                return policy
        return "send"

    def entry(self, name: str) -> str:
        """The state the machine rests in when an edge enters ``name``: its initial child,
        and that one's, as far as they go."""
        while (child := self._index[name].initial) is not None:
            name = child
        return name

    @property
    def resting_states(self) -> tuple[str, ...]:
        """The states the machine can be in: all but the compounds with an initial child."""
        return tuple(s.name for s in self.states if s.initial is None)

    def timers(self, name: str) -> tuple[tuple[str, int], ...]:
        """``(trigger, ms)`` of each timed edge out of ``name`` itself, once each."""
        seen: dict[str, int] = {}
        for e in self.transitions:
            if e.source == name and e.after_ms is not None:
                seen.setdefault(e.trigger, e.after_ms)
        return tuple(seen.items())

    @property
    def all_triggers(self) -> tuple[str, ...]:
        """The core's triggers, the program's, and the timed edges'."""
        timed = [e.trigger for e in self.transitions if e.after_ms is not None]
        return tuple(dict.fromkeys((*TRIGGERS, *self.triggers, *timed)))

    def edges(self) -> tuple[Transition, ...]:
        """Every edge the machine gets: the table's, then the automatic ones.

        - an interruptible state goes to ``interrupted`` on every barge-in trigger;
        - a state that is not interruptible keeps still on them (they stay legal);
        - ``disconnected`` and ``stop`` lead from every state to ``idle``.

        A sub-state gets none of these when its parent's serve it (it inherits them): only
        a sub-state whose ``interruptible`` differs from its parent's gets barge-in edges.
        """
        return self._edges

    def _build_edges(self) -> tuple[Transition, ...]:
        edges = list(self.transitions)
        have = {(e.trigger, e.source) for e in edges}
        for state in self.states:
            name, parent = state.name, state.parent
            automatic: list[Transition] = []
            mine = self.interruptible(name)
            if parent is None or mine != self.interruptible(parent):
                automatic += [
                    Transition(t, name, INTERRUPTED if mine else None,
                               reason="barge-in" if mine else "")
                    for t in BARGE_IN_TRIGGERS
                ]
            if parent is None:
                automatic += [
                    Transition(t, name, IDLE if name != IDLE else None, reason=t)
                    for t in LEAVE_TRIGGERS
                ]
            edges += [e for e in automatic if (e.trigger, e.source) not in have]
        return tuple(edges)

    # --- deriving tables ---------------------------------------------------------------

    def extend(
        self,
        states: Iterable[State] = (),
        transitions: Iterable[Transition] = (),
        *,
        name: str | None = None,
        triggers: Iterable[str] = (),
        replace: Iterable[State] = (),
        server_interrupts: bool | None = None,
    ) -> StateTable:
        """A new table with more states, edges and triggers.

        New edges come first, so an added edge overrides a default edge of the same trigger
        and source; a default edge that can then never fire (the new edge's guards ask no
        more than its own) is left out. ``replace`` gives new definitions of existing states
        (to make ``responding`` a compound with an ``initial`` child, say).
        ``server_interrupts`` left ``None`` is this table's."""
        new_edges = tuple(transitions)
        replaced = {s.name: s for s in replace}
        unknown = [n for n in replaced if n not in self._index]
        if unknown:
            raise TableProblems(name or self.name, [f"replace names unknown state {n!r}"
                                                    for n in unknown])
        kept = tuple(
            b for b in self.transitions
            if not any(n.trigger == b.trigger and n.source == b.source
                       and n.requires <= b.requires for n in new_edges)
        )
        return StateTable(
            states=tuple(replaced.get(s.name, s) for s in self.states) + tuple(states),
            transitions=new_edges + kept,
            initial=self.initial,
            name=name or self.name,
            triggers=tuple(dict.fromkeys((*self.triggers, *triggers))),
            server_interrupts=(self.server_interrupts if server_interrupts is None
                               else server_interrupts),
        )


DEFAULT_TABLE = StateTable(
    states=(
        State(IDLE, False, "not in a conversation: not connected, not ready, or paused"),
        State(LISTENING, False, "live; the user may speak; no assistant audio is playing"),
        State(
            RESPONDING,
            interruptible=True,
            description="a response is being generated and/or its audio is playing",
        ),
        State(
            RUNNING_TOOLS,
            interruptible=True,
            description=(
                "the reply is done and played; its tool calls run, and the follow-up reply "
                "waits for their outputs"
            ),
        ),
        State(
            INTERRUPTED,
            interruptible=False,
            description=(
                "the user barged in: playback flushed, response cancelled; waits for the "
                "speaker's report to truncate each item to what was heard"
            ),
        ),
    ),
    transitions=(
        # idle
        Transition("session_ready", IDLE, LISTENING, unless=("paused",), reason="session ready"),
        Transition("reconnected", IDLE, LISTENING, unless=("paused",), reason="reconnected"),
        Transition("start", IDLE, LISTENING, conditions=("connected",), reason="resumed"),
        *_stay(
            IDLE,
            "session_ready",
            "reconnected",
            "start",
            "playback_finished",
            "playback_flushed",
            "response_done",
        ),
        # listening
        *_awaiting_a_reply(LISTENING),
        # responding
        Transition(
            "response_done",
            RESPONDING,
            RUNNING_TOOLS,
            conditions=("tools_running",),
            unless=("playing", "generating"),
            reason="response done; its tool calls run",
        ),
        Transition(
            "playback_finished",
            RESPONDING,
            RUNNING_TOOLS,
            conditions=("tools_running",),
            unless=("generating",),
            reason="playback finished; its tool calls run",
        ),
        Transition(
            "response_done",
            RESPONDING,
            LISTENING,
            unless=("playing", "generating"),
            reason="response done",
        ),
        Transition(
            "playback_finished",
            RESPONDING,
            LISTENING,
            unless=("generating",),
            reason="playback finished",
        ),
        *_stay(
            RESPONDING,
            "session_ready",
            "start",
            "speech_stopped",
            "response_created",
            "audio_started",
            "response_done",
            "playback_finished",
            "playback_flushed",
        ),
        # running_tools
        Transition("tools_done", RUNNING_TOOLS, LISTENING, reason="the tool calls ended"),
        *_awaiting_a_reply(RUNNING_TOOLS),
        # interrupted
        Transition(
            "playback_flushed",
            INTERRUPTED,
            RESPONDING,
            conditions=("generating",),
            reason="flushed; a new response is under way",
        ),
        Transition(
            "playback_flushed",
            INTERRUPTED,
            RESPONDING,
            conditions=("playing",),
            unless=("generating",),
            reason="flushed; a new response is playing",
        ),
        Transition("playback_flushed", INTERRUPTED, LISTENING, reason="flushed"),
        *_stay(
            INTERRUPTED,
            "session_ready",
            "start",
            "speech_stopped",
            "response_created",
            "audio_started",
            "response_done",
            "playback_finished",
        ),
    ),
)
"""The default machine: idle, listening, responding (interruptible), running_tools
(interruptible), interrupted."""
