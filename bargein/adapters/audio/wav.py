"""WAV files as the user's voice and as a record of what the user heard, on one shared clock.

The source reads a PCM16 WAV (any rate, any channel count), converts it to 24 kHz mono and
advances a VirtualClock as it yields each frame, in real time or as fast as the consumer
pulls. The sink is a MemorySink on the same clock that writes, on close, a WAV whose sample n
is what sounded while input sample n was captured - so input and output line up in an editor.
"""

from __future__ import annotations

import asyncio
import os
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from bargein.adapters.audio.memory import MemorySink, VirtualClock
from bargein.adapters.audio.protocols import AudioFrame
from bargein.adapters.audio.resample import resample_pcm16
from bargein.core.pcm import BYTES_PER_MS, RATE
from bargein.errors import WavError


def read_wav_24k_mono(path: str | Path) -> bytes:
    """Read a PCM16 WAV of any rate and channel count as 24 kHz mono PCM16."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels = wav.getnchannels()
            width = wav.getsampwidth()
            rate = wav.getframerate()
            data = wav.readframes(wav.getnframes())
    except FileNotFoundError:
        raise WavError(f"{path}: no such file") from None
    except (wave.Error, EOFError) as exc:
        raise WavError(f"{path}: not a readable PCM WAV file ({exc})") from None
    if width != 2:
        raise WavError(f"{path}: {8 * width}-bit samples; only 16-bit PCM is supported")
    samples = np.frombuffer(data[: len(data) // (2 * channels) * 2 * channels], dtype="<i2")
    mono = samples.reshape(-1, channels).mean(axis=1) if channels > 1 else samples
    pcm = np.rint(mono).astype("<i2").tobytes()
    return resample_pcm16(pcm, rate, RATE)


def write_wav(path: str | Path, pcm: bytes, rate: int = RATE) -> Path:
    """Write PCM16 mono ``pcm`` at ``rate`` as a WAV file."""
    try:
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            wav.writeframes(pcm)
    except OSError as exc:
        raise WavError(f"{path}: cannot write ({exc.strerror})") from None
    return Path(path)


class WavSource:
    """Streams a WAV file as 20 ms frames, then silence until closed."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: VirtualClock | None = None,
        realtime: bool = True,
        frame_ms: int = 20,
    ) -> None:
        self._pcm = read_wav_24k_mono(path)
        self.clock = clock if clock is not None else VirtualClock()
        self._realtime = realtime
        self._frame_bytes = frame_ms * BYTES_PER_MS
        self._offset = 0
        self._closed = False

    @property
    def exhausted(self) -> bool:
        """True once the whole file has been streamed; silence follows."""
        return self._offset >= len(self._pcm)

    async def frames(self) -> AsyncIterator[AudioFrame]:
        started = time.monotonic()
        self._offset = 0
        while not self._closed:
            offset = self._offset
            frame = self._pcm[offset : offset + self._frame_bytes]
            frame += bytes(self._frame_bytes - len(frame))
            offset = self._offset = offset + self._frame_bytes
            if self._realtime:
                due = started + offset / (2 * RATE)
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            else:
                await asyncio.sleep(0)
            if self._closed:
                return
            captured_at_ms = self.clock.ms
            self.clock.advance_samples(self._frame_bytes // 2)
            yield AudioFrame(frame, captured_at_ms)

    def close(self) -> None:
        self._closed = True


class WavSink(MemorySink):
    """A MemorySink on the source's clock that writes what sounded to ``path`` when closed."""

    def __init__(
        self,
        path: str | Path,
        clock: VirtualClock,
        *,
        block_frames: int = 240,
        latency_frames: int = 480,
    ) -> None:
        self._path = Path(path)
        folder = self._path.parent
        if self._path.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK):
            # found out now, not after the whole conversation, when the file is written
            raise WavError(f"{self._path}: cannot write a WAV file there")
        super().__init__(clock, block_frames=block_frames, latency_frames=latency_frames)
        self._written = False

    def close(self) -> None:
        if self._written:
            return
        self._written = True
        pcm = self.output()
        super().close()
        write_wav(self._path, pcm)
