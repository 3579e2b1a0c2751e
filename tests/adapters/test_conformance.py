"""Everything the codec sends, and every server shape it reads, matches the official models.

Client frames are validated strictly, with undeclared keys rejected (``tests.support.wire_models``);
the server fixtures in ``fixtures/wire`` are validated the same way, so the codec is known to
read the shapes the official SDK describes.
"""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
from openai.types.beta.realtime import realtime_server_event as beta_server
from openai.types.realtime import realtime_server_event as ga_server

from bargein.adapters.codec import WireCodec
from bargein.adapters.schema import CONSUMED_TYPES, IGNORED_TYPES
from bargein.adapters.session_config import (
    ClientVad,
    SemanticVad,
    ServerVad,
    SessionConfig,
    ToolSpec,
)
from bargein.core.commands import (
    CancelResponse,
    ClearInputAudio,
    CommitInputAudio,
    CreateMessage,
    CreateResponse,
    DeleteItem,
    SendAudio,
    SendToolOutput,
    ServerCommand,
    TruncateItem,
    UpdateSession,
)
from tests.support import WIRE_FIXTURES
from tests.support.wire_models import validate_client_event, validate_server_event

FIXTURES = WIRE_FIXTURES
APIS = ("ga", "beta")

SESSION_CONFIGS = {
    "defaults": SessionConfig(),
    "server_vad, every setting": SessionConfig(
        turn_detection=ServerVad(
            threshold=0.4,
            prefix_padding_ms=250,
            silence_duration_ms=600,
            interrupt_response=False,
            create_response=True,
        ),
        voice="alloy",
        instructions="Answer in one sentence.",
        input_transcription_model="whisper-1",
    ),
    "semantic_vad": SessionConfig(
        turn_detection=SemanticVad(eagerness="high", interrupt_response=True, create_response=False)
    ),
    "manual turns": SessionConfig(turn_detection=None),
    "client turns": SessionConfig(turn_detection=ClientVad()),
    "text replies": SessionConfig(reply="text"),
    "tools": SessionConfig(tools=(ToolSpec("departure", "When the next train leaves.", {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),)),
    "g711 u-law in, a-law out": SessionConfig(input_format="g711_ulaw", output_format="g711_alaw"),
    "g711 a-law": SessionConfig(input_format="g711_alaw", output_format="g711_alaw"),
}

COMMANDS: dict[str, ServerCommand] = {
    "response.cancel with id": CancelResponse("resp_1", event_id="evt_1"),
    "response.cancel without id": CancelResponse(""),
    "conversation.item.truncate": TruncateItem("item_1", 1500, event_id="evt_2"),
    "conversation.item.delete": DeleteItem("item_1", event_id="evt_3"),
    "input_audio_buffer.append": SendAudio(b"\x00\x01" * 480, event_id="evt_4"),
    "response.create": CreateResponse(event_id="evt_5"),
    "input_audio_buffer.commit": CommitInputAudio(event_id="evt_7"),
    "input_audio_buffer.clear": ClearInputAudio(event_id="evt_8"),
    "conversation.item.create (function_call_output)": SendToolOutput("call_1", '{"a": 1}',
                                                                       event_id="evt_10"),
    "conversation.item.create (user text)": CreateMessage("user", "Hello.", event_id="evt_9"),
    "conversation.item.create (assistant text)": CreateMessage("assistant", "Hi."),
    **{
        f"session.update ({name})": UpdateSession(config, event_id="evt_6")
        for name, config in SESSION_CONFIGS.items()
    },
}


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_client_event_validates(api: str, name: str) -> None:
    frame = WireCodec(api).encode(COMMANDS[name])  # type: ignore[arg-type]
    validate_client_event(json.loads(frame), api)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("fmt", ["g711_ulaw", "g711_alaw"])
def test_g711_audio_appends_validate(api: str, fmt: str) -> None:
    codec = WireCodec(api, fmt)  # type: ignore[arg-type]
    payload = json.loads(codec.encode(SendAudio(b"\x10\x00" * 2400)))
    validate_client_event(payload, api)


def server_cases() -> list[tuple[str, dict[str, Any]]]:
    return [
        (api, case)
        for api in APIS
        for case in json.loads((FIXTURES / f"server_events_{api}.json").read_text())
    ]


@pytest.mark.parametrize(
    ("api", "case"),
    server_cases(),
    ids=lambda value: value["name"] if isinstance(value, dict) else value,
)
def test_server_fixtures_match_the_official_models(api: str, case: dict[str, Any]) -> None:
    validate_server_event(case["frame"], api)


def official_server_types(api: str) -> set[str]:
    union = (ga_server if api == "ga" else beta_server).RealtimeServerEvent
    members = get_args(get_args(union)[0])
    return {get_args(member.model_fields["type"].annotation)[0] for member in members}


@pytest.mark.parametrize("api", APIS)
def test_codec_knows_every_official_server_event_type(api: str) -> None:
    known = CONSUMED_TYPES[api] | IGNORED_TYPES[api]  # type: ignore[index]
    assert known == official_server_types(api)
    assert not CONSUMED_TYPES[api] & IGNORED_TYPES[api]  # type: ignore[index]


@pytest.mark.parametrize("api", APIS)
def test_fixtures_cover_every_consumed_type(api: str) -> None:
    covered = {case["frame"]["type"] for flavour, case in server_cases() if flavour == api}
    assert covered >= CONSUMED_TYPES[api]  # type: ignore[index]
