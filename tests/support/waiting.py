"""Waiting on what the code does, never on the clock: a test that sleeps a fixed time fails
on a busy machine, where everything takes longer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from bargein.adapters.audio.memory import VirtualClock

DEADLINE_S = 60.0
"""Generous: a deadline only turns a hang into a failure; a passing test never waits it out."""


async def eventually(what: Callable[[], bool], describe: Callable[[], object] = lambda: "",
                     timeout: float = DEADLINE_S) -> None:
    """Wait until ``what()`` holds, checked every 10 ms; an ``AssertionError`` with
    ``describe()`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not what():
        if loop.time() > deadline:
            raise AssertionError(f"still not so after {timeout:g} s: {describe()}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def realtime_clock(clock: VirtualClock) -> AsyncIterator[None]:
    """Advance ``clock`` in 10 ms steps at the pace of the wall clock."""

    async def tick() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            target = (loop.time() - start) * 1000.0
            while clock.ms + 10 <= target:
                clock.advance_ms(10)
            await asyncio.sleep(0.005)

    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
