"""The engine of a ``StateTable``: a ``transitions`` machine that says which edge fired,
which states it left and entered. How it works, and why.

The table (``bargein.states.table``) is data; this module is the one place where it becomes
a machine of the ``transitions`` package. Each edge of ``table.edges()`` becomes a
transition with its own ``after`` callback bound to that edge's ``Transition`` object, so
``TableMachine.step`` returns the very edge that moved the machine: two edges may share
``(trigger, source, dest)`` (``interrupted -> responding`` on ``playback_flushed``, guarded
by ``generating`` or by ``playing``), each with its own reason. Each state gets ``on_enter``
and ``on_exit`` callbacks that note its name, so a ``Step`` lists the states left
(innermost first) and entered (outermost first): the conversation runs their actions and
starts and cancels their timers from that list, in the order ``transitions`` used. (A
flat machine needs no callbacks for that: a moving edge leaves its source and enters its
destination, and the state-changing path stays as cheap as it was.)

Nesting. A table with sub-states is built as a ``transitions`` ``HierarchicalMachine``
(the separator is ``.``: ``responding.thinking``; the table's names are unique, so the
public face of a state is its own name and ``state`` gives the innermost one). It does the
inheritance: a trigger is tried on the innermost state first, then on its parent when the
child has no edge or all its edges' guards refuse. Nesting costs: on ``transitions``' own
trigger path a hierarchical machine takes four to six times as long per trigger, so a table
without sub-states runs on the plain ``Machine``, with the same callbacks and the same
results (on the compiled path below the difference is a fraction of a microsecond).

History. ``transitions`` has no history states, so they are built from what it has: the
machine keeps, per compound state, the child it was last in (updated by the ``on_enter``
callbacks: entering a child records it, entering the compound itself clears it), and a
history edge into ``P`` becomes one transition per child ``C`` of ``P``, guarded by "``P``
was last in ``C``", then one into ``P`` itself (its initial child, or ``P``) for when it
was never in a child. All report the same table edge. Shallow: a remembered child that is
itself compound is entered at its own initial child.

Timed edges are ordinary triggers here (``after_600ms@confirming``): the conversation core
starts a timer on entering the state and fires the trigger when the timer reports (see
``bargein.core.actions``). The guards are named in the table (``CONDITIONS``); their
meaning belongs to whoever owns the facts (the conversation core), which passes one
zero-argument predicate per name.

Speed. ``transitions``' own trigger path costs 14 µs of CPU per trigger on the flat default
table and 71 µs on the nested two-phase one (an ``EventData``, partials, a debug log call
per phase, callbacks resolved one by one, the state tree rebuilt), more than the rest of a
state-changing event in the core. So ``step`` runs a compiled path in front of it (0.3 and
0.5 µs, ``bench/bench_core.py``), and the machine stays the authority on where each edge
leads:

- *Which edge.* Per (state, trigger), compiled when it first fires, the candidate
  ``transitions.Transition`` objects are read from the machine's own ``Event.transitions``,
  in the order its trigger tries them (the innermost state's first, then each ancestor's:
  ``resolve_order``). Each transition's one condition is a gate that checks its edge's
  guards in the table's order, stopping at the first that refuses, as ``transitions``'
  conditions did (a ``Condition`` passes when ``predicate() == target``; the predicates
  return ``bool``). The compiled path walks the same candidates and checks the same
  guards, so each predicate is called as often and in the same order as on
  ``transitions``' path.
- *Where it leads.* Firing a given transition from a given state always leaves and enters
  the same states and lands in the same place (a transition has a fixed destination;
  history is compiled into guarded variants, above). The first time a (state, transition)
  fires, ``transitions``' own trigger runs it, with every other candidate's gate shut
  (``_forced``) so that no guard is asked twice; the ``Step`` it made, the state it landed
  in and the history it noted are kept, and every later firing replays them: it sets the
  model's state and the history as that run did, and returns the same (immutable) ``Step``.

``TableMachine(..., fast=False)`` runs every trigger through ``transitions``' trigger path
instead: the reference the compiled path is tested against (``tests/states/
test_machine_fast.py`` drives both with the same random triggers and guard values, on flat
and nested tables, and compares every step, state and history).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

from transitions import Machine, MachineError
from transitions.extensions.nesting import HierarchicalMachine, NestedState

from bargein.errors import StateTableError
from bargein.states.table import StateTable, Transition

SEPARATOR = "."

Guard = tuple[Callable[[], object], bool]
"""A predicate and the value it must equal for the edge to pass (``unless``: ``False``)."""


class _DotState(NestedState):
    separator = SEPARATOR


class _Nested(HierarchicalMachine):
    state_cls = _DotState


class _Model:
    """What ``transitions`` decorates, so its trigger methods stay off everybody else."""


@dataclass(frozen=True, slots=True)
class Step:
    """One fired edge: the edge, the innermost state before and after, the states left
    (innermost first) and entered (outermost first). An internal edge leaves and enters
    nothing."""

    edge: Transition
    source: str
    dest: str
    exited: tuple[str, ...]
    entered: tuple[str, ...]


MachineSnapshot = tuple[str, tuple[tuple[str, str | None], ...]]

_Replay = tuple[Step, str | None, tuple[tuple[str, str | None], ...]]
"""What firing one candidate from one state did: the step, the model's state after it
(``None``: unchanged), the history it noted, in order."""


class _Candidate:
    """One ``transitions.Transition`` a trigger tries from one state: its guards, its
    index in the machine's transitions (for ``_forced``), and, once it has fired from that
    state, what it did."""

    __slots__ = ("guards", "index", "replay")

    def __init__(self, guards: tuple[Guard, ...], index: int) -> None:
        self.guards = guards
        self.index = index
        self.replay: _Replay | None = None


class TableMachine:
    """A ``transitions`` machine built from ``table``, one callback per edge and state."""

    __slots__ = ("_candidates", "_entered", "_exited", "_fast", "_fire", "_fired", "_forced",
                 "_guards", "_leaf", "_machine", "_model", "_notes", "_triggers", "history",
                 "listener", "table")

    def __init__(self, table: StateTable, predicates: Mapping[str, Callable[[], bool]], *,
                 fast: bool = True) -> None:
        edges = table.edges()
        unknown = {n for t in edges for n in (*t.conditions, *t.unless)} - set(predicates)
        if unknown:
            raise StateTableError(f"no predicate for condition(s) {sorted(unknown)}")
        self.table = table
        self.history: dict[str, str | None] = {}
        """Per compound state, the child it was last in (``None``: in itself, or never)."""
        self.listener: Callable[[Step], None] | None = None
        """Called with every ``Step`` (the generated tests count edges with it)."""
        self._fast = fast
        self._fired: Transition | None = None
        self._forced: int | None = None
        """While a first firing runs on ``transitions``' path: the one transition whose
        gate opens (every other refuses without asking its guards)."""
        self._exited: list[str] = []
        self._entered: list[str] = []
        self._model: Any = _Model()
        self._notes = {s.name: ((() if s.parent is None else ((s.parent, s.name),))
                                + (((s.name, None),) if table.children(s.name) else ()))
                       for s in table.states}
        """What entering each state notes in ``history``."""
        nested = table.nested
        path = {n: SEPARATOR.join(table.path(n)) if nested else n for n in table.state_names}
        self._leaf = {p: n for n, p in path.items()}
        own: dict[str, set[str]] = {name: set() for name in table.state_names}
        for edge in edges:
            own[edge.source].add(edge.trigger)
        self._triggers = {
            path[n]: frozenset(t for a in table.path(n) for t in own[a]) for n in table.state_names
        }
        self._guards: list[tuple[Guard, ...]] = []
        transitions = [spec for edge in edges for spec in self._specs(edge, predicates, path)]
        options: dict[str, Any] = {
            "model": self._model, "transitions": transitions, "initial": path[table.initial],
            "auto_transitions": False, "ignore_invalid_triggers": False, "send_event": False,
        }
        self._machine: Machine
        if nested:
            self._machine = _Nested(states=[self._state_spec(s.name) for s in table.states
                                            if s.parent is None], **options)
            self._fire: Callable[[str], object] | None = partial(self._machine.trigger_event,
                                                                 self._model)
        else:
            self._machine = Machine(states=[self._state_spec(n) for n in table.state_names],
                                    **options)
            self._fire = None  # a flat machine's event is triggered directly
        self._candidates: dict[str, dict[str, tuple[_Candidate, ...]]] = {p: {} for p in self._leaf}
        """Per state and trigger, compiled on its first firing (``_compile``)."""

    def _state_spec(self, name: str) -> dict[str, Any]:
        spec: dict[str, Any] = {"name": name}
        if not self.table.nested:  # a flat machine's step leaves its source, enters its dest
            return spec
        spec["on_enter"] = [partial(self._on_enter, name)]
        spec["on_exit"] = [partial(self._exited.append, name)]
        children = self.table.children(name)
        if children:
            spec["children"] = [self._state_spec(c) for c in children]
            initial = self.table.state(name).initial
            if initial is not None:
                spec["initial"] = initial
        return spec

    def _specs(self, edge: Transition, predicates: Mapping[str, Callable[[], bool]],
               path: Mapping[str, str]) -> list[dict[str, Any]]:
        conditions: list[Guard] = [(predicates[n], True) for n in edge.conditions]
        unless: list[Guard] = [(predicates[n], False) for n in edge.unless]
        base: dict[str, Any] = {
            "trigger": edge.trigger,
            "source": path[edge.source],
            "after": partial(self._on_edge, edge),
        }
        if edge.dest is None or not edge.history:
            variants = [({**base, "dest": None if edge.dest is None else path[edge.dest]},
                         (*conditions, *unless))]
        else:
            parent = edge.dest
            variants = [
                ({**base, "dest": path[child]},
                 (*conditions, (partial(self._was_in, parent, child), True), *unless))
                for child in self.table.children(parent)
            ]
            variants.append(({**base, "dest": path[parent]}, (*conditions, *unless)))
        specs = []
        for spec, guards in variants:
            spec["conditions"] = [partial(self._gate, len(self._guards))]
            self._guards.append(guards)
            specs.append(spec)
        return specs

    def _compile(self, state: str, trigger: str) -> tuple[_Candidate, ...]:
        """The transitions ``trigger`` tries from ``state``, in ``transitions``' order:
        the innermost state's own first, then each ancestor's."""
        event = self._machine.events[trigger]
        parts = state.split(SEPARATOR) if self.table.nested else [state]
        candidates = []
        for depth in range(len(parts), 0, -1):
            for transition in event.transitions.get(SEPARATOR.join(parts[:depth]), ()):
                (gate,) = transition.conditions
                index: int = cast("partial[bool]", gate.func).args[0]
                candidates.append(_Candidate(self._guards[index], index))
        return tuple(candidates)

    # --- the state ---------------------------------------------------------------------

    @property
    def state(self) -> str:
        """The innermost state the machine is in."""
        return self._leaf[self._model.state]

    def active(self, name: str) -> bool:
        """Whether the machine is in ``name`` or in one of its sub-states."""
        return name in self.table.path(self._leaf[self._model.state])

    def legal(self, trigger: str) -> bool:
        """Whether some edge of ``trigger`` leaves the current state or one of its
        ancestors (guards aside)."""
        return trigger in self._triggers[self._model.state]

    def legal_triggers(self) -> frozenset[str]:
        return self._triggers[self._model.state]

    def snapshot(self) -> MachineSnapshot:
        """Where the machine is, with its history, to ``restore`` later."""
        return self._model.state, tuple(self.history.items())

    def restore(self, snapshot: MachineSnapshot) -> None:
        """Put the machine back where ``snapshot`` was taken, running no callback."""
        state, history = snapshot
        self._machine.set_state(state, self._model)
        self.history = dict(history)

    # --- firing ------------------------------------------------------------------------

    def fire(self, trigger: str) -> Transition | None:
        """Fire ``trigger`` and return the edge that fired; ``None`` when the guards of
        every edge of ``trigger`` from here refused. An illegal trigger (``legal()`` is
        false) raises ``transitions.MachineError``."""
        step = self.step(trigger)
        return None if step is None else step.edge

    def step(self, trigger: str) -> Step | None:
        """Fire ``trigger``; the ``Step`` it made, or ``None`` (see ``fire``)."""
        model = self._model
        state = model.state
        candidates = self._candidates[state].get(trigger)
        if candidates is None:
            if not self._fast or trigger not in self._triggers[state]:
                return self._trigger(trigger)  # an illegal trigger raises there
            candidates = self._candidates[state][trigger] = self._compile(state, trigger)
        for candidate in candidates:
            for predicate, target in candidate.guards:
                if predicate() != target:
                    break
            else:
                replay = candidate.replay
                if replay is None:
                    return self._first(trigger, candidate)
                step, dest, notes = replay
                if dest is not None:
                    model.state = dest
                if notes:
                    history = self.history
                    for key, value in notes:
                        history[key] = value
                if self.listener is not None:
                    self.listener(step)
                return step
        return None

    def _first(self, trigger: str, candidate: _Candidate) -> Step | None:
        """Fire ``candidate`` on ``transitions``' path (its guards have passed) and keep
        what it did for the next time."""
        self._forced = candidate.index
        try:
            step = self._trigger(trigger)
        finally:
            self._forced = None
        if step is not None:
            dest = None if step.edge.dest is None else self._model.state
            notes = tuple(note for name in step.entered for note in self._notes[name])
            candidate.replay = step, dest, notes
        return step

    def _trigger(self, trigger: str) -> Step | None:
        """``trigger`` through ``transitions``' own trigger path."""
        event = self._machine.events.get(trigger)
        if event is None:
            raise MachineError(f"no edge of the table fires on {trigger!r}")
        model = self._model
        source = model.state
        self._fired = None
        exited, entered = self._exited, self._entered
        exited.clear()
        entered.clear()
        if self._fire is None:
            event.trigger(model)
            edge, self._fired = self._fired, None
            if edge is None:
                return None
            dest = model.state
            step = Step(edge, source, dest, *(((), ()) if edge.dest is None
                                              else ((source,), (dest,))))
        else:
            self._fire(trigger)
            edge, self._fired = self._fired, None
            if edge is None:
                return None
            step = Step(edge, self._leaf[source], self._leaf[model.state],
                        tuple(exited), tuple(entered))
        if self.listener is not None:
            self.listener(step)
        return step

    def _gate(self, index: int) -> bool:
        """The one condition of ``transitions``' transition ``index``: its edge's guards,
        in order, each ``predicate() == target`` (what ``transitions.Condition`` checks).
        While a first firing is forced, only that transition's gate opens."""
        forced = self._forced
        if forced is not None:
            return index == forced
        return all(predicate() == target for predicate, target in self._guards[index])

    def _on_edge(self, edge: Transition) -> None:
        self._fired = edge

    def _on_enter(self, name: str) -> None:
        self._entered.append(name)
        for key, value in self._notes[name]:
            self.history[key] = value

    def _was_in(self, parent: str, child: str) -> bool:
        return self.history.get(parent) == child
