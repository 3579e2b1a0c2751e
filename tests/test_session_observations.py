"""What a program observes of a session, and how a session ends by itself: on a MemoryServer
and VirtualTime, so every figure is exact and no wall-clock time passes.

The memory sink pulls 10 ms blocks that sound 20 ms later and fades for 5 ms on a flush
(see ``tests/test_session_memory.py``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from bargein import (
    Closed,
    Heard,
    Interrupted,
    Observation,
    Reconnected,
    Session,
    Transcript,
    split_heard,
)
from bargein.core import events as e
from bargein.core.pcm import RATE
from bargein.testing import (
    MemoryServer,
    MemorySink,
    MemorySource,
    VirtualClock,
    VirtualTime,
    deltas,
    reply,
    settle,
)

MS = RATE // 1000
TEXT = "one two three four five six seven eight nine ten"


class FiniteSource(MemorySource):
    """A memory source that says when its audio is over, as ``WavSource`` does."""

    def __init__(self, clock: VirtualClock, pcm: bytes) -> None:
        super().__init__(clock, pcm)
        self._end = clock.samples + len(pcm) // 2
        self._clock_ref = clock

    @property
    def exhausted(self) -> bool:
        return self._clock_ref.samples >= self._end


@dataclass
class Rig:
    time: VirtualTime
    server: MemoryServer
    session: Session
    seen: list[Observation]

    def of(self, kind: type[Observation]) -> list[Observation]:
        return [o for o in self.seen if isinstance(o, kind)]


@contextlib.asynccontextmanager
async def running(*, user_ms: int | None = None, linger_s: float | None = 2.0,
                  answer: bool = False) -> AsyncIterator[Rig]:
    time, server = VirtualTime(), MemoryServer(answer=answer)
    source = (MemorySource(time.clock) if user_ms is None
              else FiniteSource(time.clock, bytes(2 * user_ms * MS)))
    session = Session(server.transport, source, MemorySink(time.clock), clock=time.now,
                      sleep=time.sleep, linger_s=linger_s)
    seen: list[Observation] = []
    session.subscribe(seen.append)
    async with session:
        yield Rig(time, server, session, seen)


# --- transcripts: deltas, then one final text ------------------------------------------

async def test_assistant_transcript_deltas_then_a_final_whole_text() -> None:
    async with running() as rig:
        await rig.server.emit(e.SessionReady())
        words = TEXT.split()
        await rig.server.emit(e.ResponseCreated("resp_1"), e.OutputItemAdded("resp_1", "item_1"))
        for index, word in enumerate(words):
            await rig.server.emit(e.TranscriptDelta("resp_1", "item_1",
                                                    word if index == 0 else " " + word))
        assert not [o for o in rig.of(Transcript) if isinstance(o, Transcript) and o.final]
        await rig.server.emit(*deltas("resp_1", "item_1", 300), e.ResponseDone("resp_1",
                                                                                "completed"))
        await rig.server.emit(e.InputTranscript("item_u1", "hello there"))
    texts = [o for o in rig.seen if isinstance(o, Transcript)]
    partial = [t for t in texts if t.role == "assistant" and not t.final]
    final = [t for t in texts if t.role == "assistant" and t.final]
    assert "".join(t.text for t in partial) == TEXT and len(partial) == len(words)
    assert [(t.item_id, t.response_id, t.text) for t in final] == [("item_1", "resp_1", TEXT)]
    (user,) = [t for t in texts if t.role == "user"]
    assert (user.text, user.final, user.response_id) == ("hello there", True, "")


async def test_a_transcript_cut_by_a_lost_connection_is_final_with_what_came() -> None:
    async with running() as rig:
        await rig.server.emit(e.SessionReady(), e.ResponseCreated("resp_1"),
                              e.TranscriptDelta("resp_1", "item_1", "half a sen"))
        rig.server.disconnect("dropped")
        await rig.server.settle()
    final = [o for o in rig.seen if isinstance(o, Transcript) and o.final]
    assert [t.text for t in final] == ["half a sen"], "published once, at the drop"


# --- what the user heard -------------------------------------------------------------------

def test_split_heard_cuts_at_the_heard_fraction_on_a_word_boundary() -> None:
    assert split_heard(TEXT, 500, 1000) == ("one two three four five ", "six seven eight nine ten")
    heard, unheard = split_heard(TEXT, 350, 1000)  # 17 of 48 chars: most of "four"
    assert heard + unheard == TEXT and heard == "one two three four"
    assert split_heard(TEXT, 300, 1000)[0] == "one two three "  # 14 chars: "four" unheard
    assert split_heard(TEXT, 0, 1000) == ("", TEXT)
    assert split_heard(TEXT, 1000, 1000) == (TEXT, "")
    assert split_heard(TEXT, 1500, 1000) == (TEXT, "")
    assert split_heard("", 100, 1000) == ("", "")
    assert split_heard(TEXT, 100, 0) == ("", TEXT)


async def test_a_barge_in_publishes_the_text_the_user_heard() -> None:
    async with running() as rig:
        server, time = rig.server, rig.time
        await server.emit(e.SessionReady(interrupt_response=True), e.SpeechStopped("u0", 0))
        # 1000 ms of audio with its transcript, still generating
        await server.emit(*reply("resp_1", "item_1", 1000, transcript=TEXT, done=False))
        await time.advance(500)
        await server.emit(e.SpeechStarted("u1", 500))
        await server.emit(e.ResponseDone("resp_1", "cancelled", "turn_detected"))
    (barge,) = [o for o in rig.seen if isinstance(o, Interrupted)]
    (heard,) = [o for o in rig.seen if isinstance(o, Heard)]
    assert barge.settlements[0].audio_end_ms == 515  # 500 played + 10 in the device + 5 fade
    assert barge.cancelled_by == "server" and barge.cancelled == ()
    assert (heard.item_id, heard.response_id, heard.heard_ms, heard.received_ms) == (
        "item_1", "resp_1", 515.0, 1000.0)
    assert (heard.heard, heard.unheard) == ("one two three four five ", "six seven eight nine ten")
    assert heard.text == TEXT
    assert rig.seen.index(heard) == rig.seen.index(barge) + 1, "right after the barge-in"
    figures = rig.session.figures["resp_1"]
    assert (figures.received_ms, figures.heard_ms, figures.audio_end_ms) == (1000.0, 515.0, 515)
    assert (figures.status, figures.client_cancelled) == ("cancelled", False)
    assert figures.stop_latency_ms == pytest.approx(35.0)


async def test_who_cancelled_client_or_nobody() -> None:
    async with running() as rig:
        server, time = rig.server, rig.time
        await server.emit(e.SessionReady(interrupt_response=False))
        await server.emit(*reply("resp_1", "item_1", 1000, done=False))
        await time.advance(200)
        await server.emit(e.SpeechStarted("u1", 200))  # still generating: bargein cancels
        await server.emit(e.ResponseDone("resp_1", "cancelled", "client_cancelled"))
        await time.advance(100)
        await server.emit(*reply("resp_2", "item_2", 1000))  # generated whole already
        await time.advance(300)
        await server.emit(e.SpeechStarted("u2", 600))
    first, second = (o for o in rig.seen if isinstance(o, Interrupted))
    assert (first.cancelled_by, first.cancelled) == ("client", ("resp_1",))
    assert (second.cancelled_by, second.cancelled) == ("none", ())
    figures = rig.session.figures
    assert figures["resp_1"].client_cancelled and not figures["resp_2"].client_cancelled
    assert figures["resp_2"].status == "completed"


async def test_a_reply_that_plays_to_its_end_is_heard_whole() -> None:
    async with running() as rig:
        await rig.server.emit(e.SessionReady(), *reply("resp_1", "item_1", 300, transcript="hi"))
        await rig.time.advance(400)
    figures = rig.session.figures["resp_1"]
    assert (figures.received_ms, figures.heard_ms, figures.interrupted) == (300.0, 300.0, False)
    assert not [o for o in rig.seen if isinstance(o, Heard)]


# --- a reconnect loses the server's context ----------------------------------------------

async def test_a_reconnect_is_observed_with_the_context_lost() -> None:
    async with running() as rig:
        await rig.server.emit(e.SessionReady())
        rig.server.disconnect("dropped")
        await rig.server.settle()
        rig.server.reconnect()
        await rig.server.settle()
    (reconnected,) = [o for o in rig.seen if isinstance(o, Reconnected)]
    assert reconnected.context_lost


async def test_the_reconnect_observation_carries_the_transports_account() -> None:
    class Account:
        reason, attempts, down_s, session_restored, context_lost = "dropped", 2, 0.7, True, True

    async with running() as rig:
        rig.server.transport.last_reconnect = Account()  # type: ignore[attr-defined]
        await rig.server.emit(e.SessionReady())
        rig.server.disconnect("dropped")
        rig.server.reconnect()
        await rig.server.settle()
    (obs,) = [o for o in rig.seen if isinstance(o, Reconnected)]
    assert (obs.reason, obs.attempts, obs.down_s, obs.session_restored, obs.context_lost) == (
        "dropped", 2, 0.7, True, True)


# --- a session that ends by itself -------------------------------------------------------

async def test_wait_returns_by_itself_once_the_input_is_over_and_quiet() -> None:
    async with running(user_ms=1000, linger_s=1.0) as rig:
        waiting = asyncio.ensure_future(rig.session.wait())
        ended_at: list[float] = []
        waiting.add_done_callback(lambda _: ended_at.append(rig.time.ms))
        await rig.server.emit(e.SessionReady(), e.SpeechStopped("u1", 900))
        await rig.time.advance(100)
        await rig.server.emit(*reply("resp_1", "item_1", 1500))  # plays until 1630 ms
        await rig.time.advance(1800)
        assert not waiting.done(), "input over at 1000 ms, but the reply played until 1630 ms"
        await rig.time.advance(1000)
        assert waiting.done() and waiting.result() == "input over"
    (closed,) = [o for o in rig.seen if isinstance(o, Closed)]
    assert closed.reason == "input over"
    # quiet from the first poll after the reply played out (1640 ms), plus one second
    assert 2640.0 <= ended_at[0] <= 2640.0 + 40


async def test_a_source_that_never_ends_keeps_the_session_going() -> None:
    async with running(linger_s=0.5) as rig:
        waiting = asyncio.ensure_future(rig.session.wait())
        await rig.server.emit(e.SessionReady())
        await rig.time.advance(3000)
        assert not waiting.done()
        rig.session.finish("stopped")
        await settle()
        assert waiting.result() == "stopped"


async def test_linger_none_leaves_the_end_to_the_program() -> None:
    async with running(user_ms=100, linger_s=None) as rig:
        await rig.server.emit(e.SessionReady())
        waiting = asyncio.ensure_future(rig.session.wait())
        await rig.time.advance(3000)
        assert not waiting.done()
    assert [o.reason for o in rig.seen if isinstance(o, Closed)] == ["closed"]
