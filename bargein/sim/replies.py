"""Reply generation: the assistant's responses on one connection, planned, streamed, ended.

A reply is ``response.created``, then its output items one after another (script.py plans
them), then ``response.done`` (``completed``, ``cancelled``, ``failed`` or ``incomplete``
past ``max_output_tokens``) with its ``usage`` (usage.py), then ``rate_limits.updated``.
An output item is a message, spoken (transcript and audio deltas) or written
(``response.output_text.delta``), or a ``function_call`` whose arguments are streamed. The
first delta comes ``reply_latency_ms`` after the reply starts; deltas are paced by
``sending.Pace``. At most one reply of the conversation runs at a time (``active``);
out-of-band replies (``conversation: "none"``) run beside it (``side``) and their items
never join the conversation. A reply keeps the settings of its creation: its audio is made
in that output format whatever a later ``session.update`` says.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from bargein.sim.config import SimConfig
from bargein.sim.faults import Faults
from bargein.sim.items import Item, render_item
from bargein.sim.responses import ResponseParams, render_response
from bargein.sim.script import Call, Planned, Say, answer_text, pinned_text, plan
from bargein.sim.sending import Outbox, Pace
from bargein.sim.session_fields import Api
from bargein.sim.settings import bytes_per_ms
from bargein.sim.usage import (
    RateLimits,
    Tokens,
    cached,
    input_tokens,
    output_tokens,
    render_usage,
    text_tokens,
)
from bargein.sim.voice import Voicebank

INJECTED_ERROR_CODE: Final = "sim_injected_error"
INJECTED_ERROR_MESSAGE: Final = "The simulator failed this response on purpose."
UNKNOWN_EVENT: Final = msgspec.json.encode({"type": "sim.unknown_event", "event_id": "event_x"})
"""The event of an unknown type that the ``unknown_events`` fault sends."""
NO_TOOL_LINE: Final = "I would call a tool for that, but this session declares none I can use."
"""Said when every script entry is a call that the session's tools do not allow."""
_ARGUMENT_CHARS: Final = 24
"""Characters of a function call's arguments per delta."""


@dataclass
class Output:
    """One output item of a reply, as far as it was sent."""

    item: Item
    index: int
    planned: Planned
    audio: bytes = b""
    sent: str = ""
    """The transcript, text or arguments sent so far."""
    chunks_sent: int = 0
    status: str | None = None
    """Set when the item is done: completed or incomplete."""


@dataclass
class Reply:
    """A response: what it was asked, what it plans to say, and what it has sent."""

    id: str
    request: ResponseParams
    planned: list[Planned]
    inp: Tokens
    hit: Tokens
    outputs: list[Output] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    audio_ms: int = 0
    first_audio_at_ms: int | None = None
    """The input clock when its first audio went out: playback starts about then."""
    faulted: bool = False

    @property
    def produced(self) -> Tokens:
        return output_tokens(" ".join(o.sent for o in self.outputs), self.audio_ms)


