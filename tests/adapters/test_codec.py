"""The codec reads every server frame the core needs and never raises, whatever arrives."""

from __future__ import annotations

import base64
import json
from typing import Any, get_args

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bargein.adapters.audio import g711
from bargein.adapters.audio.resample import resample_pcm16
from bargein.adapters.codec import WireCodec
from bargein.adapters.session_config import SessionConfig
from bargein.core import events as ev
from bargein.core.commands import (
    CancelResponse,
    CreateResponse,
    DeleteItem,
    PlayAudio,
    SendAudio,
    SendToolOutput,
    TruncateItem,
    UpdateSession,
)
from bargein.core.pcm import BYTES_PER_MS
from bargein.errors import CodecError
from bargein.testing import capture_logs
from tests.support import WIRE_FIXTURES

FIXTURES = WIRE_FIXTURES


def fixtures(api: str) -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads((FIXTURES / f"server_events_{api}.json").read_text())
    return loaded


def expected_event(expect: dict[str, dict[str, Any]] | None) -> ev.Event | None:
    if expect is None:
        return None
    ((name, fields),) = expect.items()
    if "audio_b64" in fields:
        fields = dict(fields)
        fields["audio"] = base64.b64decode(fields.pop("audio_b64"))
    event: ev.Event = getattr(ev, name)(**fields)
    return event


@pytest.mark.parametrize(
    ("api", "case"),
    [(api, case) for api in ("ga", "beta") for case in fixtures(api)],
    ids=lambda value: value["name"] if isinstance(value, dict) else value,
)
def test_fixture_frames_decode_to_their_core_event(api: str, case: dict[str, Any]) -> None:
    frame = json.dumps(case["frame"])
    assert WireCodec(api).decode(frame) == expected_event(case["expect"])  # type: ignore[arg-type]
    assert WireCodec(api).decode(frame.encode()) == expected_event(case["expect"])  # type: ignore[arg-type]


def test_audio_delta_keeps_the_exact_pcm_bytes() -> None:
    pcm = bytes(range(256)) * 3
    frame = {
        "type": "response.output_audio.delta",
        "response_id": "r",
        "item_id": "i",
        "content_index": 0,
        "delta": base64.b64encode(pcm).decode(),
    }
    event = WireCodec("ga").decode(json.dumps(frame))
    assert isinstance(event, ev.AudioDelta)
    assert event.audio == pcm


@pytest.mark.parametrize(
    ("frame", "event_type", "detail"),
    [
        # what bargein promises: the event type when it can be read ("unreadable frame"
        # when not), and its own checks' words; the JSON decoder's or base64's own wording
        # (msgspec, binascii) is theirs, and changes with their versions
        (b"not json", None, ""),
        ("[1, 2]", None, ""),
        ('{"event_id": "e"}', None, ""),
        ('{"type": 5}', None, ""),
        (b'{"type": "error", "error": {"message": "\xff"}}', "error", ""),
        ('{"type": "response.created"}', "response.created", ""),
        (
            '{"type": "conversation.item.truncated", "item_id": "i", "audio_end_ms": "12"}',
            "conversation.item.truncated",
            "",
        ),
        (
            '{"type": "response.output_audio.delta", "response_id": "r", "item_id": "i", '
            '"delta": "AA=A!"}',
            "response.output_audio.delta",
            "",
        ),
        (
            '{"type": "response.output_audio.delta", "response_id": "r", "item_id": "i", '
            '"delta": "AA=="}',
            "response.output_audio.delta",
            "odd length",
        ),
        (
            '{"type": "session.created", "session": {"audio": {"input": {"turn_detection": 3}}}}',
            "session.created",
            "turn_detection",
        ),
        ('{"type": "session.updated", "session": {"id": 7}}', "session.updated", "session id"),
        ('{"type": "error", "error": {"type": "x"}}', "error", ""),
    ],
)
def test_malformed_frames_become_protocol_violations_logged_as_errors(
    frame: str | bytes, event_type: str | None, detail: str
) -> None:
    with capture_logs() as logs:
        event = WireCodec("ga").decode(frame)
    assert isinstance(event, ev.ProtocolViolation)
    named, _, why = event.reason.partition(": ")
    assert named == (event_type or "unreadable frame"), event.reason
    assert why, f"no explanation after the name: {event.reason!r}"
    assert detail in why
    assert [(entry["event"], entry["log_level"], entry["reason"]) for entry in logs] == [
        ("server_frame_invalid", "error", event.reason)
    ]


