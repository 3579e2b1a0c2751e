"""openai-agents' realtime agents (``agents.realtime``), a client nobody here wrote, run
against the simulator: a spoken turn, a barge-in with its truncate (and the retrieve the
agents send after it), a tool call to its follow-up answer, and a text reply; no ``error``
that the test did not provoke, on either side."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest

agents = pytest.importorskip("agents")
from agents import function_tool, set_tracing_disabled  # noqa: E402
from agents.realtime import (  # noqa: E402
    RealtimeAgent,
    RealtimeRunConfig,
    RealtimeRunner,
    RealtimeSession,
    RealtimeSessionEvent,
    RealtimeSessionModelSettings,
)

from bargein.sim import Simulator, ToolCall  # noqa: E402
from tests.support.sim_support import serving, silence, tone  # noqa: E402

pytestmark = pytest.mark.e2e

DEADLINE = 60.0
"""Seconds to wait for any one thing: generous, for a busy two-core machine."""
LONG = (
    "This is a long reply, long enough for the user to talk over it halfway through, while "
    "the assistant goes on about the lighthouse, the harbour, the boats and the weather."
)
FRAME = 960  # 20 ms of PCM16 at 24 kHz


class Watcher:
    """Every event of an agents session, kept in order, with waits on them."""

    def __init__(self, session: RealtimeSession) -> None:
        self.session = session
        self.events: list[RealtimeSessionEvent] = []
        self._changed = asyncio.Event()

    async def run(self) -> None:
        async for event in self.session:
            self.events.append(event)
            self._changed.set()

    async def wait(self, what: str, test: Callable[[RealtimeSessionEvent], bool],
                   count: int = 1) -> RealtimeSessionEvent:
        async def seen() -> RealtimeSessionEvent:
            while True:
                found = [e for e in self.events if test(e)]
                if len(found) >= count:
                    return found[count - 1]
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(seen(), DEADLINE)
        except TimeoutError:
            kinds = [_kind(e) for e in self.events]
            raise AssertionError(f"no {what} within {DEADLINE} s; saw {kinds}") from None

    def server(self, kind: str) -> list[dict[str, Any]]:
        """The raw server events of ``kind`` the agents received."""
        return [data for e in self.events if (data := _raw(e)) and data.get("type") == kind]

    def errors(self) -> list[RealtimeSessionEvent]:
        """The session's errors, and the model's errors and exceptions under them."""
        return [e for e in self.events if e.type == "error" or (
            e.type == "raw_model_event" and e.data.type in ("error", "exception"))]


def _raw(event: RealtimeSessionEvent) -> dict[str, Any] | None:
    if event.type == "raw_model_event" and event.data.type == "raw_server_event":
        data = event.data.data
        return data if isinstance(data, dict) else None
    return None


def _kind(event: RealtimeSessionEvent) -> str:
    raw = _raw(event)
    return f"raw:{raw.get('type')}" if raw else event.type


def is_server(kind: str) -> Callable[[RealtimeSessionEvent], bool]:
    return lambda e: (_raw(e) or {}).get("type") == kind


@contextlib.asynccontextmanager
async def agents_session(sim: Simulator, agent: RealtimeAgent[Any],
                         settings: dict[str, Any]) -> AsyncIterator[Watcher]:
    set_tracing_disabled(True)  # the agents would otherwise export traces upstream
    config = RealtimeRunConfig(model_settings=cast(RealtimeSessionModelSettings, settings))
    runner = RealtimeRunner(agent, config=config)
    session = await runner.run(model_config={
        "url": f"{sim.realtime_url}?model=gpt-realtime", "api_key": "sk-sim"})
    async with session:
        watcher = Watcher(session)
        task = asyncio.create_task(watcher.run())
        try:
            yield watcher
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def speak(session: RealtimeSession, audio: bytes) -> None:
    for start in range(0, len(audio), FRAME):
        await session.send_audio(audio[start : start + FRAME])


calls: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    calls.append(city)
    return f"sunny in {city}"


VAD = {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300,
                          "interrupt_response": True, "create_response": True}}


async def test_agents_turn_barge_in_and_tool_call() -> None:
    calls.clear()
    script = (LONG, ToolCall("get_weather", {"city": "Paris"}, answer="The forecast: {output}."))
    async with serving(script=script, speed=1.0) as sim:
        agent = RealtimeAgent(name="sim", instructions="Be helpful.", tools=[get_weather])
        async with agents_session(sim, agent, VAD) as watch:
            record = await sim.connection(0, timeout=DEADLINE)
            await watch.wait("session.updated", is_server("session.updated"))
            # a spoken turn gets a reply; the user talks over it
            await speak(watch.session, silence(300) + tone(800) + silence(600))
            await watch.wait("the reply's audio", lambda e: e.type == "audio", count=5)
            await speak(watch.session, tone(600) + silence(600))
            await watch.wait("the interruption", lambda e: e.type == "audio_interrupted")
            truncated = await watch.wait("the truncate", is_server("conversation.item.truncated"))
            await watch.wait("the retrieve's answer", is_server("conversation.item.retrieved"))
            done = watch.server("response.done")[0]["response"]
            assert (done["status"], done["status_details"]["reason"]) == (
                "cancelled", "turn_detected")
            truncate = record.client_events("conversation.item.truncate")
            assert len(truncate) == 1
            assert truncate[0]["item_id"] == done["output"][0]["id"]
            raw = _raw(truncated)
            assert raw is not None and raw["audio_end_ms"] == truncate[0]["audio_end_ms"] > 0
            # the turn that interrupted gets a tool call; the agents run it and ask again
            await watch.wait("the tool's end", lambda e: e.type == "tool_end")
            assert calls == ["Paris"]
            await watch.wait("the follow-up", is_server("response.done"), count=3)
            answers = watch.server("response.output_audio_transcript.done")
            assert answers[-1]["transcript"] == "The forecast: sunny in Paris."
            outputs = [e["item"] for e in record.client_events("conversation.item.create")]
            assert [(o["type"], o["output"]) for o in outputs] == [
                ("function_call_output", "sunny in Paris")]
            assert watch.errors() == []
            assert record.server_events("error") == []
            sent = {e.type for e in record.received}
            assert "conversation.item.retrieve" in sent


async def test_agents_text_reply_to_a_typed_message() -> None:
    async with serving(script=("Written, not spoken.",)) as sim:
        agent = RealtimeAgent(name="sim", instructions="Write.")
        settings = {**VAD, "output_modalities": ["text"]}
        async with agents_session(sim, agent, settings) as watch:
            record = await sim.connection(0, timeout=DEADLINE)
            await watch.wait("session.updated", is_server("session.updated"))
            await watch.session.send_message("Hello there, in writing please.")
            await watch.wait("the reply", is_server("response.done"))
            texts = watch.server("response.output_text.done")
            assert [t["text"] for t in texts] == ["Written, not spoken."]
            assert not watch.server("response.output_audio.delta")
            created = record.client_events("conversation.item.create")[0]["item"]
            assert created["content"] == [{"type": "input_text",
                                           "text": "Hello there, in writing please."}]
            history = [e for e in watch.events if e.type == "history_updated"]
            assert history and watch.errors() == []
            assert record.server_events("error") == []


async def test_agents_session_update_is_echoed_whole() -> None:
    """What the agents send at connect (tools, tracing, transcription, voice, formats) is
    accepted and echoed back, strict-valid (the simulator's hook checks every event)."""
    async with serving() as sim:
        agent = RealtimeAgent(name="sim", instructions="Check.", tools=[get_weather])
        async with agents_session(sim, agent, {**VAD, "voice": "marin"}) as watch:
            updated = await watch.wait("session.updated", is_server("session.updated"))
            session = (_raw(updated) or {})["session"]
            assert [t["name"] for t in session["tools"]] == ["get_weather"]
            assert session["audio"]["output"]["voice"] == "marin"
            assert json.dumps(session["audio"]["input"]["transcription"])
            assert watch.errors() == []
