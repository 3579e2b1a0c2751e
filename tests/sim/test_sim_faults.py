"""Each injected fault happens on the wire as described, and only on connections that ask."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from bargein.errors import SimError
from bargein.sim import FAULTS_HEADER, Faults, Simulator
from tests.support.sim_support import Client, serving

pytestmark = pytest.mark.e2e

SCRIPT = ("One two three four five six seven eight nine ten.",)


async def faulty(sim: Simulator, spec: str) -> Client:
    return await Client.open(f"{sim.realtime_url}?model=m&sim_faults={spec}")


async def test_late_deltas_after_a_cancel_leak_after_response_done() -> None:
    async with serving(script=SCRIPT, speed=1.0) as sim:
        client = await faulty(sim, "late_deltas_after_cancel=3")
        await client.send({"type": "response.create"})
        await client.until("response.output_audio.delta")
        await client.send({"type": "response.cancel"})
        done = (await client.until("response.done"))[-1]
        await client.until("rate_limits.updated")
        late = [await client.recv() for _ in range(3)]
        assert {e["type"] for e in late} == {"response.output_audio.delta"}
        assert {e["response_id"] for e in late} == {done["response"]["id"]}


async def test_without_the_fault_nothing_follows_a_cancel() -> None:
    async with serving(script=SCRIPT, speed=1.0) as sim:
        client = await Client.open(sim.realtime_url)
        await client.send({"type": "response.create"})
        await client.until("response.output_audio.delta")
        await client.send({"type": "response.cancel"})
        await client.until("rate_limits.updated")
        with pytest.raises(TimeoutError):
            await client.recv(timeout=0.3)


async def test_duplicated_events_repeat_their_event_id() -> None:
    async with serving(script=SCRIPT) as sim:
        client = await faulty(sim, "duplicate_every=4")
        await client.send({"type": "response.create"})
        await client.until("rate_limits.updated")
        sent = [r.event["event_id"] for r in (await sim.connection(0)).sent]
        while len(client.events) < len(sent) + len(sent) // 4:  # the last one's twin
            await client.recv()
        ids = [e["event_id"] for e in client.events]
        assert len(ids) == len(sent) + len(sent) // 4
        assert ids[3] == ids[4] and ids[8] == ids[9]


async def test_reordered_events_swap_with_their_successor() -> None:
    async with serving(script=SCRIPT) as sim:
        client = await faulty(sim, "reorder_every=3")
        await client.send({"type": "response.create"})
        while len(client.events) < 12:
            await client.recv()
        sent = [r.event["event_id"] for r in (await sim.connection(0)).sent][:11]
        received = [e["event_id"] for e in client.events][:11]
        assert sorted(received) == sorted(sent)
        assert received[2:4] == [sent[3], sent[2]] and received[5:7] == [sent[6], sent[5]]


async def test_reordering_never_swaps_two_pieces_of_one_items_audio() -> None:
    async with serving(script=SCRIPT) as sim:
        client = await faulty(sim, "reorder_every=2")
        await client.send({"type": "response.create"})
        while not any(e["type"] == "response.done" for e in client.events):
            await client.recv()
        sent = [r.event for r in (await sim.connection(0)).sent]
        audio_sent = [e["event_id"] for e in sent if e["type"].endswith("audio.delta")]
        audio_received = [e["event_id"] for e in client.events
                          if e["type"].endswith("audio.delta")]
        assert len(audio_sent) > 4 and audio_received == audio_sent
        received = [e["event_id"] for e in client.events]
        assert received != [e["event_id"] for e in sent][: len(received)], "nothing reordered"


async def test_a_malformed_frame_after_the_nth_event() -> None:
    async with serving() as sim:
        client = await faulty(sim, "malformed_frame_after=1")
        assert msgspec.json.decode(await client.ws.recv())["type"] == "session.created"
        with pytest.raises(msgspec.DecodeError):
            msgspec.json.decode(await client.ws.recv())


async def test_unknown_event_types_appear() -> None:
    async with serving() as sim:
        client = await faulty(sim, "unknown_events=true")
        await client.recv()
        assert (await client.recv())["type"] == "sim.unknown_event"
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
        assert [e["type"] for e in events][1] == "sim.unknown_event"


async def test_an_error_mid_response_fails_it() -> None:
    async with serving(script=SCRIPT) as sim:
        client = await faulty(sim, "error_mid_response=1")
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
        error = next(e for e in events if e["type"] == "error")
        assert error["error"]["type"] == "server_error"
        response = events[-1]["response"]
        assert response["status"] == "failed"
        assert response["status_details"]["error"]["code"] == error["error"]["code"]
        deltas = [e for e in events if e["type"] == "response.output_audio.delta"]
        assert len(deltas) > 0 and events.index(error) > events.index(deltas[-1])


@pytest.mark.parametrize(
    ("phase", "last"),
    [
        ("session_created", "session.created"),
        ("response_created", "response.created"),
        ("mid_reply", "response.output_audio.delta"),
        ("response_done", "response.done"),
    ],
)
async def test_abrupt_disconnect_at_a_phase(phase: str, last: str) -> None:
    async with serving(script=SCRIPT) as sim:
        client = await faulty(sim, f"disconnect_at={phase}")
        if phase != "session_created":
            await client.send({"type": "response.create"})
        with pytest.raises(ConnectionClosedError) as closed:
            while True:
                await client.recv()
        assert closed.value.rcvd is None  # no close frame: the TCP connection just dropped
        assert client.events[-1]["type"] == last
        if phase == "mid_reply":
            assert not [e for e in client.events if e["type"] == "response.done"]


async def test_disconnect_at_speech_started() -> None:
    from tests.support.sim_support import tone

    async with serving() as sim:
        client = await faulty(sim, "disconnect_at=speech_started")
        await client.append(tone(200))
        with pytest.raises(ConnectionClosedError):
            await client.until("never")
        assert client.events[-1]["type"] == "input_audio_buffer.speech_started"


async def test_jitter_delays_but_keeps_order() -> None:
    async with serving(script=SCRIPT, speed=1e6) as sim:
        client = await faulty(sim, "jitter_ms=30,seed=7")
        await client.send({"type": "response.create"})
        await client.until("rate_limits.updated")
        record = await sim.connection(0)
        assert [e["event_id"] for e in client.events] == [r.event["event_id"] for r in record.sent]


async def test_faults_by_header_and_by_server_default() -> None:
    async with serving(faults=Faults(unknown_events=True)) as sim:
        plain = await Client.open(sim.realtime_url)
        await plain.recv()
        assert (await plain.recv())["type"] == "sim.unknown_event"
        chosen = await Client.open(sim.realtime_url, {FAULTS_HEADER: "duplicate_every=1"})
        first, second = await chosen.recv(), await chosen.recv()
        assert first == second and first["type"] == "session.created"
        assert (await sim.connection(1)).faults == "duplicate_every=1"


@pytest.mark.parametrize(
    "spec",
    [
        "nonsense",
        "duplicate_every=x",
        "disconnect_at=never",
        "jitter_ms=-1",
        "unknown_events=maybe",
        "handshake_status=200",
        "handshake_status=299",
        "handshake_status=599",
        "close_at_once=1006",
        "close_at_once=2000",
        "silent=sometimes",
    ],
)
async def test_a_bad_fault_spec_is_refused(spec: str) -> None:
    with pytest.raises(SimError):
        Faults.parse(spec)
    async with serving() as sim:
        with pytest.raises(InvalidStatus) as caught:
            await faulty(sim, spec)
        assert caught.value.response.status_code == 400


@pytest.mark.parametrize("status", [401, 403, 500, 503])
async def test_a_handshake_refused_with_a_chosen_status(status: int) -> None:
    async with serving() as sim:
        with pytest.raises(InvalidStatus) as caught:
            await faulty(sim, f"handshake_status={status}")
        assert caught.value.response.status_code == status
        assert b"handshake_status" in caught.value.response.body
        plain = await Client.open(sim.realtime_url)  # the fault was that connection's only
        assert (await plain.recv())["type"] == "session.created"
        assert len(sim.records) == 1 and sim.records[0].faults == ""


async def test_a_refused_handshake_as_the_server_default() -> None:
    async with serving(faults=Faults(handshake_status=503)) as sim:
        with pytest.raises(InvalidStatus) as caught:
            await Client.open(sim.realtime_url)
        assert caught.value.response.status_code == 503
        assert sim.records == []


@pytest.mark.parametrize("code", [1008, 1011, 4000])
async def test_close_at_once_sends_an_error_then_closes_with_the_code(code: int) -> None:
    async with serving() as sim:
        client = await faulty(sim, f"close_at_once={code}")
        error = await client.recv()
        assert error["type"] == "error"
        assert error["error"]["code"] == "sim_closed_at_once"
        with pytest.raises(ConnectionClosedError) as closed:
            await client.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == code
        assert "close_at_once" in closed.value.rcvd.reason
        assert client.of_type("session.created") == []
        record = await sim.connection(0)
        await record.wait_closed()
        assert record.close_code == code
        assert [e.type for e in record.sent] == ["error"]


async def test_a_silent_server_sends_nothing_reads_nothing_answers_no_ping() -> None:
    async with serving() as sim:
        url = f"{sim.realtime_url}?sim_faults=silent=true"
        async with connect(url, ping_interval=0.1, ping_timeout=0.2, close_timeout=0.2) as ws:
            await ws.send('{"type": "response.create"}')
            with pytest.raises(ConnectionClosedError) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.sent is not None and closed.value.sent.code == 1011  # ping timeout
        assert closed.value.rcvd is None  # not even a close frame came back
        record = await sim.connection(0)
        assert record.received == [] and record.sent == []
