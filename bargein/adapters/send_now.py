"""Writing a text frame at once on a ``websockets`` asyncio connection, when that is safe.

``Connection.send()`` wraps each frame in a context manager and a drain: an ``async``
call, so a caller on the audio path (or a server emitting an event) pays a task switch and
the context manager's bookkeeping per frame. When the connection is open and its write
buffer is empty the drain has nothing to wait for, and the frame can go onto the socket
in the call that made it, as ``send()`` itself writes it. Otherwise the caller falls back
to ``send()``, whose errors say what happened. The client's transport (a microphone frame
per 20 ms) and the simulator (its server events) share this one rule.
"""

from __future__ import annotations

from websockets.asyncio.connection import Connection
from websockets.protocol import State


def can_send_now(ws: Connection) -> bool:
    """``ws`` is open and nothing waits in its write buffer: ``send_text`` may write now.
    (Asked first, so a frame that cannot go now is not encoded twice: encoding G.711
    moves the microphone's resampler on.)"""
    return (ws.protocol.state is State.OPEN and not ws.transport.is_closing()
            and not ws.transport.get_write_buffer_size())


def send_text(ws: Connection, data: bytes) -> None:
    """Write ``data`` (UTF-8 JSON) as one text frame, as ``send()`` writes it; only after
    ``can_send_now(ws)`` said yes, in the same turn of the event loop."""
    ws.protocol.send_text(data)
    ws.send_data()
