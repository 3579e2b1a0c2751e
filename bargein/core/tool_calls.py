"""Tool calls in the core: which call runs, which output is sent, when the follow-up reply is
asked for, and what a barge-in does to a call (the program's side: ``bargein.tools``).

The rules, each kept here:

- A call runs only when it is whole (its item ``completed``) and its reply was not cut off,
  refused during a pause, or lost with its connection: a call whose reply was interrupted
  before its arguments were done never runs.
- A program's output is sent only for an open call: one that runs and was not cancelled.
- Every whole call the server keeps gets exactly one output, so that no reply sees a call
  that never answered: the program's, or one saying the call did not run to its end. A
  call cancelled by a barge-in (``cancel`` policy) or a pause gets ``CANCELLED_OUTPUT``; a
  whole call whose reply was cut off, which never ran, gets ``NOT_RUN_OUTPUT``. Such an
  output is inserted right after the call's item (the user's new words may already follow
  it), and no follow-up reply is asked for: the user has the floor. A call whose arguments
  never ended gets nothing (the server's item is incomplete), nor does a call ended by a
  lost connection (the server session is gone).
- Every call ends: its output is sent, or it is cancelled (a barge-in under the ``cancel``
  policy, a pause, the connection lost), and each cancellation is logged with its reason;
  an output that comes for a cancelled call is dropped, and logged. A call announced again
  after it ended (one of the last ``ENDED_LIMIT``) neither runs again nor gets a second
  output.
- The follow-up reply is asked for once per reply that called tools, when that reply is
  done and every call it made has its output; not for calls a barge-in let finish
  (``finish`` policy): the user is speaking, and the reply to them will see the outputs.
- A call a barge-in caught under the ``hold`` policy runs to its end, and its output is
  held: not sent while the user has the floor, nor while the reply to them is generated or
  plays, so that reply answers the user, not the tool. Once a later reply is done and the
  conversation is at rest (``listening``), the held outputs are sent and one follow-up is
  asked for, so the model takes up the call's result. The connection lost drops them
  (logged): the new server session never knew the call.
- ``running()``, a call running whose output the model awaits (a follow-up is owed), is the
  table's ``tools_running`` condition: the default table rests in ``running_tools`` while it
  holds after the reply was done and played, and leaves on ``tools_done``.
- The user speaking while a call runs (the server's ``speech_started``, the program's
  ``UserInterrupt``) is a barge-in for the call, even with nothing playing: a new turn has
  begun, and a follow-up then would talk over it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from bargein.core import commands as c
from bargein.core import events as e
from bargein.core.recent import RecentIds
from bargein.logs import get_logger

log = get_logger(__name__)

CANCELLED_OUTPUT = json.dumps(
    {"cancelled": "the call was interrupted before it finished; it has no result"})
"""The output of a call a barge-in (or a pause) cancelled."""
NOT_RUN_OUTPUT = json.dumps(
    {"not_run": "the reply that made the call was interrupted; the call was not run"})
"""The output of a whole call whose reply was cut off: it never ran."""
ENDED_LIMIT = 64
"""How many ended call ids are kept, to ignore a call announced again after it ended."""


@dataclass(slots=True)
class _OpenCall:
    response_id: str
    item_id: str
    name: str
    policy: str
    follow_up: bool = True
    held: bool = False
    """A barge-in caught it under ``hold``: its output waits (see the module's note)."""
    replied: bool = False
    """...and a later reply is done since: the output may go once the conversation rests."""
    output: str | None = None


class ToolCalls:
    """The open calls and the replies owed a follow-up (see the module's note)."""

    __slots__ = ("_answered", "_ended", "_open")

    def __init__(self) -> None:
        self._open: dict[str, _OpenCall] = {}
        self._answered: set[str] = set()
        """Replies with an output sent for one of their calls: a follow-up is due once they
        are done and none of their calls is open."""
        self._ended = RecentIds(ENDED_LIMIT)
        """The last ``ENDED_LIMIT`` calls that ended."""

    def call(self, ev: e.ToolCall, *, cut: bool, policies: Mapping[str, str],
             event_id: Callable[[], str]) -> list[c.Command]:
        """The model called a tool: run it, unless the call or its reply is not whole (a
        whole call of a cut reply is answered ``NOT_RUN_OUTPUT``)."""
        if ev.call_id in self._open or ev.call_id in self._ended:
            return []  # the same call announced twice: it runs, or is answered, once
        if not ev.complete or cut:
            log.info("tool_call_not_run", tool=ev.name, call_id=ev.call_id,
                     reason="its reply was cut off" if ev.complete else
                     "its arguments never ended")
            if not ev.complete:
                return []
            self._ended.add(ev.call_id)
            return [c.SendToolOutput(ev.call_id, NOT_RUN_OUTPUT, event_id(), ev.item_id)]
        self._open[ev.call_id] = _OpenCall(ev.response_id, ev.item_id, ev.name,
                                           policies.get(ev.name, "cancel"))
        log.info("tool_call", tool=ev.name, call_id=ev.call_id)
        return [c.RunTool(ev.call_id, ev.name, ev.arguments)]

    def result(self, ev: e.ToolResult, event_id: Callable[[], str],
               generating: Collection[str]) -> list[c.Command]:
        """A call's output: sent if the call is open; the follow-up if it is now due."""
        call = self._open.get(ev.call_id)
        if call is None or call.output is not None:
            log.info("tool_result_dropped", call_id=ev.call_id,
                     reason="the call was cancelled" if call is None else "a second result")
            return []
        if call.held:
            call.output = ev.output
            log.info("tool_result_held", tool=call.name, call_id=ev.call_id)
            return []
        del self._open[ev.call_id]
        self._ended.add(ev.call_id)
        commands: list[c.Command] = [c.SendToolOutput(ev.call_id, ev.output, event_id())]
        if call.follow_up:
            self._answered.add(call.response_id)
        if call.response_id not in generating:
            commands += self.response_done(call.response_id, event_id)
        return commands

    def response_done(self, response_id: str, event_id: Callable[[], str]) -> list[c.Command]:
        """The reply ended: its follow-up, if every call it made has its output; a held
        call of an earlier reply now has a reply to the user after it."""
        for call in self._open.values():
            if call.held and call.response_id != response_id:
                call.replied = True
        if response_id not in self._answered or any(
                call.response_id == response_id for call in self._open.values()):
            return []
        self._answered.discard(response_id)
        return [c.CreateResponse(event_id())]

    def interrupted(self, responses: Collection[str], reason: str,
                    event_id: Callable[[], str]) -> list[c.Command]:
        """Replies were cut off: their calls are cancelled (and answered
        ``CANCELLED_OUTPUT``), finish without a follow-up, or have their output held
        (``hold``: held again by a second barge-in)."""
        commands: list[c.Command] = []
        for call_id, call in list(self._open.items()):
            if call.response_id not in responses:
                continue
            if call.policy in ("finish", "hold"):
                call.follow_up = False
                call.held = call.policy == "hold"
                call.replied = False
                continue
            del self._open[call_id]
            self._ended.add(call_id)
            log.info("tool_call_cancelled", tool=call.name, call_id=call_id, reason=reason)
            commands += [c.CancelTool(call_id),
                         c.SendToolOutput(call_id, CANCELLED_OUTPUT, event_id(), call.item_id)]
        self._answered -= set(responses)
        return commands

    def open_responses(self) -> set[str]:
        """The replies whose calls still run, or hold an output."""
        return {call.response_id for call in self._open.values()}

    def running(self) -> bool:
        """A call runs whose output the model awaits (the ``tools_running`` condition)."""
        return any(call.follow_up and call.output is None for call in self._open.values())

    def release(self, event_id: Callable[[], str]) -> list[c.Command]:
        """The conversation is at rest: send the held outputs that have a reply to the user
        before them, and ask for one follow-up."""
        ready = [(call_id, call) for call_id, call in self._open.items()
                 if call.replied and call.output is not None]
        if not ready:
            return []
        commands: list[c.Command] = []
        for call_id, call in ready:
            del self._open[call_id]
            self._ended.add(call_id)
            log.info("tool_result_released", tool=call.name, call_id=call_id)
            commands.append(c.SendToolOutput(call_id, call.output or "", event_id()))
        return [*commands, c.CreateResponse(event_id())]

    def abandon(self) -> list[c.Command]:
        """The server session is gone, and with it every call id: all calls end."""
        commands: list[c.Command] = []
        for call_id, call in self._open.items():
            if call.output is not None:
                log.warning("tool_result_dropped", tool=call.name, call_id=call_id,
                            reason="held, and the connection was lost")
                continue
            log.warning("tool_call_cancelled", tool=call.name, call_id=call_id,
                        reason="the connection was lost")
            commands.append(c.CancelTool(call_id))
        self._open.clear()
        self._answered.clear()
        self._ended.clear()  # the next server session's call ids are its own
        return commands
