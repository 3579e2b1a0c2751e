"""Everything the conversation core consumes, as immutable values.

Server events are decoded from the wire by ``bargein.adapters.codec``; local events come
from the audio adapters and from the embedding program. Times are milliseconds. Audio is
always PCM16 mono at 24 kHz (``bargein.core.pcm``): the codec converts other wire formats, so
the core counts milliseconds one way only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# --- server events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionReady:
    """``session.created`` / ``session.updated``: the session is live.

    ``interrupt_response`` says whether the server's turn detection cancels a response by
    itself when the user starts speaking; the core only sends ``response.cancel`` when it
    does not.
    """

    session_id: str = ""
    interrupt_response: bool = True


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """``input_audio_buffer.speech_started``: the server heard the user begin to speak."""

    item_id: str
    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """``input_audio_buffer.speech_stopped``."""

    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    """``response.created``: the server started generating a response."""

    response_id: str


@dataclass(frozen=True, slots=True)
class OutputItemAdded:
    """``response.output_item.added``."""

    response_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class AudioDelta:
    """``response.output_audio.delta`` (beta: ``response.audio.delta``), decoded to PCM16."""

    response_id: str
    item_id: str
    audio: bytes = field(repr=False)
    content_index: int = 0


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    """``response.output_audio_transcript.delta`` (beta: ``response.audio_transcript.delta``)."""

    response_id: str
    item_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class InputTranscript:
    """``conversation.item.input_audio_transcription.completed``: what the user said."""

    item_id: str
    transcript: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """``response.output_item.done`` of a ``function_call`` item: the model calls ``name``
    with ``arguments`` (JSON text). ``complete`` is False when the item ended before its
    arguments did (its response was cancelled): such a call never runs."""

    response_id: str
    item_id: str
    call_id: str
    name: str
    arguments: str
    complete: bool = True


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """``response.done``; ``status`` is ``completed``, ``cancelled``, ``failed``, ..."""

    response_id: str
    status: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ItemTruncated:
    """``conversation.item.truncated``: the server confirmed a truncation."""

    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class ItemDeleted:
    """``conversation.item.deleted``."""

    item_id: str


@dataclass(frozen=True, slots=True)
class ServerError:
    """``error``: the server refused something; the connection goes on."""

    type: str
    code: str | None
    message: str
    event_id: str | None = None
    param: str | None = None


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """A frame the codec could not read (bad JSON, missing fields, bad base64)."""

    reason: str


@dataclass(frozen=True, slots=True)
class UnknownServerEvent:
    """A well-formed server event that bargein does not model, as its JSON object: a type
    the API documents and bargein has no use for (``known``: ``rate_limits.updated``,
    ``conversation.item.added``, ...) or one it does not know. The core passes it by; the
    session hands it to the program (``bargein.session.ServerEvent``)."""

    type: str
    event: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    known: bool = False


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The transport lost the connection (or closed it)."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class Reconnected:
    """The transport is connected again and has re-sent the session configuration."""


# --- local events --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MicAudio:
    """A captured microphone frame to stream to the server."""

    audio: bytes = field(repr=False)
    captured_at_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class PlaybackProgress:
    """The speaker's count of milliseconds actually heard per item, so far."""

    heard_ms: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlaybackFinished:
    """The speaker has played everything it was given; ``heard_ms`` per item, final."""

    heard_ms: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlaybackFlushed:
    """The speaker stopped after a flush; ``heard_ms`` per item is what the user heard."""

    heard_ms: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LocalSpeechStarted:
    """A local voice-activity detector heard the user, before the server round trip."""

    at_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class LocalSpeechStopped:
    """The local voice-activity detector heard the user's sound end (its stop edge, at
    ``at_ms`` on the input clock). A two-phase table resumes a reply ducked for it."""

    at_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class UserStart:
    """The embedding program resumes the conversation."""


@dataclass(frozen=True, slots=True)
class UserStop:
    """The embedding program pauses the conversation (playback flushed, mic not sent)."""


