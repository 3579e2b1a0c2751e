"""Time for a ``Session`` on a ``VirtualClock``: no wall-clock time, no real sleeps.

A session takes its time from two callables, ``clock`` (seconds) and ``sleep`` (its
playback monitor's pause between polls), as ``sched.scheduler`` does. ``VirtualTime``
provides both on a ``VirtualClock``, the clock the in-memory audio adapters run on, so a
whole conversation moves only when the test says so::

    time = VirtualTime()
    source, sink = MemorySource(time.clock), MemorySink(time.clock)
    session = Session(transport, source, sink, clock=time.now, sleep=time.sleep)
    ...
    await time.advance(500)     # 500 ms pass: the mic captures, the speaker plays, the
                                # session polls, and every task they wake runs
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

from bargein.adapters.audio.memory import VirtualClock
from bargein.core.pcm import RATE

SETTLE_TURNS = 16
"""Event-loop turns ``settle()`` gives by default: enough for a chain of wake-ups several
tasks long (a clock tick wakes the mic, whose audio wakes the sender, whose command an
answering server answers, whose answer the session handles)."""


async def settle(turns: int = SETTLE_TURNS) -> None:
    """Let every task that is ready run, and the tasks they wake, ``turns`` turns deep.

    It only yields to the event loop (``asyncio.sleep(0)``): no time passes, real or
    virtual."""
    for _ in range(turns):
        await asyncio.sleep(0)


class VirtualTime:
    """A ``VirtualClock`` as a session's ``clock`` and ``sleep``; ``advance()`` moves it.

    Advance it from the event loop's thread, as the clock itself requires.
    """

    def __init__(self, clock: VirtualClock | None = None) -> None:
        self.clock = clock if clock is not None else VirtualClock()
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self.clock.subscribe(self._wake)

    @property
    def ms(self) -> float:
        """Milliseconds on the clock."""
        return self.clock.ms

    def now(self) -> float:
        """Seconds on the clock: pass it as ``Session(clock=...)``."""
        return self.clock.samples / RATE

    async def sleep(self, seconds: float) -> None:
        """Return once the clock has moved ``seconds`` on: pass it as ``Session(sleep=...)``.

        A zero or negative delay yields to the event loop once, like ``asyncio.sleep(0)``.
        """
        samples = round(seconds * RATE)
        if samples <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.clock.samples + samples, next(self._order), future))
        await future

    async def advance(self, ms: float, *, step_ms: float = 10.0, turns: int = SETTLE_TURNS) -> None:
        """Move the clock ``ms`` forward in steps of ``step_ms``, and after each step let
        every task the step woke run (``settle(turns)``), as if that much time had passed.

        Steps smaller than the session's poll interval (20 ms) and the memory sink's block
        (10 ms) keep the figures exact; the default is one sink block.
        """
        if ms < 0 or step_ms <= 0:
            raise ValueError("advance() takes ms >= 0 and step_ms > 0")
        target = self.clock.samples + round(ms * RATE / 1000)
        step = max(1, round(step_ms * RATE / 1000))
        while self.clock.samples < target:
            self.clock.advance_samples(min(step, target - self.clock.samples))
            await settle(turns)

    def _wake(self, now: int) -> None:
        while self._sleepers and self._sleepers[0][0] <= now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():  # a cancelled sleep leaves its entry behind
                future.set_result(None)


__all__ = ["SETTLE_TURNS", "VirtualTime", "settle"]
