"""How a session with a finite input ends: ``linger_s`` of quiet once the input is over, and
a push-to-talk key held down is not quiet (the user has the floor), whatever the state."""

from __future__ import annotations

import asyncio

from bargein.adapters.audio.memory import MemorySink, MemorySource, VirtualClock
from bargein.adapters.session_config import PushToTalk, SessionConfig
from bargein.core import events as e
from bargein.session import Session
from bargein.testing import MemoryServer, VirtualTime


class EndingSource(MemorySource):
    """Silence that is over (``exhausted``) once the clock reaches ``over_ms``."""

    def __init__(self, clock: VirtualClock, over_ms: float) -> None:
        super().__init__(clock)
        self.at, self.over_ms = clock, over_ms

    @property
    def exhausted(self) -> bool:
        return self.at.ms >= self.over_ms


async def test_a_key_held_down_keeps_the_session_from_ending_until_the_turn_is_sent() -> None:
    time, server = VirtualTime(), MemoryServer()
    session = Session(server.transport, EndingSource(time.clock, over_ms=500),
                      MemorySink(time.clock), clock=time.now, sleep=time.sleep, linger_s=0.2)
    async with session:
        waiting = asyncio.ensure_future(session.wait())
        await server.emit(e.SessionReady(interrupt_response=True))
        session.handle(e.ConfigureSession(SessionConfig(turn_detection=PushToTalk())))
        session.handle(e.TalkPressed())
        await time.advance(2000)  # the input is long over; the key is still down
        assert not waiting.done() and session.conversation.key_down
        session.handle(e.TalkReleased())
        await time.advance(20)
        assert "CreateResponse" in [type(x).__name__ for x in server.commands()]
        await time.advance(300)  # quiet from the release on: linger_s later it ends
        assert waiting.done() and waiting.result() == "input over"
