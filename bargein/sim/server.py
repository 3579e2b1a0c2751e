"""The simulator's server: ``Simulator``, ``serve()``, and the admission of each client.

The handshake decides what a connection gets: its API flavour (beta for clients sending
``OpenAI-Beta: realtime=v1``), its model and its faults; or an HTTP refusal (a path that
does not end in ``/realtime``, a rejected key, a bad fault spec, the ``handshake_status``
fault). An admitted client is one ``Connection`` (connection.py) with its record.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from bargein.errors import SimError
from bargein.logs import get_logger
from bargein.redaction import RedactingFilter
from bargein.sim.config import SimConfig
from bargein.sim.connection import Connection, SimSocket
from bargein.sim.faults import Faults
from bargein.sim.record import ConnectionRecord
from bargein.sim.settings import Api
from bargein.sim.voice import Voicebank

log = get_logger(__name__)

_ws_logger = logging.getLogger("bargein.sim.server.websockets")
"""websockets' own log of the server: at debug it holds clients' auth headers, so redacted."""
_ws_logger.addFilter(RedactingFilter())

FAULTS_PARAM: Final = "sim_faults"
FAULTS_HEADER: Final = "X-Bargein-Sim-Faults"
_BEARER = re.compile(r"^\s*Bearer\s+(.+?)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Handshake:
    """What an admitted connection asked for."""

    api: Api
    model: str
    path: str
    query: str
    faults: Faults
    faults_spec: str


def _handshake(request: Request, config: SimConfig) -> _Handshake | tuple[HTTPStatus, str]:
    """What a connection asked for, or the HTTP status and reason to refuse it."""
    url = urlsplit(request.path)
    if not url.path.rstrip("/").endswith("/realtime"):
        return HTTPStatus.NOT_FOUND, "the simulator serves paths ending in /realtime\n"
    key = _api_key(request.headers)
    accepted = config.accept_api_keys
    if (key is not None and key in config.reject_api_keys) or (
        accepted is not None and key not in accepted
    ):
        return HTTPStatus.UNAUTHORIZED, "Incorrect API key provided.\n"
    query = parse_qs(url.query)
    spec = request.headers.get(FAULTS_HEADER) or ",".join(query.get(FAULTS_PARAM, []))
    try:
        faults = Faults.parse(spec) if spec else config.faults
    except SimError as exc:
        return HTTPStatus.BAD_REQUEST, f"{exc}\n"
    if faults.handshake_status:
        status = HTTPStatus(faults.handshake_status)
        return status, f"{status.phrase} (the simulator's fault handshake_status)\n"
    beta = "realtime=v1" in (request.headers.get("OpenAI-Beta") or "")
    model = (query.get("model") or query.get("deployment") or ["gpt-realtime"])[0]
    return _Handshake("beta" if beta else "ga", model, url.path, url.query, faults, spec)


def _api_key(headers: Headers) -> str | None:
    if "api-key" in headers:
        return headers["api-key"]
    match = _BEARER.match(headers.get("Authorization") or "")
    return match.group(1) if match else None


class Simulator:
    """A running simulator: ``async with Simulator(config) as sim:`` then connect to ``sim.url``.

    ``sim.url`` is the base URL (``ws://127.0.0.1:PORT/v1``) the official SDK takes as
    ``websocket_base_url``; clients connect to ``{url}/realtime?model=...``. Each
    connection's record is in ``records``, in connection order; with
    ``SimConfig(keep_records=False)`` a record leaves ``records`` when its connection
    closes, so ``records`` holds the open connections only.

    ``tls=`` (a server context, ``bargein.sim.tls.server_context``) serves ``wss://`` as
    upstream does; the client must then trust its certificate (``bargein.sim.tls``).
    """

    def __init__(
        self, config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0, *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config or SimConfig()
        self.host = host
        self.port = port
        self.tls = tls
        """A server context (``bargein.sim.tls.server_context``): then ``wss://``."""
        self.records: list[ConnectionRecord] = []
        self.violations: list[str] = []
        self._server: Server | None = None
        self._open: dict[int, Connection] = {}
        """The open connections, by the ``id`` of their record."""
        self._new_record = asyncio.Event()
        self._voices = Voicebank(self.config.voice)
        self._accepted = 0
        """Connections admitted so far; numbers them in the log."""

    @property
    def url(self) -> str:
        return f"{'ws' if self.tls is None else 'wss'}://{self.host}:{self.port}/v1"

    @property
    def realtime_url(self) -> str:
        return f"{self.url}/realtime"

    async def start(self) -> None:
        await self._voices.prepare(self.config.texts())
        try:
            self._server = await ws_serve(
                self._serve,
                self.host,
                self.port,
                ssl=self.tls,
                process_request=self._admit,
                create_connection=SimSocket,
                max_size=2**24,
                compression=None,
                close_timeout=1.0,
                logger=_ws_logger,
            )
        except OSError as exc:
            raise SimError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
        self.port = self._server.sockets[0].getsockname()[1] if self.port == 0 else self.port
        log.info("sim.listening", url=self.url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def connection(self, index: int = 0, timeout: float = 5.0) -> ConnectionRecord:
        """The record of the ``index``-th connection, waiting for it to arrive."""

        async def arrived() -> ConnectionRecord:
            while len(self.records) <= index:
                self._new_record.clear()
                await self._new_record.wait()
            return self.records[index]

        try:
            return await asyncio.wait_for(arrived(), timeout)
        except TimeoutError:
            raise SimError(f"no connection number {index} within {timeout} s") from None

    def drop(self, index: int = -1) -> None:
        """Cut the TCP connection of ``records[index]`` now, without a close frame, as a
        network failure would: for a test that picks the moment itself (the fault
        ``disconnect_at`` ties it to a protocol phase instead)."""
        conn = self._open.get(id(self.records[index]))
        if conn is None:
            raise SimError(f"connection {index} is already closed")
        conn.drop()

    def check(self) -> None:
        """Raise AssertionError listing events the ``on_event`` hook rejected."""
        if self.violations:
            raise AssertionError(
                "the simulator sent events its hook rejected:\n" + "\n".join(self.violations)
            )

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        verdict = _handshake(request, self.config)
        if isinstance(verdict, tuple):
            return connection.respond(*verdict)
        return None

    async def _serve(self, ws: ServerConnection) -> None:
        assert isinstance(ws, SimSocket) and ws.request is not None
        setup = _handshake(ws.request, self.config)
        assert not isinstance(setup, tuple)
        record = ConnectionRecord(setup.api, setup.path, setup.faults_spec, query=setup.query)
        self.records.append(record)
        self._new_record.set()
        self._accepted += 1
        number = self._accepted
        peer = ws.remote_address
        log.info("sim.connected", connection=number,
                 peer=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer),
                 api=setup.api, model=setup.model, faults=setup.faults_spec or "none")
        conn = Connection(
            ws,
            self.config,
            setup.api,
            setup.model,
            setup.faults,
            record,
            self.violations,
            self._voices,
        )
        self._open[id(record)] = conn
        try:
            await conn.run()
        finally:
            del self._open[id(record)]
            record.mark_closed(ws.close_code, ws.close_reason or "")
            if log.enabled("info"):  # counting decodes the record: only when it is shown
                log.info("sim.closed", connection=number, code=ws.close_code,
                         seconds=round(record.now_ms() / 1000, 1),
                         responses=len(record.server_events("response.done")),
                         cancels=len(record.client_events("response.cancel")),
                         truncates=len(record.client_events("conversation.item.truncate")))
            if not self.config.keep_records:
                self.records.remove(record)


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    config: SimConfig | None = None,
    on_ready: Callable[[str], None] | None = None,
    *,
    tls: ssl.SSLContext | None = None,
) -> None:
    """Serve the simulator until interrupted (Ctrl-C raises KeyboardInterrupt to the caller).

    ``on_ready`` is called with the base URL once the socket listens, e.g. to print it;
    with ``tls`` (``bargein.sim.tls.server_context``) it serves ``wss://``.
    This call owns its process, so it freezes everything allocated before serving out of
    the garbage collector's sight: with hundreds of sessions, full collections that walked
    the imported modules' objects again and again paused every session at once.
    """

    async def run() -> None:
        async with Simulator(config, host, port, tls=tls) as sim:
            gc.collect()
            gc.freeze()
            if on_ready is not None:
                on_ready(sim.url)
            await sim.serve_forever()

    asyncio.run(run())
