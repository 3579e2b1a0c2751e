"""What only a terminal adds to ``bargein.connect()``: Ctrl-C and SIGTERM end the
conversation the orderly way (figures kept, files written, the connection closed with a
close frame), and the command then exits 130, as a shell expects of an interrupted program.
Opening the audio, connecting and knowing when the conversation is over are the library's
(``bargein.talk()``, in ``bargein.talking``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from typing import TextIO

from bargein.core.events import TalkPressed, TalkReleased
from bargein.errors import UsageError
from bargein.session import Session
from bargein.talking import Connecting

STOPPED = "stopped by the user"
"""The end reason of a conversation ended by Ctrl-C or SIGTERM."""
INTERRUPTED_EXIT = 130
"""The exit code of a command ended by Ctrl-C (128 + SIGINT)."""


async def hold(connecting: Connecting, announce: str = "") -> tuple[Session, str]:
    """Hold the conversation to its end, Ctrl-C and SIGTERM included; returns the closed
    session and why it ended (``STOPPED`` after a signal). ``announce`` is printed once the
    signals are in hand, so a Ctrl-C that follows it always ends the orderly way."""
    session = connecting.session
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, session.finish, STOPPED)
    try:
        if announce:
            print(announce, flush=True)
        async with connecting as live:
            reason = await live.wait()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    return session, reason


def exit_code(reason: str) -> int:
    """130 when the user stopped the conversation, 0 when it ended by itself."""
    return INTERRUPTED_EXIT if reason == STOPPED else 0


@contextlib.contextmanager
def push_to_talk_keys(session: Session, keys: TextIO | None = None) -> Iterator[None]:
    """Enter on standard input is the push-to-talk key: the first press takes the floor
    (``TalkPressed``), the next sends the turn (``TalkReleased``), and so on. A terminal
    tells no key going up, so the key toggles; the lines of a pipe work the same way (a
    script, a test). The end of the input releases a key still down."""
    stream = keys if keys is not None else sys.stdin
    loop = asyncio.get_running_loop()
    try:
        fd = stream.fileno()
        loop.add_reader(fd, lambda: None)
    except (OSError, ValueError):  # closed, or a file the event loop cannot watch
        raise UsageError("--turns push-to-talk reads its key (Enter) from standard input, "
                         "which must be a terminal or a pipe") from None
    down = False

    def toggle() -> None:
        nonlocal down
        data = os.read(fd, 4096)
        if not data:
            loop.remove_reader(fd)
            if down:
                down = False
                session.handle(TalkReleased())
            return
        for _ in range(data.count(b"\n")):
            down = not down
            session.handle(TalkPressed() if down else TalkReleased())
            print("talking: Enter sends the turn" if down else "sent: Enter to talk again",
                  flush=True)

    loop.add_reader(fd, toggle)
    try:
        yield
    finally:
        loop.remove_reader(fd)
