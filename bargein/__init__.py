"""bargein: realtime voice conversations where interruption is a tested state transition."""

from bargein.core import Conversation
from bargein.errors import BargeinError

__all__ = ["BargeinError", "Conversation"]
