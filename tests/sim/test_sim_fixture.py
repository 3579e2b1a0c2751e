"""The ``realtime_sim`` pytest fixture embedders use, with its config fixture overridden."""

from __future__ import annotations

import pytest

from bargein.sim import SimConfig, Simulator
from tests.support.sim_support import Client, sim_config

pytestmark = pytest.mark.e2e


@pytest.fixture
def realtime_sim_config() -> SimConfig:
    return sim_config(script=("Fixture reply.",))


async def test_the_fixture_serves_a_reply(realtime_sim: Simulator) -> None:
    client = await Client.open(realtime_sim.url + "/realtime?model=gpt-realtime")
    await client.send({"type": "response.create"})
    done = (await client.until("response.done"))[-1]
    assert done["response"]["output"][0]["content"][0]["transcript"] == "Fixture reply."
    assert (await realtime_sim.connection(0)).client_events("response.create")
