"""Two-phase barge-in in a session: the sink is ducked and restored, the local detector's
stop edges resume the reply, onset -> duck is measured from the detector's sample position.

Two rigs: ``MemoryServer`` + memory audio on ``VirtualTime`` (exact to the millisecond),
and the simulator over loopback (real sockets, the server's own VAD judging, a clock that
keeps pace with real time; nothing waits a fixed time)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest

from bargein import Conversation
from bargein.adapters.audio.memory import MemorySink, MemorySource, VirtualClock
from bargein.adapters.audio.protocols import AudioSink, Duckable
from bargein.adapters.audio.vad import EnergyVad
from bargein.adapters.session_config import ServerVad, SessionConfig
from bargein.core import commands as c
from bargein.core import events as e
from bargein.core.pcm import RATE
from bargein.session import Interrupted, Observation, Session, StateChanged
from bargein.states.two_phase import (
    CONFIRM_MS,
    DUCK_GAIN,
    TWO_PHASE_SERVER_VAD_TABLE,
    TWO_PHASE_TABLE,
)
from bargein.testing import MemoryServer, VirtualTime, capture_logs, reply, tone
from tests.support.live import live
from tests.support.sim_support import serving, silence
from tests.support.sim_support import tone as loud

MS = RATE // 1000
WINDOW = f"after_{CONFIRM_MS}ms@ducked"


class DuckingSink(MemorySink):
    """A memory sink that records each ``duck(gain)`` with the clock's time."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(clock)
        self.clock = clock
        self.ducks: list[tuple[float, float]] = []

    def duck(self, gain: float) -> None:
        self.ducks.append((self.clock.ms, gain))
        super().duck(gain)


class PlainSink:
    """A sink that cannot duck: a memory sink behind the bare ``AudioSink`` protocol."""

    def __init__(self, clock: VirtualClock) -> None:
        self.inner = MemorySink(clock)
        self.play, self.flush, self.heard_ms = (self.inner.play, self.inner.flush,
                                                self.inner.heard_ms)
        self.close = self.inner.close

    @property
    def idle(self) -> bool:
        return self.inner.idle


def quiet(ms: int) -> bytes:
    return bytes(2 * ms * MS)


@contextlib.asynccontextmanager
async def rig(sink_kind: Callable[[VirtualClock], AudioSink], user: bytes
              ) -> AsyncIterator[tuple[VirtualTime, MemoryServer, AudioSink, Session,
                                       list[Observation]]]:
    time, server = VirtualTime(), MemoryServer()
    sink = sink_kind(time.clock)
    vad = EnergyVad(RATE, 0.5, prefix_padding_ms=0, silence_duration_ms=200)
    session = Session(server.transport, MemorySource(time.clock, user), sink,
                      Conversation(TWO_PHASE_TABLE), clock=time.now, sleep=time.sleep,
                      local_vad=vad)
    seen: list[Observation] = []
    session.subscribe(seen.append)
    async with session:
        yield time, server, sink, session, seen


# a 150 ms cough at 600 ms, then the user talks from 1600 ms for a second
USER = quiet(600) + tone(150, hz=220, level=0.5) + quiet(850) + tone(1000, hz=220, level=0.5)


