"""The timeline picture: well-formed SVG, lanes and bands where the times say, text escaped."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from bargein.cli.timeline_svg import STATE_COLOURS, render_timeline_svg, state_colour
from bargein.errors import BargeinError, PcmError, TimelineError

NS = {"svg": "http://www.w3.org/2000/svg"}
RATE = 24000


def pcm(seconds: float, amplitude: int = 8000) -> bytes:
    """A tone of the given length, so an envelope has something to show."""
    t = np.arange(round(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg.encode("utf-8"))


def group(root: ET.Element, group_id: str) -> ET.Element:
    found = root.find(f".//svg:g[@id='{group_id}']", NS)
    assert found is not None, group_id
    return found


def x_scale(root: ET.Element) -> tuple[float, float]:
    """Pixel x of t=0 and pixels per second, read from the axis's first and last ticks."""
    ticks = group(root, "axis").findall("svg:line[@class='tick']", NS)
    first, second = ticks[0], ticks[-1]
    x0, x1 = float(first.attrib["x1"]), float(second.attrib["x1"])
    span = float(second.attrib["data-seconds"]) - float(first.attrib["data-seconds"])
    assert float(first.attrib["data-seconds"]) == 0.0
    return x0, (x1 - x0) / span


def envelope(root: ET.Element, lane: str) -> list[tuple[float, float]]:
    polygon = group(root, lane).find("svg:polygon[@class='envelope']", NS)
    assert polygon is not None
    return [
        (float(x), float(y))
        for x, y in (point.split(",") for point in polygon.attrib["points"].split())
    ]


def test_document_is_xml_with_every_part() -> None:
    root = parse(
        render_timeline_svg(pcm(2.0), pcm(1.0), [(0, "idle"), (500, "listening")], [(700, "x")])
    )
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert 1100 <= int(root.attrib["width"]) <= 1300
    for group_id in ("axis", "lane-user", "lane-heard", "lane-states", "marks", "legend"):
        group(root, group_id)
    legend_text = [text.text for text in group(root, "legend").findall("svg:text", NS)]
    assert legend_text == ["user speech", "heard audio", "event", "idle", "listening"]


def test_state_bands_start_and_end_at_their_times() -> None:
    states = [(0.0, "idle"), (1000.0, "listening"), (2500.0, "responding")]
    root = parse(render_timeline_svg(pcm(4.0), pcm(4.0), states, []))
    origin, per_second = x_scale(root)
    bands = group(root, "lane-states").findall("svg:rect[@class='state']", NS)
    assert [band.attrib["data-state"] for band in bands] == ["idle", "listening", "responding"]
    expected = [(0.0, 1.0), (1.0, 2.5), (2.5, 4.0)]  # the last state lasts to the audio's end
    for band, (start_s, stop_s) in zip(bands, expected, strict=True):
        assert float(band.attrib["x"]) == pytest.approx(origin + start_s * per_second, abs=0.2)
        width = float(band.attrib["width"])
        assert width == pytest.approx((stop_s - start_s) * per_second, abs=0.2)
    assert [band.attrib["fill"] for band in bands] == [
        STATE_COLOURS["idle"],
        STATE_COLOURS["listening"],
        STATE_COLOURS["responding"],
    ]


def test_marks_are_lines_at_their_times_with_separate_rows_when_crowded() -> None:
    marks = [(3000.0, "barge-in"), (3010.0, "flushed"), (1000.0, "speech_stopped")]
    root = parse(render_timeline_svg(pcm(4.0), b"", [], marks))
    origin, per_second = x_scale(root)
    lines = group(root, "marks").findall("svg:line[@class='mark']", NS)
    labels = group(root, "marks").findall("svg:text[@class='mark-label']", NS)
    for line, (at_ms, _) in zip(lines, marks, strict=True):
        assert float(line.attrib["x1"]) == pytest.approx(
            origin + at_ms / 1000 * per_second, abs=0.2
        )
    assert [label.text for label in labels] == ["barge-in", "flushed", "speech_stopped"]
    barge_in, flushed, stopped = (float(label.attrib["y"]) for label in labels)
    assert barge_in != flushed  # 10 ms apart: stacked, not drawn over each other
    assert stopped == barge_in  # far apart: share the top row


