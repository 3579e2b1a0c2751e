"""Memory audio sources for session tests on virtual time."""

from __future__ import annotations

from bargein.adapters.audio.memory import MemorySource, VirtualClock


class EndingSource(MemorySource):
    """Silence that is over (``exhausted``) once the clock reaches ``over_ms``: a finite
    input, as a WAV file is."""

    def __init__(self, clock: VirtualClock, over_ms: float) -> None:
        super().__init__(clock)
        self.at, self.over_ms = clock, over_ms

    @property
    def exhausted(self) -> bool:
        return self.at.ms >= self.over_ms
