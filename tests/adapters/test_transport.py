"""The transport against a real websockets server on loopback (no mock objects).

The server below speaks just enough of the Realtime protocol to script a session: it checks
the key, answers ``session.update``, streams a response on ``response.create``, confirms
cancels and truncations, and can drop the TCP connection without a close frame.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import random
import re
import socket
import traceback
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any

import pytest
from openai import AsyncOpenAI
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from bargein.adapters import endpoints
from bargein.adapters.secrets import ApiKey
from bargein.adapters.session_config import ServerVad, SessionConfig
from bargein.adapters.transport import RealtimeTransport, ReconnectPolicy
from bargein.core import events as ev
from bargein.core.commands import (
    CancelResponse,
    CreateResponse,
    SendAudio,
    TruncateItem,
    UpdateSession,
)
from bargein.errors import (
    ConnectFailed,
    ConnectionLost,
    ConnectTimeout,
    HandshakeRejected,
    InsecureEndpoint,
    KeyRejected,
    NotConnected,
    TransportError,
)
from tests.support.wire_models import validate_client_event

pytestmark = pytest.mark.e2e

KEY = "sk-test-" + "k3y" * 12
FAST = ReconnectPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)
DELTAS = [bytes([n]) * 960 for n in range(1, 4)]  # three 10 ms chunks


_EVENT_IDS = itertools.count()


class LoopbackRealtime:
    """A scripted Realtime server; ``received`` holds every client frame per connection."""

    def __init__(self, api: str, *, status: int | None = None) -> None:
        self.api = api
        self.status = status
        self.received: list[list[dict[str, Any]]] = []
        self.paths: list[str] = []
        self.headers: list[Headers] = []
        self.connections: list[ServerConnection] = []
        self.silent = False
        self.release = asyncio.Event()
        self.server: Server | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/v1"

    def endpoint(self) -> endpoints.Endpoint:
        return endpoints.custom(self.base_url, "gpt-realtime", api=self.api)  # type: ignore[arg-type]

    def check(self, connection: ServerConnection, request: Request) -> Response | None:
        self.paths.append(request.path)
        self.headers.append(request.headers)
        if self.status is not None:
            return connection.respond(HTTPStatus(self.status), "no\n")
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid api key\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        frames: list[dict[str, Any]] = []
        self.received.append(frames)
        if self.silent:
            ws.transport.pause_reading()  # answers no pings: a dead peer
            await self.release.wait()
            return
        await self.emit(ws, "session.created", session=self.session({}))
        async for raw in ws:
            frame = json.loads(raw)
            frames.append(frame)
            kind = frame["type"]
            if kind == "session.update":
                await self.emit(ws, "session.updated", session=self.session(frame["session"]))
            elif kind == "response.create":
                await self.stream_response(ws)
            elif kind == "response.cancel":
                response = {
                    "id": "resp_1",
                    "status": "cancelled",
                    "status_details": {"type": "cancelled", "reason": "client_cancelled"},
                }
                await self.emit(ws, "response.done", response=response)
            elif kind == "conversation.item.truncate":
                await self.emit(
                    ws,
                    "conversation.item.truncated",
                    item_id=frame["item_id"],
                    content_index=0,
                    audio_end_ms=frame["audio_end_ms"],
                )

    def session(self, requested: dict[str, Any]) -> dict[str, Any]:
        if self.api == "beta":
            return {"id": "sess_1", "turn_detection": {"type": "server_vad"}} | requested
        return {
            "type": "realtime",
            "audio": {"input": {"turn_detection": {"type": "server_vad"}}},
        } | requested

    async def stream_response(self, ws: ServerConnection) -> None:
        await self.emit(ws, "response.created", response={"id": "resp_1", "status": "in_progress"})
        await self.emit(
            ws,
            "response.output_item.added",
            response_id="resp_1",
            output_index=0,
            item={"id": "item_1", "type": "message", "role": "assistant"},
        )
        delta = "response.output_audio.delta" if self.api == "ga" else "response.audio.delta"
        for chunk in DELTAS:
            await self.emit(
                ws,
                delta,
                response_id="resp_1",
                item_id="item_1",
                output_index=0,
                content_index=0,
                delta=base64.b64encode(chunk).decode(),
            )
        await self.emit(
            ws, "input_audio_buffer.speech_started", item_id="item_user", audio_start_ms=500
        )

    @staticmethod
    async def emit(ws: ServerConnection, kind: str, **fields: Any) -> None:
        event_id = f"evt_srv_{next(_EVENT_IDS)}"  # unique, as a real server's
        await ws.send(json.dumps({"type": kind, "event_id": event_id, **fields}))

    def abort_current(self) -> None:
        """Drop the newest connection at the TCP level: no close frame, like a network cut."""
        self.connections[-1].transport.abort()


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[LoopbackRealtime]:
    params: dict[str, Any] = getattr(request, "param", {})
    loopback = LoopbackRealtime(params.get("api", "ga"), status=params.get("status"))
    async with serve(
        loopback.handler, "127.0.0.1", 0, process_request=loopback.check, close_timeout=0.5
    ) as srv:
        loopback.server = srv
        yield loopback
        loopback.release.set()


async def next_event(events: AsyncIterator[ev.Event], timeout: float = 5.0) -> ev.Event:
    return await asyncio.wait_for(anext(events), timeout)


async def collect(events: AsyncIterator[ev.Event], count: int) -> list[ev.Event]:
    return [await next_event(events) for _ in range(count)]


def transport_for(server: LoopbackRealtime, key: str = KEY, **kwargs: Any) -> RealtimeTransport:
    return RealtimeTransport(server.endpoint(), ApiKey(key), **({"reconnect": FAST} | kwargs))


CONFIG = SessionConfig(turn_detection=ServerVad(interrupt_response=False), voice="alloy")


@pytest.mark.parametrize("server", [{"api": "ga"}, {"api": "beta"}], indirect=True)
async def test_connect_configure_stream_and_barge_in(server: LoopbackRealtime) -> None:
    async with transport_for(server) as transport:
        events = transport.events()
        assert isinstance(await next_event(events), ev.SessionReady)
        await transport.send(UpdateSession(CONFIG, event_id="evt_cfg"))
        assert await next_event(events) == ev.SessionReady(
            session_id="sess_1" if server.api == "beta" else "", interrupt_response=False
        )
        mic = b"\x01\x02" * 480
        await transport.send(SendAudio(mic))
        await transport.send(CreateResponse(event_id="evt_go"))
        got = await collect(events, 6)
        assert got[0] == ev.ResponseCreated("resp_1")
        assert got[1] == ev.OutputItemAdded("resp_1", "item_1")
        assert [e.audio for e in got[2:5] if isinstance(e, ev.AudioDelta)] == DELTAS
        assert got[5] == ev.SpeechStarted("item_user", 500)
        # barge-in: cancel and truncate to what was heard
        await transport.send(CancelResponse("resp_1", event_id="evt_cancel"))
        await transport.send(TruncateItem("item_1", 20, event_id="evt_trunc"))
        assert await collect(events, 2) == [
            ev.ResponseDone("resp_1", "cancelled", "client_cancelled"),
            ev.ItemTruncated("item_1", 20),
        ]
    frames = server.received[0]
    assert [f["type"] for f in frames] == [
        "session.update",
        "input_audio_buffer.append",
        "response.create",
        "response.cancel",
        "conversation.item.truncate",
    ]
    assert base64.b64decode(frames[1]["audio"]) == mic
    for frame in frames:
        validate_client_event(frame, server.api)
    assert server.paths == ["/v1/realtime?model=gpt-realtime"]
    assert (server.headers[0].get("OpenAI-Beta") == "realtime=v1") is (server.api == "beta")
    assert server.connections[0].close_code == 1000


async def test_abrupt_drop_reconnects_and_resends_the_configuration(
    server: LoopbackRealtime,
) -> None:
    async with transport_for(server) as transport:
        events = transport.events()
        await next_event(events)
        await transport.send(UpdateSession(CONFIG))
        await next_event(events)
        server.abort_current()
        disconnected = await next_event(events)
        assert isinstance(disconnected, ev.Disconnected)
        assert "without a close frame" in disconnected.reason
        assert await next_event(events) == ev.Reconnected()
        assert await collect(events, 2) == [
            ev.SessionReady("", interrupt_response=True),  # session.created: server defaults
            ev.SessionReady("", interrupt_response=False),  # our configuration, re-applied
        ]
        await transport.send(SendAudio(b"\x00\x00"))
    assert len(server.received) == 2
    assert server.received[1][0] == server.received[0][0]
    assert server.received[1][0]["type"] == "session.update"


async def test_reconnection_gives_up_after_the_configured_attempts(
    server: LoopbackRealtime,
) -> None:
    transport = transport_for(server)
    await transport.connect()
    events = transport.events()
    await next_event(events)
    assert server.server is not None
    server.server.close()  # stop listening: every reconnection is refused
    await server.server.wait_closed()
    assert isinstance(await next_event(events), ev.Disconnected)
    with pytest.raises(ConnectionLost, match="3 reconnection attempts failed"):
        await next_event(events)
    with pytest.raises(NotConnected):
        await transport.send(CreateResponse())


class ClosingServer:
    """Accepts every handshake, sends one ``error`` frame and closes with 1008 at once."""

    def __init__(self) -> None:
        self.handshakes = 0

    async def handler(self, ws: ServerConnection) -> None:
        self.handshakes += 1
        error = {"type": "invalid_request_error", "code": "policy", "message": "go away"}
        await LoopbackRealtime.emit(ws, "error", error=error)
        await ws.close(1008, "policy violation")


async def run_against(
    closing: ClosingServer,
    policy: ReconnectPolicy,
    seen: list[ev.Event],
    stop_after_reconnects: int | None = None,
) -> None:
    """Iterate a transport's events into ``seen``, bounded in time, against ``closing``."""
    async with serve(closing.handler, "127.0.0.1", 0, close_timeout=0.5) as srv:
        port = srv.sockets[0].getsockname()[1]
        endpoint = endpoints.custom(f"ws://127.0.0.1:{port}/v1", "gpt-realtime")
        transport = RealtimeTransport(endpoint, ApiKey(KEY), reconnect=policy)
        await transport.connect()

        async def drain() -> None:
            async for event in transport.events():
                seen.append(event)
                reconnects = sum(isinstance(e, ev.Reconnected) for e in seen)
                if reconnects == stop_after_reconnects:
                    await transport.close()

        await asyncio.wait_for(drain(), 10)


