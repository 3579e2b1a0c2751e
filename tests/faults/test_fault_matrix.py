"""The fault matrix (issue 15, point 6): a real ``bargein.Session`` and ``bargein talk``
against our own hostile Realtime server (``tests/support/hostile.py``), one fault per run.

Classes: frames, fields, ids, ordering, overlap, errors, close codes at every phase, slow,
silent, frozen, floods, proxies and redirects, echoed secrets. Every case holds bargein to
four promises:

- **no crash**: the session ends, if it ends, with a typed ``bargein.errors`` exception and
  nothing else; no log line carries a traceback or reports a bug; nothing escapes to the
  event loop;
- **no stale audio**: each reply is a square wave of its own amplitude, so nothing of a reply
  cut off (a barge-in, a dead reply, a dropped connection) may sound after the cut;
- **no hang**: the session goes on to listening once the server's script is over, or ends with
  its typed error, within the case's bound from the server's last word (the liveness
  deadlines and the keepalive are shortened here: see ``tests/faults/rig.py``) plus
  ``SLACK_S`` for a loaded machine; a deadline's own case also bounds the time from the
  fault to the verdict (a dead reply, a frozen stream);
- **no leaked key**: ``OPENAI_API_KEY`` is set, and the key never appears in a log line, an
  observation, an exception, the command line's output, or anything the server received
  (a loopback ``ws://`` endpoint gets no key at all); every proxy variable points at a
  listener that must see no connection.

The cases run side by side in one event loop (a module fixture, in a thread of its own), and
each test reads its case's outcome, so the matrix costs about its longest case, not the sum.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bargein.adapters import schema as w
from bargein.errors import (
    BargeinError,
    HandshakeRejected,
    KeyRejected,
    RedirectRefused,
    ServerClosed,
    SessionNeverReady,
)
from bargein.session import Interrupted, Reconnected, Transcript
from tests.faults.rig import (
    CASE,
    CUT_MARGIN,
    FROZEN_BOUND_S,
    KEY,
    LIVENESS,
    STALE_RUN,
    Outcome,
    logs_by_case,
    run_cli,
    run_session,
    user_env,
)
from tests.support.hostile import Bystander, Peer, Raw, Script, square

pytestmark = pytest.mark.e2e

SLACK_S = 30.0
"""Added to every case's bound for a loaded 2-core machine (8 cases run at once: a flood took
26 s at load 10); a hang is far longer: it meets the 60 s deadline."""
AT_ONCE = 8
"""Cases running side by side."""

A, B = "resp_A", "resp_B"
A_ITEM, B_ITEM = "item_A", "item_B"
B_MS = 400
"""The reply after the fault, heard whole when the conversation went on."""
REPLY_BOUND_S = LIVENESS.reply_bound_ms / 1000


# --- the script's pieces ---------------------------------------------------------------------

Step = Callable[[Peer], Awaitable[None]]


async def nothing(peer: Peer) -> None:
    """No fault at this point."""


async def barge(peer: Peer, *cancelled: str) -> None:
    """The user speaks: ``speech_started``; the server waits for bargein's truncate (or
    delete, or cancel) and then ends the replies cut off as cancelled, as the real server
    does."""
    await peer.speech_started()
    await peer.client_event("conversation.item.truncate", "conversation.item.delete")
    await peer.send(*(peer.response_done(rid, "cancelled") for rid in cancelled or (A,)))


async def then_b(peer: Peer) -> None:
    """The conversation goes on: a short whole reply, then the end of the script."""
    await peer.reply(B, B_ITEM, B_MS)
    await peer.end()


def conversation(*, before_ready: Step = nothing, mid_reply: Step = nothing,
                 in_barge_in: Step = nothing, interrupt_response: bool = True) -> Script:
    """The usual session with a fault at one point: ready; reply A (1.2 s, sent four times
    faster than real time); the user barges in; A ends cancelled; reply B plays whole."""

    async def script(peer: Peer) -> None:
        await before_ready(peer)
        await peer.ready(interrupt_response=interrupt_response)
        await peer.reply(A, A_ITEM, 600, done=False)
        await mid_reply(peer)
        await peer.deltas(A, A_ITEM, 600)
        await peer.speech_started()
        await in_barge_in(peer)
        await peer.client_event("conversation.item.truncate", "conversation.item.delete")
        await peer.send(peer.response_done(A, "cancelled"))
        await then_b(peer)

    return script


async def after_reconnect(peer: Peer) -> None:
    """A new connection: ready, reply B, the end."""
    await peer.ready()
    await then_b(peer)


def fault(*frames: Any) -> Step:
    """A step that marks the fault and sends ``frames`` (built per connection if callable)."""

    async def step(peer: Peer) -> None:
        peer.server.mark()
        for frame in frames:
            await peer.send(frame(peer) if callable(frame) else frame)

    return step


# --- the cases ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    kind: str
    name: str
    scripts: tuple[Script, ...]
    expect: str | type[BargeinError] = "listening"
    """``"listening"`` (the conversation went on), a result of ``Session.wait()``
    (``"server closed"``), or the typed error the session ends with."""
    bound_s: float = 3.0
    """From the server's last word to the outcome."""
    cut: tuple[str, ...] = (A,)
    """Replies a barge-in (or a dead-reply verdict) must have cut off."""
    whole: tuple[str, ...] = (B,)
    """Replies heard whole (``B_MS`` each)."""
    check: Callable[[Outcome], None] | None = None
    api: str = "ga"
    redirect: str | None = None
    refuse: int | None = None
    """The handshake answered with this HTTP status."""
    cli: tuple[int, str] | None = None
    """Through ``bargein talk``: the exit code and a piece of its one line (exit 0: none)."""
    xfail: str | None = None
    """Why it fails today (a bug in files another engineer owns): a strict xfail."""

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.name}"


