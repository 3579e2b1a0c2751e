"""Choosing an audio device by index or by a piece of its name, with one clear error."""

from __future__ import annotations

import pytest

from bargein.adapters.audio.devices import AudioDevice, describe, find_device
from bargein.errors import AudioDeviceError

DEVICES = [
    AudioDevice(0, "HDA Intel PCH: ALC257 Analog (hw:0,0)", 2, 2, 44100, "ALSA"),
    AudioDevice(1, "USB Headset: Audio (hw:1,0)", 1, 2, 48000, "ALSA"),
    AudioDevice(2, "HDMI 0 (hw:0,3)", 0, 8, 44100, "ALSA"),
    AudioDevice(3, "pulse", 32, 32, 44100, "ALSA"),
    AudioDevice(4, "default", 32, 32, 44100, "ALSA", default_input=True, default_output=True),
]


def test_by_index_or_by_a_piece_of_the_name() -> None:
    assert find_device(1, output=False, devices=DEVICES).name.startswith("USB")
    assert find_device("1", output=True, devices=DEVICES).index == 1
    assert find_device("usb", output=False, devices=DEVICES).index == 1
    assert find_device("hdmi", output=True, devices=DEVICES).index == 2
    assert find_device("pulse", output=False, devices=DEVICES).index == 3


def test_only_devices_of_the_right_direction_count() -> None:
    with pytest.raises(AudioDeviceError, match="no input device named like 'hdmi'"):
        find_device("hdmi", output=False, devices=DEVICES)
    with pytest.raises(AudioDeviceError, match="no input device with index 2"):
        find_device(2, output=False, devices=DEVICES)


def test_an_ambiguous_name_lists_the_candidates() -> None:
    with pytest.raises(AudioDeviceError, match=r"2 output devices .*0: HDA.*2: HDMI"):
        find_device("(hw:0", output=True, devices=DEVICES)


def test_an_exact_name_wins_over_pieces() -> None:
    devices = [*DEVICES, AudioDevice(5, "pulse monitor", 2, 0, 44100, "ALSA")]
    assert find_device("pulse", output=False, devices=devices).index == 3


def test_the_listing_marks_the_defaults() -> None:
    table = describe(DEVICES)
    assert "default  (default input, default output)  [ALSA]" in table
    assert table.splitlines()[0].split() == ["index", "in", "out", "rate", "name"]