async def test_a_cough_ducks_and_resumes_and_a_long_sound_commits_on_a_duckable_sink() -> None:
    async with rig(DuckingSink, USER + quiet(2000)) as (time, server, sink, session, seen):
        session.handle(e.ConfigureSession(SessionConfig(turn_detection=ServerVad())))
        await server.emit(e.SessionReady(interrupt_response=False))
        await time.advance(100)
        await server.emit(*reply("r1", "i1", 5000, done=False))
        await time.advance(1400)
        assert session.conversation.state == "speaking", "the cough was let go"
        assert server.commands(c.CancelResponse) == []
        await time.advance(1400)
        assert session.conversation.state == "listening", "committed, flushed"
        figures = session.figures["r1"]
    assert isinstance(sink, DuckingSink)
    sounded = np.frombuffer(sink.output(), dtype="<i2").astype(np.float64)

    def level(start_ms: int, end_ms: int) -> float:
        return float(np.sqrt(np.mean(sounded[start_ms * MS:end_ms * MS] ** 2)))

    full = level(300, 500)
    assert level(700, 900) / full == pytest.approx(DUCK_GAIN, abs=0.02), "ducked, not stopped"
    assert level(1100, 1500) / full == pytest.approx(1.0, abs=0.02), "resumed at full gain"
    assert level(1700, 2100) / full == pytest.approx(DUCK_GAIN, abs=0.02)
    assert level(2300, 2800) == 0.0, "committed: flushed, silent"
    # onset (600) seen at the end of its 20 ms frame; the detector's stop edge 200 ms after
    # the cough's last voiced block (750 -> 950), seen at the end of that frame (960)
    assert sink.ducks == [(620.0, DUCK_GAIN), (960.0, 1.0), (1620.0, DUCK_GAIN),
                          (1620.0 + CONFIRM_MS, 1.0)]
    (update,) = server.commands(c.UpdateSession)
    assert isinstance(update.config, SessionConfig)
    assert update.config.turn_detection == ServerVad(interrupt_response=False)
    (cancel,) = server.commands(c.CancelResponse)
    (truncate,) = server.commands(c.TruncateItem)
    assert cancel.response_id == "r1"
    # heard from 100 ms to the commit at 2220 ms, plus the 5 ms fade
    assert truncate.audio_end_ms == 2220 - 100 + 5
    (barge,) = [o for o in seen if isinstance(o, Interrupted)]
    assert barge.trigger == WINDOW and barge.cancelled == ("r1",)
    assert barge.at_ms == 1620.0, "timed from the onset of the sound it judged"
    assert barge.stop_latency_ms == pytest.approx(CONFIRM_MS + 10 + 5 + 20)
    moves = [(o.source, o.dest, o.trigger) for o in seen
             if isinstance(o, StateChanged) and o.source != o.dest]
    assert ("speaking", "ducked", "local_speech_started") in moves
    assert ("ducked", "speaking", "local_speech_stopped") in moves
    assert ("ducked", "interrupted", WINDOW) in moves
    assert (figures.ducks, figures.false_interruptions) == (2, 1)
    assert figures.onset_to_duck_ms == [20.0, 20.0], "the detector's lag within one frame"
    assert session.conversation.stats.false_interruptions == 1


async def test_a_sink_that_cannot_duck_plays_on_and_the_judgement_is_the_same() -> None:
    assert not isinstance(PlainSink(VirtualClock()), Duckable)
    user = quiet(600) + tone(150, hz=220, level=0.5) + quiet(2000)
    with capture_logs() as logs:
        async with rig(PlainSink, user) as (time, server, _sink, session, _seen):
            await server.emit(e.SessionReady(interrupt_response=False))
            await time.advance(100)
            await server.emit(*reply("r1", "i1", 2000, done=False))
            await time.advance(700)
            assert session.conversation.state == "ducked"
            await time.advance(300)
            assert session.conversation.state == "speaking"
    assert [x["event"] for x in logs if x["event"] in ("duck_ignored", "restore_ignored")] \
        == ["duck_ignored", "restore_ignored"]
    assert server.commands(c.CancelResponse) == [] and server.commands(c.TruncateItem) == []
    assert session.figures["r1"].false_interruptions == 1


