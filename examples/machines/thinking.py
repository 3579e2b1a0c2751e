"""A ``thinking`` sub-state: the user has finished, the answer has not started to sound.

``thinking`` is a child of ``responding``, so it inherits everything ``responding`` does:
it is interruptible (speaking again cancels the answer being prepared), a disconnect or a
pause leaves it, ``response_done`` with nothing playing goes back to ``listening``. It adds
what is its own: it is entered when the user stops speaking, left for ``responding`` at the
first audio, and when the answer is slow a timed edge plays a short cue (an action: it
returns a command) so the user knows they were heard::

    bargein check --machine examples.machines.thinking:THINKING
    bargein diagram --machine examples.machines.thinking:THINKING --format md
"""

from __future__ import annotations

import numpy as np

from bargein.core.actions import ActionContext
from bargein.core.commands import Command, PlayAudio
from bargein.core.pcm import RATE
from bargein.states import DEFAULT_TABLE, State, Transition, after

FILLER_AFTER_MS = 1200


def _cue(ms: int = 150, hz: float = 660.0) -> bytes:
    """A soft tone with a fade in and out, as PCM16 24 kHz mono."""
    t = np.arange(RATE * ms // 1000) / RATE
    envelope = np.sin(np.pi * t / t[-1]) ** 2
    wave = np.rint(0.08 * 32767 * envelope * np.sin(2 * np.pi * hz * t)).astype("<i2")
    return bytes(wave.tobytes())


CUE = _cue()


def play_cue(ctx: ActionContext) -> list[Command]:
    """The answer is slow: a short cue (not an item of the conversation: never truncated)."""
    return [PlayAudio("cue", "cue", CUE)]


THINKING = DEFAULT_TABLE.extend(
    states=[
        State("thinking", parent="responding",
              description="the user finished; no audio of the answer yet"),
    ],
    transitions=[
        Transition("speech_stopped", "listening", "thinking", reason="user finished"),
        Transition("audio_started", "thinking", "responding", reason="first audio"),
        after(FILLER_AFTER_MS, "thinking", None, reason="slow answer: a cue",
              actions=(play_cue,)),
    ],
    name="thinking",
)
"""``listening -> thinking`` on the end of the user's speech, ``thinking -> responding`` at
the first audio; everything else ``thinking`` does it inherits from ``responding``."""
