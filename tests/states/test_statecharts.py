"""Statechart features of the table: nesting with inheritance, shallow history, timed edges,
the program's triggers, and the problems a table is refused for."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from transitions import MachineError

from bargein.states import (
    CONDITIONS,
    DEFAULT_TABLE,
    State,
    StateTable,
    TableMachine,
    TableProblems,
    Transition,
    after,
    timer_trigger,
)

NAMES = CONDITIONS

NESTED = DEFAULT_TABLE.extend(
    states=[
        State("thinking", parent="responding", description="no audio yet"),
        State("speaking", parent="responding"),
        State("aside", parent="responding", interruptible=False, user_speech="hold"),
        State("confirming"),
    ],
    transitions=[
        Transition("speech_stopped", "listening", "thinking"),
        Transition("audio_started", "thinking", "speaking", conditions=("playing",)),
        Transition("local_speech_started", "responding", "confirming"),
        Transition("resume", "confirming", "responding", history=True, reason="false alarm"),
        after(600, "confirming", "interrupted", reason="confirmed"),
        after(600, "responding", None, reason="a parent's timer"),
        Transition("aside", "speaking", "aside"),
    ],
    triggers=["resume", "aside"],
    name="nested",
)


def _facts(**facts: bool) -> dict[str, Callable[[], bool]]:
    def fact(name: str) -> Callable[[], bool]:
        return lambda: facts.get(name, False)

    return {n: fact(n) for n in NAMES}


def _machine(table: StateTable = NESTED, **facts: bool) -> TableMachine:
    machine = TableMachine(table, _facts(**facts))
    for trigger in ("session_ready", "speech_stopped"):
        machine.fire(trigger)
    return machine


def test_the_tree_and_what_children_inherit() -> None:
    assert NESTED.nested and not DEFAULT_TABLE.nested
    assert NESTED.path("speaking") == ("responding", "speaking")
    assert NESTED.children("responding") == ("thinking", "speaking", "aside")
    assert NESTED.interruptible("thinking") and not NESTED.interruptible("aside")
    assert NESTED.user_speech("aside") == "hold" and NESTED.user_speech("thinking") == "send"
    automatic = {(e.trigger, e.source) for e in NESTED.edges()[len(NESTED.transitions):]}
    assert ("speech_started", "thinking") not in automatic, "inherited from responding"
    assert ("speech_started", "aside") in automatic, "differs from its parent: its own"
    assert ("disconnected", "thinking") not in automatic


def test_a_child_tries_its_own_edges_then_its_parents() -> None:
    machine = _machine()
    assert machine.state == "thinking" and machine.active("responding")
    step = machine.step("audio_started")  # the child's edge refuses (not playing) ...
    assert step is not None and step.edge.source == "responding" and step.edge.dest is None
    assert machine.state == "thinking"       # ... so the parent's stay fires
    step = machine.step("speech_started")    # the parent's automatic barge-in
    assert step is not None and step.source == "thinking" and step.dest == "interrupted"
    assert step.exited == ("thinking", "responding") and step.entered == ("interrupted",)


def test_a_non_interruptible_child_keeps_still_on_barge_in() -> None:
    machine = _machine(playing=True)
    machine.fire("audio_started")
    machine.fire("aside")
    assert machine.state == "aside"
    edge = machine.fire("speech_started")
    assert edge is not None and edge.dest is None and machine.state == "aside"


def test_shallow_history_returns_to_the_child_it_left() -> None:
    machine = _machine(playing=True)
    machine.fire("audio_started")
    assert machine.state == "speaking"
    machine.fire("local_speech_started")     # inherited from responding
    assert machine.state == "confirming" and machine.history["responding"] == "speaking"
    step = machine.step("resume")
    assert step is not None and step.dest == "speaking" and step.edge.reason == "false alarm"
    machine.fire("speech_started")
    machine.fire("playback_flushed")
    machine.restore(("confirming", ()))      # never in a child: into responding itself
    assert machine.fire("resume") is not None and machine.state == "responding"


def test_timed_edges_are_triggers_named_after_their_state() -> None:
    assert timer_trigger("confirming", 600) == "after_600ms@confirming"
    assert NESTED.timers("confirming") == (("after_600ms@confirming", 600),)
    assert NESTED.timers("responding") == (("after_600ms@responding", 600),)
    machine = _machine()
    assert machine.legal("after_600ms@responding") and not machine.legal("after_600ms@confirming")
    machine.fire("local_speech_started")
    edge = machine.fire("after_600ms@confirming")
    assert edge is not None and edge.reason == "confirmed" and machine.state == "interrupted"
    with pytest.raises(MachineError):
        machine.fire("after_600ms@confirming")


def test_snapshot_and_restore_put_back_the_state_and_history() -> None:
    machine = _machine(playing=True)
    machine.fire("audio_started")
    machine.fire("local_speech_started")
    snap = machine.snapshot()
    machine.fire("speech_started")
    machine.restore(snap)
    assert machine.state == "confirming" and machine.history["responding"] == "speaking"


def test_extend_replaces_states_and_drops_edges_it_overrides() -> None:
    table = DEFAULT_TABLE.extend(
        [State("thinking", parent="responding")],
        [Transition("response_created", "listening", "thinking")],
        replace=[State("responding", True, "generating or playing", initial="thinking")],
    )
    assert table.state("responding").initial == "thinking" and table.entry("responding") == \
        "thinking"
    assert not any(e.trigger == "response_created" and e.source == "listening"
                   and e.dest == "responding" for e in table.edges())
    guarded = DEFAULT_TABLE.extend([], [Transition("start", "idle", "listening",
                                                   conditions=("connected", "paused"))])
    assert len([e for e in guarded.transitions if e.trigger == "start"
                and e.source == "idle"]) == 3, "the defaults stay as fallbacks"


@pytest.mark.parametrize(
    ("states", "transitions", "triggers", "problem"),
    [
        ([State("x", parent="nowhere")], [], [], "unknown parent 'nowhere'"),
        ([State("x", parent="idle")], [], [], "'idle' cannot have sub-states"),
        ([State("x", initial="listening")], [], [], "initial 'listening' is not one of"),
        ([State("a.b")], [], [], "without '.'"),
        ([State("x", user_speech="mute")], [], [], "user_speech 'mute'"),  # type: ignore[arg-type]
        ([], [Transition("go", "listening", "idle")], [], "unknown trigger 'go'"),
        ([], [Transition("go", "listening", "idle")], ["go", "stop"], "'stop' cannot be"),
        ([], [Transition("after_5ms@idle", "idle", None, after_ms=6)], [], "write it with"),
        ([], [after(0, "idle", None)], [], "more than 0 ms"),
        ([], [Transition("start", "idle", "listening", history=True)], [], "history edge"),
    ],
)
def test_structural_problems_are_refused_one_line_each(
    states: list[State], transitions: list[Transition], triggers: list[str], problem: str
) -> None:
    with pytest.raises(TableProblems, match=problem) as caught:
        DEFAULT_TABLE.extend(states, transitions, triggers=triggers)
    assert all("\n" not in p for p in caught.value.problems)


def test_every_problem_is_reported_not_only_the_first() -> None:
    with pytest.raises(TableProblems) as caught:
        StateTable((State("idle"), State("idle", parent="ghost")),
                   (Transition("nope", "idle", "void", conditions=("sunny",)),))
    assert len(caught.value.problems) >= 5
