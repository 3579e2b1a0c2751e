"""A live inspector: a page on this machine that shows a conversation's machine as it runs.

::

    async with Inspector() as inspector:              # 127.0.0.1, a free port
        print(inspector.url)                          # open it in a browser
        async with Session(transport, source, sink) as session:
            inspector.attach(session)
            await session.wait()

``bargein talk --inspect`` does the same for the command line. (Over 400 lines: one small
HTTP and WebSocket server on loopback, its Host and Origin checks, and the records it keeps,
which belong together; the page itself is ``bargein/data/inspector.html``.)

The page shows the state diagram (``bargein.states.diagram``, drawn by Graphviz) with the
current state and the last edge that moved highlighted, the recent events (each edge with its
trigger and reason, transcripts, barge-ins with what each item kept), and the per-response
figures of ``Session.figures``. It is one self-contained document (inline CSS and script,
nothing from the network). The same records go out as JSON lines:

- ``GET /ws`` (a WebSocket): a ``snapshot`` object first, then one record a message, live;
- ``GET /events.jsonl``: the records kept so far (``history``), one JSON object a line;
- ``jsonl=PATH`` (``--inspect-jsonl``): every record appended to a file as it happens.

Every record is an object with ``seq`` (1, 2, ...), ``type`` and ``at_ms`` (the session's
clock), and by type:

- ``machine``: ``name``, ``initial``, ``states`` (``name``, ``interruptible``,
  ``description``), ``edges`` (``trigger``, ``source``, ``dest``, ``conditions``,
  ``unless``, ``reason``) and a ``digest`` of them; first, and again if the table changes;
- ``state``: a fired edge, ``source``, ``dest``, ``trigger``, ``reason``, and ``internal``
  (an edge that stays where it is);
- ``transcript``: ``role``, ``item_id``, ``text`` (the user's utterance, or one delta of
  the assistant's);
- ``interrupted``: ``trigger``, ``stop_latency_ms``, ``cancelled``, ``settlements``
  (``item_id``, ``response_id``, ``received_ms``, ``heard_ms``, ``action``,
  ``audio_end_ms``);
- ``figures``: ``responses``, the fields of ``ResponseFigures``, whenever they change;
- ``closed``: ``reason``.

Only this machine can look: the server binds a loopback address and refuses any other
host; it answers only requests addressed to that loopback host (a web page elsewhere that
renames itself to 127.0.0.1 cannot read it) and WebSocket clients from its own page or from
no page at all. What it shows are the session's observations, which never carry the API key.
Nothing is printed; ``bargein.logs`` gets a line when it starts and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import hashlib
import html
import ipaddress
import json
import logging
import os
import re
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from importlib import resources
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bargein.errors import DiagramError, InspectorError
from bargein.logs import get_logger
from bargein.session import Closed, Interrupted, Observation, StateChanged, Transcript
from bargein.states import DEFAULT_TABLE, StateTable
from bargein.states.diagram import render

if TYPE_CHECKING:
    from bargein.session import ResponseFigures, Session

log = get_logger(__name__)

_ws_logger = logging.getLogger("bargein.inspector.websockets")
"""websockets' own log of the server. Every page load is an HTTP answer that websockets
reports as a 'rejected' handshake at info: noise, so only its warnings pass."""
_ws_logger.setLevel(logging.WARNING)

Record = dict[str, Any]

_DRAIN_S = 2.0
"""How long ``close()`` lets the pages take the records still queued for them."""
_MAX_QUEUED = 10_000
"""Records waiting for one slow WebSocket client before it is let go (it may reconnect)."""


def loopback_host(host: str) -> str:
    """The address to bind for ``host``, which must be a loopback address (or
    ``localhost``, taken as 127.0.0.1 without asking a resolver); anything else is refused."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise InspectorError(
            f"the inspector serves on a loopback address only (127.0.0.1 or ::1), not "
            f"{host!r}: it shows the conversation, transcripts included, to whoever connects"
        )
    return str(address)


