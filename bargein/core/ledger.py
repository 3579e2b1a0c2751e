"""What of each assistant item was received and what of it the user heard.

The truncation rule lives here, in one function, because it is the point of the whole
library: ``audio_end_ms`` is what was heard, never more than what was received; nothing
heard means the item is deleted instead; an item that finished playing is left alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from bargein.core.pcm import BYTES_PER_MS

Action = Literal["truncate", "delete", "keep"]


@dataclass(slots=True)
class ItemPlayback:
    """Playback bookkeeping for one assistant item."""

    item_id: str
    response_id: str
    received_bytes: int = 0
    heard_ms: float = 0.0
    complete: bool = False
    """All its audio has arrived (its response is done)."""
    settled: bool = False
    """Truncated, deleted or found whole: it is never touched again."""

    @property
    def received_ms(self) -> float:
        return self.received_bytes / BYTES_PER_MS

    @property
    def played_out(self) -> bool:
        return self.complete and self.heard_ms >= self.received_ms


@dataclass(frozen=True, slots=True)
class Settlement:
    """What an interruption did to one item."""

    item_id: str
    response_id: str
    received_ms: float
    heard_ms: float
    action: Action
    audio_end_ms: int


def settle(item: ItemPlayback, heard_ms: float) -> Settlement:
    """Decide truncate, delete or keep for an item whose playback was cut off."""
    heard = min(max(heard_ms, item.heard_ms), item.received_ms)
    item.heard_ms = heard
    item.settled = True
    end_ms = math.floor(heard)
    action: Action
    if item.played_out:
        action = "keep"
    elif end_ms <= 0:
        action, end_ms = "delete", 0
    else:
        action = "truncate"
    return Settlement(item.item_id, item.response_id, item.received_ms, heard, action, end_ms)


class PlaybackLedger:
    """Per-item playback records, keyed by item id."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: dict[str, ItemPlayback] = {}

    def item(self, item_id: str, response_id: str) -> ItemPlayback:
        entry = self.items.get(item_id)
        if entry is None:
            entry = self.items[item_id] = ItemPlayback(item_id, response_id)
        return entry

    def record_heard(self, heard_ms: Mapping[str, float]) -> None:
        """Take the speaker's report; heard never goes back and never passes received."""
        for item_id, ms in heard_ms.items():
            entry = self.items.get(item_id)
            if entry is not None and ms > entry.heard_ms:
                entry.heard_ms = min(ms, entry.received_ms)

    def drained(self) -> None:
        """The speaker has played all it was given: all received audio was heard."""
        for entry in self.items.values():
            entry.heard_ms = entry.received_ms

    def complete_response(self, response_id: str) -> None:
        for entry in self.items.values():
            if entry.response_id == response_id:
                entry.complete = True

    def unsettled(self, response_ids: Iterable[str]) -> list[ItemPlayback]:
        wanted = set(response_ids)
        return [e for e in self.items.values() if e.response_id in wanted and not e.settled]

    def open_responses(self) -> set[str]:
        """Responses with an item that has not been heard to its end or settled."""
        return {e.response_id for e in self.items.values() if not e.settled and not e.played_out}

    def forget_finished(self) -> None:
        """Drop records that can no longer matter, so a long conversation stays small."""
        self.items = {
            k: e for k, e in self.items.items() if not (e.settled or e.played_out)
        }
