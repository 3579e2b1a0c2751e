"""Stop latency and heard-ms error of the pyaudio speaker against the seed article's approach.

Both play the same speech-like item on the private PulseAudio's ci_speaker sink and are
interrupted at a random moment; the sink's monitor (recorded with parec) is the judge.

* bargein: PyAudioSpeaker (callback mode, DAC-timed ledger, fade on flush).
* seed: a thread doing blocking ``write()``s of blocks taken from a queue; on interrupt the
  queue is cleared and the device drains; "heard" is what had been handed to ``write()``.

Columns (reported - measured on the monitor, ms; + = over-reported):
live err = "heard so far" while playing (bargein: heard_ms(); seed: handed to write()) against
what the monitor had delivered at that moment (the monitor lags by its few ms of capture);
flush err = ms heard reported at the interrupt against all the item's sound on the monitor;
stop = time from the interrupt call to the arrival of the last audible sample from the
monitor (includes the monitor's own capture latency of a few ms, common to both columns).
Medians over TRIALS runs. Run: scripts/start-pulse.sh && .venv/bin/python bench/bench_speaker.py
"""

from __future__ import annotations

import queue
import random
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bargein.adapters.audio.device import load_pyaudio, new_pyaudio
from bargein.adapters.audio.pyaudio_speaker import PyAudioSpeaker
from tests.pulse_env import (
    MS,
    MonitorRecorder,
    ensure_pulse,
    sounding_ms,
    sounding_span,
    speech_like,
)

BLOCKS = (120, 240, 480, 960)
TRIALS = 5
ITEM_MS = 1500


class SeedSpeaker:
    """The seed article's playback: blocking writes from a worker thread fed by a queue."""

    def __init__(self, block: int) -> None:
        pyaudio = load_pyaudio()
        self._pa = new_pyaudio()
        self._stream: Any = self._pa.open(
            format=pyaudio.paInt16, channels=1, rate=24000, output=True, frames_per_buffer=block
        )
        self._block_bytes = block * 2
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self.handed_samples = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self.handed_samples += len(chunk) // 2
            self._stream.write(chunk)

    def play(self, pcm: bytes) -> None:
        for i in range(0, len(pcm), self._block_bytes):
            self._queue.put(pcm[i : i + self._block_bytes])

    def interrupt(self) -> float:
        """Clear the queue and let the device drain; return the 'heard' estimate in ms."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        return self.handed_samples / MS

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)
        self._stream.close()  # after the writer has stopped: never abort under a blocking write
        self._pa.terminate()


def trial(kind: str, block: int, rng: random.Random) -> tuple[float, float, float]:
    speech = speech_like(ITEM_MS, seed=rng.randrange(1000))
    recorder = MonitorRecorder()
    time.sleep(0.15)
    if kind == "bargein":
        speaker = PyAudioSpeaker(block_frames=block)
        time.sleep(0.1)
        speaker.play("item", speech)
        time.sleep(rng.uniform(0.3, 0.8))
        probed_at = time.monotonic()
        probed = speaker.heard_ms().get("item", 0.0)
        time.sleep(0.1)
        interrupted_at = time.monotonic()
        reported = speaker.flush().heard_ms["item"]
        time.sleep(0.4)
        speaker.close()
    else:
        seed = SeedSpeaker(block)
        time.sleep(0.1)
        seed.play(speech)
        time.sleep(rng.uniform(0.3, 0.8))
        probed_at = time.monotonic()
        probed = seed.handed_samples / MS
        time.sleep(0.1)
        interrupted_at = time.monotonic()
        reported = seed.interrupt()
        time.sleep(0.4)
        seed.close()
    recorded = recorder.stop()
    start, end = sounding_span(recorded)
    live = probed - (recorder.arrived_by(probed_at) - start) / MS
    stop_ms = (recorder.arrival_time(end - 1) - interrupted_at) * 1000
    return live, reported - sounding_ms(recorded), stop_ms


def main() -> None:
    ensure_pulse()
    rng = random.Random(7)
    started = time.monotonic()
    rows = []
    for block in BLOCKS:
        results: dict[str, list[tuple[float, float, float]]] = {"bargein": [], "seed": []}
        for _ in range(TRIALS):
            for kind in ("bargein", "seed"):  # interleaved, so both see the same machine load
                results[kind].append(trial(kind, block, rng))
        rows.append((block, results))
    print(f"pyaudio speaker on PulseAudio null sink, {TRIALS} trials each, medians (ms)")
    print(
        f"{'block':>5} {'ms':>3} | {'live err':>8} {'flush err':>9} {'stop':>6}"
        f" | {'live err':>8} {'flush err':>9} {'stop':>6} | {'stop ratio':>10}"
    )
    print(f"{'':>9} | {'bargein':^25} | {'seed (blocking write)':^25} |")
    for block, results in rows:
        cols = []
        for kind in ("bargein", "seed"):
            cols.append([statistics.median(r[i] for r in results[kind]) for i in range(3)])
        (b_live, b_err, b_stop), (s_live, s_err, s_stop) = cols
        print(
            f"{block:>5} {block // MS:>3} | {b_live:>+8.1f} {b_err:>+9.1f} {b_stop:>6.1f}"
            f" | {s_live:>+8.1f} {s_err:>+9.1f} {s_stop:>6.1f} | {s_stop / b_stop:>9.2f}x"
        )
    print(f"(ran {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
