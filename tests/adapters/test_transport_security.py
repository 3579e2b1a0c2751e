"""The key stays home: no proxy unless asked (and then only for TLS), no redirect followed,
plaintext only to a peer on this machine, no key to loopback unless asked.

The Realtime server is the project's simulator. The proxies and the redirecting servers are
bare TCP listeners (``Listener``) that record what each connection sent them and answer one
fixed thing; they speak no Realtime protocol. The last tests run ``bargein talk`` as a user
does, with the helpers of ``tests/cli/test_cli.py``.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bargein.adapters import endpoints
from bargein.adapters.audio.wav import write_wav
from bargein.adapters.endpoints import Auth
from bargein.adapters.secrets import ApiKey
from bargein.adapters.transport import RealtimeTransport, ReconnectPolicy
from bargein.core import events as ev
from bargein.errors import (
    ConnectFailed,
    InsecureEndpoint,
    InsecureProxy,
    KeyRejected,
    RedirectRefused,
    TransportError,
)
from tests.cli.test_cli import FAKE_KEY, USER, bargein, env, one_clear_line
from tests.support.sim_support import serving

pytestmark = pytest.mark.e2e

KEY = "sk-test-" + "h0me" * 10
NO_RETRY = ReconnectPolicy(max_attempts=0)
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                   "all_proxy", "WSS_PROXY", "wss_proxy", "WS_PROXY", "ws_proxy")


class Listener:
    """A bare TCP listener: records the bytes each connection sent up to the end of its
    HTTP head (``heads``), answers ``answer``, and with ``read_after`` records the next
    bytes too (``tails``) before it hangs up. Not a Realtime server."""

    def __init__(self, host: str = "127.0.0.1", answer: bytes = b"",
                 read_after: bool = False) -> None:
        self.host = host
        self.answer = answer
        self.read_after = read_after
        self.heads: list[bytes] = []
        self.tails: list[bytes] = []
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def received(self) -> bytes:
        return b"".join(self.heads + self.tails)

    async def __aenter__(self) -> Listener:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            self.heads.append(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30))
            writer.write(self.answer)
            await writer.drain()
            if self.read_after:
                self.tails.append(await asyncio.wait_for(reader.read(65536), 30))
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()


def redirect_to(location: str, status: int = 302) -> bytes:
    return (f"HTTP/1.1 {status} Moved\r\nLocation: {location}\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n").encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Point every proxy variable websockets reads at ``url``, with no bypass list."""

    def point(url: str) -> None:
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        for name in PROXY_VARIABLES:
            monkeypatch.setenv(name, url)

    return point


async def first_event(transport: RealtimeTransport) -> ev.Event:
    return await asyncio.wait_for(anext(aiter(transport.events())), 30)


# --- no proxy unless asked, and then only for TLS ----------------------------------------

async def test_the_environments_proxy_is_never_used_for_a_loopback_simulator(
    proxy_env: Callable[[str], None],
) -> None:
    async with Listener() as proxy, serving() as sim:
        proxy_env(proxy.url)
        endpoint = endpoints.custom(sim.url, auth="bearer")
        async with RealtimeTransport(endpoint, ApiKey(KEY), reconnect=NO_RETRY) as transport:
            assert isinstance(await first_event(transport), ev.SessionReady)
        assert len(sim.records) == 1
    assert proxy.connections == 0


async def test_the_environments_proxy_is_never_used_for_wss(
    proxy_env: Callable[[str], None],
) -> None:
    async with Listener(answer=b"HTTP/1.1 403 Forbidden\r\n\r\n") as proxy:
        proxy_env(proxy.url)
        endpoint = endpoints.custom(f"wss://127.0.0.1:{free_port()}/v1", auth="bearer")
        with pytest.raises(ConnectFailed, match=re.escape("cannot reach 127.0.0.1")):
            await RealtimeTransport(endpoint, ApiKey(KEY), connect_timeout=20).connect()
    assert proxy.connections == 0


async def test_a_proxy_asked_for_carries_only_tls_and_never_sees_the_key() -> None:
    tunnel = b"HTTP/1.1 200 Connection established\r\n\r\n"
    async with Listener(answer=tunnel, read_after=True) as proxy:
        endpoint = endpoints.openai().via(proxy.url)
        transport = RealtimeTransport(endpoint, ApiKey(KEY), connect_timeout=20)
        with pytest.raises(TransportError) as caught:
            await transport.connect()  # the listener hangs up after the TLS client hello
    assert proxy.connections == 1
    (head,) = proxy.heads
    assert head.startswith(b"CONNECT api.openai.com:443 HTTP/1.1\r\n")
    (tail,) = proxy.tails
    assert tail[:1] == b"\x16"  # a TLS handshake record: the upgrade request is inside it
    assert KEY.encode() not in proxy.received()
    assert b"authorization" not in proxy.received().lower()
    assert KEY not in str(caught.value)


