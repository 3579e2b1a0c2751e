"""bargein.sim: a local Realtime-protocol server to develop and test voice clients offline.

``async with Simulator(SimConfig(...)) as sim:`` serves on 127.0.0.1 (a free port) and
speaks the GA protocol, or beta to clients sending ``OpenAI-Beta: realtime=v1``.
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
