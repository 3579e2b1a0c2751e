"""Everything the conversation core asks the outside world to do, as immutable values.

Commands that go to the server carry an ``event_id`` chosen by the core, so that an
``error`` naming that id can be traced back to the command that caused it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# --- to the speaker ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlayAudio:
    """Queue PCM16 24 kHz audio of one item on the speaker."""

    response_id: str
    item_id: str
    audio: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class FlushPlayback:
    """Stop the speaker within one block and report what was heard (``PlaybackFlushed``)."""

    reason: str


@dataclass(frozen=True, slots=True)
class DuckPlayback:
    """Lower the speaker to ``gain`` (0.0 to 1.0) from its next block on, without stopping
    it: two-phase barge-in judges a sound over the reply (``Duckable.duck``). Nothing
    queued is dropped, and what counts as heard is unchanged."""

    gain: float


@dataclass(frozen=True, slots=True)
class RestorePlayback:
    """Bring the speaker back to full gain after ``DuckPlayback``."""


# --- to the server -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CancelResponse:
    """``response.cancel``."""

    response_id: str
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class TruncateItem:
    """``conversation.item.truncate``: the item keeps only what the user heard."""

    item_id: str
    audio_end_ms: int
    content_index: int = 0
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class DeleteItem:
    """``conversation.item.delete``: nothing of the item was heard."""

    item_id: str
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class SendAudio:
    """``input_audio_buffer.append``."""

    audio: bytes = field(repr=False)
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class UpdateSession:
    """``session.update`` with a configuration built by ``bargein.adapters.session_config``."""

    config: Any
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class CreateResponse:
    """``response.create``."""

    event_id: str = ""


@dataclass(frozen=True, slots=True)
class CommitInputAudio:
    """``input_audio_buffer.commit``: the audio appended since the last commit becomes a
    user message."""

    event_id: str = ""


@dataclass(frozen=True, slots=True)
class ClearInputAudio:
    """``input_audio_buffer.clear``: the audio appended since the last commit is dropped."""

    event_id: str = ""


@dataclass(frozen=True, slots=True)
class SendToolOutput:
    """``conversation.item.create`` of a ``function_call_output`` item: a call's output, or
    the answer of a call that did not run to its end (``bargein.core.tool_calls``), which
    is inserted right after the call's item ``after_item_id`` (the wire's
    ``previous_item_id``); an output without it is appended."""

    call_id: str
    output: str = field(repr=False)
    event_id: str = ""
    after_item_id: str = ""


@dataclass(frozen=True, slots=True)
class CreateMessage:
    """``conversation.item.create`` of a text message, appended to the conversation: how a
    session tells a new server session, after a reconnect, what was said before."""

    role: Literal["user", "assistant"]
    text: str
    event_id: str = ""


# --- to the session's tool runner (``bargein.tools``) --------------------------------------


@dataclass(frozen=True, slots=True)
class RunTool:
    """Run the program's tool ``name`` with ``arguments``; hand back ``ToolResult``."""

    call_id: str
    name: str
    arguments: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class CancelTool:
    """The call's output will not be sent: stop it if it still runs."""

    call_id: str


# --- to the session's clock --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Start the timer ``name`` (a timed edge's trigger), replacing one of that name: in
    ``ms`` milliseconds, hand the core ``TimerFired(name)``."""

    name: str
    ms: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Cancel the timer ``name``; a ``TimerFired`` of it must not follow."""

    name: str


@dataclass(frozen=True, slots=True)
class GiveUp:
    """A deadline passed that the conversation cannot survive (``bargein.core.liveness``):
    end the session with ``error``."""

    error: Exception


@dataclass(frozen=True, slots=True)
class Report:
    """A deadline passed and the core recovered (``bargein.core.liveness``): ``error`` says
    what happened, for the program's eyes; nothing to carry out."""

    error: Exception


ServerCommand = (
    CancelResponse | TruncateItem | DeleteItem | SendAudio | UpdateSession | CreateResponse
    | CreateMessage | CommitInputAudio | ClearInputAudio | SendToolOutput
)
SpeakerCommand = PlayAudio | FlushPlayback | DuckPlayback | RestorePlayback
TimerCommand = StartTimer | CancelTimer
ToolCommand = RunTool | CancelTool
LivenessCommand = GiveUp | Report
Command = ServerCommand | SpeakerCommand | TimerCommand | ToolCommand | LivenessCommand
COMMAND_TYPES: tuple[type, ...] = (
    PlayAudio, FlushPlayback, DuckPlayback, RestorePlayback, CancelResponse, TruncateItem,
    DeleteItem, SendAudio, UpdateSession, CreateResponse, CreateMessage, CommitInputAudio,
    ClearInputAudio, SendToolOutput, RunTool, CancelTool, StartTimer, CancelTimer, GiveUp,
    Report,
)
"""Every command class, for ``isinstance`` (an action's commands are checked with it)."""
Reconcilable = CancelResponse | TruncateItem | DeleteItem
"""Server commands the core keeps by event id until their fate is known, so that an
``error`` naming one can be judged benign (the server got there first) or not."""


def log_fields(command: object) -> dict[str, object]:
    """A command as structured log fields, with audio shown as its length only."""
    out: dict[str, object] = {"kind": type(command).__name__}
    for name in getattr(command, "__slots__", ()):
        v = getattr(command, name)
        out[name] = f"<{len(v)} bytes>" if isinstance(v, bytes) else v
    return out
