"""The transport against the project's Realtime simulator on loopback (no mock objects).

The simulator (``bargein.sim``) checks the key, answers ``session.update``, streams a
reply on ``response.create``, confirms cancels and truncations, records every client event,
and plays the failures these tests need: a TCP cut at a moment the test picks
(``Simulator.drop``), a refused handshake (``handshake_status``), a server that takes the
connection and closes it at once (``close_at_once``), a dead peer (``silent``). The servers
that are not the simulator: a bare TCP socket that never answers the handshake, and a plain
websockets server that would compress (the simulator never does).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import re
import socket
import traceback
from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai import AsyncOpenAI
from websockets.asyncio.server import ServerConnection, serve

from bargein.adapters import endpoints
from bargein.adapters.secrets import ApiKey
from bargein.adapters.session_config import Api, ServerVad, SessionConfig
from bargein.adapters.transport import RealtimeTransport, ReconnectPolicy
from bargein.core import events as ev
from bargein.core.commands import (
    CancelResponse,
    CreateResponse,
    SendAudio,
    TruncateItem,
    UpdateSession,
)
from bargein.core.pcm import BYTES_PER_MS
from bargein.errors import (
    ConnectFailed,
    ConnectionLost,
    ConnectTimeout,
    HandshakeRejected,
    InsecureEndpoint,
    KeyRejected,
    NotConnected,
    ServerClosed,
    TransportError,
)
from bargein.sim import Faults, Simulator
from bargein.sim.voice import speak
from tests.support.sim_support import check_client_events, serving, sim_config, tone
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

KEY = "sk-test-" + "k3y" * 12
FAST = ReconnectPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)
CONFIG = SessionConfig(turn_detection=ServerVad(interrupt_response=False), voice="alloy")
REPLY = "A reply long enough for the user to talk over it, " * 3
CHUNK_MS = 40
CLOSE_REASON = "the simulator closes at once (fault close_at_once)"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A simulator that accepts ``KEY`` only, replying in real time in 40 ms deltas."""
    config = sim_config(
        accept_api_keys=frozenset({KEY}), script=(REPLY,), speed=1.0, chunk_ms=CHUNK_MS
    )
    async with Simulator(config) as simulator:
        yield simulator
    simulator.check()


def transport_for(
    sim: Simulator, api: Api = "ga", key: str = KEY, **kwargs: Any
) -> RealtimeTransport:
    # bearer named explicitly: the key must travel to the simulator, which checks it
    endpoint = endpoints.custom(sim.url, "gpt-realtime", api=api, auth="bearer")
    return RealtimeTransport(endpoint, ApiKey(key), **({"reconnect": FAST} | kwargs))


async def next_event(events: AsyncIterator[ev.Event], timeout: float = 10.0) -> ev.Event:
    """The next event the core models (the server events passed on whole are skipped)."""
    while True:
        event = await asyncio.wait_for(anext(events), timeout)
        if not isinstance(event, ev.UnknownServerEvent):
            return event


async def collect(events: AsyncIterator[ev.Event], count: int) -> list[ev.Event]:
    return [await next_event(events) for _ in range(count)]


async def until(
    events: AsyncIterator[ev.Event], kind: type[ev.Event], count: int = 1
) -> list[ev.Event]:
    """Events up to and including the ``count``-th one of type ``kind``."""
    seen: list[ev.Event] = []
    while sum(isinstance(e, kind) for e in seen) < count:
        seen.append(await next_event(events))
    return seen


