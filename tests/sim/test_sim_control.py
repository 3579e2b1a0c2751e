"""What a test controls on a running simulator besides faults: which keys it accepts,
cutting a connection at a moment of the test's choosing; and the per-connection facts a
client relies on (one session id, a reply's format fixed at its creation)."""

from __future__ import annotations

import base64

import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from bargein.errors import SimError
from tests.support.sim_support import Client, serving

pytestmark = pytest.mark.e2e

KEY = "sk-the-one-" + "a" * 20


async def test_accept_api_keys_lets_only_those_keys_in() -> None:
    async with serving(accept_api_keys=frozenset({KEY})) as sim:
        for headers in ({"Authorization": f"Bearer {KEY}"}, {"api-key": KEY}):
            client = await Client.open(sim.realtime_url, headers)
            assert (await client.recv())["type"] == "session.created"
            await client.close()
        others: list[dict[str, str] | None] = [
            {"Authorization": "Bearer sk-other"},
            {"api-key": "sk-other"},
            None,
        ]
        for other in others:
            with pytest.raises(InvalidStatus) as caught:
                await Client.open(sim.realtime_url, other)
            assert caught.value.response.status_code == 401
        assert len(sim.records) == 2


async def test_reject_api_keys_wins_over_accept_api_keys() -> None:
    keys = frozenset({KEY})
    async with serving(accept_api_keys=keys, reject_api_keys=keys) as sim:
        with pytest.raises(InvalidStatus) as caught:
            await Client.open(sim.realtime_url, {"Authorization": f"Bearer {KEY}"})
        assert caught.value.response.status_code == 401


async def test_drop_cuts_a_chosen_connection_without_a_close_frame() -> None:
    async with serving() as sim:
        first, second = await Client.open(sim.realtime_url), await Client.open(sim.realtime_url)
        await first.recv()
        await second.recv()
        sim.drop(0)
        with pytest.raises(ConnectionClosedError) as closed:
            await first.recv()
        assert closed.value.rcvd is None
        record = await sim.connection(0)
        await record.wait_closed()
        assert record.close_code == 1006  # abnormal closure: no close frame either way
        with pytest.raises(SimError, match="already closed"):
            sim.drop(0)
        await second.send({"type": "input_audio_buffer.clear"})  # the other one lives on
        await second.until("input_audio_buffer.cleared")


async def test_a_beta_session_keeps_one_id() -> None:
    async with serving() as sim:
        client = await Client.open(sim.realtime_url, {"OpenAI-Beta": "realtime=v1"})
        created = await client.recv()
        await client.send({"type": "session.update", "session": {"instructions": "Hi."}})
        updated = (await client.until("session.updated"))[-1]
        assert created["session"]["id"] == updated["session"]["id"]
        assert created["session"]["id"].startswith("sess_")


async def test_a_reply_keeps_the_output_format_it_was_created_with() -> None:
    async with serving(script=("One two three four five six seven eight.",), speed=2.0) as sim:
        client = await Client.open(sim.realtime_url)
        await client.recv()
        await client.send({"type": "response.create"})
        await client.until("response.output_audio.delta")
        g711 = {"type": "realtime", "audio": {"output": {"format": {"type": "audio/pcmu"}}}}
        await client.send({"type": "session.update", "session": g711})
        events = await client.until("response.done")
        kinds = [e["type"] for e in events]
        assert "session.updated" in kinds  # the update came while the reply was going on
        deltas = [e for e in client.events if e["type"] == "response.output_audio.delta"]
        sizes = {len(base64.b64decode(e["delta"])) for e in deltas[:-1]}
        assert sizes == {100 * 48}  # pcm16 chunks of chunk_ms=100 throughout
        response = events[-1]["response"]
        assert response["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
        updated = client.of_type("session.updated")[0]["session"]["audio"]["output"]["format"]
        assert updated == {"type": "audio/pcmu"}
        # a truncate counts the item's milliseconds in its own format, not the session's
        item_id = deltas[0]["item_id"]
        sent_ms = sum(len(base64.b64decode(e["delta"])) for e in deltas) // 48
        truncate = {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0}
        await client.send({**truncate, "audio_end_ms": sent_ms + 100})
        error = (await client.until("error"))[-1]["error"]
        assert error["param"] == "audio_end_ms" and f"{sent_ms}ms" in error["message"]
        await client.send({**truncate, "audio_end_ms": sent_ms})
        truncated = (await client.until("conversation.item.truncated"))[-1]
        assert truncated["audio_end_ms"] == sent_ms
