"""`bargein demo`, the README's main job, runs offline and shows a barge-in done right."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bargein.adapters.audio.wav import read_wav_24k_mono
from bargein.cli.demo import demo

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
