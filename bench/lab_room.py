"""The room lab: barge-in on real (virtual) devices with the speaker leaking into the microphone.

A private PulseAudio (scripts/start-pulse.sh in its own directory, so tests running beside it
are not disturbed): ``ci_speaker`` is the default output, ``ci_mic.monitor`` the default
input. A room is ``module-loopback`` from ``ci_speaker.monitor`` into ``ci_mic`` with
``latency_msec`` = the echo delay and its sink input's volume = the echo level (or no
loopback: no echo). The user is ``paplay -d ci_mic``. First the echo phase, the user
silent but for a prompt ("Tell me about the trains, please.") whenever all has been quiet for
2.5 s: the assistant talks over its own echo. Then the trials: a prompt, and 1.5 s into the
reply's sound one stimulus: speech (a real barge-in, ~2 s), a 150 ms cough (sox: band-passed
pink noise) or a 300 ms "uh-huh" (espeak-ng, squeezed by sox). Every fixture is made at run
time; nothing is downloaded.

Clients, each against ``bargein sim`` (a subprocess, espeak voice, one reply text for every
turn so what should have been heard is known sample by sample):

* ``bargein talk`` in each mode: a mode is a list of CLI flags, offered only when
  ``bargein talk --help`` lists them (``--mode NAME=FLAGS`` adds any other);
* ``seed``: the seed article's recipe (bench/lab/seed_client.py).

Everything is derived from recorded samples (parec of ``ci_speaker.monitor``, what the room
heard, and of ``ci_mic.monitor``, what the microphone heard), the two recordings put on one
clock by their own sample counts, plus bargein's own ``interrupted`` log records for the
truncation:

* a reply's sound is a burst on the speaker (bursts split at a silence longer than the
  reply's own longest pause); a burst that ends before the reply's end is a cut: a cut
  within 1.5 s after a stimulus is that stimulus's, any other is a self-interruption, per
  minute of assistant speech on the speaker;
* a stimulus's onset is found in the microphone's recording by cross-correlation with the
  fixture; onset -> silence is from it to the last sample of the cut reply, onset -> duck to
  the first 10 ms block whose level is 6 dB under the reply's own at that point (the reply
  located by content), both in samples;
* truncate error: how far ``audio_end_ms`` bargein sent lies outside the ms of the reply the
  speaker had played: from where its sound ended (located by content in the 20 ms before the
  fade) to where the reply would have sounded again (the fade included; a cut inside a pause
  of the reply has no sound to fade, and the sound then only says that the cut fell within
  the pause; "sounded" is above ``LOUD`` at the duck's gain, as a ducked reply is played);
* resumed: after a cough or "uh-huh", the reply played to its end.

Run: .venv/bin/python bench/lab_room.py [--full] [--modes instant,seed] [--mode NAME=FLAGS]
[--rooms none,-20@30] [--echo-seconds S] [--trials N] [--keep DIR]. ``make bench`` runs the
short default (3 rooms, a 10 s echo phase, one trial of each stimulus: ~2 min per room and
mode on a loaded 2-core machine); ``--full`` is the issue's targets: up to 180 s of echo phase
for 60 s of assistant speech, 10 trials of each stimulus, echo at -35/-28/-20 dB x 30/120 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bargein.adapters.audio.wav import read_wav_24k_mono, write_wav
from bargein.sim.voice import speak
from bargein.states.two_phase import DUCK_GAIN

REPO = Path(__file__).resolve().parent.parent

RATE = 24_000
MS = RATE // 1000
LOUD = 64  # a sample above this is sound
FADE = 5 * MS
PROMPT = "Tell me about the trains, please."
REPLY = ("The train leaves at half past nine from platform four, and it stops at every "
         "station until the river.")
SPEECH = "Wait, stop there, I have a question about the second train."
STIMULI = ("speech", "cough", "uh-huh")
QUIET_MS = 2500  # longer than a turn's end (the server's 500 ms) plus the reply's latency
CUT_WINDOW_S = 1.5  # a cut this long after a stimulus ends is the stimulus's
END_MARGIN_MS = 250  # a burst that ends this close to the reply's end is the reply played out
PROMPT_CUT_MS = 300  # a prompt is spoken when all is quiet: only a reply it overlaps is its
DEADLINE_S = 60.0
Pcm = npt.NDArray[np.int16]


def offered_modes(help_text: str) -> dict[str, list[str]]:
    """The modes this ``bargein talk`` offers, each a list of flags: today's instant mode
    with no echo canceller, and, when the flags exist, the canceller on and two-phase
    barge-in (each with the canceller off and on)."""
    no_aec = ["--no-echo-cancel"] if "--no-echo-cancel" in help_text else []
    choosing = "--barge-in" in help_text and "two-phase" in help_text
    instant = ["--barge-in", "instant"] if choosing else []
    modes = {"instant": instant + no_aec}
    if no_aec:
        modes["instant+aec"] = instant
    if choosing:
        modes["two-phase"] = ["--barge-in", "two-phase", *no_aec]
        if no_aec:
            modes["two-phase+aec"] = ["--barge-in", "two-phase"]
    return modes


@dataclass(frozen=True)
class Room:
    level_db: float | None  # None: no echo
    delay_ms: int

    def __str__(self) -> str:
        return "no echo" if self.level_db is None else f"{self.level_db:+.0f} dB {self.delay_ms} ms"


# --- fixtures -------------------------------------------------------------------------------


def run(*cmd: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=DEADLINE_S,
                          **kw)


def sox_to_24k(src: Path, dst: Path, *effects: str) -> Pcm:
    run("sox", str(src), "-r", str(RATE), "-c", "1", "-b", "16", str(dst), *effects)
    return np.frombuffer(read_wav_24k_mono(dst), dtype="<i2")


def fixtures(folder: Path) -> dict[str, tuple[Path, Pcm]]:
    made: dict[str, tuple[Path, Pcm]] = {}
    for name, text in (("prompt", PROMPT), ("speech", SPEECH)):
        raw = folder / f"{name}-raw.wav"
        run("espeak-ng", "-v", "en-us", "-w", str(raw), text)
        made[name] = (folder / f"{name}.wav",
                      sox_to_24k(raw, folder / f"{name}.wav", "norm", "-6"))
    cough = folder / "cough.wav"
    run("sox", "-R", "-n", "-r", str(RATE), "-c", "1", "-b", "16", str(cough), "synth", "0.15",
        "pinknoise", "bandpass", "1000", "1.5", "fade", "q", "0.005", "0.15", "0.12", "norm", "-6")
    made["cough"] = (cough, np.frombuffer(read_wav_24k_mono(cough), dtype="<i2"))
    raw = folder / "uh-huh-raw.wav"
    run("espeak-ng", "-v", "en-us", "-w", str(raw), "uh-huh")
    trimmed = folder / "uh-huh-trim.wav"
    run("sox", str(raw), str(trimmed), "silence", "1", "0.01", "1%", "reverse", "silence", "1",
        "0.01", "1%", "reverse")
    length_s = float(run("soxi", "-D", str(trimmed)).stdout)
    made["uh-huh"] = (folder / "uh-huh.wav", sox_to_24k(
        trimmed, folder / "uh-huh.wav", "tempo", f"{length_s / 0.3:.4f}", "norm", "-6"))
    return made


# --- devices --------------------------------------------------------------------------------


class Recorder:
    """parec of a sink's monitor; sample n was recorded at ``origin + n / RATE`` (the earliest
    arrival taken back by the samples that came with it, whatever the load)."""

    def __init__(self, sink: str) -> None:
        self._proc = subprocess.Popen(
            ["parec", "--latency-msec=5", "--format=s16le", f"--rate={RATE}", "--channels=1",
             "--raw", "-d", f"{sink}.monitor"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._chunks: list[bytes] = []
        self.total = 0
        self.origin = float("inf")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while data := os.read(fd, 960):
            self._chunks.append(data)
            self.total += len(data) // 2
            self.origin = min(self.origin, time.monotonic() - self.total / RATE)

    def index_at(self, moment: float) -> int:
        return int((moment - self.origin) * RATE)

    def tail_loud(self, ms: int) -> bool:
        """Whether any of the last ``ms`` recorded was sound."""
        need = ms * MS * 2
        got, parts = 0, []
        for chunk in reversed(self._chunks[-(need // 960 + 2):]):
            parts.append(chunk)
            got += len(chunk)
        raw = b"".join(reversed(parts))[-need:]
        tail = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2")
        return bool(tail.size and np.abs(tail.astype(np.int32)).max() > LOUD)

    def sounding_s(self, since: int) -> float:
        """Seconds of sound recorded after sample ``since``."""
        raw = b"".join(self._chunks)
        return sounding_ms(np.frombuffer(raw[since * 2 : len(raw) // 2 * 2], dtype="<i2")) / 1000

    def stop(self) -> Pcm:
        self._proc.terminate()
        self._proc.wait(timeout=DEADLINE_S)
        self._thread.join(timeout=DEADLINE_S)
        raw = b"".join(self._chunks)
        return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").copy()


def unload_loopbacks() -> None:
    """Unload loopbacks an interrupted run left in the lab's own daemon."""
    for line in run("pactl", "list", "short", "modules").stdout.splitlines():
        if "module-loopback" in line and "source=ci_speaker.monitor" in line:
            run("pactl", "unload-module", line.split("\t")[0])


