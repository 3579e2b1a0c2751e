"""Reply generation: the assistant's responses on one connection, built, streamed, ended.

A reply is ``response.created`` and its output item, then transcript and audio deltas
paced by ``sending.Pace``, then the done events and ``response.done`` (``completed``,
``cancelled`` or ``failed``). At most one reply is active per connection. ``render_item``
and ``render_response`` write items and responses in the shape the connection's API
declares. A reply keeps the session settings of its creation: its audio is made in that
output format whatever a later ``session.update`` says.
"""

from __future__ import annotations

import asyncio
import binascii
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from bargein.sim.config import SimConfig
from bargein.sim.faults import Faults
from bargein.sim.sending import Outbox, Pace
from bargein.sim.settings import Api, Format, Settings, bytes_per_ms, ga_format
from bargein.sim.voice import Voicebank

INJECTED_ERROR_CODE: Final = "sim_injected_error"
INJECTED_ERROR_MESSAGE: Final = "The simulator failed this response on purpose."
UNKNOWN_EVENT: Final = msgspec.json.encode({"type": "sim.unknown_event", "event_id": "event_x"})
"""The event of an unknown type that the ``unknown_events`` fault sends."""


@dataclass
class Item:
    """A conversation item; ``audio_bytes`` is the assistant audio sent for it so far, in
    ``audio_format``."""

    id: str
    role: str
    content: list[dict[str, Any]]
    audio_bytes: int = 0
    audio_format: Format = "pcm16"

    @property
    def audio_ms(self) -> int:
        """Milliseconds of audio sent for the item: what a truncate may cut within."""
        return self.audio_bytes // bytes_per_ms(self.audio_format)


@dataclass
class Reply:
    """The response being generated: its audio, and how much of it was sent."""

    id: str
    item: Item
    text: str
    settings: Settings
    task: asyncio.Task[None] | None = None
    audio: bytes = b""
    chunks_sent: int = 0
    words_sent: int = 0
    transcript: str = ""


def render_item(item: Item, status: str) -> dict[str, Any]:
    """A conversation item as server events carry it."""
    return {
        "id": item.id,
        "object": "realtime.item",
        "type": "message",
        "role": item.role,
        "status": status,
        "content": item.content,
    }


def render_response(
    reply: Reply,
    status: str,
    details: dict[str, Any] | None,
    output: list[dict[str, Any]],
    api: Api,
) -> dict[str, Any]:
    """The response object of ``response.created`` / ``response.done``, as ``api`` declares."""
    common = {
        "id": reply.id,
        "object": "realtime.response",
        "status": status,
        "status_details": details,
        "output": output,
        "conversation_id": "conv_sim",
        "max_output_tokens": "inf",
        "metadata": None,
        "usage": None,
    }
    if api == "ga":
        return {
            **common,
            "output_modalities": ["audio"],
            "audio": {
                "output": {
                    "format": ga_format(reply.settings.output_format),
                    "voice": reply.settings.voice,
                }
            },
        }
    return {
        **common,
        "modalities": ["audio", "text"],
        "output_audio_format": reply.settings.output_format,
        "voice": reply.settings.voice,
        "temperature": 0.8,
    }


def _part(reply: Reply) -> dict[str, Any]:
    """The fields that place an event in the reply's one item and content part."""
    return {
        "response_id": reply.id,
        "item_id": reply.item.id,
        "output_index": 0,
        "content_index": 0,
    }


