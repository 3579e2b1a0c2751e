"""The simulator speaks the GA Realtime protocol over a real loopback socket."""

from __future__ import annotations

import asyncio
import math
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bargein.errors import SimError
from bargein.sim import Simulator
from bargein.sim.voice import speak
from tests.support.sim_support import Client, audio_ms, serving, silence, sim_config, tone

pytestmark = pytest.mark.e2e

SCRIPT = ("One two three four five six seven eight.", "Nine ten eleven twelve.")


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_config(script=SCRIPT)) as simulator:
        yield simulator
    simulator.check()


async def opened(sim: Simulator, query: str = "?model=gpt-realtime") -> Client:
    client = await Client.open(sim.realtime_url + query)
    assert (await client.recv())["type"] == "session.created"
    return client


async def test_session_created_then_updated(sim: Simulator) -> None:
    client = await Client.open(sim.realtime_url + "?model=gpt-realtime-mini")
    created = await client.recv()
    assert created["session"]["model"] == "gpt-realtime-mini"
    assert created["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    await client.send(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "instructions": "Be brief.",
                "audio": {
                    "input": {
                        "turn_detection": {
                            "type": "server_vad",
                            "threshold": 0.7,
                            "silence_duration_ms": 300,
                        }
                    }
                },
            },
        }
    )
    session = (await client.recv())["session"]
    assert session["instructions"] == "Be brief."
    vad = session["audio"]["input"]["turn_detection"]
    assert (vad["threshold"], vad["silence_duration_ms"], vad["prefix_padding_ms"]) == (
        0.7,
        300,
        300,
    )


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"instructions": "no type"}, "session.type"),
        ({"type": "realtime", "bogus": 1}, "session.bogus"),
        (
            {
                "type": "realtime",
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}},
            },
            "session.audio.input.format.rate",
        ),
        (
            {"type": "realtime", "audio": {"input": {"turn_detection": {"threshold": 1.5}}}},
            "session.audio.input.turn_detection.threshold",
        ),
        (
            {"type": "realtime", "output_modalities": ["audio", "text"]},
            "session.output_modalities",
        ),
        (
            {"type": "realtime", "audio": {"input": {"turn_detection": {"idle_timeout_ms": 10}}}},
            "session.audio.input.turn_detection.idle_timeout_ms",
        ),
        ({"type": "realtime", "tools": [{"type": "function"}]}, "session.tools[0].name"),
        ({"type": "realtime", "tool_choice": "sometimes"}, "session.tool_choice"),
        ({"type": "realtime", "audio": {"output": {"speed": 3}}}, "session.audio.output.speed"),
        ({"type": "realtime", "tracing": {"bogus": 1}}, "session.tracing.bogus"),
    ],
)
async def test_invalid_session_update_is_an_error_and_the_connection_stays(
    sim: Simulator, session: dict[str, object], param: str
) -> None:
    client = await opened(sim)
    await client.send({"type": "session.update", "event_id": "evt_1", "session": session})
    error = await client.recv()
    assert error["type"] == "error"
    assert (error["error"]["param"], error["error"]["event_id"]) == (param, "evt_1")
    await client.send({"type": "session.update", "session": {"type": "realtime"}})
    assert (await client.recv())["type"] == "session.updated"


async def test_a_spoken_turn_gets_a_whole_reply(sim: Simulator) -> None:
    client = await opened(sim)
    await client.append(silence(500) + tone(1000) + silence(800))
    events = await client.until("response.done")
    types = [e["type"] for e in events]
    started, stopped = events[0], events[1]
    assert (started["type"], started["audio_start_ms"]) == (
        "input_audio_buffer.speech_started",
        200,
    )
    assert (stopped["type"], stopped["audio_end_ms"]) == ("input_audio_buffer.speech_stopped", 1500)
    assert stopped["item_id"] == started["item_id"]
    assert types[2:7] == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
        "response.output_item.added",
    ]
    assert types[7:9] == ["conversation.item.added", "response.content_part.added"]
    assert types[-6:] == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    assert events[4]["item"]["id"] == started["item_id"]
    transcript = "".join(
        e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta"
    )
    assert (
        transcript == SCRIPT[0] == events[-1]["response"]["output"][0]["content"][0]["transcript"]
    )
    assert (
        audio_ms(events, "response.output_audio.delta") == len(speak(SCRIPT[0], "synthetic")) // 48
    )
    assert events[-1]["response"]["status"] == "completed"


async def test_replies_follow_the_script_turn_by_turn(sim: Simulator) -> None:
    client = await opened(sim)
    for expected in (*SCRIPT, SCRIPT[0]):
        await client.send({"type": "response.create"})
        done = (await client.until("response.done"))[-1]
        assert done["response"]["output"][0]["content"][0]["transcript"] == expected


