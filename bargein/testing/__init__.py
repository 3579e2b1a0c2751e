"""Helpers for testing programs that embed bargein.

- ``feed(conversation, *events)``: drive the sans-IO core and collect its commands, the
  way bargein's own tests do.
- ``VirtualClock``, ``MemorySource``, ``MemorySink``: audio adapters on a clock you
  advance by hand; ``MemorySink.output()`` is what the user would have heard.
- ``VirtualTime``: that clock as a ``Session``'s time (``clock=time.now,
  sleep=time.sleep``); ``await time.advance(ms)`` moves it and lets every task it wakes run.
  No wall-clock time passes and no real sleep is needed, so a test is exact and fast.
- ``MemoryServer``: a Realtime server you script in memory; ``server.transport`` is the
  session's ``Transport``. ``await server.emit(*events)`` delivers core events (``reply()``
  and ``deltas()`` build a reply's), ``server.commands()`` is every command the session
  sent, in order; ``disconnect()``, ``reconnect()``, ``close()`` and ``fail()`` play the
  connection's life. ``MemoryServer(answer=True)`` answers cancels, truncations,
  deletions and ``session.update`` as the real server does.
- ``machine_tests(table)``: generated tests for a state table, in one line
  (``test_my_machine = machine_tests(MY_TABLE)``): ``explore()`` finds shortest event
  sequences that reach every state and fire every edge, ``check_machine()`` runs them
  against the core and checks its promises (no stale audio, truncation within what was
  received, never stuck, well-formed cancels, truncates and timers).
- ``self_signed(directory)``: a certificate for loopback (``localhost``, ``127.0.0.1``,
  ``::1``), made with ``openssl``, to run the simulator over TLS
  (``Simulator(tls=certificate.server_context())``) and trust it in a client
  (``RealtimeTransport(..., ssl_context=certificate.client_context())``).
- ``capture_logs()``: bargein's log events while a block runs, as dicts, like structlog's
  ``capture_logs`` (bargein's loggers are its own, so structlog's does not see them).
- ``realtime_sim``: a pytest fixture (a running simulator, real sockets) from
  ``bargein.pytest_plugin``, registered as a pytest plugin wherever bargein is installed.

A whole barge-in, deterministic, with no socket and no sleep::

    time, server = VirtualTime(), MemoryServer()
    source, sink = MemorySource(time.clock), MemorySink(time.clock)
    async with Session(server.transport, source, sink, clock=time.now, sleep=time.sleep):
        await server.emit(SessionReady(interrupt_response=True))
        await server.emit(*reply("resp_1", "item_1", ms=2000, done=False))
        await time.advance(500)                      # 500 ms of the reply play
        await server.emit(SpeechStarted("item_u1", audio_start_ms=500))
    (truncate,) = server.commands(TruncateItem)
    assert truncate.audio_end_ms == 515  # played, in the device's buffer, and the fade
"""

from bargein.adapters.audio.memory import MemorySink, MemorySource, VirtualClock
from bargein.core import Conversation
from bargein.core.commands import Command
from bargein.core.events import Event
from bargein.logs import capture as capture_logs
from bargein.testing.certificates import SelfSigned, self_signed
from bargein.testing.explore import (
    EventPath,
    Exploration,
    check_machine,
    explore,
    machine_tests,
)
from bargein.testing.memory_server import MemoryServer, MemoryTransport, deltas, reply, tone
from bargein.testing.virtual_time import VirtualTime, settle


def feed(conversation: Conversation, *events: Event) -> list[Command]:
    """Every command ``conversation`` emits for ``events``, in order."""
    return [command for event in events for command in conversation.handle(event)]


__all__ = [
    "EventPath",
    "Exploration",
    "MemoryServer",
    "MemorySink",
    "MemorySource",
    "MemoryTransport",
    "SelfSigned",
    "VirtualClock",
    "VirtualTime",
    "capture_logs",
    "check_machine",
    "deltas",
    "explore",
    "feed",
    "machine_tests",
    "reply",
    "self_signed",
    "settle",
    "tone",
]
