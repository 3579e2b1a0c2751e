"""MemoryServer: a Realtime server scripted in memory, and its transport."""

from __future__ import annotations

import asyncio

import pytest

from bargein.adapters.session_config import ServerVad, SessionConfig
from bargein.core import commands as c
from bargein.core import events as e
from bargein.core.pcm import BYTES_PER_MS
from bargein.errors import ConnectionLost, NotConnected
from bargein.session import Session, Transport
from bargein.testing import (
    MemoryServer,
    MemorySink,
    MemorySource,
    VirtualTime,
    deltas,
    reply,
    settle,
    tone,
)


class Reader:
    """Reads a transport's events the way a session does, in a task."""

    def __init__(self, transport: Transport) -> None:
        self.events: list[e.Event] = []
        self.error: BaseException | None = None
        self.task = asyncio.create_task(self._read(transport))

    async def _read(self, transport: Transport) -> None:
        try:
            async for event in transport.events():
                self.events.append(event)
        except Exception as exc:
            self.error = exc

    @property
    def ended(self) -> bool:
        return self.task.done()


def test_the_transport_satisfies_the_session_protocol() -> None:
    transport: Transport = MemoryServer().transport  # checked by mypy
    assert transport is not None


def test_reply_builds_the_events_of_a_reply() -> None:
    events = reply("resp_1", "item_1", 250, delta_ms=100, transcript="Hi.")
    kinds = [type(x).__name__ for x in events]
    assert kinds == ["ResponseCreated", "OutputItemAdded", "AudioDelta", "AudioDelta",
                     "AudioDelta", "TranscriptDelta", "ResponseDone"]
    audio = [x for x in events if isinstance(x, e.AudioDelta)]
    assert [len(x.audio) / BYTES_PER_MS for x in audio] == [100, 100, 50]
    assert b"".join(x.audio for x in audio) == tone(250)
    assert events[-1] == e.ResponseDone("resp_1", "completed")
    assert not isinstance(reply("r", "i", 100, done=False)[-1], e.ResponseDone)
    assert sum(len(x.audio) for x in deltas("r", "i", 1000, delta_ms=40)) == 1000 * BYTES_PER_MS
    with pytest.raises(ValueError):
        deltas("r", "i", 100, delta_ms=0)


async def test_events_arrive_in_order_and_commands_are_recorded_in_order() -> None:
    server = MemoryServer()
    reader = Reader(server.transport)
    await server.emit(e.SessionReady("s"), *reply("r1", "i1", 100))
    assert reader.events == [e.SessionReady("s"), *reply("r1", "i1", 100)]
    assert server.pending == 0
    for command in (c.SendAudio(b"\0\0" * 480), c.CancelResponse("r1", "ev1"),
                    c.SendAudio(b"\0\0" * 240), c.TruncateItem("i1", 50, 0, "ev2")):
        await server.transport.send(command)
    assert server.commands() == [c.CancelResponse("r1", "ev1"), c.TruncateItem("i1", 50, 0, "ev2")]
    assert server.commands(c.TruncateItem) == [c.TruncateItem("i1", 50, 0, "ev2")]
    assert len(server.sent) == 4
    assert server.audio_ms() == 30
    reader.task.cancel()


async def test_emit_without_a_reader_fails_rather_than_hanging() -> None:
    server = MemoryServer()
    server.push(e.SessionReady())
    assert server.pending == 1
    with pytest.raises(RuntimeError, match="never read"):
        await server.emit(e.ResponseCreated("r1"))


async def test_disconnect_and_reconnect() -> None:
    server = MemoryServer()
    reader = Reader(server.transport)
    update = c.UpdateSession(SessionConfig(), "ev1")
    await server.transport.send(update)
    server.disconnect("gone")
    await server.settle()
    assert reader.events == [e.Disconnected("gone")]
    assert not server.transport.connected
    with pytest.raises(NotConnected):
        await server.transport.send(c.SendAudio(b"\0\0"))
    later = c.UpdateSession(SessionConfig(turn_detection=None), "ev2")
    with pytest.raises(NotConnected):  # not delivered, but remembered for the reconnect
        await server.transport.send(later)
    server.reconnect()
    await server.emit(e.SessionReady("s2"))
    assert reader.events[1:] == [e.Reconnected(), e.SessionReady("s2")]
    assert server.transport.connected and server.connections == 2
    assert server.sent == [update, later]  # the last configuration, sent again
    reader.task.cancel()


async def test_a_server_close_ends_the_events_after_a_disconnect() -> None:
    server = MemoryServer()
    reader = Reader(server.transport)
    server.close("bye")
    await server.settle()
    assert reader.events == [e.Disconnected("bye")] and reader.ended and reader.error is None
    with pytest.raises(RuntimeError, match="closed"):
        server.push(e.SessionReady())


async def test_a_failure_is_raised_to_the_reader() -> None:
    server = MemoryServer()
    reader = Reader(server.transport)
    server.disconnect()
    server.fail(ConnectionLost("lost for good"))
    await server.settle()
    assert reader.ended and isinstance(reader.error, ConnectionLost)
    assert reader.events == [e.Disconnected("connection dropped")]


