"""The command line, run as a user runs it: a real process, real sockets, real files."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

from bargein.adapters.audio.wav import write_wav
from bargein.sim import SimConfig, Simulator
from bargein.sim.voice import speak
from tests.support.sim_support import check_client_events, first_sound, serving, silence, tone

SCRIPT = (
    "This first answer is long enough that the user will surely cut in before it ends, "
    "which is the whole point of this test.",
    "Short second answer.",
)

pytestmark = pytest.mark.e2e
DEADLINE_S = 60.0
"""How long a test waits for what it expects: generous, since a busy machine is slow, and
waiting costs nothing when it is not."""
CONNECT_TIMEOUT_S = 10.0
"""The transport's handshake timeout (RealtimeTransport's connect_timeout)."""
USER = silence(200) + tone(600) + silence(1400) + tone(500) + silence(300)
FAKE_KEY = "sk-test-THISKEYMUSTNEVERBESHOWN0123456789"


def read_pcm(path: Path) -> np.ndarray[Any, Any]:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 24_000)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def env(**changes: str | None) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY",
                                                           "AZURE_OPENAI_API_KEY")}
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


async def bargein(*args: str, environ: dict[str, str] | None = None,
                  timeout: float = DEADLINE_S) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bargein", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=environ if environ is not None else env(),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        # not ended in time: stop it (SIGINT, as Ctrl-C) and fail with what it had said,
        # so the state it was stuck in is in the report rather than lost with the process
        proc.send_signal(signal.SIGINT)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 10)
        except TimeoutError:
            proc.kill()
            out, err = await proc.communicate()
        pytest.fail(f"bargein {' '.join(args)} did not end within {timeout:g} s\n"
                    f"--- stdout (tail) ---\n{out.decode()[-4000:]}\n"
                    f"--- stderr (tail) ---\n{err.decode()[-4000:]}")
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def one_clear_line(code: int, err: str, fragment: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("bargein: ")]
    assert len(lines) == 1 and fragment in lines[0], err
    assert FAKE_KEY not in err


class Played(NamedTuple):
    """What ``out`` holds of a reply played from a given sample."""

    samples: int
    """Samples of the reply found in order (silent ones at the end included)."""
    sounding: int
    """Samples of the reply up to its last sounding one found: where a cut inside the reply's
    own silence (a pause between words) was can only be known to lie between the two."""
    end: int
    """The index in ``out`` where the reply stops."""

    @property
    def quiet_from(self) -> int:
        """The index in ``out`` after its last sounding sample of the reply."""
        return self.end - (self.samples - self.sounding)


def follow(out: np.ndarray[Any, Any], reply: np.ndarray[Any, Any], at: int) -> Played:
    """Play ``reply`` along ``out`` from sample ``at`` and see how far ``out`` holds it.
    Silence inside is skipped when the reply goes on after it: the sink plays silence while
    audio is late (an underrun: a stalled server, a busy machine), which is not a fault;
    anything else ends the reply there."""
    i, j = at, 0
    while j < len(reply) and i < len(out):
        n = min(len(out) - i, len(reply) - j)
        differ = np.flatnonzero(out[i : i + n] != reply[j : j + n])
        if not len(differ):
            i, j = i + n, j + n
            continue
        i, j = i + int(differ[0]), j + int(differ[0])
        if out[i] != 0:
            break  # a cut (its fade) or other audio
        sounding = np.flatnonzero(out[i:])
        if not len(sounding):
            break
        resumed = i + int(sounding[0])
        n = min(240, len(out) - resumed, len(reply) - j)
        if not np.array_equal(out[resumed : resumed + n], reply[j : j + n]):
            break  # silence, then something else: the reply ended at i
        i = resumed
    heard = np.flatnonzero(reply[:j])
    return Played(j, int(heard[-1]) + 1 if len(heard) else 0, i)


CHUNK = 2400
"""Samples per audio delta: the simulator's 100 ms chunks."""
FADE = 120
"""Samples of the fade a flush plays: 5 ms."""


def _fades(out: np.ndarray[Any, Any], at: int, then: np.ndarray[Any, Any]) -> bool:
    """Whether ``out`` fades out at ``at`` what would have come next (``then``): never louder,
    never the other sign, then silent for a block (or to the end)."""
    faded = out[at : at + len(then)].astype(np.int32)
    ref = then[: len(faded)].astype(np.int32)
    if np.any(np.abs(faded) > np.abs(ref) + 1) or np.any(faded * ref < 0):
        return False
    return not out[at + len(then) : at + len(then) + 240].any()


