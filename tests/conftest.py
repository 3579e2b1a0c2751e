"""Fixtures for bargein's own suite, and its markers.

The suite mirrors the package (``tests/core`` tests ``bargein/core``, ...). Markers, so a
part can run alone (``make test-fast`` runs what has none of them):

- ``e2e``: real sockets and processes: the simulator over loopback, the CLI as a subprocess;
- ``device``: the real pyaudio adapters on a private PulseAudio (``tests/support/pulse_env``);
- ``slow``: property tests that run many examples.

``realtime_sim`` comes from bargein's own pytest plugin (``bargein.pytest_plugin``), registered
wherever bargein is installed: the suite gets it the way an embedder's does.
"""

from __future__ import annotations

import signal

import pytest

from tests.support.pulse_env import require_pulse


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C tests send SIGINT to ``bargein`` subprocesses. A suite started in the background
    by a script without job control (``make test &``, a CI runner) inherits SIGINT *ignored*,
    and an ignored signal stays ignored across ``exec``: every child would then shrug off
    Ctrl-C as a ``nohup``-ed program does, and those tests wait for an exit that never comes.
    A handler of our own is reset to the default in each child, as in a user's terminal."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def pulse() -> None:
    """A private PulseAudio with a virtual speaker and microphone, for the whole session."""
    require_pulse()
