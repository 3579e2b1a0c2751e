"""The two shapes every audio adapter takes, and the session relies on.

Audio is PCM16 mono at 24 kHz (48 bytes per ms) on both sides; adapters resample to and
from whatever their device or file holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """One captured frame and when its first sample was captured, on the source's clock."""

    pcm: bytes
    captured_at_ms: float


@dataclass(frozen=True, slots=True)
class FlushReport:
    """What a flush achieved: ms heard per item, and how long until the output was silent."""

    heard_ms: Mapping[str, float] = field(default_factory=dict)
    silent_after_ms: float = 0.0


@runtime_checkable
class AudioSource(Protocol):
    """Where the user's voice comes from (microphone, WAV file, memory)."""

    def frames(self) -> AsyncIterator[AudioFrame]:
        """Yield frames as they are captured, until the source is closed or ends."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class AudioSink(Protocol):
    """Where the assistant's voice goes, and the only judge of what the user heard."""

    def play(self, item_id: str, pcm: bytes) -> None:
        """Queue audio of one item; never blocks."""
        ...

    def flush(self) -> FlushReport:
        """Silence the output within one block (with a short fade) and drop what is queued."""
        ...

    def heard_ms(self) -> Mapping[str, float]:
        """Milliseconds of each item that have left the device so far (latency included)."""
        ...

    @property
    def idle(self) -> bool:
        """True when nothing is queued or still sounding."""
        ...

    def close(self) -> None: ...

    # Optional: ``ends_in_s() -> float``, the seconds until all audio given so far has
    # sounded if no more comes (an estimate). The session then polls the sink at that
    # moment too, so it reports the end of a reply on time (``Session``'s docstring).


@runtime_checkable
class Duckable(Protocol):
    """A sink that can lower its voice without stopping: two-phase barge-in ducks the reply
    while it judges a sound, and restores it if the sound was not an interruption."""

    def duck(self, gain: float) -> None:
        """Play from the next block on at ``gain`` (0.0 to 1.0; 1.0 restores), ramped so
        the change makes no click. Queued audio and what counts as heard are unchanged."""
        ...
