"""The user's side of a connection: appended audio, the server VAD, commits, input
transcription and the idle timeout.

The input clock is the milliseconds of audio appended so far; every time here is on it.

- Server VAD (``turn_detection``): ``speech_started`` (cancelling the conversation's reply
  when ``interrupt_response``), ``speech_stopped``, a commit and, with ``create_response``,
  a reply.
- Input transcription (``audio.input.transcription`` / beta ``input_audio_transcription``
  set): each committed audio item gets ``conversation.item.input_audio_transcription.delta``
  events (one per word; one whole for ``whisper-1``) and ``.completed`` with its usage
  (``duration`` for whisper-1, ``tokens`` otherwise). The transcript is the next of
  ``SimConfig.user_transcripts``, or "(N.N seconds of speech)": the simulator hears no words.
- Idle timeout (server VAD's ``idle_timeout_ms``): counted from when the last reply's audio
  has played out (its first audio on the input clock plus its length: replies go out faster
  than real time and play in real time), or from its end if it had no audio. That long with
  no speech and no reply sends ``input_audio_buffer.timeout_triggered`` (the quiet span),
  commits it, and starts a reply, as upstream.
"""

from __future__ import annotations

import binascii
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from bargein.adapters.audio.vad import EnergyVad, VadEdge
from bargein.adapters.session_config import SAMPLE_RATES
from bargein.sim.items import Item
from bargein.sim.responses import ResponseParams
from bargein.sim.usage import USER_AUDIO_MS_PER_TOKEN, text_tokens

if TYPE_CHECKING:
    from bargein.sim.connection import Connection
    from bargein.sim.replies import Reply

MIN_COMMIT_MS: Final = 100
"""The least audio a commit takes, as upstream: less is ``input_audio_buffer_commit_empty``."""


def rate(conn: Connection) -> int:
    return SAMPLE_RATES[conn.settings.input_format]


def new_vad(conn: Connection) -> EnergyVad | None:
    vad = conn.settings.turn_detection
    if vad is None:
        return None
    detector = EnergyVad(
        rate(conn), vad.threshold, vad.prefix_padding_ms, vad.silence_duration_ms,
        start_ms=conn.now_ms(),
    )
    detector.restart(conn.buffer_start_ms)
    return detector


def on_append(conn: Connection, event: dict[str, Any], audio: object) -> None:
    """Take ``audio`` (the append's payload, kept out of the record) to the VAD."""
    try:
        raw = binascii.a2b_base64(audio, strict_mode=True) if isinstance(audio, str) else None
    except binascii.Error:
        raw = None
    if raw is None:
        conn.out.error("invalid_value", "audio must be base64-encoded audio.", "audio", event)
        return
    if conn.config.record_audio:
        conn.record.audio += raw
    fmt = conn.settings.input_format
    if fmt != "pcm16":
        from bargein.adapters.audio import g711

        raw = g711.ulaw_decode(raw) if fmt == "g711_ulaw" else g711.alaw_decode(raw)
    samples = np.frombuffer(raw[: len(raw) & ~1], dtype="<i2")
    conn.input_samples += samples.size
    if conn.vad is not None:
        for edge in conn.vad.feed(samples):
            _on_edge(conn, edge)
    _check_idle(conn)


def _on_edge(conn: Connection, edge: VadEdge) -> None:
    turn = conn.settings.turn_detection
    assert turn is not None
    if edge.started:
        conn.speech_item = conn.ids("item")
        conn.idle_from_ms = None
        conn.out.emit({"type": "input_audio_buffer.speech_started",
                       "audio_start_ms": edge.at_ms, "item_id": conn.speech_item})
        active = conn.replies.active
        if turn.interrupt_response and active is not None:
            conn.replies.finish(active, "cancelled", "turn_detected")
        return
    item_id = conn.speech_item or conn.ids("item")
    conn.out.emit({"type": "input_audio_buffer.speech_stopped",
                   "audio_end_ms": edge.at_ms, "item_id": item_id})
    commit(conn, item_id)
    if turn.create_response and conn.replies.active is None:
        conn.start_reply(ResponseParams(conn.settings))


