"""One job, four clients, one run: CPU per second of conversation against the simulator.

The job, the same for every client: N concurrent sessions, each streaming its microphone in
20 ms frames at real time for ``--seconds``: 600 ms of speech every 6 s (the server's VAD
ends the turn and the simulator speaks a ~3 s reply, paced at real time), and on every
other cycle 600 ms more at 2.4 s, over the reply, so the server cancels it and the client
stops its playback and truncates. Every client decodes the reply's audio and "plays" it
into memory.

- ``bargein``: ``bargein.Session`` over ``RealtimeTransport``, a ``MemorySource`` and a
  ``MemorySink`` (keeping 10 s) on one ``VirtualClock`` that a 20 ms ticker keeps at the
  wall's pace, as a sound card's callback would: the library as an embedder runs it.
- ``bare``: websockets + msgspec + pybase64, the least a client can do (the seed article's
  recipe: truncate at the milliseconds received since the item's first delta).
- ``sdk``: the official ``openai`` SDK's realtime connection (typed events), same recipe.
- ``agents``: openai-agents' ``RealtimeRunner`` (its own playback tracker and truncate).

Each client runs in a process of its own; the simulator (``bargein.sim.serve``) in another,
so only the client's CPU is counted: ``process_time`` over the measured window, beside the
wall time, per session-second. Mic lateness is how late each frame left against its
schedule (p95). Rounds interleave the clients; the table shows medians.

    .venv/bin/python bench/bench_clients.py [--sessions N] [--seconds S] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from sim_process import start_sim, stop_sim

if TYPE_CHECKING:  # bargein is imported by bargein's runner only, not by the other clients'
    from bargein.adapters.audio.memory import MemorySource
    from bargein.adapters.audio.protocols import AudioFrame
    from bargein.core import commands as c
    from bargein.core import events as e
    from bargein.session import Transport

FRAME_MS = 20
CYCLE_MS = 6000
SPEECH = ((0, 600), (2400, 3000))  # the second only on odd cycles: a barge-in
WARMUP_S = 3.0
REPLY = ("Here is a reply long enough to talk over: the harbour, the boats, the weather "
         "and the lighthouse, all in a few seconds.")
CLIENTS = ("bare", "bargein", "sdk", "agents")
SETTINGS = {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300,
                               "interrupt_response": True, "create_response": True}}

def mic_pcm(seconds: float) -> bytes:
    """The whole run's microphone: a 220 Hz voice where ``SPEECH`` says, silence elsewhere."""
    total = int(seconds * 24_000)
    pcm = np.zeros(total, dtype=np.int16)
    tone = (8000 * np.sin(2 * np.pi * 220 * np.arange(total) / 24_000)).astype(np.int16)
    for cycle, start in enumerate(range(0, int(seconds * 1000), CYCLE_MS)):
        for index, (a, b) in enumerate(SPEECH):
            if index and cycle % 2 == 0:
                continue
            lo, hi = (start + a) * 24, min((start + b) * 24, total)
            pcm[lo:hi] = tone[lo:hi]
    return pcm.astype("<i2").tobytes()


class Meter:
    """The measured window, and the lateness of each frame sent in it."""

    def __init__(self) -> None:
        self.late_ms: list[float] = []
        self.replies = 0
        self.barge_ins = 0
        self.measuring = False

    def frame_sent(self, due: float) -> None:
        if self.measuring:
            self.late_ms.append((time.perf_counter() - due) * 1000)


class DueSource:
    """A ``MemorySource`` whose frames remember when they were due (their end captured)."""

    def __init__(self, source: MemorySource, zeros: list[float], group: int,
                 due: dict[int, tuple[bytes, float]]) -> None:
        self._source, self._zeros, self._group, self._due = source, zeros, group, due

    def _noted(self, frame: AudioFrame) -> AudioFrame:
        due = self._due
        # zeros[group]: the wall time the group's clock started from
        due[id(frame.pcm)] = (frame.pcm,
                              self._zeros[self._group] + (frame.captured_at_ms + FRAME_MS) / 1000)
        if len(due) > 512:  # frames the core dropped (before the session was ready)
            for key in list(due)[:256]:
                del due[key]
        return frame

    async def deliver(self, on_frame: Callable[[AudioFrame], None]) -> None:
        """What a session takes frames by (``Delivering``), with the source's."""
        await self._source.deliver(lambda frame: on_frame(self._noted(frame)))

    async def frames(self) -> AsyncIterator[AudioFrame]:
        """For an older bargein (``--trees``), whose sources and session only iterate."""
        async for frame in self._source.frames():
            yield self._noted(frame)

    def close(self) -> None:
        self._source.close()


