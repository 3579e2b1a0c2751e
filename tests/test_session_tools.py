"""Tools over the simulator: the model calls a registered function, bargein runs it, sends
its output for that call id and asks for the follow-up, which speaks the output; and a
barge-in over the reply that made a call cancels it, the server's conversation getting, right
after the call, an output saying so (the program's output never sent), and no follow-up."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bargein.adapters.session_config import SessionConfig
from bargein.core import events as e
from bargein.core.tool_calls import CANCELLED_OUTPUT, NOT_RUN_OUTPUT
from bargein.session import Transcript
from bargein.sim import Faults, Reply, ToolCall
from bargein.sim.record import ConnectionRecord
from bargein.sim.server import Simulator
from bargein.states import DEFAULT_TABLE
from bargein.tools import tool, tools_from
from examples import tools as examples_tools
from tests.support.live import live
from tests.support.sim_support import check_client_events, serving, silence

pytestmark = pytest.mark.e2e


def record_of(sim: Simulator) -> ConnectionRecord:
    return sim.records[0]


def items_in_order(record: ConnectionRecord) -> list[dict[str, Any]]:
    """The server's conversation, as its ``conversation.item.added`` events placed it (each
    after its ``previous_item_id``; none: first)."""
    order: list[dict[str, Any]] = []
    for added in record.server_events("conversation.item.added"):
        ids = [item["id"] for item in order]
        after = added["previous_item_id"]
        order.insert(ids.index(after) + 1 if after is not None else 0, added["item"])
    return order


def answered_after_its_call(record: ConnectionRecord, output: str) -> None:
    """The client answered the one call with ``output``, placed right after the call's item,
    and asked for no follow-up; the server placed it there."""
    (call,) = [x["item"] for x in record.server_events("response.output_item.done")
               if x["item"]["type"] == "function_call"]
    (sent,) = record.client_events("conversation.item.create")
    assert sent["item"] == {"type": "function_call_output", "call_id": call["call_id"],
                            "output": output}
    assert sent["previous_item_id"] == call["id"]
    order = [(x["type"], x.get("call_id")) for x in items_in_order(record)]
    at = order.index(("function_call", call["call_id"]))
    assert order[at + 1] == ("function_call_output", call["call_id"])
    assert len(record.client_events("response.create")) == 1, "no follow-up"


async def test_a_call_runs_and_the_follow_up_speaks_its_output() -> None:
    asked: list[str] = []

    def forecast(city: str) -> str:
        """Tomorrow's weather in a city."""
        asked.append(city)
        return "sunny"

    script = (ToolCall("forecast", {"city": "Oslo"}, "Tomorrow it is {output}."),)
    async with serving(script=script, speed=4.0) as sim, \
            live(sim, DEFAULT_TABLE, silence(20000), SessionConfig(turn_detection=None),
                 tools=[tool(forecast)]) as run:
        await run.reach("idle", "listening")
        run.session.handle(e.RequestResponse())
        await run.until(lambda: [f.status for f in run.session.figures.values()]
                        == ["completed", "completed"])
        record = sim.records[0]
    assert asked == ["Oslo"]
    (update,) = record.client_events("session.update")
    assert [t["name"] for t in update["session"]["tools"]] == ["forecast"]
    (call,) = [x["item"] for x in record.server_events("response.output_item.done")
               if x["item"]["type"] == "function_call"]
    (output,) = [x["item"] for x in record.client_events("conversation.item.create")]
    assert output == {"type": "function_call_output", "call_id": call["call_id"],
                      "output": "sunny"}
    assert len(record.client_events("response.create")) == 2  # the turn's, the follow-up
    said = [o.text for o in run.seen if isinstance(o, Transcript) and o.final]
    assert said == ["Tomorrow it is sunny."]
    assert not record.server_events("error")
    check_client_events(sim, "ga")


