"""Tools for a train-times assistant, one per barge-in policy::

    bargein sim --script examples/tools_script.txt &
    bargein talk --url ws://127.0.0.1:8765/v1 --tools examples.tools:TOOLS

- ``departure`` (``cancel``, the default): a lookup; a barge-in over the reply that asked
  for it cancels it, and nobody misses its answer.
- ``book_seat`` (``hold``): a booking is not undone because the user spoke; its confirmation
  waits until the model has answered the interruption, then is taken up.
- ``send_ticket`` (``finish``): it runs to its end, and its output is sent at once; the
  reply to the user sees it.

Every call is recorded in ``CALLS`` (name, arguments), so a test can tell which ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bargein.tools import Tool, tool

CALLS: list[tuple[str, dict[str, object]]] = []
"""Every call any of these tools received, in order."""

BOOKING_S = 0.0
"""How long ``book_seat`` takes (a test sets it to have a booking still running)."""


def departure(city: str) -> str:
    """When the next train to a city leaves."""
    CALLS.append(("departure", {"city": city}))
    return "6:30 from platform four"


async def book_seat(train: str, seat: str = "window") -> str:
    """Book a seat on a train."""
    CALLS.append(("book_seat", {"train": train, "seat": seat}))
    await asyncio.sleep(BOOKING_S)
    return f"seat {seat} on the {train} is booked"


def send_ticket(email: str) -> str:
    """Email the ticket."""
    CALLS.append(("send_ticket", {"email": email}))
    return f"ticket sent to {email}"


TOOLS: list[Tool | Callable[..., Any]] = [
    departure,
    tool(book_seat, on_barge_in="hold"),
    tool(send_ticket, on_barge_in="finish"),
]
