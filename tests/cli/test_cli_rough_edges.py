"""The command line's rough edges, each with its test: Ctrl-C exits 130 after the figures,
each mode says what it does, a reconnection is one line, `bargein sim` answers after a
realistic delay, lists its faults and logs its connections, and `--client-cancel` against
its defaults really sends `response.cancel`. Real processes, real sockets; every wait is
on an event (a line printed, a process ended) with a generous deadline."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bargein.adapters.audio.wav import write_wav
from bargein.sim import Faults
from bargein.testing import self_signed
from tests.cli.test_cli import SCRIPT, USER, bargein, env, one_clear_line
from tests.support.sim_support import serving, silence

pytestmark = pytest.mark.e2e
DEADLINE_S = 90.0


class Running:
    """A ``bargein`` process whose stdout is read line by line as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    @classmethod
    async def start(cls, *args: str) -> Running:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bargein", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env())
        return cls(proc)

    async def until(self, fragment: str) -> str:
        """Read stdout until a line holds ``fragment``; that line."""
        assert self.proc.stdout is not None

        async def read() -> str:
            assert self.proc.stdout is not None
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise AssertionError(f"{fragment!r} never came:\n" + "\n".join(self.lines))
                self.lines.append(raw.decode().rstrip("\n"))
                if fragment in self.lines[-1]:
                    return self.lines[-1]

        return await asyncio.wait_for(read(), DEADLINE_S)

    async def interrupt(self) -> tuple[int, str, str]:
        """Ctrl-C, then everything it printed and its exit code."""
        self.proc.send_signal(signal.SIGINT)
        return await self.finish()

    async def finish(self) -> tuple[int, str, str]:
        out, err = await asyncio.wait_for(self.proc.communicate(), DEADLINE_S)
        assert self.proc.returncode is not None
        return self.proc.returncode, "\n".join([*self.lines, out.decode()]), err.decode()


# --- Ctrl-C: 130 everywhere, after the figures -------------------------------------------

async def test_ctrl_c_in_talk_prints_the_figures_then_exits_130(tmp_path: Path) -> None:
    wav_in = write_wav(tmp_path / "in.wav", USER + silence(60_000))
    async with serving(script=SCRIPT, speed=4.0) as sim:
        talk = await Running.start("talk", "--url", sim.url, "--input", str(wav_in),
                                   "--output", str(tmp_path / "out.wav"))
        await talk.until("BARGE-IN")
        code, out, err = await talk.interrupt()
        record = sim.records[0]
    assert code == 130, err
    assert "session closed (stopped by the user)" in out
    assert out.index("session closed") < out.index("per response:"), "the figures, after"
    assert re.search(r"^resp_\S+ +\d+ ms +yes", out, re.M), out
    assert record.closed and "Traceback" not in err
    assert (tmp_path / "out.wav").stat().st_size > 24_000 * 2, "the output WAV was written"


async def test_ctrl_c_while_connecting_exits_130_at_once(tmp_path: Path) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts the TCP connection, never answers the handshake

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    wav = write_wav(tmp_path / "in.wav", USER)
    async with server:
        talk = await Running.start("talk", "--url", f"ws://127.0.0.1:{port}/v1", "--input",
                                   str(wav), "--output", str(tmp_path / "out.wav"))
        await talk.until("talking to 127.0.0.1")
        code, out, err = await talk.interrupt()
    assert code == 130, err
    assert "stopped by the user" in out and "Traceback" not in err


async def test_ctrl_c_stops_bargein_sim_with_130() -> None:
    sim = await Running.start("sim", "--port", "0", "--voice", "synthetic")
    await sim.until("bargein simulator on ws://127.0.0.1:")
    code, _, err = await sim.interrupt()
    assert code == 130 and "Traceback" not in err


# --- each mode says what it does ----------------------------------------------------------

