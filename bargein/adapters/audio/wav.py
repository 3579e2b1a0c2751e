"""WAV files as the user's voice and as a record of what the user heard, on one shared clock.

The source reads a WAV (integer or float samples, any rate, any channel count), converts it to
24 kHz mono and advances a VirtualClock as it yields each frame, in real time or as fast as the
consumer pulls. The sink is a MemorySink on the same clock that writes, on close, a WAV whose
sample n is what sounded while input sample n was captured - so input and output line up in
an editor.
"""

from __future__ import annotations

import asyncio
import os
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bargein.adapters.audio.memory import MemorySink, VirtualClock
from bargein.adapters.audio.protocols import AudioFrame
from bargein.adapters.audio.resample import resample_pcm16
from bargein.core.pcm import BYTES_PER_MS, RATE
from bargein.errors import WavError

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
"""WAV format tags: integer PCM, IEEE float, and the extensible header naming either."""
_HEADER_BYTES = 44
"""The header ``wave`` writes for PCM: RIFF, fmt and data chunk headers."""


def read_wav_24k_mono(path: str | Path) -> bytes:
    """Read a WAV file as 24 kHz mono PCM16, whatever its rate and channel count.

    Integer PCM of 8 (unsigned), 16, 24 or 32 bits and IEEE float of 32 or 64 bits are
    converted (also behind an extensible header); any other encoding is a ``WavError``
    naming it. Python 3.11's ``wave`` module reads 16-bit integer PCM only, so the RIFF
    chunks are walked here.
    """
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise WavError(f"{path}: no such file") from None
    except OSError as exc:
        raise WavError(f"{path}: cannot read ({exc.strerror})") from None
    tag, channels, rate, bits, data = _riff_chunks(path, raw)
    frame = channels * bits // 8
    samples = _as_float(path, tag, bits, data[: len(data) // frame * frame])
    mono = samples.reshape(-1, channels).mean(axis=1) if channels > 1 else samples
    pcm = np.clip(np.rint(mono * 32768.0), -32768, 32767).astype("<i2").tobytes()
    return resample_pcm16(pcm, rate, RATE)


def _riff_chunks(path: str | Path, raw: bytes) -> tuple[int, int, int, int, bytes]:
    """The format tag, channels, rate, bits per sample and sample bytes of a WAV file."""
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise WavError(f"{path}: not a WAV file (no RIFF/WAVE header)")
    fmt: tuple[int, int, int, int] | None = None
    offset = 12
    while offset + 8 <= len(raw):
        chunk, size = (
            raw[offset : offset + 4],
            int.from_bytes(raw[offset + 4 : offset + 8], "little"),
        )
        body = raw[offset + 8 : offset + 8 + size]
        if chunk == b"fmt " and len(body) >= 16:
            tag = int.from_bytes(body[0:2], "little")
            if tag == _EXTENSIBLE and len(body) >= 26:
                tag = int.from_bytes(body[24:26], "little")  # the sub-format GUID's first word
            fmt = (
                tag,
                int.from_bytes(body[2:4], "little"),
                int.from_bytes(body[4:8], "little"),
                int.from_bytes(body[14:16], "little"),
            )
        elif chunk == b"data":
            if fmt is None:
                break
            tag, channels, rate, bits = fmt
            if channels < 1 or rate < 1 or bits not in (8, 16, 24, 32, 64):
                raise WavError(
                    f"{path}: {channels} channels of {bits}-bit samples at {rate} Hz "
                    "cannot be played"
                )
            return tag, channels, rate, bits, body
        offset += 8 + size + (size & 1)  # chunks are padded to an even length
    raise WavError(f"{path}: a WAV file without {'a format' if fmt is None else 'a data'} chunk")


def _as_float(path: str | Path, tag: int, bits: int, data: bytes) -> npt.NDArray[np.float64]:
    """Samples scaled to [-1, 1)."""
    if tag == _PCM and bits == 8:
        return (np.frombuffer(data, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    if tag == _PCM and bits in (16, 32):
        return np.frombuffer(data, dtype=f"<i{bits // 8}").astype(np.float64) / 2.0 ** (bits - 1)
    if tag == _PCM and bits == 24:
        triples = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        return np.where(value >= 1 << 23, value - (1 << 24), value).astype(np.float64) / 2.0**23
    if tag == _FLOAT and bits in (32, 64):
        samples = np.frombuffer(data, dtype=f"<f{bits // 8}").astype(np.float64)
        return np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
    kind = {_PCM: "integer PCM", _FLOAT: "float", 6: "A-law", 7: "mu-law"}.get(tag, f"format {tag}")
    raise WavError(
        f"{path}: {bits}-bit {kind} samples are not supported; use 8/16/24/32-bit PCM or "
        "32/64-bit float (e.g. sox in.wav -b 16 out.wav)"
    )


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
    """A MemorySink on the source's clock that streams what sounded to ``path``.

    Sample n of the file is what sounded while input sample n was captured. Blocks go to the
    file as soon as they have sounded, so memory stays flat however long the conversation
    (the header's length is filled in by ``close()``, which also pads the file to the
    clock). ``output()`` reads back what was written so far.

    A file has no DAC: by default a block sounds as soon as it is pulled
    (``latency_frames=0``), so a barge-in is silent after one 10 ms block and the 5 ms
    fade, as in ``bargein talk --output heard.wav``; pass ``latency_frames`` to simulate a
    device's buffer."""

    def __init__(
        self,
        path: str | Path,
        clock: VirtualClock,
        *,
        block_frames: int = 240,
        latency_frames: int = 0,
    ) -> None:
        self._path = Path(path)
        folder = self._path.parent
        if self._path.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK):
            # found out now, not after the whole conversation, when the file is written
            raise WavError(f"{self._path}: cannot write a WAV file there")
        self._frames = 0  # samples written: file sample n sounded at clock sample n
        try:
            self._wav: wave.Wave_write | None = wave.open(str(self._path), "wb")  # noqa: SIM115 (closed by close())
            self._wav.setnchannels(1)
            self._wav.setsampwidth(2)
            self._wav.setframerate(RATE)
        except OSError as exc:
            raise WavError(f"{path}: cannot write ({exc.strerror})") from None
        super().__init__(
            clock, block_frames=block_frames, latency_frames=latency_frames, keep_ms=0
        )
        self._written = False

    def _retired(self, start: int, block: npt.NDArray[np.int16]) -> None:
        self._write_until(start)
        skip = max(0, self._frames - start)  # never rewrite what is in the file
        if skip < len(block):
            self._write(block[skip:])

    def _write_until(self, sample: int) -> None:
        gap = sample - self._frames
        if gap > 0:
            self._write(np.zeros(gap, dtype="<i2"))

    def _write(self, samples: npt.NDArray[np.int16]) -> None:
        if self._wav is None:
            return
        try:
            self._wav.writeframesraw(samples.astype("<i2", copy=False).tobytes())
        except OSError as exc:
            raise WavError(f"{self._path}: cannot write ({exc.strerror})") from None
        self._frames += len(samples)

    def output(self) -> bytes:
        """What sounded so far: the file's samples, then the blocks not yet written."""
        written = b""
        if self._frames:
            if self._wav is not None:
                self._wav._file.flush()  # type: ignore[attr-defined]
            with open(self._path, "rb") as file:
                file.seek(_HEADER_BYTES)
                written = file.read(self._frames * 2)
        return written + self._render(self._frames, self._clock.samples)

    def close(self) -> None:
        if self._written:
            return
        self._written = True
        end = self._clock.samples
        for start, block in self._sounded:
            if start < end:
                self._retired(start, block[: end - start])
        self._sounded.clear()
        self._write_until(end)
        super().close()
        wav, self._wav = self._wav, None
        if wav is not None:
            try:
                wav.close()
            except OSError as exc:
                raise WavError(f"{self._path}: cannot write ({exc.strerror})") from None
