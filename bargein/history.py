"""What was said, as text: what a session tells a new server session after a reconnect.

A dropped connection ends the server session, and with it every conversation item: the
model of the new one has never heard the user or itself. The Realtime API cannot be handed
audio items back as the assistant's (an assistant message takes text only), so bargein
restores the conversation as text, in the order each turn became final:

- the user's words, when input transcription is on (``InputTranscript``); a user turn
  nobody transcribed is audio only and cannot be restored (the model then sees its own
  replies without the questions: the console and the ``Reconnected`` observation say how
  many turns came back);
- each assistant item as the user *heard* it: the whole transcript when it played to its
  end, only the heard part when a barge-in cut it (``split_heard``), nothing when nothing
  was heard (a deleted item). The model must not build on words the user never heard, on
  this connection or the next.

The record is bounded (the last ``max_turns`` turns and ``max_chars`` characters), so a
conversation of hours keeps the same memory as one of minutes; the oldest turns go first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

from bargein.core.commands import CreateMessage

Role = Literal["user", "assistant"]


class History:
    """The conversation's finished turns as text, by item id, oldest first."""

    def __init__(self, max_turns: int = 60, max_chars: int = 24_000) -> None:
        self.max_turns = max_turns
        self.max_chars = max_chars
        self._turns: OrderedDict[str, tuple[Role, str]] = OrderedDict()
        self._cut: dict[str, str] = {}
        """Items a barge-in cut: what was heard, kept for a transcript that ends later."""
        self._chars = 0

    def __len__(self) -> int:
        return len(self._turns)

    def said(self, role: Role, item_id: str, text: str) -> None:
        """A turn's final text: the user's transcript, or an assistant item's transcript
        (replaced by its heard part if a barge-in cut it, before or after)."""
        if role == "assistant" and item_id in self._cut:
            text = self._cut[item_id]
        self._put(item_id, role, text)

    def heard(self, item_id: str, heard: str) -> None:
        """A barge-in cut assistant item ``item_id``: the user heard ``heard`` of it."""
        self._cut[item_id] = heard
        if len(self._cut) > self.max_turns:
            del self._cut[next(iter(self._cut))]
        if item_id in self._turns:
            self._put(item_id, "assistant", heard)

    def messages(self) -> list[CreateMessage]:
        """The turns to create in a new server session, oldest first."""
        return [CreateMessage(role, text) for role, text in self._turns.values()]

    def _put(self, item_id: str, role: Role, text: str) -> None:
        """Set a turn's text; a turn already kept stays where it was in the order."""
        old = self._turns.pop(item_id, None) if not text.strip() else self._turns.get(item_id)
        if old is not None:
            self._chars -= len(old[1])
        text = text.strip()
        if text:
            self._turns[item_id] = (role, text)
            self._chars += len(text)
        while self._turns and (len(self._turns) > self.max_turns
                               or self._chars > self.max_chars):
            _, (_, dropped) = self._turns.popitem(last=False)
            self._chars -= len(dropped)
