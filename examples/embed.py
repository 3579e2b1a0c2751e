"""Embedding bargein: a conversation with hooks and a custom ``thinking`` state.

    python examples/embed.py --url ws://127.0.0.1:8765/v1 question.wav heard.wav
    python examples/embed.py question.wav heard.wav          # OpenAI, key from OPENAI_API_KEY
    python examples/embed.py --log-level info ...            # bargein's own log lines too
    bargein diagram --machine embed:WITH_THINKING            # with examples/ on PYTHONPATH
"""

from __future__ import annotations

import argparse
import asyncio

from bargein import (
    DEFAULT_TABLE,
    Conversation,
    Heard,
    Interrupted,
    Observation,
    Reconnected,
    State,
    StateChanged,
    Transcript,
    Transition,
    connect,
    logs,
)

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
                  f"silent after {obs.stop_latency_ms:.1f} ms (cancelled by {obs.cancelled_by})")
    elif isinstance(obs, Heard):
        print(f"{obs.at_ms:8.0f} ms  the user heard: {obs.heard.strip()!r}")
    elif isinstance(obs, Transcript) and obs.final:
        print(f"{obs.at_ms:8.0f} ms  {obs.role} said: {obs.text}")
    elif isinstance(obs, Reconnected):
        print(f"{obs.at_ms:8.0f} ms  reconnected: the server forgot the conversation")


async def main(url: str | None, wav_in: str, wav_out: str) -> None:
    async with connect(url, input=wav_in, output=wav_out,       # or "mic" and "speaker"
                       conversation=Conversation(WITH_THINKING), observer=show) as session:
        reason = await session.wait()  # by itself: the WAV is over and all is quiet
    print(f"ended: {reason}")
    for figures in session.figures.values():
        print(figures)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a simulator, e.g. ws://127.0.0.1:8765/v1")
    parser.add_argument("--log-level", choices=["debug", "info", "warning"],
                        help="also show bargein's own log lines, on stderr")
    parser.add_argument("wav_in")
    parser.add_argument("wav_out")
    args = parser.parse_args()
    if args.log_level:
        logs.enable("console", args.log_level)  # adds one handler to bargein's logger only
    asyncio.run(main(args.url, args.wav_in, args.wav_out))
