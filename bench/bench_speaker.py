"""Speakers on a PulseAudio null sink, judged by its monitor: stop time, click, heard-ms, dropouts.

Three speakers play the same speech-like item and are interrupted at a random moment:

* seed: the seed article's recipe, blocking ``write()``s from a queue; on interrupt the queue is
  cleared and the device drains; "heard" is what had been handed to ``write()``;
* pyaudio: ``PyAudioSpeaker`` (PortAudio callback, DAC-timed ledger, a 100 ms device buffer
  that a flush drops by aborting the stream; the spare stream starts in a worker thread);
* pulse: ``PulseSpeaker`` (libpulse; fade written where the sink has not read yet, rest zeroed).

Columns: ``stop`` = from the interrupt call to the last audible sample on the monitor, the
sample's time taken from its position in the recording (``MonitorRecorder.recorded_at``); the
null sink renders a few ms ahead of real time, so a stop at the call reads slightly negative
(median and p95); ``cut/speech`` = the largest sample-to-sample step where the sound meets
silence against the largest in the speech just before (< 1: no click); ``heard err`` = ms
reported heard minus ms the monitor played, the item located in the recording by its content
(median of |err|); ``flush`` = wall and CPU time of the interrupt call itself (µs);
``after sounding`` = from
the sample a bargein speaker said was sounding when the flush came to the last audible sample,
counted in samples on the monitor (no clock involved; the seed cannot say what was sounding).
On a null sink the monitor receives a sample when the sink renders it, so ``stop`` is the time
to the sink's last render; a listener hears it one sink latency later, which ``after sounding``
includes.

The load table plays a 60 s reply into each speaker with two CPU hogs beside it and counts the
gaps (silences ≥ 2 ms inside the reply) in the monitor recording. Both tables run ``--runs``
times (3 by default; the load differs between runs on a shared machine) and the last table is
the median of the runs' medians. The pyaudio speaker's period is at least 50 ms whatever the
block, so its rows differ by chance only.
Run: scripts/start-pulse.sh && .venv/bin/python bench/bench_speaker.py [--runs N] [--only load]
"""

from __future__ import annotations

import argparse
import queue
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bargein.adapters.audio.device import load_pyaudio, new_pyaudio
from bargein.adapters.audio.pulse_speaker import PulseSpeaker
from bargein.adapters.audio.pyaudio_speaker import PyAudioSpeaker
from tests.support.pulse_env import (
    MS,
    MonitorRecorder,
    ensure_pulse,
    sounding_span,
    speech_like,
)

BLOCKS = (120, 240, 480, 960)
KINDS = ("seed", "pyaudio", "pulse")
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

    def play(self, _item: str, pcm: bytes) -> None:
        for i in range(0, len(pcm), self._block_bytes):
            self._queue.put(pcm[i : i + self._block_bytes])

    def flush(self) -> float:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        return self.handed_samples / MS

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
        self._stream.close()
        self._pa.terminate()


def open_kind(kind: str, block: int) -> Any:
    if kind == "seed":
        return SeedSpeaker(block)
    if kind == "pyaudio":
        return PyAudioSpeaker(block_frames=block)
    return PulseSpeaker(block_frames=block)


def wait_recording(recorder: MonitorRecorder) -> None:
    helper = getattr(recorder, "wait_recording", None)  # tests/support's API is being reworked
    if helper is not None:
        helper()
        return
    while not recorder.arrived_by(time.monotonic()):  # type: ignore[attr-defined,unused-ignore]
        time.sleep(0.005)


def arrival(recorder: MonitorRecorder, index: int) -> float:
    helper = getattr(recorder, "recorded_at", None) or getattr(recorder, "arrival_time")  # noqa: B009
    return float(helper(index))


def locate(recorded: npt.NDArray[np.int16], item: npt.NDArray[np.int16]) -> int:
    start, _ = sounding_span(recorded)
    probe = item[480:720].astype(np.int64)
    window = recorded[max(0, start - 240) : start + 2400].astype(np.int64)
    errors = [np.abs(window[i : i + 240] - probe).sum() for i in range(len(window) - 720)]
    return max(0, start - 240) + int(np.argmin(errors)) - 480


def step(samples: npt.NDArray[np.int16]) -> int:
    """Largest sample-to-sample step (at least 1, so a silent stretch divides safely)."""
    return max(1, int(np.abs(np.diff(samples.astype(np.int32))).max()))


def trial(kind: str, block: int, rng: random.Random) -> tuple[float, ...]:
    pcm = speech_like(ITEM_MS, seed=rng.randrange(1000))
    item = np.frombuffer(pcm, dtype="<i2")
    recorder = MonitorRecorder()
    wait_recording(recorder)
    speaker = open_kind(kind, block)
    time.sleep(0.1)
    speaker.play("item", pcm)
    time.sleep(rng.uniform(0.4, 0.9))
    sounding = float("nan") if kind == "seed" else speaker.heard_ms()["item"]
    t0, c0 = time.perf_counter(), time.thread_time()
    interrupted_at = time.monotonic()
    report = speaker.flush()
    flush_wall, flush_cpu = time.perf_counter() - t0, time.thread_time() - c0
    reported = report if kind == "seed" else report.heard_ms["item"]
    time.sleep(0.4)
    speaker.close()
    recorded = recorder.stop()
    base = locate(recorded, item)
    _, end = sounding_span(recorded)
    stop_ms = (arrival(recorder, end - 1) - interrupted_at) * 1000
    cut = step(recorded[end - MS // 2 : end + 2 * MS]) / step(
        recorded[end - 15 * MS : end - 5 * MS]
    )
    heard_err = reported - (end - base) / MS
    after_sounding = (end - base) / MS - sounding
    return stop_ms, cut, heard_err, flush_wall * 1e6, flush_cpu * 1e6, after_sounding


def p95(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, round(0.95 * (len(values) - 1)))]