def violations(n: int) -> Callable[[Outcome], None]:
    def check(outcome: Outcome) -> None:
        assert outcome.session is not None
        assert outcome.session.conversation.stats.protocol_violations == n, outcome.logs[-5:]
    return check


def reconnected(outcome: Outcome) -> None:
    assert [o for o in outcome.observations if isinstance(o, Reconnected)], "a reconnection"


# frames ------------------------------------------------------------------------------------

NOT_B64 = "@@@ not base64 @@@"
FRAMES: list[tuple[str, Step, Callable[[Outcome], None] | None]] = [
    ("malformed-json", fault("{not json", '{"type": "response.output_audio.delta"',
                             "[1, 2, 3]", '"text"', "null", '{"event_id": "no type"}',
                             '{"type": 5}'), violations(7)),
    ("unknown-type", fault({"type": "response.hostile.unknown", "event_id": "u1"}), None),
    ("binary-frame", fault(b"\x00\x01binary\xff\xfe"), violations(1)),
    ("binary-invalid-utf8", fault(b'{"type": "response.output_audio.delta", "x": "\xff"}'),
     violations(1)),
    ("text-invalid-utf8", fault(Raw(b'{"type": "error", "x": "\xff\xfe"}')), reconnected),
    ("frame-20mb", fault(lambda p: p.delta(A, A_ITEM, b"\x00\x00" * 7_500_000)), reconnected),
    ("bad-base64-audio", fault(lambda p: p.event("audio.delta", response_id=A, item_id=A_ITEM,
                                                 delta=NOT_B64)), violations(1)),
    ("odd-length-audio", fault(lambda p: p.delta(A, A_ITEM, b"\x01\x02\x03")), violations(1)),
]


# fields: every field of every event the client models, missing and mistyped ----------------

def _mistyped(kind: Any) -> Any:
    return 12345 if kind in (str, str | None) else "not-this-type"


def _field_paths(struct: type[msgspec.Struct], prefix: tuple[str, ...] = ()
                 ) -> Iterator[tuple[tuple[str, ...], bool, Any]]:
    """(path, required, a wrong value) for every field of ``struct``, nested ones too."""
    for f in msgspec.structs.fields(struct):
        path = (*prefix, f.encode_name)
        required = f.default is msgspec.NODEFAULT and f.default_factory is msgspec.NODEFAULT
        yield path, required, _mistyped(f.type)
        nested = f.type if isinstance(f.type, type) else None
        for arg in getattr(f.type, "__args__", ()):
            if isinstance(arg, type) and issubclass(arg, msgspec.Struct):
                nested = arg
        if nested is not None and issubclass(nested, msgspec.Struct):
            yield from _field_paths(nested, path)


def _set(frame: dict[str, Any], path: tuple[str, ...], value: Any, *, drop: bool) -> bool:
    for key in path[:-1]:
        inner = frame.get(key)
        if not isinstance(inner, dict):
            return False
        frame = inner
    if drop:
        return frame.pop(path[-1], None) is not None
    frame[path[-1]] = value
    return True


