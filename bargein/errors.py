"""Every exception bargein raises, in one place, so a program can catch them as precisely as
it likes. Each message is one line fit for a person; the cause, if any, is chained.

::

    BargeinError                      anything bargein raises on purpose
    ├── UsageError                    the command line asked for something impossible
    ├── StateTableError               a state table that cannot drive the core
    ├── DiagramError                  a diagram could not be rendered (Graphviz missing)
    ├── ApiKeyError                   no usable API key in the environment
    ├── EndpointError                 an endpoint URL bargein will not use as given
    ├── SessionConfigError            a session setting out of range or unknown
    ├── CodecError                    the wire codec was asked for something it cannot do
    ├── TransportError                the connection failed or is not open
    │   ├── ConnectFailed             the server could not be reached
    │   ├── ConnectTimeout            connecting or the handshake took too long
    │   ├── HandshakeRejected         the handshake was answered with an error status
    │   │   ├── KeyRejected           ... 401 or 403: authentication refused
    │   │   └── RedirectRefused       ... a 3xx redirect: never followed
    │   ├── InsecureEndpoint          plaintext to another machine without consent
    │   │   └── InsecureProxy         ... a proxy asked for a plaintext ws:// endpoint
    │   ├── ServerClosed              the server closed with a code that ends the conversation
    │   ├── NotConnected              a command with no connection open
    │   └── ConnectionLost            dropped, and every reconnection failed
    ├── AudioError                    audio that cannot be used as given
    │   ├── PcmError                  PCM16 bytes that are not whole samples
    │   ├── WavError                  a WAV file that cannot be read or written
    │   ├── AudioDeviceError          no audio library, server or usable device
    │   ├── EchoCancellerError        the echo canceller cannot run (livekit missing or failing)
    │   └── VadUnavailable            Silero VAD's package or model cannot be loaded
    ├── SessionError                  the session could not go on
    │   └── LivenessError             a deadline passed (bargein.core.liveness)
    │       ├── SessionNeverReady     ... no session.created: the session ends
    │       ├── ReplyStalled          ... a reply stopped arriving: dropped, talk goes on
    │       │   └── ResponseDoneLost  ... its audio played out, its response.done never came
    │       └── StreamFrozen          ... no answer to keepalive pings: reconnecting
    ├── ToolError                     a tool that cannot be declared as given
    ├── SimError                      a simulator option, fault or start failed
    ├── TimelineError                 the demo's timeline cannot be drawn
    └── InspectorError                the live inspector cannot serve as asked (not loopback)

``InvalidSession`` is the simulator's own: a refused ``session.update`` that it answers with
an ``error`` event. It never leaves the simulator.
"""

from __future__ import annotations


class BargeinError(Exception):
    """Base class of bargein's typed errors; its message is one line fit for a person."""


class UsageError(BargeinError):
    """The command line asked for something that cannot be done."""


class StateTableError(BargeinError):
    """A state table that cannot drive the core (unknown state, trigger or condition)."""


class DiagramError(BargeinError):
    """A diagram could not be rendered (for SVG: Graphviz is missing or failed)."""


class ApiKeyError(BargeinError):
    """No usable API key: missing from the environment, empty, or malformed."""


class EndpointError(BargeinError):
    """An endpoint URL that bargein will not connect to as given."""


class SessionConfigError(BargeinError):
    """A session setting is out of range or unknown."""


class CodecError(BargeinError):
    """The codec was asked for something it cannot do (an unknown flavour, format or command)."""


class TransportError(BargeinError):
    """The connection to the Realtime server failed or is not open."""


class ConnectFailed(TransportError):
    """The server could not be reached (refused, unknown host, network down)."""


class ConnectTimeout(TransportError):
    """The connection or its handshake did not complete in time."""