HEAD = (
    f"{'block':>5} {'kind':>8} | {'stop med':>8} {'p95':>6} | {'cut/speech':>10}"
    f" | {'|heard err|':>11} | {'flush wall µs':>13} {'cpu µs':>7} | {'after sounding':>14}"
)


def interrupts() -> dict[tuple[int, str], tuple[float, ...]]:
    """One run of the flush table; returns each cell's medians (and p95 of the stop)."""
    rng = random.Random(time.monotonic_ns())
    print(f"flush on a PulseAudio null sink, {TRIALS} trials per cell, interleaved"
          " (ms unless said)")
    cells: dict[tuple[int, str], tuple[float, ...]] = {}
    for block in BLOCKS:
        results: dict[str, list[tuple[float, ...]]] = {k: [] for k in KINDS}
        for _ in range(TRIALS):
            for kind in KINDS:  # interleaved, so all see the same machine load
                results[kind].append(trial(kind, block, rng))
        for kind in KINDS:
            cols = list(zip(*results[kind], strict=True))
            cells[(block, kind)] = (
                statistics.median(cols[0]), p95(list(cols[0])), statistics.median(cols[1]),
                statistics.median(abs(e) for e in cols[2]), statistics.median(cols[3]),
                statistics.median(cols[4]), statistics.median(cols[5]),
            )
    print_interrupts(cells)
    return cells


def print_interrupts(cells: dict[tuple[int, str], tuple[float, ...]]) -> None:
    print(HEAD)
    for block in BLOCKS:
        for kind in KINDS:
            stop, stop95, cut, err, wall, cpu, after = cells[(block, kind)]
            print(
                f"{block:>5} {kind:>8} | {stop:>8.1f} {stop95:>6.1f} | {cut:>10.2f}"
                f" | {err:>11.2f} | {wall:>13.0f} {cpu:>7.0f} | {after:>14.1f}"
            )


def gaps(recorded: npt.NDArray[np.int16], min_ms: float = 2.0) -> list[float]:
    """Silences of at least ``min_ms`` inside the sounding span (0.5 ms windows)."""
    start, end = sounding_span(recorded)
    window = MS // 2
    body = recorded[start : start + (end - start) // window * window].astype(np.int32)
    loud = np.abs(body).reshape(-1, window).max(axis=1) > 64
    found, run = [], 0
    for is_loud in loud:
        if not is_loud:
            run += 1
        else:
            if run * 0.5 >= min_ms:
                found.append(run * 0.5)
            run = 0
    return found


def under_load(seconds: int) -> dict[str, tuple[float, ...]]:
    """One run of the dropout table: per kind (gaps per minute, longest gap ms, underruns)."""
    print(f"{seconds} s reply with two CPU hogs beside it, 240-frame blocks; fed in 100 ms deltas")
    pcm = speech_like(seconds * 1000, seed=99)
    rows: dict[str, tuple[float, ...]] = {}
    for kind in KINDS:
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
        try:
            recorder = MonitorRecorder()
            wait_recording(recorder)
            speaker = open_kind(kind, 240)
            step_bytes = 100 * MS * 2
            started = time.monotonic()
            for n, i in enumerate(range(0, len(pcm), step_bytes)):
                # deltas arrive twice as fast as real time, like the Realtime API's
                time.sleep(max(0.0, started + n * 0.05 - time.monotonic()))
                speaker.play("reply", pcm[i : i + step_bytes])
            time.sleep(seconds / 2 + 1.0)
            counted = getattr(speaker, "underruns", float("nan"))
            speaker.close()
            recorded = recorder.stop()
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
        found = gaps(recorded)
        rows[kind] = (len(found) * 60 / seconds, max(found, default=0.0), float(counted))
    print_load(rows)
    return rows


def print_load(rows: dict[str, tuple[float, ...]]) -> None:
    print(f"{'kind':>8} | {'gaps per min':>12} {'longest ms':>10} | {'underruns counted':>17}")
    for kind, (per_min, longest, counted) in rows.items():
        print(f"{kind:>8} | {per_min:>12.1f} {longest:>10.1f} | {counted:>17.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="whole runs; medians of their medians")
    parser.add_argument("--load-seconds", type=int, default=60, help="length of the loaded reply")
    parser.add_argument("--only", choices=("interrupts", "load"), help="one of the two tables")
    args = parser.parse_args()
    ensure_pulse()
    started = time.monotonic()
    flushes: list[dict[tuple[int, str], tuple[float, ...]]] = []
    loads: list[dict[str, tuple[float, ...]]] = []
    for run in range(1, args.runs + 1):
        print(f"--- run {run} of {args.runs}")
        if args.only != "load":
            flushes.append(interrupts())
        if args.only != "interrupts":
            loads.append(under_load(args.load_seconds))
    if args.runs > 1:
        print(f"=== medians of the {args.runs} runs' medians")
        if flushes:
            print_interrupts({cell: tuple(statistics.median(run[cell][i] for run in flushes)
                                          for i in range(len(flushes[0][cell])))
                              for cell in flushes[0]})
        if loads:
            print_load({kind: tuple(statistics.median(run[kind][i] for run in loads)
                                    for i in range(len(loads[0][kind])))
                        for kind in loads[0]})
    print(f"(ran {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
