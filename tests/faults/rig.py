"""Running one fault case: a real ``bargein.Session`` (``RealtimeTransport`` over loopback,
memory audio on a clock kept at wall pace) against a ``HostileServer``, and what came of it.

Cases run side by side in one event loop, so each one's log lines are told apart by a
context variable that its tasks inherit (``CASE``): the session's and the transport's tasks
are created inside the case's task and carry its name.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bargein.adapters import endpoints
from bargein.adapters.audio.memory import MemorySink, MemorySource, VirtualClock
from bargein.adapters.audio.wav import write_wav
from bargein.adapters.secrets import ApiKey
from bargein.adapters.transport import RealtimeTransport, ReconnectPolicy
from bargein.core.liveness import Liveness
from bargein.logs import ROOT
from bargein.session import Interrupted, Observation, Session, StateChanged, Transcript
from tests.support.hostile import END_ITEM, HostileServer, Script
from tests.support.waiting import DEADLINE_S, eventually, realtime_clock

KEY = "hostileFakeKey0123456789abcdefNEVERSHOWN"
"""The API key in the environment. Not shaped like an OpenAI key (``sk-...``): only
bargein's verbatim masking of a key it was given can hide it."""

LIVENESS = Liveness(ready_ms=4_000, reply_check_ms=300, reply_checks=3)
"""Short deadlines so the matrix stays fast: never ready after 4 s (it counts from the
session's start, a drop and reconnection before ``session.created`` included: on a busy
machine running many cases at once 2 s was not always enough for that), a dead reply
declared 0.9 to 1.2 s after its last sign of life."""
PING_INTERVAL_S, PING_TIMEOUT_S, CLOSE_TIMEOUT_S = 0.5, 3.0, 0.5
"""The keepalive, shortened; 3 s to answer a ping, because the cases share one event loop
(and the server's) on a busy machine, where a live connection must not look frozen."""
FROZEN_BOUND_S = PING_INTERVAL_S + PING_TIMEOUT_S + CLOSE_TIMEOUT_S
"""A frozen stream is noticed within this (the transport's keepalive, shortened)."""
RECONNECT = ReconnectPolicy(max_attempts=3, base_delay=0.05, max_delay=0.2, stable_after_s=1.0)
CUT_MARGIN = 1_200
"""Samples (50 ms) after a cut in which the cut reply may still sound: the sink's device
latency (20 ms), its block (10 ms) and the fade (5 ms), rounded up."""
STALE_RUN = 48
"""Samples of a cut reply's amplitude after the margin that count as its audio playing on
(a fade of another reply may cross the value by chance, never for a whole period)."""

CASE: contextvars.ContextVar[str] = contextvars.ContextVar("fault_case", default="")


@dataclass
class Outcome:
    """What one case's run left behind."""

    result: str | None = None
    """What ``Session.wait()`` returned, if it returned."""
    error: BaseException | None = None
    """What it (or connecting, or closing) raised."""
    logs: list[dict[str, Any]] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    seen_at: list[float] = field(default_factory=list)
    """When each observation came, in seconds on the clock the server's marks use."""
    output: npt.NDArray[np.int16] = field(default_factory=lambda: np.zeros(0, np.int16))
    cuts: list[tuple[int, int]] = field(default_factory=list)
    """(amplitude, clock sample): a reply cut off (barge-in, dead reply, disconnect) then."""
    waited_s: float | None = None
    """From the server's last word (the end of its script, or its last fault when it then
    says nothing) to the outcome, on the session's clock."""
    session: Session | None = None
    server: HostileServer | None = None
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""

    def lines(self, event: str) -> list[dict[str, Any]]:
        return [x for x in self.logs if x["event"] == event]

    def interrupted(self) -> list[Interrupted]:
        return [o for o in self.observations if isinstance(o, Interrupted)]

    def since_fault(self, kind: type[Observation]) -> list[float]:
        """Seconds from the server's fault to each observation of ``kind``."""
        assert self.server is not None and self.server.fault_at is not None
        return [at - self.server.fault_at for o, at in zip(self.observations, self.seen_at,
                                                           strict=True) if isinstance(o, kind)]

    def heard_samples(self, amplitude: int, after: int = 0) -> int:
        """Samples of the output from clock sample ``after`` on that are ``+-amplitude``."""
        return int(np.count_nonzero(np.abs(self.output[after:].astype(np.int32)) == amplitude))


