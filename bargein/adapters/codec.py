"""Realtime wire JSON to core events and core commands to wire JSON, for the GA and beta APIs.

Pure: no sockets, no clock. Frames are decoded by msgspec into the typed structs of
``bargein.adapters.schema`` (a tagged union on ``type``), which checks every field the core
relies on in one pass over the JSON, and audio by pybase64 (SIMD); both choices, against
orjson, the stdlib JSON and ``binascii``, are measured in ``bench/bench_codec.py``.
Whatever arrives, ``decode`` never raises: an unreadable frame becomes ``ProtocolViolation``.
A transcript that repeats a key this process holds (``bargein.redaction.redact_known``) has it
masked before any program or terminal sees it; a key split across two deltas is not caught
here.
"""

from __future__ import annotations

import binascii
from collections import deque
from typing import Any, Final, TypeAlias

import msgspec
import pybase64

from bargein.adapters import schema as w
from bargein.adapters.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from bargein.adapters.audio.resample import StreamResampler
from bargein.adapters.session_config import (
    AUDIO_FORMATS,
    SAMPLE_RATES,
    Api,
    AudioFormat,
    SessionConfig,
)
from bargein.core.commands import (
    CancelResponse,
    ClearInputAudio,
    CommitInputAudio,
    CreateMessage,
    CreateResponse,
    DeleteItem,
    SendAudio,
    SendToolOutput,
    ServerCommand,
    TruncateItem,
    UpdateSession,
)
from bargein.core.events import (
    AudioDelta,
    Event,
    InputTranscript,
    ItemDeleted,
    ItemTruncated,
    OutputItemAdded,
    ProtocolViolation,
    ResponseCreated,
    ResponseDone,
    ServerError,
    SessionReady,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    TranscriptDelta,
    UnknownServerEvent,
)
from bargein.core.pcm import RATE, check_pcm16
from bargein.errors import BargeinError, CodecError
from bargein.logs import get_logger
from bargein.redaction import redact_known

log = get_logger(__name__)

_SEEN_IDS: Final = 1024
"""How many recent server event ids are remembered to drop duplicate deliveries."""


_Decoded: TypeAlias = Event | None

_APPEND_HEAD: Final = b'{"type":"input_audio_buffer.append","audio":"'
"""The start of every microphone frame (``encode_bytes``); the base64 needs no escaping."""


def _turn_detection(session: dict[str, Any], api: Api) -> object:
    """The session's turn detection object; a missing key reads as the server default."""
    missing = {"type": "server_vad"}
    if api == "beta":
        return session.get("turn_detection", missing)
    audio = session.get("audio")
    audio_input = audio.get("input") if isinstance(audio, dict) else None
    if not isinstance(audio_input, dict):
        return missing
    return audio_input.get("turn_detection", missing)


def _session_ready(session: dict[str, Any], api: Api) -> SessionReady:
    turn = _turn_detection(session, api)
    if turn is None:
        interrupt = False
    elif isinstance(turn, dict) and isinstance(turn.get("interrupt_response", True), bool):
        interrupt = turn.get("interrupt_response", True)
    else:
        raise msgspec.ValidationError("session turn_detection is not an object")
    session_id = session.get("id", "")
    if not isinstance(session_id, str):
        raise msgspec.ValidationError("session id is not a string")
    return SessionReady(session_id=session_id, interrupt_response=interrupt)


def _item_done(wire: w.OutputItemDone) -> ToolCall | UnknownServerEvent:
    """A function call, whole; any other item passed on to the program."""
    item = wire.item
    if item.get("type") != "function_call":
        passed = msgspec.json.decode(redact_known(msgspec.json.encode(wire).decode()))
        return UnknownServerEvent("response.output_item.done", passed, known=True)
    fields = [item.get(key) for key in ("id", "call_id", "name", "arguments")]
    if not all(isinstance(value, str) for value in fields):
        raise msgspec.ValidationError("a function_call item lacks its id, call_id, name or "
                                      "arguments")
    item_id, call_id, name, arguments = (str(value) for value in fields)
    return ToolCall(wire.response_id, item_id, call_id, name, arguments,
                    complete=item.get("status") == "completed")


