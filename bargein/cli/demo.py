"""``bargein demo``: a whole conversation with a barge-in, offline, in about 15 seconds.

The simulator runs in-process; the user's side is bundled speech (``data/demo_user.wav``:
a question, then, while the assistant answers, an interruption; its words are in
``data/demo_user.json``). What the user heard is written to ``heard.wav`` on the input's
clock, and the timeline to ``timeline.svg``: the user's words, the audio heard and the audio
received but never played, the late audio that was dropped, the interrupted span, the
truncate point and the assistant's text cut where the user stopped hearing it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TextIO

import numpy as np

from bargein.adapters.audio.memory import VirtualClock
from bargein.adapters.audio.wav import WavSink, WavSource, read_wav_24k_mono
from bargein.cli.console import CUT, LivePrinter, figures_table
from bargein.cli.runner import hold
from bargein.cli.timeline_svg import Caption, Span, render_timeline_svg
from bargein.core.pcm import BYTES_PER_MS, RATE
from bargein.session import (
    Heard,
    Interrupted,
    Observation,
    ResponseFigures,
    StateChanged,
    Transcript,
)
from bargein.sim import Faults, SimConfig, Simulator
from bargein.talking import connect

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
class Utterance:
    """What the bundled user says, and when, on the input's clock."""

    start_ms: float
    end_ms: float
    text: str


@dataclass(frozen=True, slots=True)
class DemoResult:
    heard_wav: Path
    timeline_svg: Path
    reason: str = "input over"
    """Why the conversation ended (``"stopped by the user"`` after Ctrl-C)."""


def user_script() -> list[Utterance]:
    """The bundled user's utterances (``data/demo_user.json``)."""
    raw = (resources.files("bargein") / "data" / "demo_user.json").read_text(encoding="utf-8")
    return [Utterance(float(u["start_ms"]), float(u["end_ms"]), str(u["text"]))
            for u in json.loads(raw)["utterances"]]


class _TapSink(WavSink):
    """A WAV sink that also keeps every item's audio as received, and when it was queued:
    what the timeline draws as received but never played."""

    def __init__(self, path: Path, clock: VirtualClock) -> None:
        super().__init__(path, clock)
        self.tap_clock = clock
        self.received: dict[str, bytearray] = {}
        self.queued_at_ms: dict[str, float] = {}

    def play(self, item_id: str, pcm: bytes) -> None:
        self.received.setdefault(item_id, bytearray()).extend(pcm)
        self.queued_at_ms.setdefault(item_id, self.tap_clock.ms)
        super().play(item_id, pcm)


def _with_user_words(words: list[Utterance], forward: Callable[[Observation], None]
                     ) -> Callable[[Observation], None]:
    """Observations with the bundled user's words among them, each once it has been said
    (the simulator does not transcribe: the script stands in for the server's transcript)."""
    pending = list(words)

    def observe(obs: Observation) -> None:
        while pending and pending[0].end_ms <= obs.at_ms:
            said = pending.pop(0)
            forward(Transcript(said.end_ms, "user", f"script_{len(words) - len(pending)}",
                               said.text, final=True))
        forward(obs)

    return observe


