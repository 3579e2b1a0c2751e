"""A close says what happens next, and per-connection state is per connection.

Against the project's simulator: ``close_at_once`` makes a connection that is accepted and
then closed with the code a test picks (after one ``error`` event), ``Simulator.drop`` cuts
a connection without a close frame. A test that wants the next connection healthy swaps
the simulator's faults while the transport's iterator is parked on ``Disconnected``: the
transport reconnects only when asked for its next event, so nothing races.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import msgspec
import pytest

from bargein.adapters import endpoints
from bargein.adapters.codec import WireCodec
from bargein.adapters.session_config import ServerVad, SessionConfig
from bargein.adapters.transport import (
    RealtimeTransport,
    Reconnection,
    ReconnectPolicy,
    close_action,
)
from bargein.core import events as ev
from bargein.core.commands import UpdateSession
from bargein.errors import NotConnected, ServerClosed
from bargein.logs import capture
from bargein.sim import Faults, Simulator
from tests.support.sim_support import serving

pytestmark = pytest.mark.e2e

POLICY = ReconnectPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)
CONFIG = UpdateSession(SessionConfig(turn_detection=ServerVad(), voice="alloy"), "evt_cfg")


def transport_for(sim: Simulator) -> RealtimeTransport:
    """A keyless transport (a loopback simulator gets no key by default)."""
    return RealtimeTransport(endpoints.custom(sim.url), None, reconnect=POLICY)


async def next_event(events: AsyncIterator[ev.Event]) -> ev.Event:
    return await asyncio.wait_for(anext(events), 30)


async def until(events: AsyncIterator[ev.Event], kind: type[ev.Event]) -> list[ev.Event]:
    seen = [await next_event(events)]
    while not isinstance(seen[-1], kind):
        seen.append(await next_event(events))
    return seen


async def closed_at_once(sim: Simulator, transport: RealtimeTransport,
                         events: AsyncIterator[ev.Event]) -> list[ev.Event]:
    """Connect, send a session configuration, read up to the server's close."""
    await transport.connect()
    with contextlib.suppress(NotConnected):  # remembered even if the close came first
        await transport.send(CONFIG)
    seen = await until(events, ev.Disconnected)
    assert [type(e) for e in seen] == [ev.ServerError, ev.Disconnected]
    return seen


# --- the policy ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("code", "action"),
    [
        (1000, "end"), (1005, "end"),
        (None, "reconnect"), (1001, "reconnect"), (1006, "reconnect"), (1011, "reconnect"),
        (1012, "reconnect"), (1013, "reconnect"), (1014, "reconnect"),
        (1002, "fail"), (1003, "fail"), (1007, "fail"), (1008, "fail"), (1009, "fail"),
        (1010, "fail"), (3000, "fail"), (3003, "fail"), (4001, "fail"), (4401, "fail"),
        (4999, "fail"), (1004, "fail"), (2000, "fail"),
    ],
)
def test_each_close_code_has_one_action(code: int | None, action: str) -> None:
    assert close_action(code) == action


async def test_a_normal_close_ends_the_conversation_cleanly() -> None:
    async with serving(faults=Faults(close_at_once=1000)) as sim:
        transport = transport_for(sim)
        events = transport.events()
        seen = await closed_at_once(sim, transport, events)
        assert isinstance(seen[-1], ev.Disconnected) and "code 1000" in seen[-1].reason
        with pytest.raises(StopAsyncIteration):
            await next_event(events)
        assert len(sim.records) == 1  # no reconnection into a fresh session
        assert transport.last_reconnect is None


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (1008, "1008 (policy violation)"),
        (1002, "1002 (protocol error)"),
        (1003, "1003 (unsupported data)"),
        (1007, "1007 (invalid frame payload)"),
        (1009, "1009 (message too big)"),
        (3000, "3000 (unauthorized)"),
        (4001, "4001 (application code)"),
        (4403, "4403 (application code)"),
    ],
)
async def test_a_close_that_refuses_the_session_raises_server_closed(code: int, name: str) -> None:
    async with serving(faults=Faults(close_at_once=code)) as sim:
        transport = transport_for(sim)
        events = transport.events()
        await closed_at_once(sim, transport, events)
        with pytest.raises(ServerClosed) as caught:
            await next_event(events)
        assert len(sim.records) == 1
    message = str(caught.value)
    assert f"closed the connection with code {name}" in message
    assert "not reconnecting" in message and "\n" not in message
    assert caught.value.code == code
    assert caught.value.reason == "the simulator closes at once (fault close_at_once)"