class TimedTransport:
    """A transport that notes when each mic frame was sent, against when it was due.
    It delivers events (``bargein.session.DeliversEvents``) when the inner transport does."""

    deliver: Callable[[Callable[[e.Event], None]], Awaitable[None]]

    def __init__(self, inner: Transport, due: dict[int, tuple[bytes, float]],
                 meter: Meter) -> None:
        from bargein.core.commands import SendAudio

        self._inner, self._due, self._meter = inner, due, meter
        self._send_audio = SendAudio
        self._inner_send_now: Callable[[c.ServerCommand], bool] | None = getattr(
            inner, "send_now", None)  # an older tree's transport has none
        deliver = getattr(inner, "deliver", None)
        if deliver is not None:  # an older tree's has none either: the session iterates
            self.deliver = deliver

    def events(self) -> AsyncIterator[e.Event]:
        return self._inner.events()

    async def send(self, command: c.ServerCommand) -> None:
        await self._inner.send(command)
        self._sent(command)

    def send_now(self, command: c.ServerCommand) -> bool:
        """The inner transport's ``send_now`` where it has one."""
        send_now = self._inner_send_now
        if send_now is None or not send_now(command):
            return False
        self._sent(command)
        return True

    def _sent(self, command: c.ServerCommand) -> None:
        if isinstance(command, self._send_audio):
            entry = self._due.pop(id(command.audio), None)
            if entry is not None and entry[0] is command.audio:
                self._meter.frame_sent(entry[1])

    async def close(self) -> None:
        await self._inner.close()


async def paced_frames(pcm: bytes, meter: Meter, send: Callable[[bytes], Awaitable[None]]) -> None:
    """Send ``pcm`` in 20 ms frames, each when its time has come (never early)."""
    start, step = time.perf_counter(), FRAME_MS * 48
    for n, offset in enumerate(range(0, len(pcm), step)):
        due = start + (n + 1) * FRAME_MS / 1000
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        await send(pcm[offset:offset + step])
        meter.frame_sent(due)


