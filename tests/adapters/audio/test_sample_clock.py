"""The time of a device stream's blocks (``device.SampleClock``): the count rules over the
device's stamps, drift is followed 0.3 ms a second at most, and nothing but broken audio makes
it step.
Pure: stamps are fed as numbers."""

from __future__ import annotations

import numpy as np

from bargein.adapters.audio.device import SampleClock

RATE = 24000
BLOCK = 480  # 20 ms


def _run(stamps: list[float], broke_at: int | None = None) -> list[float]:
    clock = SampleClock(RATE)
    return [clock.block(s, BLOCK, broke=(i == broke_at)) for i, s in enumerate(stamps)]


def test_jittering_stamps_do_not_move_the_count() -> None:
    rng = np.random.default_rng(3)
    true = [1000.0 + 20.0 * i for i in range(500)]  # 10 s
    stamps = [t + float(rng.uniform(-20, 20)) for t in true]
    stamps[0] = true[0]
    times = _run(stamps)
    assert max(abs(a - b) for a, b in zip(times, true, strict=True)) <= 3.0


SLEWED = SampleClock.SLEW_MS_PER_S * BLOCK / RATE + 1e-9  # the most a block may move


def test_a_step_in_the_stamps_is_followed_slowly_never_at_once() -> None:
    """The stamps move 22 ms at once 4 s in (as PortAudio's did through PulseAudio)."""
    true = [1000.0 + 20.0 * i for i in range(1000)]  # 20 s
    stamps = [t - (22.0 if i >= 200 else 0.0) for i, t in enumerate(true)]
    times = _run(stamps)
    assert np.abs(np.diff(times) - 20.0).max() <= SLEWED
    assert times[-1] - true[-1] <= -4.0  # it went their way: 0.3 ms a second for 15 s


def test_stamps_off_for_seconds_move_the_count_less_than_a_ms() -> None:
    """On a loaded machine the stamps sat 5-10 ms off the count for seconds while the echo
    path stood still: the count must not chase them."""
    true = [1000.0 + 20.0 * i for i in range(500)]  # 10 s
    stamps = [t - (8.0 if 100 <= i < 250 else 0.0) for i, t in enumerate(true)]  # 3 s off
    times = _run(stamps)
    assert max(abs(a - b) for a, b in zip(times, true, strict=True)) <= 1.0


def test_a_drifting_device_clock_is_followed() -> None:
    """A device whose samples come 0.2 ms a second slower than the system's clock (twice a
    poor device clock's drift)."""
    true = [1000.0 + 20.0 * i * 1.0002 for i in range(6000)]  # 120 s
    times = _run(true)
    assert abs(times[-1] - true[-1]) <= SampleClock.TOLERANCE_MS + 1.0
    assert np.abs(np.diff(times) - 20.0 * 1.0002).max() <= SLEWED + 1e-3


def test_broken_audio_and_a_far_stamp_take_the_clock_afresh() -> None:
    true = [1000.0 + 20.0 * i for i in range(100)]
    assert _run([t + (7.0 if i >= 50 else 0.0) for i, t in enumerate(true)], broke_at=50)[50] \
        == true[50] + 7.0
    assert _run([t + (150.0 if i >= 50 else 0.0) for i, t in enumerate(true)])[50] \
        == true[50] + 150.0
