"""Flat over hours, in the core: what it keeps of settled responses and barge-ins is bounded
(counted with ``tracemalloc`` on a fed event sequence, never timed)."""

from __future__ import annotations

import tracemalloc

from bargein.core import Conversation
from bargein.core import events as e
from bargein.core.conversation import GATE_KEEP, KEEP_INTERRUPTIONS
from bargein.core.recent import RecentIds, forget_oldest
from bargein.testing import feed

DELTA = b"\x01\x00" * 2400  # 100 ms


def _cycles(conv: Conversation, start: int, count: int) -> None:
    """``count`` turns: a reply heard whole, then a reply cut off by a barge-in 300 ms in
    (flushed, truncated, its late deltas and done dropped by the gate)."""
    for n in range(start, start + count):
        whole, cut = f"r{n}a", f"r{n}b"
        feed(conv, e.SpeechStarted(f"u{n}a", 0), e.SpeechStopped(f"u{n}a", 0),
             e.ResponseCreated(whole), e.OutputItemAdded(whole, f"i{n}a"),
             *[e.AudioDelta(whole, f"i{n}a", DELTA) for _ in range(3)],
             e.ResponseDone(whole, "completed"), e.PlaybackFinished({f"i{n}a": 300.0}),
             e.SpeechStarted(f"u{n}b", 0), e.SpeechStopped(f"u{n}b", 0),
             e.ResponseCreated(cut), e.OutputItemAdded(cut, f"i{n}b"),
             *[e.AudioDelta(cut, f"i{n}b", DELTA) for _ in range(3)],
             e.SpeechStarted(f"u{n}c", 0), e.PlaybackFlushed({f"i{n}b": 300.0}),
             e.AudioDelta(cut, f"i{n}b", DELTA), e.SpeechStopped(f"u{n}c", 0),
             e.ResponseDone(cut, "cancelled", "turn_detected"))


def test_thousands_of_replies_and_barge_ins_keep_the_core_bounded() -> None:
    tracemalloc.start()  # from the start: what a bound lets go of is counted as freed
    try:
        conv = Conversation()
        feed(conv, e.SessionReady())
        _cycles(conv, 0, GATE_KEEP + 50)  # every bound is full from here on
        assert conv.state == "listening"
        before = tracemalloc.get_traced_memory()[0]
        _cycles(conv, GATE_KEEP + 50, 1000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert conv.state == "listening"
    assert conv.stats.interruptions == GATE_KEEP + 1050
    assert len(conv.interruptions) == KEEP_INTERRUPTIONS
    assert conv.interruptions[-1].settlements[0].item_id == f"i{GATE_KEEP + 1049}b"
    assert conv.stats.dropped_deltas == GATE_KEEP + 1050  # each cut reply's late delta
    # 1000 more turns (2000 replies, 1000 barge-ins) in a few kilobytes: unbounded, the
    # gate's ids and the barge-in records alone grew by over 500 KB
    assert grown < 64_000, grown


def test_recent_ids_forget_the_oldest_and_re_adding_makes_an_id_new() -> None:
    ids = RecentIds(3)
    ids |= {"a"}
    for x in ("b", "c", "a", "d"):
        ids.add(x)
    assert list(ids) == ["c", "a", "d"] and "b" not in ids and len(ids) == 3
    ids.discard("a")
    ids.discard("zz")
    assert list(ids) == ["c", "d"]


def test_forget_oldest_keeps_the_newest_entries() -> None:
    kept = {k: k.upper() for k in "abcde"}
    forget_oldest(kept, 2)
    assert kept == {"d": "D", "e": "E"}
    forget_oldest(kept, 5)
    assert kept == {"d": "D", "e": "E"}