@pytest.mark.parametrize("api", ["ga", "beta"])
async def test_connect_configure_stream_and_barge_in(sim: Simulator, api: Api) -> None:
    async with transport_for(sim, api) as transport:
        events = transport.events()
        created = await next_event(events)
        record = await sim.connection(0)
        session_id = record.server_events("session.created")[0]["session"].get("id", "")
        assert (session_id != "") is (api == "beta")  # GA sessions carry no id
        assert created == ev.SessionReady(session_id, interrupt_response=True)
        await transport.send(UpdateSession(CONFIG, event_id="evt_cfg"))
        assert await next_event(events) == ev.SessionReady(session_id, interrupt_response=False)
        mic = b"\x03\x00\xfd\xff" * 240  # 20 ms, too quiet for the server's VAD
        await transport.send(SendAudio(mic))
        await transport.send(CreateResponse(event_id="evt_go"))
        got = await until(events, ev.AudioDelta, 3)
        response_id = record.server_events("response.created")[0]["response"]["id"]
        item_id = record.server_events("response.output_item.added")[0]["item"]["id"]
        assert got[0] == ev.ResponseCreated(response_id)
        assert got[1] == ev.OutputItemAdded(response_id, item_id)
        assert {type(e) for e in got[2:]} == {ev.TranscriptDelta, ev.AudioDelta}
        deltas = [e for e in got if isinstance(e, ev.AudioDelta)]
        assert {(e.response_id, e.item_id) for e in deltas} == {(response_id, item_id)}
        voice = speak(REPLY, "synthetic")
        assert b"".join(e.audio for e in deltas) == voice[: 3 * CHUNK_MS * BYTES_PER_MS]
        # the user talks over the reply: the server hears it (and leaves the reply running)
        await transport.send(SendAudio(tone(400)))
        heard = (await until(events, ev.SpeechStarted))[-1]
        started = record.server_events("input_audio_buffer.speech_started")[0]
        assert heard == ev.SpeechStarted(started["item_id"], started["audio_start_ms"])
        # barge-in: cancel and truncate to what was heard
        await transport.send(CancelResponse(response_id, event_id="evt_cancel"))
        await transport.send(TruncateItem(item_id, 20, event_id="evt_trunc"))
        rest = await until(events, ev.ItemTruncated)
        assert [e for e in rest if isinstance(e, ev.ResponseDone | ev.ItemTruncated)] == [
            ev.ResponseDone(response_id, "cancelled", "client_cancelled"),
            ev.ItemTruncated(item_id, 20),
        ]
        assert not [e for e in rest if isinstance(e, ev.ServerError)]
    kinds = [r.type for r in record]
    assert [k for n, k in enumerate(kinds) if n == 0 or k != kinds[n - 1]] == [
        "session.update",
        "input_audio_buffer.append",
        "response.create",
        "input_audio_buffer.append",
        "response.cancel",
        "conversation.item.truncate",
    ]
    assert bytes(record.audio) == mic + tone(400)
    ids = [r.event.get("event_id") for r in record if r.type != "input_audio_buffer.append"]
    assert ids == ["evt_cfg", "evt_go", "evt_cancel", "evt_trunc"]
    check_client_events(sim, api)
    assert (record.path, record.query) == ("/v1/realtime", "model=gpt-realtime")
    assert record.api == api  # the simulator speaks beta to an OpenAI-Beta header only
    await record.wait_closed()
    assert record.close_code == 1000


async def test_abrupt_drop_reconnects_and_resends_the_configuration(sim: Simulator) -> None:
    async with transport_for(sim) as transport:
        events = transport.events()
        await next_event(events)
        await transport.send(UpdateSession(CONFIG))
        await next_event(events)
        sim.drop(0)
        disconnected = await next_event(events)
        assert isinstance(disconnected, ev.Disconnected)
        assert "without a close frame" in disconnected.reason
        assert await next_event(events) == ev.Reconnected()
        assert await collect(events, 2) == [
            ev.SessionReady("", interrupt_response=True),  # session.created: server defaults
            ev.SessionReady("", interrupt_response=False),  # our configuration, re-applied
        ]
        await transport.send(SendAudio(b"\x00\x00"))
    first, second = sim.records
    assert second.received[0].event == first.received[0].event
    assert second.received[0].type == "session.update"