class Replies:
    """The assistant's replies on one connection: ``start`` one, ``finish`` one.

    ``items`` is the connection's conversation (shared); ``clock`` its input clock in ms;
    ``on_done`` is told of every reply that ended, with its status.
    """

    def __init__(
        self,
        out: Outbox,
        items: dict[str, Item],
        config: SimConfig,
        faults: Faults,
        voices: Voicebank,
        api: Api,
        ids: Callable[[str], str],
        clock: Callable[[], int],
        on_done: Callable[[Reply, str], None],
    ) -> None:
        self.out = out
        self.items = items
        self.config = config
        self.faults = faults
        self.voices = voices
        self.api = api
        self.ids = ids
        self.clock = clock
        self.on_done = on_done
        self.active: Reply | None = None
        self.side: dict[str, Reply] = {}
        self.turns = 0
        self.pending: dict[str, Call] = {}
        """Calls made and not answered yet, by call id."""
        self.limits = RateLimits()
        self._previous_input = 0

    def find(self, response_id: str | None) -> Reply | None:
        """The running reply ``response_id`` names (None: the conversation's)."""
        if response_id is None:
            return self.active
        if self.active is not None and self.active.id == response_id:
            return self.active
        return self.side.get(response_id)

    # ---- starting --------------------------------------------------------------------------

    def start(self, request: ResponseParams) -> Reply:
        """Begin a reply: plan it, send ``response.created``, stream it in a task."""
        settings = request.settings
        if request.input is not None:
            context = Tokens(text_tokens(json.dumps(list(request.input))))
            inp = input_tokens(settings.instructions, settings.tools, []) + context
        else:
            inp = input_tokens(settings.instructions, settings.tools, self.items.values())
        reply = Reply(self.ids("resp"), request, self._plan(request), inp,
                      cached(self._previous_input, inp))
        self._previous_input = inp.total
        if request.in_conversation:
            self.active = reply
        else:
            self.side[reply.id] = reply
        self.out.emit({"type": "response.created", "response": self._render(reply, "in_progress")})
        if self.faults.unknown_events:
            self.out.emit_raw(UNKNOWN_EVENT)
        reply.task = asyncio.create_task(self._stream(reply))
        return reply

    def _plan(self, request: ResponseParams) -> list[Planned]:
        settings = request.settings
        pinned = pinned_text(settings.instructions)
        if pinned is not None:
            return [Say(pinned)]
        items = list(self.items.values())
        last_user = max((at for at, item in enumerate(items) if item.role == "user"),
                        default=-1)
        answers = []
        for at, item in enumerate(items):
            if item.kind == "function_call_output" and item.call_id in self.pending:
                call = self.pending.pop(item.call_id)
                if at > last_user:  # before the user's newer words, the reply is theirs
                    answers.append(answer_text(call, item.output))
        if answers:
            return [Say(" ".join(answers))]
        script = self.config.script
        for _ in script:
            entry = script[self.turns % len(script)]
            self.turns += 1
            planned = plan(entry, settings.tools, settings.tool_choice)
            if planned:
                return planned
        return [Say(NO_TOOL_LINE)]

    # ---- streaming -------------------------------------------------------------------------

    async def _stream(self, reply: Reply) -> None:
        pace = Pace(self.config.chunk_ms, self.config.speed, self.config.reply_latency_ms)
        tick = 0
        for index, planned in enumerate(reply.planned):
            output = self._open(reply, index, planned)
            if isinstance(planned, Call):
                steps = _pieces(planned.arguments, _ARGUMENT_CHARS)
            elif reply.request.settings.speaks:
                fmt = reply.request.settings.output_format
                output.audio = await self.voices.audio_async(planned.text, fmt)
                steps = _words_per_chunk(planned.text, len(output.audio), self._chunk(reply))
            else:
                steps = [w if i == 0 else " " + w for i, w in enumerate(planned.text.split(" "))]
            for step, piece in enumerate(steps):
                await pace.until(tick)
                tick += 1
                if step == len(steps) // 2 and not reply.faulted and self._mid_fault(reply):
                    return
                self._send(reply, output, step, piece)
                if step == len(steps) // 2 and self.faults.disconnect_at == "mid_reply":
                    self.out.drop()
                limit = reply.request.settings.max_output_tokens
                if isinstance(limit, int) and reply.produced.total >= limit:
                    self.finish(reply, "incomplete", "max_output_tokens")
                    return
            if isinstance(planned, Call):
                done = {"type": "response.function_call_arguments.done",
                        **self._place(reply, output, content=False),
                        "call_id": output.item.call_id, "arguments": output.sent}
                if self.api == "ga":  # beta's event has no name
                    done["name"] = planned.name
                self.out.emit(done)
            self._close(reply, output, "completed")
        self.finish(reply, "completed", None)

    def _mid_fault(self, reply: Reply) -> bool:
        """The ``error_mid_response`` fault, halfway through a reply's first item."""
        reply.faulted = True
        if not self.faults.error_mid_response:
            return False
        self.out.error(INJECTED_ERROR_CODE, INJECTED_ERROR_MESSAGE, kind="server_error")
        self.finish(reply, "failed", None)
        return True

    def _chunk(self, reply: Reply) -> int:
        return self.config.chunk_ms * bytes_per_ms(reply.request.settings.output_format)

    def _send(self, reply: Reply, output: Output, step: int, piece: str) -> None:
        """One step of an item: an audio chunk with its transcript, a word, or arguments."""
        if isinstance(output.planned, Call):
            output.sent += piece
            self.out.emit({"type": "response.function_call_arguments.delta",
                           **self._place(reply, output, content=False),
                           "call_id": output.item.call_id, "delta": piece})
            return
        if piece:
            output.sent += piece
            kind = self._name("audio_transcript.delta" if output.audio else "text.delta")
            self.out.emit({"type": kind, **self._place(reply, output), "delta": piece})
        if output.audio:
            self._send_chunk(reply, output, step)

    def _send_chunk(self, reply: Reply, output: Output, index: int) -> None:
        chunk = self._chunk(reply)
        data = output.audio[index * chunk : (index + 1) * chunk]
        if reply.first_audio_at_ms is None:
            reply.first_audio_at_ms = self.clock()
        output.item.audio_bytes += len(data)
        reply.audio_ms += len(data) // bytes_per_ms(output.item.audio_format)
        output.chunks_sent = index + 1
        self.out.emit({"type": self._name("audio.delta"), **self._place(reply, output),
                       "delta": binascii.b2a_base64(data, newline=False).decode()})

    # ---- items -----------------------------------------------------------------------------

    def _open(self, reply: Reply, index: int, planned: Planned) -> Output:
        settings = reply.request.settings
        if isinstance(planned, Call):
            item = Item(self.ids("item"), "function_call", name=planned.name,
                        call_id=self.ids("call"))
        else:
            item = Item(self.ids("item"), "message", "assistant",
                        audio_format=settings.output_format)
        item.status = "in_progress"
        output = Output(item, index, planned)
        reply.outputs.append(output)
        rendered = render_item(item)
        self.out.emit({"type": "response.output_item.added", "response_id": reply.id,
                       "output_index": index, "item": rendered})
        if reply.request.in_conversation:
            previous = next(reversed(self.items), None)
            self.items[item.id] = item
            added = "conversation.item.added" if self.api == "ga" else "conversation.item.created"
            self.out.emit({"type": added, "item": rendered, "previous_item_id": previous})
        if isinstance(planned, Say):
            part = {"type": "audio", "transcript": ""} if settings.speaks else {
                "type": "text", "text": ""}
            self.out.emit({"type": "response.content_part.added", **self._place(reply, output),
                           "part": part})
        return output

    def _close(self, reply: Reply, output: Output, status: str) -> None:
        """The done events of an item (``incomplete`` when its reply was cut short)."""
        item = output.item
        if isinstance(output.planned, Call):
            item.arguments = output.sent
        else:
            where = self._place(reply, output)
            if reply.request.settings.speaks:
                kind = "output_audio" if self.api == "ga" else "audio"
                item.content = [{"type": kind, "transcript": output.sent}]
                self.out.emit({"type": self._name("audio.done"), **where})
                self.out.emit({"type": self._name("audio_transcript.done"), **where,
                               "transcript": output.sent})
                part = {"type": "audio", "transcript": output.sent}
            else:
                kind = "output_text" if self.api == "ga" else "text"
                item.content = [{"type": kind, "text": output.sent}]
                self.out.emit({"type": self._name("text.done"), **where, "text": output.sent})
                part = {"type": "text", "text": output.sent}
            self.out.emit({"type": "response.content_part.done", **where, "part": part})
        output.status = item.status = status
        rendered = render_item(item)
        self.out.emit({"type": "response.output_item.done", "response_id": reply.id,
                       "output_index": output.index, "item": rendered})
        if self.api == "ga" and reply.request.in_conversation:
            self.out.emit({"type": "conversation.item.done", "item": rendered})
        if isinstance(output.planned, Call) and status == "completed":
            self.pending[item.call_id] = output.planned

    # ---- ending ----------------------------------------------------------------------------

    def finish(self, reply: Reply, status: str, reason: str | None) -> None:
        """End ``reply`` with ``status``: the done events of its open item, ``response.done``
        with its usage, ``rate_limits.updated``, and the late deltas of a cancel if the fault
        asks."""
        if reply is self.active:
            self.active = None
        self.side.pop(reply.id, None)
        if reply.task is not None and reply.task is not asyncio.current_task():
            reply.task.cancel()
        for output in reply.outputs:
            if output.status is None:
                self._close(reply, output, "incomplete")
        details: dict[str, Any] | None = None
        if status in ("cancelled", "incomplete"):
            details = {"type": status, "reason": reason}
        elif status == "failed":
            details = {"type": "failed", "error": {"type": "server_error",
                                                   "code": INJECTED_ERROR_CODE,
                                                   "message": INJECTED_ERROR_MESSAGE}}
        produced = reply.produced
        usage = render_usage(reply.inp, produced, reply.hit, self.api)
        self.out.emit({"type": "response.done",
                       "response": self._render(reply, status, details, usage)})
        self.out.emit(self.limits.spend(reply.inp.total + produced.total))
        late = self.faults.late_deltas_after_cancel
        spoken = [o for o in reply.outputs if o.audio]
        if status == "cancelled" and late and spoken:
            output = spoken[-1]
            chunk = self._chunk(reply)
            for index in range(output.chunks_sent, output.chunks_sent + late):
                if index * chunk < len(output.audio):
                    self._send_chunk(reply, output, index)
        self.on_done(reply, status)

    def abandon(self) -> None:
        """The connection closed: stop streaming every reply, send nothing more."""
        for reply in [self.active, *self.side.values()]:
            if reply is not None and reply.task is not None:
                reply.task.cancel()

    # ---- rendering -------------------------------------------------------------------------

    def _render(self, reply: Reply, status: str, details: dict[str, Any] | None = None,
                usage: dict[str, Any] | None = None) -> dict[str, Any]:
        output = [] if status == "in_progress" else [render_item(o.item) for o in reply.outputs]
        return render_response(reply.id, status, details, output, reply.request, usage, self.api)

    def _name(self, suffix: str) -> str:
        """GA says response.output_audio..., beta response.audio...."""
        return f"response.output_{suffix}" if self.api == "ga" else f"response.{suffix}"

    @staticmethod
    def _place(reply: Reply, output: Output, content: bool = True) -> dict[str, Any]:
        """The fields that place an event in a reply's item (and its one content part)."""
        where: dict[str, Any] = {"response_id": reply.id, "item_id": output.item.id,
                                 "output_index": output.index}
        if content:
            where["content_index"] = 0
        return where


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _words_per_chunk(text: str, audio_bytes: int, chunk: int) -> list[str]:
    """The transcript delta sent with each audio chunk: the words spread over the chunks."""
    chunks = max(1, math.ceil(audio_bytes / chunk))
    words = text.split(" ")
    pieces, sent = [], 0
    for index in range(chunks):
        upto = math.ceil((index + 1) * len(words) / chunks)
        piece = " ".join(words[sent:upto]) if upto > sent else ""
        pieces.append(piece if sent == 0 or not piece else " " + piece)
        sent = max(sent, upto)
    return pieces
