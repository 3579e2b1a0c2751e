"""What the core reports besides its commands: fired edges, settled barge-ins, counters.

``Conversation`` hands ``TransitionRecord``s to its observers, appends an ``Interruption``
to ``Conversation.interruptions`` once the speaker has said what was heard, and keeps its
``ConversationStats`` up to date. All three are plain values; nothing here has behaviour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bargein.core.ledger import Settlement


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One fired edge, as observers see it (``source == dest`` for internal edges)."""

    source: str
    dest: str
    trigger: str
    reason: str


Observer = Callable[[TransitionRecord], None]


@dataclass(frozen=True, slots=True)
class Interruption:
    """One barge-in, settled: what was cancelled and what each item kept."""

    trigger: str
    response_ids: tuple[str, ...]
    cancelled: tuple[str, ...]
    settlements: tuple[Settlement, ...]


@dataclass(slots=True)
class ConversationStats:
    """Counters an operator wants at 3 a.m."""

    illegal_events: int = 0
    dropped_deltas: int = 0
    dropped_audio_ms: float = 0.0
    benign_errors: int = 0
    server_errors: int = 0
    protocol_violations: int = 0
    interruptions: int = 0
    action_errors: int = 0
    """Actions that raised or returned something that is not a command."""
    stale_timers: int = 0
    """``TimerFired`` of a timer the core had cancelled or never started (ignored)."""
    dead_replies: int = 0
    """Replies declared dead by the liveness watch (``bargein.core.liveness``)."""
    false_interruptions: int = 0
    """Sounds over a reply that a two-phase table judged and let go: the reply was ducked,
    the sound ended before it was confirmed, the reply resumed (``bargein.states.two_phase``)."""
    backchannels: int = 0
    """Transcripts of the user's speech over a reply that were only a backchannel ("mhm",
    "uh-huh", "yeah": ``bargein.core.backchannel``); they never commit a barge-in."""
