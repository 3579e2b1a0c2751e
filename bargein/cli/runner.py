"""One whole conversation run, as ``bargein talk`` and ``bargein demo`` do it.

Opens the audio adapters first (a missing device fails before any network traffic),
connects, configures the session, runs it until the server closes, the input is over and
nothing is playing, or the caller stops it, and always closes everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bargein.adapters.audio.memory import VirtualClock
from bargein.adapters.audio.protocols import AudioFrame, AudioSink, AudioSource
from bargein.adapters.audio.vad import EnergyVad
from bargein.adapters.audio.wav import WavSink, WavSource
from bargein.adapters.endpoints import Endpoint
from bargein.adapters.secrets import ApiKey
from bargein.adapters.session_config import SessionConfig
from bargein.adapters.transport import RealtimeTransport
from bargein.core import Conversation
from bargein.core.events import ConfigureSession
from bargein.core.pcm import RATE
from bargein.logs import get_logger
from bargein.session import Observer, Session

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What to talk to, with what, and when to stop."""

    endpoint: Endpoint
    key: ApiKey | None
    input: str = "mic"
    """``mic`` or a WAV path (streamed in real time, then silence)."""
    output: str = "speaker"
    """``speaker`` or a WAV path (aligned to the input's clock)."""
    config: SessionConfig = field(default_factory=SessionConfig)
    linger_s: float = 2.0
    """With a WAV input: how long the conversation must be quiet after the input ends."""
    speaker_block_frames: int = 240
    allow_plaintext: bool = False
    local_vad: bool = False
    """Barge in on the microphone's own voice detection, before the server's."""


class _Clocked:
    """Advances a virtual clock by each frame that passes, so a WAV sink can follow a mic."""

    def __init__(self, source: AudioSource, clock: VirtualClock) -> None:
        self.source, self.clock = source, clock

    async def frames(self) -> AsyncIterator[AudioFrame]:
        async for frame in self.source.frames():
            self.clock.advance_samples(len(frame.pcm) // 2)
            yield frame

    def close(self) -> None:
        self.source.close()


@dataclass(slots=True)
class _Audio:
    source: AudioSource
    sink: AudioSink
    clock: Callable[[], float]
    input_over: Callable[[], bool]


def _open_audio(options: RunOptions) -> _Audio:
    """Source and sink as the options say; closes what it opened if the other fails."""
    vclock: VirtualClock | None = None
    source: AudioSource
    if options.input == "mic":
        from bargein.adapters.audio.pyaudio_mic import PyAudioMicrophone

        source = PyAudioMicrophone()
        input_over: Callable[[], bool] = lambda: False  # noqa: E731 - a mic never ends
        if options.output != "speaker":
            vclock = VirtualClock()
            source = _Clocked(source, vclock)
    else:
        wav = WavSource(options.input)
        source, vclock = wav, wav.clock
        input_over = lambda: wav.exhausted  # noqa: E731
    try:
        sink: AudioSink
        if options.output == "speaker":
            from bargein.adapters.audio.pyaudio_speaker import PyAudioSpeaker

            sink = PyAudioSpeaker(block_frames=options.speaker_block_frames)
        else:
            assert vclock is not None
            sink = WavSink(Path(options.output), vclock, latency_frames=0)  # a file has no DAC
    except BaseException:
        source.close()
        raise
    if vclock is not None:
        clock = vclock
        return _Audio(source, sink, lambda: clock.ms / 1000.0, input_over)
    return _Audio(source, sink, time.monotonic, input_over)


async def run(
    options: RunOptions,
    observers: Iterable[Observer] = (),
    conversation: Conversation | None = None,
    *,
    stop_on_signals: bool = False,
) -> Session:
    """Hold one conversation to its end; returns the closed session (figures inside).

    ``stop_on_signals`` (for a command line) makes Ctrl-C and SIGTERM end the conversation
    the orderly way, so its figures are still there to print.
    """
    transport = RealtimeTransport(  # checks the endpoint and the key before any device opens
        options.endpoint, options.key, allow_plaintext=options.allow_plaintext
    )
    local_vad = (
        EnergyVad(RATE, threshold=0.5, prefix_padding_ms=0, silence_duration_ms=500)
        if options.local_vad
        else None
    )
    audio = _open_audio(options)
    session = Session(transport, audio.source, audio.sink, conversation, clock=audio.clock,
                      local_vad=local_vad)
    for observer in observers:
        session.subscribe(observer)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM) if stop_on_signals else ()
    tasks: list[asyncio.Task[Any]] = []
    try:
        for signum in signals:
            loop.add_signal_handler(signum, session.finish, "stopped by the user")
        ended = asyncio.ensure_future(session.wait())
        connecting = asyncio.ensure_future(transport.connect())
        tasks += [ended, connecting]
        await asyncio.wait((ended, connecting), return_when=asyncio.FIRST_COMPLETED)
        if connecting.done():
            connecting.result()  # a connection error is raised here
            session.start()
            session.handle(ConfigureSession(options.config))
            tasks.append(asyncio.create_task(_finish_when_quiet(session, audio,
                                                                options.linger_s)))
        log.info("run_finished", reason=await ended)  # stopped while connecting: at once
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for signum in signals:
            loop.remove_signal_handler(signum)
        await session.close()
    return session


async def _finish_when_quiet(session: Session, audio: _Audio, linger_s: float) -> None:
    """End the run once the input is over and the conversation has been quiet a while."""
    quiet_since: float | None = None
    while True:
        await asyncio.sleep(0.05)
        quiet = (
            audio.input_over()
            and session.conversation.state == "listening"
            and audio.sink.idle
        )
        now = time.monotonic()
        if not quiet:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= linger_s:
            session.finish("input over")
            return
