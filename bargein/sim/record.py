"""What happened on one simulator connection, for tests and users to assert against.

Every client event is kept with its arrival time in milliseconds since the connection
opened (monotonic clock). ``input_audio_buffer.append`` events are kept without their audio
payload; the decoded audio goes to ``audio`` instead, so a long session stays small.

Times (in arrays) and events (in lists) are kept side by side and joined into
:class:`RecordedEvent` only when read: an append's event dict holds only strings, so the
garbage collector does not track it, and sent events are kept as their JSON bytes; one
record object per event made full collections pause a server of a few hundred sessions
for tens of milliseconds (seen in bench/bench_sim_load.py).
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from bargein.errors import SimError


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One event and the time it crossed the socket, in ms since the connection opened."""

    at_ms: float
    event: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.event.get("type"))


@dataclass
class ConnectionRecord:
    """Client events, server events and appended audio of one connection.

    ``path`` and ``query`` are the request's (``/v1/realtime``, ``model=gpt-realtime``);
    ``faults`` is the fault spec the client chose, empty when it chose none.
    """

    api: str
    path: str
    faults: str
    query: str = ""
    audio: bytearray = field(default_factory=bytearray)
    audio_format: str = "pcm16"
    closed: bool = False
    close_code: int | None = None
    close_reason: str = ""
    _received_at: array[float] = field(default_factory=lambda: array("d"))
    _received: list[dict[str, Any]] = field(default_factory=list)
    _sent_at: array[float] = field(default_factory=lambda: array("d"))
    _sent: list[bytes] = field(default_factory=list)
    _opened: float = field(default_factory=time.monotonic)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def received(self) -> list[RecordedEvent]:
        """Every client event, in arrival order."""
        return list(self)

    @property
    def sent(self) -> list[RecordedEvent]:
        """Every server event the simulator queued, in order (audio deltas hollowed)."""
        pairs = zip(self._sent_at, self._sent, strict=True)
        return [RecordedEvent(at, msgspec.json.decode(data)) for at, data in pairs]

    def now_ms(self) -> float:
        return (time.monotonic() - self._opened) * 1000.0

    def add_received(self, event: dict[str, Any]) -> None:
        self._received_at.append(self.now_ms())
        self._received.append(event)
        self._changed.set()

    def add_sent(self, data: bytes) -> None:
        """Keep a sent event as its JSON: bytes cost the garbage collector nothing."""
        self._sent_at.append(self.now_ms())
        self._sent.append(data)

    def mark_closed(self, code: int | None = None, reason: str = "") -> None:
        """The connection ended, with the close code and reason websockets saw (1006 for a
        connection dropped without a close frame)."""
        self.closed, self.close_code, self.close_reason = True, code, reason
        self._changed.set()

    def client_events(self, event_type: str) -> list[dict[str, Any]]:
        """The client's events of ``event_type``, in arrival order."""
        return [event for event in self._received if event.get("type") == event_type]

    def server_events(self, event_type: str) -> list[dict[str, Any]]:
        """The events the simulator sent of ``event_type``, in order (audio deltas hollowed)."""
        return [event.event for event in self.sent if event.type == event_type]

    def __iter__(self) -> Iterator[RecordedEvent]:
        pairs = zip(self._received_at, self._received, strict=True)
        return (RecordedEvent(*pair) for pair in pairs)

    async def wait_closed(self, timeout: float = 5.0) -> None:
        """Wait until the connection has ended (its ``close_code`` is then known)."""

        async def ended() -> None:
            while not self.closed:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(ended(), timeout)
        except TimeoutError:
            raise SimError(f"the connection did not close within {timeout} s") from None

    async def wait_for(
        self, event_type: str, count: int = 1, timeout: float = 5.0
    ) -> RecordedEvent:
        """Wait until the client has sent ``count`` events of ``event_type``; return the last."""

        async def seen() -> RecordedEvent:
            scanned, found = 0, 0
            while True:
                for index in range(scanned, len(self._received)):
                    scanned += 1
                    if self._received[index].get("type") == event_type:
                        found += 1
                        if found == count:
                            return RecordedEvent(self._received_at[index], self._received[index])
                if self.closed:
                    raise SimError(f"connection closed before the client sent {event_type}")
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(seen(), timeout)
        except TimeoutError:
            raise SimError(f"the client sent no {event_type} within {timeout} s") from None