@contextlib.contextmanager
def echo(room: Room) -> Iterator[None]:
    unload_loopbacks()
    if room.level_db is None:
        yield
        return
    module = run("pactl", "load-module", "module-loopback", "source=ci_speaker.monitor",
                 "sink=ci_mic", f"latency_msec={room.delay_ms}", "source_dont_move=true",
                 "sink_dont_move=true").stdout.strip()
    try:
        for _ in range(600):
            mine = [block.split()[0].lstrip("#") for block in
                    run("pactl", "list", "sink-inputs").stdout.split("Sink Input ")[1:]
                    if f"Owner Module: {module}\n" in block]
            if mine:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("the loopback's sink input never appeared")
        run("pactl", "set-sink-input-volume", mine[0], f"{room.level_db:.1f}dB")
        yield
    finally:
        run("pactl", "unload-module", module)


def wait_for(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# --- clients --------------------------------------------------------------------------------


class Client:
    """A client subprocess whose JSON lines (stderr for bargein, stdout for seed) are kept."""

    def __init__(self, cmd: list[str], json_on_stderr: bool) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY")}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, text=True)
        self.records: list[tuple[float, dict[str, Any]]] = []
        self.other: list[str] = []
        stream = self.proc.stderr if json_on_stderr else self.proc.stdout
        quiet = self.proc.stdout if json_on_stderr else self.proc.stderr
        threading.Thread(target=self._read, args=(stream, True), daemon=True).start()
        threading.Thread(target=self._read, args=(quiet, False), daemon=True).start()

    def _read(self, stream: Any, keep: bool) -> None:
        for line in stream:
            if keep and line.startswith("{"):
                self.records.append((time.monotonic(), json.loads(line)))
            else:
                self.other.append(line)

    def ready(self) -> bool:
        return any(r.get("event") == "ready" or r.get("dest") == "listening"
                   for _, r in self.records)

    def interruptions(self) -> list[tuple[float, dict[str, Any]]]:
        return [(at, r) for at, r in self.records if r.get("event") == "interrupted"]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def talk_help() -> str:
    return run(sys.executable, "-m", "bargein", "talk", "--help").stdout


def start_client(mode: str, flags: list[str], url: str) -> Client:
    if mode == "seed":
        return Client([sys.executable, str(REPO / "bench" / "lab" / "seed_client.py"), url],
                      json_on_stderr=False)
    return Client([sys.executable, "-m", "bargein", "talk", "--url", url, "--log-format",
                   "json", "--log-level", "info", *flags], json_on_stderr=True)


@contextlib.contextmanager
def simulator(script: Path) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "bargein", "sim", "--port", str(port),
                             "--script", str(script), "--voice", "espeak"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if "ws://" not in first:
            raise RuntimeError(f"bargein sim did not start: {first!r}")
        yield f"ws://127.0.0.1:{port}/v1"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            proc.kill()


# --- one room, one client -------------------------------------------------------------------


@dataclass
class Stimulus:
    kind: str
    played_at: float  # monotonic, when paplay was started (only to find it in the recording)


@dataclass
class Trial:
    kind: str
    playing: bool  # the reply was sounding at the onset
    cut: bool = False
    duck_ms: float | None = None
    silence_ms: float | None = None
    truncate_err_ms: float | None = None
    resumed: bool = False


@dataclass
class Result:
    trials: list[Trial] = field(default_factory=list)
    self_cuts: int = 0
    client_self_cuts: int = 0
    speech_s: float = 0.0
    echo_db: float | None = None


def play(path: Path) -> None:
    run("paplay", "-d", "ci_mic", str(path))


def prompted(played: list[Stimulus], fx: dict[str, tuple[Path, Pcm]]) -> None:
    played.append(Stimulus("prompt", time.monotonic()))
    play(fx["prompt"][0])


def session(client: Client, speaker: Recorder, fx: dict[str, tuple[Path, Pcm]],
            plan: list[str], echo_s: float, min_speech_s: float) -> list[Stimulus]:
    """First the echo phase: prompts whenever all is quiet, no other user sound, until
    ``min_speech_s`` of assistant sound or ``echo_s`` have passed (an echo that interrupts
    the assistant keeps it talking by itself). Then each trial: a prompt, the stimulus 1.5 s
    into the reply's sound, quiet again."""
    played: list[Stimulus] = []
    if not wait_for(client.ready, DEADLINE_S):
        raise RuntimeError("the client never became ready: " + "".join(client.other[-5:]))
    time.sleep(0.5)
    deadline = time.monotonic() + echo_s
    base = speaker.total
    while time.monotonic() < deadline and speaker.sounding_s(base) < min_speech_s:
        left = deadline - time.monotonic()
        if wait_for(lambda: not speaker.tail_loud(QUIET_MS), left) and speaker.sounding_s(
                base) < min_speech_s and time.monotonic() < deadline:
            prompted(played, fx)
            # the reply comes after the server's end of turn and its latency: wait for it
            wait_for(lambda: speaker.tail_loud(30), min(10.0, max(0.0, left)))
    for kind in plan:
        wait_for(lambda: not speaker.tail_loud(QUIET_MS), 20.0)
        prompted(played, fx)
        if not wait_for(lambda: speaker.tail_loud(30), 20.0):
            continue
        time.sleep(1.5)
        played.append(Stimulus(kind, time.monotonic()))
        play(fx[kind][0])
        wait_for(lambda: not speaker.tail_loud(QUIET_MS), 30.0)
    return played


def bursts(samples: Pcm, gap: int) -> list[tuple[int, int]]:
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > LOUD)
    spans: list[tuple[int, int]] = []
    for index in loud.tolist():
        if spans and index - spans[-1][1] < gap:
            spans[-1] = (spans[-1][0], index + 1)
        else:
            spans.append((index, index + 1))
    return spans


