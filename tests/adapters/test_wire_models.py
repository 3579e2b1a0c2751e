"""The conformance checker itself must fail on what the official models would let through."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bargein.adapters.codec import WireCodec
from bargein.core.commands import SendToolOutput
from bargein.core.tool_calls import CANCELLED_OUTPUT
from tests.support.wire_models import validate_client_event, validate_server_event

GA_SESSION_UPDATE: dict[str, Any] = {
    "type": "session.update",
    "session": {
        "type": "realtime",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "turn_detection": {"type": "server_vad", "threshold": 0.5},
            }
        },
    },
}


@pytest.mark.parametrize("api", ["ga", "beta"])
def test_accepts_a_well_formed_client_event(api: str) -> None:
    validate_client_event(
        {
            "type": "conversation.item.truncate",
            "item_id": "i",
            "content_index": 0,
            "audio_end_ms": 120,
            "event_id": "e1",
        },
        api,
    )


def test_accepts_a_nested_ga_session_update() -> None:
    validate_client_event(GA_SESSION_UPDATE, "ga")


@pytest.mark.parametrize("api", ["ga", "beta"])
def test_rejects_an_undeclared_top_level_key(api: str) -> None:
    with pytest.raises(AssertionError, match=r"\$\.bogus"):
        validate_client_event({"type": "response.cancel", "bogus": 1}, api)


def test_rejects_a_misspelled_optional_key_the_sdk_would_ignore() -> None:
    with pytest.raises(AssertionError, match=r"\$\.respnse_id"):
        validate_client_event({"type": "response.cancel", "respnse_id": "r1"}, "ga")


def test_rejects_a_misspelled_key_deep_inside_the_session() -> None:
    payload = GA_SESSION_UPDATE | {"session": {**GA_SESSION_UPDATE["session"]}}
    payload["session"]["audio"] = {
        "input": {"turn_detection": {"type": "server_vad", "treshold": 0.5}}
    }
    with pytest.raises(AssertionError, match=r"turn_detection\.treshold"):
        validate_client_event(payload, "ga")


def test_rejects_a_ga_session_shape_on_beta() -> None:
    with pytest.raises(AssertionError):
        validate_client_event(GA_SESSION_UPDATE, "beta")


def test_strict_types_refuse_coercion() -> None:
    with pytest.raises(AssertionError, match="does not match"):
        validate_client_event(
            {
                "type": "conversation.item.truncate",
                "item_id": "i",
                "content_index": 0,
                "audio_end_ms": "120",
            },
            "ga",
        )


def test_rejects_a_missing_required_key() -> None:
    with pytest.raises(AssertionError, match="does not match"):
        validate_client_event({"type": "conversation.item.delete"}, "ga")


@pytest.mark.parametrize("api", ["ga", "beta"])
def test_rejects_an_unknown_type(api: str) -> None:
    with pytest.raises(AssertionError, match="does not match"):
        validate_server_event({"type": "response.audio.deltaa", "event_id": "e"}, api)


def test_server_event_names_differ_between_flavours() -> None:
    delta = {
        "event_id": "e",
        "response_id": "r",
        "item_id": "i",
        "output_index": 0,
        "content_index": 0,
        "delta": "AAAA",
    }
    validate_server_event({"type": "response.output_audio.delta", **delta}, "ga")
    validate_server_event({"type": "response.audio.delta", **delta}, "beta")
    with pytest.raises(AssertionError):
        validate_server_event({"type": "response.audio.delta", **delta}, "ga")


def test_rejects_an_unknown_flavour() -> None:
    with pytest.raises(AssertionError, match="unknown api flavour"):
        validate_client_event({"type": "response.cancel"}, "v2")


@pytest.mark.parametrize("api", ["ga", "beta"])
def test_a_cancelled_calls_output_placed_after_its_call_is_an_official_client_event(
        api: str) -> None:
    """bargein's answer to a cancelled call (``previous_item_id``: right after the call)."""
    frame = WireCodec(api).encode(  # type: ignore[arg-type]
        SendToolOutput("call_1", CANCELLED_OUTPUT, "evt_1", after_item_id="item_fc"))
    payload = json.loads(frame)
    assert payload["previous_item_id"] == "item_fc"
    validate_client_event(payload, api)
    with pytest.raises(AssertionError):
        validate_client_event({**payload, "previous_item": "item_fc"}, api)
