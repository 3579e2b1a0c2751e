"""Talk to `bargein sim` with a recorded question: python examples/quickstart.py URL [WAV]"""
import asyncio
import sys
from importlib.resources import files

from bargein import Heard, Observation, Transcript, talk


def show(obs: Observation) -> None:
    if isinstance(obs, Transcript) and obs.final:
        print(f"{obs.role}: {obs.text}")
    elif isinstance(obs, Heard):
        print(f"  (the user heard only: {obs.heard.strip()!r})")


async def main(url: str, wav: str) -> None:
    session = await talk(url, input=wav, output="heard.wav", observer=show)  # ends by itself
    for figures in session.figures.values():
        print(figures)


demo_user = files("bargein") / "data" / "demo_user.wav"  # a question, then a barge-in
asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else str(demo_user)))
