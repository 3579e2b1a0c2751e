"""How a session with a finite input ends: ``linger_s`` of quiet once the input is over. A
push-to-talk key held down is not quiet (the user has the floor), whatever the state, and
neither is a reply asked for and not yet begun (until the liveness bound gives it up)."""

from __future__ import annotations

import asyncio

from bargein.adapters.audio.memory import MemorySink
from bargein.adapters.session_config import PushToTalk, SessionConfig
from bargein.core import events as e
from bargein.session import Session
from bargein.testing import MemoryServer, VirtualTime, capture_logs, reply
from tests.support.audio_sources import EndingSource


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
        await time.advance(1000)  # the reply is asked for: not quiet until it has come
        assert not waiting.done() and session.conversation.reply_asked
        await server.emit(*reply("resp_1", "item_1", 200))
        await time.advance(100)
        assert not waiting.done() and not session.conversation.reply_asked
        await time.advance(500)  # played out at about 260 ms: linger_s of quiet later it ends
        assert waiting.done() and waiting.result() == "input over"


async def test_a_reply_asked_for_and_never_begun_is_given_up_after_the_liveness_bound() -> None:
    """A server that never answers ``response.create`` does not hold the session for ever:
    after the reply watch's bound (3 checks, 2.5 s apart) it is reported and the quiet
    counts again."""
    time, server = VirtualTime(), MemoryServer()
    session = Session(server.transport, EndingSource(time.clock, over_ms=500),
                      MemorySink(time.clock), clock=time.now, sleep=time.sleep, linger_s=0.2)
    with capture_logs() as logs:
        async with session:
            waiting = asyncio.ensure_future(session.wait())
            await server.emit(e.SessionReady(interrupt_response=True))
            session.handle(e.RequestResponse())
            await time.advance(7000)
            assert not waiting.done() and session.conversation.reply_asked
            await time.advance(1000)  # the third check, at 7.5 s, gave it up
            assert waiting.done() and waiting.result() == "input over"
    (given_up,) = [x for x in logs if x["event"] == "reply_never_created"]
    assert "never answered response.create" in given_up["error"]
