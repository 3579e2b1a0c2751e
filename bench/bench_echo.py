"""The echo canceller offline: what it costs, how much echo it removes, what it does to the user.

Rooms: an espeak-ng voice is the assistant, played for ``--seconds`` (20); the microphone
hears its echo, delayed by ``delay`` ms through a short synthetic room (direct path plus a
decaying diffuse tail) at ``level`` dB relative to the playback (up to +8 dB: a laptop whose
microphone sits by its speaker) over a -70 dBFS floor, and from 8 s on the user's voice
(``bargein/data/demo_user.wav``) over it. The reference is handed to ``EchoCanceller`` the
way a speaker hands it (1 s ahead, 100 ms writes, with DAC times) and the capture in 20 ms
frames with ADC times.

Columns: ``ERLE`` = echo removed on echo-only frames (the echo above -60 dBFS, no user
within 100 ms, after the first second): the median of per-second figures and the whole
span's; ``canceller`` = the canceller's own figure (``stats.erle_db``, user seconds
included); ``user`` = the cleaned level over the user's voice alone, on the frames where the
user is 10 dB over the echo (0 dB: kept as it was); ``double talk`` = the same where the
echo is within 10 dB of the user (the suppressor's price). Options: the default (high-pass
filter), with noise suppression, with automatic gain control, with neither filter.

Cost: CPU (``thread_time``) and wall time of each ``process()`` of a 20 ms frame, medians,
as ms per second of audio, over every frame of every room with the default options.

Run: .venv/bin/python bench/bench_echo.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bargein.adapters.audio.echo import EchoCanceller
from bargein.adapters.audio.protocols import AudioFrame
from bargein.adapters.audio.wav import read_wav_24k_mono
from bargein.sim.voice import speak

RATE = 24_000
MS = RATE // 1000
FRAME = 20 * MS
T0_MS = 10_000.0
USER_AT_S = 8
LEVELS_DB = (-20.0, 0.0, 8.0)
DELAYS_MS = (60, 150)
OPTIONS: dict[str, dict[str, bool]] = {
    "default (hpf)": {},
    "+ noise suppression": {"noise_suppression": True},
    "+ gain control": {"auto_gain_control": True},
    "no filters": {"high_pass_filter": False},
}
TEXT = (
    "Of course. The train leaves at half past nine from platform four, and it stops at every "
    "station until the river. If you would rather not change, take the express at ten: it "
    "is a little dearer, but you will be there before noon with time for lunch. Shall I book "
    "a seat for you, or would you like to hear about the return journeys first?"
)
Pcm = npt.NDArray[np.int16]
Floats = npt.NDArray[np.float64]


def assistant(seconds: float) -> Pcm:
    voice = np.frombuffer(speak(TEXT, "espeak"), dtype="<i2")
    return np.tile(voice, int(np.ceil(seconds * RATE / voice.size)))[: int(seconds * RATE)]


def user_voice(length: int) -> Floats:
    path = Path(__file__).resolve().parent.parent / "bargein" / "data" / "demo_user.wav"
    voice = np.frombuffer(read_wav_24k_mono(path), dtype="<i2").astype(np.float64)
    out = np.zeros(length)
    n = min(voice.size, length - USER_AT_S * RATE)
    out[USER_AT_S * RATE : USER_AT_S * RATE + n] = voice[:n]
    return out


def room(playback: Pcm, delay_ms: int, level_db: float, seed: int) -> Floats:
    """The echo a microphone hears of ``playback``."""
    rng = np.random.default_rng(seed)
    tail_n = RATE * 120 // 1000
    direct = RATE * delay_ms // 1000
    response = np.zeros(direct + tail_n)
    response[direct] = 1.0
    decay = np.exp(-np.arange(tail_n) / (RATE * 0.03))
    response[direct + 24 : direct + tail_n] += 0.3 * rng.standard_normal(tail_n - 24) * decay[24:]
    echo = np.convolve(playback.astype(np.float64), response)[: playback.size]
    scale = np.sqrt(np.mean(playback.astype(np.float64) ** 2) / np.mean(echo**2))
    return np.asarray(echo * scale * 10 ** (level_db / 20))


def cancel(canceller: EchoCanceller, playback: Pcm, mic: Pcm,
           costs: list[tuple[float, float]] | None) -> Pcm:
    out = np.zeros_like(mic)
    written = 0
    for start in range(0, mic.size - FRAME + 1, FRAME):
        while written < min(playback.size, start + RATE):
            chunk = playback[written : written + 100 * MS]
            canceller.reference(chunk, T0_MS + written / MS)
            written += chunk.size
        frame = AudioFrame(mic[start : start + FRAME].tobytes(), T0_MS + start / MS)
        w0, c0 = time.perf_counter(), time.thread_time()
        cleaned = canceller.process(frame)
        if costs is not None:
            costs.append((time.perf_counter() - w0, time.thread_time() - c0))
        out[start : start + FRAME] = np.frombuffer(cleaned.pcm, dtype="<i2")
    return out


def energies(x: npt.NDArray[np.generic]) -> Floats:
    n = x.size // FRAME
    return np.asarray(np.mean(x[: n * FRAME].astype(np.float64).reshape(n, FRAME) ** 2, axis=1))


def ratio_db(a: Floats, b: Floats) -> float:
    return float(10 * np.log10(a.sum() / max(b.sum(), 1.0)))


def measure(playback: Pcm, echo: Floats, user: Floats, options: dict[str, bool],
            costs: list[tuple[float, float]] | None) -> tuple[float, float, float, float, float]:
    floor = 32768 * 10 ** (-70 / 20) * np.random.default_rng(1).standard_normal(echo.size)
    mic = np.clip(np.rint(echo + user + floor), -32768, 32767).astype(np.int16)
    canceller = EchoCanceller(**options)
    out = cancel(canceller, playback, mic, costs)
    e_echo, e_user, e_mic, e_out = energies(echo), energies(user), energies(mic), energies(out)
    second = np.arange(e_mic.size) // 50
    near_user = np.convolve(e_user > 1.0, np.ones(11), mode="same") > 0  # within 100 ms
    alone = (e_echo > 32.0**2) & ~near_user & (second >= 1)
    per_second = [ratio_db(e_mic[alone & (second == s)], e_out[alone & (second == s)])
                  for s in np.unique(second[alone])]
    over = e_user > 10 * e_echo
    double = (e_user > 300.0**2) & ~over
    user_kept = ratio_db(e_out[over], e_user[over]) if over.any() else float("nan")
    double_kept = ratio_db(e_out[double], e_user[double]) if double.any() else float("nan")
    own = canceller.stats.erle_db
    return (statistics.median(per_second), ratio_db(e_mic[alone], e_out[alone]),
            float("nan") if own is None else own, user_kept, double_kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="assistant speech per room")
    args = parser.parse_args()
    playback = assistant(args.seconds)
    user = user_voice(playback.size)
    costs: list[tuple[float, float]] = []
    print(f"bench_echo: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
          f"{args.seconds:g} s of assistant speech per room, user from {USER_AT_S} s")
    print(f"{'level':>6} {'delay':>6}  {'options':<20}{'ERLE median':>12}{'ERLE span':>10}"
          f"{'canceller':>10}{'user':>7}{'double talk':>12}")
    for level in LEVELS_DB:
        for delay in DELAYS_MS:
            echo = room(playback, delay, level, seed=int(level + 100) * 1000 + delay)
            for name, options in OPTIONS.items():
                median, span, own, kept, double = measure(
                    playback, echo, user, options, costs if not options else None)
                print(f"{level:+5.0f}dB {delay:4d}ms  {name:<20}{median:10.1f}dB{span:8.1f}dB"
                      f"{own:8.1f}dB{kept:+5.1f}dB{double:+10.1f}dB", flush=True)
    walls = [w for w, _ in costs]
    cpus = [c for _, c in costs]
    per_s = 1000 / 20  # frames per second of audio
    print(f"\ncost of process() per second of audio (default options, {len(costs)} frames of "
          f"20 ms): CPU {statistics.median(cpus) * 1000 * per_s:.1f} ms median "
          f"(p95 {np.percentile(cpus, 95) * 1000 * per_s:.1f}), wall "
          f"{statistics.median(walls) * 1000 * per_s:.1f} ms median "
          f"(p95 {np.percentile(walls, 95) * 1000 * per_s:.1f}); "
          f"total CPU {sum(cpus) / (len(costs) / per_s) * 1000:.1f} ms per second of audio")


if __name__ == "__main__":
    main()
