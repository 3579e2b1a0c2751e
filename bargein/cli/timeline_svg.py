"""Draws a conversation timeline as a standalone SVG, so a demo run can be read at a glance.

One time axis carries three lanes: the user's speech, the assistant audio as the user heard it
(both as min/max envelopes, one pair per pixel column), and the conversation's states as
coloured bands; vertical markers show instants such as the barge-in and the truncation. Pure
string building on numpy: no plotting library, and the same input gives the same bytes.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable, Sequence
from html import escape

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
_MARK_COLOUR = "#6a1b9a"
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
) -> str:
    """Return an SVG document of the timeline; PCM16 mono little-endian audio, times in ms.

    Each state lasts until the next one starts, the last until the end of the timeline, which
    is the later of the longer audio's end and the last state or mark.
    """
    if sample_rate <= 0:
        raise TimelineError(f"sample rate must be positive, got {sample_rate}")
    user = pcm16_samples(user_pcm, "user audio")
    heard = pcm16_samples(heard_pcm, "heard audio")
    _check_times("state", [at for at, _ in states], ordered=True)
    _check_times("mark", [at for at, _ in marks], ordered=False)

    audio_ms = max(user.size, heard.size) * 1000.0 / sample_rate
    end_ms = max([audio_ms, *(at for at, _ in states), *(at for at, _ in marks)])
    if end_ms <= 0.0:
        end_ms = 1000.0  # nothing to show: still draw a one-second axis

    def x_of(at_ms: float) -> float:
        return _LEFT + at_ms / end_ms * _PLOT_WIDTH

    mark_rows = _mark_rows([(x_of(at), label) for at, label in marks])
    row_count = max(mark_rows, default=-1) + 1
    lanes_top = _TITLE_HEIGHT + row_count * _MARK_ROW_HEIGHT + (6 if row_count else 0)
    user_top = lanes_top
    heard_top = user_top + _WAVE_HEIGHT + _LANE_GAP
    state_top = heard_top + _WAVE_HEIGHT + _LANE_GAP
    lanes_bottom = state_top + _STATE_HEIGHT
    legend_top = lanes_bottom + _AXIS_HEIGHT
    legend = _legend_layout([name for _, name in states])
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
    parts.append(_wave_lane("lane-heard", "heard", heard, total_samples, heard_top, _HEARD_COLOUR))
    parts.append(_state_lane(states, end_ms, x_of, state_top))
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
    lane_id: str, name: str, samples: np.ndarray, total: int, top: int, colour: str
) -> str:
    middle = top + _WAVE_HEIGHT / 2.0
    half = _WAVE_HEIGHT / 2.0 - 3.0
    low, high = _envelope(samples, total)
    xs = _LEFT + np.arange(_PLOT_WIDTH + 1, dtype=np.float64)
    upper = [f"{_num(x)},{_num(middle - v * half)}" for x, v in zip(xs, high, strict=True)]
    lower = [f"{_num(x)},{_num(middle - v * half)}" for x, v in zip(xs, low, strict=True)]
    points = " ".join(upper + lower[::-1])
    return "\n".join(
        [
            f"<g id='{lane_id}'>",
            f"<rect x='{_LEFT}' y='{top}' width='{_PLOT_WIDTH}' height='{_WAVE_HEIGHT}' "
            "fill='#000000' fill-opacity='0.025' stroke='#e0e0e0'/>",
            f"<text x='{_LEFT - 10}' y='{_num(middle + 4)}' text-anchor='end' "
            f"fill='#212121'>{_text(name)}</text>",
            f"<line x1='{_LEFT}' y1='{_num(middle)}' x2='{_LEFT + _PLOT_WIDTH}' "
            f"y2='{_num(middle)}' stroke='{colour}' stroke-opacity='0.4' stroke-width='0.5'/>",
            f"<polygon class='envelope' points='{points}' fill='{colour}' stroke='{colour}' "
            "stroke-width='0.6' stroke-linejoin='round'/>",
            "</g>",
        ]
    )


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
    for index, (start, name) in enumerate(states):
        stop = states[index + 1][0] if index + 1 < len(states) else end_ms
        x0, x1 = x_of(start), x_of(stop)
        label = _text(name)
        parts.append(
            f"<rect class='state' data-state='{label}' x='{_num(x0)}' y='{top}' "
            f"width='{_num(x1 - x0)}' height='{_STATE_HEIGHT}' fill='{state_colour(name)}'>"
            f"<title>{label} {start:.0f}-{stop:.0f} ms</title></rect>"
        )
        if len(name) * _CHAR_WIDTH + 8 <= x1 - x0:
            parts.append(
                f"<text x='{_num((x0 + x1) / 2)}' y='{top + _STATE_HEIGHT / 2 + 4:.1f}' "
                f"text-anchor='middle' fill='#ffffff' font-weight='bold'>{label}</text>"
            )
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


def _legend_layout(state_names: list[str]) -> list[_LegendEntry]:
    """Place the legend's entries left to right, wrapping onto new rows at the right edge."""
    entries = [
        ("user speech", _USER_COLOUR, False),
        ("heard audio", _HEARD_COLOUR, False),
        ("event", _MARK_COLOUR, True),
    ]
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
