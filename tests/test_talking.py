"""``bargein.talk()`` and ``bargein.connect()`` against the simulator: a conversation that
ends by itself, the same figures as the command line, one over TLS, and a stop while
connecting."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from bargein import MemorySink, MemorySource, Observation, Transcript, VirtualClock, connect, talk
from bargein.adapters.audio.wav import write_wav
from bargein.errors import ConnectFailed
from bargein.talking import open_audio
from bargein.testing import self_signed
from tests.cli.test_cli import SCRIPT, USER, bargein
from tests.support.sim_support import serving

pytestmark = pytest.mark.e2e


async def test_talk_ends_by_itself_with_the_same_figures_as_the_command_line(
        tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "in.wav", USER)
    seen: list[Observation] = []
    async with serving(script=SCRIPT, speed=4.0) as sim:
        session = await asyncio.wait_for(
            talk(sim.url, input=wav, output=tmp_path / "lib.wav", observer=seen.append,
                 linger_s=0.5), 90)
        code, out, err = await bargein("talk", "--url", sim.url, "--input", str(wav),
                                       "--output", str(tmp_path / "cli.wav"), "--linger", "0.5",
                                       timeout=90)
    assert code == 0, err
    assert await session.wait() == "input over"
    figures = list(session.figures.values())
    assert len(figures) == 2 and figures[0].interrupted
    # a WAV has no device: one 10 ms block and the 5 ms fade, in the library as in the CLI
    assert figures[0].stop_latency_ms == pytest.approx(15.0, abs=0.5)
    (cli_latency,) = re.findall(r"^resp_\S+ +\S+ ms +yes +([\d.]+) ms", out, re.M)
    assert float(cli_latency) == pytest.approx(figures[0].stop_latency_ms, abs=0.5)
    finals = [o for o in seen if isinstance(o, Transcript) and o.final]
    assert [o.text for o in finals][-1] == SCRIPT[1]
    assert (tmp_path / "lib.wav").stat().st_size > 24_000 * 2


async def test_talk_over_tls_with_the_servers_certificate_trusted(tmp_path: Path) -> None:
    """``talk(ssl_context=...)``: a conversation over ``wss://`` with a server whose
    certificate only that context trusts; without it, the connection is refused in one
    line (the certificate is no CA's)."""
    certificate = self_signed(tmp_path)
    wav = write_wav(tmp_path / "in.wav", USER)
    async with serving(script=SCRIPT, speed=4.0, tls=certificate.server_context()) as sim:
        session = await asyncio.wait_for(
            talk(sim.url, input=wav, output=tmp_path / "out.wav", linger_s=0.5,
                 ssl_context=certificate.client_context()), 90)
        with pytest.raises(ConnectFailed, match=r"^TLS with 127\.0\.0\.1 failed: "
                                                r"CERTIFICATE_VERIFY_FAILED$"):
            await asyncio.wait_for(talk(sim.url, input=wav, output=tmp_path / "no.wav"), 90)
    assert await session.wait() == "input over"
    figures = list(session.figures.values())
    assert len(figures) == 2 and figures[0].interrupted


async def test_a_finish_while_connecting_stops_at_once(tmp_path: Path) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts the TCP connection, never answers the handshake

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    wav = write_wav(tmp_path / "in.wav", USER)
    async with server:
        connecting = connect(f"ws://127.0.0.1:{port}/v1", input=wav,
                             output=tmp_path / "out.wav")
        entered = asyncio.ensure_future(connecting.__aenter__())
        await asyncio.sleep(0)  # the attempt is under way
        connecting.session.finish("stopped")
        session = await asyncio.wait_for(entered, 10)
        assert await asyncio.wait_for(session.wait(), 1) == "stopped"
        await connecting.__aexit__(None, None, None)
    assert not session.figures


async def test_open_audio_clocks_a_wav_output_by_a_sources_frames(tmp_path: Path) -> None:
    clock = VirtualClock()
    source, sink, now = open_audio(MemorySource(clock), tmp_path / "out.wav")
    frames = source.frames()
    clock.advance_ms(100)
    for _ in range(5):  # 20 ms each
        await asyncio.wait_for(anext(frames), 5)
    assert now() == pytest.approx(0.1), "the session and the WAV follow the input's frames"
    source.close()
    sink.close()
    assert (tmp_path / "out.wav").exists()
    mine = MemorySink(clock)
    _, sink2, _ = open_audio(MemorySource(clock), mine)
    assert sink2 is mine


def test_no_exported_name_is_shadowed_by_a_submodule() -> None:
    """``import bargein.talking`` (the CLI does) must not turn ``bargein.talk`` into a module:
    no public name is also the name of a module of the package."""
    import importlib.util

    import bargein
    import bargein.talking

    shadowed = [name for name in bargein.__all__
                if name != "endpoints" and importlib.util.find_spec(f"bargein.{name}")]
    assert not shadowed
    assert callable(bargein.talk) and not isinstance(bargein.talk, type(bargein))
