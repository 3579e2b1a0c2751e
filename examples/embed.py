"""Embedding bargein: a conversation with hooks and a custom ``thinking`` state.

    python examples/embed.py --url ws://127.0.0.1:8765/v1 question.wav heard.wav
    python examples/embed.py question.wav heard.wav          # OpenAI, key from OPENAI_API_KEY
    bargein diagram --machine embed:WITH_THINKING            # with examples/ on PYTHONPATH
"""

from __future__ import annotations

import argparse
import asyncio

from bargein import Conversation
from bargein.adapters import endpoints
from bargein.adapters.audio.wav import WavSink, WavSource
from bargein.adapters.secrets import ApiKey
from bargein.adapters.session_config import ServerVad, SessionConfig
from bargein.adapters.transport import RealtimeTransport
from bargein.core.events import ConfigureSession
from bargein.session import Interrupted, Observation, Session, StateChanged, Transcript
from bargein.states import DEFAULT_TABLE, State, Transition

# Between the end of the user's turn and the first audio of the answer. Interruptible, so
# it gets the barge-in edges by itself: speaking again cancels the answer being prepared.
WITH_THINKING = DEFAULT_TABLE.extend(
    states=[State("thinking", interruptible=True, description="the user finished; no audio yet")],
    transitions=[
        Transition("speech_stopped", "listening", "thinking", reason="user finished"),
        Transition("response_created", "thinking", None),
        Transition("audio_started", "thinking", "responding", reason="first audio"),
        Transition("response_done", "thinking", "listening", reason="nothing to say"),
    ],
    name="with_thinking",
)


def show(obs: Observation) -> None:
    """A hook: called with every observation, in order."""
    if isinstance(obs, StateChanged) and obs.source != obs.dest:
        print(f"{obs.at_ms:8.0f} ms  {obs.source} -> {obs.dest}  ({obs.reason})")
    elif isinstance(obs, Interrupted):
        for s in obs.settlements:
            print(f"{obs.at_ms:8.0f} ms  barge-in: {s.action} {s.item_id} at {s.audio_end_ms} ms, "
                  f"silent after {obs.stop_latency_ms:.1f} ms")
    elif isinstance(obs, Transcript) and obs.role == "user":
        print(f"{obs.at_ms:8.0f} ms  user said: {obs.text}")


async def main(url: str | None, wav_in: str, wav_out: str, seconds: float) -> None:
    endpoint = endpoints.custom(url, auth="none") if url else endpoints.openai()
    transport = RealtimeTransport(endpoint, None if url else ApiKey.from_env())
    source = WavSource(wav_in)                    # or PyAudioMicrophone()
    sink = WavSink(wav_out, source.clock)         # or PyAudioSpeaker()
    await transport.connect()
    async with Session(transport, source, sink, Conversation(WITH_THINKING)) as session:
        session.subscribe(show)
        session.handle(ConfigureSession(SessionConfig(turn_detection=ServerVad())))
        await asyncio.sleep(seconds)              # or: await session.wait()
    for figures in session.figures.values():
        print(figures)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a simulator, e.g. ws://127.0.0.1:8765/v1")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("wav_in")
    parser.add_argument("wav_out")
    args = parser.parse_args()
    asyncio.run(main(args.url, args.wav_in, args.wav_out, args.seconds))