async def test_speech_cancels_the_reply_when_interrupt_response_is_on() -> None:
    async with serving(script=SCRIPT, speed=1.0) as sim:
        client = await opened(sim)
        await client.send({"type": "response.create"})
        await client.until("response.output_audio.delta")
        await client.append(tone(200))
        events = await client.until("rate_limits.updated")
        started = [e for e in events if e["type"] == "input_audio_buffer.speech_started"]
        assert len(started) == 1
        done = events[-2]["response"]
        assert (done["status"], done["status_details"]["reason"]) == ("cancelled", "turn_detected")
        assert done["output"][0]["status"] == "incomplete"
        with pytest.raises(TimeoutError):
            await client.recv(timeout=0.3)


async def test_speech_does_not_cancel_when_interrupt_response_is_off(sim: Simulator) -> None:
    client = await opened(sim)
    await client.send(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {
                    "input": {
                        "turn_detection": {
                            "type": "server_vad",
                            "interrupt_response": False,
                            "create_response": False,
                        }
                    }
                },
            },
        }
    )
    await client.until("session.updated")
    await client.send({"type": "response.create"})
    await client.until("response.created")
    await client.append(tone(300))
    events = await client.until("response.done")
    assert "input_audio_buffer.speech_started" in [e["type"] for e in events]
    assert events[-1]["response"]["status"] == "completed"


async def test_response_cancel_and_cancel_without_a_response() -> None:
    async with serving(speed=1.0) as sim:
        client = await opened(sim)
        await client.send({"type": "response.create"})
        await client.until("response.output_audio.delta")
        await client.send({"type": "response.cancel"})
        done = (await client.until("response.done"))[-1]["response"]
        assert (done["status"], done["status_details"]["reason"]) == (
            "cancelled",
            "client_cancelled",
        )
        await client.send({"type": "response.cancel", "event_id": "evt_c"})
        error = (await client.until("error"))[-1]
        assert error["error"]["code"] == "response_cancel_not_active"
        assert error["error"]["event_id"] == "evt_c"


async def test_a_cancel_naming_another_response_is_refused_and_the_active_one_goes_on() -> None:
    async with serving(speed=1.0) as sim:
        client = await opened(sim)
        await client.send({"type": "response.create"})
        first = (await client.until("response.created"))[-1]["response"]["id"]
        await client.until("response.output_audio.delta")
        await client.send({"type": "response.cancel"})  # no id: the active reply
        done = (await client.until("response.done"))[-1]["response"]
        assert (done["id"], done["status"]) == (first, "cancelled")
        await client.send({"type": "response.create"})
        second = (await client.until("response.created"))[-1]["response"]["id"]
        assert second != first
        await client.until("response.output_audio.delta")
        await client.send({"type": "response.cancel", "response_id": first, "event_id": "evt_old"})
        events = await client.until("error")
        assert "response.done" not in [e["type"] for e in events]
        error = events[-1]["error"]
        assert (error["code"], error["event_id"], error["param"]) == (
            "response_cancel_not_active",
            "evt_old",
            "response_id",
        )
        assert first in error["message"]
        delta = (await client.until("response.output_audio.delta"))[-1]
        assert delta["response_id"] == second  # the active reply goes on
        await client.send({"type": "response.cancel", "response_id": second})
        done = (await client.until("response.done"))[-1]["response"]
        assert (done["id"], done["status"]) == (second, "cancelled")


async def test_a_second_response_create_while_one_is_active_is_refused() -> None:
    async with serving(speed=1.0) as sim:
        client = await opened(sim)
        await client.send({"type": "response.create"})
        await client.until("response.created")
        await client.send({"type": "response.create"})
        errors = [e for e in await client.until("error")]
        assert errors[-1]["error"]["code"] == "conversation_already_has_active_response"


async def test_truncate_within_and_beyond_the_audio_sent(sim: Simulator) -> None:
    client = await opened(sim)
    await client.send({"type": "response.create"})
    events = await client.until("response.done")
    item_id = events[-1]["response"]["output"][0]["id"]
    sent_ms = audio_ms(events, "response.output_audio.delta")
    await client.send(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": sent_ms - 250,
        }
    )
    truncated = (await client.until("conversation.item.truncated"))[-1]
    assert truncated["audio_end_ms"] == sent_ms - 250
    await client.send(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": sent_ms + 1,
        }
    )
    error = await client.recv()
    assert (error["type"], error["error"]["param"]) == ("error", "audio_end_ms")
    assert error["error"]["event_id"] is None  # as upstream: it names no client event
    assert f"{sent_ms}ms is already shorter than {sent_ms + 1}ms" in error["error"]["message"]
    clamped = await client.recv()  # and then the truncate applies, at the end of the audio
    assert (clamped["type"], clamped["item_id"], clamped["audio_end_ms"]) == (
        "conversation.item.truncated",
        item_id,
        sent_ms,
    )
    record = await sim.connection(0)
    assert [e["audio_end_ms"] for e in record.client_events("conversation.item.truncate")] == [
        sent_ms - 250,
        sent_ms + 1,
    ]


