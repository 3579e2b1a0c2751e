"""Draws a conversation timeline as a standalone SVG, so a demo run can be read at a glance.

One time axis carries three lanes: the user's speech, the assistant audio as the user heard it
(both as min/max envelopes, one pair per pixel column), and the conversation's states as
coloured bands; vertical markers show instants such as the barge-in and the truncation.
It is long (~550 lines) because it writes the SVG by hand, element by element (no drawing
library is a dependency), and most of it is layout arithmetic and styling.

Optional layers tell the story of a barge-in: ``ghost_pcm`` is audio that was received but
never played, drawn faint in the heard lane where it would have played; ``spans`` are
intervals drawn at least a few pixels wide however short they are (the interrupted span,
from the barge-in signal to silence, lasts 15 ms) or hatched (late audio that was dropped);
``captions`` put words under a lane, in time: what the user said, and the assistant's text
with what was heard in full colour, ``‖`` at the cut, and what was never heard greyed.

Pure string building on numpy: no plotting library, and the same input gives the same bytes.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Literal

import numpy as np

from bargein.core.pcm import pcm16_samples
from bargein.errors import TimelineError

WIDTH = 1200
_LEFT = 110  # room for the lane names
_RIGHT = 24
_PLOT_WIDTH = WIDTH - _LEFT - _RIGHT
_TITLE_HEIGHT = 34
_MARK_ROW_HEIGHT = 15
_WAVE_HEIGHT = 84
_STATE_HEIGHT = 34
_LANE_GAP = 10
_AXIS_HEIGHT = 34
_LEGEND_ROW_HEIGHT = 18
_CHAR_WIDTH = 6.4  # average width of an 11 px sans-serif glyph, for layout only
_FONT = "font-family='DejaVu Sans, Arial, Helvetica, sans-serif'"

STATE_COLOURS: dict[str, str] = {
    "idle": "#b0b7bf",
    "listening": "#4caf50",
    "thinking": "#ffb300",
    "responding": "#1e88e5",
    "interrupted": "#e53935",
}
_USER_COLOUR = "#2e7d32"
_HEARD_COLOUR = "#1565c0"
_GHOST_COLOUR = "#90a4ae"
_DROPPED_COLOUR = "#c62828"
_INTERRUPTED_COLOUR = "#e53935"
_UNHEARD_COLOUR = "#8d99a3"
_MARK_COLOUR = "#6a1b9a"
_CAPTION_LINE = 13
_CAPTION_LINES = 4
_CAPTION_CHAR_WIDTH = 5.9  # 10.5 px sans-serif, for layout only
_CAPTION_MIN_WIDTH = 230.0
_SPAN_MIN_WIDTH = 6.0
_DROPPED_HEIGHT = 14

Lane = Literal["user", "heard"]
Style = Literal["said", "heard", "unheard", "cut"]


@dataclass(frozen=True, slots=True)
class Span:
    """An interval to show however short it is (``interrupted``: a translucent band across
    the lanes, at least a few pixels wide) or hatched in the heard lane (``dropped``)."""

    start_ms: float
    end_ms: float
    label: str
    kind: Literal["interrupted", "dropped"]


@dataclass(frozen=True, slots=True)
class Caption:
    """Words under a lane from ``start_ms``, wrapped to the span (or a minimum width).
    ``parts`` are runs of text with their style: ``said`` (the user), ``heard``, ``cut``
    (the ``‖`` mark), ``unheard`` (greyed: the user never heard it)."""

    start_ms: float
    end_ms: float
    lane: Lane
    parts: tuple[tuple[str, Style], ...]
_TICK_STEPS_S = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_NOT_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

def state_colour(name: str) -> str:
    """The band colour of a state: fixed for known states, derived from the name otherwise."""
    known = STATE_COLOURS.get(name)
    if known is not None:
        return known
    hue = zlib.crc32(name.encode("utf-8")) % 360
    return _hsl_hex(hue, 0.45, 0.62)


def render_timeline_svg(
    user_pcm: bytes,
    heard_pcm: bytes,
    states: Sequence[tuple[float, str]],
    marks: Sequence[tuple[float, str]],
    *,
    sample_rate: int = 24000,
    title: str = "",
    ghost_pcm: bytes = b"",
    spans: Sequence[Span] = (),
    captions: Sequence[Caption] = (),
) -> str:
    """Return an SVG document of the timeline; PCM16 mono little-endian audio, times in ms.

    Each state lasts until the next one starts, the last until the end of the timeline, which
    is the later of the longer audio's end and the last state, mark or span. ``ghost_pcm`` is
    on the same clock as ``heard_pcm`` (silence where there is nothing to show).
    """
    if sample_rate <= 0:
        raise TimelineError(f"sample rate must be positive, got {sample_rate}")
    user = pcm16_samples(user_pcm, "user audio")
    heard = pcm16_samples(heard_pcm, "heard audio")
    ghost = pcm16_samples(ghost_pcm, "ghost audio")
    _check_times("state", [at for at, _ in states], ordered=True)
    _check_times("mark", [at for at, _ in marks], ordered=False)
    _check_times("span", [t for s in spans for t in (s.start_ms, s.end_ms)], ordered=False)
    _check_times("caption", [t for c in captions for t in (c.start_ms, c.end_ms)],
                 ordered=False)
    for span in spans:
        if span.end_ms < span.start_ms:
            raise TimelineError(f"span {span.label!r} ends before it starts")

    audio_ms = max(user.size, heard.size, ghost.size) * 1000.0 / sample_rate
    end_ms = max([audio_ms, *(at for at, _ in states), *(at for at, _ in marks),
                  *(s.end_ms for s in spans)])
    if end_ms <= 0.0:
        end_ms = 1000.0  # nothing to show: still draw a one-second axis

    def x_of(at_ms: float) -> float:
        return _LEFT + at_ms / end_ms * _PLOT_WIDTH

    mark_rows = _mark_rows([(x_of(at), label) for at, label in marks])
    row_count = max(mark_rows, default=-1) + 1
    lanes_top = _TITLE_HEIGHT + row_count * _MARK_ROW_HEIGHT + (6 if row_count else 0)
    laid = {lane: [(c, _wrap(c, x_of)) for c in captions if c.lane == lane]
            for lane in ("user", "heard")}
    band = {lane: _caption_band(laid[lane]) for lane in laid}
    user_top = lanes_top
    user_captions_top = user_top + _WAVE_HEIGHT + 4
    heard_top = user_captions_top + band["user"] + _LANE_GAP - 4
    dropped_top = heard_top + _WAVE_HEIGHT + 3
    has_dropped = any(s.kind == "dropped" for s in spans)
    heard_captions_top = dropped_top + (_DROPPED_HEIGHT + 3 if has_dropped else 1)
    state_top = heard_captions_top + band["heard"] + _LANE_GAP - 4
    lanes_bottom = state_top + _STATE_HEIGHT
    legend_top = lanes_bottom + _AXIS_HEIGHT
    legend = _legend_layout([name for _, name in states], ghost=bool(ghost.any()),
                            kinds=sorted({s.kind for s in spans}))
    height = legend_top + 12 + (legend[-1][4] + 1) * _LEGEND_ROW_HEIGHT

    total_samples = round(end_ms * sample_rate / 1000.0)
    parts = [
        "<?xml version='1.0' encoding='UTF-8'?>",
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height}' "
        f"viewBox='0 0 {WIDTH} {height}' {_FONT} font-size='11'>",
        f"<rect width='{WIDTH}' height='{height}' fill='#ffffff'/>",
    ]
    if title:
        parts.append(
            f"<text x='{_LEFT}' y='22' font-size='15' font-weight='bold' fill='#212121'>"
            f"{_text(title)}</text>"
        )
    parts.append(_axis(end_ms, x_of, lanes_top, lanes_bottom))
    parts.append(_wave_lane("lane-user", "user (mic)", user, total_samples, user_top, _USER_COLOUR))
    parts.append(_wave_lane("lane-heard", "heard", heard, total_samples, heard_top, _HEARD_COLOUR,
                            ghost=ghost))
    parts.append(_dropped([s for s in spans if s.kind == "dropped"], x_of, dropped_top))
    parts.append(_state_lane(states, end_ms, x_of, state_top))
    parts.append(_interrupted([s for s in spans if s.kind == "interrupted"], x_of, [
        (user_top, user_top + _WAVE_HEIGHT), (heard_top, heard_top + _WAVE_HEIGHT),
        (state_top, lanes_bottom)]))
    parts.append(_captions("captions-user", laid["user"], user_captions_top))
    parts.append(_captions("captions-heard", laid["heard"], heard_captions_top))
    parts.append(_marks(marks, mark_rows, x_of, lanes_bottom))
    parts.append(_legend(legend, legend_top))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"



def _check_times(what: str, times: list[float], *, ordered: bool) -> None:
    for index, at in enumerate(times):
        if not math.isfinite(at) or at < 0.0:
            raise TimelineError(f"{what} {index} has time {at!r} ms; times must be finite and >= 0")
        if ordered and index and at < times[index - 1]:
            raise TimelineError(
                f"{what} {index} at {at} ms comes before the previous one at {times[index - 1]} ms"
            )


def _text(value: str) -> str:
    """Escape for XML text and attributes, replacing characters XML 1.0 cannot hold."""
    return escape(_NOT_XML_CHARS.sub("\ufffd", value), quote=True)


def _num(value: float) -> str:
    return f"{value:.1f}"


def _axis(end_ms: float, x_of: Callable[[float], float], top: int, bottom: int) -> str:
    step_s = next((s for s in _TICK_STEPS_S if end_ms / 1000.0 / s <= 16), _TICK_STEPS_S[-1])
    decimals = 1 if step_s < 1.0 else 0
    parts = ["<g id='axis'>"]
    parts.append(
        f"<line x1='{_LEFT}' y1='{bottom}' x2='{_LEFT + _PLOT_WIDTH}' y2='{bottom}' "
        "stroke='#424242'/>"
    )
    count = math.floor(end_ms / 1000.0 / step_s + 1e-9)
    for index in range(count + 1):
        seconds = index * step_s
        x = _num(x_of(seconds * 1000.0))
        parts.append(
            f"<line class='grid' x1='{x}' y1='{top}' x2='{x}' y2='{bottom}' stroke='#e3e3e3'/>"
        )
        parts.append(
            f"<line class='tick' data-seconds='{seconds:.{decimals}f}' x1='{x}' y1='{bottom}' "
            f"x2='{x}' y2='{bottom + 5}' stroke='#424242'/>"
        )
        parts.append(
            f"<text x='{x}' y='{bottom + 17}' text-anchor='middle' fill='#424242'>"
            f"{seconds:.{decimals}f}</text>"
        )
    parts.append(
        f"<text x='{_LEFT + _PLOT_WIDTH}' y='{bottom + 30}' text-anchor='end' "
        "fill='#616161'>time (s)</text>"
    )
    parts.append("</g>")
    return "\n".join(parts)


def _wave_lane(
    lane_id: str, name: str, samples: np.ndarray, total: int, top: int, colour: str,
    *, ghost: np.ndarray | None = None,
) -> str:
    middle = top + _WAVE_HEIGHT / 2.0
    lines = [
        f"<g id='{lane_id}'>",
        f"<rect x='{_LEFT}' y='{top}' width='{_PLOT_WIDTH}' height='{_WAVE_HEIGHT}' "
        "fill='#000000' fill-opacity='0.025' stroke='#e0e0e0'/>",
        f"<text x='{_LEFT - 10}' y='{_num(middle + 4)}' text-anchor='end' "
        f"fill='#212121'>{_text(name)}</text>",
        f"<line x1='{_LEFT}' y1='{_num(middle)}' x2='{_LEFT + _PLOT_WIDTH}' "
        f"y2='{_num(middle)}' stroke='{colour}' stroke-opacity='0.4' stroke-width='0.5'/>",
    ]
    if ghost is not None and ghost.any():
        lines.append(
            f"<polygon class='ghost' points='{_envelope_points(ghost, total, middle)}' "
            f"fill='{_GHOST_COLOUR}' fill-opacity='0.35' stroke='{_GHOST_COLOUR}' "
            "stroke-opacity='0.7' stroke-width='0.6' stroke-dasharray='2 2'>"
            "<title>received, never played</title></polygon>"
        )
    lines.append(
        f"<polygon class='envelope' points='{_envelope_points(samples, total, middle)}' "
        f"fill='{colour}' stroke='{colour}' stroke-width='0.6' stroke-linejoin='round'/>"
    )
    lines.append("</g>")
    return "\n".join(lines)


def _envelope_points(samples: np.ndarray, total: int, middle: float) -> str:
    half = _WAVE_HEIGHT / 2.0 - 3.0
    low, high = _envelope(samples, total)
    xs = _LEFT + np.arange(_PLOT_WIDTH + 1, dtype=np.float64)
    upper = [f"{_num(x)},{_num(middle - v * half)}" for x, v in zip(xs, high, strict=True)]
    lower = [f"{_num(x)},{_num(middle - v * half)}" for x, v in zip(xs, low, strict=True)]
    return " ".join(upper + lower[::-1])


def _dropped(spans: Sequence[Span], x_of: Callable[[float], float], top: int) -> str:
    """Hatched bars in a strip under the heard lane: audio that arrived late and was
    dropped, from when it arrived, as long as it would have played."""
    parts = ["<g id='dropped'>"]
    if spans:
        parts.append(
            "<defs><pattern id='hatch' width='6' height='6' patternUnits='userSpaceOnUse' "
            "patternTransform='rotate(45)'><line x1='0' y1='0' x2='0' y2='6' "
            f"stroke='{_DROPPED_COLOUR}' stroke-width='2'/></pattern></defs>"
        )
    for span in spans:
        x0 = x_of(span.start_ms)
        width = max(x_of(span.end_ms) - x0, _SPAN_MIN_WIDTH)
        parts.append(
            f"<rect class='dropped' data-start-ms='{span.start_ms:.1f}' "
            f"data-end-ms='{span.end_ms:.1f}' x='{_num(x0)}' y='{top}' width='{_num(width)}' "
            f"height='{_DROPPED_HEIGHT}' fill='url(#hatch)' fill-opacity='0.7' "
            f"stroke='{_DROPPED_COLOUR}' stroke-width='1'><title>{_text(span.label)}</title>"
            "</rect>"
        )
        parts.append(
            f"<text x='{_num(x0 + width + 4)}' y='{top + _DROPPED_HEIGHT - 3}' "
            f"fill='{_DROPPED_COLOUR}' font-size='10'>{_text(span.label)}</text>"
        )
    parts.append("</g>")
    return "\n".join(parts)


def _interrupted(spans: Sequence[Span], x_of: Callable[[float], float],
                 lanes: Sequence[tuple[int, int]]) -> str:
    """A band across the lanes from the barge-in signal to silence, never thinner than a
    few pixels (it lasts milliseconds); its label is its tooltip (name it with a mark)."""
    parts = ["<g id='interrupted'>"]
    for span in spans:
        x0, x1 = x_of(span.start_ms), x_of(span.end_ms)
        width = max(x1 - x0, _SPAN_MIN_WIDTH)
        left = x0 if x1 - x0 >= width else max(float(_LEFT), (x0 + x1 - width) / 2)
        parts.extend(
            f"<rect class='interrupted' data-start-ms='{span.start_ms:.1f}' "
            f"data-end-ms='{span.end_ms:.1f}' x='{_num(left)}' y='{top}' width='{_num(width)}' "
            f"height='{bottom - top}' fill='{_INTERRUPTED_COLOUR}' fill-opacity='0.28' "
            f"stroke='{_INTERRUPTED_COLOUR}' stroke-width='1'>"
            f"<title>{_text(span.label)}</title></rect>"
            for top, bottom in lanes
        )
    parts.append("</g>")
    return "\n".join(parts)


_Line = list[tuple[str, Style]]


def _wrap(caption: Caption, x_of: Callable[[float], float]) -> tuple[float, list[_Line]]:
    """Where the caption starts (x) and its lines: words greedily filled into the width of
    its span (at least ``_CAPTION_MIN_WIDTH``), at most ``_CAPTION_LINES`` lines, the last
    ending in an ellipsis when words are left over."""
    x0 = x_of(caption.start_ms) + 5  # clear of a mark or band at its start
    width = max(x_of(caption.end_ms) - x0, _CAPTION_MIN_WIDTH)
    x0 = max(float(_LEFT), min(x0, _LEFT + _PLOT_WIDTH - width))
    per_line = max(8, int(width / _CAPTION_CHAR_WIDTH))
    words = [(word, style) for text, style in caption.parts for word in text.split()]
    lines: list[_Line] = [[]]
    used = 0
    for word, style in words:
        need = len(word) + (1 if lines[-1] else 0)
        if lines[-1] and used + need > per_line:
            if len(lines) == _CAPTION_LINES:
                last = lines[-1]
                text, last_style = last[-1]
                last[-1] = (text + " …", last_style)
                return x0, lines
            lines.append([])
            used, need = 0, len(word)
        lines[-1].append((word, style))
        used += need
    return x0, [line for line in lines if line]


def _caption_band(laid: list[tuple[Caption, tuple[float, list[_Line]]]]) -> int:
    count = max((len(lines) for _, (_, lines) in laid), default=0)
    return count * _CAPTION_LINE + (6 if count else 0)


_STYLE_ATTRS: dict[str, str] = {
    "said": f"fill='{_USER_COLOUR}'",
    "heard": f"fill='{_HEARD_COLOUR}'",
    "unheard": f"fill='{_UNHEARD_COLOUR}' font-style='italic'",
    "cut": f"fill='{_INTERRUPTED_COLOUR}' font-weight='bold'",
}


def _captions(group_id: str, laid: list[tuple[Caption, tuple[float, list[_Line]]]],
              top: int) -> str:
    parts = [f"<g id='{group_id}' font-size='10.5'>"]
    for caption, (x0, lines) in laid:
        for index, line in enumerate(lines):
            y = top + (index + 1) * _CAPTION_LINE - 3
            runs: list[tuple[str, Style]] = []
            for word, style in line:  # one tspan per run of words in one style
                if runs and runs[-1][1] == style:
                    runs[-1] = (runs[-1][0] + " " + word, style)
                else:
                    runs.append(((" " if runs else "") + word, style))
            spans = "".join(
                f"<tspan class='{style}' {_STYLE_ATTRS[style]}>{_text(text)}</tspan>"
                for text, style in runs
            )
            parts.append(
                f"<text class='caption' data-lane='{caption.lane}' x='{_num(x0)}' y='{y}' "
                f"xml:space='preserve'>{spans}</text>"
            )
    parts.append("</g>")
    return "\n".join(parts)


def _envelope(samples: np.ndarray, total: int) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of each of the plot's columns (plus the closing edge), scaled to -1..1."""
    columns = _PLOT_WIDTH + 1
    if not samples.size:
        zeros = np.zeros(columns)
        return zeros, zeros
    padded = np.zeros(max(total, samples.size), dtype=np.int16)
    padded[: samples.size] = samples
    starts = np.minimum(np.arange(columns) * padded.size // _PLOT_WIDTH, padded.size - 1)
    low = np.minimum.reduceat(padded, starts).astype(np.float64) / 32768.0
    high = np.maximum.reduceat(padded, starts).astype(np.float64) / 32768.0
    return low, high


def _state_lane(
    states: Sequence[tuple[float, str]], end_ms: float, x_of: Callable[[float], float], top: int
) -> str:
    parts = [
        "<g id='lane-states'>",
        f"<rect x='{_LEFT}' y='{top}' width='{_PLOT_WIDTH}' height='{_STATE_HEIGHT}' "
        "fill='#000000' fill-opacity='0.025' stroke='#e0e0e0'/>",
        f"<text x='{_LEFT - 10}' y='{top + _STATE_HEIGHT / 2 + 4:.1f}' text-anchor='end' "
        "fill='#212121'>state</text>",
    ]
    narrow: list[str] = []  # drawn last, a few pixels wide, so a 15 ms state still shows
    for index, (start, name) in enumerate(states):
        stop = states[index + 1][0] if index + 1 < len(states) else end_ms
        x0, x1 = x_of(start), x_of(stop)
        label = _text(name)
        parts.append(
            f"<rect class='state' data-state='{label}' x='{_num(x0)}' y='{top}' "
            f"width='{_num(x1 - x0)}' height='{_STATE_HEIGHT}' fill='{state_colour(name)}'>"
            f"<title>{label} {start:.0f}-{stop:.0f} ms</title></rect>"
        )
        if x1 - x0 < _SPAN_MIN_WIDTH and name != "idle":
            narrow.append(
                f"<rect class='state-narrow' data-state='{label}' "
                f"x='{_num(max(float(_LEFT), x0 - (_SPAN_MIN_WIDTH - (x1 - x0)) / 2))}' "
                f"y='{top}' width='{_num(_SPAN_MIN_WIDTH)}' height='{_STATE_HEIGHT}' "
                f"fill='{state_colour(name)}' stroke='#ffffff' stroke-width='0.8'>"
                f"<title>{label} {start:.1f}-{stop:.1f} ms</title></rect>"
            )
        if len(name) * _CHAR_WIDTH + 8 <= x1 - x0:
            parts.append(
                f"<text x='{_num((x0 + x1) / 2)}' y='{top + _STATE_HEIGHT / 2 + 4:.1f}' "
                f"text-anchor='middle' fill='#ffffff' font-weight='bold'>{label}</text>"
            )
    parts.extend(narrow)
    parts.append("</g>")
    return "\n".join(parts)


def _mark_rows(placed: list[tuple[float, str]]) -> list[int]:
    """Give each mark label the first row, counted down from the top, where it overlaps none."""
    rows = [0] * len(placed)
    row_ends: list[float] = []
    for index in sorted(range(len(placed)), key=lambda i: placed[i][0]):
        left, right = _label_extent(*placed[index])
        row = next((r for r, end in enumerate(row_ends) if end + 6 <= left), len(row_ends))
        if row == len(row_ends):
            row_ends.append(right)
        else:
            row_ends[row] = right
        rows[index] = row
    return rows


def _label_extent(x: float, label: str) -> tuple[float, float]:
    width = len(label) * _CHAR_WIDTH
    if x + 4 + width <= WIDTH - 2:
        return x, x + 4 + width
    return x - 4 - width, x


def _marks(
    marks: Sequence[tuple[float, str]], rows: list[int], x_of: Callable[[float], float], bottom: int
) -> str:
    parts = ["<g id='marks'>"]
    for (at, label), row in zip(marks, rows, strict=True):
        x = x_of(at)
        baseline = _TITLE_HEIGHT + (row + 1) * _MARK_ROW_HEIGHT - 3
        left, _ = _label_extent(x, label)
        anchor, text_x = ("start", x + 4) if left == x else ("end", x - 4)
        parts.append(
            f"<line class='mark' x1='{_num(x)}' y1='{baseline - 9}' x2='{_num(x)}' "
            f"y2='{bottom}' stroke='{_MARK_COLOUR}' stroke-width='1.2' "
            "stroke-dasharray='4 3'/>"
        )
        parts.append(
            f"<text class='mark-label' x='{_num(text_x)}' y='{baseline}' "
            f"text-anchor='{anchor}' fill='{_MARK_COLOUR}'>{_text(label)}</text>"
        )
    parts.append("</g>")
    return "\n".join(parts)


_LegendEntry = tuple[str, str, bool, float, int]  # name, colour, is a mark, x, row


def _legend_layout(state_names: list[str], *, ghost: bool = False,
                   kinds: Sequence[str] = ()) -> list[_LegendEntry]:
    """Place the legend's entries left to right, wrapping onto new rows at the right edge."""
    entries = [
        ("user speech", _USER_COLOUR, False),
        ("heard audio", _HEARD_COLOUR, False),
        ("event", _MARK_COLOUR, True),
    ]
    if ghost:
        entries.append(("received, never played", _GHOST_COLOUR, False))
    if "dropped" in kinds:
        entries.append(("late audio dropped", _DROPPED_COLOUR, False))
    if "interrupted" in kinds:
        entries.append(("barge-in to silence", _INTERRUPTED_COLOUR, False))
    entries.extend((name, state_colour(name), False) for name in dict.fromkeys(state_names))
    placed: list[_LegendEntry] = []
    x, row = float(_LEFT), 0
    for name, colour, is_mark in entries:
        width = 17 + len(name) * _CHAR_WIDTH
        if x > _LEFT and x + width > WIDTH - _RIGHT:
            x, row = float(_LEFT), row + 1
        placed.append((name, colour, is_mark, x, row))
        x += width + 18
    return placed


def _legend(entries: list[_LegendEntry], top: int) -> str:
    parts = ["<g id='legend'>"]
    for name, colour, is_mark, x, row in entries:
        y = top + 12 + row * _LEGEND_ROW_HEIGHT
        if is_mark:
            parts.append(
                f"<line x1='{_num(x + 6)}' y1='{y - 8}' x2='{_num(x + 6)}' y2='{y + 4}' "
                f"stroke='{colour}' stroke-width='1.2' stroke-dasharray='4 3'/>"
            )
        else:
            parts.append(
                f"<rect x='{_num(x)}' y='{y - 8}' width='12' height='12' fill='{colour}'/>"
            )
        parts.append(f"<text x='{_num(x + 17)}' y='{y + 2}' fill='#424242'>{_text(name)}</text>")
    parts.append("</g>")
    return "\n".join(parts)


def _hsl_hex(hue: float, saturation: float, lightness: float) -> str:
    chroma = (1.0 - abs(2.0 * lightness - 1.0)) * saturation
    sector = hue / 60.0
    second = chroma * (1.0 - abs(sector % 2.0 - 1.0))
    rgb = [
        (chroma, second, 0.0),
        (second, chroma, 0.0),
        (0.0, chroma, second),
        (0.0, second, chroma),
        (second, 0.0, chroma),
        (chroma, 0.0, second),
    ][int(sector) % 6]
    base = lightness - chroma / 2.0
    return "#" + "".join(f"{round((c + base) * 255):02x}" for c in rgb)
