"""Tools: plain Python functions the assistant may call, and how a call is run.

``tool(fn)`` wraps a function, sync or async, as a ``Tool``: its name, its description (the
docstring's first paragraph) and the JSON schema of its parameters, derived from the type
hints (``str``, ``int``, ``float``, ``bool``, ``Literal[...]``, ``list[...]``, and any of
them ``| None``; a parameter with a default is optional), or given explicitly. A bare
function in ``talk(tools=[...])`` is wrapped with the defaults.

What happens to a call when the user barges in over the reply that made it is the tool's
``on_barge_in``:

- ``"cancel"`` (the default): the call is cancelled; the model is told so instead of its
  output (``{"cancelled": ...}``, placed right after the call in the server's conversation,
  with no follow-up reply), and a result that comes later is dropped (and logged). An async
  function is cancelled; a sync one runs on in its daemon thread, its result dropped
  (Python cannot stop a thread; a daemon thread never holds the program's exit).
- ``"finish"``: the call runs to its end and its output is sent, but no follow-up reply is
  asked for: the user is speaking, and the reply to them will see the output.
- ``"hold"``: the call runs to its end, but its output is held while the user has the
  floor and the reply to them plays; once that reply is done and the conversation rests,
  the output is sent and a follow-up reply asked for, so the model takes the result up
  after it has answered the interruption (a booking confirmed after "wait, one more thing").

A call runs at most ``timeout_s`` (30 s); a function that raises or runs out of time answers
the model with ``{"error": "..."}``, and a warning says which and why: no call stays in
progress. The rules the core keeps (``bargein.core.tool_calls``): a call whose reply was
interrupted never runs (when its arguments were complete, the model is told it did not run:
``{"not_run": ...}``, right after the call); the function's output is sent only for a call
that is open; every call ends (output, cancelled, or the connection lost), and every whole
call the server keeps gets exactly one output, except after a lost connection (the server
session is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import threading
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bargein.adapters.session_config import ToolSpec
from bargein.errors import ToolError
from bargein.logs import get_logger
from bargein.redaction import redact

log = get_logger(__name__)

BargeInPolicy = Literal["cancel", "finish", "hold"]
TIMEOUT_S = 30.0

_SCALARS: Mapping[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the assistant may call (see the module's note); make one with ``tool()``."""

    fn: Callable[..., Any]
    name: str
    description: str
    parameters: Mapping[str, Any]
    on_barge_in: BargeInPolicy = "cancel"
    timeout_s: float = TIMEOUT_S
    _is_async: bool = field(default=False, repr=False)

    @property
    def spec(self) -> ToolSpec:
        """What the session declares to the server, and the policy the core keeps."""
        return ToolSpec(self.name, self.description, dict(self.parameters), self.on_barge_in)

    async def run(self, arguments: str) -> str:
        """The output to send for a call with ``arguments`` (JSON text): the function's
        return value as JSON (a ``str`` as it is), or ``{"error": ...}``."""
        try:
            kwargs = json.loads(arguments) if arguments.strip() else {}
            if not isinstance(kwargs, dict):
                raise ValueError("the arguments are not a JSON object")
        except ValueError as exc:
            return self._failed("bad_arguments", f"arguments are not valid JSON: {exc}")
        try:
            call = self.fn(**kwargs) if self._is_async else _in_daemon_thread(self.fn, kwargs)
            result = await asyncio.wait_for(call, self.timeout_s)
        except TimeoutError:
            return self._failed("timed_out", f"no result within {self.timeout_s:g} s")
        except TypeError as exc:  # arguments the function does not take
            return self._failed("bad_arguments", str(exc))
        except Exception as exc:  # the program's function failed: the model is told
            return self._failed("raised", f"{type(exc).__name__}: {exc}")
        if isinstance(result, str):
            return result
        try:
            return json.dumps(result)
        except (TypeError, ValueError):
            return json.dumps(str(result))

    def _failed(self, why: str, detail: str) -> str:
        detail = redact(detail)
        log.warning("tool_failed", tool=self.name, why=why, detail=detail)
        return json.dumps({"error": f"{self.name} failed: {detail}"})


def _in_daemon_thread(fn: Callable[..., Any], kwargs: dict[str, Any]) -> asyncio.Future[Any]:
    """``fn(**kwargs)`` on a daemon thread of its own: a function that hangs is abandoned at
    its timeout and never holds the program's exit (the default executor's threads would:
    ``asyncio.run`` waits for them)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> None:
        try:
            result = fn(**kwargs)
        except BaseException as exc:  # handed to the awaiting task, which reports it
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(settle, None, exc)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, None)

    name = getattr(fn, "__name__", "call")
    threading.Thread(target=work, name=f"bargein-tool-{name}", daemon=True).start()
    return future


def tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    on_barge_in: BargeInPolicy = "cancel",
    timeout_s: float = TIMEOUT_S,
) -> Tool:
    """``fn`` as a ``Tool``; a ``ToolError`` when its schema cannot be derived."""
    if on_barge_in not in typing.get_args(BargeInPolicy):
        raise ToolError(
            f"on_barge_in must be 'cancel', 'finish' or 'hold', got {on_barge_in!r}")
    if not timeout_s > 0:
        raise ToolError(f"timeout_s must be positive, got {timeout_s!r}")
    if not callable(fn):
        raise ToolError(f"a tool is a function, not {type(fn).__name__}")
    tool_name = name or getattr(fn, "__name__", "")
    if not tool_name or not tool_name.replace("_", "a").replace("-", "a").isalnum():
        raise ToolError(f"a tool needs a name of letters, digits, _ and -, got {tool_name!r}")
    doc = inspect.getdoc(fn) or ""
    return Tool(
        fn=fn,
        name=tool_name,
        description=description if description is not None else doc.split("\n\n")[0],
        parameters=parameters if parameters is not None else _schema(fn, tool_name),
        on_barge_in=on_barge_in,
        timeout_s=timeout_s,
        _is_async=inspect.iscoroutinefunction(fn),
    )


def tools_from(items: Iterable[Tool | Callable[..., Any]]) -> tuple[Tool, ...]:
    """Tools and bare functions as tools; two of one name are refused."""
    made = tuple(item if isinstance(item, Tool) else tool(item) for item in items)
    names = [t.name for t in made]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise ToolError(f"two tools are named {', '.join(doubled)}")
    return made


def _schema(fn: Callable[..., Any], tool_name: str) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(fn)
        signature = inspect.signature(fn)
    except (NameError, TypeError, ValueError) as exc:
        raise ToolError(f"the parameters of {tool_name} cannot be read: {exc}") from None
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise ToolError(f"{tool_name}: parameter {param.name} must be passable by name")
        if param.name not in hints:
            raise ToolError(f"{tool_name}: parameter {param.name} has no type hint")
        properties[param.name] = _type_schema(hints[param.name], f"{tool_name}.{param.name}")
        if param.default is param.empty:
            required.append(param.name)
    return {"type": "object", "properties": properties, "required": required}


def _type_schema(hint: Any, where: str) -> dict[str, Any]:
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal and args and all(isinstance(a, (str, int)) for a in args):
        return {"type": "string" if isinstance(args[0], str) else "integer", "enum": list(args)}
    if origin is list and len(args) == 1:
        return {"type": "array", "items": _type_schema(args[0], where)}
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _type_schema(rest[0], where)
    raise ToolError(f"{where}: no JSON schema for {hint!r} (give parameters= explicitly)")
