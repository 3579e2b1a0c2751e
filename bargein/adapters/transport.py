"""The Realtime WebSocket connection: connect, send commands, iterate core events, reconnect.

A thin asyncio layer over ``websockets`` and ``WireCodec``. Failures become typed errors
with one-line messages that never contain the key. When the connection drops without our
asking, iteration yields ``Disconnected``, reconnects with exponential backoff and jitter,
re-sends the last session configuration and yields ``Reconnected``, so the core can
abandon the response in flight and go back to listening.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Final

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from bargein.adapters.codec import WireCodec
from bargein.adapters.endpoints import Endpoint
from bargein.adapters.secrets import ApiKey, RedactingFilter, redact
from bargein.core.commands import ServerCommand, UpdateSession
from bargein.core.events import Disconnected, Event, Reconnected
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

log = structlog.get_logger(__name__)

MAX_FRAME_BYTES: Final = 16 * 1024 * 1024
"""Largest frame accepted; audio deltas and session objects are far smaller."""

_ws_logger = logging.getLogger("bargein.adapters.transport.websockets")
_ws_logger.addFilter(RedactingFilter())

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


class RealtimeTransport:
    """One logical Realtime session over a WebSocket that may be re-established."""

    def __init__(
        self,
        endpoint: Endpoint,
        key: ApiKey | None,
        *,
        codec: WireCodec | None = None,
        connect_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 2.0,
        reconnect: ReconnectPolicy | None = None,
        allow_plaintext: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        rng: random.Random | None = None,
    ) -> None:
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
        self._key = key
        self._connect_timeout = connect_timeout
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._close_timeout = close_timeout
        self._policy = reconnect or ReconnectPolicy()
        self._ssl = ssl_context if ssl_context is not None else ssl.create_default_context()
        self._rng = rng or random.Random()
        self._ws: ClientConnection | None = None
        self._session: UpdateSession | None = None
        self._closing = False
        self._attempts = 0
        """Reconnection attempts since the last connection that stayed up ``stable_after_s``."""
        self._opened_at = 0.0
        self._last_failure: TransportError | None = None

    def __repr__(self) -> str:
        return f"RealtimeTransport({self.endpoint.url!r}, api={self.endpoint.api!r})"

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
            await ws.send(self.codec.encode(command))
        except ConnectionClosed as exc:
            raise NotConnected(f"the connection closed ({_close_reason(exc)})") from None

    async def events(self) -> AsyncIterator[Event]:
        """Core events from the server until ``close()``; reconnects on unexpected drops."""
        while True:
            ws = self._ws
            if ws is None:
                if self._closing:
                    return
                raise NotConnected("not connected to the Realtime server")
            try:
                async for frame in ws:
                    event = self.codec.decode(frame)
                    if event is not None:
                        yield event
                reason = _close_reason_of(ws)
            except ConnectionClosed as exc:
                reason = _close_reason(exc)
            if self._closing:
                return
            self._ws = None
            up_s = time.monotonic() - self._opened_at
            if up_s >= self._policy.stable_after_s:
                self._attempts, self._last_failure = 0, None
            else:
                self._last_failure = ConnectFailed(f"the connection lasted {up_s:.1f} s ({reason})")
            log.warning(
                "realtime_disconnected", host=self.endpoint.host, reason=reason, up_s=round(up_s, 3)
            )
            yield Disconnected(reason)
            if not await self._reconnect():
                return
            yield Reconnected()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self.events()

    # --- internals -----------------------------------------------------------------------

    async def _reconnect(self) -> bool:
        """Connect again and re-send the session; False if ``close()`` came meanwhile.

        Attempts carry over from earlier drops (see ``ReconnectPolicy``); when the budget is
        spent, raises ``ConnectionLost``.
        """
        while self._attempts < self._policy.max_attempts:
            attempt = self._attempts
            self._attempts += 1
            wait = self._policy.delay(attempt, self._rng)
            log.info("realtime_reconnecting", attempt=attempt + 1, wait_s=round(wait, 3))
            await asyncio.sleep(wait)
            if self._closing:
                return False
            try:
                ws = await self._open()
            except KeyRejected:
                raise
            except TransportError as exc:
                self._last_failure = exc
                continue
            try:
                await self._resend_session(ws)
            except ConnectionClosed as exc:
                self._last_failure = ConnectFailed(f"dropped again at once ({_close_reason(exc)})")
                continue
            except BaseException:  # cancelled (close() during the handshake): no stray socket
                await ws.close()
                raise
            if self._closing:
                await ws.close()
                return False
            self._ws = ws
            self._opened_at = time.monotonic()
            log.info("realtime_reconnected", attempt=attempt + 1)
            return True
        last = self._last_failure
        detail = f": {last}" if last is not None else ""
        raise ConnectionLost(
            f"lost the connection to {self.endpoint.host} and "
            f"{self._policy.max_attempts} reconnection attempts failed{detail}"
        )

    async def _resend_session(self, ws: ClientConnection) -> None:
        """Send the latest session configuration, again if a newer one came meanwhile (a
        ``send()`` of it failed with NotConnected while this one was on its way)."""
        sent: UpdateSession | None = None
        while self._session is not sent:
            sent = self._session
            if sent is not None:
                await ws.send(self.codec.encode(sent))

    def _headers(self) -> list[tuple[str, str]]:
        headers = list(self.endpoint.extra_headers)
        if self._key is not None:
            if self.endpoint.auth == "bearer":
                headers.append(("Authorization", f"Bearer {self._key.reveal()}"))
            elif self.endpoint.auth == "api-key":
                headers.append(("api-key", self._key.reveal()))
        return headers

    async def _open(self) -> ClientConnection:
        host = self.endpoint.host
        try:
            return await connect(
                self.endpoint.url,
                additional_headers=self._headers(),
                open_timeout=self._connect_timeout,
                ping_interval=self._ping_interval,
                ping_timeout=self._ping_timeout,
                close_timeout=self._close_timeout,
                max_size=MAX_FRAME_BYTES,
                ssl=self._ssl if not self.endpoint.is_plaintext else None,
                logger=_ws_logger,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise KeyRejected(f"{host} rejected the API key (HTTP {status})", status) from None
            raise HandshakeRejected(
                f"{host} refused the WebSocket handshake (HTTP {status})", status
            ) from None
        except InvalidURI:
            raise TransportError(f"invalid WebSocket URL for {host}") from None
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
        except OSError as exc:
            detail = exc.strerror or type(exc).__name__
            raise ConnectFailed(f"cannot reach {host}: {detail}") from None


def _close_reason(exc: ConnectionClosed) -> str:
    frame = exc.rcvd or exc.sent
    if frame is None:
        return "connection dropped without a close frame"
    return f"closed with code {frame.code}" + (f": {frame.reason}" if frame.reason else "")


def _close_reason_of(ws: ClientConnection) -> str:
    code, reason = ws.close_code, ws.close_reason
    if code is None:
        return "connection closed"
    return f"closed with code {code}" + (f": {reason}" if reason else "")
