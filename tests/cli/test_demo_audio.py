"""The demo's bundled user speech: format, sidecar spans that match the samples, VAD-friendly."""

from __future__ import annotations

import json
import wave
from typing import Any

import numpy as np
import pytest

from bargein.adapters.audio.vad import EnergyVad
from bargein.sim.settings import TurnDetection
from tests.support import REPO

DATA = REPO / "bargein" / "data"
RATE = 24000
BLOCK = RATE // 100  # 10 ms


@pytest.fixture(scope="module")
def samples() -> np.ndarray:
    with wave.open(str(DATA / "demo_user.wav"), "rb") as wav:
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        assert wav.getframerate() == RATE
        assert wav.getcomptype() == "NONE"
        frames = wav.readframes(wav.getnframes())
    return np.frombuffer(frames, dtype="<i2")


@pytest.fixture(scope="module")
def utterances() -> list[dict[str, Any]]:
    sidecar = json.loads((DATA / "demo_user.json").read_text(encoding="utf-8"))
    items: list[dict[str, Any]] = sidecar["utterances"]
    return items


def block_dbfs(samples: np.ndarray) -> np.ndarray:
    """RMS level of each whole 10 ms block, in dBFS."""
    whole = samples[: samples.size - samples.size % BLOCK].astype(np.float64)
    power = np.mean(whole.reshape(-1, BLOCK) ** 2, axis=1) / 32768.0**2
    levels: np.ndarray = 10.0 * np.log10(np.maximum(power, 1e-12))
    return levels


def test_file_is_small() -> None:
    assert (DATA / "demo_user.wav").stat().st_size < 700_000


def test_sidecar_describes_a_question_then_a_barge_in(utterances: list[dict[str, Any]]) -> None:
    assert len(utterances) == 2
    question, barge_in = utterances
    for item in utterances:
        assert isinstance(item["text"], str) and item["text"]
        assert 0 <= item["start_ms"] < item["end_ms"]
    assert question["end_ms"] + 3000 <= barge_in["start_ms"]
    assert 7000 <= barge_in["start_ms"] <= 8000


def test_speech_is_loud_inside_each_span(
    samples: np.ndarray, utterances: list[dict[str, Any]]
) -> None:
    levels = block_dbfs(samples)
    peak_dbfs = 20.0 * np.log10(np.abs(samples.astype(np.int32)).max() / 32768.0)
    assert -4.0 <= peak_dbfs <= -2.0
    for item in utterances:
        span = levels[item["start_ms"] // 10 : item["end_ms"] // 10]
        assert np.mean(span > -40.0) > 0.7, item["text"]
        # the span is tight: speech within 30 ms of each edge
        assert span[:3].max() > -40.0 and span[-3:].max() > -40.0, item["text"]


def test_near_silence_outside_the_spans(
    samples: np.ndarray, utterances: list[dict[str, Any]]
) -> None:
    outside = np.ones(samples.size, dtype=bool)
    for item in utterances:
        lo = max(0, (item["start_ms"] - 20) * RATE // 1000)
        outside[lo : (item["end_ms"] + 20) * RATE // 1000] = False
    assert outside.sum() > samples.size // 2
    assert np.abs(samples[outside].astype(np.int32)).max() <= 33  # below -60 dBFS


def test_server_vad_defaults_find_exactly_the_two_utterances(
    samples: np.ndarray, utterances: list[dict[str, Any]]
) -> None:
    settings = TurnDetection()
    vad = EnergyVad(
        RATE, settings.threshold, settings.prefix_padding_ms, settings.silence_duration_ms
    )
    edges = vad.feed(samples)
    starts = [edge.at_ms + settings.prefix_padding_ms for edge in edges if edge.started]
    stops = [edge.at_ms for edge in edges if not edge.started]
    assert len(starts) == len(stops) == len(utterances)
    for start, stop, item in zip(starts, stops, utterances, strict=True):
        assert abs(start - item["start_ms"]) <= 50
        assert abs(stop - item["end_ms"]) <= 50
