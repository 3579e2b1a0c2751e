"""The speaker for this machine: PulseAudio's own stream when a server answers, else PortAudio.

``open_speaker()`` is what a program (or the CLI) calls for "the speaker". The native
``PulseSpeaker`` is chosen whenever a PulseAudio server (or PipeWire's pulse server) is
reachable, because only the server can drop what it was handed and fade what follows: it
stops within one block of a flush without a click and counts heard audio exactly, with a 2 s
buffer that rides out a busy machine. Through PortAudio a flush can only abort the stream:
``PyAudioSpeaker`` stops at once and counts exactly too, but with a hard cut (a click), and a
duck reaches the listener only after its 100 ms buffer (see ``pyaudio_speaker``). Elsewhere
(macOS, Windows, bare ALSA) that portable speaker plays. No device at all is one
``AudioDeviceError`` line.
"""

from __future__ import annotations

from typing import Literal

from bargein.adapters.audio.protocols import AudioSink
from bargein.errors import AudioDeviceError

Backend = Literal["auto", "pulse", "pyaudio"]


def open_speaker(*, block_frames: int = 240, backend: Backend = "auto") -> AudioSink:
    """The default output device as an AudioSink: ``PulseSpeaker`` if a server answers.

    ``backend="pulse"`` or ``"pyaudio"`` forces one (an ``AudioDeviceError`` if it cannot
    open). With ``"auto"``, a PulseAudio that is not installed or not running falls back to
    pyaudio; when that fails too, the error names both.
    """
    pulse_error: AudioDeviceError | None = None
    if backend in ("auto", "pulse"):
        from bargein.adapters.audio.pulse_speaker import PulseSpeaker

        try:
            return PulseSpeaker(block_frames=block_frames)
        except AudioDeviceError as exc:
            if backend == "pulse":
                raise
            pulse_error = exc
    from bargein.adapters.audio.pyaudio_speaker import PyAudioSpeaker

    try:
        return PyAudioSpeaker(block_frames=block_frames)
    except AudioDeviceError as exc:
        if pulse_error is None:
            raise
        raise AudioDeviceError(f"{exc}; {pulse_error}") from None
