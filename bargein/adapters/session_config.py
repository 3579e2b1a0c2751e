"""A typed, immutable description of a Realtime session, emitted as ``session.update``.

One value describes the session; ``to_wire`` writes it in the shape the connection speaks:
the GA API nests audio settings under ``session.audio.input/output``, the beta API keeps a
flat session. Fields left as ``None`` are omitted so the server keeps its own defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeAlias

from bargein.errors import SessionConfigError

Api: TypeAlias = Literal["ga", "beta"]
AudioFormat: TypeAlias = Literal["pcm16", "g711_ulaw", "g711_alaw"]
Eagerness: TypeAlias = Literal["low", "medium", "high", "auto"]

AUDIO_FORMATS: tuple[AudioFormat, ...] = ("pcm16", "g711_ulaw", "g711_alaw")
SAMPLE_RATES: dict[AudioFormat, int] = {"pcm16": 24000, "g711_ulaw": 8000, "g711_alaw": 8000}
"""Wire sample rate of each format; pcm16 is 24 kHz, G.711 is 8 kHz."""

_GA_FORMATS: dict[AudioFormat, dict[str, Any]] = {
    "pcm16": {"type": "audio/pcm", "rate": 24000},
    "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
}

def _check_api(api: str) -> None:
    if api not in ("ga", "beta"):
        raise SessionConfigError(f"unknown Realtime API flavour {api!r}: use 'ga' or 'beta'")


def _non_negative(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or value < 0):
        raise SessionConfigError(f"{name} must be a non-negative number of ms, got {value!r}")


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True, slots=True)
class ServerVad:
    """Silence-based turn detection on the server."""

    threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    interrupt_response: bool | None = None
    create_response: bool | None = None

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise SessionConfigError(f"threshold must be within 0..1, got {self.threshold!r}")
        _non_negative("prefix_padding_ms", self.prefix_padding_ms)
        _non_negative("silence_duration_ms", self.silence_duration_ms)

    def to_wire(self) -> dict[str, Any]:
        """The ``turn_detection`` object; identical in both API flavours."""
        return _drop_none(
            {
                "type": "server_vad",
                "threshold": self.threshold,
                "prefix_padding_ms": self.prefix_padding_ms,
                "silence_duration_ms": self.silence_duration_ms,
                "interrupt_response": self.interrupt_response,
                "create_response": self.create_response,
            }
        )


@dataclass(frozen=True, slots=True)
class SemanticVad:
    """Turn detection by a model that judges whether the user has finished."""

    eagerness: Eagerness | None = None
    interrupt_response: bool | None = None
    create_response: bool | None = None

    def __post_init__(self) -> None:
        if self.eagerness is not None and self.eagerness not in ("low", "medium", "high", "auto"):
            raise SessionConfigError(
                f"eagerness must be low, medium, high or auto, got {self.eagerness!r}"
            )

    def to_wire(self) -> dict[str, Any]:
        """The ``turn_detection`` object; identical in both API flavours."""
        return _drop_none(
            {
                "type": "semantic_vad",
                "eagerness": self.eagerness,
                "interrupt_response": self.interrupt_response,
                "create_response": self.create_response,
            }
        )


@dataclass(frozen=True, slots=True)
class ClientVad:
    """Turn detection on this machine: the server's is off (``turn_detection`` null on the
    wire) and bargein's local voice detector ends each user turn; the core then commits the
    user's audio and asks for the reply. For a server whose VAD is off or unwanted, and it
    works with a WAV input. The session needs a local detector (``talk()`` picks Silero).

    ``end_after_ms``: how long the user must stay quiet after the detector says the sound
    ended (itself 200 ms of quiet under ``talk()``) for the turn to end; a new onset within
    it continues the turn. 400 ms: about the server VAD's own 500 ms of silence in all."""

    end_after_ms: int = 400

    def __post_init__(self) -> None:
        _non_negative("end_after_ms", self.end_after_ms)

    def to_wire(self) -> None:
        """Nothing: the server's turn detection is off."""
        return None


@dataclass(frozen=True, slots=True)
class PushToTalk:
    """Turns on a key: the server's turn detection is off, and the user's audio goes to the
    server only while the key is held. ``TalkPressed`` (the key down) interrupts the reply
    as speech would, and clears what the input buffer held; ``TalkReleased`` (the key up)
    commits the user's audio and asks for the reply (``bargein.core.events``)."""

    def to_wire(self) -> None:
        """Nothing: the server's turn detection is off."""
        return None