def broken(struct: type[w.Wire], api: str) -> Callable[[Peer], list[dict[str, Any]]]:
    """Every frame of ``struct``'s type with one field missing (if required) or mistyped."""
    tag = str(struct.__struct_config__.tag)

    def frames(peer: Peer) -> list[dict[str, Any]]:
        out = []
        for path, required, wrong in _field_paths(struct):
            if path == ("type",):
                continue
            for drop in ((True, False) if required else (False,)):
                frame = peer.event(tag)
                if path[0] in ("response_id", "item_id") or path[-1] == "id":
                    _set(frame, path, A if "response" in path[0] else A_ITEM, drop=False)
                if _set(frame, path, wrong, drop=drop):
                    out.append(frame)
        return out

    return frames


def fields_cases(api: str) -> list[Case]:
    cases = []
    for struct in w.SHARED + w.FLAVOURED[api]:
        make = broken(struct, api)

        async def step(peer: Peer, make: Callable[[Peer], list[dict[str, Any]]] = make) -> None:
            peer.server.mark()
            await peer.send(*make(peer))

        tag = str(struct.__struct_config__.tag)
        count = len(make(_CountingPeer(api)))
        cases.append(Case("fields", f"{api}-{tag}", (conversation(mid_reply=step),), api=api,
                          check=violations(count)))
    return cases


class _CountingPeer(Peer):
    """A peer with no connection, to count the frames a step builds."""

    def __init__(self, api: str) -> None:
        self.api = api
        self._ids = 0


# ids -------------------------------------------------------------------------------------

async def duplicated_deltas(peer: Peer) -> None:
    peer.server.mark()
    pcm = square(100, peer.server.amplitude(peer.index, A))
    for _ in range(6):
        frame = peer.delta(A, A_ITEM, pcm)
        await peer.send(frame, frame)


def received_a(ms: float) -> Callable[[Outcome], None]:
    def check(outcome: Outcome) -> None:
        assert outcome.session is not None
        assert outcome.session.figures[A].received_ms == ms, outcome.session.figures[A]
    return check


async def dropped_mid_reply(peer: Peer) -> None:
    """Events evt_1, evt_2, ...; reply A; then a drop (1011)."""
    await peer.ready()
    await peer.reply(A, A_ITEM, 600, done=False)
    peer.server.mark()
    await peer.close(1011, "restarting")


async def ids_again(peer: Peer) -> None:
    """The new connection numbers its events from evt_1 again and reuses the first
    connection's response and item ids: a server that numbers everything per connection."""
    await peer.ready()
    await peer.reply(A, A_ITEM, B_MS)
    await peer.end()


def heard_again(outcome: Outcome) -> None:
    assert outcome.server is not None
    again = outcome.server.amplitude(1, A)
    assert outcome.heard_samples(again) >= 0.95 * B_MS * 24, \
        "the new connection's reply, with the old one's ids, is heard whole"




async def unknown_ids(peer: Peer) -> None:
    peer.server.mark()
    await peer.deltas("resp_X", "item_X", 300, pace=0)
    await peer.send(peer.item_added("resp_Y", "item_Y"),
                    peer.event("conversation.item.truncated", item_id="item_Z",
                               audio_end_ms=100),
                    peer.event("conversation.item.deleted", item_id="item_Z"),
                    peer.event("response.output_audio.done" if peer.api == "ga"
                               else "response.audio.done", response_id="resp_W",
                               item_id="item_W"),
                    peer.response_done("resp_V", "completed"))


# ordering --------------------------------------------------------------------------------

async def deltas_before_created(peer: Peer) -> None:
    await peer.ready()
    peer.server.mark()
    await peer.deltas(A, A_ITEM, 300)
    await peer.reply(A, A_ITEM, 900, done=False)
    await barge(peer)
    await then_b(peer)


async def done_before_deltas(peer: Peer) -> None:
    await peer.ready()
    peer.server.mark()
    await peer.send(peer.response_created(A), peer.item_added(A, A_ITEM),
                    peer.response_done(A, "completed"))
    await peer.deltas(A, A_ITEM, 600)
    await then_b(peer)


def never_heard(*rids: str) -> Callable[[Outcome], None]:
    def check(outcome: Outcome) -> None:
        assert outcome.server is not None
        for (_, rid), amplitude in outcome.server.amplitudes.items():
            if rid in rids:
                assert outcome.heard_samples(amplitude) == 0, f"{rid} was heard"
    return check


