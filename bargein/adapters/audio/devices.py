"""The machine's audio devices, as PortAudio (through pyaudio) sees them, and choosing one.

``list_devices()`` lists them; ``find_device("USB", output=False)`` picks one by index or by
a case-insensitive piece of its name, and says clearly when none or several match.
``bargein devices`` prints the list; ``bargein talk --input-device/--output-device`` and
``bargein.talk(input_device=..., output_device=...)`` take what ``find_device`` takes.
"""

from __future__ import annotations

from dataclasses import dataclass

from bargein.adapters.audio.device import new_pyaudio, terminate
from bargein.errors import AudioDeviceError


@dataclass(frozen=True, slots=True)
class AudioDevice:
    """One PortAudio device."""

    index: int
    name: str
    inputs: int
    """Input channels (0: not a microphone)."""
    outputs: int
    """Output channels (0: not a speaker)."""
    default_rate: int
    host_api: str
    default_input: bool = False
    default_output: bool = False


def list_devices() -> list[AudioDevice]:
    """Every device PortAudio knows, in its index order."""
    pa = new_pyaudio()
    try:
        def default(getter: str) -> int | None:
            try:
                return int(getattr(pa, getter)()["index"])
            except (OSError, ValueError):
                return None

        default_in = default("get_default_input_device_info")
        default_out = default("get_default_output_device_info")
        devices = []
        for index in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(index)
            try:
                host = str(pa.get_host_api_info_by_index(info["hostApi"])["name"])
            except (OSError, ValueError, KeyError):
                host = ""
            devices.append(AudioDevice(
                index=index,
                name=str(info["name"]),
                inputs=int(info["maxInputChannels"]),
                outputs=int(info["maxOutputChannels"]),
                default_rate=int(info["defaultSampleRate"]),
                host_api=host,
                default_input=index == default_in,
                default_output=index == default_out,
            ))
        return devices
    finally:
        terminate(pa)


def find_device(spec: int | str, *, output: bool,
                devices: list[AudioDevice] | None = None) -> AudioDevice:
    """The device ``spec`` names: an index, or a piece of its name (case-insensitive) that
    exactly one device with channels in that direction holds (an exact name wins)."""
    kind = "output" if output else "input"
    known = list_devices() if devices is None else devices
    usable = [d for d in known if (d.outputs if output else d.inputs) > 0]
    text = str(spec).strip()
    if isinstance(spec, int) or text.isdigit():
        index = int(text)
        for device in usable:
            if device.index == index:
                return device
        raise AudioDeviceError(f"no {kind} device with index {index} (bargein devices lists "
                               "them)")
    exact = [d for d in usable if d.name.lower() == text.lower()]
    matches = exact or [d for d in usable if text.lower() in d.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise AudioDeviceError(f"no {kind} device named like {text!r} (bargein devices lists "
                               "them)")
    names = ", ".join(f"{d.index}: {d.name}" for d in matches)
    raise AudioDeviceError(f"{len(matches)} {kind} devices are named like {text!r} ({names}); "
                           "give its index or more of its name")


def describe(devices: list[AudioDevice]) -> str:
    """The devices as an aligned text table, defaults marked."""
    rows = [("index", "in", "out", "rate", "name")]
    for d in devices:
        marks = [m for m, on in (("default input", d.default_input),
                                 ("default output", d.default_output)) if on]
        name = d.name + (f"  ({', '.join(marks)})" if marks else "")
        if d.host_api:
            name += f"  [{d.host_api}]"
        rows.append((str(d.index), str(d.inputs), str(d.outputs), str(d.default_rate), name))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.rjust(w) for cell, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
        for r in rows
    )
