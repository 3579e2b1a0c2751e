"""Scripted tool calls: arguments streamed, the client's output awaited, a follow-up reply."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bargein.errors import SimError
from bargein.sim import DEFAULT_SCRIPT, Reply, ToolCall, parse_script
from bargein.sim.script import Call, Say, example_value, plan
from tests.support.sim_support import Client, serving

pytestmark = pytest.mark.e2e

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["city", "unit"],
    },
}


async def with_tools(sim_url: str, *tools: dict[str, Any], **session: Any) -> Client:
    client = await Client.open(sim_url)
    await client.until("session.created")
    await client.send(
        {"type": "session.update",
         "session": {"type": "realtime", "tools": list(tools), **session}}
    )
    await client.until("session.updated")
    return client


async def test_a_scripted_call_streams_its_arguments_and_waits_for_the_output() -> None:
    script = (ToolCall("get_weather", {"city": "Paris", "unit": "c"},
                       answer="In Paris it is {output}."),)
    async with serving(script=script) as sim:
        client = await with_tools(sim.realtime_url, WEATHER)
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
        types = [e["type"] for e in events]
        assert types[:3] == ["response.created", "response.output_item.added",
                             "conversation.item.added"]
        added = events[1]["item"]
        assert (added["type"], added["name"], added["arguments"], added["status"]) == (
            "function_call", "get_weather", "", "in_progress")
        deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
        assert len(deltas) >= 2 and {d["call_id"] for d in deltas} == {added["call_id"]}
        done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        assert json.loads(done["arguments"]) == {"city": "Paris", "unit": "c"}
        assert "".join(d["delta"] for d in deltas) == done["arguments"]
        assert (done["name"], done["call_id"], done["item_id"]) == (
            "get_weather", added["call_id"], added["id"])
        response = events[-1]["response"]
        assert response["status"] == "completed"
        assert response["output"][0]["arguments"] == done["arguments"]
        assert not [t for t in types if "audio" in t or "content_part" in t]
        # the result: nothing happens until a response.create follows it
        await client.send({"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": added["call_id"], "output": "sunny, 21 C"}})
        output_added = (await client.until("conversation.item.done"))[-1]["item"]
        assert (output_added["type"], output_added["call_id"]) == (
            "function_call_output", added["call_id"])
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
        transcript = next(e for e in events
                          if e["type"] == "response.output_audio_transcript.done")
        assert transcript["transcript"] == "In Paris it is sunny, 21 C."
        assert events[-1]["response"]["status"] == "completed"


async def test_a_reply_with_speech_then_a_call_has_two_output_items() -> None:
    script = (Reply(("Let me check.", ToolCall("get_weather"))), "Anything else?")
    async with serving(script=script) as sim:
        client = await with_tools(sim.realtime_url, WEATHER)
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
        output = events[-1]["response"]["output"]
        assert [(o["type"], o.get("role")) for o in output] == [
            ("message", "assistant"), ("function_call", None)]
        assert output[0]["content"][0]["transcript"] == "Let me check."
        assert json.loads(output[1]["arguments"]) == {"city": "example", "unit": "c"}
        indexes = [e["output_index"] for e in events if e["type"] == "response.output_item.added"]
        assert indexes == [0, 1]
        # the item of index 0 is done before index 1 starts
        types = [(e["type"], e.get("output_index")) for e in events]
        assert types.index(("response.output_item.done", 0)) < types.index(
            ("response.output_item.added", 1))
        # the first item's audio can be truncated on its own
        item_id = output[0]["id"]
        await client.until("rate_limits.updated")
        await client.send({"type": "conversation.item.truncate", "item_id": item_id,
                           "content_index": 0, "audio_end_ms": 100})
        assert (await client.until("conversation.item.truncated"))[-1]["item_id"] == item_id


async def test_a_call_cancelled_before_its_arguments_are_done_is_incomplete() -> None:
    long_arguments = {"city": "Llanfairpwllgwyngyll " * 20, "unit": "c"}
    script = (ToolCall("get_weather", long_arguments),)
    async with serving(script=script, speed=1.0) as sim:
        client = await with_tools(sim.realtime_url, WEATHER)
        await client.send({"type": "response.create"})
        await client.until("response.function_call_arguments.delta")
        await client.send({"type": "response.cancel"})
        events = await client.until("response.done")
        assert "response.function_call_arguments.done" not in [e["type"] for e in events]
        response = events[-1]["response"]
        assert response["status"] == "cancelled"
        assert response["output"][0]["status"] == "incomplete"
        # its output is never asked for: the next reply plays the script, not an answer
        await client.send({"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": response["output"][0]["call_id"],
            "output": "late"}})
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
        assert events[-1]["response"]["output"][0]["type"] == "function_call"


async def test_a_call_of_an_undeclared_tool_is_skipped() -> None:
    script = (ToolCall("launch_rocket"), "Just words.")
    async with serving(script=script) as sim:
        client = await with_tools(sim.realtime_url, WEATHER)
        await client.send({"type": "response.create"})
        output = (await client.until("response.done"))[-1]["response"]["output"]
        assert [o["type"] for o in output] == ["message"]
        assert output[0]["content"][0]["transcript"] == "Just words."


async def test_tool_choice_none_calls_nothing() -> None:
    script = (ToolCall(), "No tools today.")
    async with serving(script=script) as sim:
        client = await with_tools(sim.realtime_url, WEATHER, tool_choice="none")
        await client.send({"type": "response.create"})
        output = (await client.until("response.done"))[-1]["response"]["output"]
        assert output[0]["content"][0]["transcript"] == "No tools today."


async def test_the_default_script_calls_a_declared_tool_and_answers_with_its_output() -> None:
    async with serving(script=DEFAULT_SCRIPT) as sim:
        client = await with_tools(sim.realtime_url, WEATHER)
        for _ in range(2):
            await client.send({"type": "response.create"})
            output = (await client.until("response.done"))[-1]["response"]["output"]
        assert [o["type"] for o in output] == ["message", "function_call"]
        call_id = output[1]["call_id"]
        await client.send({"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": call_id, "output": '{"sky": "clear"}'}})
        await client.send({"type": "response.create"})
        output = (await client.until("response.done"))[-1]["response"]["output"]
        assert output[0]["content"][0]["transcript"] == (
            'Here is what I found: {"sky": "clear"}')


async def test_an_output_placed_before_the_users_newer_words_is_taken_but_not_said() -> None:
    """A call the user interrupted: its output, placed right after the call, sits before the
    user's message; the next reply answers the user, and the output is not said later."""
    script = (ToolCall("get_weather", {"city": "Paris", "unit": "c"}, answer="It is {output}."),
              "You said something.")
    async with serving(script=script) as sim:
        client = await with_tools(sim.realtime_url, WEATHER)
        await client.send({"type": "response.create"})
        (call,) = (await client.until("response.done"))[-1]["response"]["output"]
        await client.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "Never mind."}]}})
        await client.send({"type": "conversation.item.create", "previous_item_id": call["id"],
                           "item": {"type": "function_call_output", "call_id": call["call_id"],
                                    "output": '{"cancelled": "interrupted"}'}})
        added = (await client.until("conversation.item.added"))[-1]
        assert added["previous_item_id"] == call["id"]
        said = []
        for _ in range(2):
            await client.send({"type": "response.create"})
            (output,) = (await client.until("response.done"))[-1]["response"]["output"]
            said.append(output["content"][0]["transcript"] if output["type"] == "message"
                        else output["type"])
        assert said == ["You said something.", "function_call"], "the user is answered"


