"""A Realtime server scripted in memory, and the transport a ``Session`` reads it through.

The test plays the server: it pushes core events (``bargein.core.events``) and reads back
every command the session sent, in order. No socket, no codec, no wall-clock time::

    server = MemoryServer()
    async with Session(server.transport, source, sink, clock=time.now, sleep=time.sleep):
        await server.emit(SessionReady(interrupt_response=False))
        await server.emit(*reply("resp_1", "item_1", ms=2000, done=False))
        await time.advance(500)
        await server.emit(SpeechStarted("item_u1", audio_start_ms=500))
        cancel, truncate = server.commands()    # SendAudio aside
        assert isinstance(truncate, TruncateItem) and truncate.audio_end_ms == 515

``emit()`` returns once the session has handled the events and carried out what they
called for; ``push()`` only queues them. ``disconnect()``, ``reconnect()``, ``close()`` and
``fail()`` play a connection that drops, comes back, is closed by the server for good, or
is given up on, in the order they are queued among the events.

``MemoryServer(answer=True)`` also answers like the real server: ``session.created`` on
each connection, ``session.updated`` for a ``session.update``, a cancelled ``response.done``
for a cancel of the active response (``response_cancel_not_active`` otherwise), a
truncation or deletion confirmed (or refused, as the real server refuses them), a tool
output placed after an item it never sent (``SendToolOutput.after_item_id``: the wire's
``previous_item_id``) refused with ``item_not_found``, and, with ``interrupt_response``
on, its own cancel when the test pushes ``SpeechStarted`` during a response. It answers
only what the session sends; replies are still the test's to script.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import numpy as np

from bargein.adapters.session_config import SessionConfig
from bargein.core import commands as c
from bargein.core import events as e
from bargein.core.pcm import BYTES_PER_MS, RATE
from bargein.errors import NotConnected
from bargein.testing.virtual_time import SETTLE_TURNS, settle

# --- scripting helpers ---------------------------------------------------------------


def tone(ms: float, *, hz: float = 440.0, level: float = 0.3) -> bytes:
    """``ms`` of a sine tone as PCM16 24 kHz mono, the audio format of every core event."""
    n = round(ms * RATE / 1000)
    wave = level * 32767 * np.sin(2 * np.pi * hz * np.arange(n) / RATE)
    return np.rint(wave).astype("<i2").tobytes()


def deltas(
    response_id: str, item_id: str, ms: float, *, delta_ms: float = 100.0, hz: float = 440.0
) -> list[e.AudioDelta]:
    """``ms`` of tone for ``item_id`` as audio deltas of ``delta_ms`` each (the last may be
    shorter)."""
    if delta_ms <= 0:
        raise ValueError("delta_ms must be positive")
    audio = tone(ms, hz=hz)
    size = max(2, round(delta_ms * BYTES_PER_MS) // 2 * 2)
    return [
        e.AudioDelta(response_id, item_id, audio[at : at + size])
        for at in range(0, len(audio), size)
    ]


def reply(
    response_id: str,
    item_id: str,
    ms: float,
    *,
    delta_ms: float = 100.0,
    transcript: str | None = None,
    done: bool = True,
    status: str = "completed",
) -> list[e.Event]:
    """A reply as the server sends it: created, its item added, ``ms`` of audio in deltas,
    the transcript (if given) and, when ``done``, ``response.done`` with ``status``.
    ``done=False`` leaves the response generating, to be interrupted or finished later."""
    events: list[e.Event] = [
        e.ResponseCreated(response_id),
        e.OutputItemAdded(response_id, item_id),
        *deltas(response_id, item_id, ms, delta_ms=delta_ms),
    ]
    if transcript is not None:
        events.append(e.TranscriptDelta(response_id, item_id, transcript))
    if done:
        events.append(e.ResponseDone(response_id, status))
    return events


# --- the connection's script ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Drop:
    reason: str
    for_good: bool


@dataclass(frozen=True, slots=True)
class _Reconnect:
    pass


@dataclass(frozen=True, slots=True)
class _Fail:
    error: BaseException


_Entry = e.Event | _Drop | _Reconnect | _Fail
_C = TypeVar("_C", bound=c.ServerCommand)


class MemoryTransport:
    """The session's side of a ``MemoryServer``: satisfies ``bargein.session.Transport``.

    It is connected from the start (as a ``RealtimeTransport`` after ``connect()``).
    """

    def __init__(self, server: MemoryServer) -> None:
        self._server = server
        self.connected = True
        self.closed = False
        """``close()`` was called (by the session, when it closes)."""

    def __repr__(self) -> str:
        return f"MemoryTransport(connected={self.connected}, closed={self.closed})"

    async def connect(self) -> None:
        """Nothing to open; here so a test can treat it as a ``RealtimeTransport``."""

    def events(self) -> AsyncIterator[e.Event]:
        """The server's events, in order, until the server or the session closes."""
        return self._server._stream()

    async def send(self, command: c.ServerCommand) -> None:
        """Deliver ``command`` to the server; ``NotConnected`` while the connection is down,
        as the real transport (the session drops the command)."""
        self._server._receive(command)

    def send_now(self, command: c.ServerCommand) -> bool:
        """Deliver ``command`` at once, as the real transport does when its connection can
        take it (``bargein.session.SendsAtOnce``); False while the connection is down."""
        if not self.connected:
            return False
        self._server._receive(command)
        return True

    async def close(self) -> None:
        """Close from the client's side: iteration ends. Idempotent."""
        if not self.closed:
            self.closed = True
            self.connected = False
            self._server._queue.put_nowait(None)  # iteration ends; not a scripted entry


