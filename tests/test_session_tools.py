"""Tools over the simulator: the model calls a registered function, bargein runs it, sends
its output for that call id and asks for the follow-up, which speaks the output; and a
barge-in over the reply that made a call cancels it, its output never sent."""

from __future__ import annotations

import asyncio

import pytest

from bargein.adapters.session_config import SessionConfig
from bargein.core import events as e
from bargein.session import Transcript
from bargein.sim import Reply, ToolCall
from bargein.states import DEFAULT_TABLE
from bargein.tools import tool
from tests.support.live import live
from tests.support.sim_support import check_client_events, serving, silence

pytestmark = pytest.mark.e2e


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


async def test_a_barge_in_cancels_a_running_call_and_no_output_is_sent() -> None:
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
    assert not record.client_events("conversation.item.create"), "no output for it"
    assert len(record.client_events("response.create")) == 1, "no follow-up"
    assert run.interrupted()[0].settlements[0].action == "truncate"
    assert not record.server_events("error")
