"""The transport over TLS (``wss://``, what every OpenAI and Azure connection is), against a
websockets server on loopback with a self-signed certificate made for the test
(``bargein.testing.self_signed``: ``openssl``, a system package ``make test`` installs)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from bargein.adapters import endpoints
from bargein.adapters.transport import RealtimeTransport
from bargein.core import events as ev
from bargein.core.commands import SendAudio
from bargein.testing import SelfSigned, self_signed
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture
def certificate(tmp_path: Path) -> SelfSigned:
    return self_signed(tmp_path)


@pytest.fixture
async def tls_server(certificate: SelfSigned) -> AsyncIterator[tuple[str, list[Any]]]:
    """A ``wss://`` server that says the session is ready and keeps what it receives."""
    received: list[Any] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "session.created", "event_id": "event_1",
                                  "session": {}}))
        async for message in ws:
            received.append(json.loads(message))

    async with serve(handler, "localhost", 0, ssl=certificate.server_context()) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"wss://localhost:{port}/v1/realtime", received


async def test_frames_sent_at_once_over_tls_arrive_whole_and_in_order(
    tls_server: tuple[str, list[Any]], certificate: SelfSigned,
) -> None:
    """``send_now`` writes through the TLS transport as websockets' ``send()`` does: the
    frames it takes, and those it leaves to ``send()`` (as the session does), arrive whole
    and in order."""
    url, received = tls_server
    transport = RealtimeTransport(endpoints.custom(url, auth="none"), None,
                                  ssl_context=certificate.client_context())
    frames = [bytes([n]) * 960 for n in range(50)]
    at_once = 0
    async with transport:
        events = transport.events()
        assert isinstance(await asyncio.wait_for(anext(events), 30), ev.SessionReady)
        for frame in frames:
            if transport.send_now(SendAudio(frame)):
                at_once += 1
            else:
                await transport.send(SendAudio(frame))
        await eventually(lambda: len(received) == len(frames), lambda: len(received))
    assert at_once >= 1, "nothing went at once over TLS"
    assert [base64.b64decode(r["audio"]) for r in received] == frames