@pytest.mark.parametrize("allow_plaintext", [False, True])
def test_a_proxy_for_a_plaintext_endpoint_is_refused(allow_plaintext: bool) -> None:
    for base in ("ws://127.0.0.1:8765/v1", "ws://realtime.example/v1"):
        endpoint = endpoints.custom(base, auth="bearer").via("http://proxy.example:3128")
        with pytest.raises(InsecureProxy, match=re.escape("proxy.example")) as caught:
            RealtimeTransport(endpoint, ApiKey(KEY), allow_plaintext=allow_plaintext)
        assert "\n" not in str(caught.value)
        assert isinstance(caught.value, InsecureEndpoint)


# --- no redirect -------------------------------------------------------------------------

@pytest.mark.parametrize("auth", ["bearer", "api-key"])
@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_to_another_host_is_refused_and_nothing_follows_it(
    auth: Auth, status: int
) -> None:
    async with Listener(host="127.0.0.2") as elsewhere:
        target = f"ws://127.0.0.2:{elsewhere.port}/v1/realtime"
        async with Listener(answer=redirect_to(target, status)) as server:
            endpoint = endpoints.custom(f"ws://127.0.0.1:{server.port}/v1", auth=auth)
            with pytest.raises(RedirectRefused) as caught:
                await RealtimeTransport(endpoint, ApiKey(KEY), reconnect=NO_RETRY).connect()
    message = str(caught.value)
    assert f"HTTP {status}" in message and f"ws://127.0.0.2:{elsewhere.port}" in message
    assert "\n" not in message and KEY not in message
    assert (caught.value.status, caught.value.target) == (
        status, f"ws://127.0.0.2:{elsewhere.port}")
    assert server.connections == 1
    assert elsewhere.connections == 0  # neither Authorization nor api-key went there


async def test_a_redirect_on_the_same_host_is_refused_too() -> None:
    async with Listener(answer=redirect_to("/v2/realtime?model=x")) as server:
        endpoint = endpoints.custom(f"ws://127.0.0.1:{server.port}/v1")
        same_host = re.escape(f"HTTP 302) to ws://127.0.0.1:{server.port}")
        with pytest.raises(RedirectRefused, match=same_host):
            await RealtimeTransport(endpoint, None).connect()
    assert server.connections == 1


# --- plaintext only to this machine -------------------------------------------------------

def outward_address() -> str:
    """An address of this machine that is not loopback (skips the test if it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            pytest.skip("no network interface besides loopback")
        address: str = probe.getsockname()[0]
    if address.startswith("127."):
        pytest.skip("no network interface besides loopback")
    return address


def resolve(monkeypatch: pytest.MonkeyPatch, name: str, address: str) -> None:
    """Make the running loop resolve ``name`` to ``address`` (and only that name)."""
    loop = asyncio.get_running_loop()
    real: Callable[..., Awaitable[Any]] = loop.getaddrinfo

    async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return await real(address if host == name else host, port, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)


async def test_plaintext_is_checked_on_the_connection_not_only_on_the_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``localhost`` that resolves to another machine is refused before any connection."""
    address = outward_address()
    async with Listener(host="0.0.0.0") as server:  # reachable at the outward address
        resolve(monkeypatch, "localhost", address)
        endpoint = endpoints.custom(f"ws://localhost:{server.port}/v1", auth="bearer")
        assert endpoint.is_loopback  # the URL alone says "this machine"
        with pytest.raises(InsecureEndpoint, match=re.escape(f"resolved to {address}")) as caught:
            await RealtimeTransport(endpoint, ApiKey(KEY), reconnect=NO_RETRY).connect()
        assert "\n" not in str(caught.value)
    assert server.connections == 0  # refused on the resolved address: not even connected
    # with the caller's consent the same connection is made (and answered by nobody here)
    async with Listener(host="0.0.0.0", answer=b"HTTP/1.1 404 Not Found\r\n\r\n") as server:
        endpoint = endpoints.custom(f"ws://localhost:{server.port}/v1")
        with pytest.raises(TransportError):
            await RealtimeTransport(endpoint, None, allow_plaintext=True).connect()
    assert len(server.heads) == 1


# --- no key to loopback unless asked -------------------------------------------------------