async def ignored_barge_in(peer: Peer) -> None:
    """Issue 15's sequence: a done for another response while A generates and the speaker
    has drained, then more of A, then the user speaks."""
    await peer.ready()
    await peer.send(peer.response_created("resp_O"), peer.response_created(A),
                    peer.item_added(A, A_ITEM))
    await peer.deltas(A, A_ITEM, 200)
    await peer.silence(0.6)  # the speaker drains
    peer.server.mark()
    await peer.send(peer.response_done("resp_O", "completed"))
    await peer.deltas(A, A_ITEM, 1200)
    await barge(peer)
    await then_b(peer)


async def two_at_once(peer: Peer) -> None:
    await peer.ready()
    peer.server.mark()
    await peer.send(peer.response_created(A), peer.item_added(A, A_ITEM),
                    peer.response_created("resp_C"), peer.item_added("resp_C", "item_C"))
    for _ in range(6):
        await peer.deltas(A, A_ITEM, 100)
        await peer.deltas("resp_C", "item_C", 100)
    await barge(peer, A, "resp_C")
    await then_b(peer)


# errors ----------------------------------------------------------------------------------

def refusing(kind: str) -> Step:
    """After the barge-in, refuse bargein's own command of ``kind`` by its event id."""

    async def step(peer: Peer) -> None:
        sent = await peer.client_event(kind)
        peer.server.mark()
        code = "response_cancel_not_active" if kind == "response.cancel" else "invalid_value"
        await peer.send(peer.error(code, "refused", event_id=(sent or {}).get("event_id")))

    return step


def reconciled(outcome: Outcome) -> None:
    assert outcome.session is not None
    stats = outcome.session.conversation.stats
    assert (stats.benign_errors, stats.server_errors) == (1, 0), stats


def server_errors(n: int, lines: int) -> Callable[[Outcome], None]:
    def check(outcome: Outcome) -> None:
        assert outcome.session is not None
        assert outcome.session.conversation.stats.server_errors == n
        assert 1 <= len(outcome.lines("server_error")) <= lines, outcome.lines("server_error")
    return check


ERRORS: list[tuple[str, Step, Callable[[Outcome], None] | None, bool]] = [
    ("cancel-not-active", refusing("response.cancel"), reconciled, False),
    ("truncate-refused", refusing("conversation.item.truncate"), reconciled, True),
    ("unknown-event-id", fault(lambda p: p.error("invalid_value", event_id="evt_nobody")),
     server_errors(1, 1), True),
    ("invalid-request", fault(lambda p: p.error("invalid_value")), server_errors(1, 1), True),
    ("server-error", fault(lambda p: p.error("internal_error", kind="server_error")),
     server_errors(1, 1), True),
    ("rate-limit", fault(lambda p: p.error("rate_limit_exceeded", kind="rate_limit_error")),
     server_errors(1, 1), True),
    ("no-code", fault(lambda p: p.error(None)), server_errors(1, 1), True),
    ("flood-500", fault(*[lambda p: p.error("input_audio_buffer_commit_empty")] * 500),
     server_errors(500, 2), True),
]


# close codes at every phase ---------------------------------------------------------------

def closing(code: int | None) -> Step:
    async def step(peer: Peer) -> None:
        peer.server.mark()
        if code is None:
            peer.reset()
        else:
            await peer.close(code, "bye")
        await peer.hold()

    return step


def close_cases() -> list[Case]:
    cases = []
    for code in (1000, 1001, 1008, 1011, 4000, None):
        name = "reset" if code is None else str(code)
        for phase in ("before-ready", "mid-reply", "in-barge-in"):
            step = closing(code)
            script = conversation(**{phase.replace("-", "_"): step})  # type: ignore[arg-type]
            cut: tuple[str, ...] = (A,) if phase == "in-barge-in" else ()
            if code in (1000,):
                cases.append(Case("close", f"{name}-{phase}", (script,), "server closed",
                                  cut=cut, whole=()))
            elif code in (1008, 4000):
                cases.append(Case("close", f"{name}-{phase}", (script,), ServerClosed,
                                  cut=cut, whole=()))
            else:
                cases.append(Case("close", f"{name}-{phase}", (script, after_reconnect),
                                  cut=cut, check=reconnected))
    return cases


# slow, silent, frozen, floods ----------------------------------------------------------

async def slow_reply(peer: Peer) -> None:
    """A reply at a tenth of real time: 20 ms of audio every 200 ms."""
    await peer.ready()
    peer.server.mark()
    await peer.reply(B, B_ITEM, B_MS, delta_ms=20, pace=10)
    await peer.end()


