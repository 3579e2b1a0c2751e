"""Two-phase barge-in, as states: duck and judge a sound over the reply, then commit or resume.

A sound over the assistant is not always an interruption: a cough, an "uh-huh", a door.
The instant machine (``DEFAULT_TABLE``) cuts the reply on any onset; these tables judge
first. ``responding`` is a compound (``thinking`` until the reply's first audio, then
``speaking``); an onset in it enters ``ducked``:

1. entering ``ducked`` ducks the speaker at once (``DuckPlayback(DUCK_GAIN)``): the reply
   plays on, lower, its audio keeps arriving, nothing is cancelled;
2. the sound is confirmed, and the barge-in committed (``interrupted``: flush, cancel,
   truncate to what was heard, exactly as the instant machine does), when it lasts
   ``CONFIRM_MS`` (a timed edge, ``after_600ms@ducked``), or a transcript of it holds words
   that are not a backchannel (``words_heard``, ``bargein.core.backchannel``), or the
   program interrupts;
3. the sound ending first resumes the reply where it is (``speaking`` if its audio is
   playing, else back into ``responding``'s last sub-state: history), leaving ``ducked``
   restores the gain (``RestorePlayback``), and the core counts a false interruption
   (``ConversationStats.false_interruptions``); the reply ending meanwhile leads to
   ``listening``.

Which detector judges is the table's. ``TWO_PHASE_TABLE`` is for a session with a local
voice detector (``Session(local_vad=...)``): its onset and stop edges (``LocalSpeechStarted``,
``LocalSpeechStopped``) judge, and the server's ``speech_started``/``speech_stopped`` change
nothing while the reply plays (the local detector hears the onset a network round trip
earlier; two judges would duck one cough twice). ``TWO_PHASE_SERVER_VAD_TABLE`` is for a
session whose only detector is the server's turn detection: ``speech_started`` ducks,
``speech_stopped`` resumes (a local detector's edges, if any come, do the same).
``two_phase_table(local_detector=...)`` picks one.

Both set ``server_interrupts=False``: the core sends every ``session.update`` with
``interrupt_response: false`` (``SessionConfig.with_interrupt_response``), so the server's
turn detection cannot kill the reply before the client has judged, and it sends
``response.cancel`` itself when it commits. The cost is one round trip on a committed cut:
the server stops generating when the cancel arrives rather than at its own onset (the
speaker was silent at once either way; the deltas in flight are dropped by the core's
gate). What it buys: a cough or a backchannel never costs the reply.

A sound the client let go is still committed by the server's turn detection as a user item
when its ``speech_stopped`` comes (``create_response`` starts no reply while one is
active): bargein leaves that item in the conversation, as what the user did (see the
README, "Two-phase barge-in").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from bargein.core.commands import DuckPlayback, RestorePlayback
from bargein.states.names import DUCKED, INTERRUPTED, LISTENING, RESPONDING
from bargein.states.table import DEFAULT_TABLE, State, StateTable, Transition, after

CONFIRM_MS = 600
"""How long a sound must last to commit the barge-in (the ``after_600ms@ducked`` edge)."""

DUCK_GAIN = 0.25
"""The reply's gain while a sound is judged (-12 dB): low enough not to talk over the
user, loud enough that a resumed reply lost nothing."""

THINKING = "thinking"
SPEAKING = "speaking"

__all__ = ["CONFIRM_MS", "DUCKED", "DUCK_GAIN", "SPEAKING", "THINKING",
           "TWO_PHASE_SERVER_VAD_TABLE", "TWO_PHASE_TABLE", "two_phase_table"]


def duck(_context: object) -> list[DuckPlayback]:
    """``ducked``'s entry: lower the reply at once."""
    return [DuckPlayback(DUCK_GAIN)]


def restore(_context: object) -> list[RestorePlayback]:
    """``ducked``'s exit, whichever way: full gain again (after the flush, on a commit)."""
    return [RestorePlayback()]


def _stay(source: str, triggers: Iterable[str]) -> list[Transition]:
    return [Transition(t, source, None) for t in triggers]


def _build(name: str, onsets: tuple[str, ...], stops: tuple[str, ...],
           ignored: tuple[str, ...]) -> StateTable:
    judged = [
        *(Transition(t, RESPONDING, DUCKED, reason="a sound over the reply: duck, judge it")
          for t in onsets),
        after(CONFIRM_MS, DUCKED, INTERRUPTED, reason="it lasted: barge in"),
        Transition("words_heard", DUCKED, INTERRUPTED, reason="words, not a backchannel"),
        Transition("interrupt", DUCKED, INTERRUPTED, reason="the program barged in"),
    ]
    for stop in stops:
        judged += [
            Transition(stop, DUCKED, SPEAKING, conditions=("playing",),
                       reason="it ended first: resume"),
            Transition(stop, DUCKED, RESPONDING, history=True, reason="it ended first: resume"),
        ]
    return DEFAULT_TABLE.extend(
        states=[
            State(THINKING, parent=RESPONDING, description="a reply is under way; none of its "
                                                            "audio yet"),
            State(SPEAKING, parent=RESPONDING, description="the reply's audio is playing"),
            State(DUCKED, interruptible=False, on_enter=(duck,), on_exit=(restore,),
                  description="the user made a sound over the reply: it plays on, ducked, "
                              "while bargein judges; lasting or words commit the barge-in, "
                              "ending first resumes"),
        ],
        transitions=[
            Transition("audio_started", LISTENING, SPEAKING, reason="audio arrived"),
            Transition("audio_started", THINKING, SPEAKING, reason="first audio"),
            *judged,
            Transition("playback_finished", DUCKED, LISTENING, unless=("generating",),
                       reason="the reply ended meanwhile"),
            Transition("response_done", DUCKED, LISTENING, unless=("playing", "generating"),
                       reason="the reply ended meanwhile"),
            *_stay(DUCKED, ("session_ready", "start", "response_created", "audio_started",
                            "response_done", "playback_finished", "playback_flushed",
                            *ignored)),
            *_stay(RESPONDING, (t for t in ignored if t != "speech_stopped")),
        ],
        replace=[replace(DEFAULT_TABLE.state(RESPONDING), initial=THINKING)],
        name=name,
        server_interrupts=False,
    )


TWO_PHASE_TABLE = _build("two_phase", onsets=("local_speech_started",),
                         stops=("local_speech_stopped",),
                         ignored=("speech_started", "speech_stopped"))
"""Two-phase barge-in judged by the session's local voice detector."""

TWO_PHASE_SERVER_VAD_TABLE = _build(
    "two_phase_server_vad", onsets=("speech_started", "local_speech_started"),
    stops=("speech_stopped", "local_speech_stopped"), ignored=())
"""Two-phase barge-in judged by the server's turn detection (no local detector)."""


def two_phase_table(*, local_detector: bool) -> StateTable:
    """The two-phase table for a session with (``True``) or without a local detector."""
    return TWO_PHASE_TABLE if local_detector else TWO_PHASE_SERVER_VAD_TABLE
