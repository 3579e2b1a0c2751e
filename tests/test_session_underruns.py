"""Dropouts in the per-response figures: a sink that counts its underruns (the pulse and the
pyaudio speakers do) has each new one put on the response that was playing when it came."""

from __future__ import annotations

from bargein.core import events as e
from bargein.session import Session
from bargein.testing import MemoryServer, MemorySink, MemorySource, VirtualTime, reply


class CountingSink(MemorySink):
    """A memory sink with a dropout count the test sets, as a device's speaker counts them."""

    underruns = 0


async def test_a_dropout_is_counted_on_the_response_that_was_playing() -> None:
    time, server = VirtualTime(), MemoryServer()
    sink = CountingSink(time.clock)
    session = Session(server.transport, MemorySource(time.clock, b""), sink, clock=time.now,
                      sleep=time.sleep)
    async with session:
        await server.emit(e.SessionReady(), e.SpeechStopped("u1", 0))
        await server.emit(*reply("resp_1", "item_1", 1000))
        await time.advance(300)
        sink.underruns = 2  # two gaps in the first reply
        await time.advance(900)
        assert session.conversation.state == "listening"
        await server.emit(e.SpeechStopped("u2", 0), *reply("resp_2", "item_2", 1000))
        await time.advance(500)
        sink.underruns = 3  # one in the second
        await time.advance(700)
        await server.emit(e.SpeechStopped("u3", 0), *reply("resp_3", "item_3", 300))
        await time.advance(500)
    one, two, three = (session.figures[f"resp_{n}"] for n in (1, 2, 3))
    assert (one.underruns, two.underruns, three.underruns) == (2, 1, 0)
    assert "2 dropouts" in str(one) and "1 dropout;" in str(two) and "dropout" not in str(three)


async def test_a_sink_without_a_count_reports_none() -> None:
    time, server = VirtualTime(), MemoryServer()
    session = Session(server.transport, MemorySource(time.clock, b""), MemorySink(time.clock),
                      clock=time.now, sleep=time.sleep)
    async with session:
        await server.emit(e.SessionReady(), e.SpeechStopped("u1", 0))
        await server.emit(*reply("resp_1", "item_1", 500))
        await time.advance(800)
    assert session.figures["resp_1"].underruns == 0