def test_unknown_types_become_a_generic_event_logged_at_debug() -> None:
    with capture_logs() as logs:
        event = WireCodec("ga").decode('{"type": "response.hologram.delta", "x": 1}')
    assert event == ev.UnknownServerEvent("response.hologram.delta")
    assert isinstance(event, ev.UnknownServerEvent) and not event.known
    assert event.event == {"type": "response.hologram.delta", "x": 1}
    assert [(entry["event"], entry["log_level"]) for entry in logs] == [
        ("server_event_unknown", "debug")
    ]


def test_a_passed_on_event_has_the_key_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-proj-" + "k" * 40
    monkeypatch.setenv("OPENAI_API_KEY", key)
    frame = json.dumps({"type": "conversation.item.added",
                        "item": {"content": [{"type": "input_text", "text": f"my key {key}"}]}})
    event = WireCodec("ga").decode(frame)
    assert isinstance(event, ev.UnknownServerEvent) and event.known
    assert key not in json.dumps(event.event)
    assert event.event["item"]["content"][0]["text"] == "my key ***"


def test_each_flavour_only_knows_its_own_event_names() -> None:
    beta_delta = '{"type": "response.audio.delta", "response_id": "r", "item_id": "i", "delta": ""}'
    assert WireCodec("ga").decode(beta_delta) == ev.UnknownServerEvent("response.audio.delta")
    assert isinstance(WireCodec("beta").decode(beta_delta), ev.AudioDelta)


def test_types_bargein_has_no_use_for_are_passed_on_whole_at_debug() -> None:
    with capture_logs() as logs:
        event = WireCodec("beta").decode('{"type": "response.text.done", "text": "Hi."}')
    assert event == ev.UnknownServerEvent("response.text.done", known=True)
    assert isinstance(event, ev.UnknownServerEvent)
    assert event.event == {"type": "response.text.done", "text": "Hi."}
    assert [(entry["event"], entry["log_level"]) for entry in logs] == [
        ("server_event_ignored", "debug")
    ]


@pytest.mark.parametrize(
    ("session", "interrupt"),
    [
        ({}, True),
        ({"audio": {"input": {}}}, True),
        ({"audio": {"input": {"turn_detection": {"type": "server_vad"}}}}, True),
        ({"audio": {"input": {"turn_detection": None}}}, False),
        (
            {
                "audio": {
                    "input": {
                        "turn_detection": {"type": "semantic_vad", "interrupt_response": False}
                    }
                }
            },
            False,
        ),
    ],
)
def test_ga_session_ready_reads_interrupt_response(
    session: dict[str, Any], interrupt: bool
) -> None:
    event = WireCodec("ga").decode(json.dumps({"type": "session.updated", "session": session}))
    assert event == ev.SessionReady(session_id="", interrupt_response=interrupt)


def test_beta_session_ready_reads_the_flat_turn_detection() -> None:
    frame = {"type": "session.created", "session": {"id": "s1", "turn_detection": None}}
    assert WireCodec("beta").decode(json.dumps(frame)) == ev.SessionReady("s1", False)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_decode_never_raises_on_arbitrary_input(frame: str | bytes) -> None:
    WireCodec("ga").decode(frame)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
known_types = st.sampled_from(
    [case["frame"]["type"] for case in fixtures("ga")] + ["unknown.type", "error"]
)


@settings(max_examples=300, deadline=None)
@given(
    known_types,
    st.dictionaries(
        st.sampled_from(
            [
                "response_id",
                "item_id",
                "delta",
                "audio_end_ms",
                "session",
                "response",
                "error",
                "item",
            ]
        ),
        json_values,
        max_size=5,
    ),
)
def test_decode_never_raises_on_arbitrary_fields_of_known_types(
    event_type: str, fields: dict[str, Any]
) -> None:
    event = WireCodec("ga").decode(json.dumps({**fields, "type": event_type}))
    assert event is None or isinstance(event, get_args(ev.Event))


