"""The real pyaudio speaker on a PulseAudio null sink, judged by what the sink's monitor heard.

Nothing here sleeps for a fixed time and hopes the device got there: each test waits (with a
generous deadline) for what it needs to have happened, and times what the monitor recorded
by its sample positions (``MonitorRecorder.recorded_at``), not by when this process happened
to read them, so a busy machine cannot fail it. What a busy machine can do is starve the
device into dropouts, which PortAudio reports and which loosen the count by a device buffer
each (``_tolerance_ms``); without one, the count is exact to 10 ms.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pytest

from bargein.adapters.audio.protocols import FlushReport
from bargein.adapters.audio.pyaudio_speaker import PyAudioSpeaker
from bargein.errors import AudioDeviceError
from bargein.logs import capture
from tests.support import REPO
from tests.support.pulse_env import (
    DEADLINE_S,
    MonitorRecorder,
    sounding_ms,
    sounding_span,
    speech_like,
    wait_until,
)

pytestmark = [pytest.mark.device, pytest.mark.usefixtures("pulse")]
MS = 24  # samples per ms


def _play(speaker: PyAudioSpeaker, item_id: str, pcm: bytes, chunk_ms: int = 100) -> None:
    step = chunk_ms * MS * 2
    for i in range(0, len(pcm), step):
        speaker.play(item_id, pcm[i : i + step])


def _heard(speaker: PyAudioSpeaker, item_id: str) -> float:
    return speaker.heard_ms().get(item_id, 0.0)


def _wait_heard(speaker: PyAudioSpeaker, item_id: str, ms: float) -> None:
    wait_until(lambda: _heard(speaker, item_id) >= ms, DEADLINE_S,
               f"{item_id}: {ms} ms never sounded")


def _wait_idle(speaker: PyAudioSpeaker) -> None:
    wait_until(lambda: speaker.idle, DEADLINE_S, "the speaker never went idle")


HEARD_MS = 7.5
"""How far a count at a flush may be from the monitor. The speaker counts by DAC time what
had sounded when its abort returned; the null sink hands its monitor each sample when it
renders it, its latency ahead of that (2-3 ms, the bench's ``after sounding``), and the abort
lands at the end of a rendered piece: the monitor holds a few ms more than was heard at the
DAC. And the flushing thread may wait to run again after the abort, and count that wait as
heard. Beside two CPU hogs the count sat within 3.6 ms of the monitor's end (12 flushes, on
either side of it), and once, in a suite run, 5.5 ms past it (bench_speaker, quiet or beside
two hogs: about 1.1 ms median). A count off by a block (10 ms
at 240 frames, 40 at 960) or a clock error (tens of ms) is outside this bound."""


EXACT_MS = 10.0
"""How far a count may be from the monitor without a dropout (``_tolerance_ms``)."""


def _tolerance_ms(speaker: PyAudioSpeaker) -> float:
    """How far the speaker's count may be from what the monitor heard: 10 ms (the monitor's own
    capture and 0.5 ms windows), plus a device buffer for each dropout PortAudio reported.

    When a starved machine lets the device run dry, PortAudio's recovery drops audio that was
    already inside the device, which the speaker had counted by its DAC time and cannot know
    was lost: a limit of the PortAudio path (``PulseSpeaker`` keeps a deep server-side buffer
    instead). Without a dropout the count must be exact to 10 ms."""
    return EXACT_MS + speaker.underruns * speaker.output_latency_ms


def _item_span(recorded: npt.NDArray[np.int16], item: bytes) -> tuple[int, int]:
    """Where ``item`` starts in the recording (found by its content) and where its sound
    ends, as sample indices."""
    samples = np.frombuffer(item, dtype="<i2").astype(np.int64)
    start, end = sounding_span(recorded)
    probe = samples[480:720]
    window = recorded[max(0, start - 240) : start + 2400].astype(np.int64)
    errors = [np.abs(window[i : i + 240] - probe).sum() for i in range(len(window) - 240)]
    return max(0, start - 240) + int(np.argmin(errors)) - 480, end


def _find(recorded: npt.NDArray[np.int16], head: npt.NDArray[np.int16]) -> int:
    """The last index where ``head`` sits in the recording, sample for sample (-1: nowhere)."""
    windows = np.lib.stride_tricks.sliding_window_view(recorded, len(head))
    hits = np.flatnonzero((windows == head).all(axis=1))
    return int(hits[-1]) if len(hits) else -1


@pytest.mark.parametrize("block", [240, 960])
def test_flush_cuts_where_the_device_was_and_counts_it(block: int) -> None:
    """A flush aborts the stream: the monitor's sound of the item ends where the count says
    (within HEARD_MS), the count is no more than one block past what was sounding just before
    the call (by the speaker's own clock), and the item sounded intact up to the cut."""
    speaker = PyAudioSpeaker(block_frames=block)
    recorder = MonitorRecorder()
    length_ms = 5000  # long enough that the flush below always lands mid-item
    item = speech_like(length_ms, seed=block)
    try:
        recorder.wait_recording()
        _play(speaker, "item_a", item)
        _wait_heard(speaker, "item_a", 600)
        sounding = _heard(speaker, "item_a")
        report = speaker.flush()
        _wait_idle(speaker)
        after = speaker.heard_ms()
        underruns = speaker.underruns
    finally:
        speaker.close()
        recorded = recorder.stop()
    heard = report.heard_ms["item_a"]
    assert heard < length_ms, "the flush came after the item had ended"
    assert after["item_a"] == heard
    assert report.silent_after_ms == 0.0
    # the cut came within one block of the call, by the speaker's count
    assert sounding <= heard <= sounding + block / MS, (sounding, heard)
    base, end = _item_span(recorded, item)
    if underruns == 0:  # a dropout moves the item against its DAC-time count
        assert abs(heard - (end - base) / MS) <= HEARD_MS, (heard, (end - base) / MS)
        played = recorded[base:end]
        assert np.array_equal(played, np.frombuffer(item, dtype="<i2")[: len(played)])
    assert sounding_ms(recorded[end:]) == 0.0


T = TypeVar("T")


def _play_two(
    speaker: PyAudioSpeaker, first: bytes, second: bytes, between: Callable[[], T]
) -> tuple[Mapping[str, float], npt.NDArray[np.int16], T]:
    """Play ``first`` as "a", then ``between()``, then ``second`` as "b" to its end, with the
    monitor recording; the speaker is closed. Returns the counts, the recording and what
    ``between`` returned."""
    recorder = MonitorRecorder()
    try:
        recorder.wait_recording()
        _play(speaker, "a", first)
        result = between()
        _play(speaker, "b", second)
        _wait_idle(speaker)
        heard = speaker.heard_ms()
    finally:
        speaker.close()
        recorded = recorder.stop()
    return heard, recorded, result


ATTEMPTS = 5
"""How many times a scene whose check needs a run without dropouts may be played: a dropout
PortAudio reports leaves a gap in what sounds (see ``_tolerance_ms``), and a busy machine
still gives a run without one most of the time (one dropout in a suite run beside two CPU
hogs, 2026-11-30)."""


def _without_dropouts(scene: Callable[[], tuple[PyAudioSpeaker, T]]) -> T:
    """What ``scene()`` returned in a run whose speaker reported no dropout, played up to
    ``ATTEMPTS`` times (each run's own checks hold in every run); fails if every run had
    one, rather than leave the dropout-free check unmade."""
    dropouts = []
    for _ in range(ATTEMPTS):
        speaker, result = scene()
        if speaker.underruns == 0:
            return result
        dropouts.append(speaker.underruns)
    pytest.fail(f"PortAudio reported dropouts in every run ({dropouts})")


def test_plays_the_next_item_whole_after_a_flush() -> None:
    """After a flush the spare stream plays on: the next item, handed over at once, sounds
    whole from its first sample (a started stream's lost first milliseconds carry silence),
    and its count is exact."""
    first, second = speech_like(3000, seed=11), speech_like(700, seed=12)

    def scene() -> tuple[PyAudioSpeaker, npt.NDArray[np.int16]]:
        speaker = PyAudioSpeaker()

        def flush() -> FlushReport:
            _wait_heard(speaker, "a", 500)
            return speaker.flush()

        heard, recorded, report = _play_two(speaker, first, second, flush)
        assert heard["a"] == report.heard_ms["a"] < 3000.0
        assert heard["b"] == pytest.approx(700.0)
        return speaker, recorded

    _sounds_whole(_without_dropouts(scene), second)


def _sounds_whole(recorded: npt.NDArray[np.int16], pcm: bytes) -> int:
    """Where in ``recorded`` the item ``pcm`` sounds, checked to sound whole from its first
    sample on."""
    samples = np.frombuffer(pcm, dtype="<i2")
    at = _find(recorded, samples[:240])
    assert at >= 0, "the next item's first 10 ms never sounded"
    assert np.array_equal(recorded[at : at + len(samples)], samples), (
        "the next item did not sound whole")
    return at


class _Held:
    """A PortAudio call of the speaker that waits for the test before it runs: a start or an
    open that takes as long as the test says (a slow or wedged device, made deterministic).
    ``entered`` is set when the call begins waiting, ``left`` when it goes on; it goes on when
    the test sets ``release`` (or after the deadline, so code that waits for it fails the
    test instead of hanging it)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> None:
        self.entered, self.release, self.left = (threading.Event(), threading.Event(),
                                                 threading.Event())
        real: Callable[..., Any] = getattr(owner, name)

        def held(*args: Any, **kwargs: Any) -> Any:
            if not self.entered.is_set():  # only the first call is held
                self.entered.set()
                self.release.wait(DEADLINE_S)
                self.left.set()
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, held)

    def wait_entered(self) -> None:
        wait_until(self.entered.is_set, DEADLINE_S, "the worker never made the held call")


def _spare_stream(speaker: PyAudioSpeaker) -> object:
    spare = speaker._spare
    assert spare is not None
    return spare.stream


def test_a_flush_while_the_worker_starts_a_stream_does_not_wait_for_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Audio comes to the idle speaker, so the worker aborts the idle stream and starts the
    spare; that start hangs. A flush meanwhile returns without waiting for it, drops the reply
    and counts what was heard; once the start returns, nothing of the reply sounds (the
    stream that started is aborted), and the next item plays whole from a fresh stream."""
    first, second = speech_like(3000, seed=41), speech_like(700, seed=42)

    def scene() -> tuple[PyAudioSpeaker, tuple[npt.NDArray[np.int16], float]]:
        speaker = PyAudioSpeaker()
        recorder = MonitorRecorder()
        start = _Held(monkeypatch, _spare_stream(speaker), "start_stream")
        try:
            recorder.wait_recording()
            _play(speaker, "a", first)  # two periods queued: the worker starts the spare
            start.wait_entered()
            report = speaker.flush()
            flushed_while_held = not start.left.is_set()
            start.release.set()
            _play(speaker, "b", second)
            _wait_idle(speaker)
            heard = speaker.heard_ms()
        finally:
            start.release.set()
            speaker.close()
            recorded = recorder.stop()
        assert flushed_while_held, "the flush waited for the worker's start"
        heard_a = report.heard_ms.get("a", 0.0)  # what the idle stream sounded before its abort
        assert heard.get("a", 0.0) == heard_a < 3000.0
        assert heard["b"] == pytest.approx(700.0)
        return speaker, (recorded, heard_a)

    recorded, heard_a = _without_dropouts(scene)
    at = _sounds_whole(recorded, second)
    # of the flushed reply, the monitor holds what was counted and nothing more
    assert abs(sounding_ms(recorded[:at]) - heard_a) <= EXACT_MS, (sounding_ms(recorded[:at]),
                                                                heard_a)


def test_a_flush_while_the_worker_opens_the_next_spare_stops_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker has started the spare (the reply plays) and is opening the next spare; that
    open hangs. A flush meanwhile returns without waiting for it, and the reply stops where
    the count says."""
    speaker = PyAudioSpeaker()
    recorder = MonitorRecorder()
    opening = _Held(monkeypatch, speaker, "_opener")
    item = speech_like(5000, seed=43)
    try:
        recorder.wait_recording()
        _play(speaker, "a", item)
        opening.wait_entered()
        _wait_heard(speaker, "a", 300)
        report = speaker.flush()
        flushed_while_held = not opening.left.is_set()
        opening.release.set()
        _wait_idle(speaker)
        underruns = speaker.underruns
    finally:
        opening.release.set()
        speaker.close()
        recorded = recorder.stop()
    assert flushed_while_held, "the flush waited for the worker's open"
    heard = report.heard_ms["a"]
    assert 300.0 <= heard < 5000.0
    base, end = _item_span(recorded, item)
    if underruns == 0:  # a dropout moves the item against its DAC-time count
        assert abs(heard - (end - base) / MS) <= HEARD_MS, (heard, (end - base) / MS)
    assert abs(sounding_ms(recorded) - heard) <= _tolerance_ms(speaker), (
        sounding_ms(recorded), heard, underruns)


def _portaudio() -> Any:
    """pyaudio's C module, whose functions its ``Stream`` and ``PyAudio`` call by name."""
    from pyaudio import _portaudio

    return _portaudio


def test_no_stream_is_closed_while_another_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    """PortAudio's list of open streams has no lock: a close in one thread while another
    opens could leave a freed stream in it. The worker's open of the next spare is held; a
    flush meanwhile aborts the live stream without closing it, and the worker closes it once
    its open is done. No close, terminate or initialize comes while an open is under way."""
    portaudio = _portaudio()
    speaker = PyAudioSpeaker()  # its first stream and its spare open before any of this
    opening, overlaps = threading.Event(), []

    def tracked(name: str) -> None:
        real = getattr(portaudio, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if opening.is_set():
                overlaps.append(name)
            return real(*args, **kwargs)

        monkeypatch.setattr(portaudio, name, call)

    for name in ("close", "terminate", "initialize"):
        tracked(name)
    held = _Held(monkeypatch, portaudio, "open")  # the next open waits for the test
    held_open = portaudio.open

    def marked_open(*args: Any, **kwargs: Any) -> Any:
        opening.set()
        try:
            return held_open(*args, **kwargs)
        finally:
            opening.clear()

    monkeypatch.setattr(portaudio, "open", marked_open)
    try:
        # audio to the idle speaker: the worker starts the spare, then opens the next: held
        _play(speaker, "a", speech_like(3000, seed=47))
        held.wait_entered()
        report = speaker.flush()
        flushed_while_held = not held.left.is_set()
        held.release.set()
        wait_until(lambda: not speaker._aborted, DEADLINE_S,
                   "the worker never closed the aborted stream")
    finally:
        held.release.set()
        speaker.close()
    assert flushed_while_held, "the flush waited for the worker's open"
    assert report.heard_ms.get("a", 0.0) < 3000.0
    assert overlaps == [], f"called while a stream was opening: {overlaps}"


def test_a_spare_that_fails_to_open_leaves_the_speaker_playing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker starts the spare for a reply, then fails to open the next spare: a warning,
    and the reply plays to its end; the next item (a restart with no spare) plays whole from
    a stream the worker opens then."""
    first, second = speech_like(1000, seed=45), speech_like(700, seed=46)

    def scene() -> tuple[PyAudioSpeaker, npt.NDArray[np.int16]]:
        speaker = PyAudioSpeaker()
        real = speaker._opener
        failed = threading.Event()

        def open_once_failing(**kwargs: Any) -> tuple[Any, Any, int]:
            if not failed.is_set():
                failed.set()
                raise AudioDeviceError("no usable audio output device (the test's)")
            return real(**kwargs)

        monkeypatch.setattr(speaker, "_opener", open_once_failing)

        def play_out() -> None:  # "a" restarts the stream; the next spare's open fails
            wait_until(failed.is_set, DEADLINE_S, "the worker never opened a spare")
            _wait_idle(speaker)

        with capture() as logs:
            heard, recorded, _ = _play_two(speaker, first, second, play_out)
        assert [x["event"] for x in logs if x["log_level"] == "warning"] == [
            "speaker_spare_open_failed"], logs
        assert heard["a"] == pytest.approx(1000.0) and heard["b"] == pytest.approx(700.0)
        return speaker, recorded

    _sounds_whole(_without_dropouts(scene), second)


@pytest.mark.parametrize("call", ["start_stream", "abort_stream"])
def test_close_returns_when_the_worker_is_stuck(
    monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    """A worker stuck in a PortAudio call (the spare's start, or the idle stream's abort,
    which holds the lock a close takes) does not hang ``close()``: it returns, with a
    warning, while the call still hangs; once the call returns, the worker ends."""
    speaker = PyAudioSpeaker()
    stuck = _Held(monkeypatch, _spare_stream(speaker) if call == "start_stream"
                  else _portaudio(), call)
    try:
        with capture() as logs:
            _play(speaker, "a", speech_like(1000, seed=44))  # the worker restarts
            stuck.wait_entered()
            speaker.close()
            closed_while_held = not stuck.left.is_set()
    finally:
        stuck.release.set()
    assert closed_while_held, "close() waited for the stuck worker"
    warned = [x for x in logs if x["event"] == "speaker_close_stuck"]
    assert [x["log_level"] for x in warned] == ["warning"], logs
    worker = speaker._worker
    wait_until(lambda: not worker.is_alive(), DEADLINE_S, "the worker never ended")


def test_reference_tap_keeps_sane_dac_times_across_a_restart() -> None:
    """The echo canceller's reference goes on across the abort and restart: every block of
    both streams, one after the other within each stream, handed ahead of its DAC time by no
    more than the device's buffer, and the next item's first sample stamped with the time the
    monitor recorded it (within the monitor's few ms)."""
    taps: list[tuple[float, float, npt.NDArray[np.int16]]] = []
    speaker = PyAudioSpeaker()
    speaker.tap_reference(lambda written, dac_ms: taps.append(
        (dac_ms, time.monotonic() * 1000, written.copy())))
    recorder = MonitorRecorder()
    second = speech_like(600, seed=21)
    try:
        recorder.wait_recording()
        _play(speaker, "a", speech_like(3000, seed=20))
        _wait_heard(speaker, "a", 500)
        speaker.flush()
        flushed_at = len(taps)
        _play(speaker, "b", second)
        _wait_idle(speaker)
        wait_until(lambda: len(taps) > flushed_at + 10, DEADLINE_S, "no blocks after the flush")
    finally:
        speaker.tap_reference(None)
        speaker.close()
        recorded = recorder.stop()
    period = speaker.period_frames
    assert all(len(w) == period for _, _, w in taps)
    dac = np.array([t[0] for t in taps])
    lead = dac - np.array([t[1] for t in taps])
    assert np.median(lead) > 0, np.round(lead, 1)  # ahead of playback
    assert np.all(lead < speaker.output_latency_ms + period / MS), np.round(lead, 1)
    steps = np.diff(dac)  # one block after the other, but for the step to the new stream
    assert np.mean(np.abs(steps - period / MS) < 0.01) >= 0.8, np.round(steps, 2)
    samples = np.frombuffer(second, dtype="<i2")
    block = next(i for i in range(flushed_at, len(taps))
                 if _find(taps[i][2], samples[:240]) >= 0)
    offset = _find(taps[block][2], samples[:240])
    at = _find(recorded, samples[:240])
    stamped = dac[block] + offset / MS
    assert abs(stamped - recorder.recorded_at(at) * 1000) <= 10.0, (
        stamped, recorder.recorded_at(at) * 1000)


def test_a_stalled_callback_is_counted_as_an_underrun() -> None:
    """Holding the interpreter lock longer than the device's buffer starves the callback:
    PortAudio flags the late callback while audio was queued, and ``underruns`` counts it."""
    speaker = PyAudioSpeaker()
    try:
        _play(speaker, "a", speech_like(3000, seed=30))
        _wait_heard(speaker, "a", 300)
        stall_s = 3 * speaker.output_latency_ms / 1000
        interval = sys.getswitchinterval()
        sys.setswitchinterval(10 * stall_s)  # no other thread runs while this one spins
        try:
            until = time.monotonic() + stall_s
            while time.monotonic() < until:
                pass
        finally:
            sys.setswitchinterval(interval)
        wait_until(lambda: speaker.underruns > 0, DEADLINE_S, "no underrun was counted")
    finally:
        speaker.close()


def test_heard_counts_each_item_and_grows_only_as_audio_sounds() -> None:
    speaker = PyAudioSpeaker(block_frames=240)
    recorder = MonitorRecorder()
    try:
        recorder.wait_recording()
        assert speaker.idle
        handed = time.monotonic()
        _play(speaker, "first", speech_like(300, seed=1))
        _play(speaker, "second", speech_like(3000, seed=2))
        assert not speaker.idle
        # handed over is not heard: no more than the time since, latency aside
        early = _heard(speaker, "first")
        assert early <= (time.monotonic() - handed) * 1000, early
        _wait_heard(speaker, "first", 300)
        _wait_heard(speaker, "second", 100)
        before = time.monotonic()
        mid = speaker.heard_ms()
        probed_after = time.monotonic()
        report = speaker.flush()
        _wait_idle(speaker)
    finally:
        speaker.close()
        recorded = recorder.stop()
    assert mid["first"] == pytest.approx(300.0)
    # The heard total follows what the monitor had recorded then, not what was handed over.
    on_monitor_before = recorder.sounded_by(recorded, before)
    on_monitor_after = recorder.sounded_by(recorded, probed_after)
    total_then = mid["first"] + mid["second"]
    tolerance = _tolerance_ms(speaker)
    assert on_monitor_before - tolerance <= total_then <= on_monitor_after + tolerance, (
        on_monitor_before, total_then, on_monitor_after, speaker.underruns)
    assert report.heard_ms["first"] == pytest.approx(300.0)
    assert report.heard_ms["second"] < 3000.0, "the flush came after the item had ended"
    total = report.heard_ms["first"] + report.heard_ms["second"]
    assert abs(total - sounding_ms(recorded)) <= tolerance, speaker.underruns


def test_underrun_plays_silence_not_stale_samples() -> None:
    speaker = PyAudioSpeaker(block_frames=480)
    recorder = MonitorRecorder()
    try:
        recorder.wait_recording()
        speaker.play("a", speech_like(200, seed=3))
        _wait_idle(speaker)
        time.sleep(0.3)  # at least 300 ms with nothing to play: the device runs dry
        speaker.play("b", speech_like(200, seed=4))
        _wait_idle(speaker)
        heard = speaker.heard_ms()
    finally:
        speaker.close()
        recorded = recorder.stop()
    assert heard == {"a": pytest.approx(200.0), "b": pytest.approx(200.0)}
    # 400 ms of sound with a silent gap of at least 200 ms between: no block was replayed.
    start, end = sounding_span(recorded)
    assert sounding_ms(recorded) == pytest.approx(400.0, abs=_tolerance_ms(speaker))
    assert (end - start) / MS - sounding_ms(recorded) >= 200.0


def test_device_at_48k_is_resampled_and_still_counted_exactly() -> None:
    speaker = PyAudioSpeaker(block_frames=480, device_rate=48000)
    recorder = MonitorRecorder()
    try:
        assert speaker.device_rate == 48000
        recorder.wait_recording()
        _play(speaker, "x", speech_like(3000, seed=5))
        _wait_heard(speaker, "x", 500)
        report = speaker.flush()
        _wait_idle(speaker)
    finally:
        speaker.close()
        recorded = recorder.stop()
    assert report.heard_ms["x"] < 3000.0, "the flush came after the item had ended"
    assert abs(report.heard_ms["x"] - sounding_ms(recorded)) <= _tolerance_ms(speaker)


@pytest.mark.parametrize(
    ("adapter", "kind"),
    [("pyaudio_speaker.PyAudioSpeaker", "output"), ("pyaudio_mic.PyAudioMicrophone", "input")],
)
def test_no_audio_server_is_one_typed_line(adapter: str, kind: str) -> None:
    module, name = adapter.split(".")
    env = {**os.environ, "PULSE_SERVER": "unix:/nonexistent/bargein-socket"}
    code = (
        "from bargein.errors import BargeinError\n"
        f"from bargein.adapters.audio.{module} import {name}\n"
        f"try:\n    {name}()\n"
        "except BargeinError as e:\n    print(type(e).__name__, '|', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
        timeout=DEADLINE_S,
    )
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith(f"AudioDeviceError | no usable audio {kind} device")
    assert out.stderr == ""  # no ALSA/JACK probing noise, no traceback