class Recipe:
    """The seed article's playback bookkeeping, shared by the bare and the SDK clients."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.played = bytearray()
        self.item: str | None = None
        self.first_at = 0.0

    def delta(self, item_id: str, audio: bytes) -> None:
        if item_id != self.item:
            self.item, self.first_at = item_id, time.perf_counter()
        self.played += audio
        del self.played[:-480_000]  # the last 10 s, as bargein's sink keeps

    def speech_started(self) -> dict[str, Any] | None:
        if self.item is None:
            return None
        self.meter.barge_ins += 1
        end_ms = int((time.perf_counter() - self.first_at) * 1000)
        self.played.clear()
        item, self.item = self.item, None
        return {"type": "conversation.item.truncate", "item_id": item, "content_index": 0,
                "audio_end_ms": end_ms}


async def run_bare(url: str, pcm: bytes, meter: Meter) -> None:
    import msgspec
    import pybase64
    from websockets.asyncio.client import connect

    recipe = Recipe(meter)
    async with connect(f"{url}/realtime?model=gpt-realtime", compression=None,
                       max_size=2**24) as ws:
        await ws.send(json.dumps({"type": "session.update", "session": {
            "type": "realtime", "audio": {"input": SETTINGS}}}))

        async def send(frame: bytes) -> None:
            await ws.send(msgspec.json.encode({"type": "input_audio_buffer.append",
                                               "audio": pybase64.b64encode(frame).decode()}))

        async def receive() -> None:
            async for raw in ws:
                event = msgspec.json.decode(raw)
                kind = event["type"]
                if kind == "response.output_audio.delta":
                    recipe.delta(event["item_id"], pybase64.b64decode(event["delta"]))
                elif kind == "input_audio_buffer.speech_started":
                    truncate = recipe.speech_started()
                    if truncate is not None:
                        await ws.send(msgspec.json.encode(truncate))
                elif kind == "response.done":
                    meter.replies += 1

        reader = asyncio.create_task(receive())
        await paced_frames(pcm, meter, send)
        reader.cancel()


async def run_sdk(url: str, pcm: bytes, meter: Meter) -> None:
    from openai import AsyncOpenAI

    recipe = Recipe(meter)
    client = AsyncOpenAI(api_key="sk-sim", websocket_base_url=url)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        session: Any = {"type": "realtime", "audio": {"input": SETTINGS}}
        await conn.session.update(session=session)

        async def send(frame: bytes) -> None:
            await conn.input_audio_buffer.append(audio=base64.b64encode(frame).decode())

        async def receive() -> None:
            async for event in conn:
                if event.type == "response.output_audio.delta":
                    recipe.delta(event.item_id, base64.b64decode(event.delta))
                elif event.type == "input_audio_buffer.speech_started":
                    truncate = recipe.speech_started()
                    if truncate is not None:
                        await conn.conversation.item.truncate(
                            item_id=truncate["item_id"], content_index=0,
                            audio_end_ms=truncate["audio_end_ms"])
                elif event.type == "response.done":
                    meter.replies += 1

        reader = asyncio.create_task(receive())
        await paced_frames(pcm, meter, send)
        reader.cancel()


async def run_agents(url: str, pcm: bytes, meter: Meter) -> None:
    from agents import set_tracing_disabled
    from agents.realtime import RealtimeAgent, RealtimeRunConfig, RealtimeRunner

    set_tracing_disabled(True)
    runner = RealtimeRunner(RealtimeAgent(name="bench", instructions="Answer."),
                            config=RealtimeRunConfig(model_settings=SETTINGS))  # type: ignore[typeddict-item]
    session = await runner.run(model_config={"url": f"{url}/realtime?model=gpt-realtime",
                                             "api_key": "sk-sim"})
    played = bytearray()
    async with session:
        async def receive() -> None:
            async for event in session:
                if event.type == "audio":
                    played.extend(event.audio.data)
                    del played[:-480_000]
                elif event.type == "audio_interrupted":
                    meter.barge_ins += 1
                    played.clear()
                elif event.type == "agent_end":
                    meter.replies += 1

        reader = asyncio.create_task(receive())
        await paced_frames(pcm, meter, session.send_audio)
        reader.cancel()


async def run_bargein_all(url: str, pcm: bytes, meters: list[Meter]) -> None:
    """bargein's sessions share one clock, advanced every 20 ms as a sound card would; a
    frame's lateness is taken when the transport has sent it (``TimedTransport``)."""
    from bargein import RealtimeTransport, ServerVad, Session, SessionConfig, endpoints
    from bargein.adapters.audio.memory import MemorySink, MemorySource, VirtualClock
    from bargein.core import events as e
    from bargein.session import Interrupted, Observation

    clock = VirtualClock()
    zeros = [0.0]  # the wall time the clock started from, set as the ticker starts
    sessions: list[Session] = []
    for meter in meters:
        transport = RealtimeTransport(endpoints.custom(url, auth="none"), None)
        await transport.connect()
        due: dict[int, tuple[bytes, float]] = {}
        session = Session(TimedTransport(transport, due, meter),
                          DueSource(MemorySource(clock, pcm), zeros, 0, due),
                          MemorySink(clock, keep_ms=10_000),
                          clock=lambda: clock.ms / 1000, linger_s=None)

        def count(o: Observation, m: Meter = meter) -> None:
            if isinstance(o, Interrupted):
                m.barge_ins += 1

        session.subscribe(count)
        await session.__aenter__()
        session.handle(e.ConfigureSession(SessionConfig(turn_detection=ServerVad(
            silence_duration_ms=300, interrupt_response=True, create_response=True))))
        sessions.append(session)
    start = zeros[0] = time.perf_counter()
    for n in range(len(pcm) // (FRAME_MS * 48)):
        due_at = start + (n + 1) * FRAME_MS / 1000
        await asyncio.sleep(max(0.0, due_at - time.perf_counter()))
        clock.advance_ms(FRAME_MS)
    for meter, session in zip(meters, sessions, strict=True):
        meter.replies = sum(1 for f in session.figures.values() if f.status)
        await session.close()


async def child(kind: str, url: str, sessions: int, seconds: float) -> dict[str, Any]:
    pcm = mic_pcm(seconds + WARMUP_S)
    meters = [Meter() for _ in range(sessions)]

    async def measure() -> tuple[float, float]:
        await asyncio.sleep(WARMUP_S)
        for meter in meters:
            meter.measuring = True
        return time.process_time(), time.perf_counter()

    window = asyncio.create_task(measure())
    if kind == "bargein":
        await run_bargein_all(url, pcm, meters)
    else:
        run = {"bare": run_bare, "sdk": run_sdk, "agents": run_agents}[kind]
        await asyncio.gather(*(run(url, pcm, m) for m in meters))
    cpu0, wall0 = await window
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    late = sorted(x for m in meters for x in m.late_ms)
    return {"cpu_ms_per_s": cpu * 1000 / (sessions * wall), "wall_s": wall,
            "late_p95_ms": late[int(0.95 * (len(late) - 1))] if late else float("nan"),
            "replies": sum(m.replies for m in meters),
            "barge_ins": sum(m.barge_ins for m in meters)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=24.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", default=",".join(CLIENTS),
                        help="comma-separated; bargein@DIR runs bargein from DIR (say, a "
                             "`git archive` of an older commit), for before/after in one run")
    parser.add_argument("--child", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import logging
        logging.disable(logging.CRITICAL)  # the library is quiet; the SDKs log at will
        print(json.dumps(asyncio.run(child(args.child, args.url, args.sessions, args.seconds))))
        return
    server, url = start_sim(REPLY, reply_latency_ms=200, keep_records=False)
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in args.clients.split(",")}
    try:
        for _ in range(args.rounds):
            for kind in results:
                client, _, tree = kind.partition("@")
                env = {**os.environ, "PYTHONWARNINGS": "ignore"}
                if tree:
                    env["PYTHONPATH"] = os.path.abspath(tree)
                out = subprocess.run(
                    [sys.executable, __file__, "--child", client, "--url", url, "--sessions",
                     str(args.sessions), "--seconds", str(args.seconds)],
                    capture_output=True, text=True, check=False, env=env)
                if out.returncode != 0:
                    print(f"{kind}: failed: {out.stderr.strip().splitlines()[-1:]}")
                    continue
                results[kind].append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        stop_sim(server)
    print(f"{args.sessions} sessions x {args.seconds:g} s, {args.rounds} rounds, medians; "
          "CPU of the client process only (the simulator runs apart)")
    width = max(10, *(len(k) for k in results))
    print(f"{'client':{width}} {'cpu ms/session-s':>17} {'wall s':>7} {'mic late p95 ms':>16} "
          f"{'replies':>8} {'barge-ins':>10}")
    base = statistics.median(r["cpu_ms_per_s"] for r in results.get("bare", [])) \
        if results.get("bare") else None
    for kind, runs in results.items():
        if not runs:
            continue
        cpu = statistics.median(r["cpu_ms_per_s"] for r in runs)
        ratio = f"  ({cpu / base:.2f}x bare)" if base else ""
        print(f"{kind:{width}} {cpu:17.2f} {statistics.median(r['wall_s'] for r in runs):7.1f} "
              f"{statistics.median(r['late_p95_ms'] for r in runs):16.1f} "
              f"{statistics.median(r['replies'] for r in runs):8.0f} "
              f"{statistics.median(r['barge_ins'] for r in runs):10.0f}{ratio}")


if __name__ == "__main__":
    main()
