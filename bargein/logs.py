"""bargein's logging: silent unless the host program asks, structured when it does.

A library must not print. Every bargein logger is a structlog logger over a stdlib logger
under ``bargein`` (``bargein.core.conversation``, ...), and that tree ends in a
``NullHandler``: with no logging configured nothing reaches the terminal, and what the host
configures with the standard library (``logging.basicConfig``, its own handlers, levels per
logger) applies to bargein like to any library. structlog's own configuration is never
touched, so a host that uses structlog keeps its setup.

- **Cheap when off.** Each call asks the stdlib logger ``isEnabledFor`` before any
  processing, so a disabled debug line per audio frame costs a method call, not a
  formatted string. Callers that build costly fields guard them with ``log.enabled(...)``.
- **Secrets never leave.** Every event passes through ``redact_secrets`` first, whatever the
  host's handlers: a key echoed by a server in an error message is masked before any
  handler sees it.
- **Readable anywhere.** A record's message is the event in logfmt (``transition
  source=listening dest=responding``), so a plain ``%(message)s`` handler shows it whole;
  the event's fields also ride on the record (``record.bargein``) for structured handlers.
- **Turn it on without clobbering.** ``enable("console" | "json", level)`` adds one handler
  to the ``bargein`` logger (and stops propagation while it is there, so no line is
  printed twice); ``disable(handler)`` takes it away again. The host's root handlers, and
  every other logger, are left alone. A failed write (a closed pipe) is dropped silently:
  logging can never end a conversation.
- **Bounded.** ``Repeats`` summarises a flood of one line: a server refusing every
  append (an error per 20 ms) logs its first error, then one line per ``every_s`` seconds
  saying how many were held back (``repeated=K``), not 50 lines a second.
- **Testable.** ``capture()`` collects bargein's events as dicts, like structlog's
  ``capture_logs`` (``bargein.testing.capture_logs`` is the same function).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Hashable, Iterator, MutableMapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import structlog
from structlog._base import BoundLoggerBase

from bargein.redaction import redact_secrets

ROOT = "bargein"
"""The stdlib logger every bargein logger sits under."""

logging.getLogger(ROOT).addHandler(logging.NullHandler())

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["console", "json"]


def _logfmt(event_dict: MutableMapping[str, Any]) -> str:
    fields = " ".join(f"{key}={value!r}" if isinstance(value, str) and " " in value
                      else f"{key}={value}"
                      for key, value in event_dict.items() if key != "event")
    event = str(event_dict.get("event", ""))
    return f"{event} {fields}" if fields else event


def _to_stdlib(
    logger: object, method_name: str, event_dict: MutableMapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The last processor: the stdlib call's arguments (message, exc_info, the fields)."""
    exc_info = event_dict.pop("exc_info", None)
    return (_logfmt(event_dict),), {
        "exc_info": exc_info,
        "extra": {"bargein": dict(event_dict)},
        "stacklevel": 4,
    }


_PROCESSORS: list[Any] = [redact_secrets, _to_stdlib]


class Logger(BoundLoggerBase):
    """A structlog logger over a stdlib one; a level the stdlib logger ignores costs nothing."""

    _logger: logging.Logger

    def enabled(self, level: LogLevel) -> bool:
        """Whether a line at ``level`` would be handled (for fields that cost to build)."""
        return self._logger.isEnabledFor(_LEVELS[level])

    def _log(self, level: int, method: str, event: str, kw: dict[str, Any]) -> None:
        args, kwargs = self._process_event(method, event, kw)
        self._logger.log(level, *args, **kwargs)

    # Each method asks the stdlib logger first, inline: the per-frame debug lines are on
    # the audio path, and a disabled one must cost no more than this check.
    def debug(self, event: str, **kw: Any) -> None:
        if self._logger.isEnabledFor(logging.DEBUG):
            self._log(logging.DEBUG, "debug", event, kw)

    def info(self, event: str, **kw: Any) -> None:
        if self._logger.isEnabledFor(logging.INFO):
            self._log(logging.INFO, "info", event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        if self._logger.isEnabledFor(logging.WARNING):
            self._log(logging.WARNING, "warning", event, kw)

    def error(self, event: str, **kw: Any) -> None:
        if self._logger.isEnabledFor(logging.ERROR):
            self._log(logging.ERROR, "error", event, kw)

    def exception(self, event: str, **kw: Any) -> None:
        if self._logger.isEnabledFor(logging.ERROR):
            kw.setdefault("exc_info", True)
            self._log(logging.ERROR, "error", event, kw)


def get_logger(name: str) -> Logger:
    """The logger for module ``name`` (which must be under ``bargein``)."""
    return Logger(logging.getLogger(name), _PROCESSORS, {})


class _Formatter(logging.Formatter):
    """bargein's records as structlog renders them: console text or one JSON object a line."""

    def __init__(self, fmt: LogFormat) -> None:
        super().__init__()
        self._render: Any = (
            structlog.processors.JSONRenderer()
            if fmt == "json"
            else structlog.dev.ConsoleRenderer(colors=False)
        )

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "bargein", None)
        event: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if isinstance(fields, dict):
            event.update(fields)
        else:  # a library's own stdlib record (websockets')
            event["event"] = record.getMessage()
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        rendered: str = self._render(None, record.levelname.lower(), redact_secrets(
            None, "", event))
        return rendered


