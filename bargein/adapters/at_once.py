"""A ``websockets`` asyncio connection's messages, in and out, in the call that has them.

``Connection.send()`` wraps each frame in a context manager and a drain, and ``recv()``
hands each message over through a future that wakes the reading task: with hundreds of
connections in one process (the client's sessions, the simulator's), a task switch per
frame each way and websockets' general-purpose frame writer were a large share of a
frame's cost. Both sides of bargein, the client's transport (a microphone frame every
20 ms out, audio deltas in) and the simulator, use an ``AtOnce`` connection, which takes
the short way and falls back to websockets' own wherever that one has something to do:

- **out**: when the connection is open and its write buffer is empty, the drain has
  nothing to wait for, and a text frame goes onto the socket in the call that made it
  (``can_send_now``, then ``send_text_now``); otherwise the caller uses ``send()``, whose
  errors say what happened. The frame is written here, as RFC 6455 section 5.2 lays it out
  and as websockets would write it: one unfragmented text frame, masked on a client with a
  key from the system's random source, taken from a pool of 1,024 keys drawn at once (one
  ``os.urandom`` call per frame was a tenth of the client's frame cost). With an extension
  negotiated (compression), websockets writes it. (websockets' debug log of the frames it
  sends does not show the ones written here.)
- **in**: each whole message goes to the listener in the event loop's call that parsed it
  (``listen()``). A fragmented message, or a text frame that is not UTF-8, turns that off for
  the rest of the connection: from it on every message goes through ``recv()``, which
  assembles fragments and fails invalid UTF-8 with close code 1007, so messages keep their
  order and the protocol's rules stay websockets' own.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from typing import Final

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import Event, Side, State

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

Listener = Callable[[str | bytes], None]
"""Takes one message: ``str`` for a text frame, ``bytes`` for a binary one."""

_DATA_OPCODES: Final = frozenset({Opcode.TEXT, Opcode.BINARY})
_TEXT_FIN: Final = 0x81
_MASKED: Final = 0x80
_LENGTH_16: Final = struct.Struct("!BBH").pack
_LENGTH_64: Final = struct.Struct("!BBQ").pack
_MASK_POOL: Final = 4096
"""Bytes of masking keys drawn from ``os.urandom`` at a time: 1,024 frames' worth."""


class AtOnce(Connection):
    """websockets' connection with messages handed over where they are parsed and text
    frames written where they are made (mixed in before websockets' client or server
    connection; see the module's docstring)."""

    listener: Listener | None = None
    """Set by ``listen()`` while it runs."""
    listener_failed: Exception | None = None
    """What the listener raised: the connection was cut, and ``listen()`` raises it."""
    _masks: bytes = b""
    _mask_at: int = 0

    def can_send_now(self) -> bool:
        """Open, and nothing waits in the write buffer: ``send_text_now`` may write now.
        (Asked first, so a frame that cannot go now is not encoded twice: encoding G.711
        moves the microphone's resampler on.)"""
        protocol = self.protocol
        return (protocol.state is State.OPEN and not protocol.expect_continuation_frame
                and not self.transport.is_closing() and not self.transport.get_write_buffer_size())

    def send_text_now(self, data: bytes) -> None:
        """Write ``data`` (UTF-8) as one text frame; only after ``can_send_now()`` said yes,
        in the same turn of the event loop."""
        protocol = self.protocol
        if protocol.extensions:
            protocol.send_text(data)
            self.send_data()
            return
        size = len(data)
        mask = _MASKED if protocol.side is Side.CLIENT else 0
        if size < 126:
            head = bytes((_TEXT_FIN, mask | size))
        elif size < 65536:
            head = _LENGTH_16(_TEXT_FIN, mask | 126, size)
        else:
            head = _LENGTH_64(_TEXT_FIN, mask | 127, size)
        if mask:
            key = self._mask_key()
            self.transport.write(head + key + apply_mask(data, key))
        else:
            self.transport.write(head + data)

    def _mask_key(self) -> bytes:
        at = self._mask_at
        if at >= len(self._masks):
            self._masks, at = os.urandom(_MASK_POOL), 0
        self._mask_at = at + 4
        return self._masks[at : at + 4]

    async def listen(self, on_message: Listener) -> None:
        """Hand every message to ``on_message``, in order, until the connection closes:
        then raise ``ConnectionClosed`` as ``recv()`` does, or what ``on_message`` raised
        (the connection is then cut, and no message goes to it after)."""
        self.listener, self.listener_failed = on_message, None
        try:
            while self.listener_failed is None:
                message = await self.recv()  # only what the listener declined
                if self.listener_failed is None:
                    self._hand_over(on_message, message)
        except ConnectionClosed:
            if self.listener_failed is None:
                raise
        finally:
            self.listener = None
        failed = self.listener_failed
        assert failed is not None
        raise failed

    def process_event(self, event: Event) -> None:
        if (self.listener is not None and isinstance(event, Frame)
                and event.opcode in _DATA_OPCODES):
            message = _whole(event)
            if message is not None:
                self._hand_over(self.listener, message)
                return
            self.listener = None  # fragmented, or not UTF-8: recv() from here on
        super().process_event(event)

    def _hand_over(self, listener: Listener, message: str | bytes) -> None:
        try:
            listener(message)
        except Exception as exc:
            self.listener, self.listener_failed = None, exc
            self.transport.abort()


def _whole(frame: Frame) -> str | bytes | None:
    """The message of an unfragmented data frame; None for a fragment, or for text that is
    not UTF-8."""
    if not frame.fin:
        return None
    if frame.opcode is Opcode.BINARY:
        return bytes(frame.data)
    try:
        return str(frame.data, "utf-8")
    except UnicodeDecodeError:
        return None
