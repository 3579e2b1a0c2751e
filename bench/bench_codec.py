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
"""

from __future__ import annotations

import base64
import binascii
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any, Union, get_args

import msgspec
import orjson
import pybase64
import pydantic
from openai._models import construct_type_unchecked
from openai.types.realtime.realtime_server_event import RealtimeServerEvent

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
