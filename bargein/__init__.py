"""bargein: realtime voice conversations where interruption is a tested state transition.

Everything a program needs is importable from here (``from bargein import Session``). The
names are loaded on first use, so ``import bargein`` itself costs next to nothing: the
objects live in the layers listed in the README ("How it is built").
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
"""The package's version; ``pyproject.toml`` reads it from here."""

_EXPORTS: dict[str, str] = {
    # a whole conversation in one call
    "talk": "bargein.talking",
    "connect": "bargein.talking",
    "Connecting": "bargein.talking",
    # the runtime
    "Session": "bargein.session",
    "Transport": "bargein.session",
    # what a session reports
    "Observation": "bargein.session",
    "Observer": "bargein.session",
    "StateChanged": "bargein.session",
    "Transcript": "bargein.session",
    "Interrupted": "bargein.session",
    "Heard": "bargein.session",
    "Reconnected": "bargein.session",
    "ServerEvent": "bargein.session",
    "Closed": "bargein.session",
    "ResponseFigures": "bargein.session",
    "split_heard": "bargein.session",
    # the core and its machine
    "Conversation": "bargein.core",
    "ConversationStats": "bargein.core",
    "TransitionRecord": "bargein.core",
    "DEFAULT_TABLE": "bargein.states",
    "State": "bargein.states",
    "StateTable": "bargein.states",
    "Transition": "bargein.states",
    "after": "bargein.states",
    "check_table": "bargein.states.check",
    # extending the machine: the program's events, actions, timers
    "UserEvent": "bargein.core.events",
    "Signal": "bargein.core.events",
    "TimerFired": "bargein.core.events",
    "ActionContext": "bargein.core.actions",
    "StartTimer": "bargein.core.commands",
    "CancelTimer": "bargein.core.commands",
    # the connection
    "RealtimeTransport": "bargein.adapters.transport",
    "ReconnectPolicy": "bargein.adapters.transport",
    "endpoints": "bargein.adapters.endpoints",
    "Endpoint": "bargein.adapters.endpoints",
    "ApiKey": "bargein.adapters.secrets",
    "SessionConfig": "bargein.adapters.session_config",
    "ServerVad": "bargein.adapters.session_config",
    "SemanticVad": "bargein.adapters.session_config",
    "ClientVad": "bargein.adapters.session_config",
    "PushToTalk": "bargein.adapters.session_config",
    "Tool": "bargein.tools",
    "tool": "bargein.tools",
    # audio
    "PyAudioMicrophone": "bargein.adapters.audio.pyaudio_mic",
    "PyAudioSpeaker": "bargein.adapters.audio.pyaudio_speaker",
    "PulseSpeaker": "bargein.adapters.audio.pulse_speaker",
    "open_speaker": "bargein.adapters.audio.speaker",
    "WavSource": "bargein.adapters.audio.wav",
    "WavSink": "bargein.adapters.audio.wav",
    "MemorySource": "bargein.adapters.audio.memory",
    "MemorySink": "bargein.adapters.audio.memory",
    "VirtualClock": "bargein.adapters.audio.memory",
    "AudioDevice": "bargein.adapters.audio.devices",
    "list_devices": "bargein.adapters.audio.devices",
    # looking at a conversation as it runs
    "Inspector": "bargein.inspector",
    # errors
    "BargeinError": "bargein.errors",
}
"""Public name -> the module that defines it."""

__all__ = [
    "DEFAULT_TABLE",
    "ActionContext",
    "ApiKey",
    "AudioDevice",
    "BargeinError",
    "CancelTimer",
    "ClientVad",
    "Closed",
    "Connecting",
    "Conversation",
    "ConversationStats",
    "Endpoint",
    "Heard",
    "Inspector",
    "Interrupted",
    "MemorySink",
    "MemorySource",
    "Observation",
    "Observer",
    "PulseSpeaker",
    "PushToTalk",
    "PyAudioMicrophone",
    "PyAudioSpeaker",
    "RealtimeTransport",
    "ReconnectPolicy",
    "Reconnected",
    "ResponseFigures",
    "SemanticVad",
    "ServerEvent",
    "ServerVad",
    "Session",
    "SessionConfig",
    "Signal",
    "StartTimer",
    "State",
    "StateChanged",
    "StateTable",
    "TimerFired",
    "Tool",
    "Transcript",
    "Transition",
    "TransitionRecord",
    "Transport",
    "UserEvent",
    "VirtualClock",
    "WavSink",
    "WavSource",
    "__version__",
    "after",
    "check_table",
    "connect",
    "endpoints",
    "list_devices",
    "open_speaker",
    "split_heard",
    "talk",
    "tool",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bargein' has no attribute {name!r}")
    if name == "endpoints":
        value: Any = importlib.import_module(module)
    else:
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from bargein.adapters import endpoints
    from bargein.adapters.audio.devices import AudioDevice, list_devices
    from bargein.adapters.audio.memory import MemorySink, MemorySource, VirtualClock
    from bargein.adapters.audio.pulse_speaker import PulseSpeaker
    from bargein.adapters.audio.pyaudio_mic import PyAudioMicrophone
    from bargein.adapters.audio.pyaudio_speaker import PyAudioSpeaker
    from bargein.adapters.audio.speaker import open_speaker
    from bargein.adapters.audio.wav import WavSink, WavSource
    from bargein.adapters.endpoints import Endpoint
    from bargein.adapters.secrets import ApiKey
    from bargein.adapters.session_config import (
        ClientVad,
        PushToTalk,
        SemanticVad,
        ServerVad,
        SessionConfig,
    )
    from bargein.adapters.transport import RealtimeTransport, ReconnectPolicy
    from bargein.core import Conversation, ConversationStats, TransitionRecord
    from bargein.core.actions import ActionContext
    from bargein.core.commands import CancelTimer, StartTimer
    from bargein.core.events import Signal, TimerFired, UserEvent
    from bargein.errors import BargeinError
    from bargein.inspector import Inspector
    from bargein.session import (
        Closed,
        Heard,
        Interrupted,
        Observation,
        Observer,
        Reconnected,
        ResponseFigures,
        ServerEvent,
        Session,
        StateChanged,
        Transcript,
        Transport,
        split_heard,
    )
    from bargein.states import DEFAULT_TABLE, State, StateTable, Transition, after
    from bargein.states.check import check_table
    from bargein.talking import Connecting, connect, talk
    from bargein.tools import Tool, tool
