"""WAV source and sink: validation, conversion to 24 kHz mono, pacing, and clock alignment."""

from __future__ import annotations

import struct
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from bargein.adapters.audio.protocols import AudioSink, AudioSource
from bargein.adapters.audio.wav import WavSink, WavSource, read_wav_24k_mono
from bargein.errors import WavError

MS = 24


def _write(path: Path, samples: np.ndarray, rate: int, channels: int = 1, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


def test_stereo_48k_becomes_24k_mono_of_the_same_length(tmp_path: Path) -> None:
    t = np.arange(48000 // 2) / 48000  # 500 ms
    left = 6000 * np.sin(2 * np.pi * 300 * t)
    stereo = np.rint(np.stack([left, left], axis=1)).astype("<i2")
    pcm = read_wav_24k_mono(_write(tmp_path / "s.wav", stereo, 48000, channels=2))
    out = np.frombuffer(pcm, dtype="<i2")
    assert len(out) == 500 * MS
    expected = 6000 * np.sin(2 * np.pi * 300 * np.arange(len(out)) / 24000)
    assert np.max(np.abs(out[240:-240] - expected[240:-240])) < 10


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"RIFF\x00\x00\x00\x00not a wave at all", "not a WAV file"),
        (b"RIFF\x04\x00\x00\x00WAVE", "without a format chunk"),
        ("mulaw", "8-bit mu-law samples are not supported"),
        ("12bit", "12-bit samples at 8000 Hz cannot be played"),
    ],
)
def test_bad_files_are_one_line_typed_errors(
    tmp_path: Path, content: bytes | str | None, message: str
) -> None:
    path = tmp_path / "bad.wav"
    if content == "mulaw":
        path.write_bytes(_riff(7, 8000, 8, bytes(100)))
    elif content == "12bit":
        path.write_bytes(_riff(1, 8000, 12, bytes(100)))
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(WavError, match=message) as err:
        WavSource(path)
    assert "\n" not in str(err.value)


def _riff(tag: int, rate: int, bits: int, data: bytes, channels: int = 1) -> bytes:
    """A WAV file of any format tag, written by hand (the ``wave`` module writes PCM only)."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _extensible(tag: int, rate: int, bits: int, data: bytes) -> bytes:
    """The same, behind a WAVE_FORMAT_EXTENSIBLE header whose sub-format is ``tag``."""
    block = bits // 8
    guid = struct.pack("<H", tag) + bytes.fromhex("000000001000800000aa00389b71")
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 1, rate, rate * block, block, bits, 22, bits, 4)
    fmt += guid
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


_TONE = 0.25 * np.sin(2 * np.pi * 500 * np.arange(4800) / 24000)
"""200 ms of a 500 Hz tone at a quarter of full scale, as floats in [-1, 1)."""


@pytest.mark.parametrize(
    "encoded",
    [
        pytest.param(_riff(3, 24000, 32, _TONE.astype("<f4").tobytes()), id="float32"),
        pytest.param(_riff(3, 24000, 64, _TONE.astype("<f8").tobytes()), id="float64"),
        pytest.param(
            _riff(1, 24000, 8, np.rint(_TONE * 128 + 128).astype(np.uint8).tobytes()), id="u8"
        ),
        pytest.param(
            _riff(1, 24000, 32, np.rint(_TONE * 2**31).astype("<i4").tobytes()), id="int32"
        ),
        pytest.param(
            _riff(
                1,
                24000,
                24,
                np.rint(_TONE * 2**23).astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes(),
            ),
            id="int24",
        ),
        pytest.param(_extensible(3, 24000, 32, _TONE.astype("<f4").tobytes()), id="extensible"),
    ],
)
def test_float_and_other_integer_wavs_are_converted_to_pcm16(
    tmp_path: Path, encoded: bytes
) -> None:
    path = tmp_path / "in.wav"
    path.write_bytes(encoded)
    out = np.frombuffer(read_wav_24k_mono(path), dtype="<i2").astype(np.float64)
    assert len(out) == len(_TONE)
    assert np.max(np.abs(out - _TONE * 32768)) < 32768 / 100  # within 8-bit quantisation


async def test_fast_source_streams_the_file_then_silence_on_its_clock(tmp_path: Path) -> None:
    samples = np.full(50 * MS, 1234, dtype="<i2")
    source = WavSource(_write(tmp_path / "a.wav", samples, 24000), realtime=False)
    assert isinstance(source, AudioSource)
    got = []
    async for frame in source.frames():
        got.append(frame)
        if len(got) == 5:
            source.close()
    assert [f.captured_at_ms for f in got] == [0.0, 20.0, 40.0, 60.0, 80.0]
    assert source.clock.ms == 100.0
    pcm = np.frombuffer(b"".join(f.pcm for f in got), dtype="<i2")
    assert np.all(pcm[: 50 * MS] == 1234) and not pcm[50 * MS :].any()


async def test_realtime_source_paces_frames_at_the_capture_rate(tmp_path: Path) -> None:
    source = WavSource(_write(tmp_path / "a.wav", np.zeros(200 * MS, dtype="<i2"), 24000))
    started = time.monotonic()
    count = 0
    async for _ in source.frames():
        count += 1
        if count == 10:
            break
    assert time.monotonic() - started >= 0.19  # ten 20 ms frames cannot arrive sooner


async def test_sink_writes_what_played_aligned_to_the_input(tmp_path: Path) -> None:
    source = WavSource(
        _write(tmp_path / "in.wav", np.zeros(500 * MS, dtype="<i2"), 24000), realtime=False
    )
    sink = WavSink(tmp_path / "out.wav", source.clock, block_frames=240, latency_frames=480)
    assert isinstance(sink, AudioSink)
    report = None
    async for frame in source.frames():
        if frame.captured_at_ms == 180.0:  # clock at 200 ms once this frame is yielded
            sink.play("a", np.full(200 * MS, 3000, dtype="<i2").tobytes())
        if frame.captured_at_ms == 280.0:  # clock at 300 ms
            report = sink.flush()
        if frame.captured_at_ms == 480.0:
            source.close()
    sink.close()
    assert report is not None
    with wave.open(str(tmp_path / "out.wav"), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getnframes()) == (24000, 1, 500 * MS)
        out = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    # Played at 200 ms -> pulled at the next block (210 ms) -> sounds 20 ms later, at 230 ms.
    # Flushed at 300 ms: blocks pulled up to 300 ms sound until 330 ms, then a 5 ms fade.
    sounding = np.flatnonzero(out)
    assert sounding[0] == 230 * MS
    assert 334 * MS < sounding[-1] < 335 * MS
    assert report.heard_ms["a"] == pytest.approx(335 - 230)
