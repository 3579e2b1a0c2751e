"""``bargein demo``: a whole conversation with a barge-in, offline, in about 15 seconds.

The simulator runs in-process; the user's side is bundled speech (``data/demo_user.wav``:
a question, then, while the assistant answers, an interruption). What the user heard is
written to ``heard.wav`` on the input's clock, and the timeline to ``timeline.svg``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TextIO

from bargein.adapters import endpoints
from bargein.adapters.audio.wav import read_wav_24k_mono
from bargein.cli.console import LivePrinter, figures_table
from bargein.cli.runner import RunOptions, run
from bargein.cli.timeline_svg import render_timeline_svg
from bargein.session import Interrupted, Observation, StateChanged
from bargein.sim import Faults, SimConfig, Simulator

ASSISTANT_SCRIPT = (
    "The lighthouse on the harbour was built in eighteen sixty two, after a winter storm "
    "wrecked three fishing boats on the rocks. Its first keeper lit the lamp every night "
    "for forty years, and the tower still guides ships home today.",
    "It opens at nine in the morning, every day except Monday.",
)


SIM_CONFIG = SimConfig(
    script=ASSISTANT_SCRIPT,
    speed=2.0,  # faster than it plays, as the real service, yet still going at the barge-in
    reply_latency_ms=400.0,
    # the classic leak: the server keeps sending audio of the reply it has cancelled
    faults=Faults(late_deltas_after_cancel=5),
)


@dataclass(frozen=True, slots=True)
class DemoResult:
    heard_wav: Path
    timeline_svg: Path


async def demo(out_dir: Path, out: TextIO = sys.stdout) -> DemoResult:
    """Run the scripted conversation; print its timeline and figures; write the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    heard_wav, timeline_svg = out_dir / "heard.wav", out_dir / "timeline.svg"
    user_wav = resources.files("bargein") / "data" / "demo_user.wav"
    observations: list[Observation] = []
    printer = LivePrinter(out)
    with resources.as_file(user_wav) as user_path:
        async with Simulator(SIM_CONFIG) as sim:
            print(f"simulator listening on {sim.url}; the user speaks from {user_wav.name}",
                  file=out)
            options = RunOptions(
                endpoint=endpoints.custom(sim.url, auth="none"),
                key=None,
                input=str(user_path),
                output=str(heard_wav),
                linger_s=1.0,
            )
            session = await run(options, [observations.append, printer])
        user_pcm = read_wav_24k_mono(user_path)
    heard_pcm = read_wav_24k_mono(heard_wav)
    print("\nper response:\n" + figures_table(session.figures.values()), file=out)
    stats = session.conversation.stats
    print(f"\nlate audio deltas dropped: {stats.dropped_deltas} ({stats.dropped_audio_ms:.0f} ms);"
          f" illegal events: {stats.illegal_events}; server errors: {stats.server_errors}",
          file=out)
    timeline_svg.write_text(_timeline(user_pcm, heard_pcm, observations), encoding="utf-8")
    print(f"\nwrote {heard_wav} (what the user heard) and {timeline_svg}", file=out)
    return DemoResult(heard_wav, timeline_svg)


def _timeline(user_pcm: bytes, heard_pcm: bytes, observations: list[Observation]) -> str:
    states = [(0.0, "idle")]
    marks: list[tuple[float, str]] = []
    for obs in observations:
        if isinstance(obs, StateChanged) and obs.source != obs.dest:
            states.append((max(obs.at_ms, states[-1][0]), obs.dest))
        elif isinstance(obs, Interrupted):
            marks.append((obs.at_ms, f"barge-in ({obs.trigger})"))
            marks += [
                (obs.at_ms + obs.stop_latency_ms, f"{s.action} {s.audio_end_ms} ms")
                for s in obs.settlements
                if s.action != "keep"
            ]
    return render_timeline_svg(
        user_pcm, heard_pcm, states, marks, title="bargein demo: what the user said and heard"
    )
