"""The simulator over TLS (``Simulator(tls=...)``) and the certificate ``bargein.testing`` makes
for it. A whole barge-in over ``wss://`` is in ``tests/test_session.py``; the command line's
``--tls-cert`` and ``--tls-key`` are in ``tests/cli/test_cli_rough_edges.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from bargein.errors import SimError
from bargein.sim import Simulator
from bargein.testing import self_signed
from tests.support.sim_support import sim_config

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
async def test_the_certificate_is_good_for_the_loopback_names(name: str, tmp_path: Path) -> None:
    certificate = self_signed(tmp_path)
    async with Simulator(sim_config(), tls=certificate.server_context()) as sim:
        assert sim.url == f"wss://127.0.0.1:{sim.port}/v1"
        async with connect(f"wss://{name}:{sim.port}/v1/realtime",
                           ssl=certificate.client_context()) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
    sim.check()


async def test_a_client_that_does_not_trust_the_certificate_is_not_served(
    tmp_path: Path,
) -> None:
    served = self_signed(tmp_path)
    (tmp_path / "other").mkdir()
    other = self_signed(tmp_path / "other")
    async with Simulator(sim_config(), tls=served.server_context()) as sim:
        with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
            async with connect(sim.realtime_url, ssl=other.client_context()):
                pass
        assert sim.records == []


def test_without_openssl_making_a_certificate_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shutil.which", lambda _: None)
    with pytest.raises(SimError, match="needs the openssl command"):
        self_signed(tmp_path)
