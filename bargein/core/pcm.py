"""The one audio format inside bargein, and the one check of it.

Everything between the adapters is PCM16 mono at 24 kHz, little-endian: the codec converts
other wire formats and the device adapters resample, so the core, the ledger and every
adapter count milliseconds one way only.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from bargein.errors import PcmError

RATE: Final = 24_000
"""Samples per second."""
SAMPLE_BYTES: Final = 2
"""Bytes per sample (16-bit, mono)."""
SAMPLES_PER_MS: Final = RATE // 1000
BYTES_PER_MS: Final = SAMPLES_PER_MS * SAMPLE_BYTES
"""48: what the Realtime API's ``audio_end_ms`` counts against."""


def check_pcm16(pcm: bytes, what: str = "PCM16 audio") -> None:
    """Raise ``PcmError`` unless ``pcm`` is a whole number of 16-bit samples."""
    if len(pcm) % SAMPLE_BYTES:
        raise PcmError(f"{what} has an odd length ({len(pcm)} bytes); expected whole samples")


def pcm16_samples(pcm: bytes, what: str = "PCM16 audio") -> npt.NDArray[np.int16]:
    """``pcm`` as a read-only array of samples (no copy), after ``check_pcm16``."""
    check_pcm16(pcm, what)
    return np.frombuffer(pcm, dtype="<i2")
