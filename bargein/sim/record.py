"""What happened on one simulator connection, for tests and users to assert against.

Every client event is kept with its arrival time in milliseconds since the connection
opened (monotonic clock). ``input_audio_buffer.append`` events are kept without their audio
payload; the decoded audio goes to ``audio`` instead, so a long session stays small.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bargein.sim.errors import SimError


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
    """Client events, server events and appended audio of one connection."""

    api: str
    path: str
    faults: str
    received: list[RecordedEvent] = field(default_factory=list)
    sent: list[RecordedEvent] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    audio_format: str = "pcm16"
    closed: bool = False
    _opened: float = field(default_factory=time.monotonic)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def now_ms(self) -> float:
        return (time.monotonic() - self._opened) * 1000.0

    def add_received(self, event: dict[str, Any]) -> None:
        self.received.append(RecordedEvent(self.now_ms(), event))
        self._changed.set()

    def add_sent(self, event: dict[str, Any]) -> None:
        self.sent.append(RecordedEvent(self.now_ms(), event))

    def mark_closed(self) -> None:
        self.closed = True
        self._changed.set()

    def client_events(self, event_type: str) -> list[dict[str, Any]]:
        """The client's events of ``event_type``, in arrival order."""
        return [r.event for r in self.received if r.type == event_type]

    def server_events(self, event_type: str) -> list[dict[str, Any]]:
        """The events the simulator sent of ``event_type``, in order (audio deltas hollowed)."""
        return [r.event for r in self.sent if r.type == event_type]

    def __iter__(self) -> Iterator[RecordedEvent]:
        return iter(self.received)

    async def wait_for(
        self, event_type: str, count: int = 1, timeout: float = 5.0
    ) -> RecordedEvent:
        """Wait until the client has sent ``count`` events of ``event_type``; return the last."""

        async def seen() -> RecordedEvent:
            while True:
                matching = [r for r in self.received if r.type == event_type]
                if len(matching) >= count:
                    return matching[count - 1]
                if self.closed:
                    raise SimError(f"connection closed before the client sent {event_type}")
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(seen(), timeout)
        except TimeoutError:
            raise SimError(f"the client sent no {event_type} within {timeout} s") from None
