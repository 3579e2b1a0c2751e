"""Liveness limits (issue 15), on a MemoryServer and virtual time: a session that never
gets ready ends with one line; a reply that stops arriving, or whose ``response.done`` is
lost, is declared dead, settled, and the conversation goes on (``bargein.core.liveness``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from bargein.adapters.audio.memory import MemorySink, MemorySource
from bargein.core import commands as c
from bargein.core import events as e
from bargein.core.liveness import Liveness
from bargein.errors import ReplyStalled, ResponseDoneLost, SessionNeverReady
from bargein.session import Session
from bargein.testing import MemoryServer, VirtualTime, capture_logs, deltas, reply

LIVENESS = Liveness()
LONG = 100.0  # ms per step of virtual time where no figure needs the sink's block


@dataclass
class Rig:
    time: VirtualTime
    server: MemoryServer
    sink: MemorySink
    session: Session


@contextlib.asynccontextmanager
async def running(*, answer: bool = False) -> AsyncIterator[Rig]:
    time, server = VirtualTime(), MemoryServer(answer=answer)
    source, sink = MemorySource(time.clock, b""), MemorySink(time.clock)
    session = Session(server.transport, source, sink, clock=time.now, sleep=time.sleep,
                      liveness=LIVENESS)
    async with session:
        yield Rig(time, server, sink, session)


def lines(logs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [x for x in logs if x["event"] == event]


async def test_a_session_never_ready_ends_with_one_line_at_the_deadline() -> None:
    with capture_logs() as logs:
        async with running() as rig:
            await rig.time.advance(LIVENESS.ready_ms - 100, step_ms=LONG)
            assert not rig.session._ended().done(), "still within the deadline"
            await rig.time.advance(200, step_ms=LONG)
            with pytest.raises(SessionNeverReady, match="never said the session was ready"):
                await rig.session.wait()
    (line,) = lines(logs, "session_never_ready")
    assert line["log_level"] == "info" and "15 s" in line["error"], \
        "info: wait() raises it, and the program says it (bargein talk: one line)"


async def test_a_ready_session_keeps_no_ready_deadline() -> None:
    async with running() as rig:
        await rig.server.emit(e.SessionReady())
        await rig.time.advance(LIVENESS.ready_ms * 2, step_ms=LONG)
        assert not rig.session._ended().done()
        assert rig.session.conversation.state == "listening"


async def test_a_reply_that_stops_arriving_is_declared_dead_and_the_talk_goes_on() -> None:
    with capture_logs() as logs:
        async with running() as rig:
            server, time, conv = rig.server, rig.time, rig.session.conversation
            await server.emit(e.SessionReady(interrupt_response=True), e.ResponseCreated("r1"),
                              e.OutputItemAdded("r1", "i1"))
            # the server goes silent before any audio: the watch runs from response.created
            quiet = LIVENESS.reply_checks * LIVENESS.reply_check_ms  # 7.5 s: the least
            await time.advance(quiet - 100, step_ms=LONG)
            assert conv.state == "responding" and conv.stats.dead_replies == 0
            await time.advance(LIVENESS.reply_bound_ms - quiet + 100, step_ms=LONG)
            assert conv.stats.dead_replies == 1
            assert conv.state == "listening", "dead, settled, back to listening"
            assert [x.response_id for x in server.commands(c.CancelResponse)] == ["r1"]
            # the conversation goes on: the next reply plays and a barge-in lands
            await server.emit(*reply("r2", "i2", 1000, done=False))
            await time.advance(300)
            assert conv.state == "responding"
            await server.emit(e.SpeechStarted("u1", 0))
            await time.advance(100)
            assert [x.item_id for x in server.commands(c.TruncateItem)] == ["i2"]
            # a late delta of the dead reply never plays
            played = rig.sink.heard_ms().get("i1", 0.0)
            await server.emit(*deltas("r1", "i1", 200))
            await time.advance(300)
            assert rig.sink.heard_ms().get("i1", 0.0) == played == 0.0
    (line,) = lines(logs, "reply_dead")
    assert line["kind"] == ReplyStalled.__name__ and line["log_level"] == "warning"
    assert "stopped arriving" in line["error"] and "10 s" in line["error"]


async def test_a_lost_response_done_is_recovered_after_the_audio_played_out() -> None:
    with capture_logs() as logs:
        async with running() as rig:
            server, time, conv = rig.server, rig.time, rig.session.conversation
            await server.emit(e.SessionReady(interrupt_response=True),
                              *reply("r1", "i1", 1000, done=False))
            await time.advance(1200)  # the whole reply has played
            assert conv.state == "responding", "waiting for response.done"
            assert rig.sink.heard_ms()["i1"] == pytest.approx(1000, abs=1)
            await time.advance(LIVENESS.reply_bound_ms, step_ms=LONG)
            assert conv.state == "listening"
            assert conv.stats.dead_replies == 1
            assert server.commands(c.TruncateItem, c.DeleteItem) == [], \
                "what played out is kept whole"
    (line,) = lines(logs, "reply_dead")
    assert line["kind"] == ResponseDoneLost.__name__


async def test_a_slow_but_living_reply_is_never_declared_dead() -> None:
    """Long audio in the speaker, or a delta now and then, is a sign of life."""
    async with running() as rig:
        server, time, conv = rig.server, rig.time, rig.session.conversation
        await server.emit(e.SessionReady(), *reply("r1", "i1", 12_000, done=False))
        await time.advance(14_000, step_ms=LONG)  # 12 s of audio play, then 2 s quiet
        for _ in range(6):  # a delta every 6 s
            await server.emit(*deltas("r1", "i1", 100))
            await time.advance(6_000, step_ms=LONG)
        assert conv.stats.dead_replies == 0 and conv.state == "responding"
        await server.emit(e.ResponseDone("r1", "completed"))
        await time.advance(200)
        assert conv.state == "listening"


@pytest.mark.e2e
async def test_a_frozen_stream_is_noticed_in_seconds_by_the_keepalive() -> None:
    """The simulator's ``silent`` fault: the handshake succeeds, then nothing, not even a
    pong. With the transport's default keepalive (a ping every 5 s, 10 s to answer, 2 s to
    close) the drop is noticed within 17 s of connecting (42 s with websockets' defaults),
    said in one line. The deadline below is that bound plus slack for a loaded machine, and
    still short of websockets' 42 s."""
    import asyncio

    from bargein.adapters.transport import (
        KEEPALIVE_INTERVAL_S,
        KEEPALIVE_TIMEOUT_S,
        ReconnectPolicy,
    )
    from bargein.sim import Faults
    from tests.adapters.test_transport import transport_for
    from tests.support.sim_support import serving

    bound_s = KEEPALIVE_INTERVAL_S + KEEPALIVE_TIMEOUT_S + 2.0  # the close timeout
    with capture_logs() as logs:
        async with serving(faults=Faults(silent=True)) as sim:
            transport = transport_for(sim, reconnect=ReconnectPolicy(max_attempts=0))
            await transport.connect()
            events = transport.events()
            event = await asyncio.wait_for(anext(events), bound_s + 20)  # a loaded machine
            assert isinstance(event, e.Disconnected)
            assert "frozen" in event.reason
            with contextlib.suppress(Exception):
                await transport.close()
    (line,) = lines(logs, "realtime_disconnected")
    assert "no answer to a keepalive ping within 10 s: the stream is frozen" in line["reason"]
