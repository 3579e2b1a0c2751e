"""Session settings the simulator honours, read from and written as GA or beta JSON.

The GA API nests audio settings (``audio.input.format``, ``audio.input.turn_detection``);
the beta API keeps them flat (``input_audio_format``, ``turn_detection``). Settings the
simulator has no use for (tools, tracing, ...) are accepted and not echoed back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from bargein.adapters.session_config import AUDIO_FORMATS, SAMPLE_RATES, AudioFormat
from bargein.core.pcm import BYTES_PER_MS, RATE
from bargein.errors import InvalidSession

Api = Literal["ga", "beta"]
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
    """Server VAD settings (``semantic_vad`` is served by the same energy detector)."""

    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    create_response: bool = True
    interrupt_response: bool = True


@dataclass(frozen=True, slots=True)
class Settings:
    """The part of a session the simulator acts on."""

    model: str = "gpt-realtime"
    instructions: str = "You are the bargein simulator."
    voice: str = "alloy"
    input_format: Format = "pcm16"
    output_format: Format = "pcm16"
    turn_detection: TurnDetection | None = TurnDetection()


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
    changes: dict[str, Any] = {}
    for key in ("instructions", "model"):
        if key in session:
            changes[key] = _string(session[key], f"session.{key}")
    if api == "ga":
        if session.get("type") != "realtime":
            raise InvalidSession(
                "session.type",
                "session.type must be 'realtime'.",
                "missing_required_parameter" if "type" not in session else "invalid_value",
            )
        _modalities(session.get("output_modalities"), "session.output_modalities")
        audio = _object(session.get("audio", {}), "session.audio")
        for side in ("input", "output"):
            part = _object(audio.get(side, {}), f"session.audio.{side}")
            if "format" in part:
                changes[f"{side}_format"] = _ga_format(
                    part["format"], f"session.audio.{side}.format"
                )
            if side == "output" and "voice" in part:
                changes["voice"] = _string(part["voice"], "session.audio.output.voice")
            if side == "input" and "turn_detection" in part:
                changes["turn_detection"] = _turn_detection(
                    part["turn_detection"], "session.audio.input.turn_detection"
                )
    else:
        _modalities(session.get("modalities"), "session.modalities")
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


def render(settings: Settings, api: Api, session_id: str) -> dict[str, Any]:
    """The session object of session.created / session.updated, as the api's models declare."""
    if api == "ga":
        return {
            "type": "realtime",
            "model": settings.model,
            "output_modalities": ["audio"],
            "instructions": settings.instructions,
            "max_output_tokens": "inf",
            "audio": {
                "input": {
                    "format": ga_format(settings.input_format),
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": _render_vad(settings.turn_detection, api),
                },
                "output": {
                    "format": ga_format(settings.output_format),
                    "voice": settings.voice,
                    "speed": 1.0,
                },
            },
        }
    return {
        "id": session_id,
        "modalities": ["audio", "text"],
        "instructions": settings.instructions,
        "voice": settings.voice,
        "input_audio_format": settings.input_format,
        "output_audio_format": settings.output_format,
        "input_audio_transcription": None,
        "turn_detection": _render_vad(settings.turn_detection, api),
        "temperature": 0.8,
        "max_response_output_tokens": "inf",
        "speed": 1.0,
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
        return {**common, "eagerness": "auto"}
    return {
        **common,
        "threshold": vad.threshold,
        "prefix_padding_ms": vad.prefix_padding_ms,
        "silence_duration_ms": vad.silence_duration_ms,
    }


def _object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidSession(param, f"'{param}' must be an object.")
    return value


def _string(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise InvalidSession(param, f"'{param}' must be a string.")
    return value


def _modalities(value: Any, param: str) -> None:
    if value is not None and (not isinstance(value, list) or "audio" not in value):
        raise InvalidSession(param, f"'{param}' must include 'audio': the simulator speaks.")


def _ga_format(value: Any, param: str) -> Format:
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
    return TurnDetection(
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
