"""Flat over hours, in the session: its per-response figures and its items' transcripts and
heard counts keep the most recent ``KEEP_RESPONSES`` (made small here, so the bound is
reached in a few replies; the bench ``bench/bench_long.py`` measures hours)."""

from __future__ import annotations

import pytest

from bargein import session as session_module
from bargein.adapters.audio.playout import KEEP_SETTLED
from bargein.core import events as e
from bargein.session import Observation, Session, Transcript
from bargein.testing import MemoryServer, MemorySink, MemorySource, VirtualTime, reply

REPLIES = KEEP_SETTLED + 8


async def test_a_long_conversation_keeps_the_figures_of_its_latest_responses(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "KEEP_RESPONSES", 3)
    time, server = VirtualTime(), MemoryServer()
    source, sink = MemorySource(time.clock, b""), MemorySink(time.clock, keep_ms=1000)
    session = Session(server.transport, source, sink, clock=time.now, sleep=time.sleep)
    seen: list[Observation] = []
    session.subscribe(seen.append)
    async with session:
        await server.emit(e.SessionReady(interrupt_response=True))
        for n in range(REPLIES):
            await server.emit(e.SpeechStarted(f"u{n}", 0), e.SpeechStopped(f"u{n}", 0))
            await time.advance(100)
            await server.emit(*reply(f"resp_{n}", f"item_{n}", 300, transcript=f"Reply {n}."))
            await time.advance(500)
            assert session.conversation.state == "listening"
        assert list(session.figures) == [f"resp_{n}" for n in range(REPLIES - 3, REPLIES)]
        latest = session.figures[f"resp_{REPLIES - 1}"]
        assert (latest.status, latest.items, latest.heard_ms) == (
            "completed", [f"item_{REPLIES - 1}"], 300.0)
        assert len(session._final_texts) == len(session._item_response) == 3
        # heard counts: these three, and what the speaker still reports (its recent items)
        assert len(session._heard) <= 3 + KEEP_SETTLED + 1 < REPLIES
    finals = [o.text for o in seen if isinstance(o, Transcript) and o.final]
    assert finals == [f"Reply {n}." for n in range(REPLIES)]  # every one was published
