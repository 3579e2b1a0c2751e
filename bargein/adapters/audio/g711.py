"""ITU-T G.711 mu-law and A-law for telephony bridges, with numpy (``audioop`` left Python 3.13).

Encoding goes through a 65,536-entry table built once from the standard segment algorithm,
decoding through a 256-entry table, so both are a single numpy gather per call.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

from bargein.core.pcm import check_pcm16

_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159  # 32635 >> 2
_ULAW_SEGMENT_ENDS = np.array(
    [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32
)
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def _all_int16() -> npt.NDArray[np.int32]:
    """Every int16 value, ordered by its unsigned bit pattern (so a uint16 view indexes it)."""
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


@cache
def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    x = _all_int16() >> 2  # mu-law works on 14-bit samples (G.191 reference rounding)
    mask = np.where(x >= 0, 0xFF, 0x7F)
    magnitude = np.minimum(np.abs(x), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, magnitude, side="left")
    code = (np.minimum(segment, 7) << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    return ((code ^ mask) & 0xFF).astype(np.uint8)


@cache
def _ulaw_decode_table() -> npt.NDArray[np.int16]:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


@cache
def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    x = _all_int16() >> 3  # A-law works on 13-bit samples
    mask = np.where(x >= 0, 0xD5, 0x55)
    magnitude = np.where(x >= 0, x, -x - 1)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude, side="left")
    shift = np.where(segment < 2, 1, segment)
    code = (np.minimum(segment, 7) << 4) | ((magnitude >> shift) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    return ((code ^ mask) & 0xFF).astype(np.uint8)


@cache
def _alaw_decode_table() -> npt.NDArray[np.int16]:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (code & 0x70) >> 4
    magnitude = ((code & 0x0F) << 4) + np.where(segment == 0, 8, 0x108)
    magnitude = np.where(segment > 1, magnitude << np.maximum(segment - 1, 0), magnitude)
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


def _as_uint16(pcm16: bytes) -> npt.NDArray[np.uint16]:
    check_pcm16(pcm16)
    return np.frombuffer(pcm16, dtype="<u2")


def ulaw_encode(pcm16: bytes) -> bytes:
    """Encode little-endian PCM16 to G.711 mu-law, one byte per sample."""
    return _ulaw_encode_table()[_as_uint16(pcm16)].tobytes()


def ulaw_decode(data: bytes) -> bytes:
    """Decode G.711 mu-law to little-endian PCM16."""
    codes = np.frombuffer(data, dtype=np.uint8)
    return _ulaw_decode_table()[codes].astype("<i2").tobytes()


def alaw_encode(pcm16: bytes) -> bytes:
    """Encode little-endian PCM16 to G.711 A-law, one byte per sample."""
    return _alaw_encode_table()[_as_uint16(pcm16)].tobytes()


def alaw_decode(data: bytes) -> bytes:
    """Decode G.711 A-law to little-endian PCM16."""
    codes = np.frombuffer(data, dtype=np.uint8)
    return _alaw_decode_table()[codes].astype("<i2").tobytes()
