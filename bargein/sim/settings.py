"""Session settings the simulator honours, read from and written as GA or beta JSON.

The GA API nests audio settings (``audio.input.format``, ``audio.input.turn_detection``);
the beta API keeps them flat (``input_audio_format``, ``turn_detection``). Every field the
official session model declares is kept and echoed back whole (the GA object of
``session.created`` has all 14 of ``RealtimeSessionCreateRequest``); session_fields.py
checks each. The simulator acts on: the formats, the voice (which cannot change once the
assistant has spoken), turn detection (``idle_timeout_ms`` included), input transcription
(its events are sent when it is on), the output modalities (``["text"]``: written replies),
the tools and ``tool_choice`` (which scripted calls can be made), ``max_output_tokens`` (a
longer reply ends ``incomplete``) and the instructions (``Say: TEXT`` pins a reply).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final, Literal

from bargein.adapters.session_config import AUDIO_FORMATS, SAMPLE_RATES, AudioFormat
from bargein.core.pcm import BYTES_PER_MS, RATE
from bargein.errors import InvalidSession
from bargein.sim import session_fields as check
from bargein.sim.session_fields import Api as Api

Format = AudioFormat
"""The wire audio formats, by their beta names (GA writes them as ``audio/pcm``, ...)."""

_GA_FORMATS: dict[str, Format] = {
    "audio/pcm": "pcm16",
    "audio/pcmu": "g711_ulaw",
    "audio/pcma": "g711_alaw",
}
_GA_KEYS = frozenset(
    {
        "type",
        "audio",
        "include",
        "instructions",
        "max_output_tokens",
        "model",
        "output_modalities",
        "parallel_tool_calls",
        "prompt",
        "reasoning",
        "tool_choice",
        "tools",
        "tracing",
        "truncation",
    }
)
_BETA_KEYS = frozenset(
    {
        "client_secret",
        "input_audio_format",
        "input_audio_noise_reduction",
        "input_audio_transcription",
        "instructions",
        "max_response_output_tokens",
        "modalities",
        "model",
        "output_audio_format",
        "speed",
        "temperature",
        "tool_choice",
        "tools",
        "tracing",
        "turn_detection",
        "voice",
    }
)
_VAD_KEYS = frozenset(
    {
        "type",
        "threshold",
        "prefix_padding_ms",
        "silence_duration_ms",
        "create_response",
        "interrupt_response",
        "idle_timeout_ms",
        "eagerness",
    }
)


@dataclass(frozen=True, slots=True)
class TurnDetection:
    """Server VAD settings (``semantic_vad`` is served by the same energy detector).

    ``idle_timeout_ms`` (server_vad only, as upstream): after the assistant's audio has
    played out, that long without speech sends ``input_audio_buffer.timeout_triggered``,
    commits the quiet audio and starts a response."""

    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    create_response: bool = True
    interrupt_response: bool = True
    idle_timeout_ms: int | None = None
    eagerness: str = "auto"


@dataclass(frozen=True, slots=True)
class Settings:
    """A session's settings: what the simulator acts on, and what it only echoes back."""

    model: str = "gpt-realtime"
    instructions: str = "You are the bargein simulator."
    voice: str = "alloy"
    input_format: Format = "pcm16"
    output_format: Format = "pcm16"
    turn_detection: TurnDetection | None = TurnDetection()
    modalities: tuple[str, ...] = ("audio",)
    """GA ``output_modalities``; beta ``modalities`` (("audio", "text") or ("text",))."""
    transcription: dict[str, Any] | None = None
    noise_reduction: dict[str, Any] | None = None
    speed: float = 1.0
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: Any = "auto"
    max_output_tokens: int | str = "inf"
    tracing: Any = None
    truncation: Any = "auto"
    include: Any = None
    prompt: Any = None
    reasoning: Any = None
    parallel_tool_calls: bool = True
    temperature: float = 0.8

    @property
    def speaks(self) -> bool:
        """Whether replies are spoken (else written: ``["text"]``)."""
        return "audio" in self.modalities


def bytes_per_ms(fmt: Format) -> int:
    """Bytes of ``fmt`` audio per ms: PCM16 is 2-byte samples at 24 kHz (48), G.711 1-byte
    samples at 8 kHz (8)."""
    return BYTES_PER_MS if fmt == "pcm16" else SAMPLE_RATES[fmt] // 1000


