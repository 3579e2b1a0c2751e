"""The session's playback monitor: it polls the sink only while there is something to poll.

With nothing playing and no quiet to time (no finite input over, or no ``linger_s``) the
monitor waits without a timer; audio played wakes it, and its polls fall on the grid its
earlier polls were on, every ``progress_interval_s`` (20 ms) on the session's clock. A
finite input running out while it waits wakes it too, so ``linger_s`` still ends the
session. Everything runs on ``VirtualTime``: poll times are exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from bargein.adapters.audio.memory import MemorySink, MemorySource, VirtualClock
from bargein.core import events as e
from bargein.session import Session, StateChanged
from bargein.testing import MemoryServer, VirtualTime, reply
from tests.support.audio_sources import EndingSource


class PolledSink(MemorySink):
    """A memory sink that notes the clock's ms each time the session asks what was heard."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(clock)
        self.at = clock
        self.polls: list[float] = []

    def heard_ms(self) -> Mapping[str, float]:
        self.polls.append(self.at.ms)
        return super().heard_ms()


async def test_an_idle_session_sleeps_on_no_timer_and_polls_a_reply_on_its_grid() -> None:
    time, server = VirtualTime(), MemoryServer()
    sink = PolledSink(time.clock)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(time.ms)
        await time.sleep(seconds)

    session = Session(server.transport, MemorySource(time.clock), sink, clock=time.now,
                      sleep=sleep)
    seen: list[StateChanged] = []
    session.subscribe(lambda o: seen.append(o) if isinstance(o, StateChanged) else None)
    async with session:
        await server.emit(e.SessionReady(interrupt_response=True))
        await time.advance(1030)
        assert sleeps == [], "nothing played: the monitor waited on no timer"
        await server.emit(*reply("resp_1", "item_1", 200))
        await time.advance(400)
        polled_until = len(sleeps)
        await time.advance(1000)
        assert len(sleeps) == polled_until, "played out: the monitor waits again"

    assert sink.polls[0] == 1040.0, "the first poll on the grid after the audio came"
    assert all(b - a == 20.0 for a, b in zip(sink.polls, sink.polls[1:], strict=False))
    finished = [o.at_ms for o in seen if o.trigger == "playback_finished"]
    # 200 ms of reply from 1030, sounding 20 ms after each 10 ms block is pulled: its last
    # sample sounds at 1250; the first poll at or after that on the grid reports it
    assert finished == [1260.0] == sink.polls[-1:]


async def test_a_finite_input_running_out_while_nothing_plays_ends_the_session() -> None:
    time, server = VirtualTime(), MemoryServer()
    session = Session(server.transport, EndingSource(time.clock, over_ms=500),
                      MemorySink(time.clock), clock=time.now, sleep=time.sleep, linger_s=0.2)
    ended_at: list[float] = []
    async with session:
        waiting = asyncio.ensure_future(session.wait())
        waiting.add_done_callback(lambda _: ended_at.append(time.ms))
        await server.emit(e.SessionReady(interrupt_response=True))
        for _ in range(100):  # 2 s of virtual time at most
            await time.advance(20)
            if ended_at:
                break
        assert waiting.result() == "input over"
    # the input is over with the frame that ends at 500 ms, a poll time: the quiet is timed
    # from the poll at 500, as when the monitor polled all along (the float sum 0.7 - 0.5
    # falls short of 0.2 s, so the poll at 720 ends it)
    assert ended_at == [720.0]