def position_in(reference: Pcm, piece: Pcm) -> int:
    """Where ``piece`` sits in ``reference``: the offset of greatest normalised correlation,
    so a piece played at another gain (ducked) is found as well (least squares is not: it
    takes a ducked piece for a quiet stretch of the reply)."""
    ref = reference.astype(np.float64)
    rec = piece.astype(np.float64)
    n = len(rec)
    energy = np.concatenate(([0.0], np.cumsum(ref**2)))
    cross = np.correlate(ref, rec, mode="valid")
    return int(np.argmax(cross / np.sqrt(energy[n:] - energy[:-n] + 1.0)))


def onset_in(mic: Pcm, fixture: Pcm, around: int) -> int:
    """The sample where ``fixture``'s first sound is in the microphone's recording."""
    lo = max(0, around - RATE // 2)
    window = mic[lo : around + 2 * RATE + fixture.size].astype(np.float64)
    if window.size <= fixture.size:
        return around
    score = np.correlate(window, fixture.astype(np.float64), mode="valid")
    first = int(np.flatnonzero(np.abs(fixture.astype(np.int32)) > 300)[0])
    return lo + int(np.argmax(score)) + first


def sounding_ms(samples: Pcm) -> float:
    """Milliseconds of sound, in 0.5 ms windows (silence between words is not counted)."""
    window = MS // 2
    usable = samples.size // window * window
    peaks = np.abs(samples[:usable].astype(np.int32)).reshape(-1, window).max(axis=1)
    return float(np.count_nonzero(peaks > LOUD)) / 2


def block_db(samples: Pcm) -> npt.NDArray[np.float64]:
    usable = samples.size // (10 * MS) * (10 * MS)
    blocks = samples[:usable].astype(np.float64).reshape(-1, 10 * MS)
    return np.asarray(10 * np.log10(np.mean(blocks**2, axis=1) + 1.0), dtype=np.float64)


def analyse(played: list[Stimulus], speaker: Recorder, heard: Pcm, mic_rec: Recorder, mic: Pcm,
            client: Client, reply: Pcm, fx: dict[str, tuple[Path, Pcm]]) -> Result:
    result = Result(speech_s=sounding_ms(heard) / 1000)
    reply_spans = bursts(reply, gap=1)
    longest_pause = max((b[0] - a[1] for a, b in itertools.pairwise(reply_spans)),
                        default=0)
    gap = max(300 * MS, longest_pause + 100 * MS)
    reply_end = reply_spans[-1][1]
    spans = bursts(heard, gap)

    def heard_to(end: int) -> float:
        """ms of the reply played when the burst ending at ``end`` stopped (fade excluded)."""
        piece = heard[max(0, end - FADE - 20 * MS) : end - FADE]
        if piece.size < 20 * MS:
            return 0.0
        return (position_in(reply, piece) + 20 * MS) / MS

    def heard_span(end: int) -> tuple[float, float]:
        """The ms of the reply the burst ending at ``end`` can have played: from where its
        sound ended to where the reply sounds again after the fade's length."""
        lo = heard_to(end)
        after = int(lo * MS) + FADE
        loud = np.flatnonzero(np.abs(reply[after:].astype(np.int32)) > LOUD / DUCK_GAIN)
        return lo, (after + int(loud[0]) if loud.size else reply.size) / MS

    cut_ends = [end for _, end in spans if heard_to(end) < reply_end / MS - END_MARGIN_MS]
    onsets: list[tuple[Stimulus, int, int]] = []  # stimulus, onset on the speaker, its end
    for stim in played:
        fixture = fx[stim.kind][1]
        in_mic = onset_in(mic, fixture, mic_rec.index_at(stim.played_at))
        at = speaker.index_at(mic_rec.origin + in_mic / RATE)
        onsets.append((stim, at, at + fixture.size))
    attributed: set[int] = set()
    records = client.interruptions()
    used_records: set[int] = set()
    for stim, at, end in onsets:
        if stim.kind == "prompt":  # a reply cut while a prompt sounds is cut by the user
            attributed.update(e for e in cut_ends if at < e <= end + PROMPT_CUT_MS * MS)
            continue
        trial = Trial(stim.kind, playing=bool(
            at > 200 * MS and np.abs(heard[at - 200 * MS : at].astype(np.int32)).max() > LOUD))
        mine = [e for e in cut_ends if at < e <= end + int(CUT_WINDOW_S * RATE)]
        if trial.playing:
            if mine:
                trial.cut = True
                attributed.add(mine[0])
                trial.silence_ms = (mine[0] - at) / MS
                trial.duck_ms = duck_after(heard, reply, at, mine[0])
                trial.truncate_err_ms = truncate_error(
                    records, used_records, speaker, at, heard_span(mine[0]))
            else:
                ending = [e for _, e in spans if e > at]
                played_out = reply_end / MS - END_MARGIN_MS
                trial.resumed = bool(ending) and heard_to(ending[0]) >= played_out
        result.trials.append(trial)
    result.self_cuts = len([e for e in cut_ends if e not in attributed])
    windows = [(speaker.origin + at / RATE - 0.1, speaker.origin + end / RATE
                + (PROMPT_CUT_MS / 1000 if stim.kind == "prompt" else CUT_WINDOW_S))
               for stim, at, end in onsets]
    result.client_self_cuts = sum(
        1 for at, r in records if r.get("playing", True) and r.get("settlements", [1])
        and not any(lo <= at <= hi for lo, hi in windows))
    result.echo_db = echo_level(heard, mic, speaker.index_at(mic_rec.origin),
                                [(at, end) for _, at, end in onsets])
    return result


def echo_level(heard: Pcm, mic: Pcm, shift: int, user: list[tuple[int, int]]) -> float | None:
    """The microphone's level over the speaker's while the assistant sounded and the user was
    silent (dB); ``shift`` is the speaker's sample index of the microphone's sample 0."""
    first, last = max(0, -shift), min(mic.size, heard.size - shift)
    if last - first < RATE:
        return None
    spk = heard[first + shift : last + shift].astype(np.float64)
    mask = np.abs(spk) > LOUD
    for at, end in user:  # speaker indices; a second of margin either side
        mask[max(0, at - shift - first - RATE) : max(0, end - shift - first + RATE)] = False
    if mask.sum() < RATE:
        return None
    mic_power = float(np.mean(mic[first:last].astype(np.float64)[mask] ** 2))
    return float(10 * np.log10((mic_power + 1.0) / np.mean(spk[mask] ** 2)))


def duck_after(heard: Pcm, reply: Pcm, at: int, silent_at: int) -> float:
    """ms from ``at`` to the first 10 ms block 6 dB under the reply's own level there."""
    before = heard[max(0, at - 100 * MS) : at]
    start = position_in(reply, before) + before.size if before.size else 0
    span = silent_at - at + 10 * MS
    rec_db = block_db(heard[at : at + span])
    ref = reply[start : start + span]
    ref_db = block_db(np.concatenate((ref, np.zeros(max(0, span - ref.size), dtype=np.int16))))
    for k in range(min(rec_db.size, ref_db.size)):
        if ref_db[k] > 50 and rec_db[k] < ref_db[k] - 6:
            return float(k * 10)
    return (silent_at - at) / MS


def truncate_error(records: list[tuple[float, dict[str, Any]]], used: set[int],
                   speaker: Recorder, at: int, heard: tuple[float, float]) -> float | None:
    """How far the audio_end_ms bargein sent for this cut lies outside ``heard`` (the ms of
    the reply the speaker can have played, ``heard_span``): negative below it, positive
    above it."""
    onset_time = speaker.origin + at / RATE
    for index, (when, record) in enumerate(records):
        if index in used or when < onset_time - 0.1 or not record.get("settlements"):
            continue
        used.add(index)
        sent = float(max(s.get("audio_end_ms") or 0 for s in record["settlements"]))
        lo, hi = heard
        return sent - lo if sent < lo else max(0.0, sent - hi)
    return None


def measure(mode: str, flags: list[str], room: Room, fx: dict[str, tuple[Path, Pcm]],
            script: Path, reply: Pcm, trials: int, echo_s: float, min_speech_s: float,
            keep: Path | None) -> Result:
    plan = [kind for _ in range(trials) for kind in STIMULI]
    with simulator(script) as url, echo(room):
        speaker, mic_rec = Recorder("ci_speaker"), Recorder("ci_mic")
        client = start_client(mode, flags, url)
        try:
            played = session(client, speaker, fx, plan, echo_s, min_speech_s)
        finally:
            client.stop()
            time.sleep(0.2)
            heard, mic = speaker.stop(), mic_rec.stop()
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        name = f"{mode}_{room}".replace(" ", "_")
        write_wav(keep / f"{name}_speaker.wav", heard.tobytes())
        write_wav(keep / f"{name}_mic.wav", mic.tobytes())
        (keep / f"{name}_client.jsonl").write_text("".join(
            json.dumps({"at": at, **record}) + "\n" for at, record in client.records))
        (keep / f"{name}_played.txt").write_text("".join(
            f"{stim.kind} {speaker.index_at(stim.played_at) / RATE:.3f}\n" for stim in played))
    return analyse(played, speaker, heard, mic_rec, mic, client, reply, fx)


# --- the table ------------------------------------------------------------------------------


def pct(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(np.ceil(0.95 * len(ordered))) - 1)]
    return f"{statistics.median(ordered):.0f}/{p95:.0f}"