class Inspector:
    """Serves the live page and the JSON lines of one conversation (see the module's doc).

    ``table`` is the machine to draw until ``attach()`` names the session's own; ``port`` 0
    takes a free port; ``jsonl`` is a path (truncated) or an open text file to write each
    record to; ``history`` is how many records a newly opened page receives; ``serve=False``
    writes the JSON lines without serving anything. It is also an ``Observer``: pass it to
    ``Session.subscribe`` yourself if you want the events without the figures.
    """

    def __init__(
        self,
        table: StateTable = DEFAULT_TABLE,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        jsonl: str | os.PathLike[str] | IO[str] | None = None,
        history: int = 500,
        serve: bool = True,
        figures_interval_s: float = 0.25,
    ) -> None:
        self.host = loopback_host(host)
        if not 0 <= port <= 65535:
            raise InspectorError(f"the inspector's port must be 0 (any free one) to 65535, "
                                 f"not {port}")
        self.port = port
        self._serve = serve
        self._jsonl_target = jsonl
        self._jsonl: IO[str] | None = None
        self._owns_jsonl = False
        self._table = table
        self._machine = _machine_record(table)
        self._svg: dict[str, str] = {}
        self._history: deque[Record] = deque(maxlen=max(1, history))
        self._seq = 0
        self._state = table.initial
        self._last_edge: Record | None = None
        self._figures: Record | None = None
        self._closed: str | None = None
        self._clients: set[asyncio.Queue[str | None]] = set()
        self._handlers: set[asyncio.Future[None]] = set()
        self._closing = False
        self._server: Server | None = None
        self._viewer = asyncio.Event()
        self._session: Session | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._figures_interval = figures_interval_s
        self._page = resources.files("bargein").joinpath("data/inspector.html").read_bytes()
        self._machine = self._stamp(self._machine, 0.0)

    # --- serving -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The page's address (after ``start()``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def start(self) -> None:
        """Open the JSON lines file and start serving. Idempotent."""
        self._closing = False
        if self._jsonl is None and self._jsonl_target is not None:
            target = self._jsonl_target
            if isinstance(target, (str, os.PathLike)):
                try:
                    self._jsonl = open(target, "w", encoding="utf-8")  # noqa: SIM115
                except OSError as exc:
                    raise InspectorError(
                        f"cannot write the inspector's JSON lines to {os.fspath(target)!r}: "
                        f"{exc.strerror}") from None
                self._owns_jsonl = True
            else:
                self._jsonl = target
            self._write_line(self._machine)
            for record in self._history:
                self._write_line(record)
        if not self._serve or self._server is not None:
            return
        try:
            self._server = await serve(
                self._handle, self.host, self.port,
                process_request=self._http, compression=None, max_size=2**16,
                server_header=None, close_timeout=1.0, logger=_ws_logger,
            )
        except OSError as exc:
            raise InspectorError(
                f"cannot serve the inspector on {self.host}:{self.port}: {exc.strerror}"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("inspector_listening", url=self.url)

    async def close(self) -> None:
        """Stop the figures watcher and the server, let pages go, close the JSON lines."""
        self.detach()
        self._closing = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        for queue in list(self._clients):
            queue.put_nowait(None)  # after the records still queued: each page gets them all
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=_DRAIN_S)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            log.info("inspector_stopped")
        if self._jsonl is not None:
            if self._owns_jsonl:
                self._jsonl.close()
            else:
                self._jsonl.flush()
            self._jsonl = None

    async def __aenter__(self) -> Inspector:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def viewer(self) -> None:
        """Wait until a page (any WebSocket client) has received its snapshot: for
        ``--inspect-wait``, which starts the conversation only once someone is looking."""
        await self._viewer.wait()

    # --- what it shows -----------------------------------------------------------------

    def attach(self, session: Session) -> Callable[[], None]:
        """Show ``session``: its machine, every observation, and its figures as they change.
        Returns a function that detaches it. One session at a time."""
        self.detach()
        self._use_table(session.conversation.table, session.now_ms())
        self._session = session
        self._unsubscribe = session.subscribe(self)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(
                self._watch_figures(), name="bargein-inspector-figures")
        return self.detach

    def detach(self) -> None:
        """Stop showing the attached session (its last figures stay on the page)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._session is not None:
            self._emit_figures(self._session)
            self._session = None

    def __call__(self, obs: Observation) -> None:
        """An ``Observer``: one record per observation, its fields as the session gives
        them (a kind of observation added later is passed on by its name)."""
        record = _observation_record(obs)
        if isinstance(obs, StateChanged):
            self._state = obs.dest
        elif isinstance(obs, Closed):
            if self._session is not None:
                self._emit_figures(self._session)
            self._closed = obs.reason
        self._emit(self._stamp(record, obs.at_ms))

    @property
    def state(self) -> str:
        """The state the page shows as current."""
        return self._state

    def records(self) -> list[Record]:
        """The machine record, then the records kept (what ``/events.jsonl`` answers)."""
        kept = list(self._history)
        if self._figures is not None and self._figures not in kept:
            kept.append(self._figures)
        return [self._machine, *kept]

    # --- inside ------------------------------------------------------------------------

    def _stamp(self, record: Record, at_ms: float) -> Record:
        self._seq += 1
        return {"seq": self._seq, "type": record.pop("type"), "at_ms": _round(at_ms), **record}

    def _emit(self, record: Record) -> None:
        if record["type"] == "machine":
            self._machine = record
        else:
            self._history.append(record)
        if record["type"] == "figures":
            self._figures = record
        if record["type"] == "state" and not record["internal"]:
            self._last_edge = record
        self._write_line(record)
        text = _dumps(record)
        for queue in list(self._clients):
            if queue.qsize() >= _MAX_QUEUED:
                self._clients.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(text)

    def _write_line(self, record: Record) -> None:
        if self._jsonl is None:
            return
        try:
            self._jsonl.write(_dumps(record) + "\n")
            self._jsonl.flush()
        except (OSError, ValueError) as exc:  # a full disk must not stop the conversation
            log.warning("inspector_jsonl_failed", error=f"{type(exc).__name__}: {exc}")
            self._jsonl = None

    def _use_table(self, table: StateTable, at_ms: float) -> None:
        if table == self._table:
            return
        self._table = table
        if self._session is None and self._last_edge is None:
            self._state = table.initial
        self._emit(self._stamp(_machine_record(table), at_ms))

    def _emit_figures(self, session: Session) -> None:
        responses = [_figures_dict(f) for f in list(session.figures.values())]
        if self._figures is not None and self._figures["responses"] == responses:
            return
        self._emit(self._stamp({"type": "figures", "responses": responses}, session.now_ms()))

    async def _watch_figures(self) -> None:
        """Figures change without an observation (first audio, dropped late audio): look."""
        while True:
            await asyncio.sleep(self._figures_interval)
            if self._session is not None:
                self._emit_figures(self._session)

    def _snapshot(self, svg: str) -> Record:
        return {
            "type": "snapshot",
            "machine": self._machine,
            "svg": svg,
            "state": self._state,
            "last_edge": self._last_edge,
            "records": list(self._history),
            "figures": self._figures,
            "closed": self._closed,
        }

    async def _diagram(self) -> str:
        """The SVG of the current table, drawn once per table (Graphviz runs in a thread);
        without Graphviz, a plain row of the states with the same structure."""
        digest = self._machine["digest"]
        svg = self._svg.get(digest)
        if svg is None:
            table = self._table
            try:
                text = await asyncio.to_thread(render, table, "svg")
                svg = text[text.index("<svg"):]
            except DiagramError as exc:
                log.warning("inspector_plain_diagram", error=str(exc))
                svg = _plain_svg(table)
            self._svg[digest] = svg
        return svg

    # --- HTTP and WebSocket ------------------------------------------------------------

    def _allowed_hosts(self) -> set[str]:
        names = {"localhost", "127.0.0.1", self.host, f"[{self.host}]"}
        return {f"{name}:{self.port}" for name in names}

    async def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        """Plain HTTP for the page and the JSON lines; the WebSocket handshake for ``/ws``."""
        if request.headers.get("Host", "").lower() not in self._allowed_hosts():
            return _response(HTTPStatus.MISDIRECTED_REQUEST, "text/plain",
                             b"the inspector answers only requests to its loopback address\n")
        path = urlsplit(request.path).path
        if path == "/ws":
            origin = request.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc.lower() not in self._allowed_hosts():
                return _response(HTTPStatus.FORBIDDEN, "text/plain",
                                 b"the inspector talks to its own page only\n")
            return None  # on with the WebSocket handshake
        if path == "/":
            return _response(HTTPStatus.OK, "text/html; charset=utf-8", await self._render_page(),
                             page=True)
        if path == "/diagram.svg":
            svg = await self._diagram()
            return _response(HTTPStatus.OK, "image/svg+xml", svg.encode())
        if path == "/events.jsonl":
            body = "".join(_dumps(r) + "\n" for r in self.records()).encode()
            return _response(HTTPStatus.OK, "application/jsonl; charset=utf-8", body)
        return _response(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")

    async def _current_snapshot(self) -> str:
        while True:  # the table may change while it is drawn (attach): draw the last one
            digest = self._machine["digest"]
            svg = await self._diagram()
            if digest == self._machine["digest"]:
                return _dumps(self._snapshot(svg))

    async def _render_page(self) -> bytes:
        """The page with the snapshot inside, so that it shows the conversation before its
        WebSocket opens (and to a browser that runs no socket: ``--dump-dom``)."""
        snapshot = (await self._current_snapshot()).replace("<", "\\u003c")
        return self._page.replace(b"{{SNAPSHOT}}", snapshot.encode())

    async def _handle(self, ws: ServerConnection) -> None:
        """One page: its snapshot, then every record as it happens."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        handled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._handlers.add(handled)
        try:
            await self._send_records(ws, queue)
        finally:
            self._handlers.discard(handled)
            handled.set_result(None)

    async def _send_records(self, ws: ServerConnection, queue: asyncio.Queue[str | None]
                            ) -> None:
        snapshot = await self._current_snapshot()
        if self._closing:
            return
        self._clients.add(queue)  # no await since the snapshot: no record falls between
        gone = asyncio.ensure_future(ws.wait_closed())
        try:
            await ws.send(snapshot)
            self._viewer.set()
            while True:
                get = asyncio.ensure_future(queue.get())
                await asyncio.wait((get, gone), return_when=asyncio.FIRST_COMPLETED)
                if not get.done():  # the page went away
                    get.cancel()
                    return
                text = get.result()
                if text is None:  # the inspector is closing, and this page has had all
                    return
                await ws.send(text)
        except ConnectionClosed:
            pass
        finally:
            gone.cancel()
            self._clients.discard(queue)