async def demo(out_dir: Path, out: TextIO = sys.stdout) -> DemoResult:
    """Run the scripted conversation; print its timeline and figures; write the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    heard_wav, timeline_svg = out_dir / "heard.wav", out_dir / "timeline.svg"
    user_wav = resources.files("bargein") / "data" / "demo_user.wav"
    words = user_script()
    observations: list[Observation] = []
    printer = LivePrinter(out)

    def tee(obs: Observation) -> None:
        observations.append(obs)
        printer(obs)

    with resources.as_file(user_wav) as user_path:
        async with Simulator(SIM_CONFIG) as sim:
            print(f"simulator listening on {sim.url}; the user speaks from {user_wav.name}",
                  file=out)
            source = WavSource(user_path)
            sink = _TapSink(heard_wav, source.clock)
            connecting = connect(sim.url, input=source, output=sink, linger_s=1.0,
                                 observer=_with_user_words(words, tee))
            session, reason = await hold(connecting)
        user_pcm = read_wav_24k_mono(user_path)
    heard_pcm = read_wav_24k_mono(heard_wav)
    print("\nper response:\n" + figures_table(session.figures.values()), file=out)
    stats = session.conversation.stats
    print(f"\nlate audio deltas dropped: {stats.dropped_deltas} ({stats.dropped_audio_ms:.0f} ms);"
          f" illegal events: {stats.illegal_events}; server errors: {stats.server_errors}",
          file=out)
    svg = timeline(user_pcm, heard_pcm, observations, words, sink, session.figures)
    timeline_svg.write_text(svg, encoding="utf-8")
    print(f"\nwrote {heard_wav} (what the user heard) and {timeline_svg}", file=out)
    return DemoResult(heard_wav, timeline_svg, reason)


def timeline(
    user_pcm: bytes,
    heard_pcm: bytes,
    observations: list[Observation],
    words: list[Utterance],
    sink: _TapSink,
    figures: dict[str, ResponseFigures],
) -> str:
    """The demo's picture: every claim of the barge-in, drawn where it happened."""
    states = [(0.0, "idle")]
    marks: list[tuple[float, str]] = []
    spans: list[Span] = []
    captions = [Caption(u.start_ms, u.end_ms, "user", ((u.text, "said"),)) for u in words]
    ghost = np.zeros(len(heard_pcm) // 2, dtype=np.int16)
    finals: dict[str, str] = {}
    cut_items: set[str] = set()
    silent_at: dict[str, float] = {}  # response id -> when its barge-in fell silent
    for obs in observations:
        if isinstance(obs, StateChanged) and obs.source != obs.dest:
            states.append((max(obs.at_ms, states[-1][0]), obs.dest))
        elif isinstance(obs, Transcript) and obs.role == "assistant" and obs.final:
            finals[obs.item_id] = obs.text
        elif isinstance(obs, Interrupted):
            silent = obs.at_ms + obs.stop_latency_ms
            marks.append((obs.at_ms, f"barge-in ({obs.trigger}): silent "
                                     f"{obs.stop_latency_ms:.1f} ms later"))
            spans.append(Span(obs.at_ms, silent, "interrupted: from the barge-in to silence",
                              "interrupted"))
            for s in obs.settlements:
                silent_at[s.response_id] = silent
                if s.action != "keep":
                    marks.append((silent, f"{s.action} at {s.audio_end_ms} ms (of "
                                          f"{s.received_ms:.0f} ms received)"))
        elif isinstance(obs, Heard):
            cut_items.add(obs.item_id)
            silent = silent_at.get(obs.response_id, obs.at_ms)
            rest = bytes(sink.received.get(obs.item_id, b""))[
                round(obs.heard_ms * BYTES_PER_MS) // 2 * 2:]
            start = round(silent * RATE / 1000)
            if start >= ghost.size:
                ghost = np.concatenate([ghost, np.zeros(start - ghost.size + 1, np.int16)])
            ghost_end = start + len(rest) // 2
            if ghost_end > ghost.size:
                ghost = np.concatenate([ghost, np.zeros(ghost_end - ghost.size, np.int16)])
            ghost[start:ghost_end] = np.frombuffer(rest, dtype="<i2")
            unplayed_ms = len(rest) / BYTES_PER_MS
            began = sink.queued_at_ms.get(obs.item_id, silent - obs.heard_ms)
            captions.append(Caption(began, silent + unplayed_ms, "heard", (
                (obs.heard, "heard"), (CUT, "cut"), (obs.unheard, "unheard"))))
            dropped = figures[obs.response_id].dropped_ms if obs.response_id in figures else 0.0
            if dropped > 0:  # it arrives right after the cancel: the classic leak plays it
                spans.append(Span(silent, silent + dropped,
                                  f"late audio of the cancelled reply, dropped: {dropped:.0f} ms",
                                  "dropped"))
    for item_id, text in finals.items():
        if item_id in cut_items or item_id not in sink.queued_at_ms:
            continue
        began = sink.queued_at_ms[item_id]
        length = len(sink.received[item_id]) / BYTES_PER_MS
        captions.append(Caption(began, began + length, "heard", ((text, "heard"),)))
    return render_timeline_svg(
        user_pcm, heard_pcm, states, marks, title="bargein demo: what the user said and heard",
        ghost_pcm=ghost.astype("<i2").tobytes(), spans=spans, captions=captions,
    )