def _start_of(out: np.ndarray[Any, Any], at: int, piece: np.ndarray[Any, Any]) -> int | None:
    """Where ``piece`` starts if it is what sounds next in ``out`` from ``at`` (silence before
    it: an underrun, or the piece's own quiet start), by its first sound; None if it cannot."""
    sound = np.flatnonzero(piece)
    if not len(sound):
        return at  # a silent piece: here, if anywhere
    ahead = np.flatnonzero(out[at:])
    if not len(ahead):
        return None
    start = at + int(ahead[0]) - int(sound[0])
    return start if start >= at else None


def _same_for(out: np.ndarray[Any, Any], start: int, piece: np.ndarray[Any, Any]) -> int:
    """How many samples of ``piece`` ``out`` holds from ``start``."""
    n = min(len(piece), len(out) - start)
    differ = np.flatnonzero(out[start : start + n] != piece[:n])
    return int(differ[0]) if len(differ) else n


def follow_deltas(out: np.ndarray[Any, Any], reply: np.ndarray[Any, Any], at: int
                  ) -> tuple[int, int, bool]:
    """Play ``reply`` along ``out`` from ``at`` delta by delta, as a client that was sent its
    deltas with faults plays them: (samples of the reply found, index in ``out`` after them,
    whether it ended in a cut: a fade).

    Silence between deltas is skipped (an underrun: a delta arrived late, as a stalled server
    or a busy machine makes it). Each delta plays once and in order (the simulator's faults
    never reorder one item's audio); a delta played in part ends the reply: a cut, if its
    5 ms fade follows."""
    deltas = [reply[s : s + CHUNK] for s in range(0, len(reply), CHUNK)]
    i, samples = at, 0
    for k, delta in enumerate(deltas):
        start = _start_of(out, i, delta)
        if start is None:
            return samples, i, False
        same = _same_for(out, start, delta)
        if same < len(delta):
            # in part: a cut, if the fade of what came next follows (a few samples alike
            # after a silence are a coincidence: the synthetic voice repeats itself)
            at_cut = k * CHUNK + same
            if _fades(out, start + same, reply[at_cut : at_cut + FADE]):
                return samples + same, start + same, True
            return samples, i, False
        samples, i = samples + same, start + same
    return samples, i, False


def explain(out: np.ndarray[Any, Any], replies: list[np.ndarray[Any, Any]]
            ) -> list[tuple[int, int, int]]:
    """Account for every sound in ``out`` as replies played from their start: a list of
    (reply index, start sample, samples played). Anything else is stale audio: fail."""
    pieces: list[tuple[int, int, int]] = []
    pos = 0
    while True:
        sounding = np.flatnonzero(out[pos:])
        if not len(sounding):
            return pieces
        at = pos + int(sounding[0])
        best: tuple[int, int, int, bool] = (-1, 0, 0, False)  # (reply, samples, end, cut)
        for index, reply in enumerate(replies):
            samples, end, cut = follow_deltas(out, reply, pos)
            best = max(best, (index, samples, end, cut), key=lambda x: (x[1], x[3]))
        # a reply's start, whole or up to a cut (its fade), or at least one whole delta
        assert best[3] or best[1] >= CHUNK, f"unexplained (stale?) audio at {at / 24:.0f} ms"
        pieces.append((best[0], at, best[1]))
        whole = best[1] == len(replies[best[0]])
        pos = best[2] + (0 if whole else 240)  # a cut ends with a 5 ms fade


async def lines_until(
    proc: asyncio.subprocess.Process, enough: Callable[[list[str]], bool]
) -> list[str]:
    """The process's stdout lines, read until ``enough(lines)`` (or fail after DEADLINE_S)."""
    assert proc.stdout is not None
    stdout = proc.stdout
    seen: list[str] = []

    async def read() -> list[str]:
        while not enough(seen):
            line = await stdout.readline()
            if not line:
                raise AssertionError("the output ended first:\n" + "".join(seen))
            seen.append(line.decode())
        return seen

    try:
        return await asyncio.wait_for(read(), DEADLINE_S)
    except TimeoutError:
        raise AssertionError(f"not seen within {DEADLINE_S:g} s:\n" + "".join(seen)) from None


