"""The shapes of the Realtime server events bargein reads, as msgspec structs.

One tagged union on ``type`` per API flavour (GA, beta): decoding checks every field the
core relies on in one pass over the JSON; unknown keys are skipped, missing or mistyped
ones are errors. ``IGNORED_TYPES`` lists what each flavour sends that the core has no use
for (passed on to the program whole), ``CONSUMED_TYPES`` what becomes a core event. The codec
(``bargein.adapters.codec``) turns these structs into core events.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from bargein.adapters.session_config import Api

# --- wire shapes the core reads ------------------------------------------------------


class Wire(msgspec.Struct, tag_field="type", kw_only=True):
    """Server events; unknown keys are skipped, missing or mistyped ones are errors."""

    event_id: str = ""


class SessionEvent(Wire):
    session: dict[str, Any]


class SessionCreated(SessionEvent, tag="session.created"):
    pass


class SessionUpdated(SessionEvent, tag="session.updated"):
    pass


class SpeechStarted(Wire, tag="input_audio_buffer.speech_started"):
    item_id: str
    audio_start_ms: int


class SpeechStopped(Wire, tag="input_audio_buffer.speech_stopped"):
    item_id: str
    audio_end_ms: int


class ResponseRef(msgspec.Struct):
    id: str


class ResponseCreated(Wire, tag="response.created"):
    response: ResponseRef


class ItemRef(msgspec.Struct):
    id: str
    type: str = "message"


class OutputItemAdded(Wire, tag="response.output_item.added"):
    response_id: str
    item: ItemRef


class OutputItemDone(Wire, tag="response.output_item.done"):
    """An output item ended; a ``function_call`` item holds the whole call."""

    response_id: str
    item: dict[str, Any]


class AudioDelta(Wire):
    response_id: str
    item_id: str
    delta: str
    content_index: int = 0


class AudioDeltaGa(AudioDelta, tag="response.output_audio.delta"):
    pass


class AudioDeltaBeta(AudioDelta, tag="response.audio.delta"):
    pass


class AudioDone(Wire):
    response_id: str
    item_id: str
    content_index: int = 0


class AudioDoneGa(AudioDone, tag="response.output_audio.done"):
    pass


class AudioDoneBeta(AudioDone, tag="response.audio.done"):
    pass


class TranscriptDelta(Wire):
    response_id: str
    item_id: str
    delta: str


class TranscriptDeltaGa(TranscriptDelta, tag="response.output_audio_transcript.delta"):
    pass


class TranscriptDeltaBeta(TranscriptDelta, tag="response.audio_transcript.delta"):
    pass


class TextDeltaGa(TranscriptDelta, tag="response.output_text.delta"):
    """A text reply's words (``output_modalities: ["text"]``): read as its transcript."""


class TextDeltaBeta(TranscriptDelta, tag="response.text.delta"):
    pass


class InputTranscript(Wire, tag="conversation.item.input_audio_transcription.completed"):
    item_id: str
    transcript: str


class StatusError(msgspec.Struct):
    code: str | None = None


class StatusDetails(msgspec.Struct):
    reason: str | None = None
    error: StatusError | None = None


class DoneResponse(msgspec.Struct):
    id: str
    status: str
    status_details: StatusDetails | None = None


class ResponseDone(Wire, tag="response.done"):
    response: DoneResponse


class ItemTruncated(Wire, tag="conversation.item.truncated"):
    item_id: str
    audio_end_ms: int


class ItemDeleted(Wire, tag="conversation.item.deleted"):
    item_id: str


class ErrorBody(msgspec.Struct):
    type: str
    message: str
    code: str | None = None
    param: str | None = None
    event_id: str | None = None


class Error(Wire, tag="error"):
    error: ErrorBody


class TypeOnly(msgspec.Struct):
    type: str


SHARED: Final = (
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    ResponseCreated,
    OutputItemAdded,
    OutputItemDone,
    InputTranscript,
    ResponseDone,
    ItemTruncated,
    ItemDeleted,
    Error,
)
FLAVOURED: Final = {
    "ga": (AudioDeltaGa, AudioDoneGa, TranscriptDeltaGa, TextDeltaGa),
    "beta": (AudioDeltaBeta, AudioDoneBeta, TranscriptDeltaBeta, TextDeltaBeta),
}

IGNORED_SHARED: Final = frozenset(
    {
        "conversation.created",
        "conversation.item.created",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.failed",
        "conversation.item.retrieved",
        "input_audio_buffer.cleared",
        "input_audio_buffer.committed",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
        "rate_limits.updated",
        "response.content_part.added",
        "response.content_part.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
    }
)
IGNORED_TYPES: Final[dict[Api, frozenset[str]]] = {
    "ga": IGNORED_SHARED
    | {
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.input_audio_transcription.segment",
        "input_audio_buffer.dtmf_event_received",
        "input_audio_buffer.timeout_triggered",
        "mcp_list_tools.completed",
        "mcp_list_tools.failed",
        "mcp_list_tools.in_progress",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.output_audio_transcript.done",
        "response.output_text.done",
    },
    "beta": IGNORED_SHARED
    | {
        "response.audio_transcript.done",
        "response.text.done",
        "transcription_session.updated",
    },
}
"""Server event types each flavour knows that the core does not consume: passed on whole
(``UnknownServerEvent`` with ``known=True``)."""


def _consumed_types(api: Api) -> frozenset[str]:
    return frozenset(str(cls.__struct_config__.tag) for cls in SHARED + FLAVOURED[api])


CONSUMED_TYPES: Final[dict[Api, frozenset[str]]] = {
    "ga": _consumed_types("ga"),
    "beta": _consumed_types("beta"),
}
"""Server event types each flavour turns into a core event."""