async def test_a_barge_in_cancels_a_running_call_and_answers_it_cancelled_after_its_item(
) -> None:
    """The call comes before the reply's words, so the output placed after the call sits
    before them: inserted, not appended."""
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def book(seat: str) -> str:
        """Book a seat."""
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "booked"

    # the call comes first, then the reply speaks on while it runs
    script = (Reply((ToolCall("book", {"seat": "12A"}),
                     "Let me book that for you, one moment while I check the train.")),)
    async with serving(script=script, speed=1.0) as sim, \
            live(sim, DEFAULT_TABLE, silence(30000), SessionConfig(turn_detection=None),
                 tools=[tool(book)]) as run:
        await run.reach("idle", "listening")
        run.session.handle(e.RequestResponse())
        await asyncio.wait_for(started.wait(), 60)
        await run.until(lambda: max(run.session.sink.heard_ms().values(), default=0) >= 300)
        run.session.handle(e.UserInterrupt())  # over the reply, while the call runs
        await asyncio.wait_for(cancelled.wait(), 60)
        await run.until(lambda: bool(run.interrupted()))
        record = sim.records[0]
        await run.until(lambda: any(x["item"]["type"] == "function_call_output" for x in
                                    record.server_events("conversation.item.added")))
    answered_after_its_call(record, CANCELLED_OUTPUT)
    assert [x["type"] for x in items_in_order(record)] == [
        "function_call", "function_call_output", "message"]
    assert run.interrupted()[0].settlements[0].action == "truncate"
    assert not record.server_events("error")
    check_client_events(sim, "ga")


async def test_a_call_that_completes_after_its_reply_was_cut_never_runs() -> None:
    """A distant server (its cancel takes effect 8 s late) finishes the reply, and the
    function call in it, after the user barged in: the call is of a cut reply, and never
    runs (``examples.tools`` records every call); the whole call the server keeps is
    answered, right after it, that it did not run."""
    examples_tools.CALLS.clear()
    script = (Reply(("One moment, please.", ToolCall("departure", {"city": "York"}))),)
    async with serving(script=script, speed=2.0, faults=Faults(cancel_delay_ms=8000)) as sim, \
            live(sim, DEFAULT_TABLE, silence(30000), SessionConfig(turn_detection=None),
                 tools=tools_from(examples_tools.TOOLS)) as run:
        await run.reach("idle", "listening")
        run.session.handle(e.RequestResponse())
        await run.until(lambda: max(run.session.sink.heard_ms().values(), default=0) >= 300)
        run.session.handle(e.UserInterrupt())
        # the refused cancel comes after the whole reply: once the client has it, it has
        # had the call too
        await run.until(lambda: run.session.conversation.stats.benign_errors >= 1)
        record = sim.records[0]
        await run.until(lambda: any(x["item"]["type"] == "function_call_output" for x in
                                    record.server_events("conversation.item.added")))
    (done,) = record.server_events("response.done")
    assert done["response"]["status"] == "completed"  # the server did finish the call...
    assert [x["name"] for x in record.server_events("response.function_call_arguments.done")
            ] == ["departure"]
    assert examples_tools.CALLS == []  # ...and it never ran
    answered_after_its_call(record, NOT_RUN_OUTPUT)
    (error,) = record.server_events("error")
    assert error["error"]["code"] == "response_cancel_not_active"  # provoked: the late cancel


async def test_a_held_booking_is_given_to_the_model_after_it_answered_the_interruption(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``book_seat`` (hold) still runs when the user interrupts; its output is not sent
    while the user's turn and the reply to it go on, then goes with a follow-up."""
    examples_tools.CALLS.clear()
    monkeypatch.setattr(examples_tools, "BOOKING_S", 1.5)
    script = (Reply(("One moment.", ToolCall("book_seat", {"train": "6:30 to York"},
                                             "Done: {output}."))),
              "Of course, a window seat.")
    async with serving(script=script, speed=4.0) as sim, \
            live(sim, DEFAULT_TABLE, silence(60000), SessionConfig(turn_detection=None),
                 tools=tools_from(examples_tools.TOOLS)) as run:
        await run.reach("idle", "listening")
        run.session.handle(e.RequestResponse())
        await run.until(lambda: bool(examples_tools.CALLS))
        run.session.handle(e.UserInterrupt())  # over the reply, or over the running call
        await run.until(lambda: bool(run.interrupted()))
        run.session.handle(e.RequestResponse())  # the user's turn: answered first
        await run.until(lambda: len(record_of(sim).client_events("response.create")) == 3)
        await run.until(lambda: [f.status for f in run.session.figures.values()][-1:]
                        == ["completed"] and len(run.session.figures) == 3)
        record = sim.records[0]
    creates = [i for i, ev in enumerate(record) if ev.type == "response.create"]
    (output,) = [(i, ev) for i, ev in enumerate(record) if ev.type == "conversation.item.create"]
    assert creates[1] < output[0] < creates[2], "held past the reply to the user"
    said = [o.text for o in run.seen if isinstance(o, Transcript) and o.final]
    assert said[-2:] == ["Of course, a window seat.",
                         "Done: seat window on the 6:30 to York is booked."]
    assert examples_tools.CALLS == [("book_seat", {"train": "6:30 to York", "seat": "window"})]
    assert not record.server_events("error")
    check_client_events(sim, "ga")