class _ByCase(logging.Handler):
    """bargein's log records at INFO and above, as ``capture_logs`` shapes them, filed under
    the case whose task logged them. (DEBUG would log every frame both ways, websockets'
    lines included: it doubled the matrix's CPU time, and a loaded machine then stretched
    every case.)"""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.by_case: dict[str, list[dict[str, Any]]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "bargein", None)
        entry = dict(fields) if isinstance(fields, dict) else {"event": record.getMessage()}
        entry["log_level"] = record.levelname.lower()
        entry["logger"] = record.name
        if record.exc_info:
            entry["exc_info"] = logging.Formatter().formatException(record.exc_info)
        self.by_case.setdefault(CASE.get(), []).append(entry)


@contextlib.contextmanager
def logs_by_case() -> Iterator[dict[str, list[dict[str, Any]]]]:
    root = logging.getLogger(ROOT)
    handler = _ByCase()
    saved = root.level, root.propagate
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False
    try:
        yield handler.by_case
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        root.propagate = saved[1]


def _cut(outcome: Outcome, server: HostileServer, at: int, rids: set[str] | None) -> None:
    """Replies ``rids`` (None: every reply so far) are cut off at clock sample ``at``."""
    for (_, rid), amplitude in server.amplitudes.items():
        if rids is None or rid in rids:
            outcome.cuts.append((amplitude, at))


async def run_session(name: str, scripts: tuple[Script, ...], api: str,
                      redirect: str | None, refuse: int | None = None) -> Outcome:
    """One case through the ``Session`` API."""
    outcome = Outcome()
    clock = VirtualClock()
    async with HostileServer(*scripts, api=api, redirect=redirect, refuse=refuse,
                             clock=lambda: clock.ms / 1000) as server, realtime_clock(clock):
        outcome.server = server
        transport = RealtimeTransport(
            endpoints.custom(server.url, api=api),  # type: ignore[arg-type]
            ApiKey(KEY), ping_interval=PING_INTERVAL_S, ping_timeout=PING_TIMEOUT_S,
            close_timeout=CLOSE_TIMEOUT_S, reconnect=RECONNECT)
        try:
            await transport.connect()
        except BaseException as exc:
            outcome.error = exc
            return outcome
        sink = MemorySink(clock)
        session = Session(transport, MemorySource(clock), sink, clock=lambda: clock.ms / 1000,
                          linger_s=None, liveness=LIVENESS)
        outcome.session = session
        ended_at: list[float] = []

        def observe(obs: Observation) -> None:
            outcome.observations.append(obs)
            outcome.seen_at.append(clock.ms / 1000)
            if isinstance(obs, Interrupted):
                _cut(outcome, server, clock.samples, None)  # all audio queued is flushed
            elif isinstance(obs, StateChanged) and obs.trigger == "disconnected":
                _cut(outcome, server, clock.samples, None)

        def over() -> bool:
            if waiter.done():
                return True
            marked = any(isinstance(o, Transcript) and o.item_id == END_ITEM
                         for o in outcome.observations)
            return (marked and session.conversation.in_state("listening") and sink.idle)

        session.subscribe(observe)
        session.start()
        waiter = asyncio.create_task(session.wait())
        try:
            await eventually(over, lambda: (name, session.conversation.state,
                                            session.figures, outcome.observations[-5:]))
            ended_at.append(clock.ms / 1000)
            if waiter.done():
                try:
                    outcome.result = waiter.result()
                except BaseException as exc:
                    outcome.error = exc
        finally:
            waiter.cancel()
            try:
                await session.close()
            except BaseException as exc:
                outcome.error = outcome.error or exc
            outcome.output = np.frombuffer(sink.output(), dtype="<i2")
        since = server.finished_at if server.finished_at is not None else server.fault_at
        if ended_at and since is not None:
            outcome.waited_s = ended_at[0] - since
    return outcome


async def run_cli(name: str, scripts: tuple[Script, ...], api: str, redirect: str | None,
                  refuse: int | None, environ: dict[str, str], workdir: Path,
                  input_ms: int) -> Outcome:
    """One case through ``bargein talk`` as a user runs it, on WAV files."""
    outcome = Outcome()
    async with HostileServer(*scripts, api=api, redirect=redirect, refuse=refuse) as server:
        outcome.server = server
        wav = write_wav(workdir / f"{name}.in.wav", bytes(input_ms * 48))  # silence
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bargein", "talk", "--url", server.url, "--api", api,
            "--input", str(wav), "--output", str(workdir / f"{name}.out.wav"),
            "--linger", "0.5", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=environ)
        out, err = await asyncio.wait_for(proc.communicate(), DEADLINE_S * 2)
        outcome.exit_code, outcome.stdout, outcome.stderr = proc.returncode, out.decode(), \
            err.decode()
    return outcome


def user_env(**changes: str) -> dict[str, str]:
    """This process's environment with ``changes``, and without ``NO_PROXY``/``no_proxy``
    or any API key but the ones ``changes`` give."""
    out = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "NO_PROXY", "no_proxy")}
    out.update(changes)
    return out

