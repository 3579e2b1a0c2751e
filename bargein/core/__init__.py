"""The sans-IO core: typed events in, typed commands out, no IO and no clock."""

from bargein.core.conversation import (
    Conversation,
    ConversationStats,
    Interruption,
    TransitionRecord,
)
from bargein.core.ledger import Settlement

__all__ = ["Conversation", "ConversationStats", "Interruption", "Settlement", "TransitionRecord"]
