"""The second half of a barge-in: what the speaker heard becomes truncates and deletes.

A barge-in cannot settle its items when it happens: only the speaker, once stopped, knows
what left the device (it held some audio, and the fade plays a little more). So ``pend``
notes the unsettled items of the responses cut off, merged into a barge-in still waiting
(a pause while ``interrupted``) so that one report settles each item once, and
``settle_pending`` turns the speaker's ``PlaybackFlushed`` report into commands through the
truncation rule (``ledger.settle``). ``Conversation`` keeps the commands for reconciliation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bargein.core import commands as c
from bargein.core.ledger import PlaybackLedger, settle
from bargein.core.records import Interruption


@dataclass(slots=True)
class PendingBargeIn:
    """A barge-in waiting for the speaker to say what was heard (``PlaybackFlushed``)."""

    trigger: str
    response_ids: tuple[str, ...]
    cancelled: tuple[str, ...]
    item_ids: list[str] = field(default_factory=list)


def pend(
    waiting: PendingBargeIn | None,
    trigger: str,
    response_ids: tuple[str, ...],
    cancelled: tuple[str, ...],
    ledger: PlaybackLedger,
) -> PendingBargeIn:
    """The barge-in that now waits for the report: the unsettled items of ``response_ids``,
    after those of a barge-in already ``waiting``."""
    items = [i.item_id for i in ledger.unsettled(response_ids)]
    if waiting is not None:
        items = waiting.item_ids + [i for i in items if i not in waiting.item_ids]
    return PendingBargeIn(trigger, response_ids, cancelled, items)


def settle_pending(
    pending: PendingBargeIn,
    ledger: PlaybackLedger,
    heard_ms: Mapping[str, float],
    event_id: Callable[[], str],
) -> tuple[list[c.TruncateItem | c.DeleteItem], Interruption]:
    """Truncate each item at what was heard, delete one of which nothing was heard, leave
    alone one that played to its end (or was forgotten as such before the report)."""
    commands: list[c.TruncateItem | c.DeleteItem] = []
    settlements = []
    for item_id in pending.item_ids:
        item = ledger.items.get(item_id)
        if item is None or item.settled:  # heard to its end (and forgotten), or deleted
            continue                      # meanwhile (its reply refused in a pause)
        s = settle(item, heard_ms.get(item_id, 0.0))
        settlements.append(s)
        if s.action == "truncate":
            commands.append(c.TruncateItem(item_id, s.audio_end_ms, 0, event_id()))
        elif s.action == "delete":
            commands.append(c.DeleteItem(item_id, event_id()))
    interruption = Interruption(
        pending.trigger, pending.response_ids, pending.cancelled, tuple(settlements)
    )
    return commands, interruption