# --- encoding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "payload"),
    [
        (
            CancelResponse("resp_1", event_id="e1"),
            {"type": "response.cancel", "response_id": "resp_1", "event_id": "e1"},
        ),
        (CancelResponse(""), {"type": "response.cancel"}),
        (
            TruncateItem("item_1", 1234, event_id="e2"),
            {
                "type": "conversation.item.truncate",
                "item_id": "item_1",
                "content_index": 0,
                "audio_end_ms": 1234,
                "event_id": "e2",
            },
        ),
        (DeleteItem("item_1"), {"type": "conversation.item.delete", "item_id": "item_1"}),
        (
            SendToolOutput("call_1", '{"a": 1}', event_id="e4"),
            {"type": "conversation.item.create", "event_id": "e4", "item": {
                "type": "function_call_output", "call_id": "call_1", "output": '{"a": 1}'}},
        ),
        (
            SendToolOutput("call_1", '{"cancelled": "x"}', after_item_id="item_fc"),
            {"type": "conversation.item.create", "previous_item_id": "item_fc", "item": {
                "type": "function_call_output", "call_id": "call_1",
                "output": '{"cancelled": "x"}'}},
        ),
        (CreateResponse(event_id="e3"), {"type": "response.create", "event_id": "e3"}),
        (
            SendAudio(b"\x01\x00\xff\x7f"),
            {"type": "input_audio_buffer.append", "audio": "AQD/fw=="},
        ),
    ],
)
def test_commands_encode_to_exact_payloads(command: Any, payload: dict[str, Any]) -> None:
    assert json.loads(WireCodec("ga").encode(command)) == payload
    assert json.loads(WireCodec("beta").encode(command)) == payload


@pytest.mark.parametrize("api", ["ga", "beta"])
def test_update_session_uses_the_flavours_shape(api: str) -> None:
    config = SessionConfig(voice="alloy")
    payload = json.loads(WireCodec(api).encode(UpdateSession(config, event_id="e4")))  # type: ignore[arg-type]
    assert payload == {"type": "session.update", "session": config.to_wire(api), "event_id": "e4"}  # type: ignore[arg-type]


def test_update_session_adopts_the_configured_formats() -> None:
    codec = WireCodec("ga")
    codec.encode(UpdateSession(SessionConfig(input_format="g711_ulaw", output_format="g711_alaw")))
    assert (codec.input_format, codec.output_format) == ("g711_ulaw", "g711_alaw")


def test_update_session_refuses_a_config_of_another_type() -> None:
    with pytest.raises(CodecError, match="SessionConfig"):
        WireCodec("ga").encode(UpdateSession({"voice": "alloy"}))


def test_speaker_commands_are_not_server_commands() -> None:
    with pytest.raises(CodecError, match="PlayAudio"):
        WireCodec("ga").encode(PlayAudio("r", "i", b""))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"api": "v2"}, "flavour"),
        ({"output_format": "opus"}, "output_format"),
        ({"input_format": "mp3"}, "input_format"),
    ],
)
def test_bad_codec_settings_raise_codec_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(CodecError, match=message):
        WireCodec(**kwargs)


# --- G.711 ---------------------------------------------------------------------------------

CODECS = [
    ("g711_ulaw", g711.ulaw_encode, g711.ulaw_decode),
    ("g711_alaw", g711.alaw_encode, g711.alaw_decode),
]


