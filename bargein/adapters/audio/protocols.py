"""The two shapes every audio adapter takes, and the session relies on.

Audio is PCM16 mono at 24 kHz (48 bytes per ms) on both sides; adapters resample to and
from whatever their device or file holds.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


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
class Delivering(Protocol):
    """A source that hands each frame over as it is captured (optional).

    The session prefers ``deliver`` to ``frames()``: a frame is then handled where it
    arrives (in the clock's tick, in the loop's call from the audio thread), with no task
    wake-up and no generator steps per frame: with 250-300 sessions in one process a
    frame's whole cost fell by 13-19 % (``bench/bench_scale.py``). A source that delivers
    can build ``frames()`` on it with ``frames_of``, so the two never disagree."""

    async def deliver(self, on_frame: Callable[[AudioFrame], None]) -> None:
        """Call ``on_frame`` with each frame as it is captured, in order, on the event
        loop's thread, until the source is closed or ends (then return); raise if it fails.
        ``on_frame`` does not raise (the session contains its own failures)."""
        ...


async def frames_of(
    deliver: Callable[[Callable[[AudioFrame], None]], Coroutine[Any, Any, None]],
) -> AsyncIterator[AudioFrame]:
    """The frames ``deliver`` hands over, as ``frames()`` yields them: in order, ending
    when it returns, raising what it raises."""
    loop = asyncio.get_running_loop()
    ready: deque[AudioFrame] = deque()
    wake: asyncio.Future[None] | None = None

    def poke(*_: object) -> None:
        if wake is not None and not wake.done():
            wake.set_result(None)

    def on_frame(frame: AudioFrame) -> None:
        ready.append(frame)
        poke()

    delivering = loop.create_task(deliver(on_frame))
    delivering.add_done_callback(poke)
    try:
        while True:
            if ready:
                yield ready.popleft()
            elif delivering.done():
                delivering.result()  # its failure, if it failed
                return
            else:
                wake = loop.create_future()
                await wake
                wake = None
    finally:
        delivering.cancel()


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
