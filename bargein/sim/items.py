"""Conversation items: messages, function calls and their outputs, as the APIs write them.

An ``Item`` keeps what the simulator needs: its kind and fields, the assistant audio sent
for it (``audio_bytes``, in ``audio_format``: what a truncate may cut within) and, for a
user's audio, how many milliseconds were committed (for ``usage``). ``render_item`` writes
an item in the shape the connection's API declares; ``client_item`` reads the item of a
``conversation.item.create``, keeping only the keys the official models declare; as
upstream, an assistant message a client adds holds text, never audio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from bargein.errors import InvalidSession
from bargein.sim.settings import Api, Format, bytes_per_ms

Kind = Literal["message", "function_call", "function_call_output"]

_PART_KEYS: Final[dict[str, frozenset[str]]] = {
    "input_text": frozenset({"type", "text"}),
    "input_audio": frozenset({"type", "audio", "transcript"}),
    "input_image": frozenset({"type", "image_url", "detail"}),
    "output_text": frozenset({"type", "text"}),
    "output_audio": frozenset({"type", "audio", "transcript"}),
    "text": frozenset({"type", "text"}),
    "audio": frozenset({"type", "audio", "transcript"}),
}
_PARTS: Final[dict[tuple[Api, str], frozenset[str]]] = {
    ("ga", "user"): frozenset({"input_text", "input_audio", "input_image"}),
    ("ga", "system"): frozenset({"input_text"}),
    ("ga", "assistant"): frozenset({"output_text"}),
    ("beta", "user"): frozenset({"input_text", "input_audio"}),
    ("beta", "system"): frozenset({"input_text"}),
    ("beta", "assistant"): frozenset({"text"}),
}
_ITEM_KEYS: Final[dict[str, frozenset[str]]] = {
    "message": frozenset({"id", "type", "object", "status", "role", "content"}),
    "function_call": frozenset(
        {"id", "type", "object", "status", "name", "call_id", "arguments"}
    ),
    "function_call_output": frozenset({"id", "type", "object", "status", "call_id", "output"}),
}


@dataclass
class Item:
    """A conversation item (see the module docstring)."""

    id: str
    kind: Kind = "message"
    role: str | None = None
    content: list[dict[str, Any]] = field(default_factory=list)
    name: str = ""
    call_id: str = ""
    arguments: str = ""
    output: str = ""
    audio_bytes: int = 0
    audio_format: Format = "pcm16"
    input_ms: int = 0
    """Milliseconds of user audio this item holds (a committed input buffer)."""
    heard_ms: int | None = None
    """Where a truncate cut the assistant's audio (None: not truncated)."""
    status: str = "completed"
    """in_progress while a reply streams it; then completed or incomplete."""

    @property
    def audio_ms(self) -> int:
        """Milliseconds of assistant audio sent for the item: what a truncate may cut within."""
        return self.audio_bytes // bytes_per_ms(self.audio_format)

    def text(self) -> str:
        """The item's words, for token counts: texts, transcripts, arguments, outputs."""
        words = [self.name, self.arguments, self.output]
        for part in self.content:
            words += [str(part.get(key) or "") for key in ("text", "transcript")]
        return " ".join(w for w in words if w)


def render_item(item: Item, status: str | None = None) -> dict[str, Any]:
    """An item as server events carry it (the GA and beta shapes agree on these keys), with
    its own status unless ``status`` is given."""
    common = {"id": item.id, "object": "realtime.item", "type": item.kind,
              "status": status or item.status}
    if item.kind == "function_call":
        return {**common, "name": item.name, "call_id": item.call_id, "arguments": item.arguments}
    if item.kind == "function_call_output":
        return {**common, "call_id": item.call_id, "output": item.output}
    return {**common, "role": item.role, "content": [dict(part) for part in item.content]}


def client_item(raw: Any, api: Api, new_id: str) -> Item:
    """The item of a ``conversation.item.create``, or InvalidSession naming the bad key."""
    if not isinstance(raw, dict):
        raise InvalidSession("item", "item must be an object.", "invalid_type")
    kind = raw.get("type", "message")
    if kind not in _ITEM_KEYS:
        raise InvalidSession(
            "item.type",
            f"Invalid value: '{kind}'. Supported values are: 'message', 'function_call', "
            f"and 'function_call_output'.",
            "invalid_value",
        )
    for key in raw:
        if key not in _ITEM_KEYS[kind]:
            raise InvalidSession(f"item.{key}", f"Unknown parameter: 'item.{key}'.",
                                 "unknown_parameter")
    given = raw.get("id")
    if given is not None and (not isinstance(given, str) or not given or len(given) > 32):
        raise InvalidSession("item.id", "item.id must be a string of 1 to 32 characters.")
    item = Item(given or new_id, kind)
    if kind == "message":
        role = raw.get("role")
        if role not in ("user", "system", "assistant"):
            raise InvalidSession("item.role", "item.role must be 'user', 'system' or 'assistant'.",
                                 "missing_required_parameter" if role is None else "invalid_value")
        item.role = role
        item.content = _content(raw.get("content"), api, role)
    elif kind == "function_call":
        item.name = _string(raw, "name")
        item.call_id = _string(raw, "call_id")
        item.arguments = _string(raw, "arguments")
    else:
        item.call_id = _string(raw, "call_id")
        item.output = _string(raw, "output")
    return item


def _string(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str):
        code = "missing_required_parameter" if value is None else "invalid_type"
        raise InvalidSession(f"item.{key}", f"item.{key} must be a string.", code)
    return value


def _content(parts: Any, api: Api, role: str) -> list[dict[str, Any]]:
    if not isinstance(parts, list):
        raise InvalidSession("item.content", "item.content must be a list of content parts.",
                             "missing_required_parameter" if parts is None else "invalid_type")
    allowed = _PARTS[api, role]
    content = []
    for index, part in enumerate(parts):
        where = f"item.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if role == "assistant" and kind in ("output_audio", "audio"):
            # as upstream: a client cannot add assistant audio, only its text
            raise InvalidSession(f"{where}.text", f"Missing required parameter: '{where}.text'.",
                                 "missing_required_parameter")
        if kind not in allowed:
            raise InvalidSession(
                f"{where}.type",
                f"Invalid value: '{kind}'. A {role} message's content parts are "
                f"{', '.join(sorted(allowed))}.",
            )
        for key in part:
            if key not in _PART_KEYS[kind]:
                raise InvalidSession(f"{where}.{key}", f"Unknown parameter: '{where}.{key}'.",
                                     "unknown_parameter")
        if kind in ("input_text", "output_text", "text") and not isinstance(part.get("text"), str):
            raise InvalidSession(f"{where}.text", f"Missing required parameter: '{where}.text'.",
                                 "missing_required_parameter")
        content.append(dict(part))
    return content