def not_dead(outcome: Outcome) -> None:
    assert outcome.session is not None
    assert outcome.session.conversation.stats.dead_replies == 0
    assert outcome.session.figures[B].status == "completed"


async def never_ready(peer: Peer) -> None:
    peer.server.mark()
    await peer.hold()


async def unreadable_ready(peer: Peer) -> None:
    peer.server.mark()
    await peer.send(peer.event("session.created", session="not a session"))
    await peer.hold()


STALL_S = 3.0 + REPLY_BOUND_S
"""How long a stalled server stays quiet before it speaks again: past the dead-reply bound
(after the 0.6 s of audio it sent have played)."""


async def stalls_mid_reply(peer: Peer) -> None:
    await peer.ready()
    await peer.reply(A, A_ITEM, 600, done=False)
    peer.server.mark()
    await peer.silence(STALL_S)  # pings are answered meanwhile
    await peer.deltas(A, A_ITEM, 300, pace=0)  # too late: A was declared dead
    await then_b(peer)


async def loses_response_done(peer: Peer) -> None:
    await peer.ready()
    await peer.reply(A, A_ITEM, 600, done=False)
    await peer.send(peer.event("audio.done", response_id=A, item_id=A_ITEM))
    peer.server.mark()
    await peer.silence(STALL_S)
    await then_b(peer)


def declared_dead(*kinds: str, kept: bool) -> Callable[[Outcome], None]:
    """One ``reply_dead`` line of one of ``kinds`` (a reply whose audio has all played looks
    like a lost ``response.done``: ``ResponseDoneLost``, a ``ReplyStalled``), in time."""

    def check(outcome: Outcome) -> None:
        assert outcome.session is not None and outcome.server is not None
        (line,) = outcome.lines("reply_dead")
        assert line["kind"] in kinds
        (dead,) = outcome.interrupted()
        assert dead.trigger == "reply_timeout"
        (after,) = outcome.since_fault(Interrupted)
        assert after <= 0.6 + REPLY_BOUND_S + SLACK_S, "the audio sent plays, then the bound"
        if kept:
            assert outcome.heard_samples(outcome.server.amplitude(0, A)) >= 0.95 * 600 * 24
    return check


async def freezes(peer: Peer) -> None:
    await peer.ready()
    await peer.reply(A, A_ITEM, 600, done=False)
    peer.server.mark()
    await peer.freeze()


async def never_ready_again(peer: Peer) -> None:
    """A new connection that never says ``session.created``."""
    await never_ready(peer)



def frozen_noticed(outcome: Outcome) -> None:
    (again,) = [o for o in outcome.observations if isinstance(o, Reconnected)]
    assert "frozen" in again.reason
    assert outcome.lines("realtime_disconnected")
    (after,) = outcome.since_fault(Reconnected)
    assert after <= FROZEN_BOUND_S + 1.0 + SLACK_S, "noticed by the keepalive, reconnected"


async def late_flood(peer: Peer) -> None:
    await peer.ready()
    await peer.reply(A, A_ITEM, 600, done=False)
    await barge(peer)
    pcm = square(20, peer.server.amplitude(peer.index, A))
    for n in range(1500):  # 500 a second
        await peer.send(peer.delta(A, A_ITEM, pcm))
        if n % 10 == 9:
            await asyncio.sleep(0.02)
    await then_b(peer)


def flood_dropped(outcome: Outcome) -> None:
    assert outcome.session is not None
    assert outcome.session.figures[A].dropped_ms >= 1500 * 20
    said = [x for x in outcome.logs if x["log_level"] != "debug"]
    assert len(said) < 100, "no line per late delta"


# secrets a server echoes -------------------------------------------------------------------

async def echoes_key(peer: Peer) -> None:
    await peer.ready()
    peer.server.mark()
    await peer.send(peer.error("invalid_api_key", f"Incorrect API key provided: {KEY}"),
                    peer.event("session.updated", session={"instructions": KEY}))
    await peer.close(1008, f"bad key {KEY}")
    await peer.hold()


async def echoes_key_in_transcript(peer: Peer) -> None:
    await peer.ready()
    peer.server.mark()
    await peer.send(peer.event("conversation.item.input_audio_transcription.completed",
                               item_id="user_1", transcript=f"my key is {KEY}"))
    await peer.reply(B, B_ITEM, B_MS, text=f"your key is {KEY}")
    await peer.end()


