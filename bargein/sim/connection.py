"""One client's connection: its protocol state and the dispatch of its client events.

The state is the session's settings, the input clock (milliseconds of audio appended), the
server VAD, the conversation's items and the replies in progress (``replies``, see
replies.py). ``run`` reads client events until the socket closes; every answer goes out
through the connection's ``Outbox`` (sending.py), in order. The handlers live by concern:
session and responses here, the user's audio in input_audio.py, items in
conversation_items.py.

A ``session.update`` that changes the voice once the assistant has spoken is refused, as
upstream (``cannot_update_voice``, with a null ``event_id``), and nothing of it applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from typing import Any, Final

import msgspec
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from bargein.adapters.at_once import AtOnce
from bargein.errors import InvalidSession
from bargein.sim import conversation_items, input_audio
from bargein.sim.config import SimConfig
from bargein.sim.faults import Faults
from bargein.sim.items import Item, render_item
from bargein.sim.record import ConnectionRecord
from bargein.sim.replies import UNKNOWN_EVENT, Replies, Reply
from bargein.sim.responses import ResponseParams, params
from bargein.sim.sending import Outbox
from bargein.sim.settings import Api, Settings, render, updated
from bargein.sim.voice import Voicebank


class SimSocket(AtOnce, ServerConnection):
    """websockets' server connection, with messages in and out at once
    (``bargein.adapters.at_once``)."""


CLOSE_AT_ONCE_REASON: Final = "the simulator closes at once (fault close_at_once)"
"""The close frame's reason under the ``close_at_once`` fault."""


class Connection:
    """One client's session: settings, input clock, VAD, conversation and current reply."""

    def __init__(
        self,
        ws: SimSocket,
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
        self._delayed: set[asyncio.TimerHandle] = set()
        """Cancels waiting out ``cancel_delay_ms``."""
        self.record = record
        self.session_id = self.ids("sess")
        self.settings = Settings(model=model)
        self.items: dict[str, Item] = {}
        self.out = Outbox(ws, record, faults, api, self.ids, config.on_event, violations)
        self.replies = Replies(self.out, self.items, config, faults, voices, api, self.ids,
                               self.now_ms, self._reply_done)
        self.input_samples = 0
        self.buffer_start_ms = 0
        self.speech_item: str | None = None
        self.idle_from_ms: int | None = None
        """When the idle timeout started counting (input clock), if it is armed."""
        self.transcribed = 0
        self.vad = input_audio.new_vad(self)

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
            for handle in self._delayed:  # the connection is gone: nothing more happens
                handle.cancel()
            self.replies.abandon()
            sender.cancel()

    def drop(self) -> None:
        """Cut the TCP connection now, without a close frame."""
        self.ws.transport.abort()

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.listen(self._take)

    def _take(self, message: str | bytes) -> None:
        """One client message: recorded, then handled."""
        try:
            event = msgspec.json.decode(message)
        except msgspec.DecodeError:
            self.record.add_received({"type": None, "raw": str(message)[:200]})
            self.out.error("invalid_json", "The message is not valid JSON.")
            return
        if not isinstance(event, dict):
            self.record.add_received({"type": None, "raw": str(message)[:200]})
            self.out.error("invalid_json", "The message must be a JSON object.")
            return
        if event.get("type") == "input_audio_buffer.append":
            audio = event.pop("audio", None)
            self.record.add_received(event)
            input_audio.on_append(self, event, audio)
        else:
            self.record.add_received(event)
            self.handle(event)

    def _session(self) -> dict[str, Any]:
        return render(self.settings, self.api, self.session_id)

    # ---- shared by the handlers -----------------------------------------------------------

    def now_ms(self) -> int:
        """The input clock: milliseconds of audio appended during the session."""
        return self.input_samples * 1000 // input_audio.rate(self)

    def add_item(self, item: Item, previous: str | None) -> None:
        """Add ``item`` at the end of the conversation and announce it."""
        self.items[item.id] = item
        self.announce(item, previous)

    def announce(self, item: Item, previous: str | None) -> None:
        """The events of an item that joined the conversation after ``previous``."""
        rendered = render_item(item, "completed")
        kinds = ("conversation.item.added", "conversation.item.done")
        for kind in kinds if self.api == "ga" else ("conversation.item.created",):
            self.out.emit({"type": kind, "item": rendered, "previous_item_id": previous})

    def start_reply(self, request: ResponseParams) -> None:
        """Start a reply; a reply of the conversation stops the idle timeout."""
        if request.in_conversation:
            self.idle_from_ms = None
        self.replies.start(request)

    def _reply_done(self, reply: Reply, status: str) -> None:
        input_audio.reply_done(self, reply, status)

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
        spoken = any(item.audio_bytes for item in self.items.values())
        if new.voice != self.settings.voice and spoken:
            self.out.error(  # as upstream: no param, no event_id
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.",
            )
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
            self.vad = input_audio.new_vad(self)
        self.out.emit({"type": "session.updated", "session": self._session()})

    def on_response_create(self, event: dict[str, Any]) -> None:
        try:
            request = params(self.settings, event.get("response"), self.api)
        except InvalidSession as exc:
            self.out.error(exc.code, str(exc), exc.param, event)
            return
        active = self.replies.active
        if request.in_conversation and active is not None:
            self.out.error(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: "
                f"{active.id}. Wait until the response is finished before creating "
                f"a new one.",
                None,
                event,
            )
            return
        self.start_reply(request)

    def on_response_cancel(self, event: dict[str, Any]) -> None:
        """Cancel the active reply; a cancel naming another response is refused, as upstream
        (after ``cancel_delay_ms``, when that fault is set)."""
        delay = self.faults.cancel_delay_ms
        if delay:
            self._delayed.add(asyncio.get_running_loop().call_later(
                delay / 1000, self._cancel, event))
        else:
            self._cancel(event)

    def _cancel(self, event: dict[str, Any]) -> None:
        named = event.get("response_id")
        reply = self.replies.find(named if isinstance(named, str) else None)
        if reply is None:
            detail = "" if named is None else f" with id {named!r}"
            self.out.error(
                "response_cancel_not_active",
                f"Cancellation failed: no active response found{detail}",
                None if named is None else "response_id",
                event,
            )
            return
        self.replies.finish(reply, "cancelled", "client_cancelled")


_HANDLERS: Final[dict[str, Callable[[Connection, dict[str, Any]], None]]] = {  # by concern
    "session.update": Connection.on_session_update,
    "input_audio_buffer.commit": input_audio.on_commit,
    "input_audio_buffer.clear": input_audio.on_clear,
    "conversation.item.create": conversation_items.on_create,
    "conversation.item.retrieve": conversation_items.on_retrieve,
    "conversation.item.truncate": conversation_items.on_truncate,
    "conversation.item.delete": conversation_items.on_delete,
    "response.create": Connection.on_response_create,
    "response.cancel": Connection.on_response_cancel,
}
