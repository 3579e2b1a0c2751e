"""The conversation as text, told to a new server session after a reconnect (issue 15):
``bargein.history`` on its own, a session on a MemoryServer that reconnects, and the
simulator accepting what bargein sends."""

from __future__ import annotations

import pytest

from bargein import Reconnected, Session
from bargein.adapters import endpoints
from bargein.adapters.audio.memory import VirtualClock
from bargein.adapters.codec import WireCodec
from bargein.adapters.session_config import ServerVad, SessionConfig
from bargein.adapters.transport import RealtimeTransport, ReconnectPolicy
from bargein.core import commands as c
from bargein.core import events as e
from bargein.history import History
from bargein.testing import MemoryServer, MemorySink, MemorySource, VirtualTime, reply
from tests.support.sim_support import Client, serving, silence, tone
from tests.support.waiting import eventually, realtime_clock

TEXT = "one two three four five six seven eight nine ten"


def test_turns_come_back_in_order_with_what_was_heard_of_a_cut_reply() -> None:
    history = History()
    history.said("user", "u1", "What is the tide?")
    history.said("assistant", "a1", "High at nine.")
    history.said("user", "u2", " Tell me more. ")
    history.heard("a2", "Low at ")        # cut before its transcript was final
    history.said("assistant", "a2", "Low at three, and then high again.")
    history.said("assistant", "a3", "Nobody heard this.")
    history.heard("a3", "")               # deleted: nothing was heard
    assert history.messages() == [
        c.CreateMessage("user", "What is the tide?"),
        c.CreateMessage("assistant", "High at nine."),
        c.CreateMessage("user", "Tell me more."),
        c.CreateMessage("assistant", "Low at"),
    ]


def test_a_cut_after_the_final_text_replaces_it_in_place() -> None:
    history = History()
    history.said("assistant", "a1", TEXT)
    history.said("user", "u1", "stop")
    history.heard("a1", "one two ")
    assert [m.text for m in history.messages()] == ["one two", "stop"]


def test_the_record_is_bounded_oldest_first() -> None:
    history = History(max_turns=3, max_chars=1000)
    for n in range(10):
        history.said("user", f"u{n}", f"turn {n}")
    assert [m.text for m in history.messages()] == ["turn 7", "turn 8", "turn 9"]
    history = History(max_turns=100, max_chars=25)
    for n in range(10):
        history.said("assistant", f"a{n}", f"reply {n:04}")  # 10 chars each
    assert [m.text for m in history.messages()] == ["reply 0008", "reply 0009"]
    for n in range(1000):
        history.heard(f"x{n}", "cut")
    assert len(history._cut) <= history.max_turns


@pytest.mark.parametrize(("api", "part"), [("ga", "output_text"), ("beta", "text")])
def test_a_message_is_a_text_item_of_the_api_flavour(api: str, part: str) -> None:
    codec = WireCodec(api)  # type: ignore[arg-type]
    assert codec.to_payload(c.CreateMessage("assistant", "hi")) == {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "assistant",
                 "content": [{"type": part, "text": "hi"}]}}
    assert codec.to_payload(c.CreateMessage("user", "yo"))["item"]["content"] == [
        {"type": "input_text", "text": "yo"}]


async def _session(restore: bool) -> tuple[MemoryServer, Session, list[object], VirtualTime]:
    time, server = VirtualTime(), MemoryServer()
    session = Session(server.transport, MemorySource(time.clock), MemorySink(time.clock),
                      clock=time.now, sleep=time.sleep, restore_context=restore)
    seen: list[object] = []
    session.subscribe(seen.append)
    return server, session, seen, time


