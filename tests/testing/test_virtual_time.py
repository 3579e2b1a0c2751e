"""VirtualTime: a session's clock and sleep on a VirtualClock."""

from __future__ import annotations

import asyncio

import pytest

from bargein.testing import VirtualClock, VirtualTime, settle


async def test_sleep_returns_when_the_clock_reaches_the_deadline_and_not_before() -> None:
    time = VirtualTime()
    woke: list[float] = []

    async def sleeper(seconds: float) -> None:
        await time.sleep(seconds)
        woke.append(time.ms)

    tasks = [asyncio.create_task(sleeper(s)) for s in (0.05, 0.02, 0.02)]
    await settle()
    time.clock.advance_ms(19)
    await settle()
    assert woke == []
    time.clock.advance_ms(1)
    await settle()
    assert woke == [20.0, 20.0]
    await time.advance(100)
    assert woke == [20.0, 20.0, 50.0]
    await asyncio.gather(*tasks)


async def test_a_cancelled_sleep_is_forgotten_and_zero_only_yields() -> None:
    time = VirtualTime()
    task = asyncio.create_task(time.sleep(0.01))
    await settle()
    task.cancel()
    await settle()
    time.clock.advance_ms(10)  # its entry is skipped, not resolved twice
    assert task.cancelled()
    await asyncio.wait_for(time.sleep(0), 1)
    await asyncio.wait_for(time.sleep(-1), 1)


async def test_advance_moves_in_steps_and_now_is_seconds() -> None:
    clock = VirtualClock()
    time = VirtualTime(clock)
    ticks: list[int] = []
    clock.subscribe(ticks.append)
    await time.advance(25, step_ms=10)
    assert ticks == [240, 480, 600]
    assert time.now() == pytest.approx(0.025) and time.ms == pytest.approx(25)
    with pytest.raises(ValueError):
        await time.advance(-1)
    with pytest.raises(ValueError):
        await time.advance(10, step_ms=0)
