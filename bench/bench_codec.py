"""Decoding one audio delta frame (JSON + base64) into a core event, against the official SDK;
and encoding one 20 ms microphone frame into the bytes of a text frame.

Every candidate turns the same wire frames into the same thing where it can: bargein's codec
and the three JSON-library variants produce ``AudioDelta`` with PCM bytes; the SDK rows show
what ``openai`` does with an incoming frame (its connection's ``parse_event``, which builds
models without validating them, and a validating pydantic parse of the server-event union),
alone and followed by the base64 decode a user still needs to get audio. Candidates run
interleaved in rounds so that machine noise hits them alike; the table shows the median
microseconds per frame and each SDK row's ratio to bargein's codec.

Encoding, the other way: a ``SendAudio`` of 20 ms (50 a second per session) into the UTF-8
bytes websockets sends: bargein's ``encode_bytes`` (the frame joined from its parts), the
route it took before (a payload dict serialised by msgspec, decoded to ``str``, encoded to
UTF-8 again by websockets), a bare msgspec client's and the SDK's (``json.dumps`` and
``base64``).

Compression, last: what permessage-deflate (RFC 7692) would cost a session if a server
accepted it. websockets' own extension (context takeover, memLevel 5 as its client sets it,
15-bit windows) compresses 20 ms microphone frames and decompresses 100 ms audio deltas of
bundled speech (the voiced part of ``bargein/data/demo_user.wav``); the table shows what
each adds per frame and the share of the bytes it leaves. It is why ``RealtimeTransport``
offers no compression unless asked (``compress=True``).
"""

from __future__ import annotations

import base64
import binascii
import json
import statistics
import sys
import time
import wave
from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any, Union, get_args

import msgspec
import orjson
import pybase64
import pydantic
from openai._models import construct_type_unchecked
from openai.types.realtime.realtime_server_event import RealtimeServerEvent
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode

from bargein.adapters.codec import WireCodec
from bargein.core.commands import SendAudio
from bargein.core.events import AudioDelta
from bargein.core.pcm import BYTES_PER_MS

ROUNDS = 15
FRAMES_PER_ROUND = 400
DURATIONS_MS = (20, 40, 100)


def frames(duration_ms: int, round_no: int = 0) -> list[bytes]:
    """Distinct GA audio delta frames as the server sends them (with its extra keys); event
    ids are unique across rounds, as on a real connection (the codec drops repeats)."""
    out = []
    for n in range(FRAMES_PER_ROUND):
        pcm = bytes((n + i) % 251 for i in range(duration_ms * BYTES_PER_MS))
        frame = {
            "type": "response.output_audio.delta",
            "event_id": f"event_{round_no:03d}_{n:06d}",
            "response_id": "resp_CEbqbAfvZ9ed8W1ACdPxm",
            "item_id": "item_CEbqbbV5T6ZxcP6BKkWc0",
            "output_index": 0,
            "content_index": 0,
            "delta": base64.b64encode(pcm).decode(),
        }
        out.append(json.dumps(frame).encode())
    return out


def via_dict(
    loads: Callable[[bytes], Any], b64decode: Callable[[str], bytes]
) -> Callable[[bytes], AudioDelta]:
    """The codec's job done by hand on a generic JSON decode (to compare libraries)."""

    def decode(frame: bytes) -> AudioDelta:
        obj = loads(frame)
        return AudioDelta(
            obj["response_id"], obj["item_id"], b64decode(obj["delta"]), obj["content_index"]
        )

    return decode


