"""A real session against the simulator, its audio on a clock that runs at the wall's pace,
and waits on what it reports: the example machines' and the two-phase tests' rig."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace

from bargein import Conversation
from bargein.adapters import endpoints
from bargein.adapters.audio.memory import MemorySink, MemorySource, VirtualClock
from bargein.adapters.audio.protocols import AudioSink
from bargein.adapters.session_config import SessionConfig
from bargein.adapters.transport import RealtimeTransport
from bargein.core import events as e
from bargein.session import Interrupted, Observation, Session, StateChanged
from bargein.sim import Simulator
from bargein.states import StateTable
from bargein.tools import Tool
from tests.support.waiting import DEADLINE_S, eventually, realtime_clock


@dataclass
class Live:
    session: Session
    seen: list[Observation]
    clock: VirtualClock

    def moves(self) -> list[tuple[str, str, str]]:
        return [(o.source, o.dest, o.trigger) for o in self.seen
                if isinstance(o, StateChanged) and o.source != o.dest]

    def interrupted(self) -> list[Interrupted]:
        return [o for o in self.seen if isinstance(o, Interrupted)]

    async def until(self, what: Callable[[], bool], timeout: float = DEADLINE_S) -> None:
        """Wait until ``what`` holds (checked every 10 ms), at most ``timeout`` seconds; the
        failure names the moves so far."""
        await eventually(what, self.moves, timeout)

    async def reach(self, source: str, dest: str) -> None:
        await self.until(lambda: any(m[:2] == (source, dest) for m in self.moves()))

    async def clock_passes(self, ms: float) -> None:
        target = self.clock.ms + ms
        await self.until(lambda: self.clock.ms >= target)


@contextlib.asynccontextmanager
async def live(sim: Simulator, table: StateTable, user: bytes, config: SessionConfig,
               sink: Callable[[VirtualClock], AudioSink] = MemorySink,
               tools: Sequence[Tool] = ()) -> AsyncIterator[Live]:
    """A session with ``table`` against ``sim``, ``config`` sent, the user's audio ``user``;
    ``sink`` makes the speaker on the session's clock; ``tools`` are declared and run."""
    clock = VirtualClock()
    transport = RealtimeTransport(endpoints.custom(sim.url, auth="none"), None)
    await transport.connect()
    if tools:
        config = replace(config, tools=tuple(t.spec for t in tools))
    session = Session(transport, MemorySource(clock, user), sink(clock), Conversation(table),
                      clock=lambda: clock.ms / 1000, linger_s=None, tools=tools)
    seen: list[Observation] = []
    session.subscribe(seen.append)
    async with realtime_clock(clock), session:
        session.handle(e.ConfigureSession(config))
        yield Live(session, seen, clock)
