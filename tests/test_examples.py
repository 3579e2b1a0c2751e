"""The README's programs are real programs, run here against the simulator: the ~15-line
quick start against ``bargein sim`` as a user starts it, and the embedding example."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from tests.cli.test_cli import bargein, env
from tests.support import REPO
from tests.support.sim_support import serving

pytestmark = pytest.mark.e2e

ROOT = REPO
EXAMPLE = ROOT / "examples" / "embed.py"
QUICKSTART = ROOT / "examples" / "quickstart.py"
DEMO_USER = ROOT / "bargein" / "data" / "demo_user.wav"  # a question, then a barge-in
ENDS_WITHIN_S = 300
"""A deadline that only turns a hang into a failure: an example's whole conversation takes
about 20 s of real time alone, yet a CI run beside two CPU hogs once passed 120 s."""


def test_readme_shows_the_examples_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    assert EXAMPLE.read_text().strip() in readme
    assert QUICKSTART.read_text().strip() in readme


def test_the_quick_start_is_short_and_imports_only_bargein() -> None:
    code = [line for line in QUICKSTART.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith(("#", '"""'))]
    assert len(code) <= 20, "a program of about 15 lines"
    imports = [line for line in code if line.startswith(("import ", "from "))]
    assert [line for line in imports if "bargein" in line] == [
        "from bargein import Heard, Observation, Transcript, talk"]
    assert all(line.split()[1] in ("asyncio", "sys", "importlib.resources", "bargein")
               for line in imports)


async def start_sim(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    """``bargein sim`` on a free port, as a user starts it; its URL from its first line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bargein", "sim", "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env())
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    match = re.search(r"ws://127\.0\.0\.1:\d+/v1", line)
    assert match, line
    return proc, match.group(0)


async def stop_sim(proc: asyncio.subprocess.Process) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_quick_start_talks_to_bargein_sim_and_ends_by_itself(tmp_path: Path) -> None:
    sim, url = await start_sim()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(QUICKSTART), url, str(DEMO_USER), cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env())
        out, err = await asyncio.wait_for(proc.communicate(), ENDS_WITHIN_S)  # by itself
    finally:
        code, _, sim_log = await stop_sim(sim)
    assert proc.returncode == 0, err.decode()
    assert err.decode() == "", "nothing from bargein on stderr"
    lines = out.decode().splitlines()
    own = re.compile(r"^(user: |assistant: |  \(the user heard only: |resp_\S+: first audio)")
    assert lines and all(own.match(line) for line in lines), "only the program's own lines"
    figures = [line for line in lines if line.startswith("resp_")]
    assert len(figures) == 2, out.decode()
    assert "cut off: silent" in figures[0] and "truncated at" in figures[0]
    ttfa = [float(m) for m in re.findall(r"first audio after (\d+) ms", out.decode())]
    assert len(ttfa) == 2 and min(ttfa) > 0, "each answer's time to first audio, measured"
    assert any(line.startswith("  (the user heard only: ") for line in lines)
    assert (tmp_path / "heard.wav").stat().st_size > 24_000 * 2 * 5
    assert code == 130, "Ctrl-C ends bargein sim with 130"
    assert "sim.connected" in sim_log and "sim.closed" in sim_log, "a line per connection"


async def run_embed(url: str, tmp_path: Path, *extra: str) -> tuple[str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), "--url", url, *extra, str(DEMO_USER),
        str(tmp_path / "out.wav"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env())
    out, err = await asyncio.wait_for(proc.communicate(), ENDS_WITHIN_S)
    assert proc.returncode == 0, err.decode()
    return out.decode(), err.decode()


async def test_embedded_session_with_a_custom_state_and_hooks(tmp_path: Path) -> None:
    async with serving(speed=2.0, reply_latency_ms=400.0) as sim:
        text, err = await run_embed(sim.url, tmp_path)
    assert "listening -> thinking  (user finished)" in text        # the behaviour
    assert "thinking -> responding  (first audio)" in text
    assert "barge-in: truncate" in text and "the user heard: '" in text
    assert "ended: input over" in text, "the session ended by itself"
    # the figures: each answer's time to first audio is from the end of the user's turn to
    # its first audio, as the session saw them (the input's clock, so not to the ms what the
    # simulator waited: that differs by how late a busy machine handled each event)
    at: dict[str, list[float]] = {}
    for line in text.splitlines():
        for move in ("listening -> thinking", "thinking -> responding"):
            if move in line:
                at.setdefault(move, []).append(float(line.split()[0]))
    waited = [b - a for a, b in zip(at["listening -> thinking"], at["thinking -> responding"],
                                    strict=True)]
    figures = [float(m) for m in re.findall(r"first audio after (\d+) ms", text)]
    assert len(figures) == len(waited) == 2, text
    assert all(abs(f - w) <= 1.5 for f, w in zip(figures, waited, strict=True)), (figures, waited)
    assert err == "", "bargein prints nothing unless asked"
    bargein_lines = [line for line in text.splitlines() if "bargein." in line or "[info" in line]
    assert not bargein_lines, bargein_lines


async def test_embedded_session_shows_bargeins_logs_when_asked(tmp_path: Path) -> None:
    async with serving(speed=4.0) as sim:
        text, err = await run_embed(sim.url, tmp_path, "--log-level", "info")
    assert "barge-in: truncate" in text
    assert "interrupted" in err and "[bargein.session]" in err, err[:2000]
    assert "realtime_connected" in err


async def test_the_example_machine_draws(tmp_path: Path) -> None:
    environ = env(PYTHONPATH=f"{ROOT / 'examples'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    code, diagram, err = await bargein("diagram", "--machine", "embed:WITH_THINKING",
                                       environ=environ)
    assert code == 0, err
    assert "listening --> thinking : speech_stopped" in diagram
