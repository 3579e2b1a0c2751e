"""The committed diagrams are what the code generates; rendering refuses to fake SVG."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from bargein.cli import main
from bargein.errors import DiagramError
from bargein.states import DEFAULT_TABLE, State, Transition
from bargein.states import diagram as d
from tests.support import REPO

ROOT = REPO

THINKING = DEFAULT_TABLE.extend(
    states=[State("thinking", interruptible=True)],
    transitions=[
        Transition("speech_stopped", "listening", "thinking"),
        Transition("audio_started", "thinking", "responding"),
    ],
)


def test_committed_mermaid_matches_the_code() -> None:
    committed = (ROOT / "diagrams" / "conversation.mmd").read_text()
    assert committed == d.to_mermaid(DEFAULT_TABLE), "run `make diagrams`"


def test_readme_shows_the_generated_diagram() -> None:
    assert d.to_mermaid(DEFAULT_TABLE) in (ROOT / "README.md").read_text()


def test_readme_state_table_is_the_generated_one() -> None:
    """The README's ``| state | meaning |`` table is exactly ``to_markdown_table``."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("| state | meaning |")
    end = readme.index("\n\n", start) + 1
    assert readme[start:end] == d.to_markdown_table(DEFAULT_TABLE), (
        "paste bargein.states.diagram.to_markdown_table(DEFAULT_TABLE) into the README"
    )


def test_state_table_shows_every_description() -> None:
    text = d.to_markdown_table(
        DEFAULT_TABLE.extend([State("thinking", interruptible=True, description="no | audio")])
    )
    for state in DEFAULT_TABLE.states:
        assert f"| {state.name} | {state.description}" in text
    assert text.endswith("| thinking | no \\| audio (interruptible) |\n")


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz 'dot' is not installed")
def test_committed_svg_matches_the_code() -> None:
    committed = (ROOT / "diagrams" / "conversation.svg").read_text()
    assert committed == d.to_svg(DEFAULT_TABLE), "run `make diagrams`"


def test_mermaid_shows_moves_and_guards_not_internal_edges() -> None:
    text = d.to_mermaid(DEFAULT_TABLE)
    assert "responding --> interrupted : speech_started / local_speech_started / interrupt" in text
    assert "response_done [not playing]" in text
    assert "listening --> listening" not in text


def test_extended_machine_shows_its_states_and_automatic_barge_in() -> None:
    text = d.to_mermaid(THINKING)
    assert "thinking : thinking (interruptible)" in text
    assert "listening --> thinking : speech_stopped" in text
    assert "thinking --> interrupted : speech_started / local_speech_started / interrupt" in text


def test_svg_without_graphviz_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _: None)
    with pytest.raises(DiagramError, match="Graphviz"):
        d.to_svg(DEFAULT_TABLE)


def test_cli_writes_an_extended_machine(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "my_machine.py"
    module.write_text(
        "from bargein.states import DEFAULT_TABLE, State, Transition\n"
        "TABLE = DEFAULT_TABLE.extend([State('thinking', interruptible=True)],"
        " [Transition('speech_stopped', 'listening', 'thinking')])\n"
    )
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    out = tmp_path / "m.mmd"
    assert main(["diagram", "--machine", "my_machine:TABLE", "-o", str(out)]) == 0
    assert "thinking" in out.read_text()
    assert main(["diagram", "--machine", "my_machine:NOPE"]) == 1
    assert "is not a bargein StateTable" in capsys.readouterr().err
