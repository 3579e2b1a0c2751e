"""A self-signed certificate for loopback, to run the simulator and its clients over TLS.

``self_signed(directory)`` writes ``cert.pem`` and ``key.pem`` there, made with the
``openssl`` command (an RSA key, one day's validity) for the names a loopback server
answers to: ``localhost``, ``127.0.0.1`` and ``::1``. Then::

    certificate = self_signed(tmp_path)
    async with Simulator(tls=certificate.server_context()) as sim:   # wss://127.0.0.1:...
        transport = RealtimeTransport(endpoints.custom(sim.url, auth="none"), None,
                                      ssl_context=certificate.client_context())
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bargein.errors import SimError

NAMES = "DNS:localhost,IP:127.0.0.1,IP:::1"
"""What the certificate is valid for: every name a loopback server is reached by."""


@dataclass(frozen=True)
class SelfSigned:
    """A certificate (``cert``) and its key (``key``), PEM files."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """For the server: ``Simulator(tls=...)``."""
        from bargein.sim.tls import server_context  # the simulator, only when it is asked for

        return server_context(self.cert, self.key)

    def client_context(self) -> ssl.SSLContext:
        """For a client: verifies the server against this certificate alone."""
        return ssl.create_default_context(cafile=str(self.cert))


def self_signed(directory: str | Path) -> SelfSigned:
    """Make a self-signed certificate and key in ``directory`` (which must exist)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise SimError("making a certificate needs the openssl command, which is not installed")
    cert, key = Path(directory) / "cert.pem", Path(directory) / "key.pem"
    made = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", f"subjectAltName={NAMES}",
         "-keyout", str(key), "-out", str(cert)],
        capture_output=True, text=True, check=False)
    if made.returncode != 0:
        last = (made.stderr.strip().splitlines() or ["no reason given"])[-1]
        raise SimError(f"openssl could not make a certificate in {directory}: {last}")
    return SelfSigned(cert, key)
