"""The engine of a ``StateTable``: a ``transitions.Machine`` that says which edge fired.

The table (``bargein.states.table``) is data; this module is the one place where it
becomes a ``transitions.Machine``. Each edge of ``table.edges()`` becomes one transition
with its own ``after`` callback bound to that edge's ``Transition`` object, so
``TableMachine.fire`` returns the very edge that moved the machine. Nothing has to guess it
back from ``(trigger, source, dest)``, a key that two edges may share: ``interrupted ->
responding`` on ``playback_flushed`` is two edges, one guarded by ``generating`` and one by
``playing``, each with its own reason.

The guards are named in the table (``CONDITIONS``); their meaning belongs to whoever owns
the facts (the conversation core), which passes one zero-argument predicate per name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from transitions import Machine, MachineError

from bargein.errors import StateTableError
from bargein.states.table import StateTable, Transition


class _Model:
    """What ``transitions`` decorates, so its trigger methods stay off everybody else."""


class TableMachine:
    """A ``transitions.Machine`` built from ``table``, one callback per edge."""

    __slots__ = ("_fired", "_machine", "_model", "_triggers", "table")

    def __init__(self, table: StateTable, predicates: Mapping[str, Callable[[], bool]]) -> None:
        edges = table.edges()
        unknown = {n for t in edges for n in (*t.conditions, *t.unless)} - set(predicates)
        if unknown:
            raise StateTableError(f"no predicate for condition(s) {sorted(unknown)}")
        self.table = table
        self._fired: Transition | None = None
        self._model: Any = _Model()
        triggers: dict[str, set[str]] = {name: set() for name in table.state_names}
        for edge in edges:
            triggers[edge.source].add(edge.trigger)
        self._triggers = {name: frozenset(ts) for name, ts in triggers.items()}
        self._machine = Machine(
            model=self._model,
            states=list(table.state_names),
            initial=table.initial,
            transitions=[
                {
                    "trigger": edge.trigger,
                    "source": edge.source,
                    "dest": edge.dest,
                    "conditions": [predicates[n] for n in edge.conditions],
                    "unless": [predicates[n] for n in edge.unless],
                    "after": partial(self._on_edge, edge),
                }
                for edge in edges
            ],
            auto_transitions=False,
            ignore_invalid_triggers=False,
            send_event=False,
        )

    @property
    def state(self) -> str:
        state: str = self._model.state
        return state

    def legal(self, trigger: str) -> bool:
        """Whether some edge of ``trigger`` leaves the current state (guards aside)."""
        return trigger in self._triggers[self._model.state]

    def fire(self, trigger: str) -> Transition | None:
        """Fire ``trigger`` and return the edge that fired; ``None`` when the guards of
        every edge of ``trigger`` from here refused. An illegal trigger (``legal()`` is
        false) raises ``transitions.MachineError``."""
        event = self._machine.events.get(trigger)
        if event is None:
            raise MachineError(f"no edge of the table fires on {trigger!r}")
        self._fired = None
        event.trigger(self._model)
        fired, self._fired = self._fired, None
        return fired

    def _on_edge(self, edge: Transition) -> None:
        self._fired = edge
