"""The energy VAD honours threshold, prefix padding and silence duration, on the input clock."""

from __future__ import annotations

import numpy as np
import pytest

from bargein.adapters.audio.vad import EnergyVad, VadEdge
from tests.support.sim_support import silence, tone


def edges(vad: EnergyVad, *pieces: bytes, frame_ms: int = 20) -> list[VadEdge]:
    audio = np.frombuffer(b"".join(pieces), dtype="<i2")
    step = 24 * frame_ms
    found: list[VadEdge] = []
    for start in range(0, audio.size, step):
        found += vad.feed(audio[start : start + step])
    return found


def test_start_includes_prefix_padding_and_stop_is_end_of_speech() -> None:
    vad = EnergyVad(24_000, 0.5, prefix_padding_ms=300, silence_duration_ms=500)
    found = edges(vad, silence(1000), tone(800), silence(600))
    assert found == [VadEdge(True, 700), VadEdge(False, 1800)]


def test_prefix_padding_never_reaches_before_the_buffer() -> None:
    vad = EnergyVad(24_000, 0.5, prefix_padding_ms=300, silence_duration_ms=200)
    assert edges(vad, silence(100), tone(300), silence(300))[0] == VadEdge(True, 0)
    vad.restart(700)
    assert edges(vad, silence(50), tone(100), silence(300))[0] == VadEdge(True, 700)


@pytest.mark.parametrize(("threshold", "detected"), [(0.5, False), (0.3, True)])
def test_threshold_maps_level_linearly_from_minus_80_dbfs(threshold: float, detected: bool) -> None:
    vad = EnergyVad(24_000, threshold, prefix_padding_ms=0, silence_duration_ms=200)
    found = edges(vad, tone(500, dbfs=-50.0), silence(400))
    assert bool(found) is detected


@pytest.mark.parametrize(("silence_ms", "turns"), [(500, 1), (200, 2)])
def test_a_pause_shorter_than_silence_duration_keeps_the_turn(silence_ms: int, turns: int) -> None:
    vad = EnergyVad(24_000, 0.5, prefix_padding_ms=0, silence_duration_ms=silence_ms)
    found = edges(vad, tone(400), silence(300), tone(400), silence(600))
    assert sum(edge.started for edge in found) == turns


def test_odd_frame_sizes_give_the_same_edges() -> None:
    audio = (silence(330), tone(470), silence(610))
    whole = edges(EnergyVad(24_000, 0.5, 100, 300), *audio, frame_ms=20)
    odd = edges(EnergyVad(24_000, 0.5, 100, 300), *audio, frame_ms=7)
    assert whole == odd == [VadEdge(True, 230), VadEdge(False, 800)]


def test_clock_starts_where_told() -> None:
    vad = EnergyVad(24_000, 0.5, 0, 200, start_ms=5000)
    assert edges(vad, tone(100), silence(300))[0] == VadEdge(True, 5000)
