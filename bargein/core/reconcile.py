"""Reconciling the server's complaints about commands it no longer needed.

Every ``response.cancel``, ``conversation.item.truncate`` and ``conversation.item.delete``
the core sends carries an event id and is kept here, as the command itself, until its fate
is known: a cancel until its response's ``response.done``, a truncate or delete until the
item's ``truncated`` / ``deleted``. An ``error`` naming a kept truncate or delete, carrying
a code of ``BENIGN_ERROR_CODES``, or refusing an ``audio_end_ms`` while a truncate is kept
(the first half of a clamped truncate), only means the server got there first: see
"Reconciling" in ``bargein.core.conversation``.
"""

from __future__ import annotations

from typing import TypeVar

from bargein.core import commands as c
from bargein.core.recent import forget_oldest

BENIGN_ERROR_CODES = frozenset({"response_cancel_not_active"})
"""Errors that only mean the server got there first."""

R = TypeVar("R", bound=c.Reconcilable)


KEEP_SENT = 256
"""The most commands kept awaiting their fate: one the server has not confirmed after this
many more was taken (a server that never confirms must not make the set grow for hours)."""


class SentCommands(dict[str, c.Reconcilable]):
    """Event id -> the command sent with it, while the server may still refuse it."""

    def keep(self, command: R) -> R:
        self[command.event_id] = command
        forget_oldest(self, KEEP_SENT)
        return command

    def response_done(self, response_id: str) -> None:
        """Its cancel, if any, can no longer be refused."""
        for k in [k for k, v in self.items()
                  if isinstance(v, c.CancelResponse) and v.response_id == response_id]:
            del self[k]

    def item_settled(self, item_id: str) -> None:
        """The server truncated or deleted the item: its command was taken."""
        for k in [k for k, v in self.items()
                  if not isinstance(v, c.CancelResponse) and v.item_id == item_id]:
            del self[k]

    def refused(
        self, event_id: str | None, code: str | None, param: str | None = None
    ) -> tuple[bool, c.Reconcilable | None]:
        """Whether an ``error`` is benign, and the kept command it names (now forgotten).

        A truncate past the end of the audio the server holds is refused by an error that
        names no event (``event_id`` null) but the parameter, ``audio_end_ms``, and then
        applied at the end of that audio (``conversation.item.truncated``, clamped): while
        a truncate is kept, such an error is that first half, benign; the truncate stays
        kept until its ``truncated`` settles it."""
        sent = self.pop(event_id or "", None)
        if sent is None and not event_id and param == "audio_end_ms" \
                and any(isinstance(v, c.TruncateItem) for v in self.values()):
            return True, None
        return code in BENIGN_ERROR_CODES or isinstance(sent, c.TruncateItem | c.DeleteItem), sent