def _machine_record(table: StateTable) -> Record:
    states = [{"name": s.name, "interruptible": table.interruptible(s.name),
               "description": s.description} for s in table.states]
    edges = [{"trigger": e.trigger, "source": e.source, "dest": e.dest,
              "conditions": list(e.conditions), "unless": list(e.unless), "reason": e.reason}
             for e in table.edges()]
    body = {"name": table.name, "initial": table.initial, "states": states, "edges": edges}
    digest = hashlib.sha256(_dumps(body).encode()).hexdigest()[:16]
    return {"type": "machine", **body, "digest": digest}


_KINDS = {StateChanged: "state", Transcript: "transcript", Interrupted: "interrupted",
          Closed: "closed"}


def _observation_record(obs: object) -> Record:
    kind = _KINDS.get(type(obs)) or re.sub(r"(?<!^)(?=[A-Z])", "_", type(obs).__name__).lower()
    fields = _jsonable(obs)
    # the kind last: a ServerEvent's own ``type`` stays in its ``event``
    record: Record = {**(fields if isinstance(fields, dict) else {}), "type": kind}
    record.pop("at_ms", None)
    if isinstance(obs, StateChanged):
        record["internal"] = obs.source == obs.dest
    return record


def _figures_dict(figures: ResponseFigures) -> Record:
    out = _jsonable(figures)
    assert isinstance(out, dict)
    return out


