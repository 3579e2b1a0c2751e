"""The transport over TLS (``wss://``, what every OpenAI and Azure connection is), against a
websockets server on loopback with a self-signed certificate made for the test (``openssl``,
a system package ``make test`` installs)."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from bargein.adapters import endpoints
from bargein.adapters.transport import RealtimeTransport
from bargein.core import events as ev
from bargein.core.commands import SendAudio
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` and its key."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return cert, key


@pytest.fixture
async def tls_server(certificate: tuple[Path, Path]) -> AsyncIterator[tuple[str, list[Any]]]:
    """A ``wss://`` server that says the session is ready and keeps what it receives."""
    received: list[Any] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "session.created", "event_id": "event_1",
                                  "session": {}}))
        async for message in ws:
            received.append(json.loads(message))

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    async with serve(handler, "localhost", 0, ssl=context) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"wss://localhost:{port}/v1/realtime", received


async def test_frames_sent_at_once_over_tls_arrive_whole_and_in_order(
    tls_server: tuple[str, list[Any]], certificate: tuple[Path, Path],
) -> None:
    """``send_now`` writes through the TLS transport as websockets' ``send()`` does: the
    frames it takes, and those it leaves to ``send()`` (as the session does), arrive whole
    and in order."""
    url, received = tls_server
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    transport = RealtimeTransport(endpoints.custom(url, auth="none"), None,
                                  ssl_context=trusted)
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
