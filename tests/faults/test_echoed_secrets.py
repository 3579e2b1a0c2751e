"""A key a server echoes in what it says (a transcript) is masked at the codec, before any
program or terminal sees it; found by the fault matrix (``bargein talk`` printed an echoed
key: a loopback endpoint gets no key, so none had been wrapped, and nothing masked it)."""

from __future__ import annotations

import json

import pytest

from bargein.adapters.codec import WireCodec
from bargein.adapters.secrets import ApiKey
from bargein.core import events as e
from bargein.redaction import MASK, redact, redact_known

WRAPPED = "wrappedKey0123456789abcdefWRAPPED"
IN_ENV = "envKey0123456789abcdefONLYINENV"


def test_a_transcript_that_repeats_a_known_key_is_masked() -> None:
    ApiKey(WRAPPED)
    codec = WireCodec("ga")
    delta = codec.decode(json.dumps({
        "type": "response.output_audio_transcript.delta", "response_id": "r", "item_id": "i",
        "delta": f"your key is {WRAPPED}, and sk-not-a-key-of-yours stays"}))
    assert delta == e.TranscriptDelta("r", "i", f"your key is {MASK}, and sk-not-a-key-of-yours "
                                                "stays"), "only known keys: content is content"
    said = codec.decode(json.dumps({
        "type": "conversation.item.input_audio_transcription.completed", "item_id": "u",
        "transcript": f"my key is {WRAPPED}"}))
    assert said == e.InputTranscript("u", f"my key is {MASK}")


def test_the_environments_keys_are_known_even_when_none_was_wrapped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", f" {IN_ENV} ")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "short")  # too short to mask everywhere
    assert redact_known(f"a {IN_ENV} b short") == f"a {MASK} b short"
    assert IN_ENV not in redact(f"key={IN_ENV}") and IN_ENV not in redact(IN_ENV)
    monkeypatch.delenv("OPENAI_API_KEY")
    assert redact_known(IN_ENV) == IN_ENV