@dataclass(frozen=True, slots=True)
class UserInterrupt:
    """The embedding program interrupts the assistant now (a button, a hotkey)."""


@dataclass(frozen=True, slots=True)
class ConfigureSession:
    """The embedding program changes the session configuration (``session.update``)."""

    config: Any


@dataclass(frozen=True, slots=True)
class RequestResponse:
    """The embedding program asks for a response now (manual turns, a greeting). Under
    manual turns (the configuration's ``turn_detection=None``) the user's audio sent since
    the last commit is committed first (see ``CommitInput``)."""


@dataclass(frozen=True, slots=True)
class UserMessage:
    """The user typed ``text``: it interrupts the assistant as speech does (the same flush,
    cancel and truncate, fired as ``interrupt``), then goes to the server as a user message
    with a response asked for; after the barge-in's truncate, so the model answers a
    conversation that holds only what the user heard."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool call the core asked to run (``RunTool``) has its output (JSON text, or
    ``{"error": ...}``): the session hands it back."""

    call_id: str
    output: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class CommitInput:
    """The embedding program ends the user's turn: the audio sent since the last commit
    becomes a user message (``input_audio_buffer.commit``). Nothing is sent when that is
    less than the server's minimum, 100 ms (the server would refuse it)."""


@dataclass(frozen=True, slots=True)
class ClearInput:
    """The embedding program discards the audio sent since the last commit
    (``input_audio_buffer.clear``): a push-to-talk key pressed again, a false start."""


@dataclass(frozen=True, slots=True)
class TalkPressed:
    """The push-to-talk key went down (``PushToTalk`` turns): the user takes the floor. A
    reply is interrupted as by speech (fired as ``interrupt``), the input buffer cleared,
    and the user's audio is sent from now on."""


@dataclass(frozen=True, slots=True)
class TalkReleased:
    """The push-to-talk key came up: the user's audio is no longer sent, what was sent is
    committed and the reply asked for (nothing, and a warning, when it was under the
    server's 100 ms minimum)."""


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer the core started (``StartTimer``) has run out; ``name`` is its trigger.

    The session (or a test) hands it back; the core ignores a timer it no longer runs."""

    name: str


class UserEvent:
    """A program's own event: it fires ``trigger``, one its table declares
    (``StateTable.triggers``). Subclass it::

        class GreetingDone(UserEvent):
            trigger = "greeting_done"

    or send ``Signal("greeting_done")``. Actions see the event (``ActionContext.event``),
    so a subclass may carry data."""

    __slots__ = ()
    trigger: str


@dataclass(frozen=True, slots=True)
class Signal(UserEvent):
    """A program's event that is only its trigger: ``session.handle(Signal("done"))``."""

    trigger: str


Event = (
    SessionReady
    | SpeechStarted
    | SpeechStopped
    | ResponseCreated
    | OutputItemAdded
    | AudioDelta
    | TranscriptDelta
    | InputTranscript
    | ToolCall
    | ResponseDone
    | ItemTruncated
    | ItemDeleted
    | ServerError
    | ProtocolViolation
    | UnknownServerEvent
    | Disconnected
    | Reconnected
    | MicAudio
    | PlaybackProgress
    | PlaybackFinished
    | PlaybackFlushed
    | LocalSpeechStarted
    | LocalSpeechStopped
    | UserStart
    | UserStop
    | UserInterrupt
    | ConfigureSession
    | RequestResponse
    | UserMessage
    | ToolResult
    | CommitInput
    | ClearInput
    | TalkPressed
    | TalkReleased
    | TimerFired
    | UserEvent
)

BARGE_IN_EVENTS: Mapping[type[Event], str] = MappingProxyType({
    SpeechStarted: "speech_started",
    LocalSpeechStarted: "local_speech_started",
    UserInterrupt: "interrupt",
})
"""The events that signal a barge-in, each with the trigger it fires (the table's
``BARGE_IN_TRIGGERS``, in that order): the server's turn detection, a local voice-activity
detector, the program itself. The one list: the core dispatches them to its barge-in, the
session starts its stop-latency clock on them."""
