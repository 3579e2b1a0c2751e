"""The names a state table is written in: the core's states, triggers, conditions and
speech policies, and how a timed edge's trigger is named.

They live apart from ``table.py`` so that the table and its validation (``validate.py``)
can both read them without importing each other.
"""

from __future__ import annotations

from typing import Literal

IDLE = "idle"
LISTENING = "listening"
RESPONDING = "responding"
INTERRUPTED = "interrupted"
CORE_STATES = (IDLE, LISTENING, RESPONDING, INTERRUPTED)
RUNNING_TOOLS = "running_tools"
"""The default table's state for a reply's tool calls running (``bargein.core.tool_calls``):
not a core state (a table of its own may do without it; the core then stays in
``listening`` while they run)."""

BARGE_IN_TRIGGERS = ("speech_started", "local_speech_started", "interrupt")
"""What interrupts an interruptible state: server VAD, local VAD, the program itself."""

LEAVE_TRIGGERS = ("disconnected", "stop")
"""What leads from every state to ``idle``: the connection lost, the program's pause."""

TRIGGERS = (
    "session_ready",
    "reconnected",
    *LEAVE_TRIGGERS,
    "start",
    *BARGE_IN_TRIGGERS,
    "speech_stopped",
    "local_speech_stopped",
    "words_heard",
    "response_created",
    "audio_started",
    "response_done",
    "playback_finished",
    "playback_flushed",
    "tools_done",
)
"""Every trigger the core fires from its own events. A table may add its own
(``StateTable.triggers``, fired by a program's ``UserEvent``) and timed edges (``after``).
``local_speech_stopped`` (the local detector's stop edge), ``words_heard`` (a transcript
of the user's words that are not a backchannel) and ``tools_done`` (the last call owed a
follow-up has ended) are fired only where the table has an edge for them: the end of a
sound, a transcript or a call is news only to a state that waits for it, and never out of
place elsewhere."""

DUCKED = "ducked"
"""The judging state of two-phase barge-in (``bargein.states.two_phase``): the core counts
a false interruption when the machine leaves it back into ``responding``."""

QUIET_TRIGGERS = ("local_speech_stopped", "words_heard", "tools_done")
"""Core triggers fired only when the current state has an edge for them (see above)."""

CONDITIONS = ("playing", "generating", "connected", "paused", "tools_running")
"""Predicates an edge may require: ``playing`` — the speaker still has audio of the
assistant; ``generating`` — a response the user has not interrupted is still being
generated (between ``response.created`` and ``response.done``); ``connected`` — the server
session is ready and has not dropped since; ``paused`` — the program stopped the
conversation and has not started it again; ``tools_running`` — a tool call runs whose
output the model awaits (a follow-up reply will be asked for when it ends)."""

SpeechPolicy = Literal["send", "ignore", "hold"]
SPEECH_POLICIES: tuple[SpeechPolicy, ...] = ("send", "ignore", "hold")
"""What happens to the user's microphone audio in a state: ``send`` — streamed to the
server (its turn detection hears it, and with ``interrupt_response`` it cancels the reply
itself, whatever the state); ``ignore`` — not sent, the server never hears it; ``hold`` —
kept, and sent when the machine enters a state that sends, so the server hears the user
after the segment and answers then. ``idle`` never sends."""

_TIMER_MARK = "@"


def timer_trigger(source: str, ms: int) -> str:
    """The trigger of a timed edge: ``after_600ms@confirming``. It names its state, so a
    parent's timer and a child's of the same length are two timers, not one."""
    return f"after_{ms}ms{_TIMER_MARK}{source}"


def is_timer_trigger(trigger: str) -> bool:
    return trigger.startswith("after_") and _TIMER_MARK in trigger
