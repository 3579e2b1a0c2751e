"""The simulator's websockets log never shows a client's API key, even at debug level."""

from __future__ import annotations

import logging

import pytest

from tests.support.sim_support import Client, serving

pytestmark = pytest.mark.e2e

BEARER_KEY = "plainbearerkey" + "x7" * 10
AZURE_KEY = "0123456789abcdef" * 2


@pytest.mark.parametrize(
    ("header", "value", "key"),
    [
        ("Authorization", f"Bearer {BEARER_KEY}", BEARER_KEY),
        ("api-key", AZURE_KEY, AZURE_KEY),
    ],
)
async def test_the_server_log_redacts_auth_headers(
    caplog: pytest.LogCaptureFixture, header: str, value: str, key: str
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving() as sim:
        client = await Client.open(sim.realtime_url, headers={header: value})
        assert (await client.recv())["type"] == "session.created"
        await client.ws.close()
    # the client's own websockets log is the client's business; everything else is the server's
    server = [r for r in caplog.records if not r.name.startswith("websockets.client")]
    logged = [r.getMessage() for r in server]
    assert any(line.startswith(f"< {header}: ") for line in logged), "headers not logged"
    assert not [line for line in logged if key in line]
    assert not [r for r in server if key in (r.exc_text or "")]