class Replies:
    """The assistant's replies on one connection: ``start`` one, ``finish`` the active one.

    ``items`` is the connection's conversation (shared): a reply's item joins it.
    """

    def __init__(
        self,
        out: Outbox,
        items: dict[str, Item],
        config: SimConfig,
        faults: Faults,
        voices: Voicebank,
        api: Api,
        ids: Callable[[str], str],
    ) -> None:
        self.out = out
        self.items = items
        self.config = config
        self.faults = faults
        self.voices = voices
        self.api = api
        self.ids = ids
        self.active: Reply | None = None
        self.turns = 0

    def _event(self, suffix: str) -> str:
        """GA says response.output_audio..., beta response.audio...."""
        return f"response.output_{suffix}" if self.api == "ga" else f"response.{suffix}"

    def _chunk_bytes(self, reply: Reply) -> int:
        return self.config.chunk_ms * bytes_per_ms(reply.settings.output_format)

    def start(self, settings: Settings) -> None:
        """Begin the next reply of the script: its created events, then stream it."""
        text = self.config.script[self.turns % len(self.config.script)]
        self.turns += 1
        item = Item(self.ids("item"), "assistant", [], audio_format=settings.output_format)
        reply = Reply(self.ids("resp"), item, text, settings)
        self.active = reply
        previous = next(reversed(self.items), None)
        self.items[item.id] = item
        response = render_response(reply, "in_progress", None, [], self.api)
        self.out.emit({"type": "response.created", "response": response})
        if self.faults.unknown_events:
            self.out.emit_raw(UNKNOWN_EVENT)
        rendered = render_item(item, "in_progress")
        self.out.emit(
            {
                "type": "response.output_item.added",
                "response_id": reply.id,
                "output_index": 0,
                "item": rendered,
            }
        )
        added = "conversation.item.added" if self.api == "ga" else "conversation.item.created"
        self.out.emit({"type": added, "item": rendered, "previous_item_id": previous})
        self.out.emit(
            {
                "type": "response.content_part.added",
                **_part(reply),
                "part": {"type": "audio", "transcript": ""},
            }
        )
        reply.task = asyncio.create_task(self._stream(reply))

    async def _stream(self, reply: Reply) -> None:
        """Send the reply's transcript and audio deltas, paced at ``speed`` times real time."""
        pace = Pace(self.config.chunk_ms, self.config.speed, self.config.reply_latency_ms)
        reply.audio = self.voices.audio(reply.text, reply.settings.output_format)
        chunk = self._chunk_bytes(reply)
        chunks = max(1, math.ceil(len(reply.audio) / chunk))
        words = reply.text.split(" ")
        for index in range(chunks):
            await pace.until(index)
            if index == chunks // 2 and self.faults.error_mid_response:
                self.out.error(INJECTED_ERROR_CODE, INJECTED_ERROR_MESSAGE, kind="server_error")
                self.finish("failed", None)
                return
            upto = math.ceil((index + 1) * len(words) / chunks)
            if upto > reply.words_sent:
                delta = " ".join(words[reply.words_sent : upto])
                delta = delta if reply.words_sent == 0 else " " + delta
                reply.words_sent = upto
                reply.transcript += delta
                self.out.emit(
                    {"type": self._event("audio_transcript.delta"), **_part(reply), "delta": delta}
                )
            self._send_chunk(reply, index, chunk)
            if index == chunks // 2 and self.faults.disconnect_at == "mid_reply":
                self.out.drop()
        self.finish("completed", None)

    def _send_chunk(self, reply: Reply, index: int, chunk: int) -> None:
        data = reply.audio[index * chunk : (index + 1) * chunk]
        reply.item.audio_bytes += len(data)
        reply.chunks_sent = index + 1
        self.out.emit(
            {
                "type": self._event("audio.delta"),
                **_part(reply),
                "delta": binascii.b2a_base64(data, newline=False).decode(),
            }
        )

    def finish(self, status: str, reason: str | None) -> None:
        """End the active reply with ``status`` (completed, cancelled, failed): its done
        events, ``response.done``, and the late deltas of a cancel if the fault asks."""
        reply = self.active
        assert reply is not None
        self.active = None
        if reply.task is not None and reply.task is not asyncio.current_task():
            reply.task.cancel()
        ids = _part(reply)
        reply.item.content = [
            {
                "type": "output_audio" if self.api == "ga" else "audio",
                "transcript": reply.transcript,
            }
        ]
        item_status = "completed" if status == "completed" else "incomplete"
        rendered = render_item(reply.item, item_status)
        self.out.emit({"type": self._event("audio.done"), **ids})
        self.out.emit(
            {"type": self._event("audio_transcript.done"), **ids, "transcript": reply.transcript}
        )
        self.out.emit(
            {
                "type": "response.content_part.done",
                **ids,
                "part": {"type": "audio", "transcript": reply.transcript},
            }
        )
        self.out.emit(
            {
                "type": "response.output_item.done",
                "response_id": reply.id,
                "output_index": 0,
                "item": rendered,
            }
        )
        if self.api == "ga":
            self.out.emit({"type": "conversation.item.done", "item": rendered})
        details: dict[str, Any] | None = None
        if status == "cancelled":
            details = {"type": "cancelled", "reason": reason}
        elif status == "failed":
            details = {
                "type": "failed",
                "error": {
                    "type": "server_error",
                    "code": INJECTED_ERROR_CODE,
                    "message": INJECTED_ERROR_MESSAGE,
                },
            }
        response = render_response(reply, status, details, [rendered], self.api)
        self.out.emit({"type": "response.done", "response": response})
        late = self.faults.late_deltas_after_cancel
        if status == "cancelled" and late and reply.audio:
            chunk = self._chunk_bytes(reply)
            for index in range(reply.chunks_sent, reply.chunks_sent + late):
                if index * chunk < len(reply.audio):
                    self._send_chunk(reply, index, chunk)

    def abandon(self) -> None:
        """The connection closed: stop streaming the active reply, send nothing more."""
        if self.active is not None and self.active.task is not None:
            self.active.task.cancel()