async def test_the_client_closing_ends_the_events() -> None:
    server = MemoryServer()
    reader = Reader(server.transport)
    await server.transport.close()
    await settle()
    assert reader.ended and reader.events == [] and server.transport.closed
    with pytest.raises(NotConnected):
        await server.transport.send(c.CreateResponse("ev1"))
    await server.transport.close()  # idempotent


async def test_answering_cancels_truncations_deletions_and_session_updates() -> None:
    server = MemoryServer(answer=True)
    reader = Reader(server.transport)
    await server.settle()
    assert reader.events == [e.SessionReady("sess_1", interrupt_response=True)]
    config = SessionConfig(turn_detection=ServerVad(interrupt_response=False))
    await server.transport.send(c.UpdateSession(config, "ev1"))
    await server.settle()
    assert reader.events[-1] == e.SessionReady("sess_1", interrupt_response=False)
    await server.emit(*reply("r1", "i1", 300, done=False))
    del reader.events[:]
    for command in (
        c.TruncateItem("i1", 200, 0, "ev2"),
        c.TruncateItem("i1", 301, 0, "ev3"),   # more than was sent
        c.TruncateItem("nope", 10, 0, "ev4"),
        c.CancelResponse("r1", "ev5"),
        c.CancelResponse("r1", "ev6"),         # no longer active
        c.DeleteItem("i1", "ev7"),
        c.DeleteItem("i1", "ev8"),             # gone already
        c.CreateResponse("ev9"),               # not answered: replies are the test's
    ):
        await server.transport.send(command)
    await server.settle()
    got = [None, *reader.events]  # numbered as the commands above, from 1
    assert got[1] == e.ItemTruncated("i1", 200)
    assert isinstance(got[2], e.ServerError) and (got[2].code, got[2].event_id) == (
        "invalid_value", "ev3")
    assert "300ms is already shorter than 301ms" in got[2].message
    assert isinstance(got[3], e.ServerError) and got[3].code == "item_not_found"
    assert got[4] == e.ResponseDone("r1", "cancelled", "client_cancelled")
    assert isinstance(got[5], e.ServerError) and (got[5].code, got[5].event_id) == (
        "response_cancel_not_active", "ev6")
    assert got[6] == e.ItemDeleted("i1")
    assert isinstance(got[7], e.ServerError) and got[7].code == "item_not_found"
    assert len(got) == 8
    reader.task.cancel()


async def test_answering_a_tool_output_placed_after_an_item_it_never_sent_refuses_it() -> None:
    server = MemoryServer(answer=True)
    reader = Reader(server.transport)
    await server.emit(e.ToolCall("r1", "fc1", "c1", "lookup", "{}"))
    del reader.events[:]
    for command in (
        c.SendToolOutput("c1", '{"cancelled": "x"}', "ev1", after_item_id="fc1"),
        c.SendToolOutput("c1", "ok", "ev2"),  # appended: nothing to check
        c.SendToolOutput("c2", '{"cancelled": "x"}', "ev3", after_item_id="fc2"),
    ):
        await server.transport.send(command)
    await server.settle()
    (error,) = reader.events
    assert isinstance(error, e.ServerError) and (error.code, error.event_id, error.param) == (
        "item_not_found", "ev3", "previous_item_id")
    assert server.commands(c.SendToolOutput)[0].after_item_id == "fc1"
    reader.task.cancel()


async def test_answering_cancels_on_speech_when_interrupt_response_is_on() -> None:
    server = MemoryServer(answer=True)
    reader = Reader(server.transport)
    await server.emit(*reply("r1", "i1", 100, done=False), e.SpeechStarted("u1", 0))
    assert reader.events[-2:] == [e.SpeechStarted("u1", 0),
                                  e.ResponseDone("r1", "cancelled", "turn_detected")]
    await server.emit(e.SessionReady("s", interrupt_response=False),
                      *reply("r2", "i2", 100, done=False), e.SpeechStarted("u2", 0))
    assert reader.events[-1] == e.SpeechStarted("u2", 0), "the client cancels now"
    reader.task.cancel()


async def test_answering_a_reconnect_is_a_new_session_and_the_configuration_again() -> None:
    server = MemoryServer(answer=True)
    reader = Reader(server.transport)
    await server.transport.send(c.UpdateSession(SessionConfig(), "ev1"))
    server.disconnect()
    server.reconnect()
    await server.settle()
    assert reader.events == [
        e.SessionReady("sess_1"), e.SessionReady("sess_1"), e.Disconnected("connection dropped"),
        e.Reconnected(), e.SessionReady("sess_2"), e.SessionReady("sess_2"),
    ]
    reader.task.cancel()


async def test_the_example_of_the_package_docstring() -> None:
    time, server = VirtualTime(), MemoryServer()
    source, sink = MemorySource(time.clock), MemorySink(time.clock)
    async with Session(server.transport, source, sink, clock=time.now, sleep=time.sleep):
        await server.emit(e.SessionReady(interrupt_response=True))
        await server.emit(*reply("resp_1", "item_1", ms=2000, done=False))
        await time.advance(500)                      # 500 ms of the reply play
        await server.emit(e.SpeechStarted("item_u1", audio_start_ms=500))
    (truncate,) = server.commands(c.TruncateItem)
    assert truncate.audio_end_ms == 515  # played, in the device's buffer, and the fade