TurnDetection: TypeAlias = ServerVad | SemanticVad | ClientVad | PushToTalk
_OFF_ON_SERVER = (ClientVad, PushToTalk)
"""Turn detections that turn the server's off (``to_wire`` is ``None``)."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the session declares (``bargein.tools.Tool.spec``): its name, description
    and parameters' JSON schema go to the server; ``on_barge_in`` stays with the core."""

    name: str
    description: str
    parameters: dict[str, Any]
    on_barge_in: Literal["cancel", "finish", "hold"] = "cancel"

    def to_wire(self) -> dict[str, Any]:
        return {"type": "function", "name": self.name, "description": self.description,
                "parameters": self.parameters}


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """What ``session.update`` sets. ``turn_detection=None`` means manual turns (the
    program ends each), ``ClientVad()`` turns that bargein's local detector ends,
    ``PushToTalk()`` turns on a key."""

    input_format: AudioFormat = "pcm16"
    output_format: AudioFormat = "pcm16"
    turn_detection: TurnDetection | None = field(default_factory=ServerVad)
    voice: str | None = None
    instructions: str | None = None
    input_transcription_model: str | None = None
    reply: Literal["audio", "text"] = "audio"
    """How the assistant answers: spoken (its transcript comes as text beside), or written
    only (``output_modalities: ["text"]``; the text comes as the transcript does)."""
    tools: tuple[ToolSpec, ...] = ()
    """Functions the assistant may call (``tool_choice: auto``); none declared when empty."""
    idle_timeout_ms: int | None = None
    """After a reply has played out, this long without the user (no speech, no key, no
    message) asks for a reply: the model prompts the user to go on. Kept by bargein, not
    sent: the server's own ``idle_timeout_ms`` counts from when it *estimates* the audio
    played out, bargein from when its speaker says it did (a reply that played late, or was
    cut, is counted right). Any turn detection; ``None``: never."""

    def __post_init__(self) -> None:
        if self.idle_timeout_ms is not None and self.idle_timeout_ms <= 0:
            raise SessionConfigError(
                f"idle_timeout_ms must be a positive number of ms, got {self.idle_timeout_ms!r}")
        for name in ("input_format", "output_format"):
            value = getattr(self, name)
            if value not in AUDIO_FORMATS:
                raise SessionConfigError(
                    f"{name} must be one of {', '.join(AUDIO_FORMATS)}, got {value!r}"
                )
        if self.reply not in ("audio", "text"):
            raise SessionConfigError(f"reply must be 'audio' or 'text', got {self.reply!r}")

    @property
    def manual_turns(self) -> bool:
        """No turn detection on the server: the program (``None``), bargein's local
        detector (``ClientVad``) or a key (``PushToTalk``) ends each user turn, and the core
        commits the user's audio before each ``response.create``."""
        return self.turn_detection is None or isinstance(self.turn_detection, _OFF_ON_SERVER)

    @property
    def push_to_talk(self) -> bool:
        """The user's audio is sent only while the key is held (``PushToTalk``)."""
        return isinstance(self.turn_detection, PushToTalk)

    @property
    def tool_policies(self) -> dict[str, str]:
        """Each declared tool's ``on_barge_in``, by name (for the core)."""
        return {spec.name: spec.on_barge_in for spec in self.tools}

    @property
    def client_turn_end_ms(self) -> int | None:
        """Under ``ClientVad``, the quiet after the local detector's stop that ends a user
        turn; ``None`` when the local detector does not end turns."""
        turn = self.turn_detection
        return turn.end_after_ms if isinstance(turn, ClientVad) else None

    @property
    def interrupt_response(self) -> bool:
        """Whether the server cancels a response by itself when the user speaks."""
        if self.turn_detection is None or isinstance(self.turn_detection, _OFF_ON_SERVER):
            return False
        return self.turn_detection.interrupt_response is not False

    def with_interrupt_response(self, interrupt: bool) -> SessionConfig:
        """This configuration with turn detection's ``interrupt_response`` set; unchanged
        under manual turns. A two-phase barge-in table has the core send
        ``with_interrupt_response(False)``: the server must not cancel a reply before the
        client has judged the sound (``bargein.states.two_phase``)."""
        if self.turn_detection is None or isinstance(self.turn_detection, _OFF_ON_SERVER):
            return self
        return replace(self, turn_detection=replace(self.turn_detection,
                                                    interrupt_response=interrupt))

    def to_wire(self, api: Api) -> dict[str, Any]:
        """The ``session`` object of ``session.update`` in the GA or beta shape."""
        _check_api(api)
        turn = None if self.turn_detection is None else self.turn_detection.to_wire()
        transcription = (
            None
            if self.input_transcription_model is None
            else {"model": self.input_transcription_model}
        )
        if api == "beta":
            session = _drop_none(
                {
                    "modalities": ["audio", "text"] if self.reply == "audio" else ["text"],
                    "input_audio_format": self.input_format,
                    "output_audio_format": self.output_format,
                    "voice": self.voice,
                    "instructions": self.instructions,
                    "input_audio_transcription": transcription,
                }
            )
            session["turn_detection"] = turn
            session.update(self._tools_wire())
            return session
        audio_input: dict[str, Any] = {"format": dict(_GA_FORMATS[self.input_format])}
        if transcription is not None:
            audio_input["transcription"] = transcription
        audio_input["turn_detection"] = turn
        audio_output = _drop_none(
            {"format": dict(_GA_FORMATS[self.output_format]), "voice": self.voice}
        )
        return _drop_none(
            {
                "type": "realtime",
                "output_modalities": [self.reply],
                "instructions": self.instructions,
                "audio": {"input": audio_input, "output": audio_output},
                **self._tools_wire(),
            }
        )

    def _tools_wire(self) -> dict[str, Any]:
        if not self.tools:
            return {}
        return {"tools": [spec.to_wire() for spec in self.tools], "tool_choice": "auto"}
