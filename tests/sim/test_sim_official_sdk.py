"""The official ``openai`` SDK talks to the simulator: a turn, a spoken reply, a barge-in."""

from __future__ import annotations

import base64

import pytest
from openai import AsyncOpenAI
from websockets.exceptions import InvalidStatus

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
            async for event in conn:
                if event.type == "response.output_audio.delta":
                    heard += len(base64.b64decode(event.delta)) // 48
                    item_id = event.item_id
                    if heard >= 300:
                        break
            assert item_id is not None
            await speak(tone(200))
            statuses = []
            async for event in conn:
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
                truncated = await conn.recv()
            assert truncated.audio_end_ms == heard - 100
        record = await sim.connection(0)
        truncate = record.client_events("conversation.item.truncate")
        assert [(t["item_id"], t["audio_end_ms"]) for t in truncate] == [(item_id, heard - 100)]
        assert record.path == "/v1/realtime"


async def test_a_rejected_key_fails_the_sdk_connect() -> None:
    async with serving(reject_api_keys=frozenset({"sk-revoked"})) as sim:
        client = AsyncOpenAI(api_key="sk-revoked", websocket_base_url=sim.url)
        with pytest.raises(InvalidStatus, match="HTTP 401"):
            async with client.realtime.connect(model="gpt-realtime") as conn:
                await conn.recv()
        assert sim.records == []
