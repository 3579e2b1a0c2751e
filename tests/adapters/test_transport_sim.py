"""The transport and codec against the project's Realtime simulator, in both flavours.

A whole exchange over loopback: configure, speak (server VAD), receive a streamed reply,
barge in, truncate. The simulator checks every event it sends against the official models.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bargein.adapters import endpoints
from bargein.adapters.secrets import ApiKey
from bargein.adapters.session_config import AudioFormat, ServerVad, SessionConfig
from bargein.adapters.transport import RealtimeTransport
from bargein.core import events as ev
from bargein.core.commands import SendAudio, TruncateItem, UpdateSession
from bargein.core.pcm import BYTES_PER_MS
from bargein.sim import SimConfig, Simulator
from tests.support.sim_support import serving, silence, sim_config, tone

pytestmark = pytest.mark.e2e

FRAME = 20 * BYTES_PER_MS
DEADLINE_S = 60.0  # generous: a busy machine is slow, and waiting costs nothing when it is not


@pytest.fixture
def realtime_sim_config() -> SimConfig:
    return sim_config(speed=1.0, chunk_ms=40, script=("A reply long enough to interrupt " * 4,))


async def speak(transport: RealtimeTransport, audio: bytes) -> None:
    for start in range(0, len(audio), FRAME):
        await transport.send(SendAudio(audio[start : start + FRAME]))


async def until(events: AsyncIterator[ev.Event], kind: type[ev.Event]) -> list[ev.Event]:
    seen: list[ev.Event] = []
    while not isinstance(seen[-1] if seen else None, kind):
        seen.append(await asyncio.wait_for(anext(events), DEADLINE_S))
    return seen


@pytest.mark.parametrize(
    ("api", "fmt"), [("ga", "pcm16"), ("beta", "pcm16"), ("ga", "g711_ulaw"), ("beta", "g711_alaw")]
)
async def test_a_barge_in_over_the_wire(
    realtime_sim: Simulator,
    api: str,
    fmt: AudioFormat,
) -> None:
    endpoint = endpoints.custom(realtime_sim.url, "gpt-realtime", api=api)  # type: ignore[arg-type]
    config = SessionConfig(
        input_format=fmt,
        output_format=fmt,
        turn_detection=ServerVad(silence_duration_ms=300, interrupt_response=True),
    )
    async with RealtimeTransport(endpoint, ApiKey("sk-sim-" + "0" * 20)) as transport:
        events = transport.events()
        await transport.send(UpdateSession(config))
        await until(events, ev.SessionReady)  # session.created
        updated = (await until(events, ev.SessionReady))[-1]
        assert isinstance(updated, ev.SessionReady) and updated.interrupt_response
        await speak(transport, tone(600) + silence(500))
        turn = await until(events, ev.AudioDelta)
        assert [type(e) for e in turn if isinstance(e, ev.SpeechStarted | ev.SpeechStopped)] == [
            ev.SpeechStarted,
            ev.SpeechStopped,
        ]
        first = turn[-1]
        assert isinstance(first, ev.AudioDelta) and len(first.audio) > 0
        await speak(transport, tone(400))  # the user talks over the reply
        rest = await until(events, ev.ResponseDone)
        done = rest[-1]
        assert isinstance(done, ev.ResponseDone) and done.status == "cancelled"
        assert any(isinstance(e, ev.SpeechStarted) for e in rest)
        await transport.send(TruncateItem(first.item_id, 40))
        truncated = await until(events, ev.ItemTruncated)
        assert truncated[-1] == ev.ItemTruncated(first.item_id, 40)
    record = await realtime_sim.connection(0)
    assert record.client_events("session.update")
    assert record.client_events("conversation.item.truncate")


async def test_deliver_hands_over_what_events_yields() -> None:
    """The same exchange read both ways, ``events()`` and ``deliver()`` (what the session
    uses): the same events in the same order, up to the end of the reply; then ``close()``
    ends each."""
    async with serving() as sim:  # fast replies
        by_iteration, by_delivery = await _iterated(sim), await _delivered(sim)
    assert [type(e) for e in by_delivery] == [type(e) for e in by_iteration]
    assert sum(isinstance(e, ev.AudioDelta) for e in by_delivery) > 1


_CONFIG = UpdateSession(SessionConfig(turn_detection=ServerVad(silence_duration_ms=300)))


async def _iterated(sim: Simulator) -> list[ev.Event]:
    async with RealtimeTransport(endpoints.custom(sim.url), None) as transport:
        events = transport.events()
        await transport.send(_CONFIG)
        await until(events, ev.SessionReady)
        seen = await until(events, ev.SessionReady)
        await speak(transport, tone(600) + silence(500))
        seen += await until(events, ev.ResponseDone)
    async for _ in events:  # what came before close(); then iteration ends
        pass
    return seen


async def _delivered(sim: Simulator) -> list[ev.Event]:
    seen: list[ev.Event] = []
    ready, done = asyncio.Event(), asyncio.Event()

    def on_event(event: ev.Event) -> None:
        seen.append(event)
        if sum(isinstance(e, ev.SessionReady) for e in seen) == 2:
            ready.set()
        if isinstance(event, ev.ResponseDone):
            done.set()

    transport = RealtimeTransport(endpoints.custom(sim.url), None)
    await transport.connect()
    delivering = asyncio.create_task(transport.deliver(on_event))
    await transport.send(_CONFIG)
    await asyncio.wait_for(ready.wait(), DEADLINE_S)
    await speak(transport, tone(600) + silence(500))
    await asyncio.wait_for(done.wait(), DEADLINE_S)
    await transport.close()
    await asyncio.wait_for(delivering, DEADLINE_S)  # close() ends delivery
    end = next(i for i, e in enumerate(seen) if isinstance(e, ev.ResponseDone))
    return seen[1 : end + 1]  # as _iterated() keeps them: the second SessionReady on
