"""The asyncio runtime that joins a transport and audio adapters to the core.

The session is the only place in bargein that awaits. It never decides anything: every
event goes to ``Conversation.handle()`` and every command that comes back is carried out
in order — audio to the sink at once, server commands to the wire in the order the core
emitted them: at once when the transport can take one and nothing queued waits before it
(``SendsAtOnce``), else through one outbox that one sender task sends, so no other task
waits on the network. Events caused while carrying out commands (a flush report) are
queued behind the current event, never handled re-entrantly.

Why one long module (~1,100 lines): the loops, the carrying out of every command family and
the per-response figures and observations all read the same moment of the same event; the
observation types at the top could move to a module of their own, the runtime could not be
split without passing its state between pieces.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from bargein.adapters.audio.protocols import (
    AudioFrame,
    AudioSink,
    AudioSource,
    Delivering,
    Duckable,
)
from bargein.adapters.audio.vad import VoiceDetector
from bargein.core import Conversation, Interruption, TransitionRecord
from bargein.core import commands as c
from bargein.core import events as e
from bargein.core.ledger import Settlement
from bargein.core.liveness import LIVENESS_TIMERS, Liveness
from bargein.core.pcm import BYTES_PER_MS
from bargein.core.recent import forget_oldest
from bargein.errors import BargeinError, NotConnected, SessionError
from bargein.history import History
from bargein.logs import get_logger
from bargein.redaction import redact_known
from bargein.states.names import DUCKED, INTERRUPTED
from bargein.tools import Tool, tools_from

log = get_logger(__name__)


class Transport(Protocol):
    """What the session needs of a connection (``bargein.adapters.transport`` has one)."""

    def events(self) -> AsyncIterator[e.Event]:
        """Core events decoded from the server, until the connection is closed for good."""
        ...

    async def send(self, command: c.ServerCommand) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class SendsAtOnce(Protocol):
    """A transport that can send a command without waiting (optional).

    When nothing is queued before it, the session hands each command to ``send_now`` where
    the core issued it (a microphone frame in the audio callback's turn, say) instead of
    waking its sender task: with hundreds of sessions in one process, that task's wake-up
    and the websockets ``send()`` machinery around one frame were a large share of the
    frame's cost (``bench/bench_scale.py``). ``send_now`` never waits and never raises for
    the connection: when the command cannot go out at once (not connected, a write already
    buffered, a command ``send()`` must see), it returns False and the session queues it
    for ``send()``, which has the waiting and the errors."""

    def send_now(self, command: c.ServerCommand) -> bool:
        """Send ``command`` at once if the connection can take it now; False if not."""
        ...


@runtime_checkable
class DeliversEvents(Protocol):
    """A transport that hands each event over where it was parsed (optional).

    The session prefers ``deliver`` to ``events()``, as it prefers a ``Delivering``
    source's ``deliver`` to ``frames()``: an event is then handled in the event loop's call
    that read it off the socket, with no task wake-up and no generator step per event."""

    async def deliver(self, on_event: Callable[[e.Event], None]) -> None:
        """Call ``on_event`` with what ``events()`` would yield, in order, on the event
        loop's thread; return and raise where ``events()`` would end and raise."""
        ...

# --- what embedders observe ------------------------------------------------------------
#
# Every observation carries ``at_ms``: milliseconds since the session started, on the
# session's clock, when the session handled what caused it.


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The conversation machine fired an edge (``source == dest`` for an internal edge)."""

    at_ms: float
    source: str
    dest: str
    trigger: str
    reason: str


@dataclass(frozen=True, slots=True)
class Transcript:
    """Text of what was said.

    The user's side comes whole, once the server has transcribed an utterance (it needs
    ``SessionConfig(input_transcription_model=...)``): ``final`` is True. The assistant's side
    comes as it is generated: each delta with ``final=False`` (``text`` is the delta), then
    one observation with ``final=True`` whose ``text`` is the item's whole transcript, when
    its response ends (``response.done``, whatever its status) or the connection is lost.
    The transcript is what the server generated, not what the user heard: see ``Heard``.
    """

    at_ms: float
    role: Literal["user", "assistant"]
    item_id: str
    text: str
    final: bool = False
    response_id: str = ""
    """The assistant's response; empty for the user."""


@dataclass(frozen=True, slots=True)
class Interrupted:
    """A barge-in, settled: how fast the speaker fell silent and what each item kept.

    ``at_ms`` is when the barge-in signal reached the session. ``cancelled`` holds the
    responses bargein cancelled itself (``response.cancel`` sent); ``cancelled_by`` says who
    stopped the generation: ``"client"`` (bargein sent ``response.cancel``), ``"server"``
    (the server's turn detection cancels on speech, ``interrupt_response``), or ``"none"``
    (every response cut off had finished generating: only its playback was left to stop).
    Under a two-phase table (``bargein.states.two_phase``) ``at_ms`` is the onset of the
    sound that was judged and confirmed, so ``stop_latency_ms`` includes the confirm
    window (the reply was ducked at the onset: ``ResponseFigures.onset_to_duck_ms``).
    """

    at_ms: float
    trigger: str
    stop_latency_ms: float
    cancelled: tuple[str, ...]
    settlements: tuple[Settlement, ...]
    cancelled_by: Literal["client", "server", "none"] = "none"


