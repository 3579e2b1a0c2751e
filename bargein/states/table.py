"""The conversation's states and transitions, as data.

This table is the single source of truth: ``bargein.core.Conversation`` builds its
``transitions.Machine`` from it, extensions derive new tables from it, and the diagrams in
``diagrams/`` are rendered from it. Nothing about which state follows which lives anywhere
else.

Triggers are named after what happened (``speech_started``, ``response_done``); the core
maps each input event to its trigger. ``dest=None`` marks an internal transition: the event
is legal in that state and changes nothing. An event with no edge at all from the current
state is illegal there: the core logs and counts it, and stays where it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bargein.errors import StateTableError

IDLE = "idle"
LISTENING = "listening"
RESPONDING = "responding"
INTERRUPTED = "interrupted"
CORE_STATES = (IDLE, LISTENING, RESPONDING, INTERRUPTED)

BARGE_IN_TRIGGERS = ("speech_started", "local_speech_started", "interrupt")
"""What interrupts an interruptible state: server VAD, local VAD, the program itself."""

TRIGGERS = (
    "session_ready",
    "reconnected",
    "disconnected",
    "start",
    "stop",
    *BARGE_IN_TRIGGERS,
    "speech_stopped",
    "response_created",
    "audio_started",
    "response_done",
    "playback_finished",
    "playback_flushed",
)
"""Every trigger the core fires; a table may use no other."""

CONDITIONS = ("playing", "generating", "connected", "paused")
"""Predicates an edge may require: ``playing`` — the speaker still has audio of the
assistant; ``generating`` — a response the user has not interrupted is still being
generated (between ``response.created`` and ``response.done``); ``connected`` — the server
session is ready and has not dropped since; ``paused`` — the program stopped the
conversation and has not started it again."""

@dataclass(frozen=True, slots=True)
class State:
    """A conversation state. An interruptible state gets the barge-in edges by itself;
    ``description`` says what the state means, in the README's state table and in
    ``bargein.states.diagram.to_markdown_table`` of an extended machine."""

    name: str
    interruptible: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class Transition:
    """One edge: ``trigger`` moves ``source`` to ``dest`` (``None``: stay) when the
    ``conditions`` hold and the ``unless`` predicates do not. Edges of one trigger and
    source are tried in table order; the first that passes wins."""

    trigger: str
    source: str
    dest: str | None
    conditions: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()
    reason: str = ""


def _stay(source: str, *triggers: str) -> tuple[Transition, ...]:
    return tuple(Transition(t, source, None) for t in triggers)


@dataclass(frozen=True, slots=True)
class StateTable:
    """States and hand-written edges; ``edges()`` adds the automatic ones."""

    states: tuple[State, ...]
    transitions: tuple[Transition, ...]
    initial: str = IDLE
    name: str = "conversation"
    _index: dict[str, State] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {s.name: s for s in self.states})
        self._validate()

    def state(self, name: str) -> State:
        return self._index[name]

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    def extend(
        self,
        states: Iterable[State] = (),
        transitions: Iterable[Transition] = (),
        *,
        name: str | None = None,
    ) -> StateTable:
        """A new table with more states and edges. New edges come first, so an added edge
        overrides a default edge of the same trigger and source."""
        return StateTable(
            states=self.states + tuple(states),
            transitions=tuple(transitions) + self.transitions,
            initial=self.initial,
            name=name or self.name,
        )

    def edges(self) -> tuple[Transition, ...]:
        """Every edge the machine gets: the table's, then the automatic ones.

        - an interruptible state goes to ``interrupted`` on every barge-in trigger;
        - a state that is not interruptible keeps still on them (they stay legal);
        - ``disconnected`` and ``stop`` lead from every state to ``idle``.
        """
        edges = list(self.transitions)
        have = {(e.trigger, e.source) for e in edges}
        for state in self.states:
            automatic = [
                Transition(
                    t,
                    state.name,
                    INTERRUPTED if state.interruptible else None,
                    reason="barge-in" if state.interruptible else "",
                )
                for t in BARGE_IN_TRIGGERS
            ]
            automatic += [
                Transition(t, state.name, IDLE if state.name != IDLE else None, reason=t)
                for t in ("disconnected", "stop")
            ]
            edges += [e for e in automatic if (e.trigger, e.source) not in have]
        return tuple(edges)

    def _validate(self) -> None:
        names = [s.name for s in self.states]
        if len(set(names)) != len(names):
            raise StateTableError(f"state table {self.name!r} names a state twice")
        missing = [s for s in CORE_STATES if s not in self._index]
        if missing:
            raise StateTableError(f"state table {self.name!r} lacks core states {missing}")
        if self._index[INTERRUPTED].interruptible:
            raise StateTableError("the interrupted state cannot itself be interruptible")
        for e in self.transitions:
            for s in (e.source, e.dest):
                if s is not None and s not in self._index:
                    raise StateTableError(f"transition {e.trigger!r} names unknown state {s!r}")
            if e.trigger not in TRIGGERS:
                raise StateTableError(
                    f"transition names unknown trigger {e.trigger!r}; "
                    f"triggers: {', '.join(TRIGGERS)}"
                )
            for c in (*e.conditions, *e.unless):
                if c not in CONDITIONS:
                    raise StateTableError(
                        f"transition {e.trigger!r} names unknown condition {c!r}; "
                        f"conditions: {', '.join(CONDITIONS)}"
                    )


DEFAULT_TABLE = StateTable(
    states=(
        State(IDLE, description="not in a conversation: not connected, not ready, or paused"),
        State(LISTENING, description="live; the user may speak; no assistant audio is playing"),
        State(
            RESPONDING,
            interruptible=True,
            description="a response is being generated and/or its audio is playing",
        ),
        State(
            INTERRUPTED,
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
        Transition("response_created", LISTENING, RESPONDING, reason="response created"),
        Transition("audio_started", LISTENING, RESPONDING, reason="audio arrived"),
        *_stay(
            LISTENING,
            "session_ready",
            "start",
            "speech_stopped",
            "response_done",
            "playback_finished",
            "playback_flushed",
        ),
        # responding
        Transition(
            "response_done", RESPONDING, LISTENING, unless=("playing",), reason="response done"
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
"""The default machine: idle, listening, responding (interruptible), interrupted."""
