"""bargein.sim: a local Realtime-protocol server to develop and test voice clients offline.

``async with Simulator(SimConfig(...)) as sim:`` serves on 127.0.0.1 (a free port) and
speaks the GA protocol, or beta to clients sending ``OpenAI-Beta: realtime=v1``.

The modules, from the socket inwards:

- ``server``: ``Simulator`` and ``serve()``; the handshake that admits a client or refuses
  it with an HTTP status; ``tls``: its certificate and key, to serve ``wss://``.
- ``connection``: one client's connection, its protocol state (settings, input clock,
  server VAD, conversation items), the dispatch of its client events, the session and
  response handlers; ``input_audio``: appends, the server VAD, commits, input
  transcription, the idle timeout; ``conversation_items``: item create, retrieve, truncate
  and delete.
- ``replies``: reply generation: planning a response (``script``: texts, tool calls,
  multi-item replies), streaming its items (spoken, written, function calls), ending it
  completed, cancelled, failed or incomplete; ``responses``: ``response.create``'s
  parameters and the response object; ``items``: conversation items as the APIs write
  them; ``usage``: token estimates and rate limits.
- ``sending``: pacing and sending: one ordered queue of server events per connection, the
  send loop where the wire faults happen, and the clock of a reply's chunks.
- ``settings``: the session settings and their GA and beta JSON (``session_fields``
  checks each field); ``config``: the
  simulator's options; ``faults``: what goes wrong, per connection; ``record``: what a
  connection did, for tests; ``voice``: what the assistant sounds like.
"""

from bargein.errors import SimError
from bargein.sim.config import DEFAULT_REPLY_LATENCY_MS, DEFAULT_SCRIPT, SimConfig
from bargein.sim.faults import PHASES, Faults
from bargein.sim.record import ConnectionRecord, RecordedEvent
from bargein.sim.script import Reply, ToolCall, parse_script
from bargein.sim.server import FAULTS_HEADER, FAULTS_PARAM, Simulator, serve

__all__ = [
    "DEFAULT_REPLY_LATENCY_MS",
    "DEFAULT_SCRIPT",
    "FAULTS_HEADER",
    "FAULTS_PARAM",
    "PHASES",
    "ConnectionRecord",
    "Faults",
    "RecordedEvent",
    "Reply",
    "SimConfig",
    "SimError",
    "Simulator",
    "ToolCall",
    "parse_script",
    "serve",
]
