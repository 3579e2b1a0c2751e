"""The seed article's client, as its recipe says, for the lab to run beside ``bargein talk``.

"Step-by-Step Guide: Interruption Management with OpenAI Realtime API" (2024): the default
microphone read in a thread, each chunk base64'd into ``input_audio_buffer.append``; each
``response.audio.delta`` split into chunks queued for a thread doing blocking ``write()``s to
the default speaker (``SeedSpeaker`` of bench/bench_speaker.py); on the server's
``input_audio_buffer.speech_started`` the queue is emptied. Beta protocol, no
``session.update`` (the server's VAD with its defaults: it cancels the reply itself), no
truncate, no cancel.

It prints one JSON line per barge-in on stdout: ``{"event": "interrupted", "playing": bool,
"at": monotonic seconds}``, ``playing`` when audio handed to the speaker had not yet played
out (a cut the listener hears).

Run: python bench/lab/seed_client.py ws://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_speaker import SeedSpeaker

from bargein.adapters.audio.device import load_pyaudio, new_pyaudio

RATE = 24_000
INPUT_CHUNK = 480  # 20 ms
OUTPUT_CHUNK = 480


def listen_audio(stream: Any, audio_input_queue: queue.Queue[str]) -> None:
    while True:
        data = stream.read(INPUT_CHUNK, exception_on_overflow=False)
        audio_input_queue.put(base64.b64encode(data).decode("utf-8"))


async def send_audio(ws: Any, audio_input_queue: queue.Queue[str]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        audio = await loop.run_in_executor(None, audio_input_queue.get)
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))


async def receive_messages(ws: Any, speaker: SeedSpeaker) -> None:
    plays_until = 0.0  # when the audio handed to the speaker so far will have played
    async for raw in ws:
        message = json.loads(raw)
        kind = message.get("type")
        if kind in ("response.audio.delta", "response.output_audio.delta"):
            audio = base64.b64decode(message["delta"])
            speaker.play("", audio)
            plays_until = max(plays_until, time.monotonic()) + len(audio) / 2 / RATE
        elif kind == "input_audio_buffer.speech_started":
            now = time.monotonic()
            speaker.flush()
            print(json.dumps({"event": "interrupted", "playing": now < plays_until, "at": now}),
                  flush=True)
            plays_until = now


async def main(url: str) -> None:
    pyaudio = load_pyaudio()
    pa = new_pyaudio()
    mic = pa.open(format=pyaudio.paInt16, channels=1, rate=RATE, input=True,
                  frames_per_buffer=INPUT_CHUNK)
    speaker = SeedSpeaker(OUTPUT_CHUNK)
    audio_input_queue: queue.Queue[str] = queue.Queue()
    threading.Thread(target=listen_audio, args=(mic, audio_input_queue), daemon=True).start()
    endpoint = f"{url}/realtime?model=gpt-4o-realtime-preview"
    async with websockets.connect(endpoint, additional_headers={"OpenAI-Beta": "realtime=v1"}
                                  ) as ws:
        print(json.dumps({"event": "ready", "at": time.monotonic()}), flush=True)
        await asyncio.gather(send_audio(ws, audio_input_queue), receive_messages(ws, speaker))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(sys.argv[1]))