async def test_without_tools_the_default_script_skips_its_call() -> None:
    async with serving(script=DEFAULT_SCRIPT) as sim:
        client = await Client.open(sim.realtime_url)
        said = []
        for _ in range(4):
            await client.send({"type": "response.create"})
            output = (await client.until("response.done"))[-1]["response"]["output"]
            said.append(output[0]["content"][0]["transcript"])
        texts = [entry for entry in DEFAULT_SCRIPT if isinstance(entry, str)]
        assert said == [*texts, texts[0]]


async def test_beta_streams_the_same_call() -> None:
    script = (ToolCall("get_weather", {"city": "Oslo", "unit": "c"}, answer="Cold: {output}"),)
    async with serving(script=script) as sim:
        client = await Client.open(sim.realtime_url, {"OpenAI-Beta": "realtime=v1"})
        await client.until("session.created")
        await client.send({"type": "session.update", "session": {"tools": [WEATHER]}})
        assert (await client.until("session.updated"))[-1]["session"]["tools"] == [WEATHER]
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
        call = events[-1]["response"]["output"][0]
        assert call["type"] == "function_call"
        await client.send({"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": call["call_id"], "output": "-3 C"}})
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
        done = next(e for e in events if e["type"] == "response.audio_transcript.done")
        assert done["transcript"] == "Cold: -3 C"


# ---- the script, without sockets -------------------------------------------------------------


def test_plan_and_example_arguments() -> None:
    assert plan("Hi.", [], "auto") == [Say("Hi.")]
    assert plan(ToolCall("get_weather"), [], "auto") == []
    calls = plan(Reply(("One.", ToolCall())), [WEATHER], "auto")
    assert calls[0] == Say("One.") and isinstance(calls[1], Call)
    assert json.loads(calls[1].arguments) == {"city": "example", "unit": "c"}
    assert example_value({"type": ["integer", "null"]}) == 1
    assert example_value({"properties": {"n": {"type": "number"}, "ok": {"type": "boolean"}}}) == {
        "n": 1.0, "ok": True}


def test_parse_script() -> None:
    entries = parse_script(
        'Hello there.\n\nLet me look. | call get_weather {"city": "Rome"} => It is {output}.\n'
        "call *\n"
    )
    assert entries[0] == "Hello there."
    assert entries[1] == Reply(("Let me look.", ToolCall("get_weather", '{"city": "Rome"}',
                                                          "It is {output}.")))
    assert entries[2] == ToolCall()
    with pytest.raises(SimError, match="line 1"):
        parse_script("call f {not json}")
    with pytest.raises(SimError):
        parse_script("   \n")
