"""A pytest fixture serving bargein's Realtime simulator, for embedders' own test suites.

``realtime_sim`` yields a running :class:`bargein.sim.Simulator` on a free loopback port;
point your client at ``realtime_sim.url``. Override the ``realtime_sim_config`` fixture to
change the script, speed, voice, faults or to check every event with ``on_event``. At
teardown the fixture fails the test if the ``on_event`` hook rejected any event.

This module is loaded as a pytest plugin wherever bargein is installed, so it imports
nothing of bargein's until a test asks for the fixture (every pytest run of a project that
installs bargein loads it), and it must import without pytest-asyncio: the fixture is then a
plain async fixture, which anyio's plugin (or pytest-asyncio's auto mode, when it is there)
runs.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

if TYPE_CHECKING:
    from bargein.sim import SimConfig, Simulator


@pytest.fixture
def realtime_sim_config() -> SimConfig:
    """The simulator's options: the synthetic voice, replies 4x real time, the default 600 ms
    to first audio (``bargein.sim.DEFAULT_REPLY_LATENCY_MS``); override this fixture to change
    them."""
    from bargein.sim import SimConfig

    return SimConfig(voice="synthetic")


_F = TypeVar("_F", bound=Callable[..., Any])


def _async_fixture(function: _F) -> _F:
    """pytest-asyncio's fixture decorator when installed, else pytest's own."""
    if importlib.util.find_spec("pytest_asyncio") is not None:
        import pytest_asyncio

        return cast(_F, pytest_asyncio.fixture(function))
    return cast(_F, pytest.fixture(function))


@_async_fixture
async def realtime_sim(realtime_sim_config: SimConfig) -> AsyncIterator[Simulator]:
    """A simulator listening on 127.0.0.1 for the duration of one test."""
    from bargein.sim import Simulator

    async with Simulator(realtime_sim_config) as sim:
        yield sim
    sim.check()
