"""A hostile Realtime server for the fault matrix (``tests/faults``): a raw ``websockets``
server on loopback that plays a scripted session and can send anything at all.

Each connection runs one script (``Script``: an async function of a ``Peer``), the first
connection the first script, a reconnection the next; a connection beyond the scripts gets
``ready``: ``session.created``, the end marker, then nothing. A script ends with
``Peer.end()``: an input transcript of ``END_ITEM`` that the client publishes once it has
handled everything sent before it, so a test knows when the script's effects are in; a
handshake can be answered with a redirect or an error status instead. ``Bystander`` is a
bare listener that must see nobody. A ``Peer`` sends events built from the recorded
wire fixtures (``tests/fixtures/wire``, so the event shapes have one home), or any frame as
given: a dict as JSON, a ``str`` as a text frame, ``bytes`` as a binary frame, ``Raw`` bytes
as a text frame however invalid their UTF-8. It can close with any code, reset the TCP
connection, freeze (stop reading, so pings go unanswered), or hold (silent, pings answered).

Everything a client sent is kept (``heads``: the handshake's headers; ``frames``), so a test
can show what reached the server. Each response's audio is a square wave of its own
amplitude (``HostileServer.amplitude``): what a sink played can be told apart by response.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import numpy as np
import pybase64
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.support import WIRE_FIXTURES

Script = Callable[["Peer"], Awaitable[None]]
END_ITEM = "hostile_end_of_script"
RATE = 24_000
PERIOD = 48
"""Samples per period of a response's square wave (500 Hz at 24 kHz)."""


def _templates(api: str) -> dict[str, dict[str, Any]]:
    """One recorded frame per server event type (the first of each), to build from."""
    cases: list[dict[str, Any]] = json.loads(
        (WIRE_FIXTURES / f"server_events_{api}.json").read_text())
    found: dict[str, dict[str, Any]] = {}
    for case in cases:
        found.setdefault(case["frame"]["type"], case["frame"])
    return found


TEMPLATES = {api: _templates(api) for api in ("ga", "beta")}


