"""A confirm-then-commit barge-in: a timed edge commits it, history resumes the reply.

A sound over the assistant is not always an interruption: a cough, an "uh-huh". Here a
local voice detector's onset does not interrupt at once: ``responding`` (any of its
sub-states) goes to ``confirming``, where the reply plays on and nothing is cancelled.
If the sound lasts ``CONFIRM_MS`` (a timed edge), or the server's turn detection hears
words, the barge-in is committed: ``interrupted``, with the flush, cancel and truncation
of every barge-in. If the sound ends first (the local detector's stop edge,
``LocalSpeechStopped``), the machine goes back exactly where it was inside ``responding``,
``thinking`` or ``speaking`` (shallow history). ``responding`` is made a compound with
``thinking`` as its initial child::

    bargein check --machine examples.machines.confirm:CONFIRM

bargein ships the grown-up form of this machine, which also ducks the reply while it
judges and keeps the server from cancelling first: ``bargein.states.two_phase``.
"""

from __future__ import annotations

from dataclasses import replace

from bargein.states import DEFAULT_TABLE, State, Transition, after

CONFIRM_MS = 600

CONFIRM = DEFAULT_TABLE.extend(
    states=[
        State("thinking", parent="responding", description="a response is under way; no audio yet"),
        State("speaking", parent="responding", description="the assistant's audio is playing"),
        State("confirming", interruptible=False,
              description="the user made a sound over the reply: it plays on while bargein "
                          "judges; long enough commits the barge-in, short resumes"),
    ],
    transitions=[
        Transition("audio_started", "listening", "speaking", reason="audio arrived"),
        Transition("audio_started", "thinking", "speaking", reason="first audio"),
        Transition("local_speech_started", "responding", "confirming", reason="a sound: judge it"),
        after(CONFIRM_MS, "confirming", "interrupted", reason="long enough: barge in"),
        Transition("speech_started", "confirming", "interrupted", reason="the server heard words"),
        Transition("interrupt", "confirming", "interrupted", reason="the program barged in"),
        Transition("local_speech_stopped", "confirming", "responding", history=True,
                   reason="too short: resume"),
        Transition("playback_finished", "confirming", "listening", unless=("generating",),
                   reason="the reply ended meanwhile"),
        *(Transition(t, "confirming", None) for t in (
            "session_ready", "start", "speech_stopped", "response_created", "audio_started",
            "response_done", "playback_finished", "local_speech_started")),
        *(Transition("local_speech_stopped", s, None) for s in ("listening", "responding",
                                                                 "interrupted")),
    ],
    replace=[replace(DEFAULT_TABLE.state("responding"), initial="thinking")],
    name="confirm",
)
"""``responding -> confirming`` on a local onset; ``confirming -> interrupted`` after
``CONFIRM_MS`` or on the server's ``speech_started``; ``confirming -> responding (H)`` when
the sound ends first."""
