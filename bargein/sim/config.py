"""How a simulator behaves: what it says, how fast, in which voice, and what goes wrong.

``DEFAULT_REPLY_LATENCY_MS`` is the one default time to first audio, for ``SimConfig`` and
for ``bargein sim``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bargein.errors import SimError
from bargein.sim.faults import Faults
from bargein.sim.script import Entry, Reply, ToolCall, check_entry
from bargein.sim.voice import VoiceKind

DEFAULT_SCRIPT: tuple[Entry, ...] = (
    "Hello! I am the bargein simulator. Ask me anything, and feel free to interrupt me "
    "whenever you like, because that is exactly what I am here to test.",
    # a call of the session's first tool: skipped when the session declares none
    Reply(("Let me check that for you.", ToolCall(answer="Here is what I found: {output}"))),
    "Sure. Here is a longer answer, so that you have plenty of time to cut in: the weather "
    "today is mild, with a light breeze from the west and clouds that come and go.",
    "Of course. Let me tell you a story about a lighthouse keeper who counted the waves "
    "every night, one by one, until the morning light came over the hills.",
)
DEFAULT_REPLY_LATENCY_MS = 600.0
"""Time to first audio: from ``response.created`` to the first delta, about what upstream
takes after the end of the user's turn (0.5 to 1 s)."""

EventHook = Callable[[dict[str, Any], str], None]


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Options of a simulator, shared by all its connections.

    - ``script``: what the assistant says, one entry per response, cycling: texts, tool
      calls and multi-item replies (script.py).
    - ``speed``: how many times faster than real time replies are sent (1.0 paces them
      exactly in real time, ``math.inf`` sends them as fast as possible).
    - ``chunk_ms``: milliseconds of audio per audio delta.
    - ``reply_latency_ms``: delay between ``response.created`` and the first delta (audio,
      text or arguments): ``DEFAULT_REPLY_LATENCY_MS`` unless given.
    - ``user_transcripts``: what input transcription says the user said, one per committed
      audio item, cycling; without them a transcript tells the audio's length, e.g.
      "(1.2 seconds of speech)".
    - ``voice``: ``auto`` (espeak-ng if installed), ``espeak`` or ``synthetic``.
    - ``faults``: faults of connections that do not choose their own.
    - ``reject_api_keys``: keys answered with HTTP 401, to test a client's rejected-key path.
    - ``accept_api_keys``: when set, the only keys accepted: any other key, or none, is
      answered with HTTP 401 (a server that checks keys, as upstream does).
    - ``record_audio``: keep appended audio in each connection's record.
    - ``keep_records``: keep each connection's record after it closes; a long-running
      server turns it off, or every event of every past connection stays in memory.
    - ``on_event``: called with (event, api) for every event sent except injected garbage
      (malformed frames, unknown types); what it raises is kept in ``Simulator.violations``.
    """

    script: tuple[Entry, ...] = DEFAULT_SCRIPT
    speed: float = 4.0
    chunk_ms: int = 100
    reply_latency_ms: float = DEFAULT_REPLY_LATENCY_MS
    user_transcripts: tuple[str, ...] = ()
    voice: VoiceKind = "auto"
    faults: Faults = field(default_factory=Faults)
    reject_api_keys: frozenset[str] = frozenset()
    accept_api_keys: frozenset[str] | None = None
    record_audio: bool = True
    keep_records: bool = True
    on_event: EventHook | None = None

    def __post_init__(self) -> None:
        if not self.script:
            raise SimError("the reply script needs at least one entry")
        for entry in self.script:
            check_entry(entry)
        if not (self.speed > 0 and not math.isnan(self.speed)):
            raise SimError(f"speed must be positive, not {self.speed}")
        if not 10 <= self.chunk_ms <= 1000:
            raise SimError(f"chunk_ms must be between 10 and 1000, not {self.chunk_ms}")
        if self.reply_latency_ms < 0:
            raise SimError("reply_latency_ms must not be negative")
        if self.voice not in ("auto", "espeak", "synthetic"):
            raise SimError(f"voice must be auto, espeak or synthetic, not {self.voice!r}")

    def texts(self) -> tuple[str, ...]:
        """The script's texts, for the voice to prepare."""
        found: list[str] = []
        for entry in self.script:
            parts = entry.parts if isinstance(entry, Reply) else (entry,)
            found += [part for part in parts if isinstance(part, str)]
        return tuple(found)