async def test_reconnection_gives_up_after_the_configured_attempts(sim: Simulator) -> None:
    transport = transport_for(sim)
    await transport.connect()
    events = transport.events()
    await next_event(events)
    await sim.stop()  # stop listening: every reconnection is refused
    assert isinstance(await next_event(events), ev.Disconnected)
    with pytest.raises(ConnectionLost, match="3 reconnection attempts failed"):
        await next_event(events)
    with pytest.raises(NotConnected):
        await transport.send(CreateResponse())
    assert len(sim.records) == 1


async def run_against(
    sim: Simulator,
    policy: ReconnectPolicy,
    seen: list[ev.Event],
    stop_after_reconnects: int | None = None,
) -> None:
    """Iterate a transport's events into ``seen``, bounded in time."""
    transport = transport_for(sim, reconnect=policy)
    await transport.connect()

    async def drain() -> None:
        async for event in transport.events():
            seen.append(event)
            reconnects = sum(isinstance(e, ev.Reconnected) for e in seen)
            if reconnects == stop_after_reconnects:
                await transport.close()

    await asyncio.wait_for(drain(), 30)


async def test_a_server_that_accepts_then_closes_at_once_exhausts_the_attempts() -> None:
    seen: list[ev.Event] = []
    # 1013 "try again later": a close the transport reconnects after
    async with serving(faults=Faults(close_at_once=1013)) as sim:
        with pytest.raises(ConnectionLost) as lost:
            await run_against(sim, FAST, seen)
        message = str(lost.value)
        assert "3 reconnection attempts failed" in message
        assert f"closed with code 1013: {CLOSE_REASON}" in message
        assert KEY not in message
        # each short-lived connection spent one attempt: the first, then max_attempts more
        assert len(sim.records) == 1 + FAST.max_attempts
        assert sum(isinstance(e, ev.Reconnected) for e in seen) == FAST.max_attempts
        assert sum(isinstance(e, ev.Disconnected) for e in seen) == 1 + FAST.max_attempts
        errors = [e for e in seen if isinstance(e, ev.ServerError)]
        assert len(errors) == 1 + FAST.max_attempts
        assert {e.code for e in errors} == {"sim_closed_at_once"}


async def test_a_connection_that_stayed_up_restores_the_whole_budget() -> None:
    # stable_after_s=0: every connection counts as stable, so the one attempt is never spent
    policy = ReconnectPolicy(max_attempts=1, base_delay=0.01, max_delay=0.05, stable_after_s=0)
    seen: list[ev.Event] = []
    async with serving(faults=Faults(close_at_once=1013)) as sim:
        await run_against(sim, policy, seen, stop_after_reconnects=4)
        await sim.connection(4)  # the fifth connection's record exists ...
        assert len(sim.records) == 5  # ... and no sixth: close() ended the reconnecting
    assert sum(isinstance(e, ev.Reconnected) for e in seen) == 4


@pytest.mark.parametrize("code", [1008, 4000])
async def test_a_close_that_refuses_the_session_is_not_reconnected(code: int) -> None:
    seen: list[ev.Event] = []
    async with serving(faults=Faults(close_at_once=code)) as sim:
        with pytest.raises(ServerClosed) as closed:
            await run_against(sim, FAST, seen)
        assert len(sim.records) == 1  # no second handshake
    assert (closed.value.code, closed.value.reason) == (code, CLOSE_REASON)
    assert "not reconnecting" in str(closed.value)
    assert [type(e) for e in seen] == [ev.ServerError, ev.Disconnected]


async def test_a_normal_close_by_the_server_ends_iteration() -> None:
    seen: list[ev.Event] = []
    async with serving(faults=Faults(close_at_once=1000)) as sim:
        await run_against(sim, FAST, seen)
        assert len(sim.records) == 1
    assert [type(e) for e in seen] == [ev.ServerError, ev.Disconnected]


@pytest.mark.parametrize("stable_after_s", [-0.1, float("nan")])
def test_stable_after_must_be_a_non_negative_number(stable_after_s: float) -> None:
    with pytest.raises(TransportError, match="stable_after_s"):
        ReconnectPolicy(stable_after_s=stable_after_s)