class MemoryServer:
    """A Realtime server in memory: push events to the session, read what it sent.

    ``transport`` is what the ``Session`` gets. ``sent`` is every command the server
    received, in order (``SendAudio`` included); ``commands()`` filters it.
    ``connections`` counts the connections opened (1, plus one per ``reconnect()``).
    """

    def __init__(self, *, answer: bool = False) -> None:
        self.answer = answer
        self.transport = MemoryTransport(self)
        self.sent: list[c.ServerCommand] = []
        self.connections = 1
        self._queue: asyncio.Queue[_Entry | None] = asyncio.Queue()
        self._queued = 0
        self._taken = 0
        self._closing = False  # close() or fail() is queued: nothing may follow it
        self._ended = False  # ... and the session has got it
        self._last_update: c.UpdateSession | None = None
        # what the server has sent, for answering like the real one
        self._sessions = 0
        self._interrupt_response = True
        self._active: str | None = None
        self._audio_bytes: dict[str, int] = {}
        self._calls: set[str] = set()  # the function_call items the test pushed
        if answer:
            self._session_created()

    def __repr__(self) -> str:
        return (f"MemoryServer(answer={self.answer}, sent={len(self.sent)}, "
                f"pending={self.pending}, connected={self.transport.connected})")

    # --- what the session sent ---------------------------------------------------------

    @overload
    def commands(self) -> list[c.ServerCommand]: ...
    @overload
    def commands(self, kind: type[_C], /) -> list[_C]: ...
    @overload
    def commands(self, *kinds: type[c.ServerCommand]) -> list[c.ServerCommand]: ...

    def commands(self, *kinds: type[Any]) -> list[Any]:
        """The commands received of the given kinds, in order; with no kinds, every command
        but the microphone's ``SendAudio``."""
        if kinds:
            return [command for command in self.sent if isinstance(command, kinds)]
        return [command for command in self.sent if not isinstance(command, c.SendAudio)]

    def audio_ms(self) -> float:
        """Milliseconds of microphone audio received (``SendAudio``)."""
        return sum(len(x.audio) for x in self.sent if isinstance(x, c.SendAudio)) / BYTES_PER_MS

    # --- what the server sends ---------------------------------------------------------

    @property
    def pending(self) -> int:
        """Events and connection changes queued that the session has not handled yet."""
        return self._queued - self._taken

    def push(self, *events: e.Event) -> None:
        """Queue server events for the session, without waiting."""
        for event in events:
            self._put(event)
            if self.answer and isinstance(event, e.SpeechStarted) and self._interrupt_response \
                    and self._active is not None:
                self._put(e.ResponseDone(self._active, "cancelled", "turn_detected"))

    async def emit(self, *events: e.Event) -> None:
        """Queue server events and return once the session has handled every queued event
        and carried out the commands they called for (``settle()``)."""
        self.push(*events)
        await self.settle()

    async def settle(self, turns: int = SETTLE_TURNS) -> None:
        """Wait until the session has taken everything queued (answers included) and its
        tasks have run out of work. Raises ``RuntimeError`` when nobody reads the events
        (a session not started) rather than waiting for ever."""
        for _ in range(64):
            await settle(turns)
            if self._taken >= self._queued or self._ended:
                return
        raise RuntimeError(
            f"{self.pending} server events were never read: is the session started?"
        )

    def disconnect(self, reason: str = "connection dropped") -> None:
        """Queue a dropped connection: the session gets ``Disconnected(reason)`` and sends
        fail until ``reconnect()``."""
        self._put(_Drop(reason, for_good=False))

    def reconnect(self) -> None:
        """Queue a new connection, as the real transport makes one: the last
        ``UpdateSession`` is sent again (it appears in ``sent`` again), then the session gets
        ``Reconnected``."""
        self._put(_Reconnect())

    def close(self, reason: str = "closed by the server") -> None:
        """Queue a close for good: ``Disconnected(reason)``, then iteration ends (the session
        ends with ``"server closed"``)."""
        self._put(_Drop(reason, for_good=True))
        self._closing = True

    def fail(self, error: BaseException) -> None:
        """Queue a transport failure: iteration raises ``error`` (say ``ConnectionLost``),
        and the session ends with it."""
        self._put(_Fail(error))
        self._closing = True

    # --- the transport's side ----------------------------------------------------------

    def _put(self, entry: _Entry, *, answer: bool = False) -> None:
        if self._closing or self.transport.closed:
            if answer:  # the session sent it just before the end: nobody will read it
                return
            raise RuntimeError("the connection is closed: nothing more reaches the session")
        self._queued += 1
        self._queue.put_nowait(entry)
        if isinstance(entry, e.SessionReady):
            self._interrupt_response = entry.interrupt_response
        elif isinstance(entry, e.ResponseCreated):
            self._active = entry.response_id
        elif isinstance(entry, e.ResponseDone) and entry.response_id == self._active:
            self._active = None
        elif isinstance(entry, e.AudioDelta):
            self._audio_bytes[entry.item_id] = (self._audio_bytes.get(entry.item_id, 0)
                                                + len(entry.audio))
        elif isinstance(entry, e.OutputItemAdded):
            self._audio_bytes.setdefault(entry.item_id, 0)
        elif isinstance(entry, e.ToolCall):
            self._calls.add(entry.item_id)
        elif isinstance(entry, e.ItemDeleted):
            self._audio_bytes.pop(entry.item_id, None)
        elif isinstance(entry, _Drop | _Fail):
            self._active = None

    async def _stream(self) -> AsyncIterator[e.Event]:
        while not self._ended:
            entry = await self._queue.get()
            if entry is None:
                return
            try:
                if isinstance(entry, _Drop):
                    self.transport.connected = False
                    self._ended = entry.for_good
                    yield e.Disconnected(entry.reason)
                elif isinstance(entry, _Reconnect):
                    self.transport.connected = True
                    self.connections += 1
                    if self.answer:
                        self._session_created()
                    if self._last_update is not None:
                        self._receive(self._last_update)
                    yield e.Reconnected()
                elif isinstance(entry, _Fail):
                    self.transport.connected = False
                    self._ended = True
                    raise entry.error
                else:
                    yield entry
            finally:
                self._taken += 1  # the session handled it (it asks for the next one)

    def _receive(self, command: c.ServerCommand) -> None:
        if isinstance(command, c.UpdateSession):
            self._last_update = command  # re-sent on reconnect, as the real transport does
        if not self.transport.connected:
            raise NotConnected("not connected to the memory server")
        self.sent.append(command)
        if self.answer:
            for event in self._answers(command):
                self._put(event, answer=True)

    # --- answering like the real server ------------------------------------------------

    def _session_created(self) -> None:
        self._sessions += 1
        self._put(e.SessionReady(f"sess_{self._sessions}", interrupt_response=True), answer=True)

    def _answers(self, command: c.ServerCommand) -> Iterable[e.Event]:
        if isinstance(command, c.UpdateSession):
            config = command.config
            interrupts = config.interrupt_response if isinstance(config, SessionConfig) else True
            yield e.SessionReady(f"sess_{self._sessions}", interrupt_response=interrupts)
        elif isinstance(command, c.CancelResponse):
            if self._active is None or command.response_id not in ("", self._active):
                yield _error("response_cancel_not_active",
                             "Cancellation failed: no active response found", command.event_id)
            else:
                yield e.ResponseDone(self._active, "cancelled", "client_cancelled")
        elif isinstance(command, c.TruncateItem):
            held = self._audio_bytes.get(command.item_id)
            if held is None:
                yield _error("item_not_found",
                             f"Item with item_id not found: {command.item_id!r}.",
                             command.event_id, "invalid_request_error", "item_id")
            elif command.audio_end_ms > held // BYTES_PER_MS:
                yield _error("invalid_value",
                             f"Audio content of {held // BYTES_PER_MS}ms is already shorter "
                             f"than {command.audio_end_ms}ms.",
                             command.event_id, "invalid_request_error", "audio_end_ms")
            else:
                yield e.ItemTruncated(command.item_id, command.audio_end_ms)
        elif isinstance(command, c.SendToolOutput):
            after = command.after_item_id
            if after and after not in self._calls and after not in self._audio_bytes:
                yield _error("item_not_found",
                             f"Item with id '{after}' not found: cannot insert after it.",
                             command.event_id, "invalid_request_error", "previous_item_id")
        elif isinstance(command, c.DeleteItem):
            if command.item_id in self._audio_bytes:
                yield e.ItemDeleted(command.item_id)
            else:
                yield _error("item_not_found",
                             f"Item with item_id not found: {command.item_id!r}.",
                             command.event_id, "invalid_request_error", "item_id")


def _error(
    code: str, message: str, event_id: str, kind: str = "invalid_request_error",
    param: str | None = None,
) -> e.ServerError:
    return e.ServerError(kind, code, message, event_id or None, param)


__all__ = ["MemoryServer", "MemoryTransport", "deltas", "reply", "tone"]