def _check_format(name: str, value: str) -> AudioFormat:
    for known in AUDIO_FORMATS:
        if value == known:
            return known
    raise CodecError(f"{name} must be one of {', '.join(AUDIO_FORMATS)}, got {value!r}")


class WireCodec:
    """Translates one connection's frames; knows its API flavour and its audio formats.

    ``input_format`` defaults to ``output_format``. Encoding an ``UpdateSession`` adopts
    the formats of its configuration, so the codec follows the session it configures.
    G.711 audio is resampled as a stream (one resampler per assistant item, one for the
    microphone) so block edges leave no glitches; each item's last ~1.5 ms, held back by
    the filter, comes out as one more ``AudioDelta`` when its audio is done.

    Its decoding state belongs to one connection: the transport calls ``new_connection()``
    whenever it opens one.
    """

    def __init__(
        self,
        api: Api = "ga",
        output_format: AudioFormat = "pcm16",
        *,
        input_format: AudioFormat | None = None,
    ) -> None:
        if api not in w.FLAVOURED:
            raise CodecError(f"unknown Realtime API flavour {api!r}: use 'ga' or 'beta'")
        self.api: Api = api
        self.output_format = _check_format("output_format", output_format)
        self.input_format = _check_format("input_format", input_format or output_format)
        union = w.SHARED + w.FLAVOURED[api]
        self._decoder = msgspec.json.Decoder(_union_type(union))
        self._type_decoder = msgspec.json.Decoder(w.TypeOnly)
        self._ignored = w.IGNORED_TYPES[api]
        self._consumed = w.CONSUMED_TYPES[api]
        self._speaker: dict[str, tuple[str, StreamResampler]] = {}
        self._mic: StreamResampler | None = None
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()

    # --- server frames -> core events ----------------------------------------------------

    def decode(self, frame: str | bytes) -> _Decoded:
        """One server frame as a core event, or None for a known type the core ignores."""
        try:
            wire = self._decoder.decode(frame)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            return self._undecodable(frame, exc)
        if wire.event_id and self._already_seen(wire.event_id):
            log.warning("server_event_duplicated", type=_type_name(wire), event_id=wire.event_id)
            return None
        try:
            return self._to_event(wire)
        except (binascii.Error, msgspec.ValidationError, ValueError, BargeinError) as exc:
            return self._violation(f"{_type_name(wire)}: {exc}")

    def new_connection(self) -> None:
        """Start afresh for a new connection: forget the event ids seen (they are unique per
        connection only: a server that numbers events per connection starts again at 1, and
        those events are new) and the per-item state of G.711 audio (item ids are the old
        server session's). The microphone's resampler is kept: its input is one continuous
        signal, whatever the connection."""
        self._seen.clear()
        self._seen_order.clear()
        self._speaker.clear()

    def _already_seen(self, event_id: str) -> bool:
        """Event ids are unique per connection: a repeat is a duplicate delivery (played
        twice, a repeated audio delta would garble the reply)."""
        if event_id in self._seen:
            return True
        self._seen.add(event_id)
        self._seen_order.append(event_id)
        if len(self._seen_order) > _SEEN_IDS:
            self._seen.discard(self._seen_order.popleft())
        return False

    def _to_event(self, wire: w.Wire) -> _Decoded:
        if isinstance(wire, w.AudioDelta):
            audio = self._pcm(wire.response_id, wire.item_id, wire.delta)
            return AudioDelta(wire.response_id, wire.item_id, audio, wire.content_index)
        if isinstance(wire, w.AudioDone):
            return self._audio_tail(wire)
        if isinstance(wire, w.TranscriptDelta):
            return TranscriptDelta(wire.response_id, wire.item_id, redact_known(wire.delta))
        if isinstance(wire, w.SpeechStarted):
            return SpeechStarted(wire.item_id, wire.audio_start_ms)
        if isinstance(wire, w.SpeechStopped):
            return SpeechStopped(wire.item_id, wire.audio_end_ms)
        if isinstance(wire, w.ResponseCreated):
            return ResponseCreated(wire.response.id)
        if isinstance(wire, w.OutputItemAdded):
            # only a message carries audio; a function call is no business of the speaker
            if wire.item.type != "message":
                return None
            return OutputItemAdded(wire.response_id, wire.item.id)
        if isinstance(wire, w.OutputItemDone):
            return _item_done(wire)
        if isinstance(wire, w.ResponseDone):
            self._speaker = {
                item: entry for item, entry in self._speaker.items() if entry[0] != wire.response.id
            }
            return _response_done(wire.response)
        if isinstance(wire, w.InputTranscript):
            return InputTranscript(wire.item_id, redact_known(wire.transcript))
        if isinstance(wire, w.ItemTruncated):
            return ItemTruncated(wire.item_id, wire.audio_end_ms)
        if isinstance(wire, w.ItemDeleted):
            return ItemDeleted(wire.item_id)
        if isinstance(wire, w.Error):
            body = wire.error
            return ServerError(body.type, body.code, body.message, body.event_id, body.param)
        if isinstance(wire, w.SessionEvent):
            return _session_ready(wire.session, self.api)
        raise msgspec.ValidationError(f"no core event for {type(wire).__name__}")

    def _pcm(self, response_id: str, item_id: str, b64: str) -> bytes:
        raw = pybase64.b64decode(b64, validate=True)
        fmt = self.output_format
        if fmt == "pcm16":
            check_pcm16(raw, "pcm16 audio")
            return raw
        pcm8k = ulaw_decode(raw) if fmt == "g711_ulaw" else alaw_decode(raw)
        entry = self._speaker.get(item_id)
        if entry is None:
            entry = self._speaker[item_id] = (
                response_id,
                StreamResampler(SAMPLE_RATES[fmt], RATE),
            )
        return entry[1].process(pcm8k)

    def _audio_tail(self, wire: w.AudioDone) -> AudioDelta | None:
        """The end of a G.711 item that the stream resampler still holds, if any."""
        entry = self._speaker.pop(wire.item_id, None)
        tail = entry[1].flush() if entry is not None else b""
        if not tail:
            return None
        return AudioDelta(wire.response_id, wire.item_id, tail, wire.content_index)

    def _undecodable(self, frame: str | bytes, exc: Exception) -> _Decoded:
        """Tell an unknown or ignored type apart from a malformed frame."""
        try:
            event_type = self._type_decoder.decode(frame).type
        except (msgspec.DecodeError, UnicodeDecodeError):
            return self._violation(f"unreadable frame: {exc}")
        if event_type in self._consumed:
            return self._violation(f"{event_type}: {exc}")
        known = event_type in self._ignored
        log.debug("server_event_ignored" if known else "server_event_unknown", type=event_type)
        # the program may see it: masked like every text bargein passes on
        text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
        event = msgspec.json.decode(redact_known(text))
        return UnknownServerEvent(event_type, event if isinstance(event, dict) else {}, known)

    @staticmethod
    def _violation(reason: str) -> ProtocolViolation:
        log.error("server_frame_invalid", reason=reason)
        return ProtocolViolation(reason)

    # --- core commands -> client frames --------------------------------------------------

    def encode(self, command: ServerCommand) -> str:
        """One core command as a client frame (JSON text)."""
        return self.encode_bytes(command).decode()

    def encode_bytes(self, command: ServerCommand) -> bytes:
        """One core command as a client frame's UTF-8 JSON, for a text frame sent as is
        (no round trip through ``str``). The microphone's frames, 50 a second, are joined
        from their parts, with no payload dict and no serialiser pass over the audio."""
        if type(command) is SendAudio:
            frame = _APPEND_HEAD + self._b64(command.audio)
            if command.event_id:
                return frame + b'","event_id":' + msgspec.json.encode(command.event_id) + b"}"
            return frame + b'"}'
        return msgspec.json.encode(self.to_payload(command))

    def to_payload(self, command: ServerCommand) -> dict[str, Any]:
        """One core command as the client event object, before serialisation."""
        payload: dict[str, Any]
        if isinstance(command, SendAudio):
            payload = {"type": "input_audio_buffer.append",
                       "audio": self._b64(command.audio).decode()}
        elif isinstance(command, CancelResponse):
            payload = {"type": "response.cancel"}
            if command.response_id:
                payload["response_id"] = command.response_id
        elif isinstance(command, TruncateItem):
            payload = {
                "type": "conversation.item.truncate",
                "item_id": command.item_id,
                "content_index": command.content_index,
                "audio_end_ms": command.audio_end_ms,
            }
        elif isinstance(command, DeleteItem):
            payload = {"type": "conversation.item.delete", "item_id": command.item_id}
        elif isinstance(command, UpdateSession):
            config = command.config
            if not isinstance(config, SessionConfig):
                raise CodecError(
                    "UpdateSession.config must be a bargein.adapters.session_config."
                    f"SessionConfig, got {type(config).__name__}"
                )
            if config.input_format != self.input_format:
                self.input_format, self._mic = config.input_format, None
            if config.output_format != self.output_format:
                self.output_format, self._speaker = config.output_format, {}
            payload = {"type": "session.update", "session": config.to_wire(self.api)}
        elif isinstance(command, CreateResponse):
            payload = {"type": "response.create"}
        elif isinstance(command, CommitInputAudio):
            payload = {"type": "input_audio_buffer.commit"}
        elif isinstance(command, ClearInputAudio):
            payload = {"type": "input_audio_buffer.clear"}
        elif isinstance(command, SendToolOutput):
            payload = {"type": "conversation.item.create", "item": {
                "type": "function_call_output", "call_id": command.call_id,
                "output": command.output}}
            if command.after_item_id:
                payload["previous_item_id"] = command.after_item_id
        elif isinstance(command, CreateMessage):
            kind = ("input_text" if command.role == "user"
                    else "output_text" if self.api == "ga" else "text")
            payload = {"type": "conversation.item.create", "item": {
                "type": "message", "role": command.role,
                "content": [{"type": kind, "text": command.text}]}}
        else:
            raise CodecError(f"not a server command: {type(command).__name__}")
        if command.event_id:
            payload["event_id"] = command.event_id
        return payload

    def _b64(self, pcm: bytes) -> bytes:
        """The microphone's audio in the input format, base64 (ASCII bytes)."""
        fmt = self.input_format
        if fmt != "pcm16":
            if self._mic is None:
                self._mic = StreamResampler(RATE, SAMPLE_RATES[fmt])
            pcm8k = self._mic.process(pcm)
            pcm = ulaw_encode(pcm8k) if fmt == "g711_ulaw" else alaw_encode(pcm8k)
        return pybase64.b64encode(pcm)


def _response_done(response: w.DoneResponse) -> ResponseDone:
    details = response.status_details
    reason = ""
    if details is not None:
        if details.reason:
            reason = details.reason
        elif details.error is not None and details.error.code:
            reason = details.error.code
    return ResponseDone(response.id, response.status, reason)


def _type_name(wire: w.Wire) -> str:
    return str(type(wire).__struct_config__.tag)


def _union_type(members: tuple[type[w.Wire], ...]) -> Any:
    """The tagged union msgspec decodes into."""
    union: Any = members[0]
    for member in members[1:]:
        union = union | member
    return union


__all__ = ["CodecError", "WireCodec"]
