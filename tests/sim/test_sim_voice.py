"""The synthetic voice is deterministic and speech-shaped; options are checked up front."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bargein.adapters.audio.vad import EnergyVad
from bargein.errors import SimError
from bargein.sim import Faults, SimConfig
from bargein.sim.voice import speak


def test_synthetic_voice_is_deterministic_and_grows_with_the_text() -> None:
    short, again = speak("Hello there.", "synthetic"), speak("Hello there.", "synthetic")
    longer = speak("Hello there, how are you doing this fine morning?", "synthetic")
    assert short == again and len(longer) > 2 * len(short)
    assert len(short) % 2 == 0


def test_synthetic_voice_has_syllables_and_pauses_a_vad_sees() -> None:
    samples = np.frombuffer(speak("alpha beta gamma delta", "synthetic"), dtype="<i2")
    assert 8000 < np.abs(samples).max() < 32767
    vad = EnergyVad(24_000, 0.5, prefix_padding_ms=0, silence_duration_ms=60)
    edges = vad.feed(samples)
    assert sum(edge.started for edge in edges) >= 4  # word gaps are audible pauses


def test_unknown_voice_is_a_sim_error() -> None:
    with pytest.raises(SimError):
        speak("x", "robot")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {"script": ()},
        {"script": ("  ",)},
        {"speed": 0.0},
        {"speed": math.nan},
        {"chunk_ms": 5},
        {"reply_latency_ms": -1.0},
        {"voice": "robot"},
    ],
)
def test_bad_options_are_sim_errors(changes: dict[str, object]) -> None:
    with pytest.raises(SimError):
        SimConfig(**changes)  # type: ignore[arg-type]


def test_faults_parse_round_trip() -> None:
    parsed = Faults.parse("late_deltas_after_cancel=2, disconnect_at=mid_reply,jitter_ms=1.5")
    assert parsed == Faults(late_deltas_after_cancel=2, disconnect_at="mid_reply", jitter_ms=1.5)
    assert Faults.parse("") == Faults()
