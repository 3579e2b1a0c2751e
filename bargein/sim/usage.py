"""Token counts for ``response.done``'s ``usage`` and the ``rate_limits.updated`` event.

The simulator has no tokenizer, so counts are honest estimates from lengths, at the rates
upstream documents: text about 4 characters a token; the user's audio 1 token per 100 ms;
the assistant's audio 1 token per 50 ms. A response's input is its instructions, its
tools and the conversation it sees (an assistant's audio counted as far as it was heard
when truncated); the part of it that the previous response on the connection also read is
reported as cached, in steps of 64 tokens from 1024 tokens on, as upstream caches prompts.
Rate limits are counted per connection over a minute window.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from bargein.sim.items import Item
from bargein.sim.session_fields import Api

CHARS_PER_TOKEN: Final = 4
USER_AUDIO_MS_PER_TOKEN: Final = 100
ASSISTANT_AUDIO_MS_PER_TOKEN: Final = 50
_CACHE_MIN: Final = 1024
_CACHE_STEP: Final = 64
REQUESTS_PER_MINUTE: Final = 5_000
TOKENS_PER_MINUTE: Final = 800_000


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True, slots=True)
class Tokens:
    """Text and audio tokens."""

    text: int = 0
    audio: int = 0

    @property
    def total(self) -> int:
        return self.text + self.audio

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(self.text + other.text, self.audio + other.audio)


def item_tokens(item: Item) -> Tokens:
    """What ``item`` weighs in a response's input (assistant audio as far as it was heard)."""
    audio = 0
    if item.input_ms:
        audio += math.ceil(item.input_ms / USER_AUDIO_MS_PER_TOKEN)
    heard = item.heard_ms
    spoken = item.audio_ms if heard is None else min(heard, item.audio_ms)
    audio += math.ceil(spoken / ASSISTANT_AUDIO_MS_PER_TOKEN)
    return Tokens(text_tokens(item.text()), audio)


def input_tokens(
    instructions: str, tools: Iterable[dict[str, Any]], items: Iterable[Item]
) -> Tokens:
    """A response's input: instructions, tool schemas and the conversation's items."""
    listed = list(tools)
    total = Tokens(text_tokens(instructions) + (text_tokens(json.dumps(listed)) if listed else 0))
    for item in items:
        total += item_tokens(item)
    return total


def output_tokens(text: str, audio_ms: int) -> Tokens:
    """What a response produced: its words (transcripts, texts, arguments) and audio."""
    return Tokens(text_tokens(text), math.ceil(audio_ms / ASSISTANT_AUDIO_MS_PER_TOKEN))


def cached(previous: int, current: Tokens) -> Tokens:
    """The part of ``current`` input a previous input of ``previous`` tokens cached."""
    shared = min(previous, current.total)
    if shared < _CACHE_MIN:
        return Tokens()
    shared -= shared % _CACHE_STEP
    text = min(shared, current.text)
    return Tokens(text, shared - text)


def render_usage(inp: Tokens, out: Tokens, hit: Tokens, api: Api) -> dict[str, Any]:
    """The ``usage`` object of ``response.done``, as ``api`` declares it."""
    details: dict[str, Any] = {
        "text_tokens": inp.text,
        "audio_tokens": inp.audio,
        "cached_tokens": hit.total,
    }
    if api == "ga":
        details["image_tokens"] = 0
        details["cached_tokens_details"] = {
            "text_tokens": hit.text,
            "audio_tokens": hit.audio,
            "image_tokens": 0,
        }
    return {
        "total_tokens": inp.total + out.total,
        "input_tokens": inp.total,
        "output_tokens": out.total,
        "input_token_details": details,
        "output_token_details": {"text_tokens": out.text, "audio_tokens": out.audio},
    }


@dataclass
class RateLimits:
    """Requests and tokens used in the current minute on one connection."""

    window_start: float = field(default_factory=time.monotonic)
    requests: int = 0
    tokens: int = 0

    def spend(self, tokens: int) -> dict[str, Any]:
        """Count one response of ``tokens``; the ``rate_limits.updated`` event's body."""
        now = time.monotonic()
        if now - self.window_start >= 60.0:
            self.window_start, self.requests, self.tokens = now, 0, 0
        self.requests += 1
        self.tokens += tokens
        reset = round(max(0.0, 60.0 - (now - self.window_start)), 3)
        return {
            "type": "rate_limits.updated",
            "rate_limits": [
                {
                    "name": "requests",
                    "limit": REQUESTS_PER_MINUTE,
                    "remaining": max(0, REQUESTS_PER_MINUTE - self.requests),
                    "reset_seconds": reset,
                },
                {
                    "name": "tokens",
                    "limit": TOKENS_PER_MINUTE,
                    "remaining": max(0, TOKENS_PER_MINUTE - self.tokens),
                    "reset_seconds": reset,
                },
            ],
        }
