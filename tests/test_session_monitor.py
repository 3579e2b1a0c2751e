"""The session's playback monitor: it polls the sink only while there is something to poll.

With nothing playing and no quiet to time (no finite input over, or no ``linger_s``) the
monitor waits without a timer; audio played wakes it, and its polls fall on the grid its
earlier polls were on, every ``progress_interval_s`` (100 ms) on the session's clock, with
one more at the moment the sink says its audio ends (``ends_in_s``), so the end of a reply
is reported on time. A finite input running out while it waits wakes it too, so
``linger_s`` still ends the session. Everything runs on ``VirtualTime``: poll times are
exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from bargein.adapters.audio.memory import MemorySink, MemorySource, VirtualClock
from bargein.adapters.audio.protocols import FlushReport
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

    # 200 ms of reply from 1030, pulled in 10 ms blocks from the sink's next pull at 1040,
    # each sounding 20 ms after it is pulled: the last block sounds from 1250 to 1260.
    # Polls on the grid (the first after the audio came, at 1100), and one at the end the
    # sink foresaw, which reports it
    assert sink.polls == [1100.0, 1200.0, 1260.0]
    finished = [o.at_ms for o in seen if o.trigger == "playback_finished"]
    assert finished == [1260.0]


class GridSink:
    """A sink that cannot say when its audio ends: a ``PolledSink`` without ``ends_in_s``."""

    def __init__(self, inner: PolledSink) -> None:
        self.inner = inner

    def play(self, item_id: str, pcm: bytes) -> None:
        self.inner.play(item_id, pcm)

    def flush(self) -> FlushReport:
        return self.inner.flush()

    def heard_ms(self) -> Mapping[str, float]:
        return self.inner.heard_ms()

    @property
    def idle(self) -> bool:
        return self.inner.idle

    def close(self) -> None:
        self.inner.close()


async def test_a_sink_that_cannot_foresee_its_end_is_polled_on_the_grid_alone() -> None:
    time, server = VirtualTime(), MemoryServer()
    polled = PolledSink(time.clock)
    session = Session(server.transport, MemorySource(time.clock), GridSink(polled),
                      clock=time.now, sleep=time.sleep)
    seen: list[StateChanged] = []
    session.subscribe(lambda o: seen.append(o) if isinstance(o, StateChanged) else None)
    async with session:
        await server.emit(e.SessionReady(interrupt_response=True))
        await time.advance(1030)
        await server.emit(*reply("resp_1", "item_1", 200))
        await time.advance(1000)
    assert polled.polls == [1100.0, 1200.0, 1300.0]
    finished = [o.at_ms for o in seen if o.trigger == "playback_finished"]
    assert finished == [1300.0], "the first poll on the grid after the end reports it"


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
    # falls short of 0.2 s, so the poll at 800 ends it)
    assert ended_at == [800.0]
