"""Where a Realtime session connects: URL, API flavour and how the key is presented.

Presets build the URLs of OpenAI (GA and beta), Azure OpenAI (GA and preview) and any
custom server. A custom base URL such as ``ws://127.0.0.1:8765/v1`` gets ``/realtime`` and
the ``model`` query parameter appended the way the official SDK treats
``websocket_base_url``. An endpoint holds no secret: the key travels separately.

Where the key may go is part of the endpoint, stated once:

- ``auth``: how the key is presented (``bearer``, Azure's ``api-key``) or ``none``. Left
  unset, a loopback endpoint (a simulator or a local server on this machine) is ``none``:
  it gets no key unless the program asks with ``auth="bearer"`` (the command line's
  ``--send-key``). Every other endpoint is ``bearer``.
- ``proxy``: an HTTP(S) or SOCKS proxy to tunnel through, only when named here. The
  environment's ``HTTPS_PROXY``/``ALL_PROXY``/``http_proxy`` are never used: a variable
  set for other programs must not route a Realtime handshake, key included, through
  another host. The transport refuses a proxy for a plaintext ``ws://`` endpoint
  (``InsecureProxy``); through TLS the proxy sees only the target host and port.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field
from typing import Literal, TypeAlias
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from websockets.exceptions import InvalidProxy

try:
    from websockets.proxy import parse_proxy
except ImportError:  # websockets 15 (what openai[realtime] allows) has it in websockets.uri
    from websockets.uri import parse_proxy  # type: ignore[attr-defined,no-redef]

from bargein.adapters.session_config import Api
from bargein.errors import EndpointError

Auth: TypeAlias = Literal["bearer", "api-key", "none"]

OPENAI_BASE: Literal["wss://api.openai.com/v1"] = "wss://api.openai.com/v1"
DEFAULT_MODEL = "gpt-realtime"
AZURE_PREVIEW_API_VERSION = "2025-04-01-preview"

@dataclass(frozen=True, slots=True)
class Endpoint:
    """A Realtime WebSocket URL, its API flavour, how the key is presented, extra headers,
    and the proxy to go through, if any.

    ``auth`` left as ``None`` becomes ``"none"`` for a loopback host and ``"bearer"`` for any
    other, so a key reaches a server on this machine only when asked for explicitly.
    ``proxy`` is a proxy URL (``http://``, ``https://``, ``socks5://``, ...); it may hold
    credentials, so it stays out of the ``repr``.
    """

    url: str
    api: Api = "ga"
    auth: Auth | None = None
    extra_headers: tuple[tuple[str, str], ...] = ()
    proxy: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise EndpointError(f"not a WebSocket URL (ws:// or wss://): {self.url!r}")
        if self.api not in ("ga", "beta"):
            raise EndpointError(f"unknown Realtime API flavour {self.api!r}: use 'ga' or 'beta'")
        if self.auth is None:
            object.__setattr__(self, "auth", "none" if self.is_loopback else "bearer")
        elif self.auth not in ("bearer", "api-key", "none"):
            raise EndpointError(f"unknown auth {self.auth!r}: use 'bearer', 'api-key' or 'none'")
        if self.proxy is not None:
            try:
                parse_proxy(self.proxy)
            except InvalidProxy as exc:
                host = urlsplit(self.proxy).hostname or "?"
                raise EndpointError(f"not a usable proxy URL (host {host}): {exc.msg}") from None

    @property
    def proxy_host(self) -> str:
        """The proxy's host name or address (never its credentials), or ``""``."""
        return "" if self.proxy is None else (urlsplit(self.proxy).hostname or "")

    def via(self, proxy: str | None) -> Endpoint:
        """The same endpoint reached through ``proxy`` (``None``: directly)."""
        return dataclasses.replace(self, proxy=proxy)

    @property
    def host(self) -> str:
        """The host name or address the URL names."""
        return urlsplit(self.url).hostname or ""

    @property
    def is_plaintext(self) -> bool:
        """True for ``ws://`` (no TLS)."""
        return urlsplit(self.url).scheme == "ws"

    @property
    def is_loopback(self) -> bool:
        """True when the host is this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
        host = self.host
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


def openai(model: str = DEFAULT_MODEL, api: Api = "ga") -> Endpoint:
    """OpenAI's Realtime API; beta adds the ``OpenAI-Beta: realtime=v1`` header."""
    return custom(OPENAI_BASE, model, api=api)


def azure(resource: str, deployment: str, api: Api = "ga") -> Endpoint:
    """Azure OpenAI's GA Realtime endpoint (``/openai/v1/realtime?model=DEPLOYMENT``)."""
    base = f"wss://{_resource_host(resource)}/openai/v1"
    endpoint = custom(base, deployment, api=api)
    return Endpoint(endpoint.url, endpoint.api, "api-key", endpoint.extra_headers)


def azure_preview(
    resource: str, deployment: str, api_version: str = AZURE_PREVIEW_API_VERSION
) -> Endpoint:
    """Azure OpenAI's preview Realtime endpoint, which speaks the beta protocol."""
    query = urlencode({"api-version": api_version, "deployment": deployment})
    return Endpoint(f"wss://{_resource_host(resource)}/openai/realtime?{query}", "beta", "api-key")


def custom(
    base_url: str, model: str = DEFAULT_MODEL, api: Api = "ga", auth: Auth | None = None
) -> Endpoint:
    """Any server: ``/realtime`` is appended to the base path and ``model`` to the query.

    ``http``/``https`` map to ``ws``/``wss``, as in the official SDK. ``auth`` unset: no key
    for a loopback host, a bearer key for any other (see ``Endpoint``).
    """
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key != "model"]
    query.append(("model", model))
    url = urlunsplit(
        (scheme, parts.netloc, parts.path.rstrip("/") + "/realtime", urlencode(query), "")
    )
    extra = (("OpenAI-Beta", "realtime=v1"),) if api == "beta" else ()
    return Endpoint(url, api, auth, extra)


def _resource_host(resource: str) -> str:
    if not resource or quote(resource, safe="-") != resource:
        raise EndpointError(f"not an Azure resource name: {resource!r}")
    return f"{resource}.openai.azure.com"
