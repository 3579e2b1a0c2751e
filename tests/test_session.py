"""The session over real sockets: the simulator, the real transport and codec, memory audio
on a clock that runs in real time. This is how a program embeds bargein.

What needs no socket (the barge-in's exact figures, disconnects, late deltas, server errors,
custom states) is tested on an in-memory server and a virtual clock in
``test_session_memory.py``."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from bargein import Conversation
from bargein.adapters import endpoints
from bargein.adapters.audio.memory import MemorySink, MemorySource, VirtualClock
from bargein.adapters.audio.vad import EnergyVad
from bargein.adapters.session_config import ServerVad, SessionConfig
from bargein.adapters.transport import RealtimeTransport, ReconnectPolicy
from bargein.core import events as e
from bargein.errors import ConnectionLost
from bargein.session import (
    Closed,
    Interrupted,
    Observation,
    ServerEvent,
    Session,
    StateChanged,
    Transcript,
)
from bargein.sim import Simulator
from bargein.sim.voice import speak
from bargein.states import DEFAULT_TABLE
from bargein.testing import SelfSigned, capture_logs, self_signed
from tests.support.live import live
from tests.support.sim_support import check_client_events, first_sound, serving, silence, tone
from tests.support.waiting import eventually, realtime_clock

SCRIPT = (
    "This first answer is long enough that the user will surely cut in before it ends, "
    "which is the whole point of this test.",
    "Short second answer.",
)

pytestmark = pytest.mark.e2e

# user: speaks 0.2-0.8 s; the reply starts ~1.3 s; barges in at 2.2 s; then quiet
USER = silence(200) + tone(600) + silence(1400) + tone(500) + silence(3000)


async def converse(
    sim: Simulator, api: str, conversation: Conversation | None = None, *,
    interrupt_response: bool = True, local_vad: EnergyVad | None = None,
    trust: SelfSigned | None = None,
) -> tuple[Session, MemorySink, list[Observation]]:
    clock = VirtualClock()
    source, sink = MemorySource(clock, USER), MemorySink(clock)
    transport = RealtimeTransport(endpoints.custom(sim.url, api=api, auth="none"), None,  # type: ignore[arg-type]
                                  ssl_context=trust.client_context() if trust else None)
    await transport.connect()
    seen: list[Observation] = []
    async with realtime_clock(clock), Session(
        transport, source, sink, conversation, clock=lambda: clock.ms / 1000, local_vad=local_vad
    ) as session:
        session.subscribe(seen.append)
        session.handle(e.ConfigureSession(SessionConfig(
            turn_detection=ServerVad(interrupt_response=interrupt_response))))
        # both replies over (the second answers the barge-in), and the speaker quiet
        await eventually(lambda: len(session.figures) == 2
                         and all(f.status for f in session.figures.values())
                         and session.conversation.in_state("listening") and sink.idle,
                         lambda: (session.conversation.state, session.figures))
        output = sink.output()
    seen.append(Closed(0, "test"))
    sink.output = lambda: output  # type: ignore[method-assign]
    return session, sink, seen


@pytest.mark.parametrize(("api", "interrupt_response", "tls"), [
    ("ga", True, False), ("ga", False, False), ("beta", True, False), ("beta", False, False),
    ("ga", True, True),  # over wss://, as every OpenAI and Azure connection is
])
async def test_barge_in_end_to_end(api: str, interrupt_response: bool, tls: bool,
                                   tmp_path: Path) -> None:
    certificate = self_signed(tmp_path) if tls else None
    async with serving(script=SCRIPT, speed=4.0,
                       tls=certificate.server_context() if certificate else None) as sim:
        assert sim.url.startswith("wss://" if tls else "ws://")
        session, sink, seen = await converse(sim, api, interrupt_response=interrupt_response,
                                             trust=certificate)
        record = sim.records[0]
    interrupted = [o for o in seen if isinstance(o, Interrupted)]
    assert len(interrupted) == 1, seen
    (barge,) = interrupted
    assert barge.trigger == "speech_started"
    (settlement,) = barge.settlements
    assert settlement.action == "truncate"
    (truncate,) = record.client_events("conversation.item.truncate")
    assert truncate["audio_end_ms"] == settlement.audio_end_ms
    assert truncate["item_id"] == settlement.item_id
    cancels = record.client_events("response.cancel")
    assert len(cancels) == (0 if interrupt_response else 1)
    check_client_events(sim, api)

    out = np.frombuffer(sink.output(), dtype="<i2")
    first, second = (np.frombuffer(speak(t, "synthetic"), dtype="<i2") for t in SCRIPT)
    start = first_sound(out) - first_sound(first)
    # matched: how much of the first reply played as it is, up to the cut's fade; cut: where
    # in the output that was. An underrun of the memory sink (its clock runs in real time, and
    # a busy machine can starve the loop) puts silence inside the reply, so the samples are
    # matched without the silent ones on either side.
    matched, cut = _played_as_is(out[start:], first)
    cut += start
    assert abs(truncate["audio_end_ms"] - matched / 24) <= 10, (truncate, matched / 24)
    # the reported stop latency is the truth (to the ms), and it is the sink's output latency
    # (20 ms), at most one block (10 ms) and the fade (5 ms)
    silent_at = (barge.at_ms + barge.stop_latency_ms) * 24
    assert silent_at - 24 - 120 <= cut <= silent_at + 24
    assert barge.stop_latency_ms <= 20 + 10 + 5 + 1
    second_start = cut + first_sound(out[cut + 240:]) + 240 - first_sound(second)
    assert not out[cut + 240: second_start].any(), "audio of the interrupted reply followed"
    assert _played_as_is(out[second_start:], second)[0] == len(second), \
        "the next reply plays whole"
    figures = list(session.figures.values())
    assert figures[0].interrupted and figures[0].audio_end_ms == truncate["audio_end_ms"]
    assert figures[0].time_to_first_audio_ms is not None
    assert not figures[1].interrupted


async def test_manual_turns_commit_what_the_user_said_before_asking_for_the_reply() -> None:
    """Turn detection off: the program ends the user's turn with ``RequestResponse``; the
    audio sent is committed first, so the reply answers it (without the commit a real server
    answers a conversation that never heard the user). The server's events about it, which
    bargein does not model, reach the program as ``ServerEvent``."""
    async with serving(script=("Yes.",), speed=4.0) as sim, \
            live(sim, DEFAULT_TABLE, tone(600) + silence(20000),
                 SessionConfig(turn_detection=None)) as run:
        await run.reach("idle", "listening")
        await run.clock_passes(800)  # the user has spoken, and 800 ms were sent
        run.session.handle(e.RequestResponse())
        await run.until(lambda: any(f.status == "completed"
                                    for f in run.session.figures.values()))
        record = sim.records[0]
    sent = [ev.type for ev in record if ev.type != "input_audio_buffer.append"]
    assert sent.index("input_audio_buffer.commit") < sent.index("response.create"), sent
    (committed,) = record.server_events("input_audio_buffer.committed")
    (user_item,) = [ev["item"] for ev in record.server_events("conversation.item.added")
                    if ev["item"].get("role") == "user"]
    assert user_item["id"] == committed["item_id"]
    assert not record.server_events("error")
    check_client_events(sim, "ga")
    # what bargein does not model reaches the program whole, as the server sent it
    passed_on = [o for o in run.seen if isinstance(o, ServerEvent)]
    (commit_seen,) = [o for o in passed_on if o.type == "input_audio_buffer.committed"]
    assert commit_seen.known and commit_seen.event == committed
    assert user_item in [o.event["item"] for o in passed_on
                         if o.type == "conversation.item.added"]


async def test_a_typed_message_cuts_the_reply_and_is_answered() -> None:
    """The user types over a reply: it is cut as by speech (cancel, truncate to what was
    heard), then the message and a new response follow, and the server takes them all."""
    async with serving(script=SCRIPT, speed=1.0) as sim, \
            live(sim, DEFAULT_TABLE, silence(30000), SessionConfig(turn_detection=None)) as run:
        await run.reach("idle", "listening")
        run.session.handle(e.RequestResponse())
        await run.reach("listening", "responding")
        await run.until(lambda: max(run.session.sink.heard_ms().values(), default=0) >= 500)
        run.session.handle(e.UserMessage("Actually, make it short."))
        await run.until(lambda: [f.status for f in run.session.figures.values()]
                        == ["cancelled", "completed"])
        record = sim.records[0]
    (barge,) = run.interrupted()
    assert barge.trigger == "interrupt" and barge.settlements[0].action == "truncate"
    sent = [ev.type for ev in record if ev.type != "input_audio_buffer.append"]
    assert sent[-4:] == ["response.cancel", "conversation.item.truncate",
                         "conversation.item.create", "response.create"], sent
    (typed,) = record.client_events("conversation.item.create")
    assert typed["item"]["content"] == [{"type": "input_text", "text": "Actually, make it short."}]
    assert not record.server_events("error")
    check_client_events(sim, "ga")


async def test_a_text_reply_comes_as_its_transcript_with_nothing_played() -> None:
    async with serving(script=("At six, from platform four.",), speed=4.0) as sim, \
            live(sim, DEFAULT_TABLE, silence(20000),
                 SessionConfig(turn_detection=None, reply="text")) as run:
        await run.reach("idle", "listening")
        run.session.handle(e.RequestResponse())
        await run.until(lambda: any(f.status == "completed"
                                    for f in run.session.figures.values())
                        and run.session.conversation.in_state("listening"))
        output = run.session.sink.output()  # type: ignore[attr-defined]
        record = sim.records[0]
    (update,) = record.client_events("session.update")
    assert update["session"]["output_modalities"] == ["text"]
    assert not record.server_events("response.output_audio.delta")
    (final,) = [o for o in run.seen if isinstance(o, Transcript) and o.final]
    assert (final.role, final.text) == ("assistant", "At six, from platform four.")
    assert not any(output), "a text reply plays nothing"
    assert not record.server_events("error")


def _played_as_is(out: np.ndarray, item: np.ndarray) -> tuple[int, int]:
    """(samples of ``item`` that ``out`` played unchanged from its start, where in ``out``
    the first changed one is), both comparing only the non-zero samples."""
    where = np.flatnonzero(item)
    sounded = np.flatnonzero(out)[: len(where)]
    same = out[sounded] == item[where[: len(sounded)]]
    if same.all():
        return (len(item), int(sounded[-1]) + 1) if len(sounded) == len(where) \
            else (int(where[len(sounded)]), len(out))
    k = int(np.argmin(same))
    return int(where[k]), int(sounded[k])


async def observed_session(
    sim: Simulator, reconnect: ReconnectPolicy | None = None
) -> tuple[Session, list[Observation], asyncio.Task[None]]:
    """A started session over memory audio, and a task collecting ``observations()``."""
    clock = VirtualClock()
    transport = RealtimeTransport(endpoints.custom(sim.url, auth="none"), None,
                                  reconnect=reconnect)
    await transport.connect()
    session = Session(transport, MemorySource(clock), MemorySink(clock))
    seen: list[Observation] = []

    async def collect() -> None:
        async for obs in session.observations():
            seen.append(obs)

    collector = asyncio.create_task(collect())
    await asyncio.sleep(0)  # the iterator subscribes before anything happens
    session.start()
    return session, seen, collector


async def test_observations_iterator_ends_when_the_session_closes() -> None:
    async with serving(script=SCRIPT, speed=4.0) as sim:
        session, got, collector = await observed_session(sim)
        await eventually(lambda: session.conversation.in_state("listening"), lambda: got)
        threads_before = threading.active_count()
        await session.close()
        await asyncio.wait_for(collector, 2)
    assert isinstance(got[-1], Closed)
    assert any(isinstance(o, StateChanged) and o.dest == "listening" for o in got)
    assert all(t.done() for t in session._tasks)
    assert threading.active_count() <= threads_before


async def test_a_lost_server_ends_the_session_with_a_typed_error() -> None:
    async with serving(script=SCRIPT, speed=4.0) as sim:
        session, seen, observer = await observed_session(
            sim, ReconnectPolicy(max_attempts=1, base_delay=0.01))
        everything: list[Observation] = []
        session.subscribe(everything.append)
        await eventually(lambda: session.conversation.in_state("listening"), lambda: everything)
        with capture_logs() as logs:
            await sim.stop()
            with pytest.raises(ConnectionLost, match="reconnection attempts failed"):
                await asyncio.wait_for(session.wait(), 10)
            # without close(): the observers hear of it, and no loop runs on
            await asyncio.wait_for(observer, 2)
            await asyncio.sleep(0)
        assert isinstance(seen[-1], Closed) and seen[-1].reason.startswith("error: lost")
        assert all(t.done() for t in session._tasks)
        assert any(x["event"] == "session_failed" and "ConnectionLost" in x["error"]
                   for x in logs)
        assert session.conversation.state == "idle"
        await session.close()
    assert len([o for o in everything if isinstance(o, Closed)]) == 1, "closed once"


async def test_local_vad_barges_in_before_the_server_round_trip() -> None:
    vad = EnergyVad(24_000, 0.5, prefix_padding_ms=0, silence_duration_ms=500)
    async with serving(script=SCRIPT, speed=4.0) as sim:
        session, _, seen = await converse(sim, "ga", local_vad=vad)
        record = sim.records[0]
    (barge,) = [o for o in seen if isinstance(o, Interrupted)]
    assert barge.trigger == "local_speech_started"
    assert barge.settlements[0].action == "truncate"
    assert len(record.client_events("response.cancel")) == 1  # the server does not know yet
    truncate = record.client_events("conversation.item.truncate")[0]
    assert truncate["audio_end_ms"] == barge.settlements[0].audio_end_ms
    stats = session.conversation.stats
    assert stats.server_errors == 0, "a cancel that raced the server's own is benign"