@pytest.mark.parametrize(("flags", "said"), [
    ((), ["(ga API)", "server VAD", "the server's speech_started",
          "the server cancels responses on speech"]),
    (("--client-cancel",), ["bargein cancels responses itself (response.cancel)"]),
    (("--turns", "semantic"), ["semantic VAD"]),
    (("--vad", "semantic"), ["semantic VAD"]),  # the older name of --turns
    (("--turns", "client"), ["turn detection: this machine's (silero), the server's off",
                             "barge-in on local voice detection (silero)",
                             "bargein cancels responses itself (response.cancel)"]),
    (("--api", "beta"), ["(beta API)"]),
    (("--local-vad",), ["barge-in on local voice detection (silero)"]),
    (("--local-vad", "energy"), ["barge-in on local voice detection (energy)"]),
    (("--barge-in", "two-phase"), [
        "two-phase barge-in on local voice detection (silero)", "a sound over the reply ducks",
        "bargein cancels when it cuts (the server's interrupt_response is off)"]),
    (("--barge-in", "two-phase", "--local-vad", "energy"), [
        "two-phase barge-in on local voice detection (energy)"]),
])
async def test_each_mode_says_what_it_does(flags: tuple[str, ...], said: list[str],
                                          tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "in.wav", USER)
    code, out, err = await bargein("talk", "--url", "ws://127.0.0.1:9/v1", *flags, "--input",
                                   str(wav), "--output", str(tmp_path / "o.wav"))
    one_clear_line(code, err, "cannot reach 127.0.0.1")  # said before it connects
    (mode,) = [line for line in out.splitlines() if line.startswith("talking to")]
    for fragment in said:
        assert fragment in mode, mode
    assert f"input: {wav}" in mode and f"output: {tmp_path / 'o.wav'}" in mode


async def test_a_reconnection_is_one_line_saying_the_context_was_lost(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "in.wav", USER)
    async with serving(script=SCRIPT, speed=4.0) as sim:
        code, out, err = await bargein(
            "talk", "--url", f"{sim.url}?sim_faults=disconnect_at=mid_reply", "--input",
            str(wav), "--output", str(tmp_path / "o.wav"), "--linger", "0.5",
            timeout=DEADLINE_S)
    assert code == 0, err
    (line,) = [line for line in out.splitlines() if "RECONNECTED" in line]
    assert "the server's context was lost" in line and "session settings sent again" in line


# --- bargein sim: its settings, its faults, its log, its time to first audio --------------

async def test_sim_help_names_its_settings_and_every_fault() -> None:
    code, out, _ = await bargein("sim", "--help")
    assert code == 0
    flat = " ".join(out.split())
    for flag in ("--speed", "--reply-latency", "--chunk-ms", "--script", "--voice", "--faults",
                 "--tls-cert", "--tls-key"):
        assert flag in flat
    for field in dataclasses.fields(Faults):
        assert field.name in flat, field.name
    assert "mid_reply" in flat


async def test_client_cancel_against_bargein_sims_defaults_sends_a_cancel(tmp_path: Path) -> None:
    sim = await Running.start("sim", "--port", "0")  # its defaults, as a user starts it
    line = await sim.until("bargein simulator on ")
    match = re.search(r"ws://127\.0\.0\.1:\d+/v1", line)
    assert match, line
    try:
        wav = write_wav(tmp_path / "in.wav", USER)
        code, out, err = await bargein(
            "talk", "--url", match.group(0), "--client-cancel", "--input", str(wav), "--output",
            str(tmp_path / "o.wav"), "--linger", "0.5", timeout=DEADLINE_S)
    finally:
        sim_code, _, sim_log = await sim.interrupt()
    assert code == 0, err
    assert "bargein sent response.cancel for resp_" in out, "the client cancel, visible"
    assert re.search(r"^resp_\S+ .* bargein$", out, re.M), "and in the figures"
    first_audio = [int(ms) for ms in re.findall(r"^resp_\S+ +(\d+) ms", out, re.M)]
    assert first_audio and min(first_audio) >= 500, "a realistic time to first audio"
    assert sim_code == 130
    assert len(re.findall(r"sim\.connected .*api=ga", sim_log)) == 1, sim_log
    (closed,) = re.findall(r"sim\.closed .*", sim_log)
    assert "cancels=1" in closed and "truncates=1" in closed, closed


