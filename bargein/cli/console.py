"""What a person sees in the terminal: the live timeline and the figures table."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TextIO

from bargein.session import (
    Closed,
    Heard,
    Interrupted,
    Observation,
    Reconnected,
    ResponseFigures,
    StateChanged,
    Transcript,
)

CUT = "‖"
"""Where the user stopped hearing the assistant, in a printed transcript."""


def cut_text(heard: Heard) -> str:
    """``heard ‖ unheard``: the transcript with the estimated cut marked."""
    said, rest = heard.heard.strip(), heard.unheard.strip()
    return " ".join(part for part in (said, CUT, rest) if part)


class LivePrinter:
    """Prints each observation as one timeline line; the assistant's text by utterance, at
    the end of its turn, with ``‖`` where the user stopped hearing it when it was cut."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self._parts: dict[str, list[str]] = {}
        self._final: dict[str, str] = {}
        self._printed: set[str] = set()
        self._cutting = False
        self._closed = False

    def __call__(self, obs: Observation) -> None:
        if isinstance(obs, StateChanged):
            if obs.source != obs.dest:
                if obs.dest == "interrupted":
                    self._cutting = True  # its text comes with the settlement (Heard)
                elif obs.dest in ("listening", "idle") and not self._cutting:
                    self._say(obs.at_ms)
                self._line(obs.at_ms, f"{obs.source} -> {obs.dest}  ({obs.trigger}: {obs.reason})")
        elif isinstance(obs, Transcript):
            if obs.role == "user":
                self._line(obs.at_ms, f'user: "{obs.text}"')
            elif obs.final:
                self._final[obs.item_id] = obs.text
            elif obs.item_id not in self._printed:
                self._parts.setdefault(obs.item_id, []).append(obs.text)
        elif isinstance(obs, Interrupted):
            self._cutting = False
            self._line(obs.at_ms, barge_in_line(obs))
        elif isinstance(obs, Heard):
            self._printed.add(obs.item_id)
            self._parts.pop(obs.item_id, None)
            self._line(obs.at_ms, f"assistant, cut off after {obs.heard_ms:.0f} of "
                                  f"{obs.received_ms:.0f} ms (heard {CUT} not heard): "
                                  f'"{cut_text(obs)}"')
        elif isinstance(obs, Reconnected):
            self._line(obs.at_ms, reconnected_line(obs))
        elif isinstance(obs, Closed):
            self._say(obs.at_ms)
            self._line(obs.at_ms, f"session closed ({obs.reason})")

    def _say(self, at_ms: float) -> None:
        """What the assistant said since the last time, once its turn ends."""
        for item_id in list(self._parts):
            parts = self._parts.pop(item_id)
            text = self._final.get(item_id, "".join(parts)).strip()
            self._printed.add(item_id)
            if text:
                self._line(at_ms, f'assistant: "{text}"')

    def _line(self, at_ms: float, text: str) -> None:
        if self._closed:
            return
        try:
            print(f"{at_ms / 1000:8.2f}s  {text}", file=self.out, flush=True)
        except BrokenPipeError:  # `bargein talk | head`: the reader left; the talk goes on
            self._closed = True


def barge_in_line(obs: Interrupted) -> str:
    """One line for a settled barge-in: how fast, what each item kept, who cancelled."""
    kept = ", ".join(
        f"{s.item_id}: {s.action} at {s.audio_end_ms} ms (heard {s.heard_ms:.0f} of "
        f"{s.received_ms:.0f} ms received)"
        for s in obs.settlements
    ) or "nothing had played"
    if obs.cancelled_by == "client":
        who = f"bargein sent response.cancel for {', '.join(obs.cancelled)}"
    elif obs.cancelled_by == "server":
        who = "the server cancels the response itself (interrupt_response)"
    else:
        who = "the response had finished generating: nothing to cancel"
    return (f"BARGE-IN by {obs.trigger}: speaker silent after {obs.stop_latency_ms:.1f} ms; "
            f"{kept}; {who}")


def reconnected_line(obs: Reconnected) -> str:
    why = f" ({obs.reason})" if obs.reason else ""
    lost = ("the server's context was lost: it no longer knows what was said"
            if obs.context_lost else "the server kept its context")
    restored = "; session settings sent again" if obs.session_restored else ""
    told = (f"; {obs.turns_restored} turns of the conversation told again as text"
            if obs.turns_restored else "")
    return f"RECONNECTED after {obs.down_s:.1f} s{why}; {lost}{restored}{told}"


def detector_name(detector: object | None) -> str | None:
    """How the mode line names a local detector: ``silero``, ``energy``, or its class."""
    if detector is None:
        return None
    name = type(detector).__name__
    return {"SileroVad": "silero", "EnergyVad": "energy"}.get(name, name)


def mode_line(*, host: str, api: str, turns: str, client_cancel: bool, local_vad: str | None,
              input: str, output: str, echo_cancel: bool | None = None,
              two_phase: bool = False) -> str:
    """What ``bargein talk`` is about to do, in one line: each option's effect is visible.
    ``local_vad`` names the local detector (None: none); ``echo_cancel`` is None where it
    does not apply (not the microphone and the speaker)."""
    turn = {"semantic": "semantic VAD", "client": f"this machine's ({local_vad}), the "
            "server's off", "push-to-talk": "push-to-talk (Enter takes the floor, Enter "
            "sends), the server's off"}.get(turns, "server VAD")
    onset = (f"local voice detection ({local_vad}), before the server's" if local_vad
             else "the push-to-talk key" if turns == "push-to-talk"
             else "the server's speech_started")
    if two_phase:
        trigger = (f"two-phase barge-in on {onset}: a sound over the reply ducks it; "
                   "600 ms of it cuts the reply, shorter resumes it")
        cancel = "bargein cancels when it cuts (the server's interrupt_response is off)"
    else:
        trigger = f"barge-in on {onset}"
        cancel = ("bargein cancels responses itself (response.cancel)"
                  if client_cancel or turns in ("client", "push-to-talk")
                  else "the server cancels responses on speech")
    echo = ("" if echo_cancel is None
            else "; the speaker's echo is removed from the microphone" if echo_cancel
            else "; no echo cancellation (use a headset)")
    return (f"talking to {host} ({api} API); turn detection: {turn}; {trigger}; {cancel}; "
            f"input: {input}; output: {output}{echo}; Ctrl-C ends")


def figures_table(figures: Iterable[ResponseFigures]) -> str:
    """The per-response figures as an aligned text table."""
    header = ("response", "first audio", "interrupted", "stop latency", "received", "heard",
              "truncated to", "late audio dropped", "dropouts", "cancelled by")
    rows = [header]
    for f in figures:
        if f.client_cancelled:
            cancelled_by = "bargein"
        elif f.status == "cancelled":
            cancelled_by = "server"
        else:
            cancelled_by = "-"
        rows.append((
            f.response_id,
            _ms(f.time_to_first_audio_ms),
            "yes" if f.interrupted else "no",
            _ms(f.stop_latency_ms, 1),
            _ms(f.received_ms),
            _ms(f.heard_ms),
            _ms(f.audio_end_ms),
            _ms(f.dropped_ms),
            str(f.underruns),
            cancelled_by,
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def _ms(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f} ms"