def test_text_is_escaped_and_survives_parsing() -> None:
    nasty = '<b>&amp; "it\'s"</b>'
    svg = render_timeline_svg(
        pcm(1.0), pcm(1.0), [(0, nasty)], [(500, f"mark {nasty}\x07")], title=f"T {nasty}"
    )
    assert "<b>" not in svg
    root = parse(svg)
    texts = [text.text for text in root.iter("{http://www.w3.org/2000/svg}text")]
    assert f"T {nasty}" in texts
    assert f"mark {nasty}\ufffd" in texts  # a control character XML cannot hold is replaced
    band = group(root, "lane-states").find("svg:rect[@class='state']", NS)
    assert band is not None and band.attrib["data-state"] == nasty


def test_empty_audio_draws_flat_lanes_on_a_default_axis() -> None:
    root = parse(render_timeline_svg(b"", b"", [], []))
    for lane in ("lane-user", "lane-heard"):
        ys = {y for _, y in envelope(root, lane)}
        assert len(ys) == 1
    ticks = group(root, "axis").findall("svg:line[@class='tick']", NS)
    assert float(ticks[-1].attrib["data-seconds"]) == 1.0


def test_states_without_audio_still_fill_the_timeline() -> None:
    root = parse(render_timeline_svg(b"", b"", [(0, "idle"), (2000, "listening")], []))
    bands = group(root, "lane-states").findall("svg:rect[@class='state']", NS)
    assert float(bands[0].attrib["width"]) > 0


def test_mismatched_lengths_share_one_clock() -> None:
    root = parse(render_timeline_svg(pcm(1.0), pcm(3.0), [], []))
    origin, per_second = x_scale(root)
    ticks = group(root, "axis").findall("svg:line[@class='tick']", NS)
    assert float(ticks[-1].attrib["data-seconds"]) == pytest.approx(3.0)
    user = envelope(root, "lane-user")
    heard = envelope(root, "lane-heard")
    cut = origin + 1.05 * per_second
    # the shorter user audio is silent after its end: both edges sit on one line
    assert len({y for x, y in user if x > cut}) == 1
    assert len({y for x, y in user if x < cut}) > 2
    assert len({y for x, y in heard if x > cut}) > 2


def test_envelope_keeps_single_sample_peaks_both_ways() -> None:
    samples = np.zeros(10 * RATE, dtype="<i2")
    samples[5 * RATE] = 32000
    samples[5 * RATE + 1] = -32000
    root = parse(render_timeline_svg(samples.tobytes(), b"", [], []))
    origin, per_second = x_scale(root)
    points = envelope(root, "lane-user")
    baseline = points[0][1]
    top_x, top_y = min(points, key=lambda point: point[1])
    bottom_x, bottom_y = max(points, key=lambda point: point[1])
    # a min/max envelope: neither averaged away nor cancelled out within the column
    assert top_y < baseline - 30 and bottom_y > baseline + 30
    assert top_x == pytest.approx(origin + 5 * per_second, abs=1.0)
    assert bottom_x == top_x


def test_legend_wraps_inside_the_picture() -> None:
    states = [(i * 100.0, f"custom_state_number_{i}") for i in range(20)]
    root = parse(render_timeline_svg(pcm(2.0), b"", states, []))
    width = float(root.attrib["width"])
    texts = group(root, "legend").findall("svg:text", NS)
    assert len(texts) == 3 + len(states)
    assert len({text.attrib["y"] for text in texts}) > 1
    for text in texts:
        assert float(text.attrib["x"]) + 6.4 * len(text.text or "") <= width
    assert max(float(text.attrib["y"]) for text in texts) < float(root.attrib["height"])


def test_output_is_deterministic_and_unknown_states_get_a_stable_colour() -> None:
    args = (pcm(1.5), pcm(0.5), [(0, "idle"), (300, "dreaming")], [(400, "barge-in")])
    assert render_timeline_svg(*args, title="t") == render_timeline_svg(*args, title="t")
    colour = state_colour("dreaming")
    assert colour == state_colour("dreaming")
    assert len(colour) == 7 and colour.startswith("#")
    assert colour not in STATE_COLOURS.values()
    assert state_colour("dreaming") != state_colour("pondering")
    assert f"fill='{colour}'" in render_timeline_svg(*args)


