"""The Realtime WebSocket connection: connect, send commands, iterate core events, reconnect.

A thin asyncio layer over ``websockets`` and ``WireCodec``. Failures become typed errors
with one-line messages that never contain the key. It is long (~720 lines) because the
security rules below, the reconnect policy and the keepalive each guard the same connect
path, and are read best beside it.

**The key stays home.** Every refusal below happens before a header is sent, with one line
and a typed error:

- *No proxy unless asked.* websockets tunnels through ``HTTPS_PROXY``,
  ``ALL_PROXY`` or ``http_proxy`` by default; bargein turns that off (``proxy=None``) and
  uses only the proxy the ``Endpoint`` names, and that only for ``wss://``: a proxy for a
  plaintext ``ws://`` endpoint would read the whole handshake, key included
  (``InsecureProxy``). Through TLS a proxy sees the target host and port, nothing else.
- *No redirect, ever.* The OpenAI and Azure Realtime endpoints answer the upgrade
  themselves and never redirect, so a 3xx is a wrong URL or someone in the middle. Every
  redirect is refused (``RedirectRefused``, naming the status and where it pointed, scheme,
  host and port only), rather than followed under rules: following only same-host,
  same-scheme redirects would be just as safe for the key, but it would hide a misconfigured
  URL and buy nothing a user could not get by writing the final URL. Nothing is sent to the
  target, so neither ``Authorization`` nor Azure's ``api-key`` can reach another host.
- *Plaintext only on this machine.* ``ws://`` needs a loopback host in the URL (or the
  caller's ``allow_plaintext``), and the connection must end on this machine too: bargein
  resolves the name itself and connects only to its loopback addresses, so a ``localhost``
  that resolves elsewhere is refused like any other host, before any connection is made. A
  host name that is not loopback is "another host" even if it resolves to 127.0.0.1.
- *No key to loopback unless asked.* A loopback endpoint's ``auth`` defaults to ``none``
  (``bargein.adapters.endpoints``); a key given to the transport is then not sent. A 401 or
  403 when no key was sent says so (``KeyRejected.key_sent`` is False) instead of blaming
  a key.

**A close says what happens next** (``close_action``). The server's close code decides:

=====================================  ==========  ==========================================
code                                   action      why
=====================================  ==========  ==========================================
1000 normal, 1005 no status            end         the server ended the session on purpose:
                                                   iteration ends cleanly
1001 going away, 1006 abnormal (no     reconnect   a server restarting, a network drop, an
close frame), 1011 internal error,                 overloaded or failing server: a new
1012 service restart, 1013 try again               session may work. OpenAI also closes with
later, 1014 bad gateway                            1001 when a session reaches its maximum
                                                   duration; the new session has lost the
                                                   context, and bargein says so
1002 protocol, 1003 unsupported data,  fail        the server refuses what bargein sends or
1007 invalid data, 1008 policy, 1009               who it is: reconnecting would be refused
too big, 1010 extension, 3000-4999                 again, or worse, silently start over.
(authentication, expired session,                  Iteration raises ``ServerClosed`` with the
application codes), anything else                  code and the (redacted) reason
=====================================  ==========  ==========================================

Only a close the server started counts: when bargein closes first (a keepalive ping that
timed out, a frame that broke the protocol), the server's echo of that code is no verdict,
and it is a drop (reconnect). Either way iteration yields ``Disconnected(reason)`` first.

**A reconnection is a new server session.** The server's context (the conversation's items,
a reply in flight, the input audio buffer) is gone; bargein re-sends the latest
``session.update`` and nothing else, yields ``Reconnected`` (the core abandons what was in
flight and goes back to listening), logs one warning line saying the context was lost, and
keeps the details in ``RealtimeTransport.last_reconnect``. Every new connection also starts
the codec afresh (``WireCodec.new_connection``): event ids are unique per connection only,
so the old connection's ids must not mark the new one's events as duplicates.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal
from urllib.parse import urljoin, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidProxy,
    InvalidProxyStatus,
    InvalidStatus,
    InvalidURI,
    ProxyError,
)

from bargein.adapters.at_once import AtOnce
from bargein.adapters.codec import WireCodec
from bargein.adapters.endpoints import Endpoint
from bargein.adapters.secrets import ApiKey
from bargein.core.commands import ServerCommand, UpdateSession
from bargein.core.events import Disconnected, Event, Reconnected
from bargein.errors import (
    ConnectFailed,
    ConnectionLost,
    ConnectTimeout,
    HandshakeRejected,
    InsecureEndpoint,
    InsecureProxy,
    KeyRejected,
    NotConnected,
    RedirectRefused,
    ServerClosed,
    StreamFrozen,
    TransportError,
)
from bargein.logs import get_logger
from bargein.redaction import RedactingFilter, redact

log = get_logger(__name__)

MAX_FRAME_BYTES: Final = 16 * 1024 * 1024
"""Largest frame accepted; audio deltas and session objects are far smaller."""

_ws_logger = logging.getLogger("bargein.adapters.transport.websockets")
_ws_logger.addFilter(RedactingFilter())

CloseAction = Literal["end", "fail", "reconnect"]

END_CODES: Final = frozenset({1000, 1005})
"""Close codes after which iteration ends cleanly (see the module docstring)."""

RECONNECT_CODES: Final = frozenset({1001, 1006, 1011, 1012, 1013, 1014})
"""Close codes after which the transport reconnects; every other code fails."""

_CLOSE_NAMES: Final = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status",
    1006: "abnormal closure",
    1007: "invalid frame payload",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension",
    1011: "internal error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
    3000: "unauthorized",
    3003: "forbidden",
    3008: "timeout",
}


def close_action(code: int | None) -> CloseAction:
    """What a close the server started means for the conversation; ``None`` stands for a
    connection lost without the server's close frame (as 1006)."""
    if code is None or code in RECONNECT_CODES:
        return "reconnect"
    if code in END_CODES:
        return "end"
    return "fail"