async def echoes_key_split(peer: Peer) -> None:
    """The key across two transcript deltas, as a model streams tokens."""
    await peer.ready()
    peer.server.mark()
    await peer.send(peer.response_created(B), peer.item_added(B, B_ITEM),
                    *(peer.event("transcript.delta", response_id=B, item_id=B_ITEM, delta=part)
                      for part in (f"your key is {KEY[:12]}", KEY[12:])))
    await peer.reply(B, B_ITEM, B_MS, start=False)
    await peer.end()




# proxies and redirects --------------------------------------------------------------------

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                   "all_proxy", "WSS_PROXY", "wss_proxy", "WS_PROXY", "ws_proxy")
ELSEWHERE = Bystander(host="127.0.0.2")
"""Another host a redirect points at: it must see no connection."""
PROXY = Bystander()
"""What every proxy variable points at during the run: it must see no connection."""


def nothing_elsewhere(outcome: Outcome) -> None:
    assert ELSEWHERE.connections == 0 and PROXY.connections == 0
    assert outcome.server is not None


async def redirect_on_reconnect(peer: Peer) -> None:
    await peer.ready()
    await peer.reply(A, A_ITEM, 600, done=False)
    peer.server.redirect = ELSEWHERE.url.replace("http://", "ws://") + "/v1"
    peer.server.mark()
    await peer.close(1011, "moved")
    await peer.hold()


def not_blamed(outcome: Outcome) -> None:
    assert isinstance(outcome.error, KeyRejected) and not outcome.error.key_sent
    assert "rejected the API key" not in str(outcome.error)


# the command line ----------------------------------------------------------------------------

async def cli_garbage(peer: Peer) -> None:
    await peer.ready()
    await peer.reply(A, A_ITEM, 600, done=False)
    await peer.send("{not json", b"\x00binary", peer.event("audio.delta", response_id=A,
                                                           item_id=A_ITEM, delta=NOT_B64))
    await peer.send(peer.response_done(A))
    await peer.end()


def build_cases() -> list[Case]:
    cases = [Case("frames", name, (conversation(mid_reply=step),), check=check)
                  for name, step, check in FRAMES
             if check is not reconnected]
    # a frame the WebSocket layer refuses drops the connection: A is cut by the drop
    cases += [Case("frames", name, (conversation(mid_reply=step), after_reconnect), cut=(),
                   check=check) for name, step, check in FRAMES
              if check is reconnected]
    for name, step, check, auto in ERRORS:
        where = {"in_barge_in": step} if name in ("cancel-not-active", "truncate-refused") \
            else {"mid_reply": step}
        cases.append(Case("errors", name, (conversation(interrupt_response=auto, **where),),
                          check=check))
    cases += fields_cases("ga") + fields_cases("beta")
    cases += [
        Case("ids", "duplicate-event-ids", (conversation(mid_reply=duplicated_deltas),),
             check=received_a(1200 + 600)),
        Case("ids", "event-ids-renumbered-after-reconnect", (dropped_mid_reply, after_reconnect),
             cut=(), check=reconnected),
        Case("ids", "all-ids-renumbered-after-reconnect", (dropped_mid_reply, ids_again),
             cut=(), whole=(), check=heard_again),
        Case("ids", "unknown-ids", (conversation(mid_reply=unknown_ids),)),
        *(case for api in ("ga", "beta") for case in (
            Case("ordering", f"{api}-deltas-before-created", (deltas_before_created,), api=api),
            Case("ordering", f"{api}-done-before-deltas", (done_before_deltas,), cut=(),
                 check=never_heard(A), api=api),
            Case("ordering", f"{api}-ignored-barge-in", (ignored_barge_in,), api=api),
            Case("overlap", f"{api}-two-responses-at-once", (two_at_once,),
                 cut=(A, "resp_C"), api=api),
            Case("floods", f"{api}-1500-late-deltas", (late_flood,), check=flood_dropped,
                 api=api))),
        *close_cases(),
        Case("slow", "tenth-of-real-time", (slow_reply,), cut=(), check=not_dead),
        Case("silent", "never-session-created", (never_ready,), SessionNeverReady, cut=(),
             whole=(), bound_s=LIVENESS.ready_ms / 1000),
        Case("silent", "unreadable-session-created", (unreadable_ready,), SessionNeverReady,
             cut=(), whole=(), bound_s=LIVENESS.ready_ms / 1000),
        Case("silent", "never-ready-after-reconnect", (dropped_mid_reply, never_ready_again),
             SessionNeverReady, cut=(), whole=(), bound_s=LIVENESS.ready_ms / 1000),
        Case("silent", "reply-stops-pings-answered", (stalls_mid_reply,),
             check=declared_dead("ReplyStalled", "ResponseDoneLost", kept=False)),
        Case("silent", "response-done-lost", (loses_response_done,), cut=(),
             check=declared_dead("ResponseDoneLost", kept=True)),
        Case("frozen", "no-pong", (freezes, after_reconnect), check=frozen_noticed),
        Case("secrets", "echoed-in-errors-and-close", (echoes_key,), ServerClosed, cut=(),
             whole=()),
        Case("secrets", "echoed-in-transcript", (echoes_key_in_transcript,), cut=()),
        Case("secrets", "echoed-across-transcript-deltas", (echoes_key_split,), cut=()),
        Case("proxies", "env-proxy-never-used", (conversation(),), check=nothing_elsewhere),
        Case("redirects", "302-to-another-host", (conversation(),), RedirectRefused, cut=(),
             whole=(), redirect="ELSEWHERE", check=nothing_elsewhere),
        Case("redirects", "302-on-reconnect", (redirect_on_reconnect,), RedirectRefused,
             cut=(), whole=(), check=nothing_elsewhere),
        Case("handshake", "401-no-key-sent", (conversation(),), KeyRejected, cut=(), whole=(),
             refuse=401, check=not_blamed),
        Case("handshake", "503", (conversation(),), HandshakeRejected, cut=(), whole=(),
             refuse=503),
        Case("cli", "401-no-key-sent", (conversation(),), refuse=401,
             cli=(1, "no API key was sent")),
        Case("cli", "garbage-mid-reply", (cli_garbage,), cli=(0, "")),
        Case("cli", "close-1008", (conversation(mid_reply=closing(1008)),),
             cli=(1, "code 1008")),
        Case("cli", "never-ready", (never_ready,), cli=(1, "never")),
        Case("cli", "redirect", (conversation(),), redirect="ELSEWHERE",
             cli=(1, "redirect (HTTP 302)")),
        Case("cli", "key-echoed", (echoes_key_in_transcript,), cli=(0, "")),
        Case("cli", "frame-20mb", (conversation(mid_reply=FRAMES[5][1]), after_reconnect),
             cli=(0, "")),
    ]
    return cases