@dataclass(frozen=True, slots=True)
class Heard:
    """What the user heard of an assistant item that a barge-in cut off, as text.

    ``heard + unheard`` is the item's transcript as received when the barge-in settled; the
    cut is an estimate (``split_heard``): the transcript cut at the fraction ``heard_ms /
    received_ms`` of its characters, moved to the nearest word boundary. ``heard_ms`` is
    what the speaker played of the item (the truncate's ``audio_end_ms``, 0 when the item
    was deleted) and ``received_ms`` the item's audio received by then.
    """

    at_ms: float
    item_id: str
    response_id: str
    heard: str
    unheard: str
    heard_ms: float
    received_ms: float

    @property
    def text(self) -> str:
        """The whole transcript received for the item."""
        return self.heard + self.unheard


@dataclass(frozen=True, slots=True)
class Reconnected:
    """The connection dropped and a new one was made: a new server session.

    ``context_lost`` is always True with the Realtime API: the server forgot the
    conversation's items, any reply in flight and the input audio buffer, so the
    assistant does not remember what was said before. ``session_restored`` says whether
    the session configuration was sent again; ``turns_restored`` how many turns of the
    conversation were told to the new session as text (``bargein.history``); ``down_s``
    is how long the connection was down and ``attempts`` how many tries it took (from
    ``RealtimeTransport.last_reconnect``; zeros for a transport that does not say).
    """

    at_ms: float
    reason: str = ""
    down_s: float = 0.0
    attempts: int = 0
    session_restored: bool = False
    context_lost: bool = True
    turns_restored: int = 0


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """A server event bargein does not model, passed on whole: the hook for what the engine
    leaves to the program (``rate_limits.updated``, ``conversation.item.added``, a text
    reply's ``response.output_text.delta``, a type newer than bargein). ``event`` is its
    JSON object, the API key masked as in transcripts; ``known`` says whether the API
    documents the type (bargein has no use for it) or bargein does not know it."""

    at_ms: float
    type: str
    event: Mapping[str, Any] = field(repr=False)
    known: bool


@dataclass(frozen=True, slots=True)
class Closed:
    """The session ended; ``reason`` is what ``Session.wait()`` returned (or ``error: ...``)."""

    at_ms: float
    reason: str


Observation = (
    StateChanged | Transcript | Interrupted | Heard | Reconnected | ServerEvent | Closed
)
Observer = Callable[[Observation], None]


END_POLL_MIN_S = 0.005
"""The shortest sleep between two polls of a playing sink: an end estimate a little early
(a device's callback not yet run, a virtual clock between ticks) costs a few polls, no spin."""

KEEP_RESPONSES = 1000
"""The most recent responses whose figures (``Session.figures``) and items' transcripts and
heard counts a session keeps; older ones are forgotten as new ones end, so hours of
conversation cost no more memory than the first (``bargein.core.recent``)."""


@dataclass(slots=True)
class ResponseFigures:
    """Per-response figures, filled in as the conversation goes. Times are milliseconds on
    the session's clock (``Session.now_ms``), measured where bargein sees them: when an
    event reaches the session, not when the server sent it.

    - ``response_id``: the server's id of the response.
    - ``time_to_first_audio_ms``: from the server's ``input_audio_buffer.speech_stopped``
      (the end of the user's turn as the server detected it, so its silence wait is not
      included) to the first audio delta of this response that was played. ``None`` for a
      response that did not follow a user turn (a greeting, ``RequestResponse``).
    - ``interrupted``: a barge-in cut this response's playback off.
    - ``stop_latency_ms``: from the barge-in signal (``speech_started``, the local detector,
      ``UserInterrupt``) reaching the session to the speaker falling silent: the time to
      carry out the flush plus what the sink reports it still played (``FlushReport.
      silent_after_ms``: the audio in the device's buffer and the fade). ``None`` unless
      interrupted.
    - ``received_ms``: audio of this response accepted for playback, in ms of 24 kHz audio.
    - ``heard_ms``: ms of this response's audio that left the speaker, as the sink counted
      it (device latency included); the whole of ``received_ms`` when it played to the end.
      ``None`` until the speaker reports on it.
    - ``audio_end_ms``: the ``audio_end_ms`` of the truncate sent for the cut item, ``None``
      when no truncate was sent (not interrupted, or the item was deleted).
    - ``dropped_ms``: ms of audio of this response that arrived after it was interrupted
      and was dropped, never played (late deltas of a cancelled response).
    - ``status``: ``response.done``'s status (``completed``, ``cancelled``, ``failed``,
      ``incomplete``), ``None`` while it is generating or if it never ended.
    - ``client_cancelled``: bargein sent ``response.cancel`` for it.
    - ``items``: the ids of its items that carried audio.
    - ``ducks``: how many times a two-phase table ducked it to judge a sound over it
      (``bargein.states.two_phase``); ``false_interruptions``: how many of those sounds
      ended before they were confirmed, the reply resumed.
    - ``onset_to_duck_ms``: for each duck on a local detector's onset, from the onset in
      the microphone's audio (the sample position the detector reported) to the duck
      command carried out: the audio captured after the onset before the detector said so,
      plus the session's time from that moment to the sink's ``duck()``. (A duck on the
      server's ``speech_started`` is not in it: the server's clock is not the microphone's.)
    - ``underruns``: dropouts the listener heard while this response played: the speaker
      ran dry in the middle of its audio and went on after a gap (counted by a sink that
      has ``underruns``: ``PulseSpeaker``, ``PyAudioSpeaker``; 0 with one that has not).
    """

    response_id: str
    time_to_first_audio_ms: float | None = None
    interrupted: bool = False
    stop_latency_ms: float | None = None
    heard_ms: float | None = None
    audio_end_ms: int | None = None
    dropped_ms: float = 0.0
    items: list[str] = field(default_factory=list)
    received_ms: float = 0.0
    status: str | None = None
    client_cancelled: bool = False
    ducks: int = 0
    false_interruptions: int = 0
    onset_to_duck_ms: list[float] = field(default_factory=list)
    underruns: int = 0

    def __str__(self) -> str:
        """One line for a person: ``resp_1: first audio after 600 ms; heard 3045 of 4600 ms;
        cut off: silent 15.0 ms after the barge-in, truncated at 3045 ms; ...``."""
        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:.0f} ms"

        parts = [f"first audio after {ms(self.time_to_first_audio_ms)}",
                 f"heard {ms(self.heard_ms)} of {ms(self.received_ms)}"]
        if self.interrupted:
            latency = "-" if self.stop_latency_ms is None else f"{self.stop_latency_ms:.1f} ms"
            cut = f"cut off: silent {latency} after the barge-in"
            if self.audio_end_ms is not None:
                cut += f", truncated at {self.audio_end_ms} ms"
            parts.append(cut)
        if self.ducks:
            parts.append(f"ducked {self.ducks}x, resumed {self.false_interruptions}x")
        if self.dropped_ms:
            parts.append(f"{self.dropped_ms:.0f} ms of late audio dropped")
        if self.underruns:
            parts.append(f"{self.underruns} dropout{'s' if self.underruns > 1 else ''}")
        if self.client_cancelled:
            parts.append("cancelled by bargein")
        elif self.status is not None:
            parts.append(self.status)
        return f"{self.response_id}: " + "; ".join(parts)