def close_name(code: int) -> str:
    """``1008 (policy violation)``; ``4001 (application code)`` for the 4000-4999 range."""
    name = _CLOSE_NAMES.get(code) or ("application code" if 4000 <= code <= 4999 else "")
    return f"{code} ({name})" if name else str(code)


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Exponential backoff with jitter: attempt ``n`` waits ``base * factor**n``, capped.

    The wait is drawn uniformly from ``[(1 - jitter) * d, d]`` so that many clients dropped
    together do not come back together. A reconnection that drops again within
    ``stable_after_s`` seconds counts as a failed attempt, so a server that accepts the
    handshake and closes at once exhausts ``max_attempts`` instead of looping forever;
    only a connection that stayed up that long restores the whole budget.
    """

    max_attempts: int = 5
    base_delay: float = 0.25
    factor: float = 2.0
    max_delay: float = 8.0
    jitter: float = 0.5
    stable_after_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_attempts < 0 or self.base_delay < 0 or self.max_delay < 0:
            raise TransportError("reconnect attempts and delays must not be negative")
        if not self.stable_after_s >= 0:
            raise TransportError("reconnect stable_after_s must be a non-negative number")
        if self.factor < 1 or not 0 <= self.jitter <= 1:
            raise TransportError("reconnect factor must be >= 1 and jitter within 0..1")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before reconnection attempt ``attempt`` (0-based)."""
        ceiling = min(self.max_delay, self.base_delay * self.factor**attempt)
        return rng.uniform((1 - self.jitter) * ceiling, ceiling)


