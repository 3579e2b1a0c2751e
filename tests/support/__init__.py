"""Helpers shared by bargein's own tests (not shipped): paths, PulseAudio, simulator checks,
official wire models."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The repository's root."""
WIRE_FIXTURES = REPO / "tests" / "fixtures" / "wire"
"""Recorded server events, GA and beta."""
