"""Shared helpers of the simulator tests: a validating config, test audio and a raw client."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import ssl
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import numpy as np
from websockets.asyncio.client import ClientConnection, connect

from bargein.core.pcm import BYTES_PER_MS, RATE
from bargein.sim import SimConfig, Simulator
from tests.support.wire_models import validate_client_event, validate_server_event


def sim_config(**changes: Any) -> SimConfig:
    """Fast synthetic replies, first audio at once; every event the simulator sends is checked
    against the SDK."""
    options: dict[str, Any] = {
        "voice": "synthetic",
        "speed": 50.0,
        "reply_latency_ms": 0.0,
        "on_event": validate_server_event,
    }
    options.update(changes)
    return SimConfig(**options)


@contextlib.asynccontextmanager
async def serving(*, tls: ssl.SSLContext | None = None, **changes: Any
                  ) -> AsyncIterator[Simulator]:
    """A running simulator with ``sim_config(**changes)`` (over TLS with ``tls``); fails if it
    sent an invalid event."""
    async with Simulator(sim_config(**changes), tls=tls) as sim:
        yield sim
    sim.check()


def tone(ms: int, dbfs: float = -12.0, rate: int = RATE) -> bytes:
    """A 220 Hz sine whose RMS level is ``dbfs``: 'speech' for an energy VAD."""
    t = np.arange(rate * ms // 1000) / rate
    amplitude = math.sqrt(2) * 32768 * 10 ** (dbfs / 20)
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()


def silence(ms: int, rate: int = RATE) -> bytes:
    return bytes(2 * rate * ms // 1000)


class Client:
    """A raw websockets client that keeps every server event it has read."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, url: str, headers: dict[str, str] | None = None) -> Client:
        return cls(await connect(url, additional_headers=headers))

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send(msgspec.json.encode(event).decode())

    async def append(self, audio: bytes, frame_bytes: int = 960) -> None:
        """Append audio in 20 ms (pcm16) frames, as fast as the socket takes them."""
        for start in range(0, len(audio), frame_bytes):
            chunk = base64.b64encode(audio[start : start + frame_bytes]).decode()
            await self.send({"type": "input_audio_buffer.append", "audio": chunk})

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        event = msgspec.json.decode(await asyncio.wait_for(self.ws.recv(), timeout))
        self.events.append(event)
        return dict(event)

    async def until(self, event_type: str, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Events read up to and including the next one of ``event_type``."""
        seen = []
        while True:
            event = await self.recv(timeout)
            seen.append(event)
            if event["type"] == event_type:
                return seen

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == event_type]

    async def close(self) -> None:
        await self.ws.close()


def audio_ms(
    events: list[dict[str, Any]], delta_type: str, bytes_per_ms: int = BYTES_PER_MS
) -> int:
    """Milliseconds of audio carried by the ``delta_type`` events among ``events``."""
    total = sum(len(base64.b64decode(e["delta"])) for e in events if e["type"] == delta_type)
    return total // bytes_per_ms


def check_client_events(sim: Simulator, api: str) -> None:
    """Every event any client sent ``sim`` validates against the official models (the record
    keeps appends without their audio, so a placeholder stands in for it)."""
    for record in sim.records:
        for event in record.received:
            payload = dict(event.event)
            if payload["type"] == "input_audio_buffer.append":
                payload["audio"] = ""
            validate_client_event(payload, api)


def first_sound(pcm: np.ndarray[Any, Any]) -> int:
    """Index of the first non-zero sample."""
    return int(np.flatnonzero(pcm)[0])
