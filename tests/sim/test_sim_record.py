"""A connection's record: client events with arrival times, the audio appended, what was sent."""

from __future__ import annotations

import asyncio
import base64

import pytest

from bargein.errors import SimError
from tests.support.sim_support import Client, serving, silence, tone

pytestmark = pytest.mark.e2e


async def test_client_events_are_recorded_in_order_with_times_and_audio_apart() -> None:
    async with serving() as sim:
        client = await Client.open(sim.realtime_url)
        await client.recv()
        audio = tone(100) + silence(60)
        await client.append(audio)
        record = await sim.connection(0)
        await record.wait_for("input_audio_buffer.append", count=8, timeout=60)
        appended_by = record.now_ms()  # every append recorded by then (on a busy machine the
        await asyncio.sleep(0.05)      # server reads late: the gap is measured from here)
        await client.send({"type": "response.cancel", "event_id": "evt_late"})
        last = await record.wait_for("response.cancel", timeout=60)
        assert last.event == {"type": "response.cancel", "event_id": "evt_late"}
        times = [r.at_ms for r in record]
        assert times == sorted(times) and times[-2] <= appended_by <= times[-1] - 50
        appends = record.client_events("input_audio_buffer.append")
        assert len(appends) == 8 and all("audio" not in e for e in appends)
        assert bytes(record.audio) == audio
        assert record.server_events("error")[0]["error"]["code"] == "response_cancel_not_active"


async def test_sent_audio_deltas_are_hollowed_in_the_record() -> None:
    async with serving(script=("Hi there.",)) as sim:
        client = await Client.open(sim.realtime_url)
        await client.send({"type": "response.create"})
        await client.until("response.done")
        record = await sim.connection(0)
        sent = record.server_events("response.output_audio.delta")
        received = client.of_type("response.output_audio.delta")
        assert len(sent) == len(received) > 0
        assert sent[0]["delta"] == f"<{len(received[0]['delta'])} base64 chars>"
        assert base64.b64decode(received[0]["delta"])


async def test_audio_recording_can_be_turned_off() -> None:
    async with serving(record_audio=False) as sim:
        client = await Client.open(sim.realtime_url)
        await client.append(tone(100))
        record = await sim.connection(0)
        await record.wait_for("input_audio_buffer.append", count=5)
        assert record.audio == bytearray()


async def test_wait_for_times_out_and_notices_a_close() -> None:
    async with serving() as sim:
        client = await Client.open(sim.realtime_url)
        record = await sim.connection(0)
        with pytest.raises(SimError, match="within"):
            await record.wait_for("response.create", timeout=0.1)
        await client.close()
        with pytest.raises(SimError, match="closed"):
            await record.wait_for("response.create", timeout=2)
        assert record.closed


async def test_a_hook_rejection_is_reported_by_check() -> None:
    def refuse_created(event: dict[str, object], api: str) -> None:
        if event["type"] == "session.created":
            raise AssertionError("no thanks")

    with pytest.raises(AssertionError, match=r"session\.created: no thanks"):
        async with serving(on_event=refuse_created) as sim:
            client = await Client.open(sim.realtime_url)
            assert (await client.recv())["type"] == "session.created"
    assert sim.violations == ["session.created: no thanks"]
    with pytest.raises(AssertionError, match=r"session\.created: no thanks"):
        sim.check()


@pytest.mark.parametrize("keep", [True, False])
async def test_records_of_closed_connections_are_kept_unless_turned_off(keep: bool) -> None:
    async with serving(keep_records=keep) as sim:
        first = await Client.open(sim.realtime_url)
        await first.recv()
        record = await sim.connection(0)
        assert sim.records == [record]
        await first.ws.close()
        await record.wait_closed()
        second = await Client.open(sim.realtime_url)
        await second.recv()
        await second.send({"type": "input_audio_buffer.clear"})
        await second.until("input_audio_buffer.cleared")
        current = sim.records[-1]
        assert current is not record and current.client_events("input_audio_buffer.clear")
        assert sim.records == ([record, current] if keep else [current])
        await second.ws.close()
        await current.wait_closed()
        assert sim.records == ([record, current] if keep else [])


async def test_the_record_keeps_the_query_and_how_the_connection_closed() -> None:
    async with serving() as sim:
        client = await Client.open(f"{sim.realtime_url}?model=gpt-realtime-mini")
        await client.recv()
        record = await sim.connection(0)
        assert (record.path, record.query) == ("/v1/realtime", "model=gpt-realtime-mini")
        assert not record.closed
        with pytest.raises(SimError, match="did not close within"):
            await record.wait_closed(timeout=0.1)
        await client.ws.close(4001, "bye now")
        await record.wait_closed()
        assert (record.close_code, record.close_reason) == (4001, "bye now")
