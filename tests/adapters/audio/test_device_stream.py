"""Starting a PortAudio stream on a starved machine, and PortAudio's one lock (fakes: no
device needed)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from bargein.adapters.audio import device
from bargein.adapters.audio.device import PORTAUDIO_LOCK, close_stream, start_stream
from bargein.errors import AudioDeviceError
from bargein.logs import capture


class FakeStream:
    """A stream whose start fails as PortAudio's does when its thread is late (paTimedOut)."""

    def __init__(self, fails: bool) -> None:
        self.fails, self.started, self.closed = fails, False, False

    def start_stream(self) -> None:
        if self.fails:
            raise OSError(-9987, "Wait timed out")
        self.started = True

    def close(self) -> None:
        self.closed = True


class FakePyAudio:
    def __init__(self) -> None:
        self.terminated = False

    def terminate(self) -> None:
        self.terminated = True


def test_a_stream_whose_thread_was_late_is_opened_again_and_started() -> None:
    first, first_pa = FakeStream(fails=True), FakePyAudio()
    opened: list[tuple[Any, Any, int]] = []

    def reopen() -> tuple[Any, Any, int]:
        opened.append((FakePyAudio(), FakeStream(fails=len(opened) == 0), 24000))
        return opened[-1]

    pa, stream = start_stream(first_pa, first, reopen, "output")
    assert (first.closed, first_pa.terminated) == (True, True)
    assert len(opened) == 2 and (pa, stream) == opened[1][:2] and stream.started
    assert opened[0][1].closed and opened[0][0].terminated  # each failed one is let go


def test_a_stream_that_never_starts_is_one_typed_error_and_nothing_stays_open() -> None:
    made = [(FakePyAudio(), FakeStream(fails=True), 24000) for _ in range(3)]
    more = iter(made[1:])
    with pytest.raises(AudioDeviceError, match="audio input stream did not start"):
        start_stream(made[0][0], made[0][1], lambda: next(more), "input")
    assert all(pa.terminated and stream.closed for pa, stream, _ in made)


def test_a_close_goes_on_without_the_lock_when_its_holder_is_stuck(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A thread stuck in a wedged device's open holds the lock: a close goes on without it
    after the wait, with a warning, rather than hang the program."""
    monkeypatch.setattr(device, "_LOCK_WAIT_S", 0.05)
    stream = FakeStream(fails=False)
    taken, release = threading.Event(), threading.Event()

    def stuck() -> None:
        with PORTAUDIO_LOCK:
            taken.set()
            release.wait(5)

    holder = threading.Thread(target=stuck)
    holder.start()
    try:
        assert taken.wait(5)
        with capture() as logs:
            close_stream(stream)
    finally:
        release.set()
        holder.join(5)
    assert stream.closed
    assert [(x["event"], x["log_level"]) for x in logs] == [
        ("portaudio_lock_timeout", "warning")], logs
