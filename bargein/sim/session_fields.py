"""Checks of the session (and response) fields the simulator keeps and echoes back.

Each check takes a client's value and the parameter path it came from, and returns the value
to keep or raises ``InvalidSession`` naming the bad key, as upstream's ``error`` events do.
Only keys the official models declare are kept, so echoing them back in ``session.updated``
stays valid against those models.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from bargein.errors import InvalidSession

Api = Literal["ga", "beta"]

_TOOL_KEYS: Final = frozenset({"type", "name", "description", "parameters"})
_TRANSCRIPTION_KEYS: Final[dict[Api, frozenset[str]]] = {
    "ga": frozenset({"model", "language", "prompt", "delay", "keywords", "languages"}),
    "beta": frozenset({"model", "language", "prompt"}),
}
_NOISE_KEYS: Final[dict[Api, frozenset[str]]] = {
    "ga": frozenset({"type", "strength"}),
    "beta": frozenset({"type"}),
}
_TRACING_KEYS: Final = frozenset({"group_id", "metadata", "workflow_name"})
_EFFORTS: Final = ("minimal", "low", "medium", "high", "xhigh")
MAX_OUTPUT_TOKENS: Final = 4096


def keys(value: Any, allowed: frozenset[str], param: str) -> dict[str, Any]:
    """``value`` as an object whose keys are all in ``allowed``."""
    if not isinstance(value, dict):
        raise InvalidSession(param, f"'{param}' must be an object.", "invalid_type")
    for key in value:
        if key not in allowed:
            raise InvalidSession(
                f"{param}.{key}", f"Unknown parameter: '{param}.{key}'.", "unknown_parameter"
            )
    return value


def modalities(value: Any, param: str, api: Api) -> tuple[str, ...]:
    """GA: ``["audio"]`` or ``["text"]`` (not both, as upstream); beta: ``["text"]`` or
    ``["audio", "text"]``."""
    ok = (
        isinstance(value, list)
        and all(isinstance(m, str) for m in value)
        and (
            sorted(value) in (["audio"], ["text"])
            if api == "ga"
            else sorted(value) in (["text"], ["audio", "text"])
        )
    )
    if not ok:
        choices = "['audio'] or ['text']" if api == "ga" else "['text'] or ['audio', 'text']"
        raise InvalidSession(param, f"Invalid value for '{param}': expected {choices}.")
    return tuple(sorted(value))


def tools(value: Any, param: str) -> tuple[dict[str, Any], ...]:
    """Function tools (the simulator has no MCP servers to call)."""
    if not isinstance(value, list):
        raise InvalidSession(param, f"'{param}' must be an array.", "invalid_type")
    kept = []
    for index, raw in enumerate(value):
        where = f"{param}[{index}]"
        tool = keys(raw, _TOOL_KEYS, where)
        if tool.get("type", "function") != "function":
            raise InvalidSession(f"{where}.type", "The simulator supports function tools only.")
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise InvalidSession(f"{where}.name", f"Missing required parameter: '{where}.name'.",
                                 "missing_required_parameter")
        if "parameters" in tool and not isinstance(tool["parameters"], dict):
            raise InvalidSession(f"{where}.parameters", "parameters must be a JSON schema object.")
        if "description" in tool and not isinstance(tool["description"], str):
            raise InvalidSession(f"{where}.description", "description must be a string.")
        kept.append({"type": "function", **tool})
    return tuple(kept)


def tool_choice(value: Any, param: str, api: Api) -> Any:
    """``auto``, ``none``, ``required``, or (GA) ``{"type": "function", "name": ...}`` /
    (beta) a function's name."""
    if value in ("auto", "none", "required"):
        return value
    if api == "beta" and isinstance(value, str) and value:
        return value
    if api == "ga" and isinstance(value, dict):
        choice = keys(value, frozenset({"type", "name"}), param)
        if choice.get("type") == "function" and isinstance(choice.get("name"), str):
            return choice
    raise InvalidSession(param, f"Invalid value for '{param}'.")


def transcription(value: Any, param: str, api: Api) -> dict[str, Any] | None:
    """Input transcription: ``null`` turns it off."""
    if value is None:
        return None
    config = keys(value, _TRANSCRIPTION_KEYS[api], param)
    for key in ("model", "language", "prompt"):
        if key in config and config[key] is not None and not isinstance(config[key], str):
            raise InvalidSession(f"{param}.{key}", f"'{param}.{key}' must be a string.",
                                 "invalid_type")
    return dict(config)


def noise_reduction(value: Any, param: str, api: Api) -> dict[str, Any] | None:
    if value is None:
        return None
    config = keys(value, _NOISE_KEYS[api], param)
    if config.get("type") not in ("near_field", "far_field"):
        raise InvalidSession(f"{param}.type", f"Invalid value for '{param}.type'.")
    return dict(config)


