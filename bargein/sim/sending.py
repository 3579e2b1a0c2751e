"""Pacing and sending: one connection's server events, in order, onto the socket.

Server events go through one queue per connection (``Outbox``), drained by a single sender
task, so events produced by the reply task and by client events keep a deterministic order
and a cancellation can never slip between a delta's check and its send. The sender is also
where the wire faults happen: duplicates, reordering, jitter, malformed frames, drops and
closes. With none of those faults set, an event goes onto the socket in the call that
emitted it whenever nothing is queued before it and the socket takes it at once
(``bargein.adapters.at_once``): no wake-up of the sender per event, in the same order.
``Pace`` is a reply's clock: when each chunk of its audio is due.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from bargein.adapters.at_once import AtOnce
from bargein.sim.config import EventHook
from bargein.sim.faults import Faults
from bargein.sim.record import ConnectionRecord
from bargein.sim.settings import Api

_REORDER_HOLD_S: Final = 0.05
"""How long a held-back (reordered) event waits for a successor before going out alone."""
_PHASE_OF_EVENT: Final = {
    "session.created": "session_created",
    "input_audio_buffer.speech_started": "speech_started",
    "response.created": "response_created",
    "response.done": "response_done",
}
_MALFORMED: Final = '{"type": "response.output_audio.delta", "delta": '


@dataclass(frozen=True, slots=True)
class _Drop:
    """Cut the TCP connection: no close frame."""


@dataclass(frozen=True, slots=True)
class _Close:
    """A close frame with this code and reason; the connection then ends."""

    code: int
    reason: str


_Queued = tuple[bytes, float, str | None] | _Drop | _Close
"""A frame, when it was queued, and the item whose audio it carries (if it is audio)."""


@dataclass(eq=False)
class Outbox:
    """The server events of one connection, queued in order and sent by ``run``.

    ``emit`` stamps an ``event_id``, shows the event to the configured hook, keeps it in the
    record (audio deltas hollowed) and queues it; ``disconnect_at`` faults queue the drop
    right after the event of their phase.
    """

    ws: AtOnce
    record: ConnectionRecord
    faults: Faults
    api: Api
    ids: Callable[[str], str]
    on_event: EventHook | None
    violations: list[str]
    _queue: asyncio.Queue[_Queued] = field(default_factory=asyncio.Queue)
    _sending: bool = False  # the sender holds an event it has not finished sending

    @property
    def _at_once(self) -> bool:
        """An event may skip the queue: nothing queued or being sent before it, and no
        fault of the sender's to apply to it (``Faults.in_sending``)."""
        return not (self._sending or self._queue.qsize() or self.faults.in_sending)

    def emit(self, event: dict[str, Any]) -> None:
        """Queue a server event; check it with the configured hook; note faults' phases."""
        event["event_id"] = self.ids("event")
        if self.on_event is not None:
            try:
                self.on_event(event, self.api)
            except Exception as exc:  # a hook's verdict, kept for the test to report
                self.violations.append(f"{event.get('type')}: {exc}")
        data = msgspec.json.encode(event)
        if event["type"].endswith("audio.delta"):
            hollow = {**event, "delta": f"<{len(event['delta'])} base64 chars>"}
            self.record.add_sent(msgspec.json.encode(hollow))
        else:
            self.record.add_sent(data)
        if self._at_once and self.ws.can_send_now():
            self.ws.send_text_now(data)
        else:
            audio_of = event.get("item_id") if event["type"].endswith("audio.delta") else None
            self._queue.put_nowait((data, asyncio.get_running_loop().time(), audio_of))
        phase = self.faults.disconnect_at
        if phase is not None and _PHASE_OF_EVENT.get(event["type"]) == phase:
            self.drop()

    def emit_raw(self, data: bytes) -> None:
        """Queue a frame outside the protocol (an injected fault), bypassing the hook."""
        self._queue.put_nowait((data, asyncio.get_running_loop().time(), None))

    def error(
        self,
        code: str,
        message: str,
        param: str | None = None,
        client_event: dict[str, Any] | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        """Queue an ``error`` event, naming the client event it answers if any."""
        event_id = client_event.get("event_id") if client_event else None
        self.emit(
            {
                "type": "error",
                "error": {
                    "type": kind,
                    "code": code,
                    "message": message,
                    "param": param,
                    "event_id": event_id if isinstance(event_id, str) else None,
                },
            }
        )

    def drop(self) -> None:
        """Cut the TCP connection, without a close frame, once what is queued was sent."""
        self._queue.put_nowait(_Drop())

    def close(self, code: int, reason: str) -> None:
        """Close with a close frame, once what is queued was sent."""
        self._queue.put_nowait(_Close(code, reason))

    async def run(self) -> None:
        """The sender: drain the queue onto the socket, applying the wire faults."""
        faults = self.faults
        rng = random.Random(faults.seed)
        loop = asyncio.get_running_loop()
        held: bytes | None = None
        held_audio_of: str | None = None
        count = 0
        while True:
            self._sending = False
            if held is None:
                item = await self._queue.get()
            else:
                try:
                    item = await asyncio.wait_for(self._queue.get(), _REORDER_HOLD_S)
                except TimeoutError:
                    self._sending = True
                    await self.ws.send(held, text=True)
                    held = None
                    continue
            self._sending = True
            if isinstance(item, _Drop):
                self.ws.transport.abort()
                return
            if isinstance(item, _Close):
                await self.ws.close(item.code, item.reason)
                return
            data, queued_at, audio_of = item
            if faults.jitter_ms:
                due = queued_at + rng.uniform(0.0, faults.jitter_ms) / 1000.0
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
            count += 1
            if faults.reorder_every and held is None and count % faults.reorder_every == 0:
                held, held_audio_of = data, audio_of
                continue
            if held is not None and audio_of is not None and audio_of == held_audio_of:
                # two pieces of one item's audio keep their order: a client has no way to
                # put audio back in order (deltas carry no position), and a server's audio
                # stream is ordered; what can arrive out of order is one event against another
                await self.ws.send(held, text=True)
                held = None
            await self.ws.send(data, text=True)
            if held is not None:
                await self.ws.send(held, text=True)
                held = None
            if faults.duplicate_every and count % faults.duplicate_every == 0:
                await self.ws.send(data, text=True)
            if count == faults.malformed_frame_after:
                await self.ws.send(_MALFORMED)


class Pace:
    """When each chunk of a reply is due: the first ``latency_ms`` after the reply started,
    then one every ``chunk_ms / speed`` milliseconds (``speed`` times real time)."""

    def __init__(self, chunk_ms: int, speed: float, latency_ms: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._first_at = self._loop.time() + latency_ms / 1000.0
        self._period_s = chunk_ms / 1000.0 / speed

    async def until(self, index: int) -> None:
        """Sleep until chunk ``index`` (0-based) is due."""
        due = self._first_at + index * self._period_s
        await asyncio.sleep(max(0.0, due - self._loop.time()))