@pytest.mark.parametrize(
    ("user", "states", "marks", "rate", "words", "error"),
    [
        (b"\x00\x01\x02", [], [], RATE, "odd", PcmError),
        (b"", [(500.0, "idle"), (100.0, "listening")], [], RATE, "before", TimelineError),
        (b"", [(math.nan, "idle")], [], RATE, "finite", TimelineError),
        (b"", [], [(-1.0, "x")], RATE, "finite", TimelineError),
        (b"", [], [], 0, "sample rate", TimelineError),
    ],
)
def test_bad_input_raises_one_typed_error(
    user: bytes,
    states: list[tuple[float, str]],
    marks: list[tuple[float, str]],
    rate: int,
    words: str,
    error: type[BargeinError],
) -> None:
    with pytest.raises(error, match=words) as raised:
        render_timeline_svg(user, b"", states, marks, sample_rate=rate)
    assert isinstance(raised.value, BargeinError)
    assert "\n" not in str(raised.value)


def test_a_short_span_is_drawn_a_few_pixels_wide_across_the_lanes() -> None:
    from bargein.cli.timeline_svg import Span

    spans = [Span(5000.0, 5015.0, "interrupted", "interrupted")]
    root = parse(render_timeline_svg(pcm(10.0), pcm(10.0), [(0, "listening")], [], spans=spans))
    bands = root.findall(".//svg:rect[@class='interrupted']", NS)
    assert len(bands) == 3, "the user lane, the heard lane and the states"
    x0, per_s = x_scale(root)
    for band in bands:
        width = float(band.attrib["width"])
        assert width >= 6.0
        middle = float(band.attrib["x"]) + width / 2
        assert abs(middle - (x0 + 5.0075 * per_s)) < 1.0


def test_a_zero_width_state_still_shows() -> None:
    states = [(0, "listening"), (2000, "interrupted"), (2000, "listening")]
    root = parse(render_timeline_svg(pcm(4.0), b"", states, []))
    (narrow,) = root.findall(".//svg:rect[@class='state-narrow']", NS)
    assert narrow.attrib["data-state"] == "interrupted" and float(narrow.attrib["width"]) >= 6


def test_ghost_audio_and_dropped_spans_in_the_heard_lane() -> None:
    from bargein.cli.timeline_svg import Span

    ghost = bytes(2 * RATE) + pcm(1.0)  # silent for a second, then sound
    spans = [Span(1000.0, 1500.0, "late audio dropped: 500 ms", "dropped")]
    svg = render_timeline_svg(pcm(3.0), pcm(1.0), [], [], ghost_pcm=ghost, spans=spans)
    root = parse(svg)
    lane = group(root, "lane-heard")
    ghost_poly = lane.find("svg:polygon[@class='ghost']", NS)
    assert ghost_poly is not None
    x0, per_s = x_scale(root)
    loud = [float(x) for x, y in (p.split(",") for p in ghost_poly.attrib["points"].split())
            if abs(float(y) - float(ghost_poly.attrib["points"].split()[0].split(",")[1])) > 5]
    assert loud and min(loud) >= x0 + 0.99 * per_s, "the ghost starts where it would have played"
    (dropped,) = root.findall(".//svg:rect[@class='dropped']", NS)
    assert abs(float(dropped.attrib["x"]) - (x0 + per_s)) < 1
    assert abs(float(dropped.attrib["width"]) - 0.5 * per_s) < 1
    legend = "".join(group(root, "legend").itertext())
    assert "received, never played" in legend and "late audio dropped" in legend


def test_captions_wrap_in_time_with_heard_cut_and_unheard_styles() -> None:
    from bargein.cli.timeline_svg import Caption

    words = " ".join(f"word{i}" for i in range(200))
    captions = [
        Caption(500.0, 2500.0, "user", (("Hello <there> & you", "said"),)),
        Caption(3000.0, 6000.0, "heard", (("what was heard", "heard"), ("‖", "cut"),
                                          (words, "unheard"))),
    ]
    root = parse(render_timeline_svg(pcm(8.0), pcm(8.0), [], [], captions=captions))
    user = group(root, "captions-user").findall("svg:text", NS)
    assert "".join(user[0].itertext()) == "Hello <there> & you"
    x0, per_s = x_scale(root)
    assert abs(float(user[0].attrib["x"]) - (x0 + 0.5 * per_s) - 5) < 1
    lines = group(root, "captions-heard").findall("svg:text", NS)
    assert 1 < len(lines) <= 4, "wrapped, at most four lines"
    assert "".join(lines[-1].itertext()).endswith("…"), "the rest elided"
    styles = [t.attrib["class"] for line in lines for t in line.findall("svg:tspan", NS)]
    assert styles[:3] == ["heard", "cut", "unheard"]
    heard_top = min(float(r.attrib["y"]) for r in group(root, "lane-heard").findall("svg:rect", NS))
    assert all(float(line.attrib["y"]) > heard_top + 84 for line in lines), "under the lane"
