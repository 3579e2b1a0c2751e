"""A pytest fixture serving bargein's Realtime simulator, for embedders' own test suites.

``realtime_sim`` yields a running :class:`bargein.sim.Simulator` on a free loopback port;
point your client at ``realtime_sim.url``. Override the ``realtime_sim_config`` fixture to
change the script, speed, voice, faults or to check every event with ``on_event``. At
teardown the fixture fails the test if the ``on_event`` hook rejected any event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bargein.sim import SimConfig, Simulator


@pytest.fixture
def realtime_sim_config() -> SimConfig:
    """The simulator's options; the default speaks in the synthetic voice, 4x real time."""
    return SimConfig(voice="synthetic")


@pytest_asyncio.fixture
async def realtime_sim(realtime_sim_config: SimConfig) -> AsyncIterator[Simulator]:
    """A simulator listening on 127.0.0.1 for the duration of one test."""
    async with Simulator(realtime_sim_config) as sim:
        yield sim
    sim.check()