class HandshakeRejected(TransportError):
    """The server answered the WebSocket handshake with an error status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KeyRejected(HandshakeRejected):
    """The server refused authentication (HTTP 401 or 403). ``key_sent`` says whether a key
    was presented at all: a loopback endpoint gets none unless asked, and its message then
    says so instead of blaming the key."""

    def __init__(self, message: str, status: int | None = None, *, key_sent: bool = True) -> None:
        super().__init__(message, status)
        self.key_sent = key_sent


class RedirectRefused(HandshakeRejected):
    """The handshake was answered with a redirect (HTTP 3xx), which bargein never follows:
    a Realtime endpoint does not redirect, and following one could carry the key to another
    host or down to plaintext. ``target`` is where it pointed (scheme, host and port only)."""

    def __init__(self, message: str, status: int | None = None, target: str = "") -> None:
        super().__init__(message, status)
        self.target = target


class InsecureEndpoint(TransportError):
    """Plaintext ``ws://`` to a host other than this machine, without the caller's consent."""


class InsecureProxy(InsecureEndpoint):
    """A proxy asked for a plaintext ``ws://`` endpoint: refused whatever else is allowed,
    because the proxy would read the whole handshake, key included. Proxies carry TLS only."""


class ServerClosed(TransportError):
    """The server closed the connection with a code that ends the conversation (policy,
    protocol or authentication codes, 3000-4999): bargein does not reconnect into it.
    ``code`` and ``reason`` are the server's close frame (the reason redacted)."""

    def __init__(self, message: str, code: int, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class NotConnected(TransportError):
    """A command was sent while no connection is open."""


class ConnectionLost(TransportError):
    """The connection dropped and every reconnection attempt failed."""


class AudioError(BargeinError):
    """Audio that cannot be used as given: a bad rate, a clock run backwards, a bad size."""


class PcmError(AudioError):
    """PCM16 bytes whose length is not a whole number of samples."""


class WavError(AudioError):
    """A WAV file that cannot be read or is not uncompressed 16-bit PCM."""


class AudioDeviceError(AudioError):
    """No audio library, no audio server or no usable device."""


class EchoCancellerError(AudioError):
    """The echo canceller cannot run as asked: livekit (the ``audio`` extra) is missing or
    its audio processing module fails to start, or an option or frame it cannot take."""


class VadUnavailable(AudioError):
    """Silero VAD cannot run: its package is not installed or its model will not load."""


class SessionError(BargeinError):
    """The session could not go on (the cause is chained)."""


class LivenessError(SessionError):
    """A deadline passed: the server went quiet where it must speak (the core's liveness
    timers, ``bargein.core.liveness``, or the transport's keepalive)."""


class SessionNeverReady(LivenessError):
    """The server never said the session was ready (no usable ``session.created``) within
    the deadline after connecting: the session ends with this error."""


class ReplyStalled(LivenessError):
    """A reply stopped arriving mid-response: it is declared dead, cancelled, flushed and
    settled, and the conversation goes on (reported, never raised)."""


class ResponseDoneLost(ReplyStalled):
    """A reply's audio played out and its ``response.done`` never came: recovered as if it
    had (reported, never raised)."""


class StreamFrozen(LivenessError):
    """The connection stopped answering keepalive pings (a frozen stream): it is dropped
    and reconnected (reported, never raised)."""


class ToolError(BargeinError):
    """A tool that cannot be declared as given (no schema for a parameter, a bad name)."""


class SimError(BargeinError):
    """A simulator option, fault specification or server start failed; the message says which."""


class TimelineError(BargeinError):
    """The timeline's input cannot be drawn (odd PCM length, times out of order, bad rate)."""


class InspectorError(BargeinError):
    """The live inspector cannot serve as asked: a host that is not loopback, a busy port,
    a JSON lines file that cannot be written."""


class InvalidSession(ValueError):
    """A session.update the simulator refuses; becomes an ``error`` event, never fatal."""

    def __init__(self, param: str, message: str, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.param = param
        self.code = code
