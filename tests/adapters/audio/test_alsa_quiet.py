"""A library prints nothing unless asked: ALSA's own messages (an underrun recovered, an
unknown device), which libasound writes to stderr from C, are silenced once bargein opens a
PortAudio device. Checked in a fresh process against the real libasound, with an error
ALSA always reports (opening a PCM that does not exist)."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(ctypes.util.find_library("asound") is None,
                                reason="libasound is not installed (not Linux)")

PROBE = """
import ctypes, ctypes.util, sys
if sys.argv[1] == "bargein":
    from bargein.adapters.audio.device import new_pyaudio
    new_pyaudio().terminate()
alsa = ctypes.CDLL(ctypes.util.find_library("asound"))
pcm = ctypes.c_void_p()
assert alsa.snd_pcm_open(ctypes.byref(pcm), b"no_such_pcm_here", 0, 0) < 0
"""


def _stderr_of(mode: str) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stderr


def test_alsa_messages_are_silenced_once_bargein_opens_portaudio() -> None:
    assert "Unknown PCM no_such_pcm_here" in _stderr_of("alone")  # what ALSA does by itself
    assert _stderr_of("bargein") == ""