@dataclass(frozen=True, slots=True)
class Reconnection:
    """What the latest reconnection did. It made a new server session: ``context_lost`` is
    always True (the Realtime API has no resumption: the conversation's items, a reply in
    flight and the input audio buffer are gone). ``session_restored`` says whether a
    ``session.update`` was sent again (only when one had been sent before)."""

    reason: str
    """Why the previous connection ended, as ``Disconnected.reason`` said."""
    attempts: int
    """Connection attempts this reconnection took."""
    down_s: float
    """Seconds from the drop to the new connection."""
    session_restored: bool
    context_lost: bool = True


@dataclass(frozen=True, slots=True)
class _Closed:
    """How a connection ended: the server's close code (``None``: the server did not start
    the close) and a one-line description."""

    code: int | None
    reason: str
    description: str

    @classmethod
    def of(cls, exc: ConnectionClosed) -> _Closed:
        rcvd, sent = exc.rcvd, exc.sent
        if rcvd is not None and (sent is None or exc.rcvd_then_sent):
            reason = redact(rcvd.reason)
            text = f"closed with code {rcvd.code}" + (f": {reason}" if reason else "")
            return cls(rcvd.code, reason, text)
        if sent is not None:
            reason = redact(sent.reason)
            text = f"closed by bargein with code {sent.code}" + (f": {reason}" if reason else "")
            return cls(None, reason, text)
        return cls(None, "", "connection dropped without a close frame")


class _Connection(AtOnce, ClientConnection):
    """websockets' client connection, with messages in and out at once
    (``bargein.adapters.at_once``)."""


class _Connect(connect):
    """websockets' ``connect`` that never follows a redirect: ``_handshake`` turns every 3xx
    into ``RedirectRefused``. (``process_redirect`` is where websockets decides to follow
    one.)"""

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


def _is_loopback_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


