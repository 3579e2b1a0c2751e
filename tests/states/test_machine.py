"""``TableMachine``: the table's ``transitions.Machine``, telling which edge fired."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from transitions import MachineError

from bargein.errors import StateTableError
from bargein.states import CONDITIONS, DEFAULT_TABLE, State, TableMachine, Transition

NAMES = CONDITIONS


def _facts(**facts: bool) -> dict[str, Callable[[], bool]]:
    def fact(name: str) -> Callable[[], bool]:
        return lambda: facts.get(name, False)

    return {n: fact(n) for n in NAMES}


def _machine(**facts: bool) -> TableMachine:
    return TableMachine(DEFAULT_TABLE, _facts(**facts))


def _drive(machine: TableMachine, *triggers: str) -> None:
    for trigger in triggers:
        machine.fire(trigger)


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        ({"generating": True}, "flushed; a new response is under way"),
        ({"playing": True}, "flushed; a new response is playing"),
        ({"generating": True, "playing": True}, "flushed; a new response is under way"),
        ({}, "flushed"),
    ],
)
def test_fire_returns_the_very_edge_that_fired(facts: dict[str, bool], reason: str) -> None:
    machine = _machine(**facts)
    _drive(machine, "session_ready", "response_created", "interrupt")
    assert machine.state == "interrupted"
    edge = machine.fire("playback_flushed")
    assert edge is not None and edge.reason == reason
    assert edge in DEFAULT_TABLE.edges()
    assert machine.state == edge.dest


def test_internal_edges_are_returned_and_stay() -> None:
    machine = _machine()
    _drive(machine, "session_ready")
    edge = machine.fire("speech_stopped")
    assert edge is not None and edge.dest is None and machine.state == "listening"


def test_a_refused_guard_falls_through_to_the_next_edge() -> None:
    machine = _machine(connected=False)
    edge = machine.fire("start")  # idle --start [connected]--> listening refused
    assert edge is not None and edge.dest is None and machine.state == "idle"


def test_guards_that_refuse_every_edge_fire_nothing() -> None:
    table = DEFAULT_TABLE.extend(
        states=[State("greeting")],
        transitions=[
            Transition("session_ready", "idle", "greeting"),
            Transition("playback_finished", "greeting", "listening", unless=("generating",)),
        ],
    )
    machine = TableMachine(table, _facts(generating=True))
    machine.fire("session_ready")
    assert machine.fire("playback_finished") is None and machine.state == "greeting"


def test_legal_is_the_set_of_triggers_from_the_state_and_illegal_raises() -> None:
    machine = _machine()
    assert machine.legal("session_ready") and not machine.legal("response_created")
    with pytest.raises(MachineError):
        machine.fire("response_created")
    with pytest.raises(MachineError):
        machine.fire("no_such_trigger")
    assert machine.state == "idle"


def test_a_condition_without_a_predicate_is_refused() -> None:
    with pytest.raises(StateTableError, match="no predicate"):
        TableMachine(DEFAULT_TABLE, {"playing": lambda: True})
