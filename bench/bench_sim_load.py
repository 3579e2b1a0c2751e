"""The SIMULATOR's own load figure (not bargein's client cost: see bench_session.py): how many
concurrent real-time sessions one simulator process serves before it falls behind.

The simulator runs in its own process through ``bargein.sim.serve`` (what ``bargein sim``
runs: replies paced exactly in real time, synthetic voice, no audio recording), except that a
reply starts as soon as its turn ends (``reply_latency_ms=0``: the model's thinking time the
simulator plays by default would count as lateness); this process plays the clients, with
its garbage collector off so that its own pauses are not counted as the server's lateness.
Every session streams 20 ms frames in real time, cycling 600 ms of speech and 2400 ms of
silence, so the server VAD ends a turn every 3 s and the simulator speaks a ~2 s reply in
100 ms audio deltas.

Lateness of a reply delta = its arrival - (when the client sent the input frame that ended
the turn + the delta's position in the reply). A step FALLS BEHIND when the p95 lateness of
reply audio exceeds 100 ms, when a turn goes unanswered, or when the client itself ticks
late (then the figure is the client's limit, not the server's, and is reported as such).
Steps grow until one falls behind; the whole run is bounded to under 3 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import math
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
from sim_process import cpu_s_of, start_sim, stop_sim
from websockets.asyncio.client import ClientConnection, connect

FRAME_MS = 20
CYCLE_MS = 3000
SPEECH_MS = 600
SILENCE_MS = 300  # the session's silence_duration_ms
REPLY = "Sure, here is a short answer for you, my friend."
STEPS = (50, 100, 200, 300, 400, 500, 600, 800)
WARMUP_S = 4.0
MEASURE_S = 9.0
BUDGET_S = 170.0
LATE_MS = 100.0

def _frame_message(speech: bool) -> str:
    t = np.arange(24 * FRAME_MS) / 24_000
    pcm = (8000 * np.sin(2 * np.pi * 220 * t)) if speech else np.zeros(t.size)
    audio = base64.b64encode(pcm.astype("<i2").tobytes()).decode()
    return msgspec.json.encode({"type": "input_audio_buffer.append", "audio": audio}).decode()


SPEECH_FRAME, SILENT_FRAME = _frame_message(True), _frame_message(False)


@dataclass
class Session:
    ws: ClientConnection
    phase_frames: int
    sent_at: dict[int, float] = field(default_factory=dict)  # input clock ms -> send time
    turn_end: float | None = None
    turns_ended: int = 0
    replies_started: int = 0
    lateness_ms: list[float] = field(default_factory=list)
    stop_lag_ms: list[float] = field(default_factory=list)
    reply_ms: float = 0.0
    measuring: bool = False


async def receive(session: Session) -> None:
    loop = asyncio.get_running_loop()
    async for message in session.ws:
        now = loop.time()
        event: dict[str, Any] = msgspec.json.decode(message)
        kind = event["type"]
        if kind == "input_audio_buffer.speech_stopped":
            ended_ms = math.ceil((event["audio_end_ms"] + SILENCE_MS) / FRAME_MS) * FRAME_MS
            session.turn_end = session.sent_at.get(ended_ms)
            session.reply_ms = 0.0
            if session.turn_end is not None and session.measuring:
                session.turns_ended += 1
                session.stop_lag_ms.append((now - session.turn_end) * 1000)
        elif kind == "response.output_audio.delta" and session.turn_end is not None:
            if session.reply_ms == 0.0 and session.measuring:
                session.replies_started += 1
            if session.measuring:
                due = session.turn_end + session.reply_ms / 1000
                session.lateness_ms.append((now - due) * 1000)
            session.reply_ms += len(event["delta"]) * 3 / 4 / 48


async def tick(sessions: list[Session], until: float, late: list[float]) -> None:
    """Send every session's next 20 ms frame each 20 ms, from one task (cheap client)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    frame = 0
    while (now := loop.time()) < until:
        due = start + frame * FRAME_MS / 1000
        if now < due:
            await asyncio.sleep(due - now)
        late.append((loop.time() - due) * 1000)
        clock_ms = (frame + 1) * FRAME_MS
        for session in sessions:
            in_cycle = ((frame + session.phase_frames) * FRAME_MS) % CYCLE_MS
            session.sent_at[clock_ms] = loop.time()
            await session.ws.send(SPEECH_FRAME if in_cycle < SPEECH_MS else SILENT_FRAME)
        frame += 1