CASES = build_cases()


# --- running them all side by side ------------------------------------------------------------

@dataclass
class Run:
    outcomes: dict[str, Outcome]
    loop_errors: list[dict[str, Any]]
    wall_s: float


async def _run_all(cases: list[Case], workdir: Path) -> Run:
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: loop_errors.append(context))
    started = loop.time()
    outcomes: dict[str, Outcome] = {}
    gate = asyncio.Semaphore(AT_ONCE)
    async with ELSEWHERE, PROXY:
        environ = user_env(OPENAI_API_KEY=KEY, **dict.fromkeys(PROXY_VARIABLES, PROXY.url))
        os.environ.update({k: environ[k] for k in PROXY_VARIABLES})
        for name in ("NO_PROXY", "no_proxy"):
            os.environ.pop(name, None)

        async def one(case: Case) -> None:
            CASE.set(case.id)
            redirect = case.redirect
            if redirect == "ELSEWHERE":
                redirect = ELSEWHERE.url.replace("http://", "ws://") + "/v1/realtime"
            async with gate:
                try:
                    if case.cli is not None:
                        outcomes[case.id] = await run_cli(case.id, case.scripts, case.api,
                                                          redirect, case.refuse, environ,
                                                          workdir, 3000)
                    else:
                        outcomes[case.id] = await run_session(case.id, case.scripts,
                                                              case.api, redirect, case.refuse)
                except BaseException as exc:  # the rig's own failure: the case reports it
                    outcomes[case.id] = Outcome(error=AssertionError(f"the rig failed: {exc!r}"))

        # the long ones first (a process to start, deadlines to wait out, a slow server), so
        # the run lasts about as long as its longest case, not that and a tail
        long = ("cli", "silent", "slow", "floods", "frozen")
        order = sorted(cases, key=lambda c: long.index(c.kind) if c.kind in long else 9)
        await asyncio.gather(*(one(case) for case in order))
    return Run(outcomes, loop_errors, loop.time() - started)


