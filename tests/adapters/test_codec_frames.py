"""``WireCodec.encode_bytes``: the frame the transport sends as is, as a text frame.

The microphone's frames are joined from their parts, not serialised from a payload dict:
they must be the very bytes the serialiser makes of ``to_payload``, whatever the event id
holds (a quote, a backslash, non-ASCII) and whatever the input format.
"""

from __future__ import annotations

import json

import msgspec
import pytest

from bargein.adapters.codec import WireCodec
from bargein.core.commands import CancelResponse, SendAudio, TruncateItem

PCM = bytes(range(256)) * 19  # 4864 bytes: every byte value, an even length


@pytest.mark.parametrize("event_id", ["", "evt_1", 'a"quote\\and\u00e9\u2028'])
@pytest.mark.parametrize("fmt", ["pcm16", "g711_ulaw", "g711_alaw"])
def test_a_microphone_frame_is_the_payload_serialised(event_id: str, fmt: str) -> None:
    joined = WireCodec("ga", input_format=fmt)  # type: ignore[arg-type]
    serialised = WireCodec("ga", input_format=fmt)  # type: ignore[arg-type]
    for _ in range(3):  # the G.711 resampler streams: three frames in a row
        command = SendAudio(PCM, event_id=event_id)
        frame = joined.encode_bytes(command)
        assert frame == msgspec.json.encode(serialised.to_payload(command))
        assert json.loads(frame)["type"] == "input_audio_buffer.append"


@pytest.mark.parametrize("command", [CancelResponse("resp_1", event_id="e"),
                                     TruncateItem("item_\u00e9", 120, 0)])
def test_other_commands_are_utf8_json_and_encode_is_their_text(
        command: CancelResponse | TruncateItem) -> None:
    codec = WireCodec("ga")
    frame = codec.encode_bytes(command)
    assert frame.decode() == codec.encode(command)
    assert json.loads(frame) == codec.to_payload(command)