@pytest.mark.parametrize("restore", [True, False])
async def test_a_reconnect_tells_the_new_session_what_was_said_and_heard(restore: bool) -> None:
    server, session, seen, time = await _session(restore)
    async with session:
        await server.emit(e.SessionReady(interrupt_response=True),
                          e.InputTranscript("u1", "What is the tide?"))
        await server.emit(*reply("resp_1", "item_1", 300, transcript="High at nine."))
        await time.advance(400)
        await server.emit(e.InputTranscript("u2", "And tomorrow?"))
        await server.emit(*reply("resp_2", "item_2", 1000, transcript=TEXT, done=False))
        await time.advance(500)
        await server.emit(e.SpeechStarted("u3", 500))  # the user cuts the second reply
        await server.emit(e.ResponseDone("resp_2", "cancelled", "turn_detected"))
        await time.advance(100)
        await server.emit(e.ResponseCreated("resp_3"),
                          e.TranscriptDelta("resp_3", "item_3", "in flight"))
        before = len(server.sent)
        server.disconnect("dropped")
        await server.settle()
        server.reconnect()
        await server.settle()
    (reconnected,) = [o for o in seen if isinstance(o, Reconnected)]
    restored = [x for x in server.sent[before:] if isinstance(x, c.CreateMessage)]
    if not restore:
        assert restored == [] and reconnected.turns_restored == 0
        return
    assert [(m.role, m.text) for m in restored] == [
        ("user", "What is the tide?"),
        ("assistant", "High at nine."),
        ("user", "And tomorrow?"),
        ("assistant", "one two three four five"),  # what was heard; the reply in flight: not
    ]
    assert reconnected.turns_restored == 4


@pytest.mark.e2e
@pytest.mark.parametrize("api", ["ga", "beta"])
async def test_the_simulator_takes_the_restored_turns_as_text_items(api: str) -> None:
    codec = WireCodec(api)  # type: ignore[arg-type]
    headers = {"OpenAI-Beta": "realtime=v1"} if api == "beta" else None
    added = "conversation.item.added" if api == "ga" else "conversation.item.created"
    async with serving() as sim:
        client = await Client.open(sim.realtime_url, headers)
        await client.recv()
        for message in (c.CreateMessage("user", "What is the tide?"),
                        c.CreateMessage("assistant", "High at nine.")):
            await client.send(codec.to_payload(message))
        await client.until(added, timeout=60)
        await client.until(added, timeout=60)
        record = await sim.connection(0)
    items = [x["item"] for x in client.of_type(added)]
    assert [(i["role"], i["content"][0]["text"]) for i in items] == [
        ("user", "What is the tide?"), ("assistant", "High at nine.")]
    assert record.server_events("error") == [], "accepted as they are"


@pytest.mark.e2e
async def test_after_a_dropped_connection_the_simulator_holds_the_conversation_as_text() -> None:
    """A spoken turn (transcribed), a reply played to its end, the TCP connection cut: the
    new server session gets the session settings again, then both turns as text items."""
    clock = VirtualClock()
    user = silence(200) + tone(600) + silence(20_000)
    async with serving(script=("High at nine.",), speed=4.0,
                       user_transcripts=("What is the tide?",)) as sim:
        transport = RealtimeTransport(endpoints.custom(sim.url, auth="none"), None,
                                      reconnect=ReconnectPolicy(max_attempts=5, base_delay=0.05))
        await transport.connect()
        async with realtime_clock(clock), Session(
                transport, MemorySource(clock, user), MemorySink(clock),
                clock=lambda: clock.ms / 1000, linger_s=None) as session:
            seen: list[object] = []
            session.subscribe(seen.append)
            session.handle(e.ConfigureSession(SessionConfig(
                turn_detection=ServerVad(silence_duration_ms=300),
                input_transcription_model="whisper-1")))
            history = session.history
            assert history is not None
            await eventually(lambda: len(history) == 2 and session.sink.idle,
                             lambda: history.messages())
            sim.drop(0)
            await eventually(lambda: any(isinstance(o, Reconnected) for o in seen))
            second = await sim.connection(1, timeout=60)
            await eventually(lambda: len(second.client_events("conversation.item.create")) == 2,
                             lambda: [x.event["type"] for x in second.received])
    kinds = [x.event["type"] for x in second.received]
    assert kinds.index("session.update") < kinds.index("conversation.item.create")
    items = [x["item"] for x in second.client_events("conversation.item.create")]
    assert [(i["role"], i["content"]) for i in items] == [
        ("user", [{"type": "input_text", "text": "What is the tide?"}]),
        ("assistant", [{"type": "output_text", "text": "High at nine."}])]
    assert second.server_events("error") == []
