"""``bargein.eager.start``: a coroutine runs on the caller's stack until it first waits."""

from __future__ import annotations

import asyncio

import pytest

from bargein import eager


async def test_a_coroutine_that_never_waits_is_done_when_start_returns() -> None:
    done: list[str] = []

    async def send() -> None:
        done.append("sent")

    assert eager.start(send()) is None
    assert done == ["sent"]


async def test_the_rest_runs_in_the_task_that_awaits_it() -> None:
    gate, steps = asyncio.Event(), []

    async def send() -> None:
        steps.append("written")
        await gate.wait()
        steps.append("drained")

    rest = eager.start(send())
    assert rest is not None and steps == ["written"], "it ran up to its first wait"
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    assert steps == ["written"]
    gate.set()
    await task
    assert steps == ["written", "drained"]


async def test_a_failure_before_the_first_wait_is_raised_by_start() -> None:
    async def send() -> None:
        raise ValueError("cannot encode")

    with pytest.raises(ValueError, match="cannot encode"):
        eager.start(send())


async def test_a_failure_after_a_wait_is_raised_by_the_await() -> None:
    async def send() -> None:
        await asyncio.sleep(0)
        raise ValueError("closed while draining")

    rest = eager.start(send())
    assert rest is not None
    with pytest.raises(ValueError, match="closed while draining"):
        await rest


async def test_cancelling_the_awaiting_task_cancels_the_coroutine() -> None:
    seen: list[str] = []

    async def send() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    rest = eager.start(send())
    assert rest is not None
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]


async def test_values_the_loop_sends_back_reach_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[int] = loop.create_future()
    got: list[int] = []

    async def send() -> None:
        got.append(await answer)

    rest = eager.start(send())
    assert rest is not None
    loop.call_soon(answer.set_result, 7)
    await rest
    assert got == [7]