async def test_keepalive_pings_detect_a_silent_peer() -> None:
    async with serving(faults=Faults(silent=True)) as sim:
        transport = transport_for(
            sim,
            ping_interval=0.1,
            ping_timeout=0.2,
            close_timeout=0.2,
            reconnect=ReconnectPolicy(max_attempts=0),
        )
        await transport.connect()
        events = transport.events()
        event = await next_event(events)
        assert isinstance(event, ev.Disconnected)  # nothing came before: no session.created
        with pytest.raises(ConnectionLost):
            await next_event(events)
        assert (await sim.connection(0)).received == []


async def test_clean_close_ends_iteration(sim: Simulator) -> None:
    transport = transport_for(sim)
    await transport.connect()
    events = transport.events()
    await next_event(events)
    await transport.close()
    with pytest.raises(StopAsyncIteration):
        await next_event(events)
    record = await sim.connection(0)
    await record.wait_closed()
    assert record.close_code == 1000
    with pytest.raises(NotConnected, match="not connected"):
        await transport.send(CreateResponse())


async def test_a_rejected_key_is_a_typed_error_that_never_shows_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "sk-wrong-" + "x" * 40
    caplog.set_level(logging.DEBUG)
    # a simulator that refuses exactly this key: its 401 shows the key really was sent
    async with serving(reject_api_keys=frozenset({wrong})) as sim:
        with pytest.raises(KeyRejected, match="rejected the API key") as caught:
            await transport_for(sim, key=wrong).connect()
        assert sim.records == []
        async with transport_for(sim):  # any other key is welcome
            pass
        shown_repr = repr(transport_for(sim, key=wrong))
    assert caught.value.status == 401
    records = caplog.records  # the client's log and the simulator's (both redact keys)
    shown = [str(caught.value), repr(caught.value), *(r.getMessage() for r in records)]
    shown.append("".join(traceback.format_exception(caught.value)))
    shown += [shown_repr, repr(ApiKey(wrong))]
    assert caught.value.__cause__ is None and caught.value.__context__ is not None
    ours = [r for r in records if r.name.startswith("bargein.adapters.transport")]
    assert any("Authorization" in record.getMessage() for record in ours)
    for text in shown:
        assert wrong not in text
        assert "x" * 40 not in text


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, KeyRejected), (403, KeyRejected), (500, HandshakeRejected), (503, HandshakeRejected)],
)
async def test_a_refused_handshake_is_a_typed_error(
    status: int, error: type[HandshakeRejected]
) -> None:
    async with serving(faults=Faults(handshake_status=status)) as sim:
        with pytest.raises(HandshakeRejected, match=f"HTTP {status}") as caught:
            await transport_for(sim).connect()
        assert sim.records == []
    assert type(caught.value) is error
    assert caught.value.status == status


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_an_unreachable_server_is_connect_failed() -> None:
    endpoint = endpoints.custom(f"ws://127.0.0.1:{free_port()}/v1")
    with pytest.raises(ConnectFailed, match=re.escape("cannot reach 127.0.0.1")):
        await RealtimeTransport(endpoint, ApiKey(KEY)).connect()


async def test_an_unknown_host_is_connect_failed() -> None:
    endpoint = endpoints.custom("wss://no-such-host.invalid/v1")
    with pytest.raises(ConnectFailed, match=re.escape("no-such-host.invalid")):
        await RealtimeTransport(endpoint, ApiKey(KEY), connect_timeout=5).connect()


async def test_a_server_that_never_answers_the_handshake_times_out() -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)

    tcp = await asyncio.start_server(mute, "127.0.0.1", 0)  # a socket, not a Realtime server
    port = tcp.sockets[0].getsockname()[1]
    async with tcp:
        endpoint = endpoints.custom(f"ws://127.0.0.1:{port}/v1")
        transport = RealtimeTransport(endpoint, ApiKey(KEY), connect_timeout=0.3)
        with pytest.raises(ConnectTimeout, match=re.escape("timed out after 0.3 s")):
            await transport.connect()


