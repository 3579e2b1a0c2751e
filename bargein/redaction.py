"""Masking secrets in whatever bargein prints or logs.

``redact`` masks every key an ``ApiKey`` was built from (whatever its shape: Azure keys are
plain hex) and anything shaped like a key or an auth header; ``redact_known`` only the former
(the codec applies it to transcripts, the server's words). ``redact_secrets`` does it to a
structlog event (every bargein log line passes through it, see ``bargein.logs``), and
``RedactingFilter`` to a stdlib record (for websockets' own loggers).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, MutableMapping
from typing import Any, Final

MASK: Final = "***"

_known_keys: set[str] = set()
"""Every key value wrapped in this process, scrubbed verbatim wherever it appears."""

KEY_VARIABLES: Final = {"openai": "OPENAI_API_KEY", "azure": "AZURE_OPENAI_API_KEY"}
"""Where bargein reads keys from. Their values are known keys too, even in a process that
never wraps one (a loopback endpoint gets no key, yet its server may echo one)."""

_PATTERNS: Final = (
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=\-]{8,}"),
    re.compile(
        r"(?i)((?:authorization|api[-_]?key|x-api-key)['\"]?\s*[:=,]\s*['\"]?(?:bearer\s+)?)"
        r"[^\s'\",;)}\]]+"
    ),
)
_SECRET_FIELD: Final = re.compile(r"(?i)^(authorization|api[-_]?key|x-api-key|secret|token)$")


def remember(secret: str) -> None:
    """Mask ``secret`` verbatim from now on, wherever it appears."""
    _known_keys.add(secret)


def _keys() -> set[str]:
    """The known keys: those wrapped in an ``ApiKey``, and the environment's."""
    found = _known_keys
    for name in KEY_VARIABLES.values():
        value = os.environ.get(name, "").strip()
        if len(value) >= 8 and value not in found:
            found = found | {value}
    return found


def redact_known(text: str) -> str:
    """``text`` with every known key masked, and nothing else touched: for what a server
    says (a transcript), where a key-shaped word may be the conversation's own content but
    the user's own key, echoed back, must not reach a program or a terminal."""
    for key in _keys():
        if key in text:
            text = text.replace(key, MASK)
    return text


def redact(text: str) -> str:
    """``text`` with every known key and anything shaped like a key or auth header masked."""
    for key in _keys():
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