def speed(value: Any, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.25 <= value <= 1.5:
        raise InvalidSession(param, f"'{param}' must be a number between 0.25 and 1.5.")
    return float(value)


def max_tokens(value: Any, param: str) -> int | str:
    """An output token limit: 1 to 4096, or ``inf``."""
    if value == "inf":
        return "inf"
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_OUTPUT_TOKENS:
        raise InvalidSession(param, f"'{param}' must be 'inf' or an integer from 1 to "
                                    f"{MAX_OUTPUT_TOKENS}.")
    return value


def tracing(value: Any, param: str) -> Any:
    if value is None or value == "auto":
        return value
    return dict(keys(value, _TRACING_KEYS, param))


def truncation(value: Any, param: str) -> Any:
    if value in ("auto", "disabled"):
        return value
    config = keys(value, frozenset({"type", "retention_ratio", "token_limits"}), param)
    ratio = config.get("retention_ratio")
    if (
        config.get("type") != "retention_ratio"
        or isinstance(ratio, bool)
        or not isinstance(ratio, int | float)
        or not 0.0 <= ratio <= 1.0
    ):
        raise InvalidSession(param, f"Invalid value for '{param}'.")
    if "token_limits" in config:
        keys(config["token_limits"], frozenset({"post_instructions"}), f"{param}.token_limits")
    return {**config, "retention_ratio": float(ratio)}


def include(value: Any, param: str) -> Any:
    if value is None:
        return None
    if not isinstance(value, list) or any(
        v != "item.input_audio_transcription.logprobs" for v in value
    ):
        raise InvalidSession(param, f"Invalid value for '{param}'.")
    return list(value)


def prompt(value: Any, param: str) -> Any:
    if value is None:
        return None
    config = keys(value, frozenset({"id", "variables", "version"}), param)
    if not isinstance(config.get("id"), str):
        raise InvalidSession(f"{param}.id", f"Missing required parameter: '{param}.id'.",
                             "missing_required_parameter")
    return dict(config)


def reasoning(value: Any, param: str) -> Any:
    if value is None:
        return None
    config = keys(value, frozenset({"effort"}), param)
    if config.get("effort") not in (None, *_EFFORTS):
        raise InvalidSession(f"{param}.effort", f"Invalid value for '{param}.effort'.")
    return dict(config)


def flag(value: Any, param: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidSession(param, f"'{param}' must be a boolean.", "invalid_type")
    return value


def metadata(value: Any, param: str) -> dict[str, str] | None:
    """Up to 16 string pairs (keys up to 64 characters, values up to 512), as upstream."""
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or len(value) > 16
        or not all(isinstance(k, str) and len(k) <= 64 for k in value)
        or not all(isinstance(v, str) and len(v) <= 512 for v in value.values())
    ):
        raise InvalidSession(param, f"'{param}' must map at most 16 string keys to strings.")
    return dict(value)


def common(session: dict[str, Any], api: Api) -> dict[str, Any]:
    """The fields GA and beta share, by their names in ``api``."""
    changes: dict[str, Any] = {}
    key = "output_modalities" if api == "ga" else "modalities"
    if session.get(key) is not None:
        changes["modalities"] = modalities(session[key], f"session.{key}", api)
    if "tools" in session:
        changes["tools"] = tools(session["tools"], "session.tools")
    if "tool_choice" in session:
        changes["tool_choice"] = tool_choice(
            session["tool_choice"], "session.tool_choice", api
        )
    tokens = "max_output_tokens" if api == "ga" else "max_response_output_tokens"
    if tokens in session:
        changes["max_output_tokens"] = max_tokens(session[tokens], f"session.{tokens}")
    if "tracing" in session:
        changes["tracing"] = tracing(session["tracing"], "session.tracing")
    return changes


def ga_only(session: dict[str, Any]) -> dict[str, Any]:
    """The GA fields the simulator only echoes back."""
    changes: dict[str, Any] = {}
    checker: Any
    for key, checker in (
        ("truncation", truncation),
        ("include", include),
        ("prompt", prompt),
        ("reasoning", reasoning),
        ("parallel_tool_calls", flag),
    ):
        if key in session:
            changes[key] = checker(session[key], f"session.{key}")
    return changes


def beta_only(session: dict[str, Any]) -> dict[str, Any]:
    """The beta fields that GA keeps under ``audio``, and beta's temperature."""
    changes: dict[str, Any] = {}
    if "input_audio_transcription" in session:
        changes["transcription"] = transcription(
            session["input_audio_transcription"], "session.input_audio_transcription", "beta"
        )
    if "input_audio_noise_reduction" in session:
        changes["noise_reduction"] = noise_reduction(
            session["input_audio_noise_reduction"], "session.input_audio_noise_reduction", "beta"
        )
    if "speed" in session:
        changes["speed"] = speed(session["speed"], "session.speed")
    temperature = session.get("temperature")
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not (
            0.6 <= temperature <= 1.2
        ):
            raise InvalidSession("session.temperature", "temperature must be from 0.6 to 1.2.")
        changes["temperature"] = float(temperature)
    return changes
