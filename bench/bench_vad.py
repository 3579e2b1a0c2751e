"""Local voice detectors offline: what each costs, and how much of the assistant's own echo
each takes for the user.

Cost: wall and CPU time (``thread_time``) per 32 ms of 24 kHz speech fed, medians over every
call, for ``EnergyVad``, ``SileroVad`` (resampling to 16 kHz included) and Silero's model
alone on one 16 kHz window.

Rooms: an espeak-ng voice is the assistant; the microphone hears only its echo (no user):
the playback delayed by ``delay`` ms through a short synthetic room (direct path plus a
decaying diffuse tail), at ``level`` dB relative to the playback (up to +8 dB: a laptop whose
microphone sits by its speaker), over a -70 dBFS noise floor. Each detector is fed the mic in
32 ms pieces; ``flagged`` is the share of echo-only frames (the echo above -60 dBFS) during
which the detector said speech was under way, after a 1 s warm-up. ``after AEC`` feeds the
detector the microphone after bargein's ``EchoCanceller`` (WebRTC's AEC3 from livekit; the
playback as its reference, 20 ms frames on the sample clock), and ``ERLE`` is the echo it
removed (mic energy over output energy on the echo frames).

Run: .venv/bin/python bench/bench_vad.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_echo import TEXT  # bench/ is on sys.path when run as a script

from bargein.adapters.audio.echo import EchoCanceller
from bargein.adapters.audio.protocols import AudioFrame
from bargein.adapters.audio.silero import WINDOW, SileroVad, _load_model
from bargein.adapters.audio.vad import EnergyVad, VoiceDetector
from bargein.sim.voice import speak

RATE = 24_000
PIECE = 768  # 32 ms at 24 kHz
LEVELS_DB = (-20.0, -10.0, 0.0, 8.0)
DELAYS_MS = (60, 150)
WARMUP_S = 1.0
Pcm = npt.NDArray[np.int16]


def energy_vad() -> EnergyVad:
    """The fallback as ``bargein talk --local-vad`` builds it."""
    return EnergyVad(RATE, threshold=0.5, prefix_padding_ms=0, silence_duration_ms=500)


DETECTORS: dict[str, Callable[[], VoiceDetector]] = {"energy": energy_vad, "silero": SileroVad}


def assistant(seconds: float) -> Pcm:
    voice = np.frombuffer(speak(TEXT, "espeak"), dtype="<i2")
    repeats = int(np.ceil(seconds * RATE / voice.size))
    return np.tile(voice, repeats)[: int(seconds * RATE)]


def costs(voice: Pcm) -> list[tuple[str, float, float, int]]:
    """(name, wall µs median, CPU µs median, calls) per 32 ms piece."""
    rows = []
    pieces = [voice[i : i + PIECE] for i in range(0, voice.size - PIECE, PIECE)]
    for name, make in DETECTORS.items():
        detector = make()
        walls, cpus = [], []
        for piece in pieces:
            w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            detector.feed(piece)
            cpus.append(time.thread_time_ns() - c0)
            walls.append(time.perf_counter_ns() - w0)
        rows.append((name, statistics.median(walls) / 1e3, statistics.median(cpus) / 1e3,
                     len(pieces)))
    model = _load_model(None)
    window = (np.ctypeslib.as_ctypes(np.zeros(WINDOW, dtype=np.float32)))
    walls, cpus = [], []
    for _ in range(len(pieces)):
        w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        model.process(window)
        cpus.append(time.thread_time_ns() - c0)
        walls.append(time.perf_counter_ns() - w0)
    rows.append(("silero model only", statistics.median(walls) / 1e3,
                 statistics.median(cpus) / 1e3, len(pieces)))
    return rows


def room(playback: Pcm, delay_ms: int, level_db: float, seed: int) -> Pcm:
    """The microphone in a room where only the speaker plays ``playback``."""
    rng = np.random.default_rng(seed)
    tail_n = RATE * 120 // 1000
    response = np.zeros(RATE * delay_ms // 1000 + tail_n)
    direct = RATE * delay_ms // 1000
    response[direct] = 1.0
    decay = np.exp(-np.arange(tail_n) / (RATE * 0.03))
    response[direct + 24 : direct + tail_n] += 0.3 * rng.standard_normal(tail_n - 24) * decay[24:]
    echo = np.convolve(playback.astype(np.float64), response)[: playback.size]
    echo *= 10 ** (level_db / 20) * np.sqrt(np.mean(playback.astype(np.float64) ** 2)
                                            / np.mean(echo**2))
    floor = 32768 * 10 ** (-70 / 20) * rng.standard_normal(playback.size)
    return np.clip(np.rint(echo + floor), -32768, 32767).astype(np.int16)


def flagged(detector: VoiceDetector, mic: Pcm, echo_frames: npt.NDArray[np.bool_]) -> float:
    speaking = []
    for start in range(0, mic.size - PIECE + 1, PIECE):
        detector.feed(mic[start : start + PIECE])
        speaking.append(detector.speaking)
    said = np.array(speaking)[: echo_frames.size]
    return float(said[echo_frames[: said.size]].mean())


def cancelled(playback: Pcm, mic: Pcm) -> Pcm:
    """The microphone after bargein's ``EchoCanceller``: the playback handed as the reference
    at DAC time 0, the microphone in 20 ms frames captured at their sample times."""
    canceller = EchoCanceller(history_s=playback.size / RATE + 1)
    canceller.reference(playback, 0.0)
    frame = RATE // 50
    out = np.zeros_like(mic)
    for start in range(0, mic.size - frame + 1, frame):
        cleaned = canceller.process(AudioFrame(mic[start : start + frame].tobytes(),
                                               start * 1000 / RATE))
        out[start : start + frame] = np.frombuffer(cleaned.pcm, dtype="<i2")
    return out


def frame_rms_db(samples: Pcm) -> npt.NDArray[np.float64]:
    usable = samples.size // PIECE * PIECE
    frames = samples[:usable].astype(np.float64).reshape(-1, PIECE)
    return np.asarray(10 * np.log10(np.mean(frames**2, axis=1) / 32768.0**2 + 1e-12),
                      dtype=np.float64)


def rooms(playback: Pcm) -> list[tuple[Any, ...]]:
    rows = []
    skip = int(WARMUP_S * RATE / PIECE)
    for level in LEVELS_DB:
        for delay in DELAYS_MS:
            mic = room(playback, delay, level, seed=int(level + 100) * 1000 + delay)
            echo_db = frame_rms_db(mic)
            echo_frames = echo_db > -60.0
            echo_frames[:skip] = False
            clean = cancelled(playback, mic)
            erle = np.mean(echo_db[echo_frames]) - np.mean(frame_rms_db(clean)[echo_frames])
            rows.append((
                level, delay, int(echo_frames.sum()),
                flagged(energy_vad(), mic, echo_frames),
                flagged(SileroVad(), mic, echo_frames),
                flagged(SileroVad(), clean, echo_frames),
                flagged(energy_vad(), clean, echo_frames),
                erle,
            ))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="assistant speech per room (default 20)")
    args = parser.parse_args()
    playback = assistant(args.seconds)
    playback = np.clip(playback.astype(np.float64) * 0.7, -32768, 32767).astype(np.int16)
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print("\nper 32 ms of 24 kHz audio fed (medians)")
    print(f"{'detector':<20}{'wall µs':>10}{'CPU µs':>10}{'calls':>8}{'CPU % of a core':>17}")
    for name, wall, cpu, calls in costs(playback):
        print(f"{name:<20}{wall:>10.1f}{cpu:>10.1f}{calls:>8}{100 * cpu / 32000:>16.2f}%")
    print(f"\nechoes of {args.seconds:g} s of espeak speech, no user: share of echo-only frames "
          "flagged as speech")
    print(f"{'echo dB':>8}{'delay ms':>9}{'frames':>8}{'energy':>9}{'silero':>9}"
          f"{'silero after AEC':>18}{'energy after AEC':>18}{'ERLE dB':>9}")
    for level, delay, frames, energy, silero, silero_apm, energy_apm, erle in rooms(playback):
        print(f"{level:>+8.0f}{delay:>9}{frames:>8}{energy:>9.1%}{silero:>9.1%}"
              f"{silero_apm:>18.1%}{energy_apm:>18.1%}{erle:>9.1f}")


if __name__ == "__main__":
    main()
