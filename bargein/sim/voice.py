"""What the simulated assistant sounds like: espeak-ng when installed, else a synthetic voice.

The synthetic voice is deterministic speech-like audio (voiced harmonics under syllable
envelopes, pauses between words) so a client's VAD, playback and truncation see something
shaped like speech without any external program. Both voices return PCM16 mono 24 kHz.
"""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import subprocess
import wave
from typing import Literal

import numpy as np

from bargein.adapters.session_config import SAMPLE_RATES
from bargein.core.pcm import RATE
from bargein.errors import SimError
from bargein.sim.settings import Format

VoiceKind = Literal["auto", "espeak", "synthetic"]

_SYLLABLE_MS = 170
_SYLLABLE_GAP_MS = 30
_WORD_GAP_MS = 90
_PEAK = 0.5 * 32767
_VOWEL_GROUPS = re.compile(r"[aeiouy]+")


def espeak_available() -> bool:
    """Whether the espeak-ng program can be run."""
    return shutil.which("espeak-ng") is not None


def speak(text: str, kind: VoiceKind = "auto") -> bytes:
    """PCM16 24 kHz audio of ``text`` in the chosen voice (``auto``: espeak-ng if installed)."""
    if kind == "espeak" or (kind == "auto" and espeak_available()):
        return _espeak(text)
    if kind in ("auto", "synthetic"):
        return _synthetic(text)
    raise SimError(f"unknown voice {kind!r}: expected 'auto', 'espeak' or 'synthetic'")


def _espeak(text: str) -> bytes:
    from bargein.adapters.audio.resample import resample_pcm16

    try:
        wav = subprocess.run(
            ["espeak-ng", "--stdout", "-v", "en-us", text],
            check=True,
            capture_output=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise SimError(f"espeak-ng could not speak the reply: {exc}") from None
    with wave.open(io.BytesIO(wav)) as reader:
        rate = reader.getframerate()
        pcm = reader.readframes(reader.getnframes())
    return resample_pcm16(pcm, rate, RATE)


class Voicebank:
    """The script's replies rendered once, per output format, so replies start at once.

    ``prepare`` speaks every text in a worker thread before the server accepts clients;
    ``audio`` then only looks up (and on first use per G.711 format, encodes) the result.
    """

    def __init__(self, kind: VoiceKind) -> None:
        self._kind = kind
        self._audio: dict[tuple[str, Format], bytes] = {}

    async def prepare(self, texts: tuple[str, ...]) -> None:
        for text in texts:
            if (text, "pcm16") not in self._audio:
                self._audio[text, "pcm16"] = await asyncio.to_thread(speak, text, self._kind)

    async def audio_async(self, text: str, fmt: Format) -> bytes:
        """``text`` spoken in ``fmt``, speaking a text not prepared in a worker thread (an
        answer to a tool's output, a pinned reply), so the server never stalls on it."""
        if (text, fmt) not in self._audio and (text, "pcm16") not in self._audio:
            self._audio[text, "pcm16"] = await asyncio.to_thread(speak, text, self._kind)
        return self.audio(text, fmt)

    def audio(self, text: str, fmt: Format) -> bytes:
        """``text`` spoken in ``fmt`` (PCM16 24 kHz, or G.711 at 8 kHz)."""
        if (text, fmt) not in self._audio:
            pcm = self._audio.get((text, "pcm16")) or speak(text, self._kind)
            self._audio[text, "pcm16"] = pcm
            if fmt != "pcm16":
                from bargein.adapters.audio import g711
                from bargein.adapters.audio.resample import resample_pcm16

                narrow = resample_pcm16(pcm, RATE, SAMPLE_RATES[fmt])
                encode = g711.ulaw_encode if fmt == "g711_ulaw" else g711.alaw_encode
                self._audio[text, fmt] = encode(narrow)
        return self._audio[text, fmt]


def _syllables(word: str) -> int:
    return max(1, len(_VOWEL_GROUPS.findall(word.lower())))


def _synthetic(text: str) -> bytes:
    words = text.split() or ["..."]
    pieces: list[np.ndarray] = []
    for word_index, word in enumerate(words):
        for syllable in range(_syllables(word)):
            pieces.append(_syllable(word_index * 7 + syllable))
            pieces.append(np.zeros(RATE * _SYLLABLE_GAP_MS // 1000))
        pieces.append(np.zeros(RATE * _WORD_GAP_MS // 1000))
    signal = np.concatenate(pieces)
    return (signal * _PEAK).astype("<i2").tobytes()


def _syllable(seed: int) -> np.ndarray:
    """One voiced syllable: a gliding pitch with decaying harmonics under a smooth envelope."""
    n = RATE * _SYLLABLE_MS // 1000
    t = np.arange(n) / RATE
    f0_start = 110.0 + 25.0 * ((seed * 37) % 5)
    f0 = f0_start * (1.0 - 0.12 * t / t[-1])
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    formant = 500.0 + 150.0 * ((seed * 11) % 6)
    wave_ = np.zeros(n)
    for harmonic in range(1, 13):
        weight = 1.0 / harmonic + np.exp(-(((harmonic * f0_start - formant) / 300.0) ** 2))
        wave_ += weight * np.sin(harmonic * phase)
    wave_ /= np.max(np.abs(wave_))
    return wave_ * np.hanning(n)
