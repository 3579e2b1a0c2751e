"""The API key as a value that never prints itself, and log scrubbers for anything key-like.

A key must never reach a log line, a repr, an exception message or a terminal. ``ApiKey``
hides its value everywhere except ``reveal()``, which only the transport calls to build the
handshake headers. ``redact_secrets`` (structlog) and ``RedactingFilter`` (stdlib logging,
for websockets' own logger) scrub strings that look like keys or auth headers, and every
key an ``ApiKey`` was built from, whatever its shape (Azure keys are plain hex).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, MutableMapping
from typing import Any, Final

from bargein.errors import ApiKeyError

MASK: Final = "***"

ENV_VARS: Final = {"openai": "OPENAI_API_KEY", "azure": "AZURE_OPENAI_API_KEY"}

_known_keys: set[str] = set()
"""Every key value wrapped in this process, scrubbed verbatim wherever it appears."""

_PATTERNS: Final = (
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=\-]{8,}"),
    re.compile(
        r"(?i)((?:authorization|api[-_]?key|x-api-key)['\"]?\s*[:=,]\s*['\"]?(?:bearer\s+)?)"
        r"[^\s'\",;)}\]]+"
    ),
)
_SECRET_FIELD: Final = re.compile(r"(?i)^(authorization|api[-_]?key|x-api-key|secret|token)$")

class ApiKey:
    """A secret API key; its ``repr`` and ``str`` never show it."""

    __slots__ = ("__value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ApiKeyError("the API key is empty")
        if any(char.isspace() or not char.isprintable() for char in value):
            raise ApiKeyError("the API key contains whitespace or control characters")
        self.__value = value
        _known_keys.add(value)

    @classmethod
    def from_env(
        cls, name: str = ENV_VARS["openai"], environ: Mapping[str, str] | None = None
    ) -> ApiKey:
        """Read the key from environment variable ``name``."""
        value = (os.environ if environ is None else environ).get(name, "")
        if not value.strip():
            raise ApiKeyError(f"no API key: set the environment variable {name}")
        return cls(value.strip())

    def reveal(self) -> str:
        """The key itself, for an authentication header and nothing else."""
        return self.__value

    def __repr__(self) -> str:
        return f"ApiKey({MASK})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("an ApiKey cannot be pickled")


def redact(text: str) -> str:
    """``text`` with every known key and anything shaped like a key or auth header masked."""
    for key in _known_keys:
        if key in text:
            text = text.replace(key, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda match: (match.group(1) if match.groups() else "") + MASK, text)
    return text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes):
        return redact(value.decode("utf-8", "replace")).encode()
    if isinstance(value, Mapping):
        return {
            key: MASK if isinstance(key, str) and _SECRET_FIELD.match(key) else _scrub(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(_scrub(item) for item in value)
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}")
    return value


def redact_secrets(
    logger: object, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask secrets in every value; place it after ``format_exc_info``."""
    for key, value in list(event_dict.items()):
        event_dict[key] = MASK if _SECRET_FIELD.match(key) else _scrub(value)
    return event_dict


class RedactingFilter(logging.Filter):
    """stdlib logging filter that masks secrets in a record's message (websockets' logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
