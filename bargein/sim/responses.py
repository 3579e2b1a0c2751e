"""A response's parameters (``response.create``'s ``response`` object) and its rendering.

Honoured parameters: ``metadata`` (echoed in ``response.created`` and ``response.done``,
which clients such as LiveKit match replies on), ``conversation`` (``"none"``: an
out-of-band reply whose items never join the conversation, that may run beside the
conversation's own reply and is not cancelled by the user's speech), ``instructions``
(for this reply only; ``Say: TEXT`` pins its words), ``output_modalities`` / beta
``modalities`` (``["text"]``: a written reply), the audio format and voice, ``tools`` and
``tool_choice``, ``max_output_tokens`` (a longer reply ends ``incomplete``) and ``input``
(an out-of-band reply's context: counted in its usage). The rest is checked and accepted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

from bargein.adapters.session_config import AUDIO_FORMATS
from bargein.errors import InvalidSession
from bargein.sim import session_fields as check
from bargein.sim.session_fields import Api
from bargein.sim.settings import Settings, ga_format, parse_ga_format

_GA_KEYS: Final = frozenset(
    {
        "audio", "conversation", "input", "instructions", "max_output_tokens", "metadata",
        "output_modalities", "parallel_tool_calls", "prompt", "reasoning", "tool_choice",
        "tools",
    }
)
_BETA_KEYS: Final = frozenset(
    {
        "conversation", "input", "instructions", "max_response_output_tokens", "metadata",
        "modalities", "output_audio_format", "temperature", "tool_choice", "tools", "voice",
    }
)


@dataclass(frozen=True, slots=True)
class ResponseParams:
    """What one ``response.create`` asked for, over the session's settings."""

    settings: Settings
    metadata: dict[str, str] | None = None
    in_conversation: bool = True
    input: tuple[dict[str, Any], ...] | None = None


def params(session: Settings, raw: Any, api: Api) -> ResponseParams:
    """The parameters of a ``response.create`` (its ``response``, possibly absent)."""
    if raw is None:
        return ResponseParams(session)
    body = check.keys(raw, _GA_KEYS if api == "ga" else _BETA_KEYS, "response")
    changes: dict[str, Any] = {}
    if body.get("instructions") is not None:
        if not isinstance(body["instructions"], str):
            raise InvalidSession("response.instructions", "instructions must be a string.")
        changes["instructions"] = body["instructions"]
    modalities = "output_modalities" if api == "ga" else "modalities"
    if body.get(modalities) is not None:
        changes["modalities"] = check.modalities(body[modalities], f"response.{modalities}", api)
    if body.get("tools") is not None:
        changes["tools"] = check.tools(body["tools"], "response.tools")
    if body.get("tool_choice") is not None:
        changes["tool_choice"] = check.tool_choice(body["tool_choice"], "response.tool_choice",
                                                   api)
    tokens = "max_output_tokens" if api == "ga" else "max_response_output_tokens"
    if body.get(tokens) is not None:
        changes["max_output_tokens"] = check.max_tokens(body[tokens], f"response.{tokens}")
    if api == "ga":
        audio = check.keys(body.get("audio") or {}, frozenset({"output"}), "response.audio")
        output = check.keys(audio.get("output") or {}, frozenset({"format", "voice"}),
                            "response.audio.output")
        if output.get("format") is not None:
            changes["output_format"] = parse_ga_format(output["format"],
                                                       "response.audio.output.format")
        if output.get("voice") is not None:
            changes["voice"] = _string(output["voice"], "response.audio.output.voice")
    else:
        fmt = body.get("output_audio_format")
        if fmt is not None:
            if fmt not in AUDIO_FORMATS:
                raise InvalidSession("response.output_audio_format",
                                     "Invalid value for 'response.output_audio_format'.")
            changes["output_format"] = fmt
        if body.get("voice") is not None:
            changes["voice"] = _string(body["voice"], "response.voice")
    conversation = body.get("conversation", "auto")
    if conversation not in ("auto", "none", None):
        raise InvalidSession("response.conversation",
                             "Invalid value for 'response.conversation': 'auto' or 'none'.")
    items = body.get("input")
    if items is not None and (
        not isinstance(items, list) or not all(isinstance(i, dict) for i in items)
    ):
        raise InvalidSession("response.input", "input must be an array of items.")
    return ResponseParams(
        dataclasses.replace(session, **changes),
        check.metadata(body.get("metadata"), "response.metadata"),
        conversation != "none",
        tuple(items) if items is not None else None,
    )


def _string(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise InvalidSession(param, f"'{param}' must be a string.", "invalid_type")
    return value


def render_response(
    response_id: str,
    status: str,
    details: dict[str, Any] | None,
    output: list[dict[str, Any]],
    request: ResponseParams,
    usage: dict[str, Any] | None,
    api: Api,
) -> dict[str, Any]:
    """The response object of ``response.created`` / ``response.done``, as ``api`` declares."""
    settings = request.settings
    common = {
        "id": response_id,
        "object": "realtime.response",
        "status": status,
        "status_details": details,
        "output": output,
        "conversation_id": "conv_sim" if request.in_conversation else None,
        "max_output_tokens": settings.max_output_tokens,
        "metadata": request.metadata,
        "usage": usage,
    }
    if api == "ga":
        return {
            **common,
            "output_modalities": list(settings.modalities),
            "audio": {
                "output": {"format": ga_format(settings.output_format), "voice": settings.voice}
            },
        }
    return {
        **common,
        "modalities": list(settings.modalities),
        "output_audio_format": settings.output_format,
        "voice": settings.voice,
        "temperature": settings.temperature,
    }
