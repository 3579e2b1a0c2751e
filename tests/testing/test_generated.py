"""Generated tests: every shipped machine covered in one line each, and what they catch."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import replace

import pytest

from bargein.core import commands as c
from bargein.core.actions import ActionContext
from bargein.core.tool_calls import ToolCalls
from bargein.states import DEFAULT_TABLE, State, Transition
from bargein.testing import check_machine, explore, machine_tests
from examples.machines import CONFIRM, GREETING, THINKING, TOOLS
from examples.machines.greeting import DISCLAIMER
from examples.machines.tools import ToolCall

# The one line an extender adds, per machine:
test_default_machine = machine_tests(DEFAULT_TABLE)
test_thinking_machine = machine_tests(THINKING)
test_greeting_machine = machine_tests(GREETING)
test_disclaimer_machine = machine_tests(DISCLAIMER)
test_tools_machine = machine_tests(TOOLS, user_events={"tool_call": lambda: ToolCall("c1", "f")})
test_confirm_machine = machine_tests(CONFIRM)


def test_every_edge_is_fired_by_a_shortest_sequence() -> None:
    found = explore(DEFAULT_TABLE)
    assert not found.problems
    assert {p.edge for p in found.paths} == set(DEFAULT_TABLE.edges())
    by_goal = {p.goal: p.labels for p in found.paths}
    assert by_goal["fire idle --session_ready [not paused]--> listening"] == ("session ready",)
    assert by_goal["fire responding --speech_started--> interrupted"] == (
        "session ready", "response created", "server hears speech")


def test_history_and_timers_are_explored() -> None:
    found = explore(CONFIRM)
    goals = {p.goal: p.labels for p in found.paths}
    assert goals["fire confirming --after_600ms@confirming--> interrupted"][-1] == \
        "timer after_600ms@confirming"
    assert goals["fire confirming --local_speech_stopped--> responding"][-1] == \
        "local detector hears it end"


def test_a_state_that_cannot_get_back_is_reported_stuck_with_its_way_in() -> None:
    table = DEFAULT_TABLE.extend([State("limbo")],
                                 [Transition("speech_stopped", "listening", "limbo")],
                                 name="limbo")
    with pytest.raises(AssertionError, match=r"stuck in 'limbo': listening cannot be reached "
                                             r"without a disconnect or a stop, after: "
                                             r"session ready -> speech stops"):
        check_machine(table)


def truncate_too_far(ctx: ActionContext) -> list[c.Command]:
    return [c.TruncateItem("r1_item", 99_999)]


def test_a_broken_promise_is_reported_with_the_sequence_that_broke_it() -> None:
    table = DEFAULT_TABLE.extend([], [Transition("speech_stopped", "responding", None,
                                                 actions=(truncate_too_far,))], name="bad")
    with pytest.raises(AssertionError) as caught:
        check_machine(table)
    assert "truncate of r1_item at 99999 ms (content 0); 0 ms received, after: session ready " \
        "-> response created -> speech stops" in str(caught.value)


def test_an_edge_whose_guards_never_hold_is_reported() -> None:
    table = DEFAULT_TABLE.extend([], [Transition("speech_stopped", "idle", "listening",
                                                 conditions=("playing",))], name="never")
    found = explore(table)
    assert found.problems == ["edge idle --speech_stopped [playing]--> listening was never "
                              "fired by any sequence (its guards never held)"]


def test_a_cancelled_call_left_without_its_output_is_reported(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The old defect: a barge-in cancelled the call and sent nothing for it, so the server
    kept a call that never answered."""
    interrupted = ToolCalls.interrupted

    def unanswered(self: ToolCalls, responses: Collection[str], reason: str,
                   event_id: Callable[[], str]) -> list[c.Command]:
        return [x for x in interrupted(self, responses, reason, event_id)
                if not isinstance(x, c.SendToolOutput)]

    monkeypatch.setattr(ToolCalls, "interrupted", unanswered)
    with pytest.raises(AssertionError) as caught:
        check_machine(DEFAULT_TABLE)
    assert "cancellation outputs for calls [], but ['r1_call'] were cancelled or not run, " \
        "after: response created -> r1 calls a tool -> server hears speech" in str(caught.value)


def test_a_cancellation_output_appended_instead_of_after_its_call_is_reported(
        monkeypatch: pytest.MonkeyPatch) -> None:
    interrupted = ToolCalls.interrupted

    def appended(self: ToolCalls, responses: Collection[str], reason: str,
                 event_id: Callable[[], str]) -> list[c.Command]:
        return [replace(x, after_item_id="") if isinstance(x, c.SendToolOutput) else x
                for x in interrupted(self, responses, reason, event_id)]

    monkeypatch.setattr(ToolCalls, "interrupted", appended)
    with pytest.raises(AssertionError, match=r"output of tool call r1_call: no result, "
                                             r"cancelled, or sent twice"):
        check_machine(DEFAULT_TABLE)