def row(room: Room, mode: str, result: Result) -> str:
    def count(kinds: tuple[str, ...], what: str) -> str:
        mine = [t for t in result.trials if t.kind in kinds and t.playing]
        return f"{sum(getattr(t, what) for t in mine)}/{len(mine)}"

    cuts = [t for t in result.trials if t.kind == "speech" and t.cut]
    minutes = result.speech_s / 60
    per_min = f"{result.self_cuts / minutes:.0f}" if minutes else "-"
    cells = [
        f"{per_min} ({result.client_self_cuts})",
        f"{result.speech_s:.0f}",
        "-" if result.echo_db is None else f"{result.echo_db:+.0f}",
        count(("speech",), "cut"),
        count(("cough",), "cut"),
        count(("uh-huh",), "cut"),
        pct([t.duck_ms for t in cuts if t.duck_ms is not None]),
        pct([t.silence_ms for t in cuts if t.silence_ms is not None]),
        pct([abs(t.truncate_err_ms) for t in cuts if t.truncate_err_ms is not None]),
        count(("cough", "uh-huh"), "resumed"),
    ]
    return f"{room!s:<16}{mode:<20}" + "".join(
        cell.rjust(width) for cell, width in zip(cells, WIDTHS, strict=True))


COLUMNS = ("self/min (said)", "spk s", "echo", "barge-in", "cough", "uh-huh", "duck ms",
           "silence ms", "trunc ms", "resumed")