async def _loopback_socket(host: str, port: int) -> socket.socket:
    """A TCP socket connected to ``host`` on this machine: the name is resolved here and only
    its loopback addresses are tried, so a name that resolves elsewhere gets no connection
    (and no handshake) at all."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    local = [info for info in infos if _is_loopback_address(str(info[4][0]))]
    if not local:
        elsewhere = str(infos[0][4][0]) if infos else "no address"
        raise InsecureEndpoint(
            f"refusing plaintext ws:// to {host}: it resolved to {elsewhere}, which is not "
            "this machine; use wss://, or opt in to unencrypted connections explicitly"
        )
    failure: OSError | None = None
    for family, kind, proto, _, address in local:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            failure = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    assert failure is not None
    raise failure


KEEPALIVE_INTERVAL_S: Final = 5.0
KEEPALIVE_TIMEOUT_S: Final = 10.0
"""websockets' keepalive: a ping every 5 s, the connection dropped (and reconnected) when
one goes 10 s unanswered; with the 2 s close timeout a frozen stream is noticed within
17 s, not websockets' default 20 + 20 + 2 s (42 s measured). A reconnect loses the server's
context, so the timeout leaves a slow mobile link or a busy machine 10 s to answer rather
than cutting a live conversation on a hiccup. A ping costs a few bytes."""

_FATAL: Final = (KeyRejected, RedirectRefused, InsecureEndpoint)
"""Connection errors that another attempt cannot cure: reconnecting stops at once."""


class RealtimeTransport:
    """One logical Realtime session over a WebSocket that may be re-established.

    ``compress``: offer permessage-deflate (RFC 7692) in the handshake. Off by default:
    base64 audio is nearly all the traffic, and on speech deflating it costs more CPU than
    everything else a session does (``bench/bench_codec.py``: about 100 us to compress a
    20 ms microphone frame and 50 us to decompress a 100 ms delta, where a whole session
    costs some 50-60 us per microphone frame), to leave frames at two thirds of their size.
    Turn it on for a slow or metered link; it applies only if the server accepts it.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        key: ApiKey | None,
        *,
        codec: WireCodec | None = None,
        connect_timeout: float = 10.0,
        ping_interval: float | None = KEEPALIVE_INTERVAL_S,
        ping_timeout: float | None = KEEPALIVE_TIMEOUT_S,
        close_timeout: float = 2.0,
        reconnect: ReconnectPolicy | None = None,
        allow_plaintext: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        rng: random.Random | None = None,
        compress: bool = False,
    ) -> None:
        if endpoint.proxy is not None and endpoint.is_plaintext:
            raise InsecureProxy(
                f"refusing the proxy {endpoint.proxy_host} for plaintext ws:// to "
                f"{endpoint.host}: the proxy would read the handshake; proxies carry wss:// only"
            )
        if endpoint.is_plaintext and not endpoint.is_loopback and not allow_plaintext:
            raise InsecureEndpoint(
                f"refusing plaintext ws:// to {endpoint.host}: use wss://, or opt in to "
                "unencrypted connections explicitly"
            )
        if endpoint.auth != "none" and key is None:
            raise TransportError(f"an API key is required for {endpoint.host}")
        self.endpoint = endpoint
        self.codec = codec or WireCodec(endpoint.api)
        if self.codec.api != endpoint.api:
            raise TransportError(
                f"codec speaks the {self.codec.api} API but the endpoint the {endpoint.api} API"
            )
        self._key = key if endpoint.auth != "none" else None
        if key is not None and self._key is None:
            log.info("api_key_not_sent", host=endpoint.host,
                     why="the endpoint's auth is none (a loopback endpoint's default)")
        self._allow_plaintext = allow_plaintext
        self._connect_timeout = connect_timeout
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._close_timeout = close_timeout
        self._policy = reconnect or ReconnectPolicy()
        self._ssl = ssl_context
        """TLS for ``wss://``; the default one is made on the first TLS connection (loading
        the system's CA store costs ~0.1 s of CPU, which a ``ws://`` endpoint never needs)."""
        self._rng = rng or random.Random()
        self._compress = compress
        self._ws: _Connection | None = None
        self._session: UpdateSession | None = None
        self._closing = False
        self._attempts = 0
        """Reconnection attempts since the last connection that stayed up ``stable_after_s``."""
        self._opened_at = 0.0
        self._last_failure: TransportError | None = None
        self.last_reconnect: Reconnection | None = None
        """The latest reconnection (a new server session, its context lost), or None."""

    def __repr__(self) -> str:
        return f"RealtimeTransport({self.endpoint.url!r}, api={self.endpoint.api!r})"

    @property
    def sends_key(self) -> bool:
        """True when the handshake carries the API key."""
        return self._key is not None

    # --- lifecycle -----------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the connection; raises a ``TransportError`` subclass on failure."""
        self._closing = False
        self._ws = await self._open()
        self._opened_at = time.monotonic()
        self._attempts, self._last_failure = 0, None
        log.info("realtime_connected", host=self.endpoint.host, api=self.endpoint.api)

    async def close(self) -> None:
        """Close cleanly (close frame 1000); iteration then ends."""
        self._closing = True
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
            log.info("realtime_closed", host=self.endpoint.host)

    async def __aenter__(self) -> RealtimeTransport:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- traffic -------------------------------------------------------------------------

    async def send(self, command: ServerCommand) -> None:
        """Encode and send one command; a ``session.update`` is remembered for reconnects."""
        if isinstance(command, UpdateSession):
            self._session = command
        ws = self._ws
        if ws is None:
            raise NotConnected("not connected to the Realtime server")
        try:
            # UTF-8 bytes sent as a text frame: not decoded to ``str`` and encoded back
            await ws.send(self.codec.encode_bytes(command), text=True)
        except ConnectionClosed as exc:
            raise NotConnected(f"the connection closed ({_Closed.of(exc).description})") from None

    def send_now(self, command: ServerCommand) -> bool:
        """Send ``command`` at once, if the connection is open and nothing waits in its
        write buffer; False otherwise, ``send()`` then being the way (the session's
        ``SendsAtOnce``). A ``session.update`` always goes through ``send()``.

        The frame is written in this call, as websockets' own ``send()`` would write it,
        without the context manager and the drain that wrap it there
        (``bargein.adapters.at_once``)."""
        ws = self._ws
        if ws is None or isinstance(command, UpdateSession) or not ws.can_send_now():
            return False
        ws.send_text_now(self.codec.encode_bytes(command))
        return True

    async def events(self) -> AsyncIterator[Event]:
        """Core events from the server until ``close()`` or a close that ends the session
        (see ``close_action``); reconnects after a drop. Raises ``ServerClosed`` after a
        close that fails the session, ``ConnectionLost`` when reconnecting failed."""
        ws = self._reading()
        while ws is not None:
            try:
                while True:
                    event = self.codec.decode(await ws.recv())
                    if event is not None:
                        yield event
            except ConnectionClosed as exc:
                closed = self._frozen(_Closed.of(exc))
            async for event in self._after(closed):
                yield event
            ws = self._ws

    async def deliver(self, on_event: Callable[[Event], None]) -> None:
        """What ``events()`` yields, handed to ``on_event`` instead, in the event loop's call
        that parsed each frame: no task wake-up and no generator step per event (the
        session's ``DeliversEvents``). Returns and raises where ``events()`` ends and raises,
        and also raises what ``on_event`` raised (the connection is then cut)."""

        def on_message(message: str | bytes) -> None:
            event = self.codec.decode(message)
            if event is not None:
                on_event(event)

        ws = self._reading()
        while ws is not None:
            try:
                await ws.listen(on_message)
            except ConnectionClosed as exc:
                closed = self._frozen(_Closed.of(exc))
            async for event in self._after(closed):
                on_event(event)
            ws = self._ws

    def __aiter__(self) -> AsyncIterator[Event]:
        return self.events()

    # --- internals -----------------------------------------------------------------------

    def _reading(self) -> _Connection | None:
        """The connection to read from, None after ``close()``."""
        if self._ws is None and not self._closing:
            raise NotConnected("not connected to the Realtime server")
        return self._ws

    async def _after(self, closed: _Closed) -> AsyncIterator[Event]:
        """What follows a connection's end: ``Disconnected`` (unless ``close()`` ended it),
        then a reconnection and ``Reconnected``, or the end (``self._ws`` stays None), or
        ``ServerClosed``."""
        if self._closing:
            return
        self._ws = None
        dropped_at = time.monotonic()
        up_s = dropped_at - self._opened_at
        action = close_action(closed.code)
        if action != "reconnect":
            log.info("realtime_closed_by_server", host=self.endpoint.host,
                     reason=closed.description, up_s=round(up_s, 3))
            yield Disconnected(closed.description)
            if action == "end":
                return
            raise self._server_closed(closed)
        if up_s >= self._policy.stable_after_s:
            self._attempts, self._last_failure = 0, None
        else:
            self._last_failure = ConnectFailed(
                f"the connection lasted {up_s:.1f} s ({closed.description})"
            )
        log.warning("realtime_disconnected", host=self.endpoint.host,
                    reason=closed.description, up_s=round(up_s, 3))
        yield Disconnected(closed.description)
        if await self._reconnect(closed.description, dropped_at):
            yield Reconnected()

    def _frozen(self, closed: _Closed) -> _Closed:
        """Our keepalive ping went unanswered: say so in words (``StreamFrozen``)."""
        if closed.code is not None or "keepalive ping timeout" not in closed.reason:
            return closed
        error = StreamFrozen(
            f"no answer to a keepalive ping within {self._ping_timeout or 0:g} s: the stream "
            "is frozen; reconnecting")
        return _Closed(None, closed.reason, str(error))

    def _server_closed(self, closed: _Closed) -> ServerClosed:
        assert closed.code is not None
        reason = f": {closed.reason}" if closed.reason else ""
        return ServerClosed(
            f"{self.endpoint.host} closed the connection with code {close_name(closed.code)}"
            f"{reason}; not reconnecting",
            closed.code,
            closed.reason,
        )

    async def _reconnect(self, reason: str, dropped_at: float) -> bool:
        """Connect again and re-send the session; False if ``close()`` came meanwhile, or if
        the new connection was closed for good at once.

        Attempts carry over from earlier drops (see ``ReconnectPolicy``); when the budget is
        spent, raises ``ConnectionLost``. A refusal no retry can cure (a rejected key, a
        redirect, plaintext to another machine) is raised at once.
        """
        tried = 0
        while self._attempts < self._policy.max_attempts:
            attempt = self._attempts
            self._attempts += 1
            tried += 1
            wait = self._policy.delay(attempt, self._rng)
            log.info("realtime_reconnecting", attempt=attempt + 1, wait_s=round(wait, 3))
            await asyncio.sleep(wait)
            if self._closing:
                return False
            try:
                ws = await self._open()
            except _FATAL:
                raise
            except TransportError as exc:
                self._last_failure = exc
                continue
            try:
                restored = await self._resend_session(ws)
            except ConnectionClosed as exc:
                closed = _Closed.of(exc)
                action = close_action(closed.code)
                if action == "end":
                    return False
                if action == "fail":
                    raise self._server_closed(closed) from None
                self._last_failure = ConnectFailed(f"dropped again at once ({closed.description})")
                continue
            except BaseException:  # cancelled (close() during the handshake): no stray socket
                await ws.close()
                raise
            if self._closing:
                await ws.close()
                return False
            self._ws = ws
            self._opened_at = time.monotonic()
            self.last_reconnect = Reconnection(
                reason=reason,
                attempts=tried,
                down_s=round(self._opened_at - dropped_at, 3),
                session_restored=restored,
            )
            log.warning(
                "realtime_reconnected_context_lost",
                host=self.endpoint.host,
                attempt=attempt + 1,
                reason=reason,
                lost="the server's conversation, any reply in flight, the input audio buffer",
                restored="the session configuration" if restored else "nothing",
            )
            return True
        last = self._last_failure
        detail = f": {last}" if last is not None else ""
        raise ConnectionLost(
            f"lost the connection to {self.endpoint.host} and "
            f"{self._policy.max_attempts} reconnection attempts failed{detail}"
        )

    async def _resend_session(self, ws: _Connection) -> bool:
        """Send the latest session configuration, again if a newer one came meanwhile (a
        ``send()`` of it failed with NotConnected while this one was on its way). True when
        there was one to send."""
        sent: UpdateSession | None = None
        while self._session is not sent:
            sent = self._session
            if sent is not None:
                await ws.send(self.codec.encode(sent))
        return sent is not None

    def _headers(self) -> list[tuple[str, str]]:
        headers = list(self.endpoint.extra_headers)
        if self._key is not None:
            if self.endpoint.auth == "bearer":
                headers.append(("Authorization", f"Bearer {self._key.reveal()}"))
            elif self.endpoint.auth == "api-key":
                headers.append(("api-key", self._key.reveal()))
        return headers

    async def _open(self) -> _Connection:
        """A new connection, with a codec that starts afresh (per-connection event ids)."""
        ws = await self._handshake()
        self.codec.new_connection()
        return ws

    async def _connect_ws(self) -> _Connection:
        """The WebSocket handshake, with websockets' own errors. Plaintext without the
        caller's consent goes over a socket bargein connected itself, to a loopback address
        of the host (``_loopback_socket``)."""
        plaintext = self.endpoint.is_plaintext
        if not plaintext and self._ssl is None:
            self._ssl = ssl.create_default_context()
        options: dict[str, Any] = {
            "ssl": None if plaintext else self._ssl,
            "proxy": self.endpoint.proxy,  # None: never the environment's proxy
        }
        sock: socket.socket | None = None
        try:
            if plaintext and not self._allow_plaintext:
                port = urlsplit(self.endpoint.url).port or 80
                sock = await asyncio.wait_for(
                    _loopback_socket(self.endpoint.host, port), self._connect_timeout
                )
                options["sock"] = sock
            ws = await _Connect(
                self.endpoint.url,
                create_connection=_Connection,
                additional_headers=self._headers(),
                open_timeout=self._connect_timeout,
                ping_interval=self._ping_interval,
                ping_timeout=self._ping_timeout,
                close_timeout=self._close_timeout,
                max_size=MAX_FRAME_BYTES,
                compression="deflate" if self._compress else None,
                logger=_ws_logger,
                **options,
            )
            assert isinstance(ws, _Connection)
            return ws
        except BaseException:
            if sock is not None:
                sock.close()
            raise

    async def _handshake(self) -> _Connection:
        host = self.endpoint.host
        try:
            return await self._connect_ws()
        except InvalidStatus as exc:
            status = exc.response.status_code
            if 300 <= status < 400:
                raise self._redirect_refused(
                    status, exc.response.headers.get("Location")
                ) from None
            if status in (401, 403):
                if self._key is not None:
                    message = f"{host} rejected the API key (HTTP {status})"
                else:
                    message = (f"{host} refused the connection with HTTP {status}, and no API "
                               f"key was sent ({self._why_no_key()})")
                raise KeyRejected(message, status, key_sent=self._key is not None) from None
            raise HandshakeRejected(
                f"{host} refused the WebSocket handshake (HTTP {status})", status
            ) from None
        except InvalidURI:
            raise TransportError(f"invalid WebSocket URL for {host}") from None
        except InvalidProxyStatus as exc:
            raise ConnectFailed(
                f"the proxy {self.endpoint.proxy_host} refused the tunnel to {host} "
                f"(HTTP {exc.response.status_code})"
            ) from None
        except ProxyError as exc:
            raise ConnectFailed(
                f"no tunnel to {host} through the proxy {self.endpoint.proxy_host}: "
                f"{redact(str(exc))}"
            ) from None
        except InvalidProxy as exc:
            raise TransportError(
                f"unusable proxy {self.endpoint.proxy_host}: {exc.msg}"
            ) from None
        except InvalidHandshake as exc:
            raise HandshakeRejected(
                f"bad WebSocket handshake with {host}: {redact(str(exc))}"
            ) from None
        except TimeoutError:
            raise ConnectTimeout(
                f"connecting to {host} timed out after {self._connect_timeout:g} s"
            ) from None
        except ssl.SSLError as exc:
            raise ConnectFailed(f"TLS with {host} failed: {exc.reason or exc}") from None
        except ImportError:  # websockets needs python-socks for a SOCKS proxy
            raise TransportError(
                f"the SOCKS proxy {self.endpoint.proxy_host} needs the python-socks package"
            ) from None
        except OSError as exc:
            detail = exc.strerror or type(exc).__name__
            where = f"the proxy {self.endpoint.proxy_host}" if self.endpoint.proxy else host
            raise ConnectFailed(f"cannot reach {where}: {detail}") from None

    def _redirect_refused(self, status: int, location: str | None) -> RedirectRefused:
        target = ""
        if location:
            parts = urlsplit(urljoin(self.endpoint.url, location))
            try:
                port = parts.port
            except ValueError:
                port = None
            target = f"{parts.scheme}://{parts.hostname or '?'}" + (f":{port}" if port else "")
            target = redact(target)
        where = f" to {target}" if target else ""
        return RedirectRefused(
            f"{self.endpoint.host} answered with a redirect (HTTP {status}){where}: refused, "
            "a Realtime endpoint never redirects; connect to the final URL directly",
            status,
            target,
        )

    def _why_no_key(self) -> str:
        if self.endpoint.is_loopback:
            return ("a server on this machine gets no key unless asked: "
                    "endpoints.custom(..., auth='bearer'), or bargein talk --send-key")
        return "the endpoint's auth is 'none'"