def square(ms: float, amplitude: int) -> bytes:
    """``ms`` of a square wave of ``amplitude``: its samples are +-amplitude and nothing else."""
    n = round(ms * RATE / 1000)
    wave = np.where((np.arange(n) // (PERIOD // 2)) % 2 == 0, amplitude, -amplitude)
    return wave.astype("<i2").tobytes()


@dataclass(frozen=True, slots=True)
class Raw:
    """Bytes sent as a text frame as they are (invalid UTF-8 included)."""

    data: bytes


Frame = dict[str, Any] | str | bytes | Raw


class Peer:
    """One connection, seen from the server: what it can send and what it has received."""

    def __init__(self, server: HostileServer, ws: ServerConnection, index: int) -> None:
        self.server = server
        self.ws = ws
        self.index = index
        """0 for the first connection, 1 for the first reconnection, ..."""
        self.api = server.api
        self._ids = 0
        self._arrived = asyncio.Event()

    # --- building events ----------------------------------------------------------------

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        """The fixture frame of ``kind`` (an API-neutral name: ``audio.delta`` and
        ``transcript.delta`` map to the flavour's own) with ``fields`` set; the event id is
        numbered per connection (``evt_1``, ``evt_2``, ...) unless given."""
        kind = {"audio.delta": "response.output_audio.delta" if self.api == "ga"
                else "response.audio.delta",
                "audio.done": "response.output_audio.done" if self.api == "ga"
                else "response.audio.done",
                "transcript.delta": "response.output_audio_transcript.delta"
                if self.api == "ga" else "response.audio_transcript.delta"}.get(kind, kind)
        frame = copy.deepcopy(TEMPLATES[self.api][kind])
        self._ids += 1
        frame["event_id"] = f"evt_{self._ids}"
        frame.update(fields)
        return frame

    def session_created(self, *, interrupt_response: bool = True) -> dict[str, Any]:
        frame = self.event("session.created")
        session = frame["session"]
        turn = session["audio"]["input"] if self.api == "ga" else session
        turn["turn_detection"]["interrupt_response"] = interrupt_response
        return frame

    def response_created(self, rid: str) -> dict[str, Any]:
        frame = self.event("response.created")
        frame["response"]["id"] = rid
        return frame

    def item_added(self, rid: str, item: str) -> dict[str, Any]:
        frame = self.event("response.output_item.added", response_id=rid)
        frame["item"]["id"] = item
        return frame

    def delta(self, rid: str, item: str, pcm: bytes) -> dict[str, Any]:
        return self.event("audio.delta", response_id=rid, item_id=item,
                          delta=pybase64.b64encode_as_string(pcm))

    def response_done(self, rid: str, status: str = "completed") -> dict[str, Any]:
        frame = self.event("response.done")
        frame["response"].update(id=rid, status=status, status_details=None)
        return frame

    def error(self, code: str | None, message: str = "refused", *,
              kind: str = "invalid_request_error", event_id: str | None = None) -> dict[str, Any]:
        return self.event("error", error={"type": kind, "code": code, "message": message,
                                          "param": None, "event_id": event_id})

    # --- sending ------------------------------------------------------------------------

    async def send(self, *frames: Frame) -> None:
        for frame in frames:
            if isinstance(frame, dict):
                await self.ws.send(json.dumps(frame))
            elif isinstance(frame, Raw):
                await self.ws.send(frame.data, text=True)
            else:
                await self.ws.send(frame)

    async def ready(self, *, interrupt_response: bool = True) -> None:
        await self.send(self.session_created(interrupt_response=interrupt_response))

    async def end(self) -> None:
        """The script is over: the end marker (``END_ITEM``'s input transcript, which a
        client publishes once it has handled everything sent before it), then silence."""
        await self.send(self.event("conversation.item.input_audio_transcription.completed",
                                   item_id=END_ITEM, transcript="end of script"))
        await self.hold()

    async def silence(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (the server's own pacing; pings are answered)."""
        await asyncio.sleep(seconds)

    async def reply(self, rid: str, item: str, ms: int, *, delta_ms: int = 100,
                    pace: float = 0.25, start: bool = True, done: bool = True,
                    text: str = "an answer") -> None:
        """A reply with audio: ``response.created``, the item, a transcript, ``ms`` of audio
        in deltas of ``delta_ms``, each after ``pace`` of its length in wall time (0.25: four
        times faster than real time, as servers send), the audio's end and
        ``response.done`` (unless ``done`` is False)."""
        if start:
            await self.send(self.response_created(rid), self.item_added(rid, item),
                            self.event("transcript.delta", response_id=rid, item_id=item,
                                       delta=text))
        await self.deltas(rid, item, ms, delta_ms=delta_ms, pace=pace)
        if done:
            await self.send(self.event("audio.done", response_id=rid, item_id=item),
                            self.response_done(rid))

    async def deltas(self, rid: str, item: str, ms: int, *, delta_ms: int = 100,
                     pace: float = 0.25) -> None:
        pcm = square(delta_ms, self.server.amplitude(self.index, rid))
        for _ in range(ms // delta_ms):
            await self.send(self.delta(rid, item, pcm))
            if pace:
                await asyncio.sleep(delta_ms / 1000 * pace)

    async def speech_started(self, item: str = "user_1") -> None:
        await self.send(self.event("input_audio_buffer.speech_started", item_id=item,
                                   audio_start_ms=0))

    async def client_event(self, *kinds: str, timeout: float = 5.0) -> dict[str, Any] | None:
        """The first client event of one of ``kinds`` on this connection (waiting up to
        ``timeout`` seconds for it: a server's patience, not a test's deadline), or None."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for frame in self.server.frames_of(self.index):
                if not isinstance(frame, str) or '"input_audio_buffer.append"' in frame:
                    continue
                found: dict[str, Any] = json.loads(frame)
                if found.get("type") in kinds:
                    return found
            left = deadline - loop.time()
            if left <= 0:
                return None
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    # --- ending -------------------------------------------------------------------------

    async def close(self, code: int, reason: str = "") -> None:
        await self.ws.close(code, reason)

    def reset(self) -> None:
        """Drop the TCP connection with a reset (RST): no close frame, no FIN."""
        sock = self.ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.ws.transport.abort()

    async def hold(self) -> None:
        """Say nothing more; pings are still answered (the reader keeps reading)."""
        self.server.script_over(self.index)
        await asyncio.Event().wait()

    async def freeze(self) -> None:
        """Stop the stream: nothing read (no pong to a ping), nothing sent."""
        self.ws.transport.pause_reading()
        await self.hold()


class Bystander:
    """A bare TCP listener that should see nobody (a proxy nobody asked for, the host a
    redirect points at): counts connections and hangs up at once."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.connections = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """``http://host:port``."""
        assert self._server is not None
        return f"http://{self.host}:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> Bystander:
        self._server = await asyncio.start_server(self._seen, self.host, 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _seen(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


async def ready(peer: Peer) -> None:
    """A connection beyond the scripts: ``session.created``, the end marker, silence."""
    await peer.ready()
    await peer.end()


class HostileServer:
    """Serves ``scripts`` on 127.0.0.1 (one per connection; then ``ready``).

    ``redirect`` answers every handshake with a 302 to that URL instead; ``refuse`` with that
    HTTP status (401: a key refused). ``finished`` is set
    when the last script has run out (returned, or holding); ``finished_at`` is then what
    ``clock()`` said (a test passes the clock its client runs on)."""

    def __init__(self, *scripts: Script, api: str = "ga", redirect: str | None = None,
                 refuse: int | None = None, clock: Callable[[], float] = lambda: 0.0) -> None:
        self.scripts = scripts
        self.api = api
        self.redirect = redirect
        self.refuse = refuse
        self.heads: list[Headers] = []
        self.frames: list[tuple[int, str | bytes]] = []
        self.failures: list[BaseException] = []
        """Exceptions a script raised that were not the connection closing: a broken test."""
        self.finished = asyncio.Event()
        self.finished_at: float | None = None
        self.fault_at: float | None = None
        self._clock = clock
        self._amplitudes: dict[tuple[int, str], int] = {}
        self._peers: list[Peer] = []
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/v1"

    @property
    def connections(self) -> int:
        return len(self.heads)

    def amplitude(self, index: int, rid: str) -> int:
        """The amplitude of the square wave of response ``rid`` on connection ``index``:
        1000, 2000, ... by first use (a server that numbers responses per connection reuses
        ids; its responses still sound apart)."""
        return self._amplitudes.setdefault((index, rid), 1000 * (len(self._amplitudes) + 1))

    @property
    def amplitudes(self) -> dict[tuple[int, str], int]:
        """(connection, response id) -> amplitude, for every response that sent audio."""
        return dict(self._amplitudes)

    def mark(self) -> None:
        """The fault is being injected now: ``fault_at`` is what the clock says."""
        if self.fault_at is None:
            self.fault_at = self._clock()

    def frames_of(self, index: int) -> list[str | bytes]:
        return [frame for i, frame in self.frames if i == index]

    def received(self) -> str:
        """Everything clients sent, headers and frames, as one text to search."""
        heads = "\n".join(str(h) for h in self.heads)
        frames = "\n".join(f if isinstance(f, str) else f.decode("latin-1")
                           for _, f in self.frames)
        return heads + "\n" + frames

    async def __aenter__(self) -> HostileServer:
        self._server = await serve(self._serve, "127.0.0.1", 0, ping_interval=None,
                                   max_size=None, close_timeout=1, compression=None,
                                   process_request=self._process_request)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        for peer in self._peers:
            peer.ws.transport.abort()
        for task in self._tasks:
            task.cancel()
        self._server.close()
        await self._server.wait_closed()

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        self.heads.append(request.headers)
        if self.refuse is not None:
            return ws.respond(HTTPStatus(self.refuse), "refused\n")
        if self.redirect is None:
            return None
        response = ws.respond(HTTPStatus.FOUND, "")
        response.headers["Location"] = self.redirect
        return response

    async def _serve(self, ws: ServerConnection) -> None:
        index = len(self._peers)
        handler = asyncio.current_task()
        assert handler is not None
        self._tasks.add(handler)  # a script holding forever ends with the server
        peer = Peer(self, ws, index)
        self._peers.append(peer)
        reader = asyncio.create_task(self._read(peer))
        self._tasks.add(reader)
        script = self.scripts[index] if index < len(self.scripts) else ready
        try:
            await script(peer)
        except ConnectionClosed:
            pass
        except Exception as exc:  # the script's own bug: the test reports it
            self.failures.append(exc)
        finally:
            self.script_over(index)
        with contextlib.suppress(ConnectionClosed):
            await ws.wait_closed()

    def script_over(self, index: int) -> None:
        """Connection ``index``'s script has nothing more to say: if it is the last script,
        the server is ``finished``."""
        if index >= len(self.scripts) - 1 and not self.finished.is_set():
            self.finished_at = self._clock()
            self.finished.set()

    async def _read(self, peer: Peer) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in peer.ws:
                self.frames.append((peer.index, frame))
                peer._arrived.set()
