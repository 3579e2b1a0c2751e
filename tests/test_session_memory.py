"""The session on an in-memory server and a virtual clock: no socket, no wall-clock time.

``bargein.testing.MemoryServer`` plays the Realtime server and ``VirtualTime`` the clock, so
every figure is exact: the reply is pushed at a known sample, the user barges in at a known
sample, and the truncation is checked to the millisecond. The memory sink pulls 10 ms
blocks that sound 20 ms later and fades for 5 ms on a flush, so audio queued at ``t`` and
cut off at ``t + d`` (both on a 10 ms boundary) was heard for ``d + 10 + 5`` ms: what had
played, the block in the device, and the fade.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from bargein import Conversation
from bargein.adapters.audio.vad import EnergyVad, VadEdge
from bargein.adapters.session_config import ServerVad, SessionConfig
from bargein.core import commands as c
from bargein.core import events as e
from bargein.core.pcm import RATE
from bargein.errors import ConnectionLost, NotConnected
from bargein.session import Closed, Interrupted, Observation, Session, StateChanged
from bargein.states import DEFAULT_TABLE, State, Transition
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

MS = RATE // 1000  # samples per ms


@dataclass
class Rig:
    time: VirtualTime
    server: MemoryServer
    sink: MemorySink
    session: Session
    seen: list[Observation]

    def output(self) -> npt.NDArray[np.int16]:
        return np.frombuffer(self.sink.output(), dtype=np.int16)

    def moves(self) -> list[tuple[float, str, str, str]]:
        return [(o.at_ms, o.source, o.dest, o.trigger) for o in self.seen
                if isinstance(o, StateChanged) and o.source != o.dest]

    def interrupted(self) -> list[Interrupted]:
        return [o for o in self.seen if isinstance(o, Interrupted)]


@contextlib.asynccontextmanager
async def running(
    *, answer: bool = False, user: bytes = b"", conversation: Conversation | None = None,
    local_vad: EnergyVad | None = None,
) -> AsyncIterator[Rig]:
    """A started session over a MemoryServer, memory audio and virtual time."""
    time, server = VirtualTime(), MemoryServer(answer=answer)
    source, sink = MemorySource(time.clock, user), MemorySink(time.clock)
    session = Session(server.transport, source, sink, conversation, clock=time.now,
                      sleep=time.sleep, local_vad=local_vad)
    seen: list[Observation] = []
    session.subscribe(seen.append)
    async with session:
        yield Rig(time, server, sink, session, seen)


def kinds(commands: list[c.ServerCommand]) -> list[str]:
    return [type(command).__name__ for command in commands]


async def test_a_whole_barge_in_truncates_to_exactly_what_was_heard() -> None:
    async with running() as rig:
        server, time = rig.server, rig.time
        await server.emit(e.SessionReady(interrupt_response=True), e.SpeechStopped("u0", 0))
        await time.advance(100)
        await server.emit(*reply("resp_1", "item_1", 2000, done=False))
        await time.advance(500)
        await server.emit(e.SpeechStarted("u1", 600))  # the server cancels by itself
        await server.emit(e.ResponseDone("resp_1", "cancelled", "turn_detected"))
        await time.advance(300)
        # the next reply plays whole, and the speaker running dry ends it
        await server.emit(*reply("resp_2", "item_2", 500))
        await time.advance(600)
        assert rig.session.conversation.state == "listening"

    (truncate,) = server.commands()
    assert truncate == c.TruncateItem("item_1", 505, 0, truncate.event_id)
    (barge,) = rig.interrupted()
    assert (barge.at_ms, barge.trigger, barge.cancelled) == (600.0, "speech_started", ())
    assert barge.stop_latency_ms == pytest.approx(35.0)  # the block in the device + fade
    assert barge.settlements[0].heard_ms == 505.0

    out = rig.output()
    first = tone(2000)
    heard = np.frombuffer(first, dtype="<i2")[: 500 * MS]
    assert np.array_equal(out[130 * MS: 630 * MS], heard), "the reply, from its start"
    assert out[630 * MS: 635 * MS].any() and not out[635 * MS: 930 * MS].any(), \
        "a 5 ms fade, then silence: no audio of the cancelled reply"
    assert np.array_equal(out[930 * MS: 1430 * MS], np.frombuffer(tone(500), dtype="<i2"))

    assert rig.moves() == [
        (0.0, "idle", "listening", "session_ready"),
        (100.0, "listening", "responding", "response_created"),
        (600.0, "responding", "interrupted", "speech_started"),
        (600.0, "interrupted", "listening", "playback_flushed"),
        (900.0, "listening", "responding", "response_created"),
        (1430.0, "responding", "listening", "playback_finished"),  # when it ended (ends_in_s)
    ]
    one, two = rig.session.figures["resp_1"], rig.session.figures["resp_2"]
    assert (one.interrupted, one.audio_end_ms, one.heard_ms) == (True, 505, 505.0)
    assert one.time_to_first_audio_ms == 100.0
    assert not two.interrupted and two.dropped_ms == 0
    assert server.audio_ms() == 1500, "the microphone streamed all along"


async def test_late_deltas_after_the_client_cancels_are_dropped() -> None:
    async with running() as rig:
        server, time = rig.server, rig.time
        await server.emit(e.SessionReady(interrupt_response=False))
        await server.emit(*reply("resp_1", "item_1", 1000, done=False))
        await time.advance(300)
        await server.emit(e.SpeechStarted("u1", 300))
        assert kinds(server.commands()) == ["CancelResponse", "TruncateItem"]
        cancel, truncate = server.commands()
        assert cancel == c.CancelResponse("resp_1", cancel.event_id)
        assert truncate == c.TruncateItem("item_1", 315, 0, truncate.event_id)
        # the server had these on the wire already: they arrive after the cancel
        await server.emit(*deltas("resp_1", "item_1", 300, delta_ms=100))
        await server.emit(e.ResponseDone("resp_1", "cancelled", "client_cancelled"))
        await time.advance(500)
        assert rig.session.conversation.state == "listening"

    stats = rig.session.conversation.stats
    assert (stats.dropped_deltas, stats.dropped_audio_ms) == (3, 300.0)
    assert rig.session.figures["resp_1"].dropped_ms == 300.0
    out = rig.output()
    assert out[300 * MS: 335 * MS].any() and not out[335 * MS:].any()


async def test_a_disconnect_mid_reply_abandons_it_and_a_reconnect_resumes() -> None:
    async with running() as rig:
        server, time, session = rig.server, rig.time, rig.session
        session.handle(e.ConfigureSession(SessionConfig()))
        await server.emit(e.SessionReady())
        await server.emit(*reply("resp_1", "item_1", 1000, done=False))
        await time.advance(300)
        server.disconnect("dropped")
        await server.settle()
        assert session.conversation.state == "idle"
        streamed = server.audio_ms()
        await time.advance(200)
        assert server.audio_ms() == streamed, "nothing is sent while the connection is down"
        server.reconnect()
        await server.emit(e.SessionReady())
        assert session.conversation.state == "listening"
        await server.emit(*deltas("resp_1", "item_1", 200))  # the old reply, late
        await time.advance(100)
        await server.emit(*reply("resp_2", "item_2", 300))
        await time.advance(400)

    assert kinds(server.commands()) == ["UpdateSession", "UpdateSession"], \
        "the configuration sent again on the new connection; no truncate to a dead session"
    assert server.connections == 2
    out = rig.output()
    assert out[300 * MS: 335 * MS].any(), "flushed at the drop, with the fade"
    assert not out[335 * MS: 630 * MS].any(), "silent from the drop until the next reply"
    assert np.array_equal(out[630 * MS: 930 * MS], np.frombuffer(tone(300), dtype="<i2"))
    assert rig.session.figures["resp_1"].dropped_ms == 200.0
    assert not rig.session.figures["resp_2"].interrupted
    assert [m[1:] for m in rig.moves()][-3:] == [
        ("idle", "listening", "reconnected"),
        ("listening", "responding", "response_created"),
        ("responding", "listening", "playback_finished"),
    ]


async def test_server_errors_are_reconciled_and_the_conversation_goes_on() -> None:
    async with running() as rig:
        server, time, session = rig.server, rig.time, rig.session
        await server.emit(e.SessionReady(interrupt_response=False))
        await server.emit(*reply("resp_1", "item_1", 1000, done=False))
        await time.advance(200)
        await server.emit(e.SpeechStarted("u1", 200))
        cancel, truncate = server.commands()
        assert isinstance(cancel, c.CancelResponse) and isinstance(truncate, c.TruncateItem)
        # the server had finished the reply when the cancel reached it, and it holds less
        # audio of the item than bargein counted (say it was cut short)
        await server.emit(
            e.ResponseDone("resp_1", "completed"),
            e.ServerError("invalid_request_error", "response_cancel_not_active",
                          "Cancellation failed: no active response found", cancel.event_id),
            e.ServerError("invalid_request_error", "invalid_value",
                          "Audio content of 200ms is already shorter than 215ms.",
                          truncate.event_id, "audio_end_ms"),
        )
        stats = session.conversation.stats
        assert (stats.benign_errors, stats.server_errors) == (2, 0)
        await server.emit(e.ServerError("server_error", None, "The server had an error"))
        assert stats.server_errors == 1, "counted and logged, never fatal"
        await server.emit(*reply("resp_2", "item_2", 200))
        await time.advance(300)
        assert session.conversation.state == "listening"
        assert not any(isinstance(o, Closed) for o in rig.seen), "still running"
    assert [m[1:] for m in rig.moves()][-2:] == [
        ("listening", "responding", "response_created"),
        ("responding", "listening", "playback_finished"),
    ]


@pytest.mark.parametrize("interrupt_response", [True, False])
async def test_an_answering_server_confirms_the_barge_in(interrupt_response: bool) -> None:
    async with running(answer=True) as rig:
        server, time, session = rig.server, rig.time, rig.session
        session.handle(e.ConfigureSession(SessionConfig(
            turn_detection=ServerVad(interrupt_response=interrupt_response))))
        await server.settle()
        assert session.conversation.server_interrupts_response is interrupt_response
        await server.emit(*reply("resp_1", "item_1", 1000, done=False))
        await time.advance(400)
        await server.emit(e.SpeechStarted("u1", 400))  # the server cancels, or bargein does
        await time.advance(100)
        assert session.conversation.state == "listening"
    expected = ["UpdateSession", "TruncateItem"]
    if not interrupt_response:
        expected.insert(1, "CancelResponse")
    assert kinds(server.commands()) == expected
    stats = session.conversation.stats
    assert (stats.benign_errors, stats.server_errors, stats.illegal_events) == (0, 0, 0)
    assert session.figures["resp_1"].audio_end_ms == 415


async def test_a_server_close_ends_the_session_and_the_observation_stream() -> None:
    async with running() as rig:
        got: list[Observation] = []

        async def collect() -> None:
            async for obs in rig.session.observations():
                got.append(obs)

        collector = asyncio.create_task(collect())
        await settle()  # the iterator subscribes before anything happens
        await rig.server.emit(e.SessionReady(), *reply("resp_1", "item_1", 500, done=False))
        await rig.time.advance(100)
        rig.server.close("bye")
        await rig.server.settle()
        assert await asyncio.wait_for(rig.session.wait(), 1) == "server closed"
        assert rig.session.conversation.state == "idle"
    await asyncio.wait_for(collector, 1)
    assert isinstance(got[-1], Closed) and got[-1].reason == "server closed"
    assert [o.dest for o in got if isinstance(o, StateChanged)] == ["listening", "responding",
                                                                    "idle"]
    assert rig.server.transport.closed, "the session closed its side too"
    assert not rig.output()[135 * MS:].any(), "the speaker was flushed at the close"


async def test_a_failed_transport_ends_the_session_with_its_error() -> None:
    async with running() as rig:
        await rig.server.emit(e.SessionReady())
        rig.server.disconnect()
        rig.server.fail(ConnectionLost("lost the connection and 5 reconnection attempts failed"))
        await rig.server.settle()
        with pytest.raises(ConnectionLost, match="reconnection attempts failed"):
            await asyncio.wait_for(rig.session.wait(), 1)
        assert rig.session.conversation.state == "idle"
    closed = [o for o in rig.seen if isinstance(o, Closed)]
    assert len(closed) == 1 and closed[0].reason.startswith("error: lost the connection")


async def test_a_custom_state_with_hooks() -> None:
    thinking = DEFAULT_TABLE.extend(
        states=[State("thinking", interruptible=True)],
        transitions=[
            Transition("speech_stopped", "listening", "thinking", reason="user finished"),
            Transition("response_created", "thinking", None),
            Transition("audio_started", "thinking", "responding", reason="first audio"),
            Transition("response_done", "thinking", "listening"),
        ],
    )
    async with running(conversation=Conversation(thinking)) as rig:
        await rig.server.emit(e.SessionReady(), e.SpeechStopped("u1", 0))
        await rig.time.advance(50)
        await rig.server.emit(e.ResponseCreated("resp_1"))
        assert rig.session.conversation.state == "thinking"
        await rig.time.advance(50)
        await rig.server.emit(*deltas("resp_1", "item_1", 200), e.ResponseDone("resp_1", "done"))
        await rig.time.advance(300)
    assert rig.moves() == [
        (0.0, "idle", "listening", "session_ready"),
        (0.0, "listening", "thinking", "speech_stopped"),
        (100.0, "thinking", "responding", "audio_started"),
        (330.0, "responding", "listening", "playback_finished"),
    ]
    assert rig.session.figures["resp_1"].time_to_first_audio_ms == 100.0


class _FullSocket:
    """A connection whose socket is full until ``drained`` is set: every send waits. It
    has ``send()`` alone (no ``send_now``): the session queues every command for it."""

    def __init__(self, server: MemoryServer, *, drained: bool = False) -> None:
        self.inner, self.drained = server.transport, asyncio.Event()
        if drained:
            self.drained.set()

    def events(self) -> AsyncIterator[e.Event]:
        return self.inner.events()

    async def send(self, command: c.ServerCommand) -> None:
        await self.drained.wait()
        await self.inner.send(command)

    async def close(self) -> None:
        await self.inner.close()


async def test_a_full_socket_never_holds_up_the_local_barge_in() -> None:
    """The microphone's task never waits on the network: with every send stuck it goes on
    feeding the detector, so the barge-in (the flush the user hears) does not wait."""
    time, server = VirtualTime(), MemoryServer()
    vad = EnergyVad(RATE, 0.5, prefix_padding_ms=0, silence_duration_ms=500)
    user = bytes(2 * 600 * MS) + tone(400, hz=220, level=0.5)  # speaks from 600 ms
    socket = _FullSocket(server)
    session = Session(socket, MemorySource(time.clock, user), MemorySink(time.clock),
                      clock=time.now, sleep=time.sleep, local_vad=vad)
    seen: list[Observation] = []
    session.subscribe(seen.append)
    async with session:
        await server.emit(e.SessionReady(interrupt_response=True))
        await time.advance(100)
        await server.emit(*reply("resp_1", "item_1", 2000, done=False))
        await time.advance(700)
        barges = [o for o in seen if isinstance(o, Interrupted)]
        assert [b.trigger for b in barges] == ["local_speech_started"]
        assert not server.commands(), "nothing has reached the server: the socket is full"
        socket.drained.set()
        await time.advance(100)
    assert kinds(server.commands()) == ["CancelResponse", "TruncateItem"]
    assert server.audio_ms() >= 800, "and the microphone's frames went out after, in order"


async def test_local_vad_barges_in_before_the_server_knows() -> None:
    vad = EnergyVad(RATE, 0.5, prefix_padding_ms=0, silence_duration_ms=500)
    user = bytes(2 * 600 * MS) + tone(400, hz=220, level=0.5)  # speaks from 600 ms
    async with running(user=user, local_vad=vad) as rig:
        await rig.server.emit(e.SessionReady(interrupt_response=True))
        await rig.time.advance(100)
        await rig.server.emit(*reply("resp_1", "item_1", 2000, done=False))
        await rig.time.advance(700)
    (barge,) = rig.interrupted()
    assert barge.trigger == "local_speech_started"
    assert kinds(rig.server.commands()) == ["CancelResponse", "TruncateItem"], \
        "cancelled by bargein, since the server has not heard the user yet"
    truncate = rig.server.commands()[1]
    assert isinstance(truncate, c.TruncateItem)
    assert truncate.audio_end_ms == barge.settlements[0].audio_end_ms
    # heard from 100 ms until a 20 ms mic frame past 600 ms was seen, + block and fade
    assert 505 <= truncate.audio_end_ms <= 505 + 40 + 15


class _FailingSend(_FullSocket):
    """A connection whose sends of one kind fail: before their first wait, or after it."""

    def __init__(self, server: MemoryServer, error: Exception, *, after_wait: bool) -> None:
        super().__init__(server)
        self.error, self.after_wait = error, after_wait
        self.drained.set()

    async def send(self, command: c.ServerCommand) -> None:
        if isinstance(command, c.CancelResponse):
            if self.after_wait:
                await asyncio.sleep(0)
            raise self.error
        await self.inner.send(command)


def _failing(error: Exception, after_wait: bool) -> tuple[VirtualTime, MemoryServer, Session]:
    time, server = VirtualTime(), MemoryServer()
    socket = _FailingSend(server, error, after_wait=after_wait)
    return time, server, Session(socket, MemorySource(time.clock), MemorySink(time.clock),
                                 clock=time.now, sleep=time.sleep)


async def _interrupt_a_reply(time: VirtualTime, server: MemoryServer, session: Session) -> None:
    """The user stops a reply: the session sends a ``CancelResponse``."""
    await server.emit(e.SessionReady())
    await time.advance(100)
    await server.emit(*reply("resp_1", "item_1", 2000, done=False))
    await time.advance(100)
    session.handle(e.UserInterrupt())


@pytest.mark.parametrize("after_wait", [False, True], ids=["at once", "after a wait"])
async def test_a_send_that_fails_fails_the_session(after_wait: bool) -> None:
    """A send that raises what is not a dropped connection fails the session, whether it
    failed before its first wait or after it."""
    time, server, session = _failing(RuntimeError("the encoder broke"), after_wait)
    async with session:
        await _interrupt_a_reply(time, server, session)
        await time.advance(20)
        with pytest.raises(RuntimeError, match="the encoder broke"):
            await session.wait()


@pytest.mark.parametrize("after_wait", [False, True], ids=["at once", "after a wait"])
async def test_a_send_the_dropped_connection_refuses_is_dropped(after_wait: bool) -> None:
    """``NotConnected``, before a send's first wait or after it: the command is dropped
    (its server session is gone) and the session goes on sending."""
    time, server, session = _failing(NotConnected("down"), after_wait)
    async with session:
        await _interrupt_a_reply(time, server, session)
        before = server.audio_ms()
        await time.advance(100)
        assert not session._ended().done()
        assert "CancelResponse" not in kinds(server.commands())
        assert server.audio_ms() >= before + 80, "the microphone's frames still go out"


@pytest.mark.parametrize("at_once", [True, False], ids=["sends at once", "send() only"])
async def test_a_microphone_frame_is_handled_in_the_tick_that_captured_it(at_once: bool) -> None:
    """A delivering source's frame is handled in the clock's tick (no task wake-up). A
    transport that sends at once (``SendsAtOnce``) has it on the wire in that tick; one
    with ``send()`` alone, after one turn of the event loop (the sender's). From
    ``frames()`` it would take two (the microphone task's, then the sender's)."""
    time, server = VirtualTime(), MemoryServer()
    transport = server.transport if at_once else _FullSocket(server, drained=True)
    session = Session(transport, MemorySource(time.clock), MemorySink(time.clock),
                      clock=time.now, sleep=time.sleep)
    async with session:
        await server.emit(e.SessionReady())
        await time.advance(100)
        before = server.audio_ms()
        time.clock.advance_ms(40)  # the clock alone: the loop does not turn
        assert server.audio_ms() == (before + 40 if at_once else before)
        await asyncio.sleep(0)
        assert server.audio_ms() == before + 40


class _SlowToDrain(_FullSocket):
    """A connection that sends at once only while nothing waits in its buffer: until
    ``drained`` is set, every send waits and nothing goes at once."""

    tried_at_once = 0  # how many commands the session offered to send at once

    def send_now(self, command: c.ServerCommand) -> bool:
        self.tried_at_once += 1
        return self.drained.is_set() and self.inner.send_now(command)


async def test_a_command_sent_at_once_never_overtakes_one_queued_before_it() -> None:
    """While the sender waits on the connection, later commands queue behind it, even once
    the connection could take them at once; when the queue is empty they go at once
    again. The server receives the microphone's audio whole and in order."""
    time, server = VirtualTime(), MemoryServer()
    user = np.arange(RATE, dtype=np.int16).tobytes()  # each sample tells its place
    socket = _SlowToDrain(server)
    session = Session(socket, MemorySource(time.clock, user), MemorySink(time.clock),
                      clock=time.now, sleep=time.sleep)
    async with session:
        await server.emit(e.SessionReady())
        await time.advance(200)
        assert server.audio_ms() == 0, "stuck: the sender waits, the frames queue"
        tried = socket.tried_at_once
        assert tried == 1, "one frame was offered at once (refused); the rest queued behind"
        socket.drained.set()
        time.clock.advance_ms(20)  # taken at once? No: the queue is not empty yet
        assert server.audio_ms() == 0 and socket.tried_at_once == tried
        await time.advance(200)
        assert socket.tried_at_once > tried, "the queue empty, frames go at once again"
    sent = b"".join(cmd.audio for cmd in server.commands(c.SendAudio))
    assert len(sent) >= 2 * RATE * 400 // 1000
    assert sent == user[: len(sent)], "whole and in order"


class _BrokenDetector(EnergyVad):
    def feed(self, samples: np.ndarray) -> list[VadEdge]:
        raise RuntimeError("the detector broke")


async def test_a_frame_that_fails_to_be_handled_fails_the_session_not_the_clock() -> None:
    """A failure while handling a delivered frame is the session's: ``wait()`` raises it,
    and whatever advanced the clock (the source's side) goes on unharmed."""
    time, server = VirtualTime(), MemoryServer()
    session = Session(server.transport, MemorySource(time.clock), MemorySink(time.clock),
                      clock=time.now, sleep=time.sleep,
                      local_vad=_BrokenDetector(RATE, 0.5, prefix_padding_ms=0,
                                                silence_duration_ms=500))
    async with session:
        await server.emit(e.SessionReady())
        time.clock.advance_ms(20)  # raises nothing here
        with pytest.raises(RuntimeError, match="the detector broke"):
            await asyncio.wait_for(session.wait(), 60)
