"""One client's connection: its protocol state and the handlers of its client events.

The state is the session's settings, the input clock (milliseconds of audio appended), the
server VAD, the conversation's items and the reply in progress (``replies``, see
replies.py). ``run`` reads client events until the socket closes; every answer goes out
through the connection's ``Outbox`` (sending.py), in order.
"""

from __future__ import annotations

import asyncio
import binascii
import itertools
from collections.abc import Callable
from typing import Any, Final

import msgspec
import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from bargein.adapters.audio.vad import EnergyVad, VadEdge
from bargein.adapters.session_config import SAMPLE_RATES
from bargein.errors import InvalidSession
from bargein.sim.config import SimConfig
from bargein.sim.faults import Faults
from bargein.sim.record import ConnectionRecord
from bargein.sim.replies import UNKNOWN_EVENT, Item, Replies, render_item
from bargein.sim.sending import Outbox
from bargein.sim.settings import Api, Settings, render, updated
from bargein.sim.voice import Voicebank

_MIN_COMMIT_MS: Final = 100
"""The least audio a commit takes, as upstream: less is ``input_audio_buffer_commit_empty``."""
CLOSE_AT_ONCE_REASON: Final = "the simulator closes at once (fault close_at_once)"
"""The close frame's reason under the ``close_at_once`` fault."""


