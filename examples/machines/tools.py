"""A ``tool_running`` sub-state, driven by the program's own events, with a timeout.

This is an example of a machine driven by a program's own events, not how bargein runs
tools: a session given ``tools=`` runs the model's calls itself, and the default table's
``running_tools`` state (``bargein.core.tool_calls``) is where it waits for them. Use this
pattern for work of the program's own that the machine should know about.

The program tells the machine what its tools do with its own events (``UserEvent``
subclasses carrying the call's data): ``ToolCall`` when the model asks for a tool,
``ToolResult`` when the tool has answered. ``tool_running`` is a child of ``responding``:
it inherits its barge-in edges (a user who speaks during a call interrupts, and the
program's observer decides what becomes of the call), and it keeps still on the end of the
call's response, since the answer is still to come. A result asks for the follow-up
response (an edge action); a call that takes longer than ``TOOL_TIMEOUT_MS`` gives up. A
result that comes after a barge-in or a timeout is legal and changes nothing::

    bargein check --machine examples.machines.tools:TOOLS
"""

from __future__ import annotations

from dataclasses import dataclass

from bargein.core.actions import ActionContext
from bargein.core.commands import Command, CreateResponse
from bargein.core.events import UserEvent
from bargein.states import DEFAULT_TABLE, State, Transition, after

TOOL_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class ToolCall(UserEvent):
    """The model called a tool (its arguments are complete)."""

    call_id: str
    name: str
    arguments: str = "{}"
    trigger = "tool_call"


@dataclass(frozen=True)
class ToolResult(UserEvent):
    """The tool answered; the program has given the model its output."""

    call_id: str
    output: str
    trigger = "tool_result"


def ask_follow_up(ctx: ActionContext) -> list[Command]:
    """The result is in: ask the model to carry on with it."""
    return [CreateResponse()]


TOOLS = DEFAULT_TABLE.extend(
    states=[
        State("tool_running", parent="responding",
              description="a tool call is running; the answer waits for its result"),
    ],
    transitions=[
        Transition("tool_call", "responding", "tool_running", reason="the model called a tool"),
        Transition("response_done", "tool_running", None),
        Transition("playback_finished", "tool_running", None),
        Transition("tool_result", "tool_running", "responding", actions=(ask_follow_up,),
                   reason="result in: follow-up asked"),
        after(TOOL_TIMEOUT_MS, "tool_running", "listening", reason="the tool took too long"),
        Transition("tool_result", "responding", None, reason="a late result: dropped"),
        Transition("tool_result", "listening", None, reason="a late result: dropped"),
        Transition("tool_result", "interrupted", None, reason="a late result: dropped"),
    ],
    triggers=["tool_call", "tool_result"],
    name="tools",
)
"""``responding -> tool_running`` on a call, back to ``responding`` (and a follow-up) on its
result, ``listening`` after ``TOOL_TIMEOUT_MS`` without one."""