def updated(settings: Settings, session: Any, api: Api) -> Settings:
    """``settings`` changed by a session.update's ``session`` object, or InvalidSession."""
    if not isinstance(session, dict):
        raise InvalidSession("session", "session must be an object")
    allowed = _GA_KEYS if api == "ga" else _BETA_KEYS
    for key in session:
        if key not in allowed:
            raise InvalidSession(
                f"session.{key}", f"Unknown parameter: 'session.{key}'.", "unknown_parameter"
            )
    if api == "ga" and session.get("type") != "realtime":
        raise InvalidSession(
            "session.type",
            "session.type must be 'realtime'.",
            "missing_required_parameter" if "type" not in session else "invalid_value",
        )
    changes: dict[str, Any] = {}
    for key in ("instructions", "model"):
        if key in session:
            changes[key] = _string(session[key], f"session.{key}")
    changes.update(check.common(session, api))
    if api == "ga":
        changes.update(check.ga_only(session))
        audio = check.keys(session.get("audio", {}), frozenset({"input", "output"}),
                           "session.audio")
        for side in ("input", "output"):
            param = f"session.audio.{side}"
            allowed = _GA_AUDIO_KEYS[side]
            part = check.keys(audio.get(side) or {}, allowed, param)
            if "format" in part:
                changes[f"{side}_format"] = parse_ga_format(part["format"], f"{param}.format")
            if side == "output" and "voice" in part:
                changes["voice"] = _string(part["voice"], f"{param}.voice")
            if side == "output" and "speed" in part:
                changes["speed"] = check.speed(part["speed"], f"{param}.speed")
            if side == "input" and "turn_detection" in part:
                changes["turn_detection"] = _turn_detection(
                    part["turn_detection"], f"{param}.turn_detection"
                )
            if side == "input" and "transcription" in part:
                changes["transcription"] = check.transcription(
                    part["transcription"], f"{param}.transcription", api
                )
            if side == "input" and "noise_reduction" in part:
                changes["noise_reduction"] = check.noise_reduction(
                    part["noise_reduction"], f"{param}.noise_reduction", api
                )
    else:
        changes.update(check.beta_only(session))
        for side in ("input", "output"):
            key = f"{side}_audio_format"
            if key in session:
                if session[key] not in AUDIO_FORMATS:
                    raise InvalidSession(f"session.{key}", f"Invalid value for 'session.{key}'.")
                changes[f"{side}_format"] = session[key]
        if "voice" in session:
            changes["voice"] = _string(session["voice"], "session.voice")
        if "turn_detection" in session:
            changes["turn_detection"] = _turn_detection(
                session["turn_detection"], "session.turn_detection"
            )
    return dataclasses.replace(settings, **changes)


_GA_AUDIO_KEYS: Final = {
    "input": frozenset({"format", "transcription", "noise_reduction", "turn_detection"}),
    "output": frozenset({"format", "voice", "speed"}),
}


def render(settings: Settings, api: Api, session_id: str) -> dict[str, Any]:
    """The session object of session.created / session.updated, whole, as the api declares."""
    if api == "ga":
        return {
            "type": "realtime",
            "model": settings.model,
            "output_modalities": list(settings.modalities),
            "instructions": settings.instructions,
            "max_output_tokens": settings.max_output_tokens,
            "audio": {
                "input": {
                    "format": ga_format(settings.input_format),
                    "transcription": settings.transcription,
                    "noise_reduction": settings.noise_reduction,
                    "turn_detection": _render_vad(settings.turn_detection, api),
                },
                "output": {
                    "format": ga_format(settings.output_format),
                    "voice": settings.voice,
                    "speed": settings.speed,
                },
            },
            "include": settings.include,
            "parallel_tool_calls": settings.parallel_tool_calls,
            "prompt": settings.prompt,
            "reasoning": settings.reasoning,
            "tool_choice": settings.tool_choice,
            "tools": [dict(tool) for tool in settings.tools],
            "tracing": settings.tracing,
            "truncation": settings.truncation,
        }
    return {
        "id": session_id,
        "modalities": list(settings.modalities),
        "instructions": settings.instructions,
        "voice": settings.voice,
        "input_audio_format": settings.input_format,
        "output_audio_format": settings.output_format,
        "input_audio_transcription": settings.transcription,
        "input_audio_noise_reduction": settings.noise_reduction,
        "turn_detection": _render_vad(settings.turn_detection, api),
        "tools": [dict(tool) for tool in settings.tools],
        "tool_choice": settings.tool_choice,
        "temperature": settings.temperature,
        "max_response_output_tokens": settings.max_output_tokens,
        "speed": settings.speed,
        "tracing": settings.tracing,
    }