def json_logs(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


# --- errors: one clear line, never a traceback -----------------------------------------

async def test_missing_key() -> None:
    code, _, err = await bargein("talk", "--input", "x.wav", "--output", "y.wav")
    one_clear_line(code, err, "OPENAI_API_KEY")


async def test_missing_azure_key() -> None:
    code, _, err = await bargein("talk", "--azure-resource", "r", "--azure-deployment", "d")
    one_clear_line(code, err, "AZURE_OPENAI_API_KEY")


async def test_unreachable_endpoint(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "in.wav", USER)
    code, _, err = await bargein("talk", "--url", "ws://127.0.0.1:9/v1", "--input", str(wav),
                                 "--output", str(tmp_path / "out.wav"))
    one_clear_line(code, err, "cannot reach 127.0.0.1")


async def test_bad_wav(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav")
    code, _, err = await bargein("talk", "--url", "ws://127.0.0.1:9/v1", "--input", str(bad),
                                 "--output", str(tmp_path / "out.wav"))
    one_clear_line(code, err, "bad.wav")


async def test_rejected_key_never_shows_the_key(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "in.wav", USER)
    config = SimConfig(voice="synthetic", reject_api_keys=frozenset({FAKE_KEY}))
    async with Simulator(config) as sim:
        code, out, err = await bargein(
            "talk", "--url", sim.url, "--input", str(wav), "--output", str(tmp_path / "o.wav"),
            "--send-key", "--log-level", "debug", environ=env(OPENAI_API_KEY=FAKE_KEY))
    one_clear_line(code, err, "rejected the API key")
    assert FAKE_KEY not in out


async def test_plaintext_to_a_remote_host_is_refused(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "in.wav", USER)
    code, _, err = await bargein("talk", "--url", "ws://example.invalid/v1", "--input",
                                 str(wav), "--output", str(tmp_path / "o.wav"),
                                 environ=env(OPENAI_API_KEY=FAKE_KEY))
    one_clear_line(code, err, "plaintext")


async def test_no_audio_device(tmp_path: Path) -> None:
    environ = env(PULSE_SERVER="unix:/nonexistent/pulse", AUDIODEV="null")
    code, _, err = await bargein("talk", "--url", "ws://127.0.0.1:9/v1", "--input", "mic",
                                 "--output", str(tmp_path / "o.wav"), environ=environ)
    one_clear_line(code, err, "")
    assert "audio" in err.lower() or "device" in err.lower() or "microphone" in err.lower()


# --- the conversation, end to end ------------------------------------------------------

async def talk(sim: Simulator, tmp_path: Path, *extra: str, url: str | None = None
               ) -> tuple[np.ndarray[Any, Any], list[dict[str, Any]], str]:
    wav_in = write_wav(tmp_path / "in.wav", USER)
    wav_out = tmp_path / "out.wav"
    code, out, err = await bargein(
        "talk", "--url", url or sim.url, "--input", str(wav_in), "--output", str(wav_out),
        "--log-format", "json", "--log-level", "info", "--linger", "1.5", *extra)
    assert code == 0, err
    assert "Traceback" not in err
    return read_pcm(wav_out), json_logs(err), out


@pytest.mark.parametrize("api", ["ga", "beta"])
async def test_talk_with_a_barge_in(api: str, tmp_path: Path) -> None:
    async with serving(script=SCRIPT, speed=4.0) as sim:
        out, logs, stdout = await talk(sim, tmp_path, "--api", api)
        record = sim.records[0]
    assert record.api == api
    check_client_events(sim, api)
    (truncate,) = record.client_events("conversation.item.truncate")
    (interrupted,) = [x for x in logs if x["event"] == "interrupted"]
    first, second = (np.frombuffer(speak(t, "synthetic"), dtype="<i2") for t in SCRIPT)
    start = first_sound(out) - first_sound(first)
    played = follow(out, first, start)
    assert played.sounding < len(first), "the first reply was cut"
    # silent from at most one block (10 ms) after the interruption reached the client,
    # the 5 ms fade included
    assert played.quiet_from <= interrupted["signal_at_ms"] * 24 + 240 + 120
    # the truncate says exactly what the output holds of that reply
    heard_ms = (played.sounding / 24, played.samples / 24)
    assert heard_ms[0] - 10 <= truncate["audio_end_ms"] <= heard_ms[1] + 10, heard_ms
    # nothing of the interrupted reply follows; the next reply plays whole
    cut = played.end + 240  # its 5 ms fade at most, and a block
    second_start = cut + first_sound(out[cut:]) - first_sound(second)
    assert not out[cut:second_start].any()
    assert follow(out, second, second_start).samples == len(second)
    assert "BARGE-IN" in stdout and "per response:" in stdout


@pytest.mark.parametrize(
    ("faults", "expect"),
    [
        ("late_deltas_after_cancel=5", "dropped"),
        ("disconnect_at=mid_reply", "reconnected"),
        ("error_mid_response=true", "error"),
        ("duplicate_every=7,reorder_every=11,unknown_events=true,malformed_frame_after=30",
         "survived"),
    ],
)
async def test_talk_survives_faults_without_stale_audio(faults: str, expect: str,
                                                        tmp_path: Path) -> None:
    async with serving(script=SCRIPT, speed=4.0) as sim:
        out, logs, _ = await talk(sim, tmp_path, url=f"{sim.url}?sim_faults={faults}")
    check_client_events(sim, "ga")
    replies = [np.frombuffer(speak(t, "synthetic"), dtype="<i2") for t in SCRIPT]
    pieces = explain(out, replies)
    assert pieces, "the assistant was never heard"
    if expect in ("dropped", "survived"):  # a drop or an error cuts the reply in flight
        assert pieces[-1][2] == len(replies[pieces[-1][0]]), "the last reply plays whole"
    if expect == "dropped":
        assert any(x["event"] == "interrupted" for x in logs)
    if expect == "reconnected":
        assert any(x["event"] == "realtime_reconnected_context_lost" for x in logs)
        assert len(sim.records) == 2
    if expect == "error":
        assert any(x["event"] == "server_error" for x in logs)
    if expect == "survived":
        assert any(x["event"] == "protocol_violation" for x in logs)


async def test_ctrl_c_ends_the_conversation_in_order(tmp_path: Path) -> None:
    wav_in = write_wav(tmp_path / "in.wav", USER + silence(20_000))
    async with serving(script=SCRIPT, speed=4.0) as sim:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bargein", "talk", "--url", sim.url, "--input", str(wav_in),
            "--output", str(tmp_path / "out.wav"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env())
        # Ctrl-C while the answer after the barge-in is going
        shown = await lines_until(proc, lambda seen: "".join(seen).count("-> responding") == 2)
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), DEADLINE_S)
        record = sim.records[0]
        await record.wait_closed(DEADLINE_S)
    assert proc.returncode == 130, err.decode()  # as a shell expects after Ctrl-C
    text = "".join(shown) + out.decode()
    assert "session closed (stopped by the user)" in text and "per response:" in text
    assert 'assistant, cut off' in text and "Traceback" not in err.decode()
    assert record.close_code == 1000, "the connection was closed, not abandoned"
    # the output WAV holds the conversation up to the signal, at least to the second answer
    answered_at_s = float(shown[-1].split()[0].rstrip("s"))
    assert read_pcm(tmp_path / "out.wav").size >= answered_at_s * 24_000, "the WAV was written"