async def run_step(url: str, count: int) -> dict[str, float]:
    config = {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {
                "input": {
                    "turn_detection": {
                        "type": "server_vad",
                        "silence_duration_ms": SILENCE_MS,
                        "prefix_padding_ms": 0,
                    }
                }
            },
        },
    }
    sessions = []
    for index in range(count):
        ws = await connect(f"{url}/realtime?model=bench", compression=None, max_size=None)
        await ws.send(msgspec.json.encode(config).decode())
        phase = (index * CYCLE_MS // count) // FRAME_MS
        sessions.append(Session(ws, phase))
    receivers = [asyncio.create_task(receive(s)) for s in sessions]
    loop = asyncio.get_running_loop()
    late: list[float] = []
    begin = loop.time()
    client_cpu = time.process_time()
    ticker = asyncio.create_task(tick(sessions, begin + WARMUP_S + MEASURE_S, late))
    await asyncio.sleep(WARMUP_S)
    for session in sessions:
        session.measuring = True
    warm = len(late)
    await ticker
    client_cpu = (time.process_time() - client_cpu) / (loop.time() - begin)
    await asyncio.sleep(1.0)
    for session in sessions:
        await session.ws.close()
    await asyncio.gather(*receivers, return_exceptions=True)
    lateness = sorted(x for s in sessions for x in s.lateness_ms)
    stops = sorted(x for s in sessions for x in s.stop_lag_ms)
    ticks = sorted(late[warm:])
    ended = sum(s.turns_ended for s in sessions)
    answered = sum(s.replies_started for s in sessions)
    return {
        "p50": _pct(lateness, 50),
        "p95": _pct(lateness, 95),
        "p99": _pct(lateness, 99),
        "stop_p95": _pct(stops, 95),
        "tick_p95": _pct(ticks, 95),
        "client_cpu": client_cpu,
        "turns": ended,
        "answered": answered,
        "deltas": len(lateness),
    }


def _pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    return values[min(len(values) - 1, int(len(values) * q / 100))]


def main() -> None:
    gc.disable()  # the clients' own collection pauses must not be blamed on the server
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="*", default=list(STEPS))
    args = parser.parse_args()
    server, url = start_sim(REPLY, reply_latency_ms=0, keep_records=True)
    try:
        started = time.monotonic()
        print(
            f"simulator pid {server.pid} at {url}; reply deltas 100 ms, paced in real time; "
            f"falls behind = p95 reply lateness > {LATE_MS:.0f} ms or unanswered turns"
        )
        header = (
            f"{'sessions':>8} {'late p50':>9} {'p95':>7} {'p99':>7} {'stop p95':>9} "
            f"{'turns':>6} {'answered':>8} {'srv CPU':>8} {'cli CPU':>8} {'cli tick p95':>12}"
            "  verdict"
        )
        print(header)
        print("-" * len(header))
        served = 0
        for count in args.steps:
            if time.monotonic() - started + WARMUP_S + MEASURE_S + 3 > BUDGET_S:
                print(f"(stopping: the {BUDGET_S:.0f} s budget would be exceeded)")
                break
            cpu_before, wall_before = cpu_s_of(server.pid), time.monotonic()
            result = asyncio.run(run_step(url, count))
            cpu = (cpu_s_of(server.pid) - cpu_before) / (time.monotonic() - wall_before)
            client_late = result["tick_p95"] > 20.0 or result["client_cpu"] > 0.9
            behind = result["p95"] > LATE_MS or result["answered"] < result["turns"] * 0.98
            verdict = "client-bound" if client_late else "FALLS BEHIND" if behind else "keeps up"
            print(
                f"{count:>8} {result['p50']:>8.1f}m {result['p95']:>6.1f}m "
                f"{result['p99']:>6.1f}m {result['stop_p95']:>8.1f}m {result['turns']:>6.0f} "
                f"{result['answered']:>8.0f} {cpu:>7.0%} {result['client_cpu']:>8.0%} "
                f"{result['tick_p95']:>11.1f}m  "
                f"{verdict}"
            )
            if behind or client_late:
                break
            served = count
        print(
            f"\nlargest step that kept up: {served} concurrent real-time sessions "
            f"(statistics over {MEASURE_S:.0f} s after {WARMUP_S:.0f} s warm-up; m = ms)"
        )
    finally:
        stop_sim(server)


if __name__ == "__main__":
    main()
