"""The beta flavour (header ``OpenAI-Beta: realtime=v1``) and G.711 audio in both flavours."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from bargein.adapters.audio import g711
from bargein.adapters.audio.resample import resample_pcm16
from bargein.sim.voice import speak
from tests.support.sim_support import Client, audio_ms, serving, silence, tone

pytestmark = pytest.mark.e2e

BETA = {"OpenAI-Beta": "realtime=v1"}
SCRIPT = ("Short beta reply here.",)


async def test_beta_session_and_reply_use_beta_names_and_shapes() -> None:
    async with serving(script=SCRIPT) as sim:
        client = await Client.open(sim.realtime_url + "?model=gpt-4o-realtime-preview", BETA)
        session = (await client.recv())["session"]
        assert (session["input_audio_format"], session["turn_detection"]["type"]) == (
            "pcm16",
            "server_vad",
        )
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "modalities": ["audio", "text"],
                    "voice": "verse",
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": 200},
                },
            }
        )
        updated = (await client.recv())["session"]
        assert (updated["voice"], updated["turn_detection"]["silence_duration_ms"]) == (
            "verse",
            200,
        )
        await client.append(tone(400) + silence(400))
        events = await client.until("response.done")
        types = [e["type"] for e in events]
        assert "conversation.item.created" in types and "conversation.item.added" not in types
        assert "response.audio.delta" in types and "response.output_audio.delta" not in types
        transcript = "".join(
            e["delta"] for e in events if e["type"] == "response.audio_transcript.delta"
        )
        assert transcript == SCRIPT[0]
        assert events[-1]["response"]["output"][0]["content"][0]["type"] == "audio"
        assert (await sim.connection(0)).api == "beta"


async def test_beta_rejects_ga_shaped_sessions() -> None:
    async with serving() as sim:
        client = await Client.open(sim.realtime_url, BETA)
        await client.recv()
        await client.send({"type": "session.update", "session": {"type": "realtime"}})
        error = await client.recv()
        assert (error["type"], error["error"]["code"]) == ("error", "unknown_parameter")


def _ulaw_tone(ms: int, dbfs: float = -12.0) -> bytes:
    return g711.ulaw_encode(tone(ms, dbfs, rate=8000))


async def test_beta_g711_ulaw_in_and_out() -> None:
    async with serving(script=SCRIPT) as sim:
        client = await Client.open(sim.realtime_url, BETA)
        await client.recv()
        await client.send(
            {
                "type": "session.update",
                "session": {"input_audio_format": "g711_ulaw", "output_audio_format": "g711_ulaw"},
            }
        )
        await client.until("session.updated")
        audio = bytes([0xFF]) * 8 * 500 + _ulaw_tone(600) + bytes([0xFF]) * 8 * 700
        await client.append(audio, frame_bytes=160)
        events = await client.until("response.done")
        started = next(e for e in events if e["type"] == "input_audio_buffer.speech_started")
        stopped = next(e for e in events if e["type"] == "input_audio_buffer.speech_stopped")
        assert (started["audio_start_ms"], stopped["audio_end_ms"]) == (200, 1100)
        reply = b"".join(
            base64.b64decode(e["delta"]) for e in events if e["type"] == "response.audio.delta"
        )
        expected = g711.ulaw_encode(resample_pcm16(speak(SCRIPT[0], "synthetic"), 24_000, 8_000))
        assert reply == expected
        record = await sim.connection(0)
        assert (bytes(record.audio), record.audio_format) == (audio, "g711_ulaw")


async def test_ga_g711_alaw_in_and_out_and_truncate_in_ms() -> None:
    async with serving(script=SCRIPT) as sim:
        client = await Client.open(sim.realtime_url)
        await client.recv()
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {
                        "input": {"format": {"type": "audio/pcma"}},
                        "output": {"format": {"type": "audio/pcma"}},
                    },
                },
            }
        )
        session = (await client.until("session.updated"))[-1]["session"]
        assert session["audio"]["output"]["format"] == {"type": "audio/pcma"}
        voiced = g711.alaw_encode(tone(500, rate=8000))
        quiet = g711.alaw_encode(silence(700, rate=8000))
        await client.append(voiced + quiet, frame_bytes=160)
        events = await client.until("response.done")
        sent_ms = audio_ms(events, "response.output_audio.delta", bytes_per_ms=8)
        decoded = np.frombuffer(
            g711.alaw_decode(
                b"".join(
                    base64.b64decode(e["delta"])
                    for e in events
                    if e["type"] == "response.output_audio.delta"
                )
            ),
            dtype="<i2",
        )
        assert sent_ms == decoded.size // 8 and np.abs(decoded).max() > 1000
        item_id = events[-1]["response"]["output"][0]["id"]
        await client.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": sent_ms,
            }
        )
        assert (await client.until("conversation.item.truncated"))[-1]["audio_end_ms"] == sent_ms


async def test_input_format_cannot_change_after_audio() -> None:
    async with serving() as sim:
        client = await Client.open(sim.realtime_url, BETA)
        await client.recv()
        await client.append(silence(100))
        await client.send(
            {"type": "session.update", "session": {"input_audio_format": "g711_alaw"}}
        )
        assert (await client.recv())["type"] == "error"
