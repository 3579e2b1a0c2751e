"""SileroVad on real sounds made here: espeak-ng speech is found near its true onset; silence,
a steady tone and steady noise are not speech; what it makes of a 150 ms cough is pinned."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bargein.adapters.audio.silero import SileroVad
from bargein.adapters.audio.vad import VadEdge, VoiceDetector
from bargein.adapters.audio.wav import read_wav_24k_mono
from bargein.errors import VadUnavailable
from bargein.sim.voice import speak
from tests.support.sim_support import silence, tone

Samples = np.ndarray[Any, np.dtype[np.int16]]


def pcm(*pieces: bytes) -> Samples:
    return np.frombuffer(b"".join(pieces), dtype="<i2")


def edges(vad: SileroVad, audio: Samples, frame_ms: int = 20) -> list[VadEdge]:
    step = 24 * frame_ms
    found: list[VadEdge] = []
    for start in range(0, audio.size, step):
        found += vad.feed(audio[start : start + step])
    return found


def sox(tmp_path: Path, name: str, *effect: str) -> bytes:
    """A sound made by sox at 24 kHz mono PCM16, repeatable (-R: a fixed random seed)."""
    if shutil.which("sox") is None:
        pytest.skip("sox is not installed (scripts/install-system-deps.sh)")
    path = tmp_path / f"{name}.wav"
    subprocess.run(["sox", "-R", "-n", "-r", "24000", "-c", "1", "-b", "16", str(path), *effect],
                   check=True, timeout=60)
    return read_wav_24k_mono(path)


def espeak(text: str) -> bytes:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/install-system-deps.sh)")
    return speak(text, "espeak")


def test_is_a_voice_detector() -> None:
    assert isinstance(SileroVad(), VoiceDetector)


def test_speech_is_found_within_100_ms_of_its_onset_and_ends_after_it() -> None:
    voice = pcm(espeak("Wait, stop there, I have a question about the second point."))
    loud = np.flatnonzero(np.abs(voice.astype(np.int32)) > 300)
    onset_ms, offset_ms = 1000 + loud[0] / 24, 1000 + loud[-1] / 24
    vad = SileroVad()
    found = edges(vad, pcm(silence(1000), voice.tobytes(), silence(1000)))
    assert [edge.started for edge in found] == [True, False], found
    assert abs(found[0].at_ms - onset_ms) <= 100, (found, onset_ms)
    assert offset_ms - 100 <= found[1].at_ms <= offset_ms + 100, (found, offset_ms)
    assert not vad.speaking


def test_frame_size_does_not_change_the_edges() -> None:
    audio = pcm(silence(730), espeak("Hello there."), silence(900))
    assert edges(SileroVad(), audio, frame_ms=20) == edges(SileroVad(), audio, frame_ms=7)


@pytest.mark.parametrize("kind", ["silence", "tone", "noise"])
def test_silence_and_steady_sounds_are_not_speech(tmp_path: Path, kind: str) -> None:
    sound = {
        "silence": lambda: silence(3000),
        "tone": lambda: tone(3000, dbfs=-12.0),
        "noise": lambda: sox(tmp_path, "noise", "synth", "3", "pinknoise", "gain", "-12"),
    }[kind]()
    vad = SileroVad()
    assert edges(vad, pcm(sound)) == []
    assert vad.probability < 0.5


def test_a_150_ms_cough_is_not_speech(tmp_path: Path) -> None:
    # a cough-like burst: band-passed noise, a 5 ms attack and a 120 ms decay, at -6 dBFS peak
    cough = sox(tmp_path, "cough", "synth", "0.15", "pinknoise", "bandpass", "1000", "1.5",
                "fade", "q", "0.005", "0.15", "0.12", "norm", "-6")
    assert edges(SileroVad(), pcm(silence(500), cough, silence(800))) == []


def test_min_speech_ms_drops_an_onset_shorter_than_it() -> None:
    short = pcm(silence(500), espeak("Yes."), silence(800))
    assert edges(SileroVad(min_speech_ms=64), short)
    assert edges(SileroVad(min_speech_ms=2000), short) == []


def test_a_missing_model_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(VadUnavailable, match="model could not be loaded"):
        SileroVad(model_path=str(tmp_path / "absent.onnx"))
