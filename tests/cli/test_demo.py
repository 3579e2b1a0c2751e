"""`bargein demo`, the README's main job, runs offline and shows a barge-in done right."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bargein.adapters.audio.wav import read_wav_24k_mono
from bargein.cli.demo import demo, user_script

pytestmark = pytest.mark.e2e


async def test_demo_runs_offline_and_writes_its_files(tmp_path: Path) -> None:
    out = io.StringIO()
    result = await demo(tmp_path, out)
    text = out.getvalue()
    assert "BARGE-IN by speech_started" in text
    assert "truncate at" in text and "late audio deltas dropped: 5 (500 ms)" in text
    heard = read_wav_24k_mono(result.heard_wav)
    assert len(heard) > 2 * 24_000 * 10, "the whole conversation is in heard.wav"
    root = ET.fromstring(result.timeline_svg.read_text())
    assert root.tag.endswith("svg")
    assert "barge-in" in result.timeline_svg.read_text()


async def test_the_demo_shows_every_claim_of_the_barge_in(tmp_path: Path) -> None:
    out = io.StringIO()
    result = await demo(tmp_path, out)
    assert result.reason == "input over", "the conversation ended by itself"
    text = out.getvalue()
    (cut_line,) = [line for line in text.splitlines() if "cut off after" in line]
    heard, unheard = cut_line.split('"', 1)[1].rstrip('"').split(" ‖ ")
    assert heard.startswith("The lighthouse") and unheard, "the cut is marked in the text"
    for said in user_script():
        assert f'user: "{said.text}"' in text, "the user's words, in the terminal timeline"

    root = ET.fromstring(result.timeline_svg.read_text())
    ns = {"svg": "http://www.w3.org/2000/svg"}

    def texts(group_id: str, cls: str | None = None) -> str:
        found = root.find(f".//svg:g[@id='{group_id}']", ns)
        assert found is not None, group_id
        spans = found.iter("{http://www.w3.org/2000/svg}tspan")
        return " ".join("".join(t.itertext()) for t in spans
                        if cls is None or t.attrib.get("class") == cls)

    user_words = texts("captions-user")
    assert all(word in user_words for said in user_script() for word in said.text.split()[:3])
    assert heard.split()[0] in texts("captions-heard", "heard")
    assert unheard.split()[-1].rstrip(".") in texts("captions-heard", "unheard").replace("…", "")
    assert texts("captions-heard", "cut").strip() == "‖"
    band = root.findall(".//svg:rect[@class='interrupted']", ns)
    assert band and all(float(r.attrib["width"]) >= 6 for r in band), "visible, not 0 px"
    assert float(band[0].attrib["data-end-ms"]) - float(band[0].attrib["data-start-ms"]) == \
        pytest.approx(15.0, abs=0.5)
    assert root.find(".//svg:polygon[@class='ghost']", ns) is not None, \
        "audio received but never played"
    (dropped,) = root.findall(".//svg:rect[@class='dropped']", ns)
    assert float(dropped.attrib["data-end-ms"]) - float(dropped.attrib["data-start-ms"]) == \
        pytest.approx(500.0)
    labels = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")
              if t.attrib.get("class") == "mark-label"]
    assert any(label.startswith("truncate at 3") for label in labels), labels


async def test_ctrl_c_in_the_demo_prints_the_figures_and_exits_130(tmp_path: Path) -> None:
    import asyncio
    import signal
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bargein", "demo", "--out", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    seen = b""
    while b"listening -> responding" not in seen:  # the conversation is under way
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line, seen.decode()
        seen += line
    proc.send_signal(signal.SIGINT)
    rest, err = await asyncio.wait_for(proc.communicate(), 60)
    text = (seen + rest).decode()
    assert proc.returncode == 130, err.decode()
    assert "session closed (stopped by the user)" in text and "per response:" in text
    assert (tmp_path / "timeline.svg").exists() and "Traceback" not in err.decode()
