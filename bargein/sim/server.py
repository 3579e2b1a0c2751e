"""The simulator's websockets server: one `_Connection` per client, speaking GA or beta.

Server events go through one queue per connection, drained by a single sender task, so
events produced by the reply task and by client events keep a deterministic order and a
cancellation can never slip between a delta's check and its send; the sender is also where
the wire faults (duplicates, reordering, jitter, malformed frames, disconnects) happen.
"""

from __future__ import annotations

import asyncio
import binascii
import gc
import itertools
import logging
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import msgspec
import numpy as np
import structlog
from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bargein.adapters.audio.vad import EnergyVad, VadEdge
from bargein.adapters.secrets import RedactingFilter
from bargein.errors import InvalidSession, SimError
from bargein.sim.config import SimConfig
from bargein.sim.faults import Faults
from bargein.sim.record import ConnectionRecord
from bargein.sim.settings import Api, Settings, bytes_per_ms, ga_format, render, updated
from bargein.sim.voice import Voicebank

log = structlog.get_logger(__name__)

_ws_logger = logging.getLogger("bargein.sim.server.websockets")
"""websockets' own log of the server: at debug it holds clients' auth headers, so redacted."""
_ws_logger.addFilter(RedactingFilter())

FAULTS_PARAM: Final = "sim_faults"
FAULTS_HEADER: Final = "X-Bargein-Sim-Faults"
_MIN_COMMIT_MS: Final = 100
_REORDER_HOLD_S: Final = 0.05
_ABORT: Final = object()
_PHASE_OF_EVENT: Final = {
    "session.created": "session_created",
    "input_audio_buffer.speech_started": "speech_started",
    "response.created": "response_created",
    "response.done": "response_done",
}
_BEARER = re.compile(r"^\s*Bearer\s+(.+?)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Handshake:
    api: Api
    model: str
    path: str
    faults: Faults
    faults_spec: str


def _handshake(request: Request, config: SimConfig) -> _Handshake | tuple[HTTPStatus, str]:
    """What a connection asked for, or the HTTP status and reason to refuse it."""
    url = urlsplit(request.path)
    if not url.path.rstrip("/").endswith("/realtime"):
        return HTTPStatus.NOT_FOUND, "the simulator serves paths ending in /realtime\n"
    key = _api_key(request.headers)
    if key is not None and key in config.reject_api_keys:
        return HTTPStatus.UNAUTHORIZED, "Incorrect API key provided.\n"
    query = parse_qs(url.query)
    spec = request.headers.get(FAULTS_HEADER) or ",".join(query.get(FAULTS_PARAM, []))
    try:
        faults = Faults.parse(spec) if spec else config.faults
    except SimError as exc:
        return HTTPStatus.BAD_REQUEST, f"{exc}\n"
    beta = "realtime=v1" in (request.headers.get("OpenAI-Beta") or "")
    model = (query.get("model") or query.get("deployment") or ["gpt-realtime"])[0]
    return _Handshake("beta" if beta else "ga", model, url.path, faults, spec)


def _api_key(headers: Headers) -> str | None:
    if "api-key" in headers:
        return headers["api-key"]
    match = _BEARER.match(headers.get("Authorization") or "")
    return match.group(1) if match else None


@dataclass
class _Item:
    """A conversation item; ``audio_bytes`` is the assistant audio sent for it so far."""

    id: str
    role: str
    content: list[dict[str, Any]]
    audio_bytes: int = 0


@dataclass
class _Reply:
    """The response being generated: its audio, and how much of it was sent."""

    id: str
    item: _Item
    text: str
    task: asyncio.Task[None] | None = None
    audio: bytes = b""
    chunks_sent: int = 0
    words_sent: int = 0
    transcript: str = ""


@dataclass
class _Connection:
    """One client's session: settings, input clock, VAD, conversation and current reply."""

    ws: ServerConnection
    config: SimConfig
    setup: _Handshake
    record: ConnectionRecord
    violations: list[str]
    voices: Voicebank
    settings: Settings = field(init=False)
    ids: Callable[[str], str] = field(init=False)
    out: asyncio.Queue[object] = field(default_factory=asyncio.Queue)
    items: dict[str, _Item] = field(default_factory=dict)
    reply: _Reply | None = None
    turns: int = 0
    input_samples: int = 0
    buffer_start_ms: int = 0
    speech_item: str | None = None
    vad: EnergyVad | None = None

    def __post_init__(self) -> None:
        counter = itertools.count(1)
        self.ids = lambda prefix: f"{prefix}_sim{id(self) % 10_000:04d}{next(counter):08d}"
        self.settings = Settings(model=self.setup.model)
        self.vad = self._new_vad()

    @property
    def api(self) -> Api:
        return self.setup.api

    # ---- output ---------------------------------------------------------------------

    def emit(self, event: dict[str, Any]) -> None:
        """Queue a server event; check it with the configured hook; note faults' phases."""
        event["event_id"] = self.ids("event")
        if self.config.on_event is not None:
            try:
                self.config.on_event(event, self.api)
            except Exception as exc:  # a hook's verdict, kept for the test to report
                self.violations.append(f"{event.get('type')}: {exc}")
        data = msgspec.json.encode(event)
        if event["type"].endswith("audio.delta"):
            hollow = {**event, "delta": f"<{len(event['delta'])} base64 chars>"}
            self.record.add_sent(msgspec.json.encode(hollow))
        else:
            self.record.add_sent(data)
        self.out.put_nowait((data, asyncio.get_running_loop().time()))
        phase = self.setup.faults.disconnect_at
        if phase is not None and _PHASE_OF_EVENT.get(event["type"]) == phase:
            self.out.put_nowait(_ABORT)

    def emit_raw(self, data: bytes) -> None:
        """Queue a frame outside the protocol (an injected fault), bypassing the hook."""
        self.out.put_nowait((data, asyncio.get_running_loop().time()))

    def error(
        self,
        code: str,
        message: str,
        param: str | None = None,
        client_event: dict[str, Any] | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
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

    async def send_loop(self) -> None:
        faults = self.setup.faults
        rng = random.Random(faults.seed)
        loop = asyncio.get_running_loop()
        held: bytes | None = None
        count = 0
        while True:
            if held is None:
                item = await self.out.get()
            else:
                try:
                    item = await asyncio.wait_for(self.out.get(), _REORDER_HOLD_S)
                except TimeoutError:
                    await self.ws.send(held, text=True)
                    held = None
                    continue
            if item is _ABORT:
                self.ws.transport.abort()
                return
            assert isinstance(item, tuple)
            data, queued_at = item
            if faults.jitter_ms:
                due = queued_at + rng.uniform(0.0, faults.jitter_ms) / 1000.0
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
            count += 1
            if faults.reorder_every and held is None and count % faults.reorder_every == 0:
                held = data
                continue
            await self.ws.send(data, text=True)
            if held is not None:
                await self.ws.send(held, text=True)
                held = None
            if faults.duplicate_every and count % faults.duplicate_every == 0:
                await self.ws.send(data, text=True)
            if count == faults.malformed_frame_after:
                await self.ws.send('{"type": "response.output_audio.delta", "delta": ')

    # ---- input ----------------------------------------------------------------------

    def _rate(self) -> int:
        return 24_000 if self.settings.input_format == "pcm16" else 8_000

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

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            self.error("invalid_event_type", f"Unknown event type: {kind!r}.", "type", event)
            return
        handler(self, event)

    def on_session_update(self, event: dict[str, Any]) -> None:
        try:
            new = updated(self.settings, event.get("session"), self.api)
        except InvalidSession as exc:
            self.error(exc.code, str(exc), exc.param, event)
            return
        input_changed = new.input_format != self.settings.input_format
        if input_changed and self.input_samples:
            self.error(
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
        self.emit({"type": "session.updated", "session": render(new, self.api, self.ids("sess"))})

    def on_append(self, event: dict[str, Any], audio: object) -> None:
        """Take ``audio`` (the append's payload, kept out of the record) to the VAD."""
        try:
            raw = binascii.a2b_base64(audio, strict_mode=True) if isinstance(audio, str) else None
        except binascii.Error:
            raw = None
        if raw is None:
            self.error("invalid_value", "audio must be base64-encoded audio.", "audio", event)
            return
        if self.config.record_audio:
            self.record.audio += raw
        pcm = self._decode(raw)
        samples = np.frombuffer(pcm[: len(pcm) & ~1], dtype="<i2")
        self.input_samples += samples.size
        if self.vad is not None:
            for edge in self.vad.feed(samples):
                self._on_edge(edge)

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
            self.emit(
                {
                    "type": "input_audio_buffer.speech_started",
                    "audio_start_ms": edge.at_ms,
                    "item_id": self.speech_item,
                }
            )
            if turn.interrupt_response and self.reply is not None:
                self.finish_reply("cancelled", "turn_detected")
            return
        item_id = self.speech_item or self.ids("item")
        self.emit(
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": edge.at_ms,
                "item_id": item_id,
            }
        )
        self.commit(item_id)
        if turn.create_response and self.reply is None:
            self.start_reply()

    def commit(self, item_id: str) -> None:
        previous = next(reversed(self.items), None)
        self.emit(
            {
                "type": "input_audio_buffer.committed",
                "item_id": item_id,
                "previous_item_id": previous,
            }
        )
        item = _Item(item_id, "user", [{"type": "input_audio", "transcript": None}])
        self._add_item(item, previous)
        self.buffer_start_ms = self.now_ms()
        self.speech_item = None
        if self.vad is not None:
            self.vad.restart(self.buffer_start_ms)

    def _add_item(self, item: _Item, previous: str | None) -> None:
        self.items[item.id] = item
        rendered = self.render_item(item, "completed")
        if self.api == "ga":
            self.emit(
                {"type": "conversation.item.added", "item": rendered, "previous_item_id": previous}
            )
            self.emit(
                {"type": "conversation.item.done", "item": rendered, "previous_item_id": previous}
            )
        else:
            self.emit(
                {
                    "type": "conversation.item.created",
                    "item": rendered,
                    "previous_item_id": previous,
                }
            )

    def on_commit(self, event: dict[str, Any]) -> None:
        if self.now_ms() - self.buffer_start_ms < _MIN_COMMIT_MS:
            self.error(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: buffer too small. Expected at "
                f"least {_MIN_COMMIT_MS}ms of audio, but buffer only has "
                f"{self.now_ms() - self.buffer_start_ms}ms of audio.",
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
        self.emit({"type": "input_audio_buffer.cleared"})

    def on_item_create(self, event: dict[str, Any]) -> None:
        item = event.get("item")
        if (
            not isinstance(item, dict)
            or item.get("type") != "message"
            or item.get("role") not in ("user", "system", "assistant")
            or not isinstance(item.get("content"), list)
        ):
            self.error(
                "invalid_value",
                "The simulator accepts message items with a role and a content list.",
                "item",
                event,
            )
            return
        given = item.get("id")
        item_id = given if isinstance(given, str) else self.ids("item")
        previous = next(reversed(self.items), None)
        self._add_item(_Item(item_id, item["role"], item["content"]), previous)

    def on_truncate(self, event: dict[str, Any]) -> None:
        item = self.items.get(str(event.get("item_id")))
        end = event.get("audio_end_ms")
        if item is None:
            self.error(
                "item_not_found",
                f"Item with item_id not found: {event.get('item_id')!r}.",
                "item_id",
                event,
            )
        elif item.role != "assistant":
            self.error(
                "invalid_value", "Only assistant messages can be truncated.", "item_id", event
            )
        elif event.get("content_index") != 0:
            self.error("invalid_value", "content_index must be 0.", "content_index", event)
        elif isinstance(end, bool) or not isinstance(end, int) or end < 0:
            self.error(
                "invalid_value",
                "audio_end_ms must be a non-negative integer.",
                "audio_end_ms",
                event,
            )
        elif end > item.audio_bytes // bytes_per_ms(self.settings.output_format):
            sent = item.audio_bytes // bytes_per_ms(self.settings.output_format)
            self.error(
                "invalid_value",
                f"Audio content of {sent}ms is already shorter than {end}ms.",
                "audio_end_ms",
                event,
            )
        else:
            self.emit(
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
            self.error(
                "item_not_found", f"Item with item_id not found: {item_id!r}.", "item_id", event
            )
            return
        self.emit({"type": "conversation.item.deleted", "item_id": item_id})

    def on_response_create(self, event: dict[str, Any]) -> None:
        if self.reply is not None:
            self.error(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: "
                f"{self.reply.id}. Wait until the response is finished before creating "
                f"a new one.",
                None,
                event,
            )
            return
        self.start_reply()

    def on_response_cancel(self, event: dict[str, Any]) -> None:
        """Cancel the active reply; a cancel naming another response is refused, as upstream."""
        named = event.get("response_id")
        if self.reply is None or (named is not None and named != self.reply.id):
            detail = "" if named is None else f" with id {named!r}"
            self.error(
                "response_cancel_not_active",
                f"Cancellation failed: no active response found{detail}",
                None if named is None else "response_id",
                event,
            )
            return
        self.finish_reply("cancelled", "client_cancelled")

    # ---- replies --------------------------------------------------------------------

    def render_item(self, item: _Item, status: str) -> dict[str, Any]:
        return {
            "id": item.id,
            "object": "realtime.item",
            "type": "message",
            "role": item.role,
            "status": status,
            "content": item.content,
        }

    def render_response(
        self,
        reply: _Reply,
        status: str,
        details: dict[str, Any] | None,
        output: list[dict[str, Any]],
    ) -> dict[str, Any]:
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
        if self.api == "ga":
            return {
                **common,
                "output_modalities": ["audio"],
                "audio": {
                    "output": {
                        "format": ga_format(self.settings.output_format),
                        "voice": self.settings.voice,
                    }
                },
            }
        return {
            **common,
            "modalities": ["audio", "text"],
            "output_audio_format": self.settings.output_format,
            "voice": self.settings.voice,
            "temperature": 0.8,
        }

    def _part_events(self, reply: _Reply) -> dict[str, Any]:
        return {
            "response_id": reply.id,
            "item_id": reply.item.id,
            "output_index": 0,
            "content_index": 0,
        }

    def start_reply(self) -> None:
        text = self.config.script[self.turns % len(self.config.script)]
        self.turns += 1
        item = _Item(self.ids("item"), "assistant", [])
        reply = _Reply(self.ids("resp"), item, text)
        self.reply = reply
        previous = next(reversed(self.items), None)
        self.items[item.id] = item
        self.emit(
            {
                "type": "response.created",
                "response": self.render_response(reply, "in_progress", None, []),
            }
        )
        if self.setup.faults.unknown_events:
            self.emit_raw(msgspec.json.encode({"type": "sim.unknown_event", "event_id": "event_x"}))
        rendered = self.render_item(item, "in_progress")
        self.emit(
            {
                "type": "response.output_item.added",
                "response_id": reply.id,
                "output_index": 0,
                "item": rendered,
            }
        )
        added = "conversation.item.added" if self.api == "ga" else "conversation.item.created"
        self.emit({"type": added, "item": rendered, "previous_item_id": previous})
        self.emit(
            {
                "type": "response.content_part.added",
                **self._part_events(reply),
                "part": {"type": "audio", "transcript": ""},
            }
        )
        reply.task = asyncio.create_task(self.stream(reply))

    async def stream(self, reply: _Reply) -> None:
        """Send the reply's audio and transcript deltas at ``speed`` times real time."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        reply.audio = self.voices.audio(reply.text, self.settings.output_format)
        chunk = self.config.chunk_ms * bytes_per_ms(self.settings.output_format)
        chunks = max(1, math.ceil(len(reply.audio) / chunk))
        words = reply.text.split(" ")
        first_at = started + self.config.reply_latency_ms / 1000.0
        for index in range(chunks):
            due = first_at + index * self.config.chunk_ms / 1000.0 / self.config.speed
            await asyncio.sleep(max(0.0, due - loop.time()))
            if index == chunks // 2 and self.setup.faults.error_mid_response:
                self.emit(
                    {
                        "type": "error",
                        "error": {
                            "type": "server_error",
                            "code": "sim_injected_error",
                            "message": "The simulator failed this response on purpose.",
                            "param": None,
                            "event_id": None,
                        },
                    }
                )
                self.finish_reply("failed", None)
                return
            upto = math.ceil((index + 1) * len(words) / chunks)
            if upto > reply.words_sent:
                delta = " ".join(words[reply.words_sent : upto])
                delta = delta if reply.words_sent == 0 else " " + delta
                reply.words_sent = upto
                reply.transcript += delta
                self.emit(
                    {
                        "type": self._event("audio_transcript.delta"),
                        **self._part_events(reply),
                        "delta": delta,
                    }
                )
            self.send_chunk(reply, index, chunk)
            if index == chunks // 2 and self.setup.faults.disconnect_at == "mid_reply":
                self.out.put_nowait(_ABORT)
        self.finish_reply("completed", None)

    def send_chunk(self, reply: _Reply, index: int, chunk: int) -> None:
        data = reply.audio[index * chunk : (index + 1) * chunk]
        reply.item.audio_bytes += len(data)
        reply.chunks_sent = index + 1
        self.emit(
            {
                "type": self._event("audio.delta"),
                **self._part_events(reply),
                "delta": binascii.b2a_base64(data, newline=False).decode(),
            }
        )

    def _event(self, suffix: str) -> str:
        """GA says response.output_audio..., beta response.audio...."""
        return f"response.output_{suffix}" if self.api == "ga" else f"response.{suffix}"

    def finish_reply(self, status: str, reason: str | None) -> None:
        reply = self.reply
        assert reply is not None
        self.reply = None
        if reply.task is not None and reply.task is not asyncio.current_task():
            reply.task.cancel()
        ids = self._part_events(reply)
        reply.item.content = [
            {
                "type": "output_audio" if self.api == "ga" else "audio",
                "transcript": reply.transcript,
            }
        ]
        item_status = "completed" if status == "completed" else "incomplete"
        rendered = self.render_item(reply.item, item_status)
        self.emit({"type": self._event("audio.done"), **ids})
        self.emit(
            {"type": self._event("audio_transcript.done"), **ids, "transcript": reply.transcript}
        )
        self.emit(
            {
                "type": "response.content_part.done",
                **ids,
                "part": {"type": "audio", "transcript": reply.transcript},
            }
        )
        self.emit(
            {
                "type": "response.output_item.done",
                "response_id": reply.id,
                "output_index": 0,
                "item": rendered,
            }
        )
        if self.api == "ga":
            self.emit({"type": "conversation.item.done", "item": rendered})
        details: dict[str, Any] | None = None
        if status == "cancelled":
            details = {"type": "cancelled", "reason": reason}
        elif status == "failed":
            details = {
                "type": "failed",
                "error": {
                    "type": "server_error",
                    "code": "sim_injected_error",
                    "message": "The simulator failed this response on purpose.",
                },
            }
        self.emit(
            {
                "type": "response.done",
                "response": self.render_response(reply, status, details, [rendered]),
            }
        )
        if status == "cancelled" and self.setup.faults.late_deltas_after_cancel and reply.audio:
            chunk = self.config.chunk_ms * bytes_per_ms(self.settings.output_format)
            for index in range(
                reply.chunks_sent, reply.chunks_sent + self.setup.faults.late_deltas_after_cancel
            ):
                if index * chunk < len(reply.audio):
                    self.send_chunk(reply, index, chunk)


_HANDLERS: Final[dict[str, Callable[[_Connection, dict[str, Any]], None]]] = {
    "session.update": _Connection.on_session_update,
    "input_audio_buffer.commit": _Connection.on_commit,
    "input_audio_buffer.clear": _Connection.on_clear,
    "conversation.item.create": _Connection.on_item_create,
    "conversation.item.truncate": _Connection.on_truncate,
    "conversation.item.delete": _Connection.on_delete,
    "response.create": _Connection.on_response_create,
    "response.cancel": _Connection.on_response_cancel,
}


class Simulator:
    """A running simulator: ``async with Simulator(config) as sim:`` then connect to ``sim.url``.

    ``sim.url`` is the base URL (``ws://127.0.0.1:PORT/v1``) the official SDK takes as
    ``websocket_base_url``; clients connect to ``{url}/realtime?model=...``. Each
    connection's record is in ``records``, in connection order; with
    ``SimConfig(keep_records=False)`` a record leaves ``records`` when its connection
    closes, so ``records`` holds the open connections only.
    """

    def __init__(
        self, config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or SimConfig()
        self.host = host
        self.port = port
        self.records: list[ConnectionRecord] = []
        self.violations: list[str] = []
        self._server: Server | None = None
        self._new_record = asyncio.Event()
        self._voices = Voicebank(self.config.voice)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1"

    @property
    def realtime_url(self) -> str:
        return f"{self.url}/realtime"

    async def start(self) -> None:
        await self._voices.prepare(self.config.script)
        try:
            self._server = await ws_serve(
                self._serve,
                self.host,
                self.port,
                process_request=self._admit,
                max_size=2**24,
                compression=None,
                close_timeout=1.0,
                logger=_ws_logger,
            )
        except OSError as exc:
            raise SimError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
        self.port = self._server.sockets[0].getsockname()[1] if self.port == 0 else self.port
        log.info("sim.listening", url=self.url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def connection(self, index: int = 0, timeout: float = 5.0) -> ConnectionRecord:
        """The record of the ``index``-th connection, waiting for it to arrive."""

        async def arrived() -> ConnectionRecord:
            while len(self.records) <= index:
                self._new_record.clear()
                await self._new_record.wait()
            return self.records[index]

        try:
            return await asyncio.wait_for(arrived(), timeout)
        except TimeoutError:
            raise SimError(f"no connection number {index} within {timeout} s") from None

    def check(self) -> None:
        """Raise AssertionError listing events the ``on_event`` hook rejected."""
        if self.violations:
            raise AssertionError(
                "the simulator sent events its hook rejected:\n" + "\n".join(self.violations)
            )

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        verdict = _handshake(request, self.config)
        if isinstance(verdict, tuple):
            return connection.respond(*verdict)
        return None

    async def _serve(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        setup = _handshake(ws.request, self.config)
        assert not isinstance(setup, tuple)
        record = ConnectionRecord(setup.api, setup.path, setup.faults_spec)
        self.records.append(record)
        self._new_record.set()
        conn = _Connection(ws, self.config, setup, record, self.violations, self._voices)
        sender = asyncio.create_task(conn.send_loop())
        conn.emit(
            {
                "type": "session.created",
                "session": render(conn.settings, conn.api, conn.ids("sess")),
            }
        )
        if setup.faults.unknown_events:
            conn.emit_raw(msgspec.json.encode({"type": "sim.unknown_event", "event_id": "event_x"}))
        try:
            async for message in ws:
                try:
                    event = msgspec.json.decode(message)
                except msgspec.DecodeError:
                    record.add_received({"type": None, "raw": str(message)[:200]})
                    conn.error("invalid_json", "The message is not valid JSON.")
                    continue
                if not isinstance(event, dict):
                    record.add_received({"type": None, "raw": str(message)[:200]})
                    conn.error("invalid_json", "The message must be a JSON object.")
                    continue
                if event.get("type") == "input_audio_buffer.append":
                    audio = event.pop("audio", None)
                    record.add_received(event)
                    conn.on_append(event, audio)
                else:
                    record.add_received(event)
                    conn.handle(event)
        except ConnectionClosed:
            pass
        finally:
            record.mark_closed()
            if not self.config.keep_records:
                self.records.remove(record)
            if conn.reply is not None and conn.reply.task is not None:
                conn.reply.task.cancel()
            sender.cancel()


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    config: SimConfig | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the simulator until interrupted (Ctrl-C raises KeyboardInterrupt to the caller).

    ``on_ready`` is called with the base URL once the socket listens, e.g. to print it.
    This call owns its process, so it freezes everything allocated before serving out of
    the garbage collector's sight: with hundreds of sessions, full collections that walked
    the imported modules' objects again and again paused every session at once.
    """

    async def run() -> None:
        async with Simulator(config, host, port) as sim:
            gc.collect()
            gc.freeze()
            if on_ready is not None:
                on_ready(sim.url)
            await sim.serve_forever()

    asyncio.run(run())