async def test_an_unreadable_sim_script_is_one_clear_line(tmp_path: Path) -> None:
    code, _, err = await bargein("sim", "--port", "0", "--script", str(tmp_path / "none.txt"))
    one_clear_line(code, err, "cannot read the script")


async def test_bargein_sim_over_tls_with_bargein_talk_trusting_it(tmp_path: Path) -> None:
    """`bargein sim --tls-cert --tls-key` serves wss://; `bargein talk` trusts it through
    SSL_CERT_FILE, and without that it is refused in one line."""
    certificate = self_signed(tmp_path)
    sim = await Running.start("sim", "--port", "0", "--voice", "synthetic", "--speed", "4",
                              "--tls-cert", str(certificate.cert),
                              "--tls-key", str(certificate.key))
    line = await sim.until("bargein simulator on ")
    match = re.search(r"wss://127\.0\.0\.1:\d+/v1", line)
    assert match, line
    try:
        wav = write_wav(tmp_path / "in.wav", USER)
        talk = ("talk", "--url", match.group(0), "--input", str(wav), "--output",
                str(tmp_path / "o.wav"), "--linger", "0.5")
        code, out, err = await bargein(*talk, environ=env(SSL_CERT_FILE=str(certificate.cert)),
                                       timeout=DEADLINE_S)
        untrusted = await bargein(*talk, environ=env(SSL_CERT_FILE=None))
    finally:
        sim_code, _, sim_log = await sim.interrupt()
    assert code == 0, err
    assert re.search(r"^resp_\S+ .* yes ", out, re.M), "a reply, cut by the user's speech"
    one_clear_line(untrusted[0], untrusted[2], "TLS with 127.0.0.1 failed: "
                                               "CERTIFICATE_VERIFY_FAILED")
    assert sim_code == 130 and "Traceback" not in sim_log
    assert len(re.findall(r"sim\.connected ", sim_log)) == 1, sim_log


@pytest.mark.parametrize(("files", "said"), [
    (("--tls-cert", "none.pem"), "cannot read the TLS file"),
    (("--tls-key", "key.pem"), "--tls-key needs --tls-cert"),
    (("--tls-cert", "cert.pem", "--tls-key", "cert.pem"), "not a PEM certificate chain"),
    (("--tls-cert", "cert.pem", "--tls-key", "other/key.pem"), "the key is not the certificate's"),
    (("--tls-cert", "cert.pem", "--tls-key", "locked.pem"), "the TLS key is encrypted"),
])
async def test_tls_files_the_simulator_cannot_use_are_one_clear_line(
    files: tuple[str, ...], said: str, tmp_path: Path,
) -> None:
    certificate = self_signed(tmp_path)
    (tmp_path / "other").mkdir()
    self_signed(tmp_path / "other")
    subprocess.run(["openssl", "pkey", "-in", str(certificate.key), "-aes256", "-passout",
                    "pass:secret", "-out", str(tmp_path / "locked.pem")],
                   check=True, capture_output=True)
    code, _, err = await bargein("sim", "--port", "0",
                                 *(f if f.startswith("--") else str(tmp_path / f) for f in files))
    one_clear_line(code, err, said)


async def test_other_commands_never_load_the_simulator() -> None:
    """`bargein sim --help` names the simulator's faults, but `bargein --version` (or any
    other command) does not pay for importing it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "importtime", "-m", "bargein", "--version",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env())
    out, err = await asyncio.wait_for(proc.communicate(), DEADLINE_S)
    assert proc.returncode == 0 and out.decode().startswith("bargein ")
    assert "bargein.sim" not in err.decode()