async def test_a_server_that_accepts_then_closes_at_once_exhausts_the_attempts() -> None:
    closing, seen = ClosingServer(), list[ev.Event]()
    with pytest.raises(ConnectionLost) as lost:
        await run_against(closing, FAST, seen)
    message = str(lost.value)
    assert "3 reconnection attempts failed" in message
    assert "closed with code 1008: policy violation" in message
    assert KEY not in message
    # each short-lived connection spent one attempt: the first, then max_attempts more
    assert closing.handshakes == 1 + FAST.max_attempts
    assert sum(isinstance(e, ev.Reconnected) for e in seen) == FAST.max_attempts
    assert sum(isinstance(e, ev.Disconnected) for e in seen) == 1 + FAST.max_attempts
    assert sum(isinstance(e, ev.ServerError) for e in seen) == 1 + FAST.max_attempts


async def test_a_connection_that_stayed_up_restores_the_whole_budget() -> None:
    # stable_after_s=0: every connection counts as stable, so the one attempt is never spent
    policy = ReconnectPolicy(max_attempts=1, base_delay=0.01, max_delay=0.05, stable_after_s=0)
    closing, seen = ClosingServer(), list[ev.Event]()
    await run_against(closing, policy, seen, stop_after_reconnects=4)
    assert closing.handshakes == 5
    assert sum(isinstance(e, ev.Reconnected) for e in seen) == 4


