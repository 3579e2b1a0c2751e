"""bargein.sim: a local Realtime-protocol server to develop and test voice clients offline.

``async with Simulator(SimConfig(...)) as sim:`` serves on 127.0.0.1 (a free port) and
speaks the GA protocol, or beta to clients sending ``OpenAI-Beta: realtime=v1``.

The modules, from the socket inwards:

- ``server``: ``Simulator`` and ``serve()``; the handshake that admits a client or refuses
  it with an HTTP status.
- ``connection``: one client's connection, its protocol state (settings, input clock,
  server VAD, conversation items) and the handlers of its client events.
- ``replies``: reply generation: building responses and items, streaming a reply's
  transcript and audio, ending it completed, cancelled or failed.
- ``sending``: pacing and sending: one ordered queue of server events per connection, the
  send loop where the wire faults happen, and the clock of a reply's chunks.
- ``settings``: the session settings and their GA and beta JSON; ``config``: the
  simulator's options; ``faults``: what goes wrong, per connection; ``record``: what a
  connection did, for tests; ``voice``: what the assistant sounds like.
"""

from bargein.errors import SimError
from bargein.sim.config import DEFAULT_SCRIPT, SimConfig
from bargein.sim.faults import PHASES, Faults
from bargein.sim.record import ConnectionRecord, RecordedEvent
from bargein.sim.server import FAULTS_HEADER, FAULTS_PARAM, Simulator, serve

__all__ = [
    "DEFAULT_SCRIPT",
    "FAULTS_HEADER",
    "FAULTS_PARAM",
    "PHASES",
    "ConnectionRecord",
    "Faults",
    "RecordedEvent",
    "SimConfig",
    "SimError",
    "Simulator",
    "serve",
]