async def test_a_loopback_endpoint_gets_no_key_unless_asked() -> None:
    # the simulator refuses KEY: a 401 would show it was sent
    async with serving(reject_api_keys=frozenset({KEY})) as sim:
        transport = RealtimeTransport(endpoints.custom(sim.url), ApiKey(KEY))
        assert not transport.sends_key
        async with transport:
            assert isinstance(await first_event(transport), ev.SessionReady)
        asked = RealtimeTransport(endpoints.custom(sim.url, auth="bearer"), ApiKey(KEY))
        assert asked.sends_key
        with pytest.raises(KeyRejected, match="rejected the API key") as caught:
            await asked.connect()
    assert caught.value.key_sent
    assert len(sim.records) == 1


async def test_a_refusal_when_no_key_was_sent_does_not_blame_a_key() -> None:
    async with serving(accept_api_keys=frozenset({KEY})) as sim:
        with pytest.raises(KeyRejected) as caught:
            await RealtimeTransport(endpoints.custom(sim.url), ApiKey(KEY)).connect()
    message = str(caught.value)
    assert "rejected the API key" not in message
    assert "HTTP 401" in message and "no API key was sent" in message and "--send-key" in message
    assert (caught.value.status, caught.value.key_sent) == (401, False)


# --- the command line, as the "done when" says -------------------------------------

@pytest.fixture
async def proxy() -> AsyncIterator[Listener]:
    async with Listener(answer=b"HTTP/1.1 403 Forbidden\r\n\r\n") as listener:
        yield listener


def talk_env(proxy: Listener, **changes: str | None) -> dict[str, str]:
    """A user's environment: a key, every proxy variable pointing at ``proxy``, no bypass."""
    proxies: dict[str, str | None] = dict.fromkeys(PROXY_VARIABLES, proxy.url)
    return env(OPENAI_API_KEY=FAKE_KEY, NO_PROXY=None, no_proxy=None, **proxies, **changes)


async def talk(tmp_path: Path, url: str, environ: dict[str, str],
               *extra: str) -> tuple[int, str, str]:
    wav = write_wav(tmp_path / "in.wav", USER)
    return await bargein("talk", "--url", url, "--input", str(wav), "--output",
                         str(tmp_path / "out.wav"), "--linger", "0.5", *extra,
                         environ=environ, timeout=120)


async def test_talk_to_a_local_simulator_sends_nothing_to_the_proxy_and_no_key(
    tmp_path: Path, proxy: Listener
) -> None:
    async with serving(reject_api_keys=frozenset({FAKE_KEY})) as sim:
        code, out, err = await talk(tmp_path, sim.url, talk_env(proxy))
        assert code == 0, err
        assert len(sim.records) == 1  # a key would have been answered with 401
    assert proxy.connections == 0
    assert FAKE_KEY not in out + err


async def test_talk_refuses_a_redirect_to_another_host_with_one_line(tmp_path: Path) -> None:
    async with Listener(host="127.0.0.2") as elsewhere:
        target = f"ws://127.0.0.2:{elsewhere.port}/v1/realtime?model=gpt-realtime"
        refused = f"redirect (HTTP 302) to ws://127.0.0.2:{elsewhere.port}"
        async with Listener(answer=redirect_to(target)) as server:
            for extra in ((), ("--send-key",)):
                code, _, err = await talk(tmp_path, f"ws://127.0.0.1:{server.port}/v1",
                                          env(OPENAI_API_KEY=FAKE_KEY), *extra)
                one_clear_line(code, err, refused)
    assert elsewhere.connections == 0
    assert server.connections == 2
    no_key, asked = server.heads
    assert b"authorization" not in no_key.lower()  # loopback: no key unless asked
    assert FAKE_KEY.encode() in asked  # --send-key: the key, to the server named and no other


async def test_talk_sends_the_key_to_a_local_server_only_with_send_key(
    tmp_path: Path, proxy: Listener
) -> None:
    async with serving(accept_api_keys=frozenset({FAKE_KEY})) as sim:
        code, _, err = await talk(tmp_path, sim.url, talk_env(proxy))
        one_clear_line(code, err, "no API key was sent")
        assert "--send-key" in err and "rejected the API key" not in err
        code, _, err = await talk(tmp_path, sim.url, talk_env(proxy), "--send-key")
        assert code == 0, err
        assert len(sim.records) == 1
    assert proxy.connections == 0


async def test_talk_refuses_a_proxy_for_plaintext_with_one_line(tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{free_port()}/v1"  # nothing listens: nothing may be attempted
    code, _, err = await talk(tmp_path, url, env(OPENAI_API_KEY=FAKE_KEY), "--send-key",
                              "--proxy", "http://proxy.example:3128")
    one_clear_line(code, err, "refusing the proxy proxy.example for plaintext ws://")
