"""Faults the simulator injects, chosen per connection, to test how a client copes.

A client picks faults without Python access to the server through the query parameter
``sim_faults`` or the header ``X-Bargein-Sim-Faults``, both holding ``name=value`` pairs
separated by commas, e.g. ``late_deltas_after_cancel=3,disconnect_at=mid_reply``; a
connection that picks none gets ``SimConfig.faults``. Some faults act on the messages of a
session, others on the connection itself (``handshake_status``, ``close_at_once``,
``silent``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from http import HTTPStatus
from typing import Literal, get_args

from websockets.frames import EXTERNAL_CLOSE_CODES

from bargein.errors import SimError

Phase = Literal[
    "session_created", "speech_started", "response_created", "mid_reply", "response_done"
]
PHASES: tuple[str, ...] = get_args(Phase)


@dataclass(frozen=True, slots=True)
class Faults:
    """What goes wrong on one connection; the default is a well-behaved server.

    - ``late_deltas_after_cancel``: audio deltas of a cancelled response sent after its
      ``response.done`` (the classic leak).
    - ``duplicate_every``: every Nth event is sent twice, same ``event_id``.
    - ``reorder_every``: every Nth event is held back and sent after the one that follows
      (never past another piece of the same item's audio, whose order a client cannot mend).
    - ``malformed_frame_after``: after the Nth event, one text frame that is not JSON.
    - ``unknown_events``: an event of an unknown type after ``session.created`` and after
      each ``response.created``.
    - ``error_mid_response``: halfway through each reply an ``error`` event, and the
      response ends ``failed``.
    - ``disconnect_at``: the TCP connection is dropped, without a close frame, right after
      the given phase.
    - ``jitter_ms``: each event is delayed by a uniform random 0..jitter_ms (order kept).
    - ``seed``: seeds the jitter, so a run can be repeated.
    - ``handshake_status``: the opening handshake is refused with this HTTP status (400 to
      599, e.g. 401 or 403 as for a bad key, 500, 503) instead of upgrading.
    - ``close_at_once``: the handshake succeeds, then the server sends one ``error`` event
      (code ``sim_closed_at_once``) instead of ``session.created`` and closes with this
      close code (e.g. 1008, policy violation), as a server that takes the connection and
      refuses the session.
    - ``silent``: the handshake succeeds, then the server says nothing and reads nothing,
      so it answers no pings either: a peer that died without closing.
    - ``cancel_delay_ms``: a ``response.cancel`` takes effect this many (wall) milliseconds
      after it arrives, as on a distant server: the reply streams on meanwhile, and may end
      first (the cancel is then refused, ``response_cancel_not_active``), its tool calls
      with it.
    """

    late_deltas_after_cancel: int = 0
    duplicate_every: int = 0
    reorder_every: int = 0
    malformed_frame_after: int = 0
    unknown_events: bool = False
    error_mid_response: bool = False
    disconnect_at: Phase | None = None
    jitter_ms: float = 0.0
    seed: int = 0
    handshake_status: int = 0
    close_at_once: int = 0
    silent: bool = False
    cancel_delay_ms: float = 0.0

    def __post_init__(self) -> None:
        for field in (
            "late_deltas_after_cancel",
            "duplicate_every",
            "reorder_every",
            "malformed_frame_after",
            "jitter_ms",
            "cancel_delay_ms",
        ):
            if getattr(self, field) < 0:
                raise SimError(f"fault {field} must not be negative")
        if self.disconnect_at is not None and self.disconnect_at not in PHASES:
            raise SimError(
                f"fault disconnect_at must be one of {', '.join(PHASES)}, "
                f"not {self.disconnect_at!r}"
            )
        status = self.handshake_status
        if status and not (400 <= status <= 599 and status in set(HTTPStatus)):
            raise SimError(f"fault handshake_status must be an HTTP error status, not {status}")
        code = self.close_at_once
        if code and code not in EXTERNAL_CLOSE_CODES and not 3000 <= code <= 4999:
            raise SimError(
                f"fault close_at_once must be a close code a server may send "
                f"(1000-1003, 1007-1014, 3000-4999), not {code}"
            )

    @property
    def in_sending(self) -> bool:
        """A fault the sender applies event by event is set (jitter, reorder, duplicate, a
        malformed frame): then every event goes through the sender's queue."""
        return bool(self.jitter_ms or self.reorder_every or self.duplicate_every
                    or self.malformed_frame_after)

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """Faults from ``name=value,...`` (booleans as true/false, 1/0)."""
        fields = {field.name: field for field in dataclasses.fields(cls)}
        values: dict[str, object] = {}
        for pair in filter(None, (part.strip() for part in spec.split(","))):
            name, sep, raw = pair.partition("=")
            name = name.strip()
            if not sep or name not in fields:
                known = ", ".join(fields)
                raise SimError(f"bad fault {pair!r}: expected name=value with name one of {known}")
            values[name] = _convert(name, raw.strip(), cls.__dataclass_fields__[name].type)
        return cls(**values)  # type: ignore[arg-type]


def _convert(name: str, raw: str, annotation: object) -> object:
    kind = str(annotation)
    try:
        if kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1")
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise SimError(f"fault {name} got {raw!r}, which is not a {kind}") from None
    return raw or None
