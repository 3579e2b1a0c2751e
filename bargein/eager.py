"""Run a coroutine on the caller's stack until it first has to wait.

The session sends a command where the core emits it (a microphone frame's handler, say)
rather than handing every command to its sender task. A send is usually no more than
encoding and a write into the socket's buffer, and that hand-over cost a task wake-up per
microphone frame (a future, a turn of the loop, a task step: about 5 us of CPU on these
machines), the largest single cost of a frame's path with hundreds of sessions in one
process. Only when a send has to wait (the socket's buffer is full) does the rest of it
go to a task, which awaits what ``start`` returns.

``asyncio``'s eager tasks (Python 3.12) run a coroutine the same way, but make a task for
every call, and bargein supports Python 3.11.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine, Generator
from typing import Any


def start(coro: Coroutine[Any, Any, None]) -> Awaitable[None] | None:
    """Run ``coro`` until it first suspends. None if it finished without suspending;
    otherwise an awaitable that finishes it when a task awaits it (the task's cancellation
    reaches ``coro``). An exception ``coro`` raises before suspending is raised here."""
    try:
        waits_on = coro.send(None)
    except StopIteration:
        return None
    return _Rest(coro, waits_on)


class _Rest:
    """The rest of a started coroutine: what it waits on is passed up to the awaiting task,
    and what the task sends or throws back is passed down, as ``await`` itself would."""

    __slots__ = ("_coro", "_waits_on")

    def __init__(self, coro: Coroutine[Any, Any, None], waits_on: Any) -> None:
        self._coro, self._waits_on = coro, waits_on

    def __await__(self) -> Generator[Any, Any, None]:
        coro, waits_on = self._coro, self._waits_on
        while True:
            try:
                value = yield waits_on
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # a cancellation, say: it is the coroutine's too
                try:
                    waits_on = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waits_on = coro.send(value)
                except StopIteration:
                    return