async def test_an_unwritable_output_is_refused_before_anything_starts(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "in.wav", USER)
    code, _, err = await bargein("talk", "--url", "ws://127.0.0.1:9/v1", "--input", str(wav),
                                 "--output", "/nonexistent/dir/heard.wav")
    one_clear_line(code, err, "cannot write a WAV file there")


async def test_ctrl_c_while_connecting_stops_at_once(tmp_path: Path) -> None:
    connected = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        await reader.read()  # accepts the TCP connection, never answers the handshake

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    wav = write_wav(tmp_path / "in.wav", USER)
    async with server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bargein", "talk", "--url", f"ws://127.0.0.1:{port}/v1",
            "--input", str(wav), "--output", str(tmp_path / "out.wav"),
            "--log-format", "json", "--log-level", "info",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env())
        await asyncio.wait_for(connected.wait(), DEADLINE_S)  # the handshake is under way
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), DEADLINE_S)
        took = time.monotonic() - sent
    assert proc.returncode == 130, err.decode()
    assert "stopped by the user" in out.decode() and "Traceback" not in err.decode()
    # it gave the handshake up at once: it did not wait for it to answer or time out
    abandoned = [x for x in json_logs(err.decode()) if x["event"] == "connect_abandoned"]
    assert [x["reason"] for x in abandoned] == ["stopped by the user"], err.decode()
    assert took < CONNECT_TIMEOUT_S, f"stopping while connecting took {took:.1f} s"


async def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "in.wav", USER)
    async with serving(script=SCRIPT, speed=4.0) as sim:
        proc = await asyncio.create_subprocess_shell(
            f"{sys.executable} -m bargein talk --url {sim.url} --input {wav} "
            f"--output {tmp_path / 'out.wav'} --linger 0.5 | head -1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env())
        out, err = await asyncio.wait_for(proc.communicate(), DEADLINE_S)
    assert out.decode().startswith("talking to 127.0.0.1")
    assert "Traceback" not in err.decode() and "observer_failed" not in err.decode()
