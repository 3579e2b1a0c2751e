"""``AtOnce`` connections against plain ``websockets`` peers over loopback.

The frames ``send_text_now`` writes itself must read as websockets' own at every length
encoding (7-bit, 16-bit and 64-bit lengths, masked from a client and not from a server);
the peers negotiate no compression (websockets' default would, and then websockets writes
the frames), except where a test says so;
``listen`` must hand messages over in order, and fall back to ``recv()`` for what only
websockets handles: a fragmented message, and text that is not UTF-8 (close code 1007).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bargein.adapters.at_once import AtOnce

pytestmark = pytest.mark.e2e

SIZES = (0, 1, 125, 126, 127, 2_600, 65_535, 65_536, 70_000)
"""Payload lengths around each of RFC 6455's length encodings."""


class Client(AtOnce, ClientConnection):
    pass


class Server(AtOnce, ServerConnection):
    pass


def payload(size: int) -> str:
    """``size`` bytes of UTF-8 text that differ from one position to the next."""
    return "".join(chr(65 + (i * 7) % 26) for i in range(size))


@asynccontextmanager
async def server(handler: Callable[[ServerConnection], Awaitable[None]],
                 create_connection: type[ServerConnection] | None = None,
                 compression: str | None = None) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0, max_size=2**20, compression=compression,
                     create_connection=create_connection) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


def dial(url: str, create_connection: type[ClientConnection] | None = None,
         compression: str | None = None) -> connect:
    return connect(url, create_connection=create_connection, max_size=2**20,
                   compression=compression)


async def send_now(ws: AtOnce, text: str) -> None:
    """Write ``text`` at once, after any earlier frame has left the write buffer."""
    while not ws.can_send_now():
        await asyncio.sleep(0.001)
    ws.send_text_now(text.encode())


async def test_client_frames_read_as_websockets_own_at_every_length() -> None:
    received: list[str] = []

    async def echo_lengths(ws: ServerConnection) -> None:
        async for message in ws:
            assert isinstance(message, str)
            received.append(message)
            await ws.send(str(len(message)))

    async with server(echo_lengths) as url, dial(url, Client) as ws:
        assert isinstance(ws, Client) and not ws.protocol.extensions  # our frames, not its
        for size in SIZES:
            await send_now(ws, payload(size))
            assert await asyncio.wait_for(ws.recv(), 10) == str(size)
    assert received == [payload(size) for size in SIZES]


async def test_server_frames_read_as_websockets_own_at_every_length() -> None:
    async def send_all(ws: ServerConnection) -> None:
        assert isinstance(ws, Server) and not ws.protocol.extensions
        for size in SIZES:
            await send_now(ws, payload(size))
        await ws.wait_closed()

    async with server(send_all, create_connection=Server) as url, dial(url) as ws:
        got = [await asyncio.wait_for(ws.recv(), 10) for _ in SIZES]
    assert got == [payload(size) for size in SIZES]


class Handing(Client):
    """Counts the times websockets was handed data to write (``send_data``)."""

    handed = 0

    def send_data(self) -> None:
        self.handed += 1
        super().send_data()


async def test_with_compression_negotiated_websockets_writes_the_frames() -> None:
    """Frames it compresses cannot be written as they are: ``send_text_now`` hands each to
    websockets, and the peer reads every one."""
    received: list[str] = []

    async def take(ws: ServerConnection) -> None:
        async for message in ws:
            assert isinstance(message, str)
            received.append(message)

    async with server(take, compression="deflate") as url, dial(
            url, Handing, compression="deflate") as ws:
        assert isinstance(ws, Handing) and ws.protocol.extensions
        before = ws.handed
        for size in SIZES:
            await send_now(ws, payload(size))
        assert ws.handed - before == len(SIZES)
    assert received == [payload(size) for size in SIZES]


def test_masking_keys_are_four_bytes_and_do_not_repeat_across_pool_refills() -> None:
    ws = Client.__new__(Client)  # no connection needed to draw keys
    keys = [ws._mask_key() for _ in range(3 * 1024 + 5)]
    assert {len(key) for key in keys} == {4}
    assert len(set(keys)) >= len(keys) - 2  # random 32-bit keys: a repeat is ~1 in 1,000


async def test_messages_keep_their_order_through_a_fragmented_one() -> None:
    async def mixed(ws: ServerConnection) -> None:
        await ws.send("one")
        await ws.send(b"two")
        await ws.send(["thr", "ee"])  # a fragmented message: recv() from here on
        await ws.send("four")
        await ws.close()

    got: list[str | bytes] = []
    async with server(mixed) as url, dial(url, Client) as ws:
        assert isinstance(ws, Client)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.listen(got.append), 10)
    assert got == ["one", b"two", "three", "four"]


async def test_text_that_is_not_utf8_fails_the_connection_with_1007() -> None:
    async def invalid(ws: ServerConnection) -> None:
        await ws.send("fine")
        await ws.send(b"\xff\xfe", text=True)  # websockets sends bytes as text unchecked
        await ws.wait_closed()

    got: list[str | bytes] = []
    async with server(invalid) as url, dial(url, Client) as ws:
        assert isinstance(ws, Client)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.listen(got.append), 10)
    assert got == ["fine"]
    assert closed.value.sent is not None and closed.value.sent.code == 1007


@pytest.mark.parametrize("listening_first", [True, False], ids=["parsed", "queued"])
async def test_what_the_listener_raises_cuts_the_connection_and_is_raised(
        listening_first: bool) -> None:
    """Whether the message is handed over where it is parsed (the client listens before it
    comes) or taken from recv()'s queue (it came before), a failing listener gets nothing
    more, the connection is cut, and listen() raises the failure."""

    async def two(ws: ServerConnection) -> None:
        if listening_first:
            await ws.recv()  # the client listens by now
        await ws.send("boom")
        await ws.send("after")
        await ws.wait_closed()

    got: list[str | bytes] = []

    def on_message(message: str | bytes) -> None:
        got.append(message)
        if message == "boom":
            raise ValueError("the listener failed")

    async with server(two) as url, dial(url, Client) as ws:
        assert isinstance(ws, Client)
        if not listening_first:
            await asyncio.sleep(0)
            while len(ws.recv_messages.frames) < 2:  # both messages queued before listen()
                await asyncio.sleep(0.001)
        listening = asyncio.create_task(ws.listen(on_message))
        if listening_first:
            await asyncio.sleep(0)  # listen() has set its listener
            await ws.send("ready")
        with pytest.raises(ValueError, match="the listener failed"):
            await asyncio.wait_for(listening, 10)
        assert ws.transport.is_closing()
    assert got == ["boom"]
