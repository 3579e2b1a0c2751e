"""Items and response parameters: typed messages, retrieve, text replies, out-of-band replies,
metadata, instructions, output limits, and the refusals upstream makes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.sim_support import Client, serving, silence, tone

pytestmark = pytest.mark.e2e

SCRIPT = ("One two three four five six seven eight nine ten.", "Eleven twelve.")


async def opened(url: str, headers: dict[str, str] | None = None) -> Client:
    client = await Client.open(url, headers)
    await client.until("session.created")
    return client


def typed(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}],
            **extra}


async def test_a_typed_message_is_answered_when_a_response_create_follows() -> None:
    async with serving(script=SCRIPT) as sim:
        client = await opened(sim.realtime_url)
        await client.send({"type": "conversation.item.create", "item": typed("What time is it?")})
        done = (await client.until("conversation.item.done"))[-1]["item"]
        assert done["content"] == [{"type": "input_text", "text": "What time is it?"}]
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
        added = next(e for e in events if e["type"] == "conversation.item.added")
        assert added["previous_item_id"] == done["id"]
        assert events[-1]["response"]["status"] == "completed"
        usage = events[-1]["response"]["usage"]
        assert usage["input_token_details"]["text_tokens"] > 0


async def test_retrieve_returns_the_item_as_the_server_holds_it() -> None:
    async with serving(script=SCRIPT) as sim:
        client = await opened(sim.realtime_url)
        await client.send({"type": "conversation.item.create", "item": typed("hi", id="msg_1")})
        await client.until("conversation.item.done")
        await client.send({"type": "conversation.item.retrieve", "item_id": "msg_1"})
        retrieved = (await client.until("conversation.item.retrieved"))[-1]["item"]
        assert (retrieved["id"], retrieved["content"][0]["text"]) == ("msg_1", "hi")
        await client.send({"type": "response.create"})
        reply = (await client.until("response.done"))[-1]["response"]["output"][0]
        await client.send({"type": "conversation.item.truncate", "item_id": reply["id"],
                           "content_index": 0, "audio_end_ms": 200})
        await client.until("conversation.item.truncated")
        await client.send({"type": "conversation.item.retrieve", "item_id": reply["id"]})
        retrieved = (await client.until("conversation.item.retrieved"))[-1]["item"]
        assert retrieved["content"] == [{"type": "output_audio", "transcript": ""}]  # dropped
        await client.send({"type": "conversation.item.retrieve", "item_id": "nope",
                           "event_id": "evt_r"})
        error = (await client.until("error"))[-1]["error"]
        assert (error["code"], error["event_id"]) == ("item_retrieve_invalid_item_id", "evt_r")


async def test_a_duplicate_item_id_is_refused() -> None:
    async with serving() as sim:
        client = await opened(sim.realtime_url)
        await client.send({"type": "conversation.item.create", "item": typed("a", id="msg_x")})
        await client.until("conversation.item.done")
        await client.send({"type": "conversation.item.create", "event_id": "evt_d",
                           "item": typed("b", id="msg_x")})
        error = await client.recv()
        assert (error["type"], error["error"]["param"], error["error"]["event_id"]) == (
            "error", "item.id", "evt_d")
        record = await sim.connection(0)
        assert len(record.server_events("conversation.item.added")) == 1


async def test_previous_item_id_places_an_item() -> None:
    async with serving() as sim:
        client = await opened(sim.realtime_url)
        for item_id in ("msg_a", "msg_b"):
            await client.send({"type": "conversation.item.create", "item": typed(item_id,
                                                                                 id=item_id)})
            await client.until("conversation.item.done")
        await client.send({"type": "conversation.item.create", "previous_item_id": "root",
                           "item": typed("first", id="msg_0")})
        added = (await client.until("conversation.item.added"))[-1]
        assert added["previous_item_id"] is None
        await client.send({"type": "conversation.item.create", "previous_item_id": "msg_a",
                           "item": typed("middle", id="msg_m")})
        assert (await client.until("conversation.item.added"))[-1]["previous_item_id"] == "msg_a"
        await client.send({"type": "conversation.item.create", "previous_item_id": "msg_zz",
                           "item": typed("lost")})
        assert (await client.until("error"))[-1]["error"]["param"] == "previous_item_id"


@pytest.mark.parametrize(
    ("item", "param"),
    [
        ({"type": "message", "role": "robot", "content": []}, "item.role"),
        ({"type": "message", "role": "user", "content": [{"type": "output_text", "text": "x"}]},
         "item.content[0].type"),
        ({"type": "function_call_output", "call_id": "c"}, "item.output"),
        ({"type": "reasoning"}, "item.type"),
        ({"type": "message", "role": "assistant",
          "content": [{"type": "output_audio", "transcript": "said"}]}, "item.content[0].text"),
        ({"type": "message", "role": "user", "content": [], "colour": "red"}, "item.colour"),
    ],
)
async def test_bad_items_are_refused(item: dict[str, Any], param: str) -> None:
    async with serving() as sim:
        client = await opened(sim.realtime_url)
        await client.send({"type": "conversation.item.create", "item": item})
        error = await client.recv()
        assert (error["type"], error["error"]["param"]) == ("error", param)


async def test_a_text_session_writes_its_replies() -> None:
    async with serving(script=SCRIPT) as sim:
        client = await opened(sim.realtime_url)
        await client.send({"type": "session.update",
                           "session": {"type": "realtime", "output_modalities": ["text"]}})
        session = (await client.until("session.updated"))[-1]["session"]
        assert session["output_modalities"] == ["text"]
        await client.append(silence(300) + tone(600) + silence(800))
        events = await client.until("response.done")
        types = [e["type"] for e in events]
        assert not [t for t in types if "audio." in t or "audio_transcript" in t]
        deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
        assert len(deltas) == len(SCRIPT[0].split(" ")) and "".join(deltas) == SCRIPT[0]
        done = next(e for e in events if e["type"] == "response.output_text.done")
        assert done["text"] == SCRIPT[0]
        part = next(e for e in events if e["type"] == "response.content_part.done")["part"]
        assert part == {"type": "text", "text": SCRIPT[0]}
        response = events[-1]["response"]
        assert response["output_modalities"] == ["text"]
        assert response["output"][0]["content"] == [{"type": "output_text", "text": SCRIPT[0]}]
        assert response["usage"]["output_token_details"]["audio_tokens"] == 0


async def test_response_create_parameters_are_honoured() -> None:
    async with serving(script=SCRIPT) as sim:
        client = await opened(sim.realtime_url)
        metadata = {"client_event_id": "reply-7", "topic": "greeting"}
        await client.send({"type": "response.create", "response": {
            "metadata": metadata, "output_modalities": ["text"],
            "instructions": "Greet the user.\nSay: Welcome back!"}})
        created = (await client.until("response.created"))[-1]["response"]
        assert created["metadata"] == metadata
        events = await client.until("response.done")
        response = events[-1]["response"]
        assert response["metadata"] == metadata
        assert response["output"][0]["content"] == [{"type": "output_text",
                                                     "text": "Welcome back!"}]
        # the pinned reply did not take a script line, nor change the session
        await client.send({"type": "response.create", "response": {
            "audio": {"output": {"format": {"type": "audio/pcmu"}}}}})
        response = (await client.until("response.done"))[-1]["response"]
        assert response["metadata"] is None
        assert response["output_modalities"] == ["audio"]
        assert response["audio"]["output"]["format"] == {"type": "audio/pcmu"}
        assert response["output"][0]["content"][0]["transcript"] == SCRIPT[0]
        await client.send({"type": "response.create", "event_id": "evt_bad",
                           "response": {"conversation": "mine"}})
        error = (await client.until("error"))[-1]["error"]
        assert (error["param"], error["event_id"]) == ("response.conversation", "evt_bad")


async def test_an_out_of_band_reply_stays_out_of_the_conversation() -> None:
    async with serving(script=SCRIPT, speed=1.0) as sim:
        client = await opened(sim.realtime_url)
        await client.send({"type": "response.create"})
        main = (await client.until("response.created"))[-1]["response"]["id"]
        await client.send({"type": "response.create", "response": {
            "conversation": "none", "output_modalities": ["text"], "metadata": {"kind": "side"},
            "input": [typed("Summarise.")]}})
        side = (await client.until("response.created"))[-1]["response"]
        assert side["conversation_id"] is None and side["id"] != main
        events = await client.until("response.done")
        done = events[-1]["response"]
        assert (done["id"], done["metadata"]) == (side["id"], {"kind": "side"})
        side_item = done["output"][0]["id"]
        assert side_item not in [e["item"]["id"] for e in events
                                 if e["type"].startswith("conversation.item")]
        # the conversation's reply went on beside it, and the side item is not in it
        await client.send({"type": "conversation.item.retrieve", "item_id": side_item})
        assert (await client.until("error"))[-1]["error"]["code"] == "item_retrieve_invalid_item_id"
        await client.send({"type": "response.cancel", "response_id": main})
        done = (await client.until("response.done"))[-1]["response"]
        assert (done["id"], done["status"]) == (main, "cancelled")


async def test_max_output_tokens_ends_a_reply_incomplete() -> None:
    async with serving(script=SCRIPT) as sim:
        client = await opened(sim.realtime_url)
        await client.send({"type": "response.create", "response": {"max_output_tokens": 20}})
        response = (await client.until("response.done"))[-1]["response"]
        assert (response["status"], response["status_details"]) == (
            "incomplete", {"type": "incomplete", "reason": "max_output_tokens"})
        assert response["output"][0]["status"] == "incomplete"
        assert response["usage"]["output_tokens"] >= 20
        assert response["max_output_tokens"] == 20


async def test_a_second_reply_of_the_conversation_is_refused_while_one_runs() -> None:
    async with serving(script=SCRIPT, speed=1.0) as sim:
        client = await opened(sim.realtime_url)
        await client.send({"type": "response.create"})
        await client.until("response.created")
        await client.send({"type": "response.create", "event_id": "evt_2"})
        error = (await client.until("error"))[-1]["error"]
        assert (error["code"], error["event_id"]) == (
            "conversation_already_has_active_response", "evt_2")


async def test_beta_text_replies_and_typed_messages() -> None:
    async with serving(script=SCRIPT) as sim:
        client = await opened(sim.realtime_url, {"OpenAI-Beta": "realtime=v1"})
        await client.send({"type": "conversation.item.create", "item": typed("Hello?")})
        await client.until("conversation.item.created")
        await client.send({"type": "response.create", "response": {"modalities": ["text"],
                                                                   "metadata": {"n": "1"}}})
        events = await client.until("response.done")
        done = next(e for e in events if e["type"] == "response.text.done")
        assert done["text"] == SCRIPT[0]
        response = events[-1]["response"]
        assert (response["modalities"], response["metadata"]) == (["text"], {"n": "1"})
        assert response["output"][0]["content"] == [{"type": "text", "text": SCRIPT[0]}]
