"""G.711 against the standard's known code points, the reference rounding, and round trips."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bargein.adapters.audio.g711 import (
    alaw_decode,
    alaw_encode,
    ulaw_decode,
    ulaw_encode,
)
from bargein.errors import PcmError

ALL_INT16 = np.arange(-32768, 32768, dtype="<i2").tobytes()
ALL_CODES = bytes(range(256))


def _pcm(*values: int) -> bytes:
    return np.array(values, dtype="<i2").tobytes()


def test_ulaw_known_code_points() -> None:
    assert ulaw_encode(_pcm(0, -1, 32767, -32768)) == bytes([0xFF, 0x7E, 0x80, 0x00])
    assert ulaw_decode(bytes([0xFF, 0x7F, 0x80, 0x00])) == _pcm(0, 0, 32124, -32124)


def test_alaw_known_code_points() -> None:
    assert alaw_encode(_pcm(0, -1, 32767, -32768)) == bytes([0xD5, 0x55, 0xAA, 0x2A])
    assert alaw_decode(bytes([0xD5, 0x55, 0xAA, 0x2A])) == _pcm(8, -8, 32256, -32256)


@pytest.mark.parametrize(
    ("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)]
)
def test_every_code_survives_decode_then_encode(encode, decode) -> None:  # type: ignore[no-untyped-def]
    again = encode(decode(ALL_CODES))
    # mu-law has two codes for zero (0x7F and 0xFF); every other code maps back to itself.
    differing = [c for c, d in zip(ALL_CODES, again, strict=True) if c != d]
    assert differing in ([], [0x7F])


@pytest.mark.parametrize(
    ("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)]
)
def test_round_trip_error_is_within_half_a_step(encode, decode) -> None:  # type: ignore[no-untyped-def]
    x = np.frombuffer(ALL_INT16, dtype="<i2").astype(np.int64)
    y = np.frombuffer(decode(encode(ALL_INT16)), dtype="<i2").astype(np.int64)
    # Logarithmic quantiser: the error grows with the magnitude, at most ~1/32 of it plus the
    # smallest step; clipping near full scale is bounded by the top code (32124 / 32256).
    inside = np.abs(x) < 32000
    assert np.all(np.abs(y - x)[inside] <= np.abs(x[inside]) / 30 + 16)
    assert np.all(np.sign(y[np.abs(x) > 16]) == np.sign(x[np.abs(x) > 16]))


def test_matches_reference_rounding_of_audioop() -> None:
    """Python 3.11 still ships audioop (the G.191 reference algorithm): every input agrees."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    assert ulaw_encode(ALL_INT16) == audioop.lin2ulaw(ALL_INT16, 2)
    assert alaw_encode(ALL_INT16) == audioop.lin2alaw(ALL_INT16, 2)
    assert ulaw_decode(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)
    assert alaw_decode(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)


def test_odd_length_pcm_is_a_typed_error() -> None:
    with pytest.raises(PcmError, match="odd length"):
        ulaw_encode(b"\x00\x01\x02")
    with pytest.raises(PcmError, match="odd length"):
        alaw_encode(b"\x00")