WIDTHS = (16, 7, 6, 9, 7, 8, 11, 12, 10, 9)
HEADER = f"{'room':<16}{'mode':<20}" + "".join(
    name.rjust(width) for name, width in zip(COLUMNS, WIDTHS, strict=True))


def parse_room(spec: str) -> Room:
    if spec == "none":
        return Room(None, 0)
    level, _, delay = spec.partition("@")
    return Room(float(level), int(delay or 30))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true",
                        help="the issue's targets: 60 s of assistant speech and 10 trials each")
    parser.add_argument("--modes", default="",
                        help="comma-separated modes to run (default: every offered one, and seed)")
    parser.add_argument("--rooms", default="",
                        help="rooms to run instead, e.g. 'none,-20@30,-35@120' (dB@ms)")
    parser.add_argument("--echo-seconds", type=float, metavar="S",
                        help="length of the echo phase (prompts only), instead of 10 (--full: 180)")
    parser.add_argument("--trials", type=int, metavar="N",
                        help="trials of each stimulus, instead of 1 (--full: 10)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="write each run's recordings, records and stimulus times here")
    parser.add_argument("--mode", action="append", default=[], metavar="NAME=FLAGS",
                        help="another bargein talk mode, e.g. 'vad-silero=--vad-local silero'")
    args = parser.parse_args()
    modes = offered_modes(talk_help())
    for extra in args.mode:
        name, _, flags = extra.partition("=")
        modes[name] = shlex.split(flags)
    modes["seed"] = []
    if args.modes:
        wanted = args.modes.split(",")
        unknown = [m for m in wanted if m not in modes]
        if unknown:
            parser.error(f"modes not offered by this bargein talk: {', '.join(unknown)}")
        modes = {m: modes[m] for m in wanted}
    if args.full:
        rooms = [Room(None, 0)] + [Room(level, delay) for level in (-35.0, -28.0, -20.0)
                                   for delay in (30, 120)]
        trials, echo_s, min_speech_s = 10, 180.0, 60.0
    else:
        rooms = [Room(None, 0), Room(-35.0, 30), Room(-20.0, 120)]
        trials, echo_s, min_speech_s = 1, 10.0, 10.0
    if args.rooms:
        rooms = [parse_room(spec) for spec in args.rooms.split(",")]
    if args.echo_seconds is not None:
        echo_s = min_speech_s = args.echo_seconds
    if args.trials is not None:
        trials = args.trials
    # a daemon of its own, so that the loopback never reaches tests running beside the lab
    os.environ.setdefault("BARGEIN_PULSE_DIR", "/tmp/bargein-lab-pulse")
    from tests.support.pulse_env import ensure_pulse

    ensure_pulse()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the loopback is unloaded
    print(f"lab: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}; modes: "
          + ", ".join(f"{m} [{' '.join(f)}]" for m, f in modes.items()), flush=True)
    with tempfile.TemporaryDirectory(prefix="bargein-lab-") as tmp:
        folder = Path(tmp)
        fx = fixtures(folder)
        script = folder / "script.txt"
        script.write_text((REPLY + "\n") * 200)
        reply = np.frombuffer(speak(REPLY, "espeak"), dtype="<i2")
        write_wav(folder / "reply.wav", reply.tobytes())
        print(HEADER, flush=True)
        for room in rooms:
            for mode, flags in modes.items():
                try:
                    result = measure(mode, flags, room, fx, script, reply, trials, echo_s,
                                     min_speech_s, args.keep)
                except RuntimeError as exc:  # one client that fails does not end the lab
                    print(f"{room!s:<16}{mode:<20} failed: {exc}".splitlines()[0], flush=True)
                    continue
                print(row(room, mode, result), flush=True)
    print("self/min: cuts no stimulus explains, per minute of assistant sound on the speaker "
          "(said: the client's own barge-in records outside stimuli); barge-in, cough, uh-huh: "
          "replies cut / trials with the reply sounding; duck, silence: onset -> p50/p95 in "
          "samples; trunc: |audio_end_ms - played| p50/p95; resumed: cough and uh-huh trials "
          "whose reply played to its end; echo: mic over speaker level while it spoke (dB)")


if __name__ == "__main__":
    main()