@pytest.mark.parametrize("stable_after_s", [-0.1, float("nan")])
def test_stable_after_must_be_a_non_negative_number(stable_after_s: float) -> None:
    with pytest.raises(TransportError, match="stable_after_s"):
        ReconnectPolicy(stable_after_s=stable_after_s)


async def test_keepalive_pings_detect_a_silent_peer(server: LoopbackRealtime) -> None:
    server.silent = True
    transport = transport_for(
        server,
        ping_interval=0.1,
        ping_timeout=0.2,
        close_timeout=0.2,
        reconnect=ReconnectPolicy(max_attempts=0),
    )
    await transport.connect()
    events = transport.events()
    event = await next_event(events, timeout=5)
    assert isinstance(event, ev.Disconnected)
    with pytest.raises(ConnectionLost):
        await next_event(events)


async def test_clean_close_ends_iteration(server: LoopbackRealtime) -> None:
    transport = transport_for(server)
    await transport.connect()
    events = transport.events()
    await next_event(events)
    await transport.close()
    with pytest.raises(StopAsyncIteration):
        await next_event(events)
    assert server.connections[0].close_code == 1000
    with pytest.raises(NotConnected, match="not connected"):
        await transport.send(CreateResponse())


async def test_a_rejected_key_is_a_typed_error_that_never_shows_the_key(
    server: LoopbackRealtime, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "sk-wrong-" + "x" * 40
    caplog.set_level(logging.DEBUG)
    with pytest.raises(KeyRejected, match="rejected the API key") as caught:
        await transport_for(server, key=wrong).connect()
    assert caught.value.status == 401
    assert server.headers[0]["Authorization"] == f"Bearer {wrong}"  # the key was really sent
    ours = [r for r in caplog.records if not r.name.startswith("websockets.server")]
    shown = [str(caught.value), repr(caught.value), *(r.getMessage() for r in ours)]
    shown.append("".join(traceback.format_exception(caught.value)))
    shown += [repr(transport_for(server, key=wrong)), repr(ApiKey(wrong))]
    assert caught.value.__cause__ is None and caught.value.__context__ is not None
    assert any("Authorization" in record.getMessage() for record in ours)
    for text in shown:
        assert wrong not in text
        assert "x" * 40 not in text


@pytest.mark.parametrize("server", [{"status": 500}], indirect=True)
async def test_a_server_error_on_handshake_is_handshake_rejected(
    server: LoopbackRealtime,
) -> None:
    with pytest.raises(HandshakeRejected, match="HTTP 500") as caught:
        await transport_for(server).connect()
    assert not isinstance(caught.value, KeyRejected)


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

    tcp = await asyncio.start_server(mute, "127.0.0.1", 0)
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


async def test_our_url_matches_the_official_sdk_for_a_custom_base(
    server: LoopbackRealtime,
) -> None:
    """The SDK and bargein, given the same websocket base URL, request the same path."""
    sdk = AsyncOpenAI(api_key=KEY, websocket_base_url=server.base_url)
    async with sdk.realtime.connect(model="gpt-realtime") as connection:
        await connection.recv()
    await transport_for(server).connect()
    assert server.paths[0] == server.paths[1] == "/v1/realtime?model=gpt-realtime"


def test_reconnect_delays_grow_exponentially_within_the_jitter_band() -> None:
    policy = ReconnectPolicy(max_attempts=6, base_delay=0.5, factor=2, max_delay=4, jitter=0.25)
    rng = random.Random(7)
    for attempt, ceiling in enumerate([0.5, 1, 2, 4, 4, 4]):
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(0.75 * ceiling <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > 0.1 * ceiling  # jitter really spreads them


async def test_close_during_reconnection_ends_iteration_quietly(server: LoopbackRealtime) -> None:
    transport = transport_for(server, reconnect=ReconnectPolicy(base_delay=0.3, jitter=0))
    await transport.connect()
    events = transport.events()
    await next_event(events)
    server.abort_current()
    assert isinstance(await next_event(events), ev.Disconnected)
    reconnecting = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0.05)
    await transport.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(reconnecting, 2)
    assert len(server.connections) == 1


async def test_a_configuration_sent_during_the_resend_is_not_lost(
    server: LoopbackRealtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``send()`` of a newer configuration while the reconnect is re-sending the old one
    fails with NotConnected; the reconnect must then send the newer one too."""
    newer = UpdateSession(SessionConfig(voice="verse"))
    async with transport_for(server) as transport:
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
        server.abort_current()
        assert isinstance(await next_event(events), ev.Disconnected)
        assert await next_event(events) == ev.Reconnected()
        await collect(events, 3)
    last = [m for frames in server.received for m in frames if m["type"] == "session.update"][-1]
    assert last["session"]["audio"]["output"]["voice"] == "verse"
