"""What the simulated assistant says: the reply script, and the plan of one response.

``SimConfig.script`` is a tuple of entries, played in turn and cycling:

- a ``str``: one message, spoken (with its transcript) or written when the response's
  output modalities are ``["text"]``;
- ``ToolCall(name, arguments, answer)``: a ``function_call`` item. Its arguments are
  streamed (``response.function_call_arguments.delta``/``.done``) and the response ends;
  the client runs the function and sends a ``function_call_output`` item for its
  ``call_id``, then a ``response.create``: that response says ``answer``, with ``{output}``
  replaced by the output the client sent (``{name}`` by the function's name); an output
  placed before the conversation's last user message (a call the user interrupted) is
  taken but not said, and the response answers the user (the next entry). ``name=None``
  calls the first function the session declares; ``arguments=None`` makes arguments up
  from the function's JSON schema (the first ``enum`` value, ``"example"``, ``1``, ``true``).
  As upstream, a tool the session (or the response) does not declare is never called, and
  nothing is called under ``tool_choice: "none"``: an entry none of whose calls can be
  made is skipped whole (its texts too), and the next entry plays;
- ``Reply(parts)``: one response with several output items, each a ``str`` or a
  ``ToolCall`` (e.g. "Let me check." then a call).

Instructions can pin a reply: when the response's instructions (``response.create``'s, else
the session's) have a line ``Say: TEXT``, the reply is TEXT and the script does not advance.

``parse_script`` reads a script from text (``bargein sim --script FILE``): one entry per
non-empty line, ``" | "`` between the parts of one reply, and a part
``call NAME {"json": "arguments"} => answer`` (``call *`` for the first declared tool;
the arguments and the answer are optional).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from bargein.errors import SimError

DEFAULT_ANSWER: Final = "The {name} tool says: {output}"
_SAY: Final = re.compile(r"^\s*say\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_CALL: Final = re.compile(r"^call\s+(\S+)\s*(\{.*\})?\s*(?:=>\s*(.*))?$", re.DOTALL)
_OUTPUT_CHARS: Final = 200
"""At most this much of a tool's output is read out in its answer."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A scripted function call: see the module docstring. ``arguments`` is kept as JSON."""

    name: str | None = None
    arguments: str | Mapping[str, Any] | None = None
    answer: str = DEFAULT_ANSWER

    def __post_init__(self) -> None:
        if isinstance(self.arguments, Mapping):
            object.__setattr__(self, "arguments", json.dumps(dict(self.arguments)))
        elif isinstance(self.arguments, str):
            try:
                decoded = json.loads(self.arguments)
            except ValueError:
                raise SimError(f"ToolCall arguments are not JSON: {self.arguments!r}") from None
            if not isinstance(decoded, dict):
                raise SimError("ToolCall arguments must be a JSON object")
        if not self.answer.strip():
            raise SimError("a ToolCall needs an answer to say after its output")


Part = str | ToolCall


@dataclass(frozen=True, slots=True)
class Reply:
    """One response with several output items, in order."""

    parts: tuple[Part, ...]

    def __post_init__(self) -> None:
        if not self.parts:
            raise SimError("a Reply needs at least one part")
        for part in self.parts:
            if isinstance(part, str) and not part.strip():
                raise SimError("a Reply's text parts must not be empty")


Entry = str | ToolCall | Reply


@dataclass(frozen=True, slots=True)
class Say:
    """A planned message item."""

    text: str


@dataclass(frozen=True, slots=True)
class Call:
    """A planned function call item: what to stream, and what to say once answered."""

    name: str
    arguments: str
    answer: str


Planned = Say | Call


def check_entry(entry: object) -> None:
    """Raise SimError unless ``entry`` is a usable script entry."""
    if isinstance(entry, str):
        if not entry.strip():
            raise SimError("the reply script needs non-empty texts")
    elif not isinstance(entry, ToolCall | Reply):
        raise SimError(f"a script entry is a str, ToolCall or Reply, not {entry!r}")


def plan(entry: Entry, tools: Iterable[Mapping[str, Any]], tool_choice: Any) -> list[Planned]:
    """The output items ``entry`` makes in a session declaring ``tools``; empty (the entry
    is skipped) when it holds calls and none of them can be made."""
    declared = {t.get("name"): t for t in tools if t.get("type", "function") == "function"}
    parts = entry.parts if isinstance(entry, Reply) else (entry,)
    planned: list[Planned] = []
    wanted = 0
    for part in parts:
        if isinstance(part, str):
            planned.append(Say(part))
            continue
        wanted += 1
        if tool_choice == "none" or not declared:
            continue
        name = part.name if part.name is not None else next(iter(declared))
        tool = declared.get(name)
        if tool is None:
            continue
        arguments = part.arguments
        if arguments is None:
            arguments = json.dumps(example_value(tool.get("parameters") or {}))
        assert isinstance(arguments, str)
        planned.append(Call(str(name), arguments, part.answer))
    if wanted and not any(isinstance(p, Call) for p in planned):
        return []
    return planned


def pinned_text(instructions: str | None) -> str | None:
    """The text a ``Say: TEXT`` line of ``instructions`` pins, if any."""
    match = _SAY.search(instructions or "")
    return match.group(1) if match else None


def answer_text(call: Call, output: str) -> str:
    """What the assistant says once ``call``'s output came back."""
    short = output if len(output) <= _OUTPUT_CHARS else output[:_OUTPUT_CHARS] + "..."
    return call.answer.replace("{output}", short).replace("{name}", call.name)


def example_value(schema: Any) -> Any:
    """A value that fits a (simple) JSON schema: enough for a scripted call's arguments."""
    if not isinstance(schema, Mapping):
        return "example"
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        required = schema.get("required") or list(properties)
        return {key: example_value(properties.get(key)) for key in required}
    return {"integer": 1, "number": 1.0, "boolean": True, "array": [], "null": None}.get(
        str(kind), "example"
    )


def parse_script(text: str) -> tuple[Entry, ...]:
    """A script from text: see the module docstring."""
    entries: list[Entry] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = [_parse_part(part.strip(), number) for part in line.split(" | ")]
        entries.append(parts[0] if len(parts) == 1 else Reply(tuple(parts)))
    if not entries:
        raise SimError("the script has no entries")
    return tuple(entries)


def _parse_part(part: str, number: int) -> Part:
    match = _CALL.match(part)
    if not match:
        if not part:
            raise SimError(f"script line {number}: an empty part")
        return part
    name, arguments, answer = match.groups()
    try:
        return ToolCall(
            None if name == "*" else name,
            arguments,
            answer.strip() if answer and answer.strip() else DEFAULT_ANSWER,
        )
    except SimError as exc:
        raise SimError(f"script line {number}: {exc}") from None
