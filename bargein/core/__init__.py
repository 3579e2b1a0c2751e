"""The sans-IO core: typed events in, typed commands out, no IO and no clock."""

from bargein.core.conversation import Conversation
from bargein.core.ledger import Settlement
from bargein.core.records import ConversationStats, Interruption, TransitionRecord

__all__ = ["Conversation", "ConversationStats", "Interruption", "Settlement", "TransitionRecord"]
