"""Echo cancellation as ``talk()`` and ``bargein talk`` wire it: on for the microphone with the
speaker, off on request, and one typed line when livekit is missing."""

from __future__ import annotations

import sys

import pytest

from bargein.adapters.audio.echo import EchoCanceller
from bargein.adapters.audio.pyaudio_mic import PyAudioMicrophone
from bargein.cli.app import main
from bargein.cli.console import mode_line
from bargein.errors import EchoCancellerError
from bargein.talking import open_audio
from tests.support.pulse_env import wait_until


@pytest.mark.device
@pytest.mark.usefixtures("pulse")
def test_the_microphone_with_the_speaker_is_cancelled_against_what_the_speaker_writes() -> None:
    source, sink, _ = open_audio("mic", "speaker")
    try:
        assert isinstance(source, PyAudioMicrophone) and source.processor is not None
        canceller = source.processor.__self__  # type: ignore[attr-defined]
        assert isinstance(canceller, EchoCanceller)
        # the speaker writes ahead of playback (silence too): once it has, every piece of
        # capture finds its reference written, so none is fed as unwritten any more
        wait_until(lambda: canceller.stats.processed_ms >= 1000,
                   message="waiting for 1 s of capture processed")
        unwritten = canceller.stats.unwritten_ms
        processed = canceller.stats.processed_ms
        wait_until(lambda: canceller.stats.processed_ms >= processed + 500,
                   message="waiting for 500 ms more")
        # a starved speaker thread may fall behind for a moment on a busy machine (the
        # piece is then fed silence as its reference); the path itself must keep up
        assert canceller.stats.unwritten_ms - unwritten <= 100, (unwritten, canceller.stats)
    finally:
        sink.close()
        source.close()


@pytest.mark.device
@pytest.mark.usefixtures("pulse")
def test_echo_cancel_off_leaves_the_microphone_as_it_is() -> None:
    source, sink, _ = open_audio("mic", "speaker", echo_cancel=False)
    try:
        assert isinstance(source, PyAudioMicrophone) and source.processor is None
    finally:
        sink.close()
        source.close()


def test_without_livekit_talk_fails_before_any_device_opens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "livekit", None)
    with pytest.raises(EchoCancellerError, match="no-echo-cancel"):
        open_audio("mic", "speaker")


def test_without_livekit_bargein_talk_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "livekit", None)
    assert main(["talk", "--url", "ws://127.0.0.1:9/v1"]) == 1
    err = capsys.readouterr().err.strip()
    assert "livekit" in err and "--no-echo-cancel" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_the_mode_line_says_whether_echo_is_removed() -> None:
    common = dict(host="h", api="ga", turns="server", client_cancel=False, local_vad=None,
                  input="mic", output="speaker")
    assert "echo is removed" in mode_line(**common, echo_cancel=True)  # type: ignore[arg-type]
    assert "no echo cancellation" in mode_line(**common, echo_cancel=False)  # type: ignore[arg-type]
    assert "echo" not in mode_line(**common)  # type: ignore[arg-type]
