"""Resampling keeps speech-band tones, rejects what would alias, and streams like one shot."""

from __future__ import annotations

import numpy as np
import pytest

from bargein.adapters.audio.resample import StreamResampler, resample_pcm16
from bargein.errors import AudioError, PcmError

PAIRS = [(8000, 24000), (24000, 8000), (44100, 24000), (48000, 24000), (16000, 24000)]


def _tone(freq: float, rate: int, seconds: float = 0.5, amp: float = 8000.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return np.rint(amp * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_tone_in_the_passband_is_preserved(src: int, dst: int) -> None:
    out = np.frombuffer(resample_pcm16(_tone(1000.0, src), src, dst), dtype="<i2")
    assert len(out) == dst // 2
    expected = 8000.0 * np.sin(2 * np.pi * 1000.0 * np.arange(len(out)) / dst)
    edge = dst // 100  # the filter's start-up and tail
    assert np.max(np.abs(out[edge:-edge] - expected[edge:-edge])) <= 3.0


@pytest.mark.parametrize(("src", "dst"), [p for p in PAIRS if p[1] < p[0]])
def test_tone_above_the_new_nyquist_does_not_alias(src: int, dst: int) -> None:
    out = np.frombuffer(resample_pcm16(_tone(dst / 2 * 1.15, src), src, dst), dtype="<i2")
    edge = dst // 100
    assert np.max(np.abs(out[edge:-edge])) < 8000 * 0.01  # below -40 dB


@pytest.mark.parametrize(("src", "dst"), PAIRS)
@pytest.mark.parametrize("block", [1, 160, 441, 962])
def test_streaming_in_blocks_equals_one_shot(src: int, dst: int, block: int) -> None:
    pcm = _tone(440.0, src, seconds=0.1)
    resampler = StreamResampler(src, dst)
    streamed = b"".join(
        resampler.process(pcm[i : i + 2 * block]) for i in range(0, len(pcm), 2 * block)
    )
    assert streamed + resampler.flush() == resample_pcm16(pcm, src, dst)


def test_same_rate_passes_through() -> None:
    pcm = _tone(300.0, 24000, seconds=0.01)
    assert resample_pcm16(pcm, 24000, 24000) == pcm


def test_output_length_is_ceiling_of_the_ratio() -> None:
    assert len(resample_pcm16(b"\x00\x00" * 7, 24000, 8000)) == 2 * 3
    assert len(resample_pcm16(b"\x00\x00" * 7, 8000, 24000)) == 2 * 21


def test_bad_input_is_a_typed_error() -> None:
    with pytest.raises(AudioError, match="positive"):
        StreamResampler(0, 24000)
    with pytest.raises(PcmError, match="odd length"):
        resample_pcm16(b"\x00", 8000, 24000)
