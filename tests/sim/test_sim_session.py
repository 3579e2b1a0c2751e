"""The session as upstream keeps it: whole session objects, input transcription, usage, rate
limits, the idle timeout, the voice that cannot change, and the time to first audio."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from openai.types.realtime import RealtimeSessionCreateRequest

from bargein.sim import DEFAULT_REPLY_LATENCY_MS, SimConfig
from bargein.sim.usage import Tokens, cached
from tests.support.sim_support import Client, audio_ms, serving, silence, tone

pytestmark = pytest.mark.e2e

SCRIPT = ("One two three four five six seven eight nine ten.",)
BETA = {"OpenAI-Beta": "realtime=v1"}


async def opened(url: str, headers: dict[str, str] | None = None) -> Client:
    client = await Client.open(url, headers)
    await client.until("session.created")
    return client


async def update(client: Client, session: dict[str, Any]) -> dict[str, Any]:
    await client.send({"type": "session.update", "session": session})
    event = (await client.until("session.updated"))[-1]
    return dict(event["session"])


async def test_the_ga_session_object_has_every_field_the_official_model_declares() -> None:
    async with serving() as sim:
        client = await Client.open(sim.realtime_url)
        session = (await client.until("session.created"))[-1]["session"]
        assert set(session) == set(RealtimeSessionCreateRequest.model_fields)
        assert set(session["audio"]["input"]) == {"format", "transcription", "noise_reduction",
                                                  "turn_detection"}
        assert set(session["audio"]["output"]) == {"format", "voice", "speed"}
        tools = [{"type": "function", "name": "f", "description": "d",
                  "parameters": {"type": "object", "properties": {}}}]
        echoed = await update(client, {
            "type": "realtime", "tools": tools, "tool_choice": "required",
            "tracing": {"workflow_name": "test"}, "truncation": "disabled",
            "max_output_tokens": 500, "include": ["item.input_audio_transcription.logprobs"],
            "reasoning": {"effort": "low"}, "parallel_tool_calls": False,
            "prompt": {"id": "pmpt_1", "version": "2"},
            "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe",
                                                  "language": "en"},
                                "noise_reduction": {"type": "near_field"},
                                "turn_detection": {"type": "server_vad",
                                                   "idle_timeout_ms": 6000}},
                      "output": {"speed": 1.2, "voice": "marin"}}})
        assert (echoed["tools"], echoed["tool_choice"], echoed["tracing"]) == (
            tools, "required", {"workflow_name": "test"})
        assert (echoed["truncation"], echoed["max_output_tokens"], echoed["reasoning"]) == (
            "disabled", 500, {"effort": "low"})
        assert (echoed["parallel_tool_calls"], echoed["prompt"]) == (
            False, {"id": "pmpt_1", "version": "2"})
        assert echoed["audio"]["input"]["transcription"]["model"] == "gpt-4o-mini-transcribe"
        assert echoed["audio"]["input"]["noise_reduction"] == {"type": "near_field"}
        assert echoed["audio"]["input"]["turn_detection"]["idle_timeout_ms"] == 6000
        assert (echoed["audio"]["output"]["speed"], echoed["audio"]["output"]["voice"]) == (
            1.2, "marin")


async def test_beta_sessions_echo_their_fields_too() -> None:
    async with serving() as sim:
        client = await opened(sim.realtime_url, BETA)
        echoed = await update(client, {
            "input_audio_transcription": {"model": "whisper-1"},
            "input_audio_noise_reduction": {"type": "far_field"}, "tool_choice": "none",
            "temperature": 0.7, "modalities": ["text"], "tracing": "auto"})
        assert echoed["input_audio_transcription"] == {"model": "whisper-1"}
        assert (echoed["input_audio_noise_reduction"], echoed["tool_choice"]) == (
            {"type": "far_field"}, "none")
        assert (echoed["temperature"], echoed["modalities"], echoed["tracing"]) == (
            0.7, ["text"], "auto")


@pytest.mark.parametrize(("model", "headers"), [("gpt-4o-mini-transcribe", None),
                                                ("whisper-1", None), ("whisper-1", BETA)])
async def test_input_transcription_events_when_the_session_asks(
    model: str, headers: dict[str, str] | None
) -> None:
    async with serving(script=SCRIPT, user_transcripts=("What is the weather like today?",)) as sim:
        client = await opened(sim.realtime_url, headers)
        if headers:
            await update(client, {"input_audio_transcription": {"model": model}})
        else:
            await update(client, {"type": "realtime", "audio": {"input": {
                "transcription": {"model": model}}}})
        await client.append(silence(300) + tone(1200) + silence(800))
        events = await client.until("conversation.item.input_audio_transcription.completed")
        committed = next(e for e in events if e["type"] == "input_audio_buffer.committed")
        deltas = [e for e in events
                  if e["type"] == "conversation.item.input_audio_transcription.delta"]
        completed = events[-1]
        assert completed["transcript"] == "What is the weather like today?"
        assert {d["item_id"] for d in deltas} == {committed["item_id"]} == {completed["item_id"]}
        assert "".join(d["delta"] for d in deltas) == completed["transcript"]
        usage = completed["usage"]
        if model == "whisper-1":
            assert len(deltas) == 1 and usage["type"] == "duration"
            assert usage["seconds"] == pytest.approx(2.0, abs=0.1)  # the whole buffer committed
        else:
            assert len(deltas) == 6 and usage["type"] == "tokens"
            assert usage["input_token_details"]["audio_tokens"] == 20  # 2 s at 10 a second
        await client.until("response.done")
        await client.send({"type": "conversation.item.retrieve",
                           "item_id": committed["item_id"]})
        item = (await client.until("conversation.item.retrieved"))[-1]["item"]
        assert item["content"][0]["transcript"] == completed["transcript"]


async def test_no_transcription_events_by_default() -> None:
    async with serving(script=SCRIPT) as sim:
        client = await opened(sim.realtime_url)
        await client.append(silence(300) + tone(600) + silence(800))
        events = await client.until("rate_limits.updated")
        assert not [e for e in events if "transcription" in e["type"]]


async def test_usage_and_rate_limits_after_each_response() -> None:
    async with serving(script=SCRIPT) as sim:
        client = await opened(sim.realtime_url)
        await client.append(silence(300) + tone(2000) + silence(800))
        events = await client.until("rate_limits.updated")
        done, limits = events[-2], events[-1]
        assert done["type"] == "response.done"
        usage = done["response"]["usage"]
        sent = audio_ms(events, "response.output_audio.delta")
        out = usage["output_token_details"]
        assert out["audio_tokens"] == math.ceil(sent / 50)
        assert out["text_tokens"] == math.ceil(len(SCRIPT[0]) / 4)
        inp = usage["input_token_details"]
        assert inp["audio_tokens"] == 28  # 2.8 s committed (to the VAD's stop) at 10 a second
        assert inp["text_tokens"] > 0 and inp["cached_tokens"] == 0
        assert usage["input_tokens"] == inp["text_tokens"] + inp["audio_tokens"]
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
        assert [r["name"] for r in limits["rate_limits"]] == ["requests", "tokens"]
        requests, tokens = limits["rate_limits"]
        assert requests["remaining"] == requests["limit"] - 1
        assert tokens["remaining"] == tokens["limit"] - usage["total_tokens"]
        # the next reply reads what the first did, and more
        await client.send({"type": "response.create"})
        second = (await client.until("response.done"))[-1]["response"]["usage"]
        assert second["input_tokens"] > usage["input_tokens"]


def test_cached_tokens_follow_upstream_prompt_caching() -> None:
    assert cached(900, Tokens(800, 200)) == Tokens()
    assert cached(1500, Tokens(1200, 600)) == Tokens(1200, 1472 - 1200)


async def test_the_idle_timeout_fires_after_the_reply_has_played_out() -> None:
    async with serving(script=SCRIPT, speed=4.0) as sim:
        client = await opened(sim.realtime_url)
        await update(client, {"type": "realtime", "audio": {"input": {"turn_detection": {
            "type": "server_vad", "idle_timeout_ms": 5000, "silence_duration_ms": 300}}}})
        await client.append(silence(300) + tone(600) + silence(400))
        events = await client.until("response.done")
        played_ms = audio_ms(events, "response.output_audio.delta")
        # the reply went out 4x faster than it plays: until it has played out and 5 s more,
        # no timeout
        await client.append(silence(played_ms + 4000))
        with pytest.raises(TimeoutError):
            await client.until("input_audio_buffer.timeout_triggered", timeout=0.5)
        await client.append(silence(1500))
        events = await client.until("input_audio_buffer.timeout_triggered")
        timeout = events[-1]
        assert 4900 <= timeout["audio_end_ms"] - timeout["audio_start_ms"] <= 5200
        events = await client.until("response.done")
        types = [e["type"] for e in events]
        assert types[:2] == ["input_audio_buffer.committed", "conversation.item.added"]
        assert events[0]["item_id"] == timeout["item_id"]
        assert "response.created" in types


async def test_speech_stops_the_idle_timeout() -> None:
    async with serving(script=SCRIPT) as sim:
        client = await opened(sim.realtime_url)
        await update(client, {"type": "realtime", "audio": {"input": {"turn_detection": {
            "type": "server_vad", "idle_timeout_ms": 5000, "create_response": False}}}})
        await client.send({"type": "response.create"})
        await client.until("response.done")
        await client.append(silence(3000) + tone(500) + silence(3000))
        await client.until("input_audio_buffer.speech_stopped")
        with pytest.raises(TimeoutError):
            await client.until("input_audio_buffer.timeout_triggered", timeout=0.5)


async def test_the_voice_cannot_change_once_the_assistant_has_spoken() -> None:
    async with serving(script=SCRIPT) as sim:
        client = await opened(sim.realtime_url)
        assert (await update(client, {"type": "realtime", "audio": {
            "output": {"voice": "cedar"}}}))["audio"]["output"]["voice"] == "cedar"
        await client.send({"type": "response.create"})
        await client.until("rate_limits.updated")
        same = {"type": "realtime", "instructions": "Be brief.",
                "audio": {"output": {"voice": "cedar"}}}
        assert (await update(client, same))["instructions"] == "Be brief."
        await client.send({"type": "session.update", "event_id": "evt_v", "session": {
            "type": "realtime", "instructions": "Be long.", "audio": {"output": {"voice": "ash"}}}})
        error = await client.recv()
        assert error["error"]["code"] == "cannot_update_voice"
        assert error["error"]["message"] == (
            "Cannot update a conversation's voice if assistant audio is present.")
        assert (error["error"]["event_id"], error["error"]["param"]) == (None, None)
        session = await update(client, {"type": "realtime"})
        assert (session["instructions"], session["audio"]["output"]["voice"]) == (
            "Be brief.", "cedar")


async def test_the_default_time_to_first_audio_is_realistic() -> None:
    assert 400.0 <= SimConfig().reply_latency_ms == DEFAULT_REPLY_LATENCY_MS <= 1000.0
    async with serving(script=SCRIPT, reply_latency_ms=DEFAULT_REPLY_LATENCY_MS) as sim:
        client = await opened(sim.realtime_url)
        await client.send({"type": "response.create"})
        loop = asyncio.get_running_loop()
        await client.until("response.created")
        created = loop.time()
        await client.until("response.output_audio.delta")
        assert loop.time() - created >= DEFAULT_REPLY_LATENCY_MS / 1000 - 0.05
