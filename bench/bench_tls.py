"""What TLS adds to the transport's cost per microphone frame: ``ws://`` against ``wss://``.

Every OpenAI and Azure connection is ``wss://``; the other benches run ``ws://`` over
loopback (the simulator has no TLS). Here one ``RealtimeTransport`` sends 20 ms microphone
frames at once (``send_now``), 20 at a time every 5 ms, and takes a 100 ms audio delta for
every 5 frames (a reply in progress) through ``deliver()``, against a plain websockets
server in a process of its own, once over ``ws://`` and once over ``wss://`` (a self-signed
certificate made for the run, ``bargein.testing.self_signed``).
The two run in interleaved rounds, each on a fresh connection; the table shows this
process's CPU time per frame sent (the deltas' share included), median and range, beside
the wall time per frame (mostly the pacing), and the median of the rounds' differences.
A bench, not a test: nothing is asserted.

    .venv/bin/python bench/bench_tls.py [--rounds 5] [--frames 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bargein.adapters import endpoints
from bargein.adapters.transport import RealtimeTransport
from bargein.core.commands import SendAudio
from bargein.core.events import AudioDelta
from bargein.testing import SelfSigned, self_signed

BURST = 20  # frames sent at once, every BURST_GAP_S
BURST_GAP_S = 0.005
FRAMES_PER_DELTA = 5

_SERVER = r"""
import asyncio, base64, json, os, sys
from websockets.asyncio.server import serve
from bargein.sim.tls import server_context

cert, key, every = sys.argv[1], sys.argv[2], int(sys.argv[3])
delta = {"type": "response.output_audio.delta", "response_id": "resp_1", "item_id": "item_1",
         "output_index": 0, "content_index": 0,
         "delta": base64.b64encode(os.urandom(4800)).decode()}

async def handler(ws):
    await ws.send(json.dumps({"type": "session.created", "event_id": "event_0", "session": {}}))
    count = 0
    async for _ in ws:
        count += 1
        if count % every == 0:
            await ws.send(json.dumps({**delta, "event_id": f"event_{count}"}))

async def main():
    context = server_context(cert, key) if cert else None
    async with serve(handler, "localhost", 0, ssl=context, compression=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


async def one_round(scheme: str, certificate: SelfSigned, frames: int
                    ) -> tuple[float, float, int]:
    """CPU and wall microseconds per frame sent, and the deltas received, on a fresh
    connection over ``scheme``."""
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, *((str(certificate.cert), str(certificate.key))
                                          if scheme == "wss" else ("", "")),
         str(FRAMES_PER_DELTA)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        context = certificate.client_context() if scheme == "wss" else None
        transport = RealtimeTransport(
            endpoints.custom(f"{scheme}://localhost:{port}/v1", auth="none"), None,
            ssl_context=context)
        deltas = 0

        def on_event(event: object) -> None:
            nonlocal deltas
            deltas += isinstance(event, AudioDelta)

        await transport.connect()
        delivering = asyncio.create_task(transport.deliver(on_event))
        audio = [SendAudio(os.urandom(960)) for _ in range(BURST)]
        sent = 0
        cpu, start = time.process_time(), time.perf_counter()
        while sent < frames:
            for command in audio:
                if not transport.send_now(command):
                    await transport.send(command)
                sent += 1
            await asyncio.sleep(BURST_GAP_S)
        expected = sent // FRAMES_PER_DELTA
        while deltas < expected and time.perf_counter() - start < 30:
            await asyncio.sleep(0.001)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - start
        delivering.cancel()
        await transport.close()
        return cpu * 1e6 / sent, wall * 1e6 / sent, deltas
    finally:
        server.kill()
        server.wait()


async def run(rounds: int, frames: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        certificate = self_signed(directory)
        cpu: dict[str, list[float]] = {"ws": [], "wss": []}
        wall: dict[str, list[float]] = {"ws": [], "wss": []}
        for _ in range(rounds):
            results = {scheme: await one_round(scheme, certificate, frames) for scheme in cpu}
            short = [s for s, (_, _, deltas) in results.items()
                     if deltas < frames // FRAMES_PER_DELTA]
            if short:  # a pair is whole or left out, so the pairs stay paired
                print(f"{', '.join(short)}: not every delta came back; the round is left out")
                continue
            for scheme, (used, took, _) in results.items():
                cpu[scheme].append(used)
                wall[scheme].append(took)
    print(f"{frames} microphone frames of 20 ms sent at once and a 100 ms delta taken per "
          f"{FRAMES_PER_DELTA}, per round; {rounds} rounds interleaved; CPU of this process")
    print(f"{'scheme':8} {'cpu med us/frame':>17} {'range':>13} {'wall med':>9}")
    for scheme, runs in cpu.items():
        if runs:
            print(f"{scheme:8} {statistics.median(runs):17.1f} "
                  f"{min(runs):6.1f}-{max(runs):<6.1f} {statistics.median(wall[scheme]):9.1f}")
    if cpu["ws"] and cpu["wss"]:
        pairs = [b - a for a, b in zip(cpu["ws"], cpu["wss"], strict=True)]
        print(f"TLS adds {statistics.median(pairs):.1f} us of CPU per frame (median of the "
              "rounds' pairs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=3000)
    args = parser.parse_args()
    asyncio.run(run(args.rounds, args.frames))


if __name__ == "__main__":
    main()