def _jsonable(value: object) -> Any:
    """Plain JSON values: a dataclass as its fields, floats to 0.1 ms, anything else as text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return _round(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return str(value)


def _round(value: float) -> float:
    return round(value, 1)


def _dumps(record: Record) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'")


def _response(status: HTTPStatus, content_type: str, body: bytes, *, page: bool = False
              ) -> Response:
    headers = Headers()
    headers["Date"] = email.utils.formatdate(usegmt=True)
    headers["Connection"] = "close"
    headers["Content-Type"] = content_type
    headers["Content-Length"] = str(len(body))
    headers["Cache-Control"] = "no-store"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    if page:
        headers["Content-Security-Policy"] = _CSP
    return Response(status.value, status.phrase, headers, body)


def _plain_svg(table: StateTable) -> str:
    """The states in a row, as Graphviz would group them (``g.node`` with a ``title``), so
    the page highlights them the same way when ``dot`` is missing."""
    parts, x = [], 10
    for state in table.states:
        width = 24 + 9 * len(state.name)
        fill = "#ffe7c2" if table.interruptible(state.name) else "#f4f4f4"
        name = html.escape(state.name)
        parts.append(
            f'<g class="node"><title>{name}</title>'
            f'<rect x="{x}" y="10" width="{width}" height="36" rx="6" fill="{fill}" '
            f'stroke="black"/><text x="{x + width / 2}" y="33" text-anchor="middle" '
            f'font-family="Helvetica,sans-Serif" font-size="14">{name}</text></g>')
        x += width + 20
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{x}pt" height="56pt" '
            f'viewBox="0 0 {x} 56"><g class="graph">{"".join(parts)}</g></svg>')