def sdk_union() -> pydantic.TypeAdapter[Any]:
    """The SDK's server-event union, validated as pydantic does with a discriminator."""
    members = get_args(get_args(RealtimeServerEvent)[0])
    for member in members:
        member.model_rebuild()
    union = Annotated[Union[members], pydantic.Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007 (built at run time)
    return pydantic.TypeAdapter(union)


def main() -> int:
    codec = WireCodec("ga")
    validating = sdk_union()
    generic = msgspec.json.Decoder().decode

    def fast_b64(text: str) -> bytes:
        return pybase64.b64decode(text, validate=True)

    def std_b64(text: str) -> bytes:
        return binascii.a2b_base64(text, strict_mode=True)

    def sdk_parse(frame: bytes) -> Any:
        return construct_type_unchecked(value=json.loads(frame), type_=RealtimeServerEvent)  # type: ignore[arg-type]

    def sdk_validate(frame: bytes) -> Any:
        return validating.validate_json(frame)

    candidates: dict[str, Callable[[bytes], Any]] = {
        "bargein codec (msgspec typed struct)": codec.decode,
        "  same job: orjson dict, pybase64": via_dict(orjson.loads, fast_b64),
        "  same job: msgspec dict, pybase64": via_dict(generic, fast_b64),
        "  same job: stdlib json dict, pybase64": via_dict(json.loads, fast_b64),
        "  same job: msgspec dict, binascii": via_dict(generic, std_b64),
        "SDK parse_event (construct, no b64)": sdk_parse,
        "SDK parse_event + b64 decode": lambda f: base64.b64decode(sdk_parse(f).delta),
        "SDK pydantic validate (no b64)": sdk_validate,
        "SDK pydantic validate + b64 decode": lambda f: base64.b64decode(sdk_validate(f).delta),
    }
    print(f"python {sys.version.split()[0]}, {ROUNDS} rounds x {FRAMES_PER_ROUND} frames each; "
          "CPU time of this thread (thread_time) beside wall time, medians")
    for duration in DURATIONS_MS:
        rounds = [frames(duration, r) for r in range(ROUNDS + 1)]
        data = rounds[ROUNDS]
        reference = WireCodec("ga").decode(data[0])
        assert isinstance(reference, AudioDelta)
        for name, decode in candidates.items():  # same audio out of every route
            out = decode(data[0])
            audio = out.audio if isinstance(out, AudioDelta) else out
            if isinstance(audio, bytes):
                assert audio == reference.audio, name
        timings: dict[str, list[float]] = {name: [] for name in candidates}
        walls: dict[str, list[float]] = {name: [] for name in candidates}
        for data in rounds[:ROUNDS]:
            for name, decode in candidates.items():
                cpu, start = time.thread_time(), time.perf_counter()
                for frame in data:
                    decode(frame)
                walls[name].append((time.perf_counter() - start) / len(data) * 1e6)
                timings[name].append((time.thread_time() - cpu) / len(data) * 1e6)
        _table(f"audio delta of {duration} ms ({len(data[0])} bytes of JSON)", timings, walls,
               "bargein codec (msgspec typed struct)")
    encoding(codec)
    compression(codec)
    return 0


def encoding(codec: WireCodec) -> None:
    """One 20 ms microphone frame to the bytes of its text frame, four routes."""
    pcm = [bytes((n + i) % 251 for i in range(20 * BYTES_PER_MS)) for n in range(64)]
    commands = [SendAudio(p) for p in pcm]
    kind = "input_audio_buffer.append"
    routes: dict[str, Callable[[SendAudio], bytes]] = {
        "bargein encode_bytes (joined)": codec.encode_bytes,
        "  before: payload, msgspec, str, utf-8": lambda cmd: msgspec.json.encode(
            codec.to_payload(cmd)).decode().encode(),
        "bare: msgspec dict, pybase64": lambda cmd: msgspec.json.encode(
            {"type": kind, "audio": pybase64.b64encode(cmd.audio).decode()}),
        "SDK: json.dumps, base64": lambda cmd: json.dumps(
            {"type": kind, "audio": base64.b64encode(cmd.audio).decode()}).encode(),
    }
    for name, route in routes.items():  # the same JSON out of every route
        assert json.loads(route(commands[0])) == json.loads(codec.encode_bytes(commands[0])), name
    timings: dict[str, list[float]] = {name: [] for name in routes}
    walls: dict[str, list[float]] = {name: [] for name in routes}
    for _ in range(ROUNDS):
        for name, route in routes.items():
            cpu, start = time.thread_time(), time.perf_counter()
            for _ in range(FRAMES_PER_ROUND // len(commands)):
                for command in commands:
                    route(command)
            count = FRAMES_PER_ROUND // len(commands) * len(commands)
            walls[name].append((time.perf_counter() - start) / count * 1e6)
            timings[name].append((time.thread_time() - cpu) / count * 1e6)
    _table(f"microphone frame of 20 ms ({len(codec.encode_bytes(commands[0]))} bytes of JSON)",
           timings, walls, "bargein encode_bytes (joined)")


def compression(codec: WireCodec) -> None:
    """permessage-deflate on speech: what compressing a microphone frame (the client's side)
    and decompressing an audio delta add per frame, and the bytes they save."""
    with wave.open(str(resources.files("bargein") / "data" / "demo_user.wav"), "rb") as wav:
        recorded = wav.readframes(wav.getnframes())
    # its voice only: the file's pauses are digital silence, which no microphone sends and
    # which deflate shrinks to nothing
    size = 20 * BYTES_PER_MS
    speech = b"".join(chunk for i in range(0, len(recorded) - size + 1, size)
                      if (chunk := recorded[i : i + size]).strip(b"\0"))
    mic = [codec.encode_bytes(SendAudio(speech[i : i + size]))
           for i in range(0, len(speech) - size + 1, size)]
    deltas = [msgspec.json.encode({
        "type": "response.output_audio.delta", "event_id": f"event_{n}", "response_id": "r",
        "item_id": "i", "output_index": 0, "content_index": 0,
        "delta": pybase64.b64encode(speech[i : i + 100 * BYTES_PER_MS]).decode()})
        for n, i in enumerate(range(0, len(speech) - 100 * BYTES_PER_MS, 100 * BYTES_PER_MS))]

    def deflate() -> PerMessageDeflate:  # one per connection: its window is the context
        return PerMessageDeflate(False, False, 15, 15, {"memLevel": 5})

    sending = deflate()
    mic_out = [sending.encode(Frame(Opcode.TEXT, m)) for m in mic]
    server = deflate()  # what a compressing server would send, in order
    delta_in = [server.encode(Frame(Opcode.TEXT, d)) for d in deltas]
    receiving = deflate()
    assert [receiving.decode(f).data for f in delta_in] == deltas  # the same frames back
    jobs: dict[str, tuple[list[Frame], Callable[[PerMessageDeflate, Frame], Frame]]] = {
        f"compress a mic frame ({len(mic[0])} bytes)": (
            [Frame(Opcode.TEXT, m) for m in mic], PerMessageDeflate.encode),
        f"decompress a 100 ms delta ({len(deltas[0])} bytes)": (
            delta_in, PerMessageDeflate.decode),
    }
    sizes = {name: sum(len(f.data) for f in out) / sum(map(len, raw))
             for name, out, raw in zip(jobs, (mic_out, delta_in), (mic, deltas), strict=True)}
    timings: dict[str, list[float]] = {name: [] for name in jobs}
    walls: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(ROUNDS):
        for name, (frames_in, step) in jobs.items():
            extension = deflate()  # a fresh connection each round, its frames in order
            cpu, start = time.thread_time(), time.perf_counter()
            for frame in frames_in:
                step(extension, frame)
            walls[name].append((time.perf_counter() - start) / len(frames_in) * 1e6)
            timings[name].append((time.thread_time() - cpu) / len(frames_in) * 1e6)
    print(f"\npermessage-deflate on speech (websockets' extension; "
          f"{len(mic)} microphone frames of 20 ms, {len(deltas)} deltas of 100 ms): "
          "CPU it adds per frame, and the size it leaves")
    print(f"{'job':42} {'cpu med us':>10} {'cpu min':>8} {'wall med':>9} {'size left':>10}")
    for name, runs in timings.items():
        print(f"{name:42} {statistics.median(runs):10.2f} {min(runs):8.2f} "
              f"{statistics.median(walls[name]):9.2f} {sizes[name]:10.0%}")


def _table(title: str, timings: dict[str, list[float]], walls: dict[str, list[float]],
           ours_name: str) -> None:
    """One route per row: CPU median and min, wall median (us), and CPU against ours."""
    ours = statistics.median(timings[ours_name])
    print(f"\n{title}")
    print(f"{'route':42} {'cpu med us':>10} {'cpu min':>8} {'wall med':>9} "
          f"{'x bargein (cpu)':>16}")
    for name, runs in timings.items():
        median = statistics.median(runs)
        print(f"{name:42} {median:10.2f} {min(runs):8.2f} "
              f"{statistics.median(walls[name]):9.2f} {median / ours:16.1f}")


if __name__ == "__main__":
    raise SystemExit(main())
