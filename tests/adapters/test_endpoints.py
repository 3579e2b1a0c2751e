"""Endpoint presets build the URLs and headers each service expects."""

from __future__ import annotations

import pytest

from bargein.adapters import endpoints
from bargein.adapters.endpoints import Endpoint
from bargein.errors import EndpointError


def test_openai_ga() -> None:
    endpoint = endpoints.openai("gpt-realtime")
    assert endpoint == Endpoint(
        "wss://api.openai.com/v1/realtime?model=gpt-realtime", "ga", "bearer"
    )


def test_openai_beta_adds_the_beta_header() -> None:
    endpoint = endpoints.openai("gpt-4o-realtime-preview", api="beta")
    assert endpoint.url == "wss://api.openai.com/v1/realtime?model=gpt-4o-realtime-preview"
    assert endpoint.extra_headers == (("OpenAI-Beta", "realtime=v1"),)
    assert endpoint.api == "beta"


def test_azure_ga_uses_the_deployment_as_model_and_the_api_key_header() -> None:
    endpoint = endpoints.azure("my-res", "my-deployment")
    assert endpoint.url == "wss://my-res.openai.azure.com/openai/v1/realtime?model=my-deployment"
    assert (endpoint.api, endpoint.auth, endpoint.extra_headers) == ("ga", "api-key", ())


def test_azure_preview_speaks_beta_with_api_version_and_deployment() -> None:
    endpoint = endpoints.azure_preview("my-res", "dep1", api_version="2024-10-01-preview")
    assert endpoint.url == (
        "wss://my-res.openai.azure.com/openai/realtime"
        "?api-version=2024-10-01-preview&deployment=dep1"
    )
    assert (endpoint.api, endpoint.auth) == ("beta", "api-key")


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("ws://127.0.0.1:8765/v1", "ws://127.0.0.1:8765/v1/realtime?model=m"),
        ("ws://127.0.0.1:8765/v1/", "ws://127.0.0.1:8765/v1/realtime?model=m"),
        ("http://localhost:9/v1?x=1", "ws://localhost:9/v1/realtime?x=1&model=m"),
        ("https://proxy.example/v1?model=old", "wss://proxy.example/v1/realtime?model=m"),
    ],
)
def test_custom_base_urls_follow_the_official_sdk(base: str, url: str) -> None:
    assert endpoints.custom(base, "m").url == url


def test_model_names_are_query_encoded() -> None:
    assert endpoints.openai("a b&c").url.endswith("?model=a+b%26c")


@pytest.mark.parametrize(
    ("url", "loopback", "plaintext"),
    [
        ("ws://127.0.0.1:1/realtime", True, True),
        ("ws://127.8.0.1:1/realtime", True, True),
        ("ws://localhost/realtime", True, True),
        ("ws://[::1]:1/realtime", True, True),
        ("ws://10.0.0.2/realtime", False, True),
        ("wss://api.openai.com/v1/realtime", False, False),
    ],
)
def test_loopback_and_plaintext_detection(url: str, loopback: bool, plaintext: bool) -> None:
    endpoint = Endpoint(url)
    assert (endpoint.is_loopback, endpoint.is_plaintext) == (loopback, plaintext)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Endpoint("https://api.openai.com/v1/realtime"),
        lambda: Endpoint("wss:///nohost"),
        lambda: Endpoint("wss://h/realtime", api="v2"),  # type: ignore[arg-type]
        lambda: endpoints.azure("bad/res", "d"),
        lambda: endpoints.azure("", "d"),
    ],
)
def test_bad_endpoints_raise_endpoint_error(build: object) -> None:
    with pytest.raises(EndpointError):
        build()  # type: ignore[operator]


# --- where the key may go ---------------------------------------------------------------

@pytest.mark.parametrize(
    ("base", "auth"),
    [
        ("ws://127.0.0.1:8765/v1", "none"),
        ("ws://localhost:8765/v1", "none"),
        ("wss://[::1]:8765/v1", "none"),
        ("ws://10.0.0.2/v1", "bearer"),
        ("wss://realtime.example/v1", "bearer"),
    ],
)
def test_a_loopback_endpoint_gets_no_key_unless_asked(base: str, auth: str) -> None:
    assert endpoints.custom(base).auth == auth
    assert Endpoint(endpoints.custom(base).url).auth == auth
    assert endpoints.custom(base, auth="bearer").auth == "bearer"  # asked for explicitly
    # the presets are remote and keep their own style
    assert (endpoints.openai().auth, endpoints.azure("r", "d").auth) == ("bearer", "api-key")


def test_a_proxy_is_only_what_the_caller_names_and_its_credentials_stay_out_of_repr() -> None:
    endpoint = endpoints.openai()
    assert endpoint.proxy is None and endpoint.proxy_host == ""
    secret = "pr0xy-Pa55word-that-must-not-show"
    proxied = endpoint.via(f"http://user:{secret}@proxy.example:3128")
    assert proxied.proxy_host == "proxy.example"
    assert (proxied.url, proxied.auth) == (endpoint.url, endpoint.auth)
    assert secret not in repr(proxied)
    assert proxied.via(None) == endpoint


@pytest.mark.parametrize(
    "proxy", ["ftp://proxy.example", "http://", "http://proxy.example/path", "proxy.example"]
)
def test_an_unusable_proxy_url_is_an_endpoint_error(proxy: str) -> None:
    with pytest.raises(EndpointError, match="proxy"):
        endpoints.openai().via(proxy)


def test_an_unknown_auth_is_an_endpoint_error() -> None:
    with pytest.raises(EndpointError, match="auth"):
        Endpoint("wss://h/realtime", auth="basic")  # type: ignore[arg-type]
