"""What only a terminal adds to ``bargein.connect()``: Ctrl-C and SIGTERM end the
conversation the orderly way (figures kept, files written, the connection closed with a
close frame), and the command then exits 130, as a shell expects of an interrupted program.
Opening the audio, connecting and knowing when the conversation is over are the library's
(``bargein.talk()``, in ``bargein.talking``).
"""

from __future__ import annotations

import asyncio
import signal

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
