"""The key never shows: not in reprs, not in logs, not in exceptions, not in tracebacks."""

from __future__ import annotations

import logging
import pickle

import pytest
import structlog

from bargein.adapters.secrets import ApiKey
from bargein.errors import ApiKeyError, BargeinError
from bargein.redaction import RedactingFilter, redact, redact_secrets

OPENAI_KEY = "sk-proj-" + "Abc123_-" * 6
AZURE_KEY = "0123456789abcdef" * 2  # Azure keys are plain hex: no shape to recognise


def test_repr_and_str_hide_the_key() -> None:
    key = ApiKey(OPENAI_KEY)
    for shown in (repr(key), str(key), f"{key}", f"{key!r}", repr([key]), repr({"k": key})):
        assert OPENAI_KEY not in shown
        assert "***" in shown
    assert key.reveal() == OPENAI_KEY


def test_a_key_cannot_be_pickled() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(ApiKey(OPENAI_KEY))


def test_from_env_reads_the_variable() -> None:
    key = ApiKey.from_env("AZURE_OPENAI_API_KEY", {"AZURE_OPENAI_API_KEY": f" {AZURE_KEY}\n"})
    assert key.reveal() == AZURE_KEY


@pytest.mark.parametrize(
    ("environ", "message"),
    [({}, "set the environment variable OPENAI_API_KEY"), ({"OPENAI_API_KEY": "  "}, "OPENAI")],
)
def test_a_missing_key_is_a_typed_error(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ApiKeyError, match=message) as caught:
        ApiKey.from_env(environ=environ)
    assert isinstance(caught.value, BargeinError)


def test_a_key_with_a_newline_is_refused_without_echoing_it() -> None:
    with pytest.raises(ApiKeyError) as caught:
        ApiKey("sk-abc\r\nX-Injected: 1")
    assert "sk-abc" not in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        f"connecting with {OPENAI_KEY}",
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.signature",
        "headers={'Authorization': 'Bearer some-opaque-token-1234'}",
        "[('api-key', 'f00dbabe1234'), ('x', 'y')]",
        "api_key=whatever-secret-value",
        '{"api-key": "0a1b2c3d4e5f"}',
    ],
)
def test_redact_masks_key_shaped_text(text: str) -> None:
    cleaned = redact(text)
    assert "***" in cleaned
    for secret in (
        OPENAI_KEY,
        "eyJhbGciOiJIUzI1NiJ9",
        "some-opaque-token-1234",
        "f00dbabe1234",
        "whatever-secret-value",
        "0a1b2c3d4e5f",
    ):
        assert secret not in cleaned


def test_redact_masks_any_wrapped_key_verbatim_whatever_its_shape() -> None:
    ApiKey(AZURE_KEY)
    assert redact(f"deployment failed for key {AZURE_KEY}.") == "deployment failed for key ***."


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "response resp_123 cancelled after 1520 ms; item item_9 truncated"
    assert redact(text) == text


def test_structlog_processor_scrubs_every_value() -> None:
    ApiKey(AZURE_KEY)
    event = redact_secrets(
        None,
        "info",
        {
            "event": f"using {OPENAI_KEY}",
            "api_key": "anything",
            "headers": {"Authorization": f"Bearer {OPENAI_KEY}", "api-key": AZURE_KEY},
            "attempts": [AZURE_KEY, 3],
            "error": RuntimeError(f"bad key {AZURE_KEY}"),
            "count": 3,
        },
    )
    rendered = repr(event)
    assert OPENAI_KEY not in rendered and AZURE_KEY not in rendered
    assert event["api_key"] == "***"
    assert event["count"] == 3
    assert event["error"] == "RuntimeError: bad key ***"


def test_a_configured_structlog_pipeline_never_prints_the_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = ApiKey(AZURE_KEY)
    structlog.configure(
        processors=[
            structlog.processors.format_exc_info,
            redact_secrets,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    try:
        log = structlog.get_logger("test")
        try:
            raise ConnectionError(f"handshake failed: api-key {key.reveal()}")
        except ConnectionError:
            log.exception("connect_failed", key=key, header=f"api-key: {key.reveal()}")
    finally:
        structlog.reset_defaults()
    out = capsys.readouterr().out
    assert "connect_failed" in out and "ConnectionError" in out
    assert AZURE_KEY not in out


def test_stdlib_filter_scrubs_messages_args_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ApiKey(AZURE_KEY)
    logger = logging.getLogger("test_secrets.ws")
    logger.addFilter(RedactingFilter())
    caplog.set_level(logging.DEBUG, logger="test_secrets.ws")
    logger.debug("> %s: %s", "api-key", AZURE_KEY)
    try:
        raise OSError(f"refused with {OPENAI_KEY}")
    except OSError:
        logger.exception("failed")
    text = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    assert "> api-key: ***" in text
    assert "OSError" in text
    assert AZURE_KEY not in text and OPENAI_KEY not in text
