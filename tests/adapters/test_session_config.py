"""The session builder writes the GA nested shape and the beta flat shape from one value."""

from __future__ import annotations

import dataclasses

import pytest

from bargein.adapters.session_config import Api, ClientVad, SemanticVad, ServerVad, SessionConfig
from bargein.errors import BargeinError, SessionConfigError


def test_ga_shape_nests_audio_settings() -> None:
    config = SessionConfig(
        turn_detection=ServerVad(threshold=0.6, prefix_padding_ms=300, silence_duration_ms=500),
        voice="marin",
        instructions="Be brief.",
        input_transcription_model="gpt-4o-transcribe",
    )
    assert config.to_wire("ga") == {
        "type": "realtime",
        "output_modalities": ["audio"],
        "instructions": "Be brief.",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "gpt-4o-transcribe"},
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.6,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                },
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"},
        },
    }


def test_beta_shape_is_flat() -> None:
    config = SessionConfig(
        input_format="g711_ulaw",
        output_format="g711_alaw",
        turn_detection=SemanticVad(eagerness="low", interrupt_response=False),
        voice="alloy",
        input_transcription_model="whisper-1",
    )
    assert config.to_wire("beta") == {
        "modalities": ["audio", "text"],
        "input_audio_format": "g711_ulaw",
        "output_audio_format": "g711_alaw",
        "voice": "alloy",
        "input_audio_transcription": {"model": "whisper-1"},
        "turn_detection": {"type": "semantic_vad", "eagerness": "low", "interrupt_response": False},
    }


@pytest.mark.parametrize(
    ("fmt", "wire"),
    [
        ("pcm16", {"type": "audio/pcm", "rate": 24000}),
        ("g711_ulaw", {"type": "audio/pcmu"}),
        ("g711_alaw", {"type": "audio/pcma"}),
    ],
)
def test_ga_audio_formats(fmt: str, wire: dict[str, object]) -> None:
    session = SessionConfig(input_format=fmt, output_format=fmt).to_wire("ga")  # type: ignore[arg-type]
    assert session["audio"]["input"]["format"] == wire
    assert session["audio"]["output"]["format"] == wire


@pytest.mark.parametrize("api", ["ga", "beta"])
def test_manual_turns_send_an_explicit_null(api: str) -> None:
    session = SessionConfig(turn_detection=None).to_wire(api)  # type: ignore[arg-type]
    turn = session["audio"]["input"]["turn_detection"] if api == "ga" else session["turn_detection"]
    assert turn is None


def test_unset_fields_are_omitted_so_the_server_keeps_its_defaults() -> None:
    session = SessionConfig().to_wire("beta")
    assert "voice" not in session
    assert "instructions" not in session
    assert session["turn_detection"] == {"type": "server_vad"}


def test_interrupt_response_follows_turn_detection() -> None:
    assert SessionConfig().interrupt_response is True
    assert SessionConfig(turn_detection=None).interrupt_response is False
    assert (
        SessionConfig(turn_detection=SemanticVad(interrupt_response=False)).interrupt_response
        is False
    )
    assert (
        SessionConfig(turn_detection=ServerVad(interrupt_response=True)).interrupt_response is True
    )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ServerVad(threshold=1.5), "threshold"),
        (lambda: ServerVad(silence_duration_ms=-1), "silence_duration_ms"),
        (lambda: ServerVad(prefix_padding_ms=True), "prefix_padding_ms"),
        (lambda: SemanticVad(eagerness="eager"), "eagerness"),  # type: ignore[arg-type]
        (lambda: SessionConfig(input_format="opus"), "input_format"),  # type: ignore[arg-type]
        (lambda: SessionConfig().to_wire("v2"), "flavour"),  # type: ignore[arg-type]
    ],
)
def test_bad_settings_raise_a_typed_error(build: object, message: str) -> None:
    with pytest.raises(SessionConfigError, match=message) as caught:
        build()  # type: ignore[operator]
    assert isinstance(caught.value, BargeinError)


def test_configs_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        SessionConfig().voice = "x"  # type: ignore[misc]


@pytest.mark.parametrize("api", ["ga", "beta"])
def test_client_turns_turn_the_servers_detection_off(api: Api) -> None:
    config = SessionConfig(turn_detection=ClientVad(end_after_ms=300))
    wire = config.to_wire(api)
    turn = wire["turn_detection"] if api == "beta" else wire["audio"]["input"]["turn_detection"]
    assert turn is None
    assert config.manual_turns and config.client_turn_end_ms == 300
    assert not config.interrupt_response
    assert config.with_interrupt_response(True) is config
    assert SessionConfig().client_turn_end_ms is None
    assert SessionConfig(turn_detection=None).client_turn_end_ms is None
    with pytest.raises(SessionConfigError, match="end_after_ms"):
        ClientVad(end_after_ms=-1)
