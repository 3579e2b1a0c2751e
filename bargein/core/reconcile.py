"""Reconciling the server's complaints about commands it no longer needed.

Every ``response.cancel``, ``conversation.item.truncate`` and ``conversation.item.delete``
the core sends carries an event id and is kept here, as the command itself, until its fate
is known: a cancel until its response's ``response.done``, a truncate or delete until the
item's ``truncated`` / ``deleted``. An ``error`` naming a kept truncate or delete, or
carrying a code of ``BENIGN_ERROR_CODES``, only means the server got there first: see
"Reconciling" in ``bargein.core.conversation``.
"""

from __future__ import annotations

from typing import TypeVar

from bargein.core import commands as c

BENIGN_ERROR_CODES = frozenset({"response_cancel_not_active"})
"""Errors that only mean the server got there first."""

R = TypeVar("R", bound=c.Reconcilable)


class SentCommands(dict[str, c.Reconcilable]):
    """Event id -> the command sent with it, while the server may still refuse it."""

    def keep(self, command: R) -> R:
        self[command.event_id] = command
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

    def refused(self, event_id: str | None, code: str | None) -> tuple[bool, c.Reconcilable | None]:
        """Whether an ``error`` is benign, and the kept command it names (now forgotten)."""
        sent = self.pop(event_id or "", None)
        return code in BENIGN_ERROR_CODES or isinstance(sent, c.TruncateItem | c.DeleteItem), sent