def tone(rate: int, ms: int) -> bytes:
    n = np.arange(rate * ms // 1000)
    return (8000 * np.sin(2 * np.pi * 300 * n / rate)).astype("<i2").tobytes()


def delta_frame(kind: str, payload: bytes) -> str:
    return json.dumps(
        {
            "type": kind,
            "response_id": "r",
            "item_id": "i",
            "delta": base64.b64encode(payload).decode(),
        }
    )


@pytest.mark.parametrize(("fmt", "encode", "decode"), CODECS)
def test_g711_deltas_stream_to_pcm16_at_24khz_without_block_edges(
    fmt: str, encode: Any, decode: Any
) -> None:
    wire = encode(tone(8000, 300))
    codec = WireCodec("ga", fmt)  # type: ignore[arg-type]
    events = [
        codec.decode(delta_frame("response.output_audio.delta", wire[i : i + 160]))
        for i in range(0, len(wire), 160)  # 20 ms deltas
    ]
    events.append(
        codec.decode('{"type": "response.output_audio.done", "response_id": "r", "item_id": "i"}')
    )
    assert all(isinstance(e, ev.AudioDelta) and e.item_id == "i" for e in events)
    heard = b"".join(e.audio for e in events if isinstance(e, ev.AudioDelta))
    assert len(heard) == 300 * BYTES_PER_MS
    # the same as resampling the whole decoded item at once: no glitch at any delta edge
    whole = np.frombuffer(resample_pcm16(decode(wire), 8000, 24000), dtype="<i2").astype(int)
    assert np.max(np.abs(np.frombuffer(heard, dtype="<i2").astype(int) - whole)) <= 1


def test_pcm16_items_have_no_tail_to_flush() -> None:
    codec = WireCodec("ga")
    codec.decode(delta_frame("response.output_audio.delta", b"\x00\x00"))
    done = '{"type": "response.output_audio.done", "response_id": "r", "item_id": "i"}'
    assert codec.decode(done) is None


@pytest.mark.parametrize(("fmt", "encode", "decode"), CODECS)
def test_send_audio_streams_to_the_g711_input_format(fmt: str, encode: Any, decode: Any) -> None:
    pcm = tone(24000, 300)
    codec = WireCodec("ga", input_format=fmt)  # type: ignore[arg-type]
    frame_bytes = 20 * BYTES_PER_MS
    sent = b"".join(
        base64.b64decode(json.loads(codec.encode(SendAudio(pcm[i : i + frame_bytes])))["audio"])
        for i in range(0, len(pcm), frame_bytes)
    )
    assert 2380 <= len(sent) <= 2400  # 8 kHz, one byte a sample, less the filter's lag
    expected = encode(resample_pcm16(pcm, 24000, 8000))[: len(sent)]
    same = np.mean(np.frombuffer(sent, np.uint8) == np.frombuffer(expected, np.uint8))
    assert same > 0.99


def test_a_duplicated_delivery_is_dropped_once_seen() -> None:
    codec = WireCodec("ga")
    frame = json.dumps({"type": "response.output_audio.delta", "event_id": "event_7",
                        "response_id": "r", "item_id": "i", "output_index": 0,
                        "content_index": 0, "delta": base64.b64encode(b"\0\0" * 24).decode()})
    assert isinstance(codec.decode(frame), ev.AudioDelta)
    with capture_logs() as logs:
        assert codec.decode(frame) is None
    assert logs[0]["event"] == "server_event_duplicated"
    other = frame.replace("event_7", "event_8")
    assert isinstance(codec.decode(other), ev.AudioDelta)


def test_output_items_that_are_not_messages_are_not_the_speakers_business() -> None:
    frame = json.dumps({"type": "response.output_item.added", "event_id": "e1",
                        "response_id": "r", "output_index": 0,
                        "item": {"id": "fc1", "type": "function_call"}})
    assert WireCodec("ga").decode(frame) is None


def _item_done(item: dict[str, Any]) -> str:
    return json.dumps({"type": "response.output_item.done", "event_id": "e9",
                       "response_id": "r1", "output_index": 0, "item": item})


@pytest.mark.parametrize("api", ["ga", "beta"])
def test_a_finished_function_call_item_is_a_tool_call(api: str) -> None:
    call = {"id": "fc1", "type": "function_call", "call_id": "c1", "name": "departure",
            "arguments": '{"city": "York"}', "status": "completed"}
    codec = WireCodec(api)  # type: ignore[arg-type]
    assert codec.decode(_item_done(call)) == ev.ToolCall(
        "r1", "fc1", "c1", "departure", '{"city": "York"}', complete=True)
    cut = WireCodec(api).decode(_item_done({**call, "status": "incomplete"}))  # type: ignore[arg-type]
    assert isinstance(cut, ev.ToolCall) and not cut.complete
    broken = WireCodec(api).decode(_item_done({**call, "call_id": None}))  # type: ignore[arg-type]
    assert isinstance(broken, ev.ProtocolViolation) and "call_id" in broken.reason


def test_a_finished_message_item_is_passed_on_whole() -> None:
    item = {"id": "i1", "type": "message", "role": "assistant", "content": []}
    event = WireCodec("ga").decode(_item_done(item))
    assert isinstance(event, ev.UnknownServerEvent) and event.known
    assert event.event["item"] == item and event.event["response_id"] == "r1"