async def test_truncate_of_an_unknown_or_user_item_is_an_error(sim: Simulator) -> None:
    client = await opened(sim)
    await client.append(tone(300) + silence(600))
    user_item = (await client.until("input_audio_buffer.committed"))[-1]["item_id"]
    for item_id in ("item_nope", user_item):
        await client.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": 0,
            }
        )
        assert (await client.until("error"))[-1]["error"]["param"] == "item_id"


async def test_delete_an_item_then_deleting_it_again_fails(sim: Simulator) -> None:
    client = await opened(sim)
    await client.send({"type": "response.create"})
    item_id = (await client.until("response.done"))[-1]["response"]["output"][0]["id"]
    await client.until("rate_limits.updated")
    await client.send({"type": "conversation.item.delete", "item_id": item_id})
    assert await client.recv() == {
        **client.events[-1],
        "type": "conversation.item.deleted",
        "item_id": item_id,
    }
    await client.send({"type": "conversation.item.delete", "item_id": item_id})
    assert (await client.recv())["error"]["code"] == "item_delete_invalid_item_id"


async def test_manual_turns_with_commit_clear_and_response_create(sim: Simulator) -> None:
    client = await opened(sim)
    await client.send(
        {
            "type": "session.update",
            "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
        }
    )
    assert (await client.recv())["session"]["audio"]["input"]["turn_detection"] is None
    await client.append(tone(50))
    await client.send({"type": "input_audio_buffer.commit"})
    assert (await client.recv())["error"]["code"] == "input_audio_buffer_commit_empty"
    await client.append(tone(200))
    await client.send({"type": "input_audio_buffer.clear"})
    assert (await client.recv())["type"] == "input_audio_buffer.cleared"
    await client.send({"type": "input_audio_buffer.commit"})
    assert (await client.recv())["type"] == "error"
    await client.append(tone(300) + silence(1000))
    await client.send({"type": "input_audio_buffer.commit"})
    committed = await client.until("conversation.item.done")
    assert committed[0]["type"] == "input_audio_buffer.committed"
    assert not client.of_type("input_audio_buffer.speech_started")
    await client.send({"type": "response.create"})
    assert (await client.until("response.done"))[-1]["response"]["status"] == "completed"


async def test_conversation_item_create_adds_a_text_message(sim: Simulator) -> None:
    client = await opened(sim)
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    await client.send({"type": "conversation.item.create", "item": item})
    added = await client.recv()
    assert added["type"] == "conversation.item.added"
    assert added["item"]["content"] == item["content"]


async def test_unknown_and_malformed_client_events_are_errors(sim: Simulator) -> None:
    client = await opened(sim)
    await client.send({"type": "no.such.event"})
    assert (await client.recv())["error"]["code"] == "invalid_event_type"
    await client.ws.send("{not json")
    assert (await client.recv())["error"]["code"] == "invalid_json"
    await client.send({"type": "input_audio_buffer.append", "audio": "***"})
    assert (await client.recv())["error"]["param"] == "audio"


async def test_pacing_real_time_and_faster() -> None:
    text = ("Pacing pacing pacing.",)
    reply_ms = len(speak(text[0], "synthetic")) // 48
    durations = {}
    for speed in (1.0, 4.0, math.inf):
        async with serving(script=text, speed=speed) as sim:
            client = await opened(sim)
            await client.send({"type": "response.create"})
            await client.until("response.done")
            # when the simulator emitted each event, on its own clock: what the client's
            # clock would add is how late a busy machine let it read them
            sent = {r.event["type"]: r.at_ms for r in (await sim.connection(0)).sent}
            durations[speed] = sent["response.done"] - sent["response.created"]
        sim.check()
    last_chunk_at = reply_ms - 100  # the last 100 ms chunk is due one chunk before the end
    assert durations[1.0] >= last_chunk_at * 0.98
    assert durations[4.0] >= last_chunk_at / 4 * 0.98
    assert durations[math.inf] < durations[4.0] < durations[1.0]


