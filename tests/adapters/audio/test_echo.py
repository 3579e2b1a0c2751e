"""The echo canceller offline: synthetic rooms (the reference delayed, attenuated and smeared by
a short tail), the reference handed ahead with its DAC times the way a speaker hands it, the
capture fed in 20 ms frames with its ADC times. Verdicts are energies of sample ranges."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from bargein.adapters.audio.echo import EchoCanceller
from bargein.adapters.audio.protocols import AudioFrame
from bargein.adapters.audio.wav import read_wav_24k_mono
from bargein.errors import EchoCancellerError
from bargein.sim.voice import speak

RATE = 24_000
MS = RATE // 1000
FRAME = 20 * MS
T0_MS = 5_000.0  # capture and reference share a clock that does not start at zero
Pcm = npt.NDArray[np.int16]
ASSISTANT = (
    "The lighthouse on the harbour was built in eighteen fifty two, after a storm wrecked "
    "three ships on the rocks. It was first lit with oil lamps, and later with a great lens "
    "that could be seen twenty miles out to sea."
)


@pytest.fixture(scope="module")
def assistant() -> Pcm:
    return np.frombuffer(speak(ASSISTANT, "espeak"), dtype="<i2")


@pytest.fixture(scope="module")
def user() -> Pcm:
    path = Path(__file__).resolve().parents[3] / "bargein" / "data" / "demo_user.wav"
    return np.frombuffer(read_wav_24k_mono(path), dtype="<i2")


def room(playback: Pcm, delay_ms: int, level_db: float) -> npt.NDArray[np.float64]:
    """What a microphone hears of ``playback``: delayed, at ``level_db``, with a decaying tail."""
    rng = np.random.default_rng(7)
    tail = np.zeros(120 * MS)
    tail[0] = 1.0
    tail[24:] = 0.3 * rng.standard_normal(len(tail) - 24) * np.exp(-np.arange(24, len(tail)) / 720)
    echo = np.convolve(playback.astype(np.float64), tail)[: len(playback)]
    echo = np.concatenate([np.zeros(delay_ms * MS), echo])[: len(playback)]
    scale = float(np.sqrt(np.mean(playback.astype(np.float64) ** 2) / np.mean(echo**2)))
    return np.asarray(echo * scale * 10 ** (level_db / 20))  # relative to the playback's


def run(canceller: EchoCanceller, playback: Pcm, mic: npt.NDArray[np.float64],
        ref_shift_ms: float = 0.0) -> Pcm:
    """Hand the whole playback as reference (1 s ahead, 100 ms writes, DAC times shifted by
    ``ref_shift_ms``), then the mic frame by frame; return the cleaned capture."""
    captured = np.clip(np.rint(mic), -32768, 32767).astype(np.int16)
    out = np.zeros_like(captured)
    written = 0
    for start in range(0, len(captured) - FRAME + 1, FRAME):
        while written < min(len(playback), start + RATE):  # the speaker writes ahead
            chunk = playback[written : written + 100 * MS]
            canceller.reference(chunk, T0_MS + written / MS + ref_shift_ms)
            written += len(chunk)
        frame = AudioFrame(captured[start : start + FRAME].tobytes(), T0_MS + start / MS)
        out[start : start + FRAME] = np.frombuffer(canceller.process(frame).pcm, dtype="<i2")
    return out


def energy_db(x: npt.NDArray[np.generic], mask: npt.NDArray[np.bool_]) -> float:
    frames = x[: len(mask) * FRAME].astype(np.float64).reshape(-1, FRAME)
    return float(10 * np.log10(np.mean(frames[mask] ** 2) + 1e-9))


def frame_energy(x: npt.NDArray[np.generic]) -> npt.NDArray[np.float64]:
    n = len(x) // FRAME
    return np.asarray(np.mean(x[: n * FRAME].astype(np.float64).reshape(n, FRAME) ** 2, axis=1))


@pytest.mark.parametrize(("delay_ms", "level_db"), [(30, -20.0), (60, 0.0), (150, 8.0)])
def test_echo_alone_is_removed_by_20_db_or_more(assistant: Pcm, delay_ms: int,
                                               level_db: float) -> None:
    echo = room(assistant, delay_ms, level_db)
    canceller = EchoCanceller()
    out = run(canceller, assistant, echo)
    echo_frames = frame_energy(echo) > 100.0**2  # above -50 dBFS
    echo_frames[:50] = False  # the first second: warm-up and convergence
    erle = energy_db(np.rint(echo), echo_frames) - energy_db(out, echo_frames)
    assert erle >= 20.0, erle
    assert canceller.erle_db is not None and canceller.erle_db >= 20.0
    stats = canceller.stats
    assert stats.erle_db is not None and stats.erle_db >= 20.0
    assert stats.late_ms == 0 and stats.errors == 0


def test_a_reference_placed_after_its_echo_cancels_little(assistant: Pcm) -> None:
    """The DAC times are what align the two: the same room with the reference stamped 100 ms
    late (its echo is then heard before it is fed) loses most of the cancellation."""
    echo = room(assistant, 60, 0.0)
    echo_frames = frame_energy(echo) > 100.0**2
    echo_frames[:50] = False
    out = run(EchoCanceller(), assistant, echo, ref_shift_ms=160.0)
    assert energy_db(np.rint(echo), echo_frames) - energy_db(out, echo_frames) < 12.0


def test_the_users_voice_over_the_echo_keeps_its_level(assistant: Pcm, user: Pcm) -> None:
    echo = room(assistant, 60, -20.0)
    voice = np.zeros(len(assistant))
    n = min(len(user), len(voice) - 3 * RATE)
    voice[3 * RATE : 3 * RATE + n] = user[:n]
    out = run(EchoCanceller(), assistant, echo + voice)
    speaking = frame_energy(voice) > 300.0**2  # the user's loud frames, over the echo
    kept = energy_db(out, speaking) - energy_db(np.rint(voice), speaking)
    assert abs(kept) <= 3.0, kept


def test_the_first_200_ms_of_echo_are_muted_then_it_runs(assistant: Pcm) -> None:
    echo = room(assistant, 60, -6.0)
    canceller = EchoCanceller(warmup_ms=200.0)
    assert canceller.warming_up
    out = run(canceller, assistant, echo)
    first = int(np.flatnonzero(np.abs(assistant) > 100)[0]) // FRAME * FRAME
    assert not np.any(out[first : first + 160 * MS])  # muted while converging
    assert not canceller.warming_up


def test_reference_written_too_late_is_counted(assistant: Pcm) -> None:
    canceller = EchoCanceller()
    silence = np.zeros(10 * FRAME, dtype=np.int16)
    canceller.reference(silence, T0_MS)
    for k in range(5):
        canceller.process(AudioFrame(bytes(FRAME * 2), T0_MS + 20 * k))
    canceller.reference(assistant[: 50 * MS], T0_MS)  # its time was fed already
    assert canceller.stats.late_ms >= 50 - canceller.lead_ms - 1  # all but what lies past the read


def test_frames_must_be_whole_10_ms() -> None:
    canceller = EchoCanceller()
    with pytest.raises(EchoCancellerError, match="10 ms"):
        canceller.process(AudioFrame(bytes(15 * MS * 2), 0.0))


def test_a_lead_beyond_what_the_canceller_can_reach_is_refused() -> None:
    with pytest.raises(EchoCancellerError):
        EchoCanceller(lead_ms=600)


def test_without_livekit_the_error_is_one_typed_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "livekit", None)  # import livekit now raises ImportError
    with pytest.raises(EchoCancellerError, match="pip install") as caught:
        EchoCanceller()
    assert "\n" not in str(caught.value)