def commit(conn: Connection, item_id: str, speech: bool = True) -> None:
    """Commit the input buffer as a user item; the VAD starts a new buffer."""
    previous = next(reversed(conn.items), None)
    conn.out.emit({"type": "input_audio_buffer.committed", "item_id": item_id,
                   "previous_item_id": previous})
    item = Item(item_id, "message", "user", [{"type": "input_audio", "transcript": None}],
                input_ms=conn.now_ms() - conn.buffer_start_ms)
    conn.add_item(item, previous)
    conn.buffer_start_ms = conn.now_ms()
    conn.speech_item = None
    if conn.vad is not None:
        conn.vad.restart(conn.buffer_start_ms)
    if conn.settings.transcription is not None:
        _transcribe(conn, item, speech)


def on_commit(conn: Connection, event: dict[str, Any]) -> None:
    buffered = conn.now_ms() - conn.buffer_start_ms
    if buffered < MIN_COMMIT_MS:
        conn.out.error(
            "input_audio_buffer_commit_empty",
            f"Error committing input audio buffer: buffer too small. Expected at "
            f"least {MIN_COMMIT_MS}ms of audio, but buffer only has {buffered}ms of audio.",
            None,
            event,
        )
        return
    commit(conn, conn.speech_item or conn.ids("item"))


def on_clear(conn: Connection, event: dict[str, Any]) -> None:
    conn.buffer_start_ms = conn.now_ms()
    conn.speech_item = None
    if conn.vad is not None:
        conn.vad.restart(conn.buffer_start_ms)
    conn.out.emit({"type": "input_audio_buffer.cleared"})


def _transcribe(conn: Connection, item: Item, speech: bool) -> None:
    config = conn.settings.transcription or {}
    transcripts = conn.config.user_transcripts
    if not speech:
        text = ""
    elif transcripts:
        text = transcripts[conn.transcribed % len(transcripts)]
        conn.transcribed += 1
    else:
        text = f"({item.input_ms / 1000:.1f} seconds of speech)"
    whisper = config.get("model") == "whisper-1"
    words = text.split(" ") if text else []
    deltas = [text] if whisper and text else [
        w if i == 0 else " " + w for i, w in enumerate(words)]
    for delta in deltas:
        conn.out.emit({"type": "conversation.item.input_audio_transcription.delta",
                       "item_id": item.id, "content_index": 0, "delta": delta})
    if whisper:
        usage: dict[str, Any] = {"type": "duration", "seconds": round(item.input_ms / 1000, 3)}
    else:
        audio = -(-item.input_ms // USER_AUDIO_MS_PER_TOKEN)
        prompt = text_tokens(str(config.get("prompt") or ""))
        out = text_tokens(text)
        usage = {"type": "tokens", "input_tokens": audio + prompt, "output_tokens": out,
                 "total_tokens": audio + prompt + out,
                 "input_token_details": {"audio_tokens": audio, "text_tokens": prompt}}
    item.content[0]["transcript"] = text
    conn.out.emit({"type": "conversation.item.input_audio_transcription.completed",
                   "item_id": item.id, "content_index": 0, "transcript": text, "usage": usage})


def reply_done(conn: Connection, reply: Reply, status: str) -> None:
    """Arm the idle timeout after a reply of the conversation (not while the user speaks)."""
    turn = conn.settings.turn_detection
    if (
        not reply.request.in_conversation
        or turn is None
        or turn.idle_timeout_ms is None
        or conn.speech_item is not None
    ):
        return
    now = conn.now_ms()
    start = reply.first_audio_at_ms
    conn.idle_from_ms = now if start is None else max(now, start + reply.audio_ms)


def _check_idle(conn: Connection) -> None:
    turn = conn.settings.turn_detection
    since = conn.idle_from_ms
    if (
        since is None
        or turn is None
        or turn.idle_timeout_ms is None
        or conn.speech_item is not None
        or conn.replies.active is not None
    ):
        return
    now = conn.now_ms()
    if now - since < turn.idle_timeout_ms:
        return
    conn.idle_from_ms = None
    item_id = conn.ids("item")
    conn.out.emit({"type": "input_audio_buffer.timeout_triggered", "audio_start_ms": since,
                   "audio_end_ms": now, "item_id": item_id})
    commit(conn, item_id, speech=False)
    conn.start_reply(ResponseParams(conn.settings))
