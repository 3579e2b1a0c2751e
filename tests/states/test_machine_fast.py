"""``TableMachine``'s compiled path against ``transitions``' own trigger path
(``fast=False``): the same random triggers and guard values through both, on flat and
nested tables, must give the same steps, states, history, listener calls and the same
guard calls in the same order."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from transitions import MachineError

from bargein.states import (
    DEFAULT_TABLE,
    TWO_PHASE_SERVER_VAD_TABLE,
    TWO_PHASE_TABLE,
    State,
    StateTable,
    Step,
    TableMachine,
    Transition,
    after,
)
from bargein.states.machine import MachineSnapshot
from examples.machines import MACHINES

DEEP = DEFAULT_TABLE.extend(
    states=[
        State("thinking", parent="responding", initial="pondering"),
        State("pondering", parent="thinking"),
        State("drafting", parent="thinking"),
        State("speaking", parent="responding"),
        State("confirming"),
    ],
    transitions=[
        Transition("speech_stopped", "listening", "thinking"),
        Transition("nudge", "pondering", "drafting", conditions=("playing",), reason="a"),
        Transition("nudge", "pondering", None, unless=("generating",), reason="b"),
        Transition("nudge", "thinking", "thinking", reason="self, a compound"),
        Transition("nudge", "drafting", "pondering", unless=("playing", "connected")),
        Transition("nudge", "speaking", "speaking", reason="self, a leaf"),
        Transition("audio_started", "thinking", "speaking", conditions=("playing",)),
        Transition("audio_started", "drafting", "responding", reason="to the parent"),
        Transition("local_speech_started", "responding", "confirming"),
        Transition("resume", "confirming", "responding", history=True, reason="history"),
        Transition("resume", "confirming", "thinking", history=True, reason="unreachable"),
        after(600, "confirming", "interrupted", reason="confirmed"),
        after(600, "responding", None, reason="a parent's timer"),
    ],
    triggers=["nudge", "resume"],
    name="deep",
)
"""Three levels, history into a compound whose remembered child is compound, self
transitions on a leaf and on a compound, internal edges, guards on every level."""

TABLES = {
    "default": DEFAULT_TABLE,
    "two_phase": TWO_PHASE_TABLE,
    "two_phase_server_vad": TWO_PHASE_SERVER_VAD_TABLE,
    "deep": DEEP,
    **MACHINES,
}


class _Run:
    """One machine, its guard calls and the steps its listener heard."""

    def __init__(self, table: StateTable, facts: dict[str, bool], *, fast: bool) -> None:
        self.calls: list[str] = []
        self.heard: list[Step] = []
        names = {n for t in table.edges() for n in (*t.conditions, *t.unless)}
        self.machine = TableMachine(table, {n: self._fact(facts, n) for n in names}, fast=fast)
        self.machine.listener = self.heard.append

    def _fact(self, facts: dict[str, bool], name: str) -> Callable[[], bool]:
        def fact() -> bool:
            self.calls.append(name)
            return facts[name]

        return fact

    def step(self, trigger: str) -> Step | str | None:
        try:
            return self.machine.step(trigger)
        except MachineError:
            return "illegal"

    def where(self) -> object:
        m = self.machine
        return m.state, m.snapshot(), m.legal_triggers(), self.calls, self.heard


@pytest.mark.parametrize("name", sorted(TABLES))
def test_the_compiled_path_steps_exactly_as_transitions_does(name: str) -> None:
    table = TABLES[name]
    conditions = sorted({n for t in table.edges() for n in (*t.conditions, *t.unless)})
    triggers = [*sorted({t.trigger for t in table.edges()}), "no_such_trigger"]
    rng = random.Random(14)
    moved = 0
    for _ in range(40):
        facts = dict.fromkeys(conditions, False)
        fast, slow = _Run(table, facts, fast=True), _Run(table, facts, fast=False)
        snapshots: list[MachineSnapshot] = []
        for _ in range(120):
            for n in conditions:
                facts[n] = rng.random() < 0.5
            if rng.random() < 0.05 and snapshots:  # back to an earlier place, both
                snapshot = rng.choice(snapshots)
                fast.machine.restore(snapshot)
                slow.machine.restore(snapshot)
            legal = sorted(slow.machine.legal_triggers())
            trigger = rng.choice(legal if legal and rng.random() < 0.9 else triggers)
            before = slow.machine.state
            got, want = fast.step(trigger), slow.step(trigger)
            assert got == want, (name, trigger, before)
            assert fast.where() == slow.where(), (name, trigger, before)
            moved += isinstance(want, Step) and want.dest != before
            snapshots.append(slow.machine.snapshot())
    assert moved > 500, "the sequences moved the machine"


def test_every_edge_was_compared() -> None:
    """The random sequences above reach every edge of the nested tables (so the replayed
    steps of each were compared with ``transitions``')."""
    for table in (TWO_PHASE_TABLE, DEEP):
        conditions = sorted({n for t in table.edges() for n in (*t.conditions, *t.unless)})
        facts = dict.fromkeys(conditions, False)
        run = _Run(table, facts, fast=True)
        rng = random.Random(14)
        for _ in range(20_000):
            for n in conditions:
                facts[n] = rng.random() < 0.5
            run.step(rng.choice(sorted(run.machine.legal_triggers())))
        fired = {step.edge for step in run.heard}
        reachable = {edge for edge in table.edges() if edge.reason != "unreachable"}
        assert reachable <= fired, sorted(f"{e.trigger}@{e.source}" for e in reachable - fired)


def test_a_replayed_step_is_the_first_one_again() -> None:
    machine = TableMachine(DEFAULT_TABLE, {n: lambda: False for n in
                                           ("playing", "generating", "connected", "paused",
                                            "tools_running")})
    machine.step("session_ready")
    first = machine.step("response_created")
    machine.step("speech_started")
    machine.step("playback_flushed")
    again = machine.step("response_created")
    assert first is again and machine.state == "responding"