def ga_format(fmt: Format) -> dict[str, Any]:
    """The GA audio format object of ``fmt``."""
    if fmt == "pcm16":
        return {"type": "audio/pcm", "rate": RATE}
    return {"type": "audio/pcmu" if fmt == "g711_ulaw" else "audio/pcma"}


def _render_vad(vad: TurnDetection | None, api: Api) -> dict[str, Any] | None:
    if vad is None:
        return None
    common = {
        "type": vad.type,
        "create_response": vad.create_response,
        "interrupt_response": vad.interrupt_response,
    }
    if vad.type == "semantic_vad":
        return {**common, "eagerness": vad.eagerness}
    rendered: dict[str, Any] = {
        **common,
        "threshold": vad.threshold,
        "prefix_padding_ms": vad.prefix_padding_ms,
        "silence_duration_ms": vad.silence_duration_ms,
    }
    if api == "ga":
        rendered["idle_timeout_ms"] = vad.idle_timeout_ms
    return rendered


def _object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidSession(param, f"'{param}' must be an object.")
    return value


def _string(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise InvalidSession(param, f"'{param}' must be a string.")
    return value


def parse_ga_format(value: Any, param: str) -> Format:
    fmt = _object(value, param)
    kind = fmt.get("type")
    if kind not in _GA_FORMATS:
        raise InvalidSession(f"{param}.type", f"Invalid value for '{param}.type'.")
    if kind == "audio/pcm" and fmt.get("rate", RATE) != RATE:
        raise InvalidSession(f"{param}.rate", f"audio/pcm is only supported at {RATE} Hz.")
    return _GA_FORMATS[kind]


def _turn_detection(value: Any, param: str) -> TurnDetection | None:
    if value is None:
        return None
    vad = _object(value, param)
    for key in vad:
        if key not in _VAD_KEYS:
            raise InvalidSession(
                f"{param}.{key}", f"Unknown parameter: '{param}.{key}'.", "unknown_parameter"
            )
    kind = vad.get("type", "server_vad")
    if kind not in ("server_vad", "semantic_vad"):
        raise InvalidSession(f"{param}.type", f"Invalid value for '{param}.type'.")
    threshold = vad.get("threshold", 0.5)
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not (0.0 <= threshold <= 1.0)
    ):
        raise InvalidSession(f"{param}.threshold", "threshold must be between 0.0 and 1.0.")
    idle = vad.get("idle_timeout_ms")
    if idle is not None:
        if kind != "server_vad":
            raise InvalidSession(f"{param}.idle_timeout_ms",
                                 "idle_timeout_ms is only supported for server_vad.")
        idle = _duration(vad, "idle_timeout_ms", 0, param)
        if not 5000 <= idle <= 30000:
            raise InvalidSession(f"{param}.idle_timeout_ms",
                                 "idle_timeout_ms must be from 5000 to 30000.")
    eagerness = vad.get("eagerness", "auto")
    if eagerness not in ("low", "medium", "high", "auto"):
        raise InvalidSession(f"{param}.eagerness", f"Invalid value for '{param}.eagerness'.")
    return TurnDetection(
        idle_timeout_ms=idle,
        eagerness=eagerness,
        type=kind,
        threshold=float(threshold),
        prefix_padding_ms=_duration(vad, "prefix_padding_ms", 300, param),
        silence_duration_ms=_duration(vad, "silence_duration_ms", 500, param),
        create_response=_flag(vad, "create_response", param),
        interrupt_response=_flag(vad, "interrupt_response", param),
    )


def _duration(vad: dict[str, Any], key: str, default: int, param: str) -> int:
    ms = vad.get(key, default)
    if isinstance(ms, bool) or not isinstance(ms, int) or ms < 0:
        raise InvalidSession(f"{param}.{key}", f"{key} must be a non-negative integer.")
    return ms


def _flag(vad: dict[str, Any], key: str, param: str) -> bool:
    flag = vad.get(key, True)
    if not isinstance(flag, bool):
        raise InvalidSession(f"{param}.{key}", f"{key} must be a boolean.")
    return flag