@pytest.mark.parametrize("code", [1001, 1011, 1012, 1013, 1014])
async def test_a_close_that_may_pass_reconnects_and_says_the_context_was_lost(code: int) -> None:
    async with serving(faults=Faults(close_at_once=code)) as sim:
        transport = transport_for(sim)
        events = transport.events()
        seen = await closed_at_once(sim, transport, events)
        sim.config = dataclasses.replace(sim.config, faults=Faults())  # the next one is fine
        with capture() as logs:
            assert await next_event(events) == ev.Reconnected()
        assert isinstance(await next_event(events), ev.SessionReady)  # a new server session
        await transport.close()
        assert len(sim.records) == 2
        assert len(sim.records[1].client_events("session.update")) == 1  # restored
    disconnected = seen[-1]
    assert isinstance(disconnected, ev.Disconnected)
    reason = disconnected.reason
    assert reason.startswith(f"closed with code {code}")
    assert transport.last_reconnect == Reconnection(
        reason=reason,
        attempts=1,
        down_s=transport.last_reconnect.down_s,  # type: ignore[union-attr]
        session_restored=True,
        context_lost=True,
    )
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [e["event"] for e in warnings] == ["realtime_reconnected_context_lost"]
    assert warnings[0]["reason"] == reason
    assert warnings[0]["restored"] == "the session configuration"
    assert "conversation" in warnings[0]["lost"]


async def test_a_network_drop_reconnects_and_says_the_context_was_lost() -> None:
    async with serving() as sim:
        transport = transport_for(sim)
        await transport.connect()
        events = transport.events()
        assert isinstance(await next_event(events), ev.SessionReady)
        with capture() as logs:
            sim.drop(0)
            dropped = await next_event(events)
            assert dropped == ev.Disconnected("connection dropped without a close frame")
            assert await next_event(events) == ev.Reconnected()
        assert isinstance(await next_event(events), ev.SessionReady)
        await transport.close()
    last = transport.last_reconnect
    assert last is not None
    assert (last.reason, last.session_restored, last.context_lost) == (
        "connection dropped without a close frame", False, True)
    assert 0 <= last.down_s < 30
    warnings = [(e["event"], e["restored"]) for e in logs
                if e["log_level"] == "warning" and "restored" in e]
    assert warnings == [("realtime_reconnected_context_lost", "nothing")]


# --- per-connection state ----------------------------------------------------------------

async def test_an_event_id_of_the_old_connection_is_new_on_the_next() -> None:
    """A server that numbers its events per connection sends the ids of the last one again:
    after a reconnection they must not be taken for duplicates."""
    async with serving() as sim:
        transport = transport_for(sim)
        await transport.connect()
        events = transport.events()
        ready = await next_event(events)
        assert isinstance(ready, ev.SessionReady)
        (created,) = (await sim.connection(0)).server_events("session.created")
        frame = msgspec.json.encode(created)
        assert transport.codec.decode(frame) is None  # same connection: a duplicate
        sim.drop(0)
        await until(events, ev.Reconnected)
        assert transport.codec.decode(frame) == ready  # new connection: a new event
        await transport.close()


def test_new_connection_forgets_event_ids_and_item_state() -> None:
    codec = WireCodec("ga", "g711_ulaw")
    ready = b'{"type": "session.created", "event_id": "event_1", "session": {}}'
    delta = (b'{"type": "response.output_audio.delta", "event_id": "event_2", '
             b'"response_id": "resp_1", "item_id": "item_1", "output_index": 0, '
             b'"content_index": 0, "delta": "' + b"/" * 160 + b'"}')
    done = (b'{"type": "response.output_audio.done", "event_id": "event_3", '
            b'"response_id": "resp_1", "item_id": "item_1", "output_index": 0, '
            b'"content_index": 0}')
    assert isinstance(codec.decode(ready), ev.SessionReady)
    assert isinstance(codec.decode(delta), ev.AudioDelta)  # the resampler holds a tail
    assert codec.decode(ready) is None  # a repeat on one connection: a duplicate
    codec.new_connection()
    assert isinstance(codec.decode(ready), ev.SessionReady)  # the server counts from 1 again
    # item_1 of the old server session left nothing behind for the new one's item_1
    assert codec.decode(done) is None
