"""How many bargein sessions one core keeps in real time: N sessions in ONE process, one loop.

Each of N concurrent ``bargein.Session``s streams its microphone in 20 ms frames at real time
and plays the replies into memory, as in ``bench_clients.py``: 600 ms of speech every 6 s
(the server's VAD ends the turn and a ~3 s reply comes back in 100 ms deltas, paced at real
time) and, every other cycle, 600 ms more at 2.4 s, over the reply: a barge-in (the server
cancels, bargein flushes its speaker and truncates). Sessions are spread over six groups
whose speech starts 1 s apart and whose microphones tick 3.3 ms apart, so that N sessions
are not N copies of the same instant.

The microphone of each group is a ``MemorySource`` on a ``VirtualClock`` that one ticker
advances by 20 ms at the wall's pace, as a sound card's callback would; the speaker is a
``MemorySink`` (keeping 10 s) on the same clock. Mic lateness is how late each 20 ms frame
reached the socket (``RealtimeTransport.send_now`` or ``send`` returned) against the moment
its last sample was captured; it includes the ticker's own lateness, as a late callback
would.

``--server sim`` (the default): the simulator (``bargein.sim.serve``, what ``bargein sim``
runs) in a process of its own, one WebSocket per session over loopback: the whole client,
codec, websockets and the kernel's loopback send included. ``--server memory``: an
in-process ``MemoryServer`` per session, scripted by one driver task with the same replies
and barge-ins: no socket, no JSON, the session's own cost (mic path, core, playout,
progress polling) plus the scripting's (about 1 us per event). Use it when the simulator
would be the bottleneck (``bench_sim_load.py``: about 500 sessions per process).

Each N runs in a fresh process: ``--warmup`` seconds, then ``--seconds`` measured. The
figures: this process's CPU time (``process_time``) per session-second beside the wall time
of the window, the fraction of one core that is ("core"; near 1.0 this process is the
bottleneck, and CPU per session-second is then just 1000 / N), the simulator's own share of
a core over the window ("sim core", from ``/proc``; near 1.0 the simulator is the
bottleneck), mic lateness p50/p95/max, replies and barge-ins settled in the window.
"us/frame" is the window's CPU per microphone frame sent (the whole process's, replies and
playback included): it is the figure to compare when a run falls behind (on a busy machine,
say), as a process that falls behind does less work per wall second and its CPU per
session-second then reads low.
"keeps up" means p95 <= 40 ms (issue 14's bar). A bench, not a test: nothing is asserted.

"Per core" is one core exactly: on a machine of two cores or more the sessions' process is
pinned to one (``os.sched_setaffinity``) and the simulator to another, so neither borrows
the other's core nor is moved between them (``--pin no`` lets the kernel place both).

With ``--server memory`` each N also runs once with no sessions at all ("driving"): the
ticker, the script and the memory servers, each server's events taken by a bare task. It is
what the harness costs in this process; a session row minus it is the sessions' own CPU at
real time (their mic path, core, playout and progress polling, and their share of the event
loop's turns), the figure ``bench_session.py`` measures on virtual time.

The garbage collector: with the default thresholds, a full collection over a few hundred
sessions' objects stops the loop for 100-200 ms now and then, which is most of the p95 at
150 sessions (measured: p95 81 ms with it, 5 ms with it disabled, same CPU). ``--gc freeze``
calls ``gc.freeze()`` once the sessions are set up, as long-running servers do, so the
set-up is never scanned again; the default leaves the collector as a program finds it.

``--tls``: the simulator serves ``wss://`` (a self-signed certificate made for the run,
which the sessions trust), as every OpenAI and Azure connection is; the rest is the same.
TLS costs the sessions' process its encryption and the simulator its decryption.

``--trees base@DIR`` runs each N once more per tree, interleaved, with bargein imported from
``DIR`` (a ``git worktree`` of an older commit, say): the same harness and server, side by
side in one run.

    .venv/bin/python bench/bench_scale.py [--server sim|memory] [--sessions 25,50,100,150,300]
        [--seconds 20] [--warmup 5] [--trees label@DIR,...] [--rounds R] [--pin yes|no]
        [--tls]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

from bench_clients import (
    CYCLE_MS,
    FRAME_MS,
    REPLY,
    SPEECH,
    DueSource,
    Meter,
    TimedTransport,
    mic_pcm,
)
from sim_process import cpu_s_of, start_sim, stop_sim

from bargein import RealtimeTransport, ServerVad, Session, SessionConfig, endpoints
from bargein.adapters.audio.memory import MemorySink, MemorySource, VirtualClock
from bargein.core import events as e
from bargein.session import Interrupted, Transport
from bargein.testing import MemoryServer
from bargein.testing.memory_server import deltas

if TYPE_CHECKING:
    from bargein.testing import SelfSigned

GROUPS = 6
LATE_OK_MS = 40.0
DRIVING = "driving"  # the row of the same run with no sessions (memory server only)
REPLY_MS = 3000
REPLY_AFTER_MS = 900  # speech ends at 600 ms; the simulator's VAD waits 300 ms


class Script:
    """The memory server's side of every session, from one task: the replies the simulator
    would send, in 100 ms deltas at real time, and on odd cycles the user's speech over the
    reply (``MemoryServer(answer=True)`` then cancels it, as the server's VAD would)."""

    def __init__(self) -> None:
        self.groups: list[list[MemoryServer]] = [[] for _ in range(GROUPS)]
        self.chunks = [d.audio for d in deltas("r", "i", REPLY_MS)]

    def timeline(self) -> list[tuple[float, int, str, int]]:
        """(ms into the 12 s pattern, group, what, which delta), in time order."""
        steps: list[tuple[float, int, str, int]] = []
        barge_ms = SPEECH[1][0] - REPLY_AFTER_MS  # into the second reply
        for group in range(GROUPS):
            for cycle in (0, 1):
                base = group * 1000 + cycle * CYCLE_MS + REPLY_AFTER_MS
                steps.append((base, group, "start", 0))
                for k in range(len(self.chunks)):
                    if cycle and k * 100 >= barge_ms:
                        break
                    steps.append((base + k * 100, group, "delta", k))
                if cycle:
                    steps.append((base + barge_ms, group, "barge", 0))
                    steps.append((base + barge_ms + 600, group, "stopped", 0))
                else:
                    steps.append((base + REPLY_MS, group, "done", 0))
        return sorted(steps, key=lambda s: s[0])

    async def run(self, zero: float) -> None:
        steps, pattern, turn = self.timeline(), 2 * CYCLE_MS, 0
        while True:
            for at_ms, group, what, k in steps:
                due = zero + (turn * pattern + at_ms) / 1000
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                cycle = int(at_ms - group * 1000 >= CYCLE_MS)
                rid, item = f"resp_{turn}_{cycle}", f"item_{turn}_{cycle}"
                for server in self.groups[group]:
                    if what == "delta":
                        server.push(e.AudioDelta(rid, item, self.chunks[k]))
                    elif what == "start":
                        server.push(e.ResponseCreated(rid), e.OutputItemAdded(rid, item))
                    elif what == "done":
                        server.push(e.ResponseDone(rid, "completed"))
                    elif what == "barge":
                        server.push(e.SpeechStarted(f"user_{turn}", 0))
                    else:
                        server.push(e.SpeechStopped(f"user_{turn}", 0))
            turn += 1


async def child(server: str, url: str, sessions: int, seconds: float, warmup: float,
                sim_pid: int = 0, freeze: bool = False, drive_only: bool = False,
                trust: ssl.SSLContext | None = None) -> dict[str, Any]:
    total_s = warmup + seconds + 2
    pcms = [mic_pcm(total_s + GROUPS)[g * 48_000:] for g in range(GROUPS)]
    clocks = [VirtualClock() for _ in range(GROUPS)]
    meters = [Meter() for _ in range(sessions)]
    script = Script()
    live: list[tuple[Session, Meter]] = []
    readers: list[asyncio.Task[None]] = []
    due: list[dict[int, tuple[bytes, float]]] = [{} for _ in range(sessions)]
    zeros = [0.0] * GROUPS  # when each group's clock started, set as the ticker starts

    async def make(n: int) -> None:
        group = n % GROUPS
        transport: Transport
        if server == "sim":
            real = RealtimeTransport(endpoints.custom(url, auth="none"), None, ssl_context=trust)
            await real.connect()
            transport = real
        else:
            memory = MemoryServer(answer=True)
            script.groups[group].append(memory)
            transport = memory.transport
            if drive_only:  # the driving alone: the server's events taken, nothing else
                readers.append(asyncio.create_task(_take(transport)))
                return
        clock = clocks[group]
        source = DueSource(MemorySource(clock, pcms[group]), zeros, group, due[n])
        session = Session(TimedTransport(transport, due[n], meters[n]), source,
                          MemorySink(clock, keep_ms=10_000), clock=lambda: clock.ms / 1000,
                          linger_s=None)
        meter = meters[n]
        session.subscribe(lambda o: setattr(meter, "barge_ins", meter.barge_ins + 1)
                          if isinstance(o, Interrupted) and meter.measuring else None)
        session.start()
        session.handle(e.ConfigureSession(SessionConfig(turn_detection=ServerVad(
            silence_duration_ms=300, interrupt_response=True, create_response=True))))
        live.append((session, meter))

    for first in range(0, sessions, 50):
        await asyncio.gather(*(make(n) for n in range(first, min(sessions, first + 50))))
    if freeze:  # what a long-running server does: the set-up is never scanned again
        gc.collect()
        gc.freeze()
    start = time.perf_counter() + 0.1
    for g in range(GROUPS):
        zeros[g] = start + g * FRAME_MS / GROUPS / 1000
    if server == "memory":
        driver = asyncio.create_task(script.run(start))
    ticks = int(total_s * 1000 / FRAME_MS)
    window: tuple[float, float] | None = None
    settled_before = 0
    for n in range(ticks):
        for g in range(GROUPS):
            tick_at = zeros[g] + (n + 1) * FRAME_MS / 1000
            await asyncio.sleep(max(0.0, tick_at - time.perf_counter()))
            clocks[g].advance_ms(FRAME_MS)
            for memory in script.groups[g]:
                # its record of every frame, not the session's: kept, it would be most of
                # what the garbage collector's full collections scan
                memory.sent.clear()
        if window is None and n + 1 >= warmup * 1000 / FRAME_MS:
            for meter in meters:
                meter.measuring = True
            settled_before = sum(_replies(s) for s, _ in live)
            window = time.process_time(), time.perf_counter()
            sim_cpu = cpu_s_of(sim_pid)
        elif window is not None and time.perf_counter() - window[1] >= seconds:
            break
    assert window is not None
    cpu, wall = time.process_time() - window[0], time.perf_counter() - window[1]
    sim_core = (cpu_s_of(sim_pid) - sim_cpu) / wall if sim_pid else float("nan")
    for meter in meters:
        meter.measuring = False
    replies = sum(_replies(s) for s, _ in live) - settled_before
    if server == "memory":
        driver.cancel()
    for reader in readers:
        reader.cancel()
    for session, _ in live:
        await session.close()
    late = sorted(x for m in meters for x in m.late_ms)
    return {"sessions": sessions, "cpu_ms_per_s": cpu * 1000 / (sessions * wall),
            "cpu_us_per_frame": cpu * 1e6 / len(late) if late else float("nan"),
            "core": cpu / wall, "sim_core": sim_core, "wall_s": wall, "frames": len(late),
            "late_p50_ms": _pct(late, 0.50), "late_p95_ms": _pct(late, 0.95),
            "late_max_ms": late[-1] if late else float("nan"), "replies": replies,
            "barge_ins": sum(m.barge_ins for m in meters)}


async def _take(transport: Transport) -> None:
    async for _ in transport.events():
        pass


def _replies(session: Session) -> int:
    return sum(1 for f in session.figures.values() if f.status)


def _pct(values: list[float], q: float) -> float:
    return values[int(q * (len(values) - 1))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("sim", "memory"), default="sim")
    parser.add_argument("--sessions", default="25,50,100,150,300",
                        help="comma-separated N to run, each in a fresh process")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--gc", choices=("default", "freeze"), default="default",
                        help="freeze: gc.freeze() once the sessions are set up")
    parser.add_argument("--trees", default="",
                        help="comma-separated label@DIR: also run bargein from DIR, "
                             "interleaved with this checkout, for before/after in one run")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every N and tree this many times, interleaved; the summary "
                             "counts the rounds that kept up at each N")
    parser.add_argument("--pin", choices=("yes", "no"), default="yes",
                        help="yes (the default, on a machine of two cores or more): the "
                             "sessions' process on one core, the simulator on another")
    parser.add_argument("--tls", action="store_true",
                        help="the simulator over wss:// (a self-signed certificate made for "
                             "the run), as every OpenAI and Azure connection is")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--trust", default="", help=argparse.SUPPRESS)
    parser.add_argument("--drive-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--sim-pid", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    pin = args.pin == "yes" and len(os.sched_getaffinity(0)) >= 2
    if args.child:
        if pin:
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        import logging
        logging.disable(logging.CRITICAL)
        trust = ssl.create_default_context(cafile=args.trust) if args.trust else None
        print(json.dumps(asyncio.run(child(args.server, args.url, args.child, args.seconds,
                                           args.warmup, args.sim_pid,
                                           args.gc == "freeze", args.drive_only, trust))))
        return
    if args.tls and args.server != "sim":
        parser.error("--tls is for --server sim")
    with tempfile.TemporaryDirectory() as directory:
        if args.tls:  # imported here: a --trees child may be a tree from before it
            from bargein.testing import self_signed
        run(args, pin, self_signed(directory) if args.tls else None)


def run(args: argparse.Namespace, pin: bool, tls: SelfSigned | None) -> None:
    """The runs the arguments ask for, each N in a child process, and their tables."""
    server = None
    url = ""
    if args.server == "sim":
        server, url = start_sim(REPLY, reply_latency_ms=200, keep_records=False, tls=tls)
        if pin:
            os.sched_setaffinity(server.pid, {sorted(os.sched_getaffinity(0))[1]})
    trees = [("this", "")] + [(t.partition("@")[0], os.path.abspath(t.partition("@")[2]))
                              for t in args.trees.split(",") if t]
    runs = trees + ([(DRIVING, "")] if args.server == "memory" else [])
    rows: list[dict[str, Any]] = []
    sizes = [int(x) for x in args.sessions.split(",")]
    try:
        for rnd, n in ((rnd, n) for rnd in range(args.rounds) for n in sizes):
            for label, tree in runs:
                env = {**os.environ, "PYTHONWARNINGS": "ignore"}
                if tree:
                    env["PYTHONPATH"] = tree
                out = subprocess.run(
                    [sys.executable, __file__, "--child", str(n), "--server", args.server,
                     "--url", url, "--seconds", str(args.seconds), "--warmup",
                     str(args.warmup), "--gc", args.gc,
                     "--sim-pid", str(server.pid if server is not None else 0),
                     "--pin", args.pin, "--trust", str(tls.cert) if tls else "",
                     *(["--drive-only"] if label == DRIVING else [])],
                    capture_output=True, text=True, check=False, env=env)
                if out.returncode != 0:
                    print(f"{label}, {n} sessions: failed: "
                          f"{out.stderr.strip().splitlines()[-1:]}")
                    continue
                rows.append({**json.loads(out.stdout.strip().splitlines()[-1]),
                             "tree": label, "round": rnd, "load": os.getloadavg()[0]})
                _print_row(rows[-1], header=len(rows) == 1, server=args.server, tls=bool(tls),
                           gc_mode=args.gc, seconds=args.seconds, pinned=pin)
    finally:
        if server is not None:
            stop_sim(server)
    driving = {r["sessions"]: r["cpu_ms_per_s"] for r in rows if r["tree"] == DRIVING}
    for label, _ in trees:
        mine = [r for r in rows if r["tree"] == label]
        kept = [r["sessions"] for r in mine if r["late_p95_ms"] <= LATE_OK_MS]
        if mine:
            cpu = statistics.median(r["cpu_ms_per_s"] for r in mine)
            print(f"{label}: largest N keeping mic lateness p95 <= {LATE_OK_MS:g} ms in one "
                  f"process (one core): {max(kept) if kept else 'none'}; median CPU "
                  f"{cpu:.2f} ms per session-second, i.e. {1000 / cpu:.0f} sessions per core "
                  "by CPU alone")
        own = [r["cpu_ms_per_s"] - driving[r["sessions"]] for r in mine
               if r["sessions"] in driving]
        if own:
            print(f"{label}: the sessions' own CPU (minus the driving alone at the same N), "
                  f"median {statistics.median(own):.2f} ms per session-second")
    if args.rounds > 1:
        _print_rounds(rows, trees, sizes)


def _print_rounds(rows: list[dict[str, Any]], trees: list[tuple[str, str]],
                  sizes: list[int]) -> None:
    """Per N and tree: the rounds that kept up, and the median CPU per frame; beside the
    first tree, the median of the per-round differences (rows of one round ran one after
    the other, so they saw the same host)."""
    for n in sizes:
        base = {r["round"]: r for r in rows if r["tree"] == trees[0][0] and r["sessions"] == n}
        for label, _ in trees:
            mine = [r for r in rows if r["tree"] == label and r["sessions"] == n]
            if not mine:
                continue
            kept = sum(r["late_p95_ms"] <= LATE_OK_MS for r in mine)
            line = (f"{label} at {n}: kept up in {kept} of {len(mine)} rounds; "
                    f"{statistics.median(r['cpu_us_per_frame'] for r in mine):.1f} us "
                    "per frame (median)")
            pairs = [r["cpu_us_per_frame"] - base[r["round"]]["cpu_us_per_frame"]
                     for r in mine if r["round"] in base]
            if label != trees[0][0] and pairs:
                line += (f", {statistics.median(pairs):+.1f} us against {trees[0][0]} "
                         "(median of the rounds' pairs)")
            print(line)


def _print_row(row: dict[str, Any], *, header: bool, server: str, tls: bool, gc_mode: str,
               seconds: float, pinned: bool) -> None:
    if header:
        where = (f"the simulator in a process of its own, over loopback "
                 f"({'wss' if tls else 'ws'}://)" if server == "sim"
                 else "a MemoryServer per session, in this process")
        print(f"N bargein sessions in one process, {seconds:g} s measured; server: {where}; "
              f"garbage collector: {gc_mode}; "
              + ("pinned: the sessions' process on one core"
                 + (", the simulator on another; " if server == "sim" else "; ")
                 if pinned else "not pinned; ")
              + "CPU of this process only")
        print(f"{'bargein':>8} {'N':>5} {'cpu ms/session-s':>17} {'us/frame':>9} {'core':>6} "
              f"{'sim core':>9} "
              f"{'wall s':>7} {'late p50':>9} {'p95':>7} {'max':>7} {'replies':>8} "
              f"{'barge-ins':>10} {'load':>5}  keeps up")
    ok = ("-" if row["tree"] == DRIVING
          else "yes" if row["late_p95_ms"] <= LATE_OK_MS else "no")
    print(f"{row['tree']:>8} {row['sessions']:5d} {row['cpu_ms_per_s']:17.2f} "
          f"{row['cpu_us_per_frame']:9.1f} {row['core']:6.2f} "
          f"{row['sim_core']:9.2f} "
          f"{row['wall_s']:7.1f} {row['late_p50_ms']:9.1f} {row['late_p95_ms']:7.1f} "
          f"{row['late_max_ms']:7.1f} {row['replies']:8d} {row['barge_ins']:10d} "
          f"{row['load']:5.2f}  {ok}",
          flush=True)


if __name__ == "__main__":
    main()
