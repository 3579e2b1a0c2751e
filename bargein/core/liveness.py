"""Deadlines: a server that goes quiet where it must speak is noticed, said in one line,
and survived where it can (issue 15). Sans-IO like the rest of the core: the deadlines are
timers the core starts and cancels (``StartTimer``/``CancelTimer``) and the session runs on
its clock, so they are tested on a virtual one (``bargein.testing.VirtualTime``).

- **Session never ready.** ``Conversation.watch()`` (the session calls it when it starts,
  the connection open) starts ``READY_TIMER``; ``session.created`` cancels it. If it runs
  out first, the core emits ``GiveUp(SessionNeverReady(...))``: the session ends with that
  error, and ``bargein talk`` prints its one line instead of idling until Ctrl-C.
- **A reply that stops arriving.** While a response is generating the core checks it every
  ``reply_check_ms`` (``REPLY_TIMER``): an event of a generating reply (created, item,
  delta, transcript, done) or its audio playing counts as a sign of life. After
  ``reply_checks`` checks in a row with none, the reply is declared dead: one warning line
  (``reply_dead``), ``stats.dead_replies``, a ``Report`` of ``ReplyStalled``, and the
  barge-in's own work (flush, ``response.cancel``, gate, settle each item at what was heard),
  then ``playback_finished`` moves the machine on: the conversation goes on.
- **A reply asked for that never begins.** A ``response.create`` the server neither
  answers (``response.created``) nor refuses (an error naming its event id) is watched the
  same way; after the same bound it is given up with one warning (``reply_never_created``)
  and a ``Report`` of ``ReplyStalled``. Until then the conversation is not quiet
  (``Conversation.reply_asked``: a finite input's session does not end before the reply).
- **A lost ``response.done``.** The same watch: once the reply's audio has played out and
  nothing of it comes, it is recovered the same way and reported as ``ResponseDoneLost``.

With the defaults a dead reply is declared 7.5 to 10 s after its last sign of life (3
quiet checks in a row, 2.5 s apart), and a session that never gets ready ends 15 s after
the session began. A frozen TCP stream is the transport's to notice (its keepalive pings,
4 s apart with a 4 s timeout: within 10 s with the close, ``RealtimeTransport``).
"""

from __future__ import annotations

from dataclasses import dataclass

READY_TIMER = "bargein:session_ready"
REPLY_TIMER = "bargein:reply_watch"
LIVENESS_TIMERS = frozenset({READY_TIMER, REPLY_TIMER})


@dataclass(frozen=True, slots=True)
class Liveness:
    """The deadlines, in milliseconds. A dead reply is declared once ``reply_checks``
    checks in a row found no sign of life: between ``reply_checks * reply_check_ms`` and
    ``reply_bound_ms`` after its last one."""

    ready_ms: int = 15_000
    reply_check_ms: int = 2_500
    reply_checks: int = 3

    @property
    def reply_bound_ms(self) -> int:
        """The most a dead reply is waited for after its last sign of life."""
        return self.reply_check_ms * (self.reply_checks + 1)