@pytest.mark.parametrize(
    "path",
    ["/v1/realtime?model=gpt-realtime", "/realtime", "/openai/v1/realtime?model=my-deployment"],
)
async def test_accepted_paths(sim: Simulator, path: str) -> None:
    client = await Client.open(f"ws://127.0.0.1:{sim.port}{path}")
    assert (await client.recv())["type"] == "session.created"


async def test_other_paths_are_not_found(sim: Simulator) -> None:
    with pytest.raises(InvalidStatus) as caught:
        await Client.open(f"ws://127.0.0.1:{sim.port}/v1/chat")
    assert caught.value.response.status_code == 404


async def test_a_rejected_key_gets_401_and_other_keys_pass() -> None:
    async with serving(reject_api_keys=frozenset({"sk-bad"})) as sim:
        with pytest.raises(InvalidStatus) as caught:
            await Client.open(sim.realtime_url, {"Authorization": "Bearer sk-bad"})
        assert caught.value.response.status_code == 401
        with pytest.raises(InvalidStatus):
            await Client.open(sim.realtime_url, {"api-key": "sk-bad"})
        good = await Client.open(sim.realtime_url, {"Authorization": "Bearer sk-good"})
        assert (await good.recv())["type"] == "session.created"


async def test_a_busy_port_is_a_sim_error(sim: Simulator) -> None:
    with pytest.raises(SimError, match="cannot listen"):
        async with Simulator(sim_config(), port=sim.port):
            pass


async def test_connection_waits_for_a_client(sim: Simulator) -> None:
    waiting = asyncio.create_task(sim.connection(0, timeout=2))
    await opened(sim)
    record = await waiting
    assert record.api == "ga"
    with pytest.raises(SimError, match="no connection number 1"):
        await sim.connection(1, timeout=0.1)


async def test_semantic_vad_is_accepted_and_echoed_in_its_own_shape(sim: Simulator) -> None:
    client = await opened(sim)
    await client.send(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "semantic_vad"}}},
            },
        }
    )
    vad = (await client.recv())["session"]["audio"]["input"]["turn_detection"]
    assert vad["type"] == "semantic_vad" and "threshold" not in vad
    await client.append(tone(300) + silence(700))
    assert (await client.until("response.done"))[-1]["response"]["status"] == "completed"


def test_serve_blocks_serving_until_stopped() -> None:
    code = (
        "from bargein.sim import SimConfig, serve\n"
        "config = SimConfig(voice='synthetic')\n"
        "serve('127.0.0.1', 0, config, on_ready=lambda url: print(url, flush=True))"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert server.stdout is not None
        url = ""
        while not url.startswith("ws://"):
            url = server.stdout.readline().strip()
            assert url or server.poll() is None, "serve() exited before listening"

        async def session_created() -> str:
            client = await Client.open(url + "/realtime?model=gpt-realtime")
            first = str((await client.recv())["type"])
            await client.close()
            return first

        assert asyncio.run(session_created()) == "session.created"
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            raise


async def test_events_keep_their_order_when_the_client_reads_slower_than_the_server_sends(
) -> None:
    """A client that stops reading fills the server's socket, so events wait in the
    sender's queue: they still arrive in the order the simulator emitted them. (Whether an
    event sent at once could overtake queued ones as the socket drains is argued in
    ``sending.py``, not tested here: this reply is all emitted before the client reads.)"""
    emitted_done = asyncio.Event()

    def on_event(event: dict[str, object], api: str) -> None:  # (no check: 2,000 deltas)
        if event["type"] == "response.done":
            emitted_done.set()

    words = " ".join(["seven"] * 300)  # ~10 MB of frames
    async with serving(script=(words,), speed=1000.0, on_event=on_event) as sim:
        sock = socket.create_connection((sim.host, sim.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2**20)  # no autotuning
        receive_buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        ws = await connect(sim.realtime_url, sock=sock, max_queue=1)
        await ws.send('{"type": "response.create"}')
        await asyncio.wait_for(emitted_done.wait(), 30)  # all queued or sent, none read
        received: list[dict[str, Any]] = []
        size = 0
        while not received or received[-1]["type"] != "rate_limits.updated":  # the last
            frame = await asyncio.wait_for(ws.recv(), 10)
            size += len(frame)
            received.append(msgspec.json.decode(frame))
        await ws.close()
        sent = [r.event["event_id"] for r in (await sim.connection(0)).sent]
    assert [event["event_id"] for event in received] == sent[: len(received)]
    # more than the kernel could hold between the two: the server's writes had to wait
    with open("/proc/sys/net/ipv4/tcp_wmem") as wmem:
        send_buffer = int(wmem.read().split()[2])
    held = send_buffer + receive_buffer + 2**20
    assert size > held, f"{size} bytes sent, the kernel could hold {held}"
