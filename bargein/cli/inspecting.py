"""``bargein talk --inspect``: the live inspector (``bargein.inspector``) for the command line.

``--inspect`` serves the page on 127.0.0.1 (a free port, or ``--inspect-port``) and prints
one line with its URL; ``--inspect-jsonl FILE`` writes the same records as JSON lines (with
or without the page); ``--inspect-wait`` holds the conversation back until the page is
open, so that nothing is missed. There is no host option: the inspector serves this machine
only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # both load on use: `bargein diagram` need not import a web server
    from bargein.inspector import Inspector
    from bargein.session import Session


def add_options(parser: argparse.ArgumentParser) -> None:
    """The ``--inspect*`` options of ``bargein talk``."""
    parser.add_argument("--inspect", action="store_true",
                        help="serve a live page of the conversation (its state diagram, "
                             "events and figures) on 127.0.0.1 and print its URL")
    parser.add_argument("--inspect-port", type=_port, metavar="PORT",
                        help="the inspector's port (default: a free one); implies --inspect")
    parser.add_argument("--inspect-jsonl", metavar="FILE",
                        help="write the inspector's records (machine, state changes with "
                             "their edges and reasons, transcripts, barge-ins, figures) to "
                             "FILE as JSON lines")
    parser.add_argument("--inspect-wait", action="store_true",
                        help="start the conversation only once the inspector page is open; "
                             "implies --inspect")


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {port}")
    return port


@contextlib.asynccontextmanager
async def inspecting(args: argparse.Namespace, session: Session
                     ) -> AsyncIterator[Inspector | None]:
    """The inspector the options ask for, showing ``session``, for the block; None if none.

    With ``--inspect-wait`` it enters once a page is open, or once Ctrl-C or SIGTERM has
    ended the session while waiting (``hold()`` then returns at once, as stopped)."""
    serving = bool(args.inspect or args.inspect_port is not None or args.inspect_wait)
    if not serving and not args.inspect_jsonl:
        yield None
        return
    from bargein.inspector import Inspector

    inspector = Inspector(port=args.inspect_port or 0, jsonl=args.inspect_jsonl, serve=serving)
    try:
        await inspector.start()
    except BaseException:
        with contextlib.suppress(Exception):  # the audio is open already: close it in order
            await session.close()
        raise
    async with inspector:
        inspector.attach(session)
        if serving:
            later = "; the conversation starts when it is open" if args.inspect_wait else ""
            print(f"inspector: {inspector.url} (this machine only{later})", flush=True)
        if args.inspect_wait:
            await _until_watched(inspector, session)
        yield inspector


async def _until_watched(inspector: Inspector, session: Session) -> None:
    from bargein.cli.runner import STOPPED

    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, session.finish, STOPPED)
    watched = asyncio.ensure_future(inspector.viewer())
    ended = asyncio.ensure_future(session.wait())
    try:
        await asyncio.wait((watched, ended), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        for task in (watched, ended):
            task.cancel()
        for task in (watched, ended):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
