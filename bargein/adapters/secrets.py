"""The API key as a value that never prints itself.

A key must never reach a log line, a repr, an exception message or a terminal. ``ApiKey``
hides its value everywhere except ``reveal()``, which only the transport calls to build the
handshake headers, and registers it with ``bargein.redaction``, which masks it verbatim in
everything bargein prints or logs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

from bargein.errors import ApiKeyError
from bargein.redaction import KEY_VARIABLES, MASK, remember

ENV_VARS: Final = KEY_VARIABLES


class ApiKey:
    """A secret API key; its ``repr`` and ``str`` never show it."""

    __slots__ = ("__value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ApiKeyError("the API key is empty")
        if any(char.isspace() or not char.isprintable() for char in value):
            raise ApiKeyError("the API key contains whitespace or control characters")
        self.__value = value
        remember(value)

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