@pytest.fixture(scope="module")
def matrix(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Every selected case of this module, run side by side in a loop of its own."""
    chosen = [case for item in request.session.items
              if isinstance(item, pytest.Function) and item.module is request.module
              and hasattr(item, "callspec")
              and isinstance(case := item.callspec.params.get("case"), Case)]
    workdir = tmp_path_factory.mktemp("faults")
    saved = dict(os.environ)
    result: list[Run] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with logs_by_case() as by_case:
                done = asyncio.run(_run_all(chosen, workdir))
            for name, outcome in done.outcomes.items():
                outcome.logs = by_case.get(name, [])
            result.append(done)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="fault-matrix")
    thread.start()
    thread.join()
    os.environ.clear()
    os.environ.update(saved)
    if failure:
        raise failure[0]
    return result[0]


# --- the four promises ---------------------------------------------------------------------

def no_crash(case: Case, outcome: Outcome) -> None:
    if outcome.error is not None:
        assert isinstance(outcome.error, BargeinError), repr(outcome.error)
        assert "\n" not in str(outcome.error), "one line"
    for line in outcome.logs:
        assert "exc_info" not in line and "Traceback" not in json.dumps(line, default=str), line
        if line["event"] in ("session_failed", "session_observer_failed"):
            assert line["log_level"] != "error", f"a bug, not a typed error: {line}"
    assert outcome.server is not None
    assert not outcome.server.failures, outcome.server.failures


def expected_end(case: Case, outcome: Outcome) -> None:
    if case.expect == "listening":
        assert outcome.error is None and outcome.result is None, (outcome.error, outcome.result)
        assert outcome.session is not None
        assert any(isinstance(o, Transcript) and o.role == "user" for o in outcome.observations)
    elif isinstance(case.expect, str):
        assert outcome.error is None and outcome.result == case.expect, outcome.error
    else:
        assert isinstance(outcome.error, case.expect), repr(outcome.error)


def no_stale_audio(case: Case, outcome: Outcome) -> None:
    assert outcome.server is not None
    cut_off = {s.response_id for i in outcome.interrupted() for s in i.settlements}
    for rid in case.cut:
        assert rid in cut_off, f"{rid} was not cut off: {outcome.interrupted()}"
    for amplitude, at in outcome.cuts:
        after = outcome.heard_samples(amplitude, at + CUT_MARGIN)
        assert after < STALE_RUN, \
            f"{after} samples of a reply (amplitude {amplitude}) sounded after its cut at {at}"
    for rid in case.whole:
        amplitude = outcome.server.amplitude(outcome.server.connections - 1, rid)
        assert outcome.heard_samples(amplitude) >= 0.95 * B_MS * 24, f"{rid} heard whole"


def no_hang(case: Case, outcome: Outcome) -> None:
    if outcome.session is None:
        return  # refused before a session began
    assert outcome.waited_s is not None, "the server's script never reached its fault or end"
    assert outcome.waited_s <= case.bound_s + SLACK_S, \
        f"{outcome.waited_s:.1f} s from the server's last word to the outcome " \
        f"(bound {case.bound_s} s)"


def no_leaked_key(case: Case, outcome: Outcome) -> None:
    assert outcome.server is not None
    for head in outcome.server.heads:
        assert "authorization" not in {k.lower() for k in head}, "no key to loopback"
        assert "api-key" not in {k.lower() for k in head}
    assert KEY not in outcome.server.received()
    assert KEY not in json.dumps(outcome.logs, default=str)
    assert KEY not in str(outcome.error) and KEY not in repr(outcome.error)
    assert KEY not in outcome.stdout + outcome.stderr
    assert KEY not in repr(outcome.observations), "observations"


def cli_promises(case: Case, outcome: Outcome) -> None:
    assert case.cli is not None
    code, fragment = case.cli
    assert outcome.exit_code == code, outcome.stderr
    assert "Traceback" not in outcome.stderr
    if code:
        lines = [x for x in outcome.stderr.splitlines() if x.startswith("bargein: ")]
        assert len(lines) == 1 and fragment in lines[0], outcome.stderr


def params() -> list[Any]:
    out = []
    for case in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


@pytest.mark.parametrize("case", params())
def test_fault(case: Case, matrix: Run) -> None:
    outcome = matrix.outcomes[case.id]
    if outcome.error is not None and str(outcome.error).startswith("the rig failed"):
        raise outcome.error
    no_crash(case, outcome)
    no_leaked_key(case, outcome)
    if case.cli is not None:
        cli_promises(case, outcome)
        return
    expected_end(case, outcome)
    no_stale_audio(case, outcome)
    no_hang(case, outcome)
    if case.check is not None:
        case.check(outcome)


def test_nothing_escaped_to_the_event_loop_and_no_proxy_was_used(matrix: Run) -> None:
    assert matrix.loop_errors == []
    assert PROXY.connections == 0 and ELSEWHERE.connections == 0
