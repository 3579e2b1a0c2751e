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
child has no edge or all its edges' guards refuse. Nesting costs: a hierarchical machine
takes about four times as long per trigger, so a table without sub-states runs on the plain
``Machine``, with the same callbacks and the same results.

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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from transitions import Machine, MachineError
from transitions.extensions.nesting import HierarchicalMachine, NestedState

from bargein.errors import StateTableError
from bargein.states.table import StateTable, Transition

SEPARATOR = "."


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


class TableMachine:
    """A ``transitions`` machine built from ``table``, one callback per edge and state."""

    __slots__ = ("_entered", "_exited", "_fire", "_fired", "_leaf", "_machine", "_model",
                 "_parents", "_triggers", "history", "listener", "table")

    def __init__(self, table: StateTable, predicates: Mapping[str, Callable[[], bool]]) -> None:
        edges = table.edges()
        unknown = {n for t in edges for n in (*t.conditions, *t.unless)} - set(predicates)
        if unknown:
            raise StateTableError(f"no predicate for condition(s) {sorted(unknown)}")
        self.table = table
        self.history: dict[str, str | None] = {}
        """Per compound state, the child it was last in (``None``: in itself, or never)."""
        self.listener: Callable[[Step], None] | None = None
        """Called with every ``Step`` (the generated tests count edges with it)."""
        self._fired: Transition | None = None
        self._exited: list[str] = []
        self._entered: list[str] = []
        self._model: Any = _Model()
        self._parents = {s.name: s.parent for s in table.states}
        nested = table.nested
        path = {n: SEPARATOR.join(table.path(n)) if nested else n for n in table.state_names}
        self._leaf = {p: n for n, p in path.items()}
        own: dict[str, set[str]] = {name: set() for name in table.state_names}
        for edge in edges:
            own[edge.source].add(edge.trigger)
        self._triggers = {
            path[n]: frozenset(t for a in table.path(n) for t in own[a]) for n in table.state_names
        }
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
        conditions: list[Callable[[], bool]] = [predicates[n] for n in edge.conditions]
        base: dict[str, Any] = {
            "trigger": edge.trigger,
            "source": path[edge.source],
            "conditions": conditions,
            "unless": [predicates[n] for n in edge.unless],
            "after": partial(self._on_edge, edge),
        }
        if edge.dest is None or not edge.history:
            return [{**base, "dest": None if edge.dest is None else path[edge.dest]}]
        parent = edge.dest
        variants = [
            {**base, "dest": path[child],
             "conditions": [*conditions, partial(self._was_in, parent, child)]}
            for child in self.table.children(parent)
        ]
        return [*variants, {**base, "dest": path[parent]}]

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

    def _on_edge(self, edge: Transition) -> None:
        self._fired = edge

    def _on_enter(self, name: str) -> None:
        self._entered.append(name)
        parent = self._parents[name]
        if parent is not None:
            self.history[parent] = name
        if self.table.children(name):
            self.history[name] = None

    def _was_in(self, parent: str, child: str) -> bool:
        return self.history.get(parent) == child
