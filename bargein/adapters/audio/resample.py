"""Polyphase windowed-sinc resampling of PCM16 mono, one-shot or across streamed blocks.

Telephony (8 kHz), devices (44.1/48 kHz) and files meet bargein's 24 kHz here. The ratio is
reduced to up/down integers; each output sample is a dot product of nearby input samples with
one of ``up`` precomputed Kaiser-windowed sinc phases, low-passed below the lower Nyquist rate
so downsampling does not alias.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import numpy.typing as npt

from bargein.core.pcm import pcm16_samples
from bargein.errors import AudioError

_ZERO_CROSSINGS = 12  # sinc lobes on each side of the centre
_KAISER_BETA = 8.0  # about 80 dB stop-band attenuation
_ROLLOFF = 0.92  # cutoff as a fraction of the lower Nyquist rate, leaving a transition band
_CHUNK = 4096  # output samples computed per vectorised step, to bound memory


@cache
def _phases(up: int, down: int) -> tuple[npt.NDArray[np.float64], int]:
    """The filter table ``[phase, tap]`` and the offset of tap 0 relative to the base sample."""
    cutoff = _ROLLOFF * min(1.0, up / down)  # in cycles per input sample, times 2
    half_width = _ZERO_CROSSINGS / cutoff
    first = -math.floor(half_width)
    taps = np.arange(first, math.floor(half_width) + 2)
    # Output k sits at input position base + p/up; tap j reads input base + j.
    tau = np.arange(up)[:, None] / up - taps[None, :]
    inside = np.abs(tau) < half_width
    window = np.i0(_KAISER_BETA * np.sqrt(np.clip(1.0 - (tau / half_width) ** 2, 0.0, 1.0)))
    table = np.where(inside, cutoff * np.sinc(cutoff * tau) * window / np.i0(_KAISER_BETA), 0.0)
    table /= table.sum(axis=1, keepdims=True)  # unity gain at DC for every phase
    return table, first


class StreamResampler:
    """Resamples a PCM16 stream block by block, keeping the filter history between blocks.

    Output lags input by the filter's half width (under 1 ms at the rates bargein uses);
    ``flush()`` returns the tail, so a whole stream comes out as ``ceil(n * dst / src)`` samples.
    """

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise AudioError(f"sample rates must be positive, got {src_rate} -> {dst_rate} Hz")
        g = math.gcd(src_rate, dst_rate)
        self._up = dst_rate // g
        self._down = src_rate // g
        self._table, self._first = _phases(self._up, self._down)
        self._last = self._first + self._table.shape[1] - 1
        # Input history; self._origin is the absolute index of its first sample.
        self._history = np.zeros(-self._first, dtype=np.float64)
        self._origin = self._first
        self._consumed = 0  # input samples received so far
        self._produced = 0  # output samples emitted so far

    def process(self, pcm: bytes) -> bytes:
        """Feed a block; return every output sample that the input so far determines."""
        if self._up == self._down:
            return pcm
        samples = pcm16_samples(pcm)
        self._history = np.concatenate([self._history, samples.astype(np.float64)])
        self._consumed += len(samples)
        return self._emit(self._origin + len(self._history))

    def flush(self) -> bytes:
        """Return the remaining output of the stream, as if it were followed by silence."""
        if self._up == self._down:
            return b""
        self._history = np.concatenate([self._history, np.zeros(self._last + 1)])
        target = -(-self._consumed * self._up // self._down)
        return self._emit(self._origin + len(self._history), limit=target)

    def _emit(self, available: int, limit: int | None = None) -> bytes:
        # Output k needs input up to base(k) + last < available.
        end = ((available - self._last) * self._up - 1) // self._down + 1
        if limit is not None:
            end = min(end, limit)
        end = max(end, self._produced)
        out = np.empty(end - self._produced, dtype=np.float64)
        taps = np.arange(self._first, self._last + 1)
        for start in range(self._produced, end, _CHUNK):
            k = np.arange(start, min(start + _CHUNK, end), dtype=np.int64)
            base = k * self._down // self._up
            phase = k * self._down % self._up
            window = self._history[base[:, None] + taps[None, :] - self._origin]
            out[start - self._produced : start - self._produced + len(k)] = np.einsum(
                "ij,ij->i", window, self._table[phase]
            )
        self._produced = end
        keep_from = self._produced * self._down // self._up + self._first
        drop = keep_from - self._origin
        if drop > 0:
            self._history = self._history[drop:]
            self._origin = keep_from
        return np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes()



def resample_pcm16(pcm: bytes, src_rate: int, dst_rate: int) -> bytes:
    """Resample a whole PCM16 mono buffer; the result has ``ceil(n * dst / src)`` samples."""
    resampler = StreamResampler(src_rate, dst_rate)
    return resampler.process(pcm) + resampler.flush()
