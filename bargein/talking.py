"""A whole conversation in one call: ``bargein.talk()``, and ``bargein.connect()`` to drive it.
(Over 400 lines, most of them the documented arguments of the two calls and how each choice
of audio, detector and machine is made.)

``await talk(url, input="question.wav", output="heard.wav")`` does what ``bargein talk``
does: it opens the audio (a WAV file, the microphone, the speaker), connects, configures
the session, holds the conversation until its natural end, closes everything and returns
the closed ``Session``, whose ``figures`` hold each response's figures. The natural end is
the first of:

- the input is over (a WAV file was streamed whole) and the conversation has been quiet
  (listening, no push-to-talk key down, no reply asked for and not yet begun, nothing
  playing) for ``linger_s`` seconds: ``"input over"``;
- the server closed the connection: ``"server closed"``;
- ``session.finish(reason)`` was called (a button, a signal handler): ``reason``.

A failure (no key, the server unreachable, the connection lost for good) is raised, as a
``bargein.errors.BargeinError``. With the microphone the conversation runs until the server
closes it or the program calls ``finish()``.

``async with connect(...) as session:`` is the same conversation, handed to the program
once it is live (``session.wait()`` returns by itself, as above; ``session.handle(...)``
sends local events such as ``UserInterrupt``); it is closed when the block ends. Before
the block, ``connect(...).session`` already exists: subscribe to it, or call its
``finish()`` from a signal handler to stop a connection attempt at once.

The audio, as ``bargein talk`` does it: a WAV input is streamed in real time as if spoken,
from the moment the session is ready (so none of it is lost to connecting), followed by
silence; a WAV output is aligned to the input's clock (sample *n* of the output
is what played while input sample *n* was captured), with no device latency: a file has no
DAC. ``WavSink`` has the same default, so a program that builds its own adapters measures
the same figures as the command line.

With the microphone and the speaker both opened here, the microphone's frames pass through
an ``EchoCanceller`` (WebRTC's AEC3, ``bargein.adapters.audio.echo``) fed what the speaker
writes, so an open speaker does not make the assistant interrupt itself; ``echo_cancel=False``
turns it off (a headset needs none). A program that brings its own source or sink wires a
canceller itself (``EchoCanceller.reference`` / ``process``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import replace
from types import TracebackType
from typing import Any, Literal

from bargein.adapters import endpoints
from bargein.adapters.audio.echo import EchoCanceller, ReferenceSource
from bargein.adapters.audio.memory import VirtualClock
from bargein.adapters.audio.protocols import AudioFrame, AudioSink, AudioSource
from bargein.adapters.audio.speaker import open_speaker
from bargein.adapters.audio.vad import EnergyVad, VoiceDetector
from bargein.adapters.audio.wav import WavSink, WavSource
from bargein.adapters.endpoints import Endpoint
from bargein.adapters.secrets import ENV_VARS, ApiKey
from bargein.adapters.session_config import Api, SessionConfig
from bargein.adapters.transport import RealtimeTransport
from bargein.core import Conversation
from bargein.core.events import ConfigureSession
from bargein.core.pcm import RATE
from bargein.errors import SessionConfigError, StateTableError, VadUnavailable
from bargein.logs import get_logger
from bargein.session import Observation, Observer, Session, StateChanged
from bargein.states import DEFAULT_TABLE, two_phase_table
from bargein.tools import Tool, tools_from

log = get_logger(__name__)

Input = str | os.PathLike[str] | AudioSource
"""``"mic"`` (the default microphone), a WAV path, or any ``AudioSource``."""
Output = str | os.PathLike[str] | AudioSink
"""``"speaker"`` (the default speaker), a WAV path, or any ``AudioSink``."""
DeviceSpec = int | str
"""A device index, or a piece of its name (``bargein devices`` lists them)."""

BargeIn = Literal["auto", "instant", "two-phase"]
"""How a sound over the reply is taken: ``instant`` cuts the reply at once (a headset);
``two-phase`` ducks it and judges (``bargein.states.two_phase``: a cough or an "uh-huh"
resumes it, speech that lasts commits the cut); ``auto``: two-phase when the output is the
speaker (a room, where coughs and echo happen), instant otherwise."""
LocalVad = bool | Literal["silero", "energy"] | VoiceDetector | None
"""The microphone's own voice detector: ``True`` or ``"silero"`` for Silero VAD (the energy
detector if Silero cannot load, with a warning), ``"energy"`` for the energy detector (any
loud sound is speech: a cough too), a ``VoiceDetector`` of the program's own, ``False`` for
none (the server's turn detection alone), ``None`` (the default) for what the barge-in
needs: Silero under two-phase barge-in (it judges each sound where it is heard, at once),
none under instant barge-in. Two-phase with the server's turn detection alone works, but the
server reports a sound's end ``silence_duration_ms`` late, so only sounds shorter than the
confirm window minus that are let go."""

LINGER_S = 2.0
"""Seconds of quiet after a finite input ends before the conversation ends."""
SPEAKER_BLOCK_FRAMES = 240
"""The speaker's block: 10 ms at 24 kHz, so a barge-in silences it within 10 ms plus the
device's own latency."""


def endpoint_for(url: str | Endpoint | None, *, model: str = endpoints.DEFAULT_MODEL,
                 api: Api = "ga") -> Endpoint:
    """``None``: OpenAI; a URL: that server (a key only for a host not on this machine)."""
    if isinstance(url, Endpoint):
        return url
    if url is None:
        return endpoints.openai(model, api)
    return endpoints.custom(url, model, api=api)


def key_for(endpoint: Endpoint) -> ApiKey | None:
    """The key the endpoint wants, from the environment (``OPENAI_API_KEY``, or
    ``AZURE_OPENAI_API_KEY`` for Azure's ``api-key`` auth); None when it wants none."""
    if endpoint.auth == "none":
        return None
    return ApiKey.from_env(ENV_VARS["azure" if endpoint.auth == "api-key" else "openai"])


class _Clocked:
    """Advances a virtual clock by each frame that passes, so a WAV sink can follow a mic."""

    def __init__(self, source: AudioSource, clock: VirtualClock) -> None:
        self.source, self.clock = source, clock

    @property
    def exhausted(self) -> bool:
        return bool(getattr(self.source, "exhausted", False))

    async def frames(self) -> AsyncIterator[AudioFrame]:
        async for frame in self.source.frames():
            self.clock.advance_samples(len(frame.pcm) // 2)
            yield frame

    def close(self) -> None:
        self.source.close()


class _SpeaksOnceLive:
    """A WAV input is a user who starts speaking once the conversation is live: streamed from
    the first frame, its opening would be lost to however long connecting and the server's
    session take (the core drops audio before the session is ready), more on a slow link or
    a busy machine. The WAV's clock, and so a WAV output's, starts with its first frame."""

    def __init__(self, source: WavSource, live: asyncio.Event) -> None:
        self.source, self.live = source, live

    @property
    def exhausted(self) -> bool:
        return self.source.exhausted

    async def frames(self) -> AsyncIterator[AudioFrame]:
        await self.live.wait()
        async for frame in self.source.frames():
            yield frame

    def close(self) -> None:
        self.source.close()


def _leaves_idle(obs: Observation) -> bool:
    return isinstance(obs, StateChanged) and obs.source == "idle" and obs.dest != "idle"


def _device_index(spec: DeviceSpec | None, *, output: bool) -> int | None:
    if spec is None:
        return None
    from bargein.adapters.audio.devices import find_device

    return find_device(spec, output=output).index


def open_audio(
    input: Input = "mic",
    output: Output = "speaker",
    *,
    input_device: DeviceSpec | None = None,
    output_device: DeviceSpec | None = None,
    speaker_block_frames: int = SPEAKER_BLOCK_FRAMES,
    echo_cancel: bool = True,
) -> tuple[AudioSource, AudioSink, Callable[[], float]]:
    """The source, the sink and the session clock the arguments name (see ``talk``).

    The clock is the input's when the output is a WAV file or the input one (so the file
    lines up with the input), the wall clock otherwise. What was opened is closed again if
    the other side fails. With ``echo_cancel`` and both the microphone and the speaker
    opened here, the microphone yields frames cleaned of the speaker's echo (an
    ``EchoCancellerError`` before any device opens when livekit is missing)."""
    canceller = (
        EchoCanceller()
        if echo_cancel and _names(input, "mic") and _names(output, "speaker")
        else None
    )
    vclock: VirtualClock | None = None
    source: AudioSource
    wav_out = not isinstance(output, AudioSink) and str(output) != "speaker"
    if isinstance(input, AudioSource):
        source = input
        found = getattr(input, "clock", None)
        if isinstance(found, VirtualClock):
            vclock = found
        elif wav_out:
            vclock = VirtualClock()
            source = _Clocked(input, vclock)
    elif str(input) == "mic":
        from bargein.adapters.audio.pyaudio_mic import PyAudioMicrophone

        source = PyAudioMicrophone(device_index=_device_index(input_device, output=False),
                                   processor=canceller.process if canceller else None)
        if wav_out:
            vclock = VirtualClock()
            source = _Clocked(source, vclock)
    else:
        wav = WavSource(os.fspath(input))
        source, vclock = wav, wav.clock
    try:
        sink: AudioSink
        if isinstance(output, AudioSink):
            sink = output
        elif str(output) == "speaker" and output_device is not None:
            from bargein.adapters.audio.pyaudio_speaker import PyAudioSpeaker

            sink = PyAudioSpeaker(block_frames=speaker_block_frames,
                                  device_index=_device_index(output_device, output=True))
        elif str(output) == "speaker":  # the native PulseAudio speaker where a server answers
            sink = open_speaker(block_frames=speaker_block_frames)
        else:
            assert vclock is not None
            sink = WavSink(os.fspath(output), vclock)
        if canceller is not None and isinstance(sink, ReferenceSource):
            sink.tap_reference(canceller.reference)
    except BaseException:
        source.close()
        raise
    if vclock is not None:
        clock = vclock
        return source, sink, lambda: clock.ms / 1000.0
    return source, sink, time.monotonic


STOP_AFTER_MS = 200
"""How much silence ends a sound for the local detectors ``talk()`` builds. Under two-phase
barge-in the sound's end must *arrive* inside the confirm window (600 ms from its onset) to
resume the reply: with the server VAD's usual 500 ms, a 150 ms cough's end arrived after the
window had committed the cut (measured in the room lab). Under instant barge-in only the
onset counts."""


def local_detector(choice: LocalVad) -> VoiceDetector | None:
    """The detector ``choice`` names (see ``LocalVad``)."""
    if choice is False or choice is None:
        return None
    if choice == "energy":
        return EnergyVad(RATE, threshold=0.5, prefix_padding_ms=0,
                         silence_duration_ms=STOP_AFTER_MS)
    if choice is True or choice == "silero":
        from bargein.adapters.audio.silero import SileroVad

        try:
            return SileroVad(silence_duration_ms=STOP_AFTER_MS)
        except VadUnavailable as exc:
            log.warning("silero_unavailable_energy_detector_used", reason=str(exc))
            return local_detector("energy")
    if isinstance(choice, VoiceDetector):
        return choice
    raise SessionConfigError(f"local_vad must be True, False, 'silero', 'energy' or a "
                          f"VoiceDetector, not {choice!r}")


def conversation_for(barge_in: BargeIn, output: Output, *, local_detector: bool,
                     conversation: Conversation | None = None) -> Conversation:
    """The conversation ``talk()`` runs: the program's own, or the machine ``barge_in``
    names (``auto``: two-phase on the speaker). A program's own machine decides by itself,
    so asking for two-phase beside one is refused."""
    if conversation is not None:
        if barge_in == "two-phase":
            raise StateTableError("barge_in='two-phase' chooses the machine: pass it or a "
                                  "conversation of your own, not both")
        return conversation
    return Conversation(two_phase_table(local_detector=local_detector)
                        if _two_phase(barge_in, output, None) else DEFAULT_TABLE)


def _two_phase(barge_in: BargeIn, output: Output, conversation: Conversation | None) -> bool:
    """Whether ``talk()`` runs two-phase barge-in: asked for, or by default on the speaker
    when the program brings no machine of its own."""
    return barge_in == "two-phase" or (
        barge_in == "auto" and conversation is None and _names(output, "speaker"))


def _names(choice: Input | Output, device: str) -> bool:
    """Whether ``choice`` is the device word itself (not a path, not an adapter)."""
    return isinstance(choice, str) and choice == device


class Connecting:
    """What ``connect()`` returns: ``async with`` it for a live session. ``session`` is
    there at once (not connected yet), to subscribe to or to ``finish()``."""

    def __init__(self, session: Session, transport: RealtimeTransport,
                 config: SessionConfig) -> None:
        self.session = session
        self.transport = transport
        self.config = config

    async def __aenter__(self) -> Session:
        """Connect, start and configure; a ``finish()`` while connecting stops at once (the
        session is then handed over already ended: its ``wait()`` returns at once)."""
        session = self.session
        ended = asyncio.ensure_future(session.wait())
        connecting = asyncio.ensure_future(self.transport.connect())
        try:
            await asyncio.wait((ended, connecting), return_when=asyncio.FIRST_COMPLETED)
            if connecting.done():
                connecting.result()  # a connection error is raised here
                session.start()
                session.handle(ConfigureSession(self.config))
            else:
                log.info("connect_abandoned", reason=ended.result())
        except BaseException:
            for task in (ended, connecting):
                task.cancel()
            await self._cleanup(ended, connecting)
            with contextlib.suppress(Exception):  # the first error is the one to tell
                await session.close()
            raise
        self._pending = (ended, connecting)
        return session

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._cleanup(*self._pending)
        await self.session.close()

    @staticmethod
    async def _cleanup(*tasks: asyncio.Future[Any]) -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def connect(
    url: str | Endpoint | None = None,
    *,
    input: Input = "mic",
    output: Output = "speaker",
    config: SessionConfig | None = None,
    key: ApiKey | None = None,
    model: str = endpoints.DEFAULT_MODEL,
    api: Api = "ga",
    conversation: Conversation | None = None,
    observer: Observer | None = None,
    linger_s: float | None = LINGER_S,
    local_vad: LocalVad = None,
    input_device: DeviceSpec | None = None,
    output_device: DeviceSpec | None = None,
    speaker_block_frames: int = SPEAKER_BLOCK_FRAMES,
    allow_plaintext: bool = False,
    echo_cancel: bool = True,
    barge_in: BargeIn = "auto",
    tools: Iterable[Tool | Callable[..., Any]] = (),
    ssl_context: ssl.SSLContext | None = None,
) -> Connecting:
    """A conversation ready to start: ``async with connect(...) as session:``. The
    arguments are ``talk()``'s. The endpoint and key are checked and the audio is opened
    here, before any network traffic, so a missing device or key fails at once."""
    endpoint = endpoint_for(url, model=model, api=api)
    transport = RealtimeTransport(endpoint, key if key is not None else key_for(endpoint),
                                  allow_plaintext=allow_plaintext, ssl_context=ssl_context)
    config = config if config is not None else SessionConfig()
    made = tools_from(tools)
    if made:  # declared to the server with their barge-in policies, run by the session
        config = replace(config, tools=config.tools + tuple(t.spec for t in made))
    if config.push_to_talk and barge_in == "auto":
        barge_in = "instant"  # the key is the barge-in: no sound is judged, none cuts
    two_phase = _two_phase(barge_in, output, conversation)
    client_turns = config.client_turn_end_ms is not None
    vad = local_detector(True if local_vad is None and (two_phase or client_turns)
                         else local_vad)
    if client_turns and vad is None:
        raise SessionConfigError("ClientVad turns need a local voice detector: leave "
                                 "local_vad unset (Silero) or pass one")
    conversation = conversation_for(barge_in, output, local_detector=vad is not None,
                                    conversation=conversation)
    source, sink, clock = open_audio(input, output, input_device=input_device,
                                     output_device=output_device,
                                     speaker_block_frames=speaker_block_frames,
                                     echo_cancel=echo_cancel)
    live = asyncio.Event()
    if isinstance(source, WavSource) and not isinstance(input, AudioSource):
        source = _SpeaksOnceLive(source, live)  # a WAV path: spoken once the session is ready
    session = Session(transport, source, sink, conversation, clock=clock, local_vad=vad,
                      linger_s=linger_s, tools=made)
    session.subscribe(lambda obs: live.set() if _leaves_idle(obs) else None)
    if observer is not None:
        session.subscribe(observer)
    return Connecting(session, transport, config)


async def talk(
    url: str | Endpoint | None = None,
    *,
    input: Input = "mic",
    output: Output = "speaker",
    config: SessionConfig | None = None,
    key: ApiKey | None = None,
    model: str = endpoints.DEFAULT_MODEL,
    api: Api = "ga",
    conversation: Conversation | None = None,
    observer: Observer | None = None,
    linger_s: float | None = LINGER_S,
    local_vad: LocalVad = None,
    input_device: DeviceSpec | None = None,
    output_device: DeviceSpec | None = None,
    speaker_block_frames: int = SPEAKER_BLOCK_FRAMES,
    allow_plaintext: bool = False,
    echo_cancel: bool = True,
    barge_in: BargeIn = "auto",
    tools: Iterable[Tool | Callable[..., Any]] = (),
    ssl_context: ssl.SSLContext | None = None,
) -> Session:
    """Hold one conversation to its natural end and return the closed session.

    - ``url``: a Realtime base URL (``ws://127.0.0.1:8765/v1`` for ``bargein sim``), an
      ``Endpoint`` (``bargein.endpoints.azure(...)``, ...), or ``None`` for OpenAI.
    - ``input``: ``"mic"``, a WAV path, or an ``AudioSource``; ``output``: ``"speaker"``, a
      WAV path, or an ``AudioSink``. ``input_device``/``output_device`` choose the
      microphone and speaker by index or name (``bargein devices`` lists them).
    - ``config``: the ``SessionConfig`` to send (server turn detection that cancels on
      speech, by default); ``conversation``: a ``Conversation`` of your own machine.
    - ``key``: by default from ``OPENAI_API_KEY`` (``AZURE_OPENAI_API_KEY`` for Azure), and
      none for a server on this machine.
    - ``observer``: called with every observation (``Transcript``, ``Heard``,
      ``Interrupted``, ``StateChanged``, ``Reconnected``, ``Closed``), in order.
    - ``linger_s``: with a finite input, the quiet time after it before the end.
    - ``local_vad``: detect the user on the microphone, a network round trip before the
      server does (``LocalVad``; by default Silero VAD under two-phase barge-in or client
      turns, ``ClientVad``, none otherwise).
    - ``barge_in``: ``"instant"`` cuts the reply on any onset; ``"two-phase"`` ducks it and
      judges (a cough resumes it, speech that lasts 600 ms commits the cut, and the server
      is told ``interrupt_response: false`` so it cannot cut first); ``"auto"`` (default):
      two-phase on the speaker, instant to a file (``BargeIn``).
    - ``echo_cancel``: with the microphone and the speaker, remove the speaker's echo from
      the microphone (WebRTC's AEC3); ``False`` for a headset.
    - ``tools``: functions the assistant may call, plain or made with
      ``bargein.tools.tool()`` (a barge-in policy, a timeout): declared in the session, run
      when called, their output sent and the follow-up reply asked for (``bargein.tools``).
    - ``ssl_context``: for a ``wss://`` endpoint, the TLS context that verifies the server
      (a private CA, a proxy that inspects TLS, ``bargein sim --tls-cert``); by default
      Python's, which trusts the system's CAs and ``SSL_CERT_FILE``.

    ``session.wait()``'s answer says why it ended; ``session.figures`` holds the figures.
    """
    async with connect(
        url, input=input, output=output, config=config, key=key, model=model, api=api,
        conversation=conversation, observer=observer, linger_s=linger_s,
        local_vad=local_vad, input_device=input_device, output_device=output_device,
        speaker_block_frames=speaker_block_frames, allow_plaintext=allow_plaintext,
        echo_cancel=echo_cancel, barge_in=barge_in, tools=tools, ssl_context=ssl_context,
    ) as session:
        reason = await session.wait()
        log.info("talk_finished", reason=reason)
    return session
