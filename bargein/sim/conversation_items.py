"""The client's events on conversation items: create, retrieve, truncate, delete.

- ``conversation.item.create``: messages (a typed user message is ``input_text`` content,
  answered when a ``response.create`` follows), ``function_call`` items and
  ``function_call_output`` items (the answer to a scripted call: script.py); placed after
  ``previous_item_id`` (``"root"``: first) or last. A duplicate item id is refused.
- ``conversation.item.retrieve``: ``conversation.item.retrieved`` with the item as the
  server holds it (a user audio item with its transcript, a truncated item without).
- ``conversation.item.truncate``: an assistant message's audio cut at ``audio_end_ms``; its
  transcript is dropped, as upstream. Past the end of the audio sent, the server answers as
  upstream does since 2026: an ``error`` whose ``event_id`` is null, and then the truncate
  applied at the end of the audio (``conversation.item.truncated`` with that length).
- ``conversation.item.delete``: ``conversation.item.deleted``.

An unknown item id is upstream's ``item_retrieve_invalid_item_id``,
``item_truncate_invalid_item_id`` or ``item_delete_invalid_item_id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bargein.errors import InvalidSession
from bargein.sim.items import client_item, render_item

if TYPE_CHECKING:
    from bargein.sim.connection import Connection


def on_create(conn: Connection, event: dict[str, Any]) -> None:
    try:
        item = client_item(event.get("item"), conn.api, conn.ids("item"))
    except InvalidSession as exc:
        conn.out.error(exc.code, str(exc), exc.param, event)
        return
    if item.id in conn.items:
        conn.out.error(
            "duplicate_item_id",
            f"Item with id '{item.id}' already exists in the conversation.",
            "item.id",
            event,
        )
        return
    after = event.get("previous_item_id")
    if after is not None and after != "root" and after not in conn.items:
        conn.out.error("item_not_found",
                       f"Item with id '{after}' not found: cannot insert after it.",
                       "previous_item_id", event)
        return
    if after is None:
        conn.add_item(item, next(reversed(conn.items), None))
        return
    order = list(conn.items.items())
    at = 0 if after == "root" else [key for key, _ in order].index(after) + 1
    order.insert(at, (item.id, item))
    conn.items.clear()
    conn.items.update(order)
    conn.announce(item, None if after == "root" else after)


def _missing(conn: Connection, event: dict[str, Any], verb: str) -> None:
    """Upstream's error for an unknown item: ``item_{verb}_invalid_item_id`` (clients such as
    pipecat match on the code, and on the ``event_id`` of their request)."""
    noun = {"retrieve": "retrieving", "truncate": "truncating", "delete": "deleting"}[verb]
    conn.out.error(f"item_{verb}_invalid_item_id",
                   f"Error {noun} item: the item with id '{event.get('item_id')}' does not exist.",
                   "item_id", event)


def on_retrieve(conn: Connection, event: dict[str, Any]) -> None:
    item = conn.items.get(str(event.get("item_id")))
    if item is None:
        _missing(conn, event, "retrieve")
        return
    conn.out.emit({"type": "conversation.item.retrieved", "item": render_item(item)})


def on_truncate(conn: Connection, event: dict[str, Any]) -> None:
    item = conn.items.get(str(event.get("item_id")))
    end = event.get("audio_end_ms")
    if item is None:
        _missing(conn, event, "truncate")
        return
    if item.kind != "message" or item.role != "assistant":
        conn.out.error("invalid_value", "Only assistant messages can be truncated.", "item_id",
                       event)
    elif event.get("content_index") != 0:
        conn.out.error("invalid_value", "content_index must be 0.", "content_index", event)
    elif isinstance(end, bool) or not isinstance(end, int) or end < 0:
        conn.out.error("invalid_value", "audio_end_ms must be a non-negative integer.",
                       "audio_end_ms", event)
    else:
        sent_ms = item.audio_ms
        if end > sent_ms:
            conn.out.error("invalid_value",
                           f"Audio content of {sent_ms}ms is already shorter than {end}ms.",
                           "audio_end_ms")  # as upstream: no event_id, and then applied
            end = sent_ms
        item.heard_ms = end
        for part in item.content:
            if "transcript" in part:
                part["transcript"] = ""
        conn.out.emit({"type": "conversation.item.truncated", "item_id": item.id,
                       "content_index": 0, "audio_end_ms": end})


def on_delete(conn: Connection, event: dict[str, Any]) -> None:
    item_id = str(event.get("item_id"))
    if conn.items.pop(item_id, None) is None:
        _missing(conn, event, "delete")
        return
    conn.out.emit({"type": "conversation.item.deleted", "item_id": item_id})
