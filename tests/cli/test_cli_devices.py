"""Choosing the microphone and the speaker from the command line, on real PortAudio devices
(the private PulseAudio of the test suite, reached through ALSA's ``pulse`` plugin)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.test_cli import SCRIPT, bargein, env, one_clear_line
from tests.cli.test_cli_rough_edges import Running
from tests.support.sim_support import serving

pytestmark = [pytest.mark.device, pytest.mark.usefixtures("pulse")]


async def test_bargein_devices_lists_them_with_their_indexes() -> None:
    code, out, err = await bargein("devices", environ=env())
    assert code == 0, err
    assert re.search(r"^\s*\d+\s+\d+\s+\d+\s+\d+\s+pulse\b", out, re.M), out
    assert "(default input, default output)" in out


async def test_talk_on_devices_chosen_by_name_and_index(tmp_path: Path) -> None:
    code, out, _ = await bargein("devices", environ=env())
    (index,) = [line.split()[0] for line in out.splitlines() if re.search(r"\bpulse\b", line)]
    async with serving(script=SCRIPT, speed=4.0) as sim:
        talk = await Running.start("talk", "--url", sim.url, "--input-device", "puls",
                                   "--output-device", index)
        mode = await talk.until("talking to")
        await talk.until("idle -> listening")  # both devices opened, the session is live
        code, out, err = await talk.interrupt()
    assert "input: mic (puls)" in mode and f"output: speaker ({index})" in mode
    assert code == 130, err


async def test_a_device_that_is_not_there_is_one_clear_line(tmp_path: Path) -> None:
    code, _, err = await bargein("talk", "--url", "ws://127.0.0.1:9/v1", "--input", "mic",
                                 "--input-device", "no-such-microphone", "--output",
                                 str(tmp_path / "o.wav"), environ=env())
    one_clear_line(code, err, "no input device named like 'no-such-microphone'")
