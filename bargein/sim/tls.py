"""The simulator over TLS (``wss://``, as every OpenAI and Azure endpoint is).

``server_context(cert, key)`` loads a certificate chain and its private key (PEM) into a
server context for ``Simulator(tls=...)``, ``serve(tls=...)`` and ``bargein sim --tls-cert
--tls-key``. A file that cannot be read, a key that does not match, or a key behind a
passphrase (a server must not stop to ask for one) is a ``SimError`` that says which.

A client must trust the certificate: bargein's transport takes ``ssl_context=`` (for one
made for the run, ``bargein.testing.self_signed(directory).client_context()``), and every
client that uses Python's default context (``bargein talk`` among them) honours the
``SSL_CERT_FILE`` environment variable.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from bargein.errors import SimError

_REASONS = {"KEY_VALUES_MISMATCH": "the key is not the certificate's"}
"""OpenSSL's reasons, as a person would say them; any other: not PEM, or not these."""


def _no_passphrase() -> bytes:
    raise SimError("the TLS key is encrypted; the simulator takes an unencrypted key")


def server_context(cert: str | Path, key: str | Path | None = None) -> ssl.SSLContext:
    """A TLS server context with ``cert`` (PEM, the chain) and ``key`` (PEM; ``None`` when
    ``cert`` holds the key too)."""
    for path in (cert, key):
        if path is not None:
            try:
                Path(path).read_bytes()
            except OSError as exc:
                raise SimError(f"cannot read the TLS file {path}: {exc.strerror}") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except ssl.SSLError as exc:
        why = _REASONS.get(exc.reason or "", "not a PEM certificate chain and its key")
        raise SimError(f"the TLS certificate {cert} and key {key or cert}: {why}") from None
    return context