async def test_under_server_vad_the_server_is_told_not_to_cut_and_bargein_cancels() -> None:
    """``MemoryServer(answer=True)`` plays a server that honours ``interrupt_response``: it
    would cancel the reply at its own ``speech_started`` had bargein not switched it off."""
    time, server = VirtualTime(), MemoryServer(answer=True)
    sink = DuckingSink(time.clock)
    session = Session(server.transport, MemorySource(time.clock, b""), sink,
                      Conversation(TWO_PHASE_SERVER_VAD_TABLE), clock=time.now,
                      sleep=time.sleep)
    async with session:
        session.handle(e.ConfigureSession(SessionConfig(turn_detection=ServerVad())))
        await server.settle()
        assert session.conversation.server_interrupts_response is False
        await server.emit(*reply("r1", "i1", 4000, done=False))
        await time.advance(500)
        await server.emit(e.SpeechStarted("u1", 480))          # a cough
        await time.advance(200)
        await server.emit(e.SpeechStopped("u1", 640), e.InputTranscript("u1", "Mhm."))
        assert session.conversation.state == "speaking"
        await time.advance(300)
        await server.emit(e.SpeechStarted("u2", 980))          # the user talks
        await time.advance(CONFIRM_MS)
        assert session.conversation.state == "listening"
        figures = session.figures["r1"]
    (update,) = server.commands(c.UpdateSession)
    assert isinstance(update.config, SessionConfig) and not update.config.interrupt_response
    (cancel,) = server.commands(c.CancelResponse)
    assert cancel.response_id == "r1"
    assert figures.status == "cancelled" and figures.client_cancelled
    (truncate,) = server.commands(c.TruncateItem)
    # heard from 0 to the commit at 1600 ms, the device block and the fade: it played on
    assert truncate.audio_end_ms == 1000 + CONFIRM_MS + 10 + 5
    assert [g for _, g in sink.ducks] == [DUCK_GAIN, 1.0, DUCK_GAIN, 1.0]
    assert [t for t, _ in sink.ducks] == [500.0, 700.0, 1000.0, 1000.0 + CONFIRM_MS]
    assert (figures.ducks, figures.false_interruptions) == (2, 1)
    assert figures.onset_to_duck_ms == [], "the server's onsets are on its clock, not ours"
    stats = session.conversation.stats
    assert (stats.false_interruptions, stats.backchannels) == (1, 1)


# --- against the simulator ------------------------------------------------------------

LONG = ("This answer runs on for a good while, so that the user can cough over it, and the "
        "reply should carry on as if nothing happened, and then the user can really cut in "
        "and the reply should stop, be cancelled and be truncated to what was heard.")


@pytest.mark.e2e
async def test_under_the_simulators_server_vad_a_cough_resumes_and_a_long_sound_commits() -> None:
    # the user coughs 1.5 s in and talks from 3.5 s; the server's VAD is the only detector
    # (a 100 ms cough and a 150 ms silence window: the server's speech_stopped comes 250 ms
    # after the onset, 350 ms before the window closes, a margin for a busy machine)
    user = silence(1500) + loud(100) + silence(1900) + loud(1500) + silence(8000)
    config = SessionConfig(turn_detection=ServerVad(silence_duration_ms=150, prefix_padding_ms=0))
    async with serving(script=(LONG, "Yes?"), speed=1.0) as sim, \
            live(sim, TWO_PHASE_SERVER_VAD_TABLE, user, config, DuckingSink) as run:
        session, seen, sink = run.session, run.seen, run.session.sink
        assert isinstance(sink, DuckingSink)
        await run.until(lambda: ("idle", "listening", "session_ready") in run.moves())
        session.handle(e.RequestResponse())
        await run.until(lambda: any(isinstance(o, Interrupted) for o in seen))
        await run.until(lambda: len(session.figures) == 2)
        record = sim.records[0]
    (update, *_) = record.client_events("session.update")
    assert update["session"]["audio"]["input"]["turn_detection"]["interrupt_response"] is False
    moves = run.moves()
    assert ("speaking", "ducked", "speech_started") in moves
    assert ("ducked", "speaking", "speech_stopped") in moves, "the cough was let go"
    assert ("ducked", "interrupted", WINDOW) in moves
    assert moves.index(("ducked", "speaking", "speech_stopped")) \
        < moves.index(("ducked", "interrupted", WINDOW))
    assert [g for _, g in sink.ducks] == [DUCK_GAIN, 1.0, DUCK_GAIN, 1.0]
    (barge,) = [o for o in seen if isinstance(o, Interrupted)]
    assert barge.cancelled_by == "client"
    assert len(record.client_events("response.cancel")) == 1, "bargein cancels when it commits"
    (truncate,) = record.client_events("conversation.item.truncate")
    assert truncate["audio_end_ms"] == barge.settlements[0].audio_end_ms
    assert truncate["audio_end_ms"] >= 3500 - 1000, "it played on through the cough"
    first = next(iter(session.figures.values()))
    assert (first.ducks, first.false_interruptions) == (2, 1)
    assert session.conversation.stats.false_interruptions == 1
