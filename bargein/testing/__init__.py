"""Helpers for testing programs that embed bargein.

- ``feed(conversation, *events)``: drive the sans-IO core and collect its commands, the
  way bargein's own tests do.
- ``VirtualClock``, ``MemorySource``, ``MemorySink``: audio adapters on a clock you
  advance by hand; ``MemorySink.output()`` is what the user would have heard.
- ``bargein.testing.sim``: the ``realtime_sim`` pytest fixture (a running simulator),
  registered as a pytest plugin wherever bargein is installed.
"""

from bargein.adapters.audio.memory import MemorySink, MemorySource, VirtualClock
from bargein.core import Conversation
from bargein.core.commands import Command
from bargein.core.events import Event


def feed(conversation: Conversation, *events: Event) -> list[Command]:
    """Every command ``conversation`` emits for ``events``, in order."""
    return [command for event in events for command in conversation.handle(event)]


__all__ = ["MemorySink", "MemorySource", "VirtualClock", "feed"]
