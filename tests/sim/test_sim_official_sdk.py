"""The official ``openai`` SDK talks to the simulator: a turn, a spoken reply, a barge-in with
its truncate, a tool call to its answer, a typed message, a text reply, and no ``error`` the
test did not provoke."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from openai import AsyncOpenAI
from openai.types.realtime import RealtimeFunctionToolParam
from websockets.exceptions import InvalidStatus

from bargein.sim import ToolCall
from tests.support.sim_support import serving, silence, tone

SCRIPT = (
    "This is a long enough reply for the user to interrupt it halfway through, "
    "while the assistant keeps talking about nothing in particular.",
)

pytestmark = pytest.mark.e2e


async def test_turn_reply_barge_in_and_truncate_through_the_sdk() -> None:
    async with serving(script=SCRIPT, speed=1.0) as sim:
        client = AsyncOpenAI(api_key="sk-sim", websocket_base_url=sim.url)
        async with client.realtime.connect(model="gpt-realtime") as conn:
            created = await conn.recv()
            assert created.type == "session.created"
            await conn.session.update(
                session={
                    "type": "realtime",
                    "audio": {
                        "input": {
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 300}
                        }
                    },
                }
            )
            assert (await conn.recv()).type == "session.updated"

            async def speak(audio: bytes) -> None:
                for start in range(0, len(audio), 960):
                    frame = base64.b64encode(audio[start : start + 960]).decode()
                    await conn.input_audio_buffer.append(audio=frame)

            await speak(silence(200) + tone(600) + silence(400))
            heard = 0
            item_id = None
            seen: list[str] = []
            async for event in conn:
                seen.append(event.type)
                if event.type == "response.output_audio.delta":
                    heard += len(base64.b64decode(event.delta)) // 48
                    item_id = event.item_id
                    if heard >= 300:
                        break
            assert item_id is not None
            await speak(tone(200))
            statuses = []
            async for event in conn:
                seen.append(event.type)
                if event.type == "response.done":
                    statuses.append((event.response.status, event.response.status_details))
                    break
            status, details = statuses[0]
            assert status == "cancelled" and details is not None
            assert details.reason == "turn_detected"
            await conn.conversation.item.truncate(
                item_id=item_id, content_index=0, audio_end_ms=heard - 100
            )
            truncated = await conn.recv()
            while truncated.type != "conversation.item.truncated":
                seen.append(truncated.type)
                truncated = await conn.recv()
            assert truncated.audio_end_ms == heard - 100
            assert "error" not in seen
        record = await sim.connection(0)
        truncate = record.client_events("conversation.item.truncate")
        assert [(t["item_id"], t["audio_end_ms"]) for t in truncate] == [(item_id, heard - 100)]
        assert record.path == "/v1/realtime"


async def test_a_rejected_key_fails_the_sdk_connect() -> None:
    async with serving(reject_api_keys=frozenset({"sk-revoked"})) as sim:
        client = AsyncOpenAI(api_key="sk-revoked", websocket_base_url=sim.url)
        with pytest.raises(InvalidStatus) as refused:
            async with client.realtime.connect(model="gpt-realtime") as conn:
                await conn.recv()
        assert refused.value.response.status_code == 401
        assert sim.records == []


async def test_tool_call_text_reply_typed_message_and_no_unprovoked_error_through_the_sdk() -> None:
    script = (
        ToolCall("lookup", {"query": "tides"}, answer="The tide table says {output}."),
        "A written answer.",
    )
    tool: RealtimeFunctionToolParam = {
        "type": "function", "name": "lookup", "description": "Look something up.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                       "required": ["query"]},
    }
    async with serving(script=script) as sim:
        client = AsyncOpenAI(api_key="sk-sim", websocket_base_url=sim.url)
        async with client.realtime.connect(model="gpt-realtime") as conn:
            seen: list[str] = []

            async def until(kind: str) -> Any:
                async for event in conn:
                    seen.append(event.type)
                    if event.type == kind:
                        return event
                raise AssertionError(f"the connection ended before {kind}")

            await until("session.created")
            await conn.session.update(session={
                "type": "realtime", "tools": [tool], "tool_choice": "auto",
                "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}}})
            updated = await until("session.updated")
            assert updated.session.tools is not None and len(updated.session.tools) == 1
            # a typed message, then a call, its output and the answer
            await conn.conversation.item.create(item={
                "type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "When is high tide?"}]})
            await conn.response.create(response={"metadata": {"turn": "1"}})
            done = await until("response.done")
            assert done.response.metadata == {"turn": "1"}
            assert done.response.usage is not None and done.response.usage.total_tokens
            call = done.response.output[0]
            assert call.type == "function_call" and call.name == "lookup"
            assert json.loads(call.arguments) == {"query": "tides"}
            await until("rate_limits.updated")
            await conn.conversation.item.create(item={
                "type": "function_call_output", "call_id": call.call_id, "output": "6:42"})
            await conn.response.create()
            transcript = await until("response.output_audio_transcript.done")
            assert transcript.transcript == "The tide table says 6:42."
            await until("response.done")
            # a text reply
            written = len(seen)
            await conn.response.create(response={"output_modalities": ["text"]})
            text = await until("response.output_text.done")
            assert text.text == "A written answer."
            reply = await until("response.done")
            await conn.conversation.item.retrieve(item_id=reply.response.output[0].id)
            retrieved = await until("conversation.item.retrieved")
            assert retrieved.item.content[0].text == "A written answer."
            assert not [kind for kind in seen[written:] if "audio" in kind]
            assert "error" not in seen
        record = await sim.connection(0)
        assert record.server_events("error") == []


async def test_a_truncate_past_the_end_is_an_error_then_applied_through_the_sdk() -> None:
    async with serving(script=SCRIPT) as sim:
        client = AsyncOpenAI(api_key="sk-sim", websocket_base_url=sim.url)
        async with client.realtime.connect(model="gpt-realtime") as conn:
            await conn.response.create()
            item_id = ""
            async for event in conn:
                if event.type == "response.done":
                    assert event.response.output and event.response.output[0].id
                    item_id = event.response.output[0].id
                    break
            await conn.conversation.item.truncate(item_id=item_id, content_index=0,
                                                  audio_end_ms=10**6)
            kinds = []
            async for event in conn:
                kinds.append(event.type)
                if event.type == "error":
                    assert event.error.event_id is None  # provoked: it names no client event
                if event.type == "conversation.item.truncated":
                    assert 0 < event.audio_end_ms < 10**6
                    break
            assert kinds[-2:] == ["error", "conversation.item.truncated"]
