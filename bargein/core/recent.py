"""Bounded memories: what a long conversation keeps of what has settled.

A conversation of hours settles thousands of responses, items and barge-ins. What the core
and the session keep of them after they settle (the stale-audio gate's ids, each response's
figures, each item's final transcript, the barge-in records) is only ever asked about while
it is recent, so each keeps the most recent ``keep`` entries and forgets the oldest. The
bounds are far beyond what a live exchange can reach back to (a server does not send a delta
for the thousandth response before the latest), and they keep memory and per-event cost flat
over hours (``bench/bench_long.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableSet
from typing import Any


def forget_oldest(mapping: dict[Any, Any], keep: int) -> None:
    """Drop ``mapping``'s oldest entries (in insertion order) beyond the newest ``keep``."""
    while len(mapping) > keep:
        del mapping[next(iter(mapping))]


class RecentIds(MutableSet[str]):
    """A set of ids that remembers only the ``keep`` added last (adding one again makes it
    the newest). Membership is a dict lookup, as cheap as a set's."""

    __slots__ = ("_ids", "_keep")

    def __init__(self, keep: int) -> None:
        self._ids: dict[str, None] = {}
        self._keep = keep

    def __contains__(self, x: object) -> bool:
        return x in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, value: str) -> None:
        ids = self._ids
        ids.pop(value, None)
        ids[value] = None
        if len(ids) > self._keep:
            del ids[next(iter(ids))]

    def discard(self, value: str) -> None:
        self._ids.pop(value, None)

    def __repr__(self) -> str:
        return f"RecentIds({len(self._ids)} of at most {self._keep})"
