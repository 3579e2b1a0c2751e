"""The asyncio runtime that joins a transport and audio adapters to the core.

The session is the only place in bargein that awaits. It never decides anything: every
event goes to ``Conversation.handle()`` and every command that comes back is carried out
in order — audio to the sink at once, server commands through one sender task so the
wire sees them in the order the core emitted them. Events caused while carrying out
commands (a flush report) are queued behind the current event, never handled re-entrantly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from bargein.adapters.audio.protocols import AudioSink, AudioSource
from bargein.adapters.audio.vad import EnergyVad
from bargein.core import Conversation, Interruption, TransitionRecord
from bargein.core import commands as c
from bargein.core import events as e
from bargein.core.ledger import Settlement
from bargein.core.pcm import BYTES_PER_MS
from bargein.errors import BargeinError, NotConnected, SessionError
from bargein.logs import get_logger

log = get_logger(__name__)


class Transport(Protocol):
    """What the session needs of a connection (``bargein.adapters.transport`` has one)."""

    def events(self) -> AsyncIterator[e.Event]:
        """Core events decoded from the server, until the connection is closed for good."""
        ...

    async def send(self, command: c.ServerCommand) -> None: ...

    async def close(self) -> None: ...

# --- what embedders observe ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateChanged:
    at_ms: float
    source: str
    dest: str
    trigger: str
    reason: str


@dataclass(frozen=True, slots=True)
class Transcript:
    at_ms: float
    role: Literal["user", "assistant"]
    item_id: str
    text: str
    """The user's whole utterance, or one delta of the assistant's."""


@dataclass(frozen=True, slots=True)
class Interrupted:
    """A barge-in, settled: how fast the speaker fell silent and what each item kept."""

    at_ms: float
    trigger: str
    stop_latency_ms: float
    cancelled: tuple[str, ...]
    settlements: tuple[Settlement, ...]


@dataclass(frozen=True, slots=True)
class Closed:
    at_ms: float
    reason: str


Observation = StateChanged | Transcript | Interrupted | Closed
Observer = Callable[[Observation], None]


@dataclass(slots=True)
class ResponseFigures:
    """Per-response figures, filled in as the conversation goes."""

    response_id: str
    time_to_first_audio_ms: float | None = None
    interrupted: bool = False
    stop_latency_ms: float | None = None
    heard_ms: float | None = None
    audio_end_ms: int | None = None
    dropped_ms: float = 0.0
    items: list[str] = field(default_factory=list)


class Session:
    """One live conversation: transport + source + sink + conversation.

    ``local_vad`` runs a detector on the microphone, so that a barge-in starts as soon as
    the user is heard, a network round trip before the server's ``speech_started``. Use it
    with a headset or an echo-cancelled microphone: on open speakers it hears the
    assistant and interrupts it.

    ``clock`` (seconds) and ``sleep`` are where the session takes its time from, as in the
    standard library's ``sched.scheduler(timefunc, delayfunc)``: wall-clock time by default;
    ``bargein.testing.VirtualTime`` runs a session on a ``VirtualClock`` instead.
    """

    def __init__(
        self,
        transport: Transport,
        source: AudioSource,
        sink: AudioSink,
        conversation: Conversation | None = None,
        *,
        progress_interval_s: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        local_vad: EnergyVad | None = None,
    ) -> None:
        self.transport = transport
        self.source = source
        self.sink = sink
        self.conversation = conversation or Conversation()
        self.figures: dict[str, ResponseFigures] = {}
        self._interval = progress_interval_s
        self._local_vad = local_vad
        self._clock = clock
        self._sleep = sleep
        self._t0 = clock()
        self._observers: list[Observer] = []
        self._queue: deque[e.Event] = deque()
        self._handling = False
        self._outbox: asyncio.Queue[c.ServerCommand] = asyncio.Queue()
        self._sink_busy = False
        self._speech_stopped_at: float | None = None
        self._signal_at: float | None = None
        self._flush_silent_ms: float | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._done: asyncio.Future[str] | None = None
        self._closed = False
        self._closed_published = False
        self.conversation.add_observer(self._on_transition)

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

    async def wait(self) -> str:
        """Wait until the session ends (server gone, ``finish()``, an error, which is raised)."""
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
        log.error("session_failed", task=task.get_name(), error=f"{type(exc).__name__}: {exc}")
        done.set_exception(exc)
        for other in self._tasks:
            other.cancel()
        self._publish_closed(f"error: {exc}")

    # --- the loops -------------------------------------------------------------------

    async def _read_server(self) -> None:
        async for event in self.transport.events():
            self.handle(event)

    async def _read_mic(self) -> None:
        vad = self._local_vad
        async for frame in self.source.frames():
            self.handle(e.MicAudio(frame.pcm, frame.captured_at_ms))
            if vad is not None:
                for edge in vad.feed(np.frombuffer(frame.pcm, dtype="<i2")):
                    if edge.started:
                        self.handle(e.LocalSpeechStarted(float(edge.at_ms)))

    async def _send(self) -> None:
        """Send commands in order; while the connection is down they are dropped, because
        the server session they were meant for is gone (a reconnect starts a new one)."""
        while True:
            command = await self._outbox.get()
            try:
                await self.transport.send(command)
            except NotConnected:
                log.debug("command_dropped_while_disconnected", kind=type(command).__name__)

    async def _monitor(self) -> None:
        """Report the speaker's progress, and when it has played everything."""
        while True:
            await self._sleep(self._interval)
            if not self._sink_busy:
                continue
            idle = self.sink.idle  # before the count: idle then means the count is whole
            heard = dict(self.sink.heard_ms())
            if idle:
                self._sink_busy = False
                self.handle(e.PlaybackFinished(heard))
            else:
                self.handle(e.PlaybackProgress(heard))

    # --- carrying out ----------------------------------------------------------------

    def _dispatch(self, event: e.Event) -> None:
        now = self.now_ms()
        kind = type(event)
        if kind is e.AudioDelta:
            self._on_audio_delta(event, now)  # type: ignore[arg-type]
            return
        if kind in e.BARGE_IN_EVENTS or kind is e.UserStop:
            self._signal_at = now
        elif isinstance(event, e.SpeechStopped):
            self._speech_stopped_at = now
        elif isinstance(event, e.TranscriptDelta):
            self._publish(Transcript(now, "assistant", event.item_id, event.delta))
        elif isinstance(event, e.InputTranscript):
            self._publish(Transcript(now, "user", event.item_id, event.transcript))
        elif isinstance(event, e.ResponseCreated):
            self.figures.setdefault(event.response_id, ResponseFigures(event.response_id))
        settled_before = len(self.conversation.interruptions)
        self._execute(self.conversation.handle(event))
        for interruption in self.conversation.interruptions[settled_before:]:
            self._on_settled(interruption, now)

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
        self._execute(commands)

    def _execute(self, commands: list[c.Command]) -> None:
        for command in commands:
            if isinstance(command, c.PlayAudio):
                self.sink.play(command.item_id, command.audio)
                self._sink_busy = True
            elif isinstance(command, c.FlushPlayback):
                report = self.sink.flush()
                self._sink_busy = False
                signal = self._signal_at if self._signal_at is not None else self.now_ms()
                self._flush_silent_ms = self.now_ms() - signal + report.silent_after_ms
                self._queue.append(e.PlaybackFlushed(dict(report.heard_ms)))
            else:
                self._outbox.put_nowait(command)

    def _on_settled(self, interruption: Interruption, now: float) -> None:
        latency = self._flush_silent_ms if self._flush_silent_ms is not None else 0.0
        for s in interruption.settlements:
            figures = self.figures.setdefault(s.response_id, ResponseFigures(s.response_id))
            figures.interrupted = True
            figures.stop_latency_ms = latency
            figures.heard_ms = (figures.heard_ms or 0.0) + s.heard_ms
            if s.action == "truncate":
                figures.audio_end_ms = s.audio_end_ms
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
                                  interruption.cancelled, interruption.settlements))
        self._signal_at = None
