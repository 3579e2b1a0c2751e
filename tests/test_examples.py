"""The README's embedding example is a real program, run here against the simulator."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bargein.adapters.audio.wav import write_wav
from tests.cli.test_cli import SCRIPT, USER, bargein, env
from tests.support import REPO
from tests.support.sim_support import serving

pytestmark = pytest.mark.e2e

ROOT = REPO
EXAMPLE = ROOT / "examples" / "embed.py"


def test_readme_shows_the_example_verbatim() -> None:
    assert EXAMPLE.read_text().strip() in (ROOT / "README.md").read_text()


async def test_embedded_session_with_a_custom_state_and_hooks(tmp_path: Path) -> None:
    import asyncio
    import sys

    wav_in = write_wav(tmp_path / "in.wav", USER)
    async with serving(script=SCRIPT, speed=4.0) as sim:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLE), "--url", sim.url, "--seconds", "5",
            str(wav_in), str(tmp_path / "out.wav"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env())
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "listening -> thinking  (user finished)" in text        # the behaviour
    assert "thinking -> responding  (first audio)" in text
    assert "barge-in: truncate" in text
    assert "dest=thinking" in text                                  # the logs
    environ = env(PYTHONPATH=f"{ROOT / 'examples'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    code, diagram, err2 = await bargein("diagram", "--machine", "embed:WITH_THINKING",
                                        environ=environ)
    assert code == 0, err2
    assert "listening --> thinking : speech_stopped" in diagram     # the diagram