class _Handler(logging.StreamHandler[TextIO]):
    """A stream handler whose failed writes are dropped without a word."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def enable(
    fmt: LogFormat = "console", level: LogLevel = "info", stream: TextIO | None = None
) -> logging.Handler:
    """Show bargein's logs at ``level`` and above on ``stream`` (default: stderr).

    Touches only the ``bargein`` logger: adds a handler, sets its level and stops its
    records propagating to the root (so a host's handlers do not print them twice). Returns
    the handler, for ``disable``.
    """
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(_Formatter(fmt))  # it masks secrets itself, tracebacks included
    root = logging.getLogger(ROOT)
    root.addHandler(handler)
    root.setLevel(_LEVELS[level])
    root.propagate = False
    return handler


def disable(handler: logging.Handler) -> None:
    """Undo ``enable``: remove its handler; the host's setup applies again."""
    root = logging.getLogger(ROOT)
    root.removeHandler(handler)
    if not any(not isinstance(h, logging.NullHandler) for h in root.handlers):
        root.setLevel(logging.NOTSET)
        root.propagate = True


class Repeats:
    """Rate-limits log lines of one kind: ``seen(key)`` says whether to write this one and
    how many of ``key`` were held back since the last written (``0`` for the first).

    The first of a key is written; the next ones within ``every_s`` seconds are counted,
    not written; the first after that is written with the count, and starts the next
    window. So a flood gives one line per ``every_s`` seconds. ``clock`` (seconds) is
    ``time.monotonic`` unless a test runs it on a virtual one. At most ``max_keys`` keys
    are remembered (the oldest forgotten), so an endless variety costs bounded memory.
    """

    __slots__ = ("_clock", "_every_s", "_keys", "_max_keys")

    def __init__(self, every_s: float = 5.0, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 256) -> None:
        self._every_s = every_s
        self._clock = clock
        self._max_keys = max_keys
        self._keys: dict[Hashable, list[float]] = {}
        """key -> [time the last line was written, lines held back since]."""

    def seen(self, key: Hashable) -> tuple[bool, int]:
        now = self._clock()
        entry = self._keys.get(key)
        if entry is None:
            if len(self._keys) >= self._max_keys:
                del self._keys[next(iter(self._keys))]
            self._keys[key] = [now, 0]
            return True, 0
        if now - entry[0] < self._every_s:
            entry[1] += 1
            return False, 0
        held = int(entry[1])
        entry[0], entry[1] = now, 0
        return True, held


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.entries: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "bargein", None)
        entry = dict(fields) if isinstance(fields, dict) else {"event": record.getMessage()}
        entry["log_level"] = record.levelname.lower()
        entry["logger"] = record.name
        self.entries.append(entry)


@contextlib.contextmanager
def capture() -> Iterator[list[dict[str, Any]]]:
    """Every bargein log event while the block runs, at every level, as dicts (``event``,
    ``log_level``, ``logger`` and the event's fields), after redaction; nothing is printed.
    The same shape as ``structlog.testing.capture_logs``, for bargein's loggers."""
    root = logging.getLogger(ROOT)
    handler = _Capture()
    saved = root.level, root.propagate
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    root.propagate = False
    try:
        yield handler.entries
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        root.propagate = saved[1]
