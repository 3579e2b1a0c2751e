"""What a person sees in the terminal: log setup, the live timeline, the figures table."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import TextIO

import structlog

from bargein.adapters.secrets import RedactingFilter, redact_secrets
from bargein.session import (
    Closed,
    Interrupted,
    Observation,
    ResponseFigures,
    StateChanged,
    Transcript,
)


def configure_logging(fmt: str = "console", level: str = "warning") -> None:
    """Structured logs to stderr, every line scrubbed of anything key-like."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=max(numeric, logging.WARNING), handlers=[handler], force=True)


class LivePrinter:
    """Prints each observation as one timeline line; assistant text by utterance."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self._assistant: dict[str, list[str]] = {}
        self._closed = False

    def __call__(self, obs: Observation) -> None:
        if isinstance(obs, StateChanged):
            if obs.source != obs.dest:
                if obs.dest in ("listening", "interrupted", "idle"):
                    self._say(obs.at_ms, cut=obs.dest == "interrupted")
                self._line(obs.at_ms, f"{obs.source} -> {obs.dest}  ({obs.trigger}: {obs.reason})")
        elif isinstance(obs, Transcript):
            if obs.role == "user":
                self._line(obs.at_ms, f'user: "{obs.text}"')
            else:
                self._assistant.setdefault(obs.item_id, []).append(obs.text)
        elif isinstance(obs, Interrupted):
            kept = ", ".join(
                f"{s.item_id}: {s.action} at {s.audio_end_ms} ms (heard {s.heard_ms:.0f} of "
                f"{s.received_ms:.0f} ms received)"
                for s in obs.settlements
            ) or "nothing had played"
            self._line(obs.at_ms, f"BARGE-IN by {obs.trigger}: speaker silent after "
                                  f"{obs.stop_latency_ms:.1f} ms; {kept}")
        elif isinstance(obs, Closed):
            self._line(obs.at_ms, f"session closed ({obs.reason})")

    def _say(self, at_ms: float, *, cut: bool) -> None:
        """What the assistant said since the last time, once its turn ends."""
        for text in ("".join(parts).strip() for parts in self._assistant.values()):
            if text:
                label = "assistant (cut off; the transcript runs past what was heard)" if cut \
                    else "assistant"
                self._line(at_ms, f'{label}: "{text}"')
        self._assistant.clear()

    def _line(self, at_ms: float, text: str) -> None:
        if self._closed:
            return
        try:
            print(f"{at_ms / 1000:8.2f}s  {text}", file=self.out, flush=True)
        except BrokenPipeError:  # `bargein talk | head`: the reader left; the talk goes on
            self._closed = True


def figures_table(figures: Iterable[ResponseFigures]) -> str:
    """The per-response figures as an aligned text table."""
    header = ("response", "first audio", "interrupted", "stop latency", "heard",
              "truncated to", "late audio dropped")
    rows = [header]
    for f in figures:
        rows.append((
            f.response_id,
            _ms(f.time_to_first_audio_ms),
            "yes" if f.interrupted else "no",
            _ms(f.stop_latency_ms, 1),
            _ms(f.heard_ms),
            _ms(f.audio_end_ms),
            _ms(f.dropped_ms),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def _ms(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f} ms"