def split_heard(text: str, heard_ms: float, received_ms: float) -> tuple[str, str]:
    """Split an item's transcript into what was heard and what was not, by time.

    Speech is taken to run at an even rate through the item's audio, so the cut falls at
    the fraction ``heard_ms / received_ms`` of the text's characters, then moves to the
    nearest word boundary (a word is heard when most of it was). ``heard + unheard ==
    text``; everything is heard when ``heard_ms >= received_ms``, nothing when nothing was.
    """
    if not text or received_ms <= 0 or heard_ms <= 0:
        return "", text
    if heard_ms >= received_ms:
        return text, ""
    cut = round(len(text) * heard_ms / received_ms)
    if 0 < cut < len(text) and not (text[cut - 1].isspace() or text[cut].isspace()):
        back = cut - 1
        while back > 0 and not text[back - 1].isspace():
            back -= 1
        ahead = cut
        while ahead < len(text) and not text[ahead].isspace():
            ahead += 1
        cut = back if cut - back <= ahead - cut else ahead
    return text[:cut], text[cut:]


class Session:
    """One live conversation: transport + source + sink + conversation.

    ``local_vad`` runs a detector on the microphone, so that a barge-in starts as soon as
    the user is heard, a network round trip before the server's ``speech_started``. Use it
    with a headset or an echo-cancelled microphone: on open speakers it hears the
    assistant and interrupts it. Its start edges become ``LocalSpeechStarted``, its stop
    edges ``LocalSpeechStopped`` (a two-phase table resumes a ducked reply on them).

    **Two-phase barge-in** (``bargein.states.two_phase``): the core's ``DuckPlayback`` and
    ``RestorePlayback`` are carried out on a sink that is ``Duckable`` (``duck(gain)``,
    ``duck(1.0)``); on another sink they are ignored (a debug line), and the reply plays
    on at full gain while the sound is judged.

    **The speaker's progress.** While a reply plays the session asks the sink what was
    heard every ``progress_interval_s`` (0.1 s: the per-response figures and the core's
    count move on at that pace; a flush reports the exact count whatever the pace), and
    says the reply has played out (``PlaybackFinished``, the edge to ``listening``) at the
    poll after its end. A sink that can tell when what it was given ends (``ends_in_s()``,
    as every bargein sink does) is also polled at that moment, so the edge comes on time
    rather than up to an interval late; another sink is polled on the interval alone.

    ``clock`` (seconds) and ``sleep`` are where the session takes its time from, as in the
    standard library's ``sched.scheduler(timefunc, delayfunc)``: wall-clock time by default;
    ``bargein.testing.VirtualTime`` runs a session on a ``VirtualClock`` instead.

    **How it ends.** ``wait()`` returns the reason when the session ends by itself or is
    asked to: ``"input over"`` once a source that ends (one with an ``exhausted`` property,
    as ``WavSource``) is over and the conversation has been quiet (listening, no
    push-to-talk key down, no reply asked for and not yet begun, nothing playing) for
    ``linger_s`` seconds (``None``: never for that reason); ``"server closed"`` when the
    server ended the connection; whatever ``finish(reason)`` said (the CLI says ``"stopped
    by the user"``). A failure is raised by ``wait()``. A microphone never ends: such a
    session runs until the server closes or ``finish()``.
    ``bargein.talk()`` does all of this (and opens the connection and the audio) in one call.

    **After a reconnect** the new server session knows nothing of the conversation; with
    ``restore_context`` (the default) the session tells it what was said, as text: the
    user's transcribed words and what the user heard of each reply (``bargein.history``).

    **Deadlines.** ``liveness`` (``bargein.core.liveness``, on by default; ``None`` for
    none) has the core watch the server: no ``session.created`` within 15 s of ``start()``
    ends the session with ``SessionNeverReady`` (``wait()`` raises it); a reply with no sign
    of life for 7.5 to 10 s is declared dead, settled, and the conversation goes on.
    """

    def __init__(
        self,
        transport: Transport,
        source: AudioSource,
        sink: AudioSink,
        conversation: Conversation | None = None,
        *,
        progress_interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        local_vad: VoiceDetector | None = None,
        linger_s: float | None = 2.0,
        liveness: Liveness | None = Liveness(),  # noqa: B008 (frozen, shared safely)
        restore_context: bool = True,
        tools: Iterable[Tool | Callable[..., Any]] = (),
    ) -> None:
        self.transport = transport
        self._send_now = transport.send_now if isinstance(transport, SendsAtOnce) else None
        self.tools = {t.name: t for t in tools_from(tools)}
        """The functions the assistant may call, by name (``bargein.tools``)."""
        self._tool_tasks: dict[str, asyncio.Task[None]] = {}
        self.source = source
        self.sink = sink
        self.conversation = conversation or Conversation()
        self.figures: dict[str, ResponseFigures] = {}
        """Each response's figures, by response id, in the order they began: the most
        recent ``KEEP_RESPONSES``."""
        self._interval = progress_interval_s
        self._ends_in: Callable[[], float] | None = getattr(sink, "ends_in_s", None)
        self._local_vad = local_vad
        self._clock = clock
        self._sleep = sleep
        self._t0 = clock()
        self._observers: list[Observer] = []
        self._queue: deque[e.Event] = deque()
        self._handling = False
        self._outbox: deque[c.ServerCommand] = deque()
        self._sender_waits: asyncio.Future[None] | None = None
        """What the sender task awaits while the outbox is empty (``_post`` resolves it): a
        bare future, not an ``asyncio.Event``, which makes and drops one per wait anyway."""
        self._busy = False
        self._monitor_waits: asyncio.Future[None] | None = None
        """What the monitor awaits while nothing plays and no linger counts (``_sink_busy``
        turning True resolves it): an idle session has no timer ticking."""
        self._speech_stopped_at: float | None = None
        self._signal_at: float | None = None
        self._flush_silent_ms: float | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._done: asyncio.Future[str] | None = None
        self._closed = False
        self._closed_published = False
        self._linger_s = linger_s if hasattr(source, "exhausted") else None
        """How long the quiet after a finite input's end lasts before the session ends;
        ``None``: it never ends for that (not asked for, or a source that never ends)."""
        self._quiet_since: float | None = None
        self._texts: dict[str, tuple[str, list[str]]] = {}
        """Assistant transcripts not yet final: item id -> (response id, deltas)."""
        self._final_texts: dict[str, str] = {}
        self._item_response: dict[str, str] = {}
        self._heard: dict[str, float] = {}
        self._heard_response: str | None = None
        """The response whose audio a speaker report last found playing on."""
        self._underruns = 0
        """The sink's dropout count when it was last read (``ResponseFigures.underruns``)."""
        """What the speaker reported heard, per item."""
        self._generating_at_signal: set[str] = set()
        self.history: History | None = History() if restore_context else None
        """The conversation as text, told to a new server session after a reconnect
        (``bargein.history``); ``None`` with ``restore_context=False``."""
        self._mic_ms = 0.0
        """Microphone audio fed to the local detector so far (its input clock)."""
        self._onset: tuple[float, float] | None = None
        """The last local onset: (audio captured after it when reported, session time)."""
        self._playing_response: str | None = None
        self._ducked_response: str | None = None
        self._timers: dict[str, asyncio.Task[None]] = {}
        self.conversation.add_observer(self._on_transition)
        self._liveness = liveness
        """The core's deadlines (``bargein.core.liveness``); ``None`` keeps none."""

    @property
    def local_vad(self) -> VoiceDetector | None:
        """The microphone's own voice detector, if the session runs one."""
        return self._local_vad

    # --- observing -------------------------------------------------------------------

    def now_ms(self) -> float:
        """Milliseconds since the session was made, on its clock."""
        return (self._clock() - self._t0) * 1000.0

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Call ``observer`` with every observation; returns a function that unsubscribes."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    async def observations(self) -> AsyncIterator[Observation]:
        """Every observation from now on, until the session closes."""
        queue: asyncio.Queue[Observation] = asyncio.Queue()
        unsubscribe = self.subscribe(queue.put_nowait)
        try:
            while True:
                item = await queue.get()
                yield item
                if isinstance(item, Closed):
                    return
        finally:
            unsubscribe()

    def _publish(self, observation: Observation) -> None:
        for observer in list(self._observers):
            try:
                observer(observation)
            except Exception:  # an embedder's bug must not stop the conversation
                log.exception("session_observer_failed", observer=repr(observer))

    def _on_transition(self, record: TransitionRecord) -> None:
        self._publish(StateChanged(self.now_ms(), record.source, record.dest, record.trigger,
                                   record.reason))

    # --- running ---------------------------------------------------------------------

    async def __aenter__(self) -> Session:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def start(self) -> None:
        """Start the session's tasks (the server reader, the mic, the sender, the monitor)."""
        if self._tasks or self._ended().done():
            return
        loop = asyncio.get_running_loop()
        self._t0 = self._clock()
        for name, coro in (
            ("server", self._read_server()),
            ("mic", self._read_mic()),
            ("sender", self._send()),
            ("monitor", self._monitor()),
        ):
            task = loop.create_task(coro, name=f"bargein-{name}")
            task.add_done_callback(self._task_done)
            self._tasks.append(task)
        if self._liveness is not None:
            self._execute(self.conversation.watch(self._liveness))

    async def wait(self) -> str:
        """Wait until the session ends and return why (``"input over"``, ``"server closed"``,
        what ``finish()`` said); a failure is raised. See the class docstring."""
        return await asyncio.shield(self._ended())

    def finish(self, reason: str) -> None:
        """Ask the session to end, from the event loop; ``wait()`` then returns ``reason``.
        Before ``start()`` it keeps the session from starting at all."""
        done = self._ended()
        if not done.done():
            done.set_result(reason)

    def handle(self, event: e.Event) -> None:
        """Feed a local event (``UserInterrupt``, ``UserStop``, ...) as if from an adapter."""
        self._queue.append(event)
        if self._handling:
            return
        self._handling = True
        try:
            while self._queue:
                self._dispatch(self._queue.popleft())
        finally:
            self._handling = False

    async def close(self) -> None:
        """Stop every task, close the source, the sink and the connection. Idempotent.

        Everything is closed even when something fails to close; the first failure is then
        raised (a WAV sink that cannot write its file, say)."""
        if self._closed:
            return
        self._closed = True
        self.finish("closed")
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        calls = list(self._tool_tasks.values())
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        failures: list[tuple[str, Exception]] = []
        for what, closer in (("source", self.source.close), ("sink", self.sink.close)):
            try:
                closer()
            except Exception as exc:
                failures.append((what, exc))
        try:
            await self.transport.close()
        except Exception as exc:
            failures.append(("connection", exc))
        for what, failure in failures:
            log.warning("close_failed", what=what, error=f"{type(failure).__name__}: {failure}")
        self._finalize_texts(None)
        self._publish_closed(self._end_reason())
        if failures:
            what, first = failures[0]
            if isinstance(first, BargeinError):
                raise first
            raise SessionError(
                f"closing the {what} failed: {type(first).__name__}: {first}"
            ) from first

    def _ended(self) -> asyncio.Future[str]:
        """Resolves when the session ends; made on first need, in the running loop."""
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
        return self._done

    def _end_reason(self) -> str:
        done = self._ended()
        if not done.done():
            return "closed"
        if done.cancelled() or done.exception() is not None:
            return "error"
        return done.result()

    def _publish_closed(self, reason: str) -> None:
        if not self._closed_published:
            self._closed_published = True
            self._publish(Closed(self.now_ms(), reason))

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A loop ended by itself: the server is gone, or something failed. Either way the
        session is over; a failure is logged and stops the other loops at once."""
        done = self._ended()
        if task.cancelled() or done.done():
            return
        exc = task.exception()
        if exc is None:
            if task.get_name() == "bargein-server":
                self.finish("server closed")
            return
        self._fail(task.get_name(), exc)

    def _fail(self, where: str, exc: BaseException) -> None:
        """The session fails with ``exc``: ``wait()`` raises it, the loops stop."""
        done = self._ended()
        if done.done():
            return
        # A typed error (the server closed, every reconnection failed) is the session's
        # outcome: wait() raises it and the Closed observation says it, so the program
        # reports it once; logging it as an error too printed it twice. A bug is an error.
        report = log.info if isinstance(exc, BargeinError) else log.error
        report("session_failed", task=where, error=f"{type(exc).__name__}: {exc}")
        done.set_exception(exc)
        for other in self._tasks:
            other.cancel()
        self._publish_closed(f"error: {exc}")

    # --- the loops -------------------------------------------------------------------

    async def _read_server(self) -> None:
        if isinstance(self.transport, DeliversEvents):
            await self.transport.deliver(self.handle)
        else:
            async for event in self.transport.events():
                self.handle(event)

    async def _read_mic(self) -> None:
        """Take the microphone's frames: handed over by a source that delivers them
        (``Delivering``: no task wake-up per frame), else from ``frames()``."""
        if isinstance(self.source, Delivering):
            await self.source.deliver(self._on_mic_frame)
        else:
            async for frame in self.source.frames():
                self._on_mic_frame(frame)

    def _on_mic_frame(self, frame: AudioFrame) -> None:
        """One captured frame: to the core, and to the local voice detector if there is
        one. A failure here fails the session, not the source that delivered the frame."""
        try:
            self.handle(e.MicAudio(frame.pcm, frame.captured_at_ms))
            if (self._linger_s is not None and self._monitor_waits is not None
                    and self._input_over()):
                self._wake_monitor()  # the quiet is timed from now on
            vad = self._local_vad
            if vad is not None:
                edges = vad.feed(np.frombuffer(frame.pcm, dtype="<i2"))
                self._mic_ms += len(frame.pcm) / BYTES_PER_MS
                for edge in edges:
                    if edge.started:
                        self._onset = (self._mic_ms - edge.at_ms, self.now_ms())
                        self.handle(e.LocalSpeechStarted(float(edge.at_ms)))
                        self._onset = None  # a duck, if it ducked, has taken it
                    else:
                        self.handle(e.LocalSpeechStopped(float(edge.at_ms)))
        except Exception as exc:
            self._fail("bargein-mic", exc)

    async def _send(self) -> None:
        """Send the outbox in order, one task for all: the microphone's task never waits
        on the network (a full socket would hold up its voice detector, and the echo
        canceller's reference would run ahead of it). While the connection is down commands
        are dropped, because the server session they were meant for is gone (a reconnect
        starts a new one)."""
        outbox, send = self._outbox, self.transport.send
        loop = asyncio.get_running_loop()
        while True:
            while outbox:
                command = outbox.popleft()
                try:
                    await send(command)
                except NotConnected:
                    log.debug("command_dropped_while_disconnected",
                              kind=type(command).__name__)
            waits = self._sender_waits = loop.create_future()
            await waits

    @property
    def _sink_busy(self) -> bool:
        """The sink was given audio that the monitor has not yet seen played out."""
        return self._busy

    @_sink_busy.setter
    def _sink_busy(self, busy: bool) -> None:
        self._busy = busy
        if busy:
            self._wake_monitor()

    def _wake_monitor(self) -> None:
        waits, self._monitor_waits = self._monitor_waits, None
        if waits is not None and not waits.done():
            waits.set_result(None)

    async def _monitor(self) -> None:
        """Report the speaker's progress, and when it has played everything; end the
        session once a finite input is over and the conversation has gone quiet.

        It polls every ``progress_interval_s`` while the sink has audio (sooner when the
        sink says its audio ends sooner, but never less than ``END_POLL_MIN_S`` apart), and
        once a finite input is over (to time the quiet, ``linger_s``); otherwise it waits,
        no timer, until audio is played or the input is over (the microphone's task says
        so), and then polls on the grid of its last poll, from that moment on: at the times
        it would have polled at had it gone on polling, so the polls fall where they always
        did."""
        loop = asyncio.get_running_loop()
        interval = self._interval
        lingers = self._linger_s is not None
        last = self._clock()
        while True:
            if self._busy or (lingers and self._input_over()):
                await self._sleep(self._next_poll_s(interval))
            else:
                waits = self._monitor_waits = loop.create_future()
                await waits
                # the first time on the grid of the last poll from now on (not the last
                # poll's own: it has been)
                elapsed = self._clock() - last
                polls = max(1, math.ceil(elapsed / interval - 1e-6))
                await self._sleep(last + polls * interval - self._clock())
            last = self._clock()
            if self._busy:
                idle = self.sink.idle  # before the count: idle then means the count is whole
                heard = dict(self.sink.heard_ms())
                if idle:
                    self._sink_busy = False
                    self.handle(e.PlaybackFinished(heard))
                else:
                    self.handle(e.PlaybackProgress(heard))
            self._check_quiet()

    def _next_poll_s(self, interval: float) -> float:
        """How long the monitor sleeps while polling: the interval, or until the sink's audio
        ends if it says that comes sooner."""
        if self._busy and self._ends_in is not None:
            return min(interval, max(END_POLL_MIN_S, self._ends_in()))
        return interval

    def _input_over(self) -> bool:
        """A finite input is over (its source says ``exhausted``)."""
        return bool(getattr(self.source, "exhausted", False))

    def _check_quiet(self) -> None:
        if self._linger_s is None or not self._input_over():
            return
        conversation = self.conversation
        quiet = (conversation.in_state("listening") and not conversation.key_down
                 and not conversation.reply_asked and not self._sink_busy and self.sink.idle)
        now = self._clock()
        if not quiet:
            self._quiet_since = None
        elif self._quiet_since is None:
            self._quiet_since = now
        elif now - self._quiet_since >= self._linger_s:
            log.info("input_over", quiet_s=self._linger_s)
            self.finish("input over")

    # --- carrying out ----------------------------------------------------------------

    def _dispatch(self, event: e.Event) -> None:
        kind = type(event)
        if kind is e.MicAudio:  # 50 a second: no figures, no machine (the core's fast path)
            self._execute(self.conversation.handle(event))
            return
        if kind is e.PlaybackProgress:  # 10 a second while a reply plays; the core only
            self._on_heard(event.heard_ms)  # type: ignore[union-attr]  # records it
            self._execute(self.conversation.handle(event))
            return
        now = self.now_ms()
        if kind is e.AudioDelta:
            self._on_audio_delta(event, now)  # type: ignore[arg-type]
            return
        if (kind in e.BARGE_IN_EVENTS and self.conversation.state != DUCKED) \
                or kind is e.UserStop or kind is e.TalkPressed:
            # while a sound is judged, its onset stays the signal a commit is timed from
            self._signal_at = now
            self._generating_at_signal = {
                rid for rid, f in self.figures.items() if f.status is None}
        elif isinstance(event, e.SpeechStopped):
            self._speech_stopped_at = now
        elif isinstance(event, e.TranscriptDelta):
            self._on_transcript_delta(event, now)
        elif isinstance(event, e.InputTranscript):
            self._publish(Transcript(now, "user", event.item_id, event.transcript, final=True))
            if self.history is not None:
                self.history.said("user", event.item_id, event.transcript)
        elif isinstance(event, e.UnknownServerEvent):
            self._publish(ServerEvent(now, event.type, event.event, event.known))
        elif isinstance(event, e.ResponseCreated):
            self.figures.setdefault(event.response_id, ResponseFigures(event.response_id))
        elif isinstance(event, e.ResponseDone):
            figures = self.figures.setdefault(event.response_id,
                                              ResponseFigures(event.response_id))
            figures.status = event.status
        elif isinstance(event, (e.PlaybackProgress, e.PlaybackFinished, e.PlaybackFlushed)):
            self._on_heard(event.heard_ms)
        settled = self.conversation.interruptions
        last_settled = settled[-1] if settled else None
        resumed_before = self.conversation.stats.false_interruptions
        self._execute(self.conversation.handle(event))
        if self.conversation.stats.false_interruptions > resumed_before:
            self._on_resumed()
        if settled and settled[-1] is not last_settled:  # one event settles one barge-in
            self._on_settled(settled[-1], now)
        if isinstance(event, e.ResponseDone):
            self._finalize_texts(event.response_id)
            for kept in (self.figures, self._final_texts, self._item_response, self._heard):
                forget_oldest(kept, KEEP_RESPONSES)
        elif isinstance(event, e.Disconnected):
            self._finalize_texts(None, said=False)
        elif isinstance(event, e.Reconnected):
            self._on_reconnected(now)

    def _on_transcript_delta(self, event: e.TranscriptDelta, now: float) -> None:
        if event.item_id in self._final_texts:
            return  # a delta after its response ended: the final text has been published
        self._item_response.setdefault(event.item_id, event.response_id)
        self._texts.setdefault(event.item_id, (event.response_id, []))[1].append(event.delta)
        self._publish(Transcript(now, "assistant", event.item_id, event.delta,
                                 response_id=event.response_id))

    def _finalize_texts(self, response_id: str | None, *, said: bool = True) -> None:
        """Publish the whole transcript of each item of ``response_id`` (None: of all);
        ``said``: into the history too (not a reply a disconnect cut off: what was heard of
        it is unknown once its items are gone)."""
        for item_id, (rid, parts) in list(self._texts.items()):
            if response_id is None or rid == response_id:
                del self._texts[item_id]
                # masked again whole: a key the server echoed may straddle two deltas
                text = self._final_texts[item_id] = redact_known("".join(parts))
                self._publish(Transcript(self.now_ms(), "assistant", item_id, text,
                                         final=True, response_id=rid))
                if said and self.history is not None:
                    self.history.said("assistant", item_id, text)

    def _text_of(self, item_id: str) -> str:
        if item_id in self._final_texts:
            return self._final_texts[item_id]
        return "".join(self._texts.get(item_id, ("", []))[1])

    def _on_heard(self, heard_ms: Mapping[str, float]) -> None:
        heard = self._heard
        for item_id, ms in heard_ms.items():
            if ms > heard.get(item_id, 0.0):  # the items that played on (not the settled ones)
                heard[item_id] = ms
                self._heard_response = self._item_response.get(item_id)
                self._update_heard(self._heard_response)
        underruns = getattr(self.sink, "underruns", 0)  # a sink that counts its dropouts
        if underruns != self._underruns:
            # since the last report: the response that played on is the one that broke up
            new, self._underruns = underruns - self._underruns, underruns
            figures = self.figures.get(self._heard_response or "")
            if figures is not None:
                figures.underruns += new

    def _update_heard(self, response_id: str | None) -> None:
        figures = self.figures.get(response_id) if response_id is not None else None
        if figures is not None:
            figures.heard_ms = sum(self._heard.get(i, 0.0) for i in figures.items)

    def _on_reconnected(self, now: float) -> None:
        info = getattr(self.transport, "last_reconnect", None)
        context_lost = bool(getattr(info, "context_lost", True))
        restored = self.history.messages() if self.history is not None and context_lost else []
        self._execute(list(restored))
        self._publish(Reconnected(
            now,
            reason=str(getattr(info, "reason", "")),
            down_s=float(getattr(info, "down_s", 0.0)),
            attempts=int(getattr(info, "attempts", 0)),
            session_restored=bool(getattr(info, "session_restored", False)),
            context_lost=context_lost,
            turns_restored=len(restored),
        ))

    def _on_audio_delta(self, event: e.AudioDelta, now: float) -> None:
        commands = self.conversation.handle(event)
        figures = self.figures.setdefault(event.response_id, ResponseFigures(event.response_id))
        if not commands:
            figures.dropped_ms += len(event.audio) / BYTES_PER_MS
            return
        if figures.time_to_first_audio_ms is None and self._speech_stopped_at is not None:
            figures.time_to_first_audio_ms = now - self._speech_stopped_at
            self._speech_stopped_at = None  # one user turn, one answer's figure
        if event.item_id not in figures.items:
            figures.items.append(event.item_id)
        self._item_response.setdefault(event.item_id, event.response_id)
        figures.received_ms += len(event.audio) / BYTES_PER_MS
        self._execute(commands)

    def _execute(self, commands: list[c.Command]) -> None:
        for command in commands:
            if type(command) is c.SendAudio:  # the microphone's, first: the most frequent
                self._post(command)
            elif isinstance(command, c.PlayAudio):
                self.sink.play(command.item_id, command.audio)
                self._sink_busy = True
                self._playing_response = command.response_id
            elif isinstance(command, c.DuckPlayback):
                self._duck(command.gain)
            elif isinstance(command, c.RestorePlayback):
                self._restore()
            elif isinstance(command, c.FlushPlayback):
                report = self.sink.flush()
                self._sink_busy = False
                signal = self._signal_at if self._signal_at is not None else self.now_ms()
                self._flush_silent_ms = self.now_ms() - signal + report.silent_after_ms
                self._queue.append(e.PlaybackFlushed(dict(report.heard_ms)))
            elif isinstance(command, c.StartTimer):
                self._start_timer(command.name, command.ms)
            elif isinstance(command, c.GiveUp):
                self._give_up(command.error)
            elif isinstance(command, c.Report):
                pass  # the core logged it in one line; the conversation goes on
            elif isinstance(command, c.CancelTimer):
                timer = self._timers.pop(command.name, None)
                if timer is not None:
                    timer.cancel()
            elif isinstance(command, c.RunTool):
                self._run_tool(command)
            elif isinstance(command, c.CancelTool):
                call = self._tool_tasks.pop(command.call_id, None)
                if call is not None:
                    call.cancel()
            else:
                if isinstance(command, c.CancelResponse):
                    figures = self.figures.setdefault(command.response_id,
                                                      ResponseFigures(command.response_id))
                    figures.client_cancelled = True
                self._post(command)

    def _post(self, command: c.ServerCommand) -> None:
        """Send ``command`` at once when nothing waits before it and the transport can
        (``SendsAtOnce``); otherwise queue it for the wire and wake the sender task."""
        send_now = self._send_now
        if (send_now is not None and self._sender_waits is not None and not self._outbox
                and send_now(command)):
            return
        self._outbox.append(command)
        waits = self._sender_waits
        if waits is not None:
            self._sender_waits = None
            if not waits.done():
                waits.set_result(None)

    def _run_tool(self, command: c.RunTool) -> None:
        """Run the call in a task of its own; its output goes back to the core."""
        found = self.tools.get(command.name)

        async def run() -> None:
            if found is None:
                log.warning("tool_unknown", tool=command.name, call_id=command.call_id)
                output = json.dumps({"error": f"there is no tool named {command.name}"})
            else:
                output = await found.run(command.arguments)
            self._tool_tasks.pop(command.call_id, None)
            if not self._closed:
                self.handle(e.ToolResult(command.call_id, output))

        self._tool_tasks[command.call_id] = asyncio.get_running_loop().create_task(run())

    def _duck(self, gain: float) -> None:
        """Lower the reply to judge a sound over it; figures go to the reply ducked."""
        sink = self.sink
        if isinstance(sink, Duckable):
            sink.duck(gain)
        else:
            log.debug("duck_ignored", sink=type(sink).__name__, gain=gain)
        generating = [rid for rid, f in self.figures.items() if f.status is None]
        rid = self._playing_response if self._sink_busy or not generating else generating[-1]
        self._ducked_response = rid
        onset = self._onset
        figures = None if rid is None else self.figures.setdefault(rid, ResponseFigures(rid))
        if figures is None:
            return
        figures.ducks += 1
        if onset is not None:
            captured_after, reported_at = onset
            figures.onset_to_duck_ms.append(captured_after + self.now_ms() - reported_at)

    def _restore(self) -> None:
        """The judgement is over, whichever way (the exit of the judging state)."""
        if self.conversation.state != INTERRUPTED:
            self._signal_at = None  # no barge-in came of the sound judged
        sink = self.sink
        if isinstance(sink, Duckable):
            sink.duck(1.0)
        else:
            log.debug("restore_ignored", sink=type(sink).__name__)

    def _on_resumed(self) -> None:
        """A judged sound ended before it was confirmed: the reply went on."""
        rid, self._ducked_response = self._ducked_response, None
        if rid is not None:
            self.figures.setdefault(rid, ResponseFigures(rid)).false_interruptions += 1

    def _give_up(self, error: Exception) -> None:
        """A deadline the conversation cannot survive: the session ends with ``error``
        (``wait()`` raises it; the core has said it in one line)."""
        done = self._ended()
        if done.done():
            return
        done.set_exception(error)
        for task in self._tasks:
            task.cancel()
        self._publish_closed(f"error: {error}")

    def _start_timer(self, name: str, ms: int) -> None:
        """In ``ms`` on the session's clock, hand the core ``TimerFired(name)``; a timer of
        the same name is replaced. Timers end with the session. The time is counted from
        now, not from when the timer's task first runs."""
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        due = self._clock() + ms / 1000.0

        async def run() -> None:
            await self._sleep(max(0.0, due - self._clock()))
            if self._timers.get(name) is task:
                del self._timers[name]
                self.handle(e.TimerFired(name))

        kind = "deadline" if name in LIVENESS_TIMERS else "timer"  # the core's own, or the table's
        task = asyncio.get_running_loop().create_task(run(), name=f"bargein-{kind}-{name}")
        self._timers[name] = task

    def _on_settled(self, interruption: Interruption, now: float) -> None:
        latency = self._flush_silent_ms if self._flush_silent_ms is not None else 0.0
        for s in interruption.settlements:
            figures = self.figures.setdefault(s.response_id, ResponseFigures(s.response_id))
            figures.interrupted = True
            figures.stop_latency_ms = latency
            self._heard[s.item_id] = s.heard_ms  # the settled figure is the last word
            self._item_response.setdefault(s.item_id, s.response_id)
            if s.item_id not in figures.items:
                figures.items.append(s.item_id)
            self._update_heard(s.response_id)
            if s.action == "truncate":
                figures.audio_end_ms = s.audio_end_ms
        if interruption.cancelled:
            cancelled_by: Literal["client", "server", "none"] = "client"
        elif self._generating_at_signal & set(interruption.response_ids):
            cancelled_by = "server"
        else:
            cancelled_by = "none"
        signal_at = self._signal_at if self._signal_at is not None else now
        log.info(
            "interrupted",
            trigger=interruption.trigger,
            signal_at_ms=round(signal_at, 1),
            stop_latency_ms=round(latency, 2),
            cancelled=interruption.cancelled,
            settlements=[
                {"item_id": s.item_id, "action": s.action, "audio_end_ms": s.audio_end_ms,
                 "heard_ms": round(s.heard_ms, 1), "received_ms": round(s.received_ms, 1)}
                for s in interruption.settlements
            ],
        )
        self._publish(Interrupted(signal_at, interruption.trigger, latency,
                                  interruption.cancelled, interruption.settlements, cancelled_by))
        for s in interruption.settlements:
            if s.action == "keep":
                continue
            heard_ms = float(s.audio_end_ms)
            heard, unheard = split_heard(self._text_of(s.item_id), heard_ms, s.received_ms)
            self._publish(Heard(now, s.item_id, s.response_id, heard, unheard, heard_ms,
                                s.received_ms))
            if self.history is not None:
                self.history.heard(s.item_id, heard)
        self._signal_at = None