def test_plaintext_to_a_remote_host_needs_consent() -> None:
    remote = endpoints.custom("ws://realtime.example.com/v1")
    with pytest.raises(InsecureEndpoint, match=re.escape("realtime.example.com")):
        RealtimeTransport(remote, ApiKey(KEY))
    assert RealtimeTransport(remote, ApiKey(KEY), allow_plaintext=True).endpoint == remote
    for local in ("ws://127.0.0.1:1/v1", "ws://localhost:1/v1", "ws://[::1]:1/v1"):
        RealtimeTransport(endpoints.custom(local), ApiKey(KEY))


async def test_our_url_matches_the_official_sdk_for_a_custom_base(sim: Simulator) -> None:
    """The SDK and bargein, given the same websocket base URL, request the same path."""
    sdk = AsyncOpenAI(api_key=KEY, websocket_base_url=sim.url)
    async with sdk.realtime.connect(model="gpt-realtime") as connection:
        await connection.recv()
    async with transport_for(sim):
        pass
    theirs, ours = await sim.connection(0), await sim.connection(1)
    assert (theirs.path, theirs.query) == (ours.path, ours.query)
    assert (ours.path, ours.query) == ("/v1/realtime", "model=gpt-realtime")


def test_reconnect_delays_grow_exponentially_within_the_jitter_band() -> None:
    policy = ReconnectPolicy(max_attempts=6, base_delay=0.5, factor=2, max_delay=4, jitter=0.25)
    rng = random.Random(7)
    for attempt, ceiling in enumerate([0.5, 1, 2, 4, 4, 4]):
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(0.75 * ceiling <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > 0.1 * ceiling  # jitter really spreads them


class SignallingRandom(random.Random):
    """Sets ``drawn`` when the transport draws a reconnection delay: it is about to wait."""

    def __init__(self) -> None:
        super().__init__(0)
        self.drawn = asyncio.Event()

    def uniform(self, a: float, b: float) -> float:
        self.drawn.set()
        return super().uniform(a, b)


async def test_close_during_reconnection_ends_iteration_quietly(sim: Simulator) -> None:
    rng = SignallingRandom()
    transport = transport_for(sim, reconnect=ReconnectPolicy(base_delay=0.3, jitter=0), rng=rng)
    await transport.connect()
    events = transport.events()
    await next_event(events)
    sim.drop(0)
    assert isinstance(await next_event(events), ev.Disconnected)
    reconnecting = asyncio.ensure_future(anext(events))
    await asyncio.wait_for(rng.drawn.wait(), 10)  # waiting out the backoff now
    await transport.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(reconnecting, 10)
    assert len(sim.records) == 1


async def test_a_configuration_sent_during_the_resend_is_not_lost(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``send()`` of a newer configuration while the reconnect is re-sending the old one
    fails with NotConnected; the reconnect must then send the newer one too."""
    newer = UpdateSession(SessionConfig(voice="verse"))
    async with transport_for(sim) as transport:
        events = transport.events()
        await next_event(events)
        await transport.send(UpdateSession(CONFIG))
        await next_event(events)
        original = transport._resend_session

        async def racing_resend(ws: Any) -> None:
            real_send = ws.send

            async def send(frame: str) -> None:
                await real_send(frame)
                if "verse" not in frame:  # the old one is on its way: the app sends a new one
                    with pytest.raises(NotConnected):
                        await transport.send(newer)

            monkeypatch.setattr(ws, "send", send)
            await original(ws)

        monkeypatch.setattr(transport, "_resend_session", racing_resend)
        sim.drop(0)
        assert isinstance(await next_event(events), ev.Disconnected)
        assert await next_event(events) == ev.Reconnected()
        await collect(events, 3)  # session.created, then one session.updated per update
    updates = [e for record in sim.records for e in record.client_events("session.update")]
    assert [u["session"]["audio"]["output"]["voice"] for u in updates] == [
        "alloy",
        "alloy",
        "verse",
    ]


async def test_send_now_sends_what_an_open_connection_takes_at_once(sim: Simulator) -> None:
    """``send_now``: False when there is no connection and for a configuration (both are
    ``send()``'s); True for a frame an open connection takes, which the server receives
    as ``send()`` would have sent it, in order with what ``send()`` sends."""
    transport = transport_for(sim)
    frame = SendAudio(tone(20))
    assert not transport.send_now(frame), "not connected yet"
    async with transport:
        events = transport.events()
        assert isinstance(await next_event(events), ev.SessionReady)
        assert not transport.send_now(UpdateSession(CONFIG))
        assert transport.send_now(frame)
        await transport.send(SendAudio(tone(40)))
        record = await sim.connection(0)
        await eventually(lambda: len(record.client_events("input_audio_buffer.append")) == 2,
                         lambda: record.received)
    assert not transport.send_now(frame), "closed"
    assert bytes(record.audio) == tone(20) + tone(40)
    check_client_events(sim, "ga")


async def test_send_now_leaves_a_frame_to_send_once_the_write_buffer_holds_data() -> None:
    """A peer that reads nothing: once the socket is full and the transport buffers what it
    writes, ``send_now`` refuses (``send()`` would wait for the drain)."""
    big = SendAudio(bytes(256 * 1024))
    async with serving(faults=Faults(silent=True)) as sim, transport_for(sim) as transport:
        taken = 0
        while transport.send_now(big):
            taken += 1
            assert taken < 1000, "a peer reading nothing never filled the socket"
        ws = transport._ws
        assert ws is not None and ws.transport.get_write_buffer_size() > 0
        assert not transport.send_now(SendAudio(tone(20)))
        ws.transport.abort()  # a peer that reads nothing would hold a clean close


async def first_event(transport: RealtimeTransport, read: str) -> ev.Event:
    """The first event the core models, read as ``read`` says: ``events()`` or
    ``deliver()`` (then stopped)."""
    if read == "events":
        return await next_event(transport.events())
    got: asyncio.Future[ev.Event] = asyncio.get_running_loop().create_future()

    def on_event(event: ev.Event) -> None:
        if not isinstance(event, ev.UnknownServerEvent) and not got.done():
            got.set_result(event)

    delivering = asyncio.create_task(transport.deliver(on_event))
    try:
        return await asyncio.wait_for(got, 10)
    finally:
        delivering.cancel()


@pytest.mark.parametrize("read", ["events", "deliver"])
@pytest.mark.parametrize("compress", [False, True], ids=["default", "compress"])
async def test_compression_is_offered_only_when_asked(compress: bool, read: str) -> None:
    """A server that would compress (websockets' default): bargein offers permessage-deflate
    only with ``compress=True``; either way frames cross both ways intact, whichever way
    the events are read."""
    offered: list[str | None] = []
    received: list[str | bytes] = []

    async def server_side(ws: ServerConnection) -> None:
        offered.append(ws.request.headers.get("Sec-WebSocket-Extensions")
                       if ws.request is not None else None)
        received.append(await ws.recv())
        await ws.send(json.dumps({"type": "input_audio_buffer.speech_started",
                                  "event_id": "event_1", "item_id": "item_1",
                                  "audio_start_ms": 40}))
        await ws.wait_closed()

    async with serve(server_side, "127.0.0.1", 0, compression="deflate") as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        transport = RealtimeTransport(endpoints.custom(url, auth="none"), None,
                                      compress=compress)
        async with transport:
            ws = transport._ws
            assert ws is not None and bool(ws.protocol.extensions) is compress
            assert transport.send_now(SendAudio(tone(20)))
            assert await first_event(transport, read) == ev.SpeechStarted("item_1", 40)
    assert (offered[0] is not None and "permessage-deflate" in offered[0]) is compress
    sent = json.loads(received[0])
    assert sent["type"] == "input_audio_buffer.append"
    assert base64.b64decode(sent["audio"]) == tone(20)