class Connection:
    """One client's session: settings, input clock, VAD, conversation and current reply."""

    def __init__(
        self,
        ws: ServerConnection,
        config: SimConfig,
        api: Api,
        model: str,
        faults: Faults,
        record: ConnectionRecord,
        violations: list[str],
        voices: Voicebank,
    ) -> None:
        counter = itertools.count(1)
        tag = f"{id(self) % 10_000:04d}"
        self.ids: Callable[[str], str] = lambda prefix: f"{prefix}_sim{tag}{next(counter):08d}"
        self.ws = ws
        self.config = config
        self.api = api
        self.faults = faults
        self.record = record
        self.session_id = self.ids("sess")
        self.settings = Settings(model=model)
        self.items: dict[str, Item] = {}
        self.out = Outbox(ws, record, faults, api, self.ids, config.on_event, violations)
        self.replies = Replies(self.out, self.items, config, faults, voices, api, self.ids)
        self.input_samples = 0
        self.buffer_start_ms = 0
        self.speech_item: str | None = None
        self.vad = self._new_vad()

    # ---- the connection's life ------------------------------------------------------------

    async def run(self) -> None:
        """Serve the client until the socket closes (the faults ``silent`` and
        ``close_at_once`` cut this short)."""
        if self.faults.silent:
            self.ws.transport.pause_reading()  # reads nothing, so answers no ping: a dead peer
            await self.ws.wait_closed()
            return
        sender = asyncio.create_task(self.out.run())
        try:
            if self.faults.close_at_once:
                self.out.error(
                    "sim_closed_at_once", "The simulator closes this connection on purpose."
                )
                self.out.close(self.faults.close_at_once, CLOSE_AT_ONCE_REASON)
            else:
                self.out.emit({"type": "session.created", "session": self._session()})
                if self.faults.unknown_events:
                    self.out.emit_raw(UNKNOWN_EVENT)
            await self._read()
        finally:
            self.replies.abandon()
            sender.cancel()

    def drop(self) -> None:
        """Cut the TCP connection now, without a close frame."""
        self.ws.transport.abort()

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                try:
                    event = msgspec.json.decode(message)
                except msgspec.DecodeError:
                    self.record.add_received({"type": None, "raw": str(message)[:200]})
                    self.out.error("invalid_json", "The message is not valid JSON.")
                    continue
                if not isinstance(event, dict):
                    self.record.add_received({"type": None, "raw": str(message)[:200]})
                    self.out.error("invalid_json", "The message must be a JSON object.")
                    continue
                if event.get("type") == "input_audio_buffer.append":
                    audio = event.pop("audio", None)
                    self.record.add_received(event)
                    self.on_append(event, audio)
                else:
                    self.record.add_received(event)
                    self.handle(event)
        except ConnectionClosed:
            pass

    def _session(self) -> dict[str, Any]:
        return render(self.settings, self.api, self.session_id)

    # ---- the input clock and the VAD ------------------------------------------------------

    def _rate(self) -> int:
        return SAMPLE_RATES[self.settings.input_format]

    def now_ms(self) -> int:
        """The input clock: milliseconds of audio appended during the session."""
        return self.input_samples * 1000 // self._rate()

    def _new_vad(self) -> EnergyVad | None:
        vad = self.settings.turn_detection
        if vad is None:
            return None
        detector = EnergyVad(
            self._rate(),
            vad.threshold,
            vad.prefix_padding_ms,
            vad.silence_duration_ms,
            start_ms=self.now_ms(),
        )
        detector.restart(self.buffer_start_ms)
        return detector

    def _decode(self, raw: bytes) -> bytes:
        fmt = self.settings.input_format
        if fmt == "pcm16":
            return raw
        from bargein.adapters.audio import g711

        return g711.ulaw_decode(raw) if fmt == "g711_ulaw" else g711.alaw_decode(raw)

    def _on_edge(self, edge: VadEdge) -> None:
        turn = self.settings.turn_detection
        assert turn is not None
        if edge.started:
            self.speech_item = self.ids("item")
            self.out.emit(
                {
                    "type": "input_audio_buffer.speech_started",
                    "audio_start_ms": edge.at_ms,
                    "item_id": self.speech_item,
                }
            )
            if turn.interrupt_response and self.replies.active is not None:
                self.replies.finish("cancelled", "turn_detected")
            return
        item_id = self.speech_item or self.ids("item")
        self.out.emit(
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": edge.at_ms,
                "item_id": item_id,
            }
        )
        self.commit(item_id)
        if turn.create_response and self.replies.active is None:
            self.replies.start(self.settings)

    def commit(self, item_id: str) -> None:
        """Commit the input buffer as a user item; the VAD starts a new buffer."""
        previous = next(reversed(self.items), None)
        self.out.emit(
            {
                "type": "input_audio_buffer.committed",
                "item_id": item_id,
                "previous_item_id": previous,
            }
        )
        item = Item(item_id, "user", [{"type": "input_audio", "transcript": None}])
        self._add_item(item, previous)
        self.buffer_start_ms = self.now_ms()
        self.speech_item = None
        if self.vad is not None:
            self.vad.restart(self.buffer_start_ms)

    def _add_item(self, item: Item, previous: str | None) -> None:
        self.items[item.id] = item
        rendered = render_item(item, "completed")
        kinds = ("conversation.item.added", "conversation.item.done")
        for kind in kinds if self.api == "ga" else ("conversation.item.created",):
            self.out.emit({"type": kind, "item": rendered, "previous_item_id": previous})

    # ---- client events ----------------------------------------------------------------------

    def handle(self, event: dict[str, Any]) -> None:
        """Answer one client event (appends go to ``on_append``, their audio kept apart)."""
        kind = event.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            self.out.error("invalid_event_type", f"Unknown event type: {kind!r}.", "type", event)
            return
        handler(self, event)

    def on_session_update(self, event: dict[str, Any]) -> None:
        try:
            new = updated(self.settings, event.get("session"), self.api)
        except InvalidSession as exc:
            self.out.error(exc.code, str(exc), exc.param, event)
            return
        input_changed = new.input_format != self.settings.input_format
        if input_changed and self.input_samples:
            self.out.error(
                "invalid_value",
                "The input audio format cannot change once audio was appended.",
                "session.input_audio_format",
                event,
            )
            return
        vad_changed = new.turn_detection != self.settings.turn_detection or input_changed
        self.settings = new
        self.record.audio_format = new.input_format
        if vad_changed:
            self.vad = self._new_vad()
        self.out.emit({"type": "session.updated", "session": self._session()})

    def on_append(self, event: dict[str, Any], audio: object) -> None:
        """Take ``audio`` (the append's payload, kept out of the record) to the VAD."""
        try:
            raw = binascii.a2b_base64(audio, strict_mode=True) if isinstance(audio, str) else None
        except binascii.Error:
            raw = None
        if raw is None:
            self.out.error("invalid_value", "audio must be base64-encoded audio.", "audio", event)
            return
        if self.config.record_audio:
            self.record.audio += raw
        pcm = self._decode(raw)
        samples = np.frombuffer(pcm[: len(pcm) & ~1], dtype="<i2")
        self.input_samples += samples.size
        if self.vad is not None:
            for edge in self.vad.feed(samples):
                self._on_edge(edge)

    def on_commit(self, event: dict[str, Any]) -> None:
        buffered = self.now_ms() - self.buffer_start_ms
        if buffered < _MIN_COMMIT_MS:
            self.out.error(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: buffer too small. Expected at "
                f"least {_MIN_COMMIT_MS}ms of audio, but buffer only has {buffered}ms of audio.",
                None,
                event,
            )
            return
        self.commit(self.speech_item or self.ids("item"))

    def on_clear(self, event: dict[str, Any]) -> None:
        self.buffer_start_ms = self.now_ms()
        self.speech_item = None
        if self.vad is not None:
            self.vad.restart(self.buffer_start_ms)
        self.out.emit({"type": "input_audio_buffer.cleared"})

    def on_item_create(self, event: dict[str, Any]) -> None:
        item = event.get("item")
        if (
            not isinstance(item, dict)
            or item.get("type") != "message"
            or item.get("role") not in ("user", "system", "assistant")
            or not isinstance(item.get("content"), list)
        ):
            self.out.error(
                "invalid_value",
                "The simulator accepts message items with a role and a content list.",
                "item",
                event,
            )
            return
        given = item.get("id")
        item_id = given if isinstance(given, str) else self.ids("item")
        previous = next(reversed(self.items), None)
        self._add_item(Item(item_id, item["role"], item["content"]), previous)

    def on_truncate(self, event: dict[str, Any]) -> None:
        item = self.items.get(str(event.get("item_id")))
        end = event.get("audio_end_ms")
        if item is None:
            self.out.error(
                "item_not_found",
                f"Item with item_id not found: {event.get('item_id')!r}.",
                "item_id",
                event,
            )
            return
        sent_ms = item.audio_ms
        if item.role != "assistant":
            self.out.error(
                "invalid_value", "Only assistant messages can be truncated.", "item_id", event
            )
        elif event.get("content_index") != 0:
            self.out.error("invalid_value", "content_index must be 0.", "content_index", event)
        elif isinstance(end, bool) or not isinstance(end, int) or end < 0:
            self.out.error(
                "invalid_value",
                "audio_end_ms must be a non-negative integer.",
                "audio_end_ms",
                event,
            )
        elif end > sent_ms:
            self.out.error(
                "invalid_value",
                f"Audio content of {sent_ms}ms is already shorter than {end}ms.",
                "audio_end_ms",
                event,
            )
        else:
            self.out.emit(
                {
                    "type": "conversation.item.truncated",
                    "item_id": item.id,
                    "content_index": 0,
                    "audio_end_ms": end,
                }
            )

    def on_delete(self, event: dict[str, Any]) -> None:
        item_id = str(event.get("item_id"))
        if self.items.pop(item_id, None) is None:
            self.out.error(
                "item_not_found", f"Item with item_id not found: {item_id!r}.", "item_id", event
            )
            return
        self.out.emit({"type": "conversation.item.deleted", "item_id": item_id})

    def on_response_create(self, event: dict[str, Any]) -> None:
        active = self.replies.active
        if active is not None:
            self.out.error(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: "
                f"{active.id}. Wait until the response is finished before creating "
                f"a new one.",
                None,
                event,
            )
            return
        self.replies.start(self.settings)

    def on_response_cancel(self, event: dict[str, Any]) -> None:
        """Cancel the active reply; a cancel naming another response is refused, as upstream."""
        named = event.get("response_id")
        active = self.replies.active
        if active is None or (named is not None and named != active.id):
            detail = "" if named is None else f" with id {named!r}"
            self.out.error(
                "response_cancel_not_active",
                f"Cancellation failed: no active response found{detail}",
                None if named is None else "response_id",
                event,
            )
            return
        self.replies.finish("cancelled", "client_cancelled")


_HANDLERS: Final[dict[str, Callable[[Connection, dict[str, Any]], None]]] = {
    "session.update": Connection.on_session_update,
    "input_audio_buffer.commit": Connection.on_commit,
    "input_audio_buffer.clear": Connection.on_clear,
    "conversation.item.create": Connection.on_item_create,
    "conversation.item.truncate": Connection.on_truncate,
    "conversation.item.delete": Connection.on_delete,
    "response.create": Connection.on_response_create,
    "response.cancel": Connection.on_response_cancel,
}
