"""The simulator in a process of its own, as the benches that run clients against it start it,
and the CPU time a process has used."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bargein.testing import SelfSigned

_SCRIPT = """
import os, sys, threading
from bargein.sim import SimConfig, serve
from bargein.sim.tls import server_context
# exit with the benchmark, even when it is killed: its end of our stdin closes
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
config = SimConfig(script=(sys.argv[1],), speed=1.0, voice="synthetic", record_audio=False,
                   keep_records=sys.argv[3] == "keep", reply_latency_ms=int(sys.argv[2]))
tls = server_context(sys.argv[4], sys.argv[5]) if len(sys.argv) > 4 else None
serve("127.0.0.1", 0, config, on_ready=lambda url: print(url, flush=True), tls=tls)
"""


def start_sim(reply: str, *, reply_latency_ms: int, keep_records: bool,
              tls: SelfSigned | None = None) -> tuple[subprocess.Popen[str], str]:
    """The simulator (real time, a synthetic voice, no audio recorded), answering every turn
    with ``reply``; returns the process and its URL: ``ws://``, or ``wss://`` with ``tls``
    (its clients trust ``tls.client_context()``). ``stop_sim`` ends it."""
    server = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, reply, str(reply_latency_ms),
         "keep" if keep_records else "drop",
         *((str(tls.cert), str(tls.key)) if tls is not None else ())],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    url = ""
    while not url.startswith(("ws://", "wss://")):
        url = server.stdout.readline().strip()
        if not url and server.poll() is not None:
            raise RuntimeError(f"the simulator exited with code {server.returncode}")
    return server, url


def stop_sim(server: subprocess.Popen[str]) -> None:
    assert server.stdin is not None
    server.stdin.close()  # its watcher thread exits the process
    server.wait()


def cpu_s_of(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used (Linux ``/proc``); 0 elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
