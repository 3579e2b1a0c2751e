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
from examples.machines import MACHINES
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
    assert "response_done [not playing, not generating]" in text
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
    assert "my_machine has no 'NOPE'" in capsys.readouterr().err
    (tmp_path / "not_a_machine.py").write_text("NUMBER = 7\n")
    assert main(["diagram", "--machine", "not_a_machine:NUMBER"]) == 1
    assert "is not a bargein StateTable" in capsys.readouterr().err


SHIPPED = {"conversation": DEFAULT_TABLE, **MACHINES}


@pytest.mark.parametrize("name", list(SHIPPED))
def test_committed_pages_and_mermaid_match_the_code(name: str) -> None:
    table = SHIPPED[name]
    assert (ROOT / "diagrams" / f"{name}.mmd").read_text() == d.to_mermaid(table), \
        "run `make diagrams`"
    assert (ROOT / "diagrams" / f"{name}.md").read_text() == d.to_markdown(table), \
        "run `make diagrams`"


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz 'dot' is not installed")
@pytest.mark.parametrize("name", list(MACHINES))
def test_committed_example_svgs_match_the_code(name: str) -> None:
    assert (ROOT / "diagrams" / f"{name}.svg").read_text() == d.to_svg(MACHINES[name]), \
        "run `make diagrams`"


def test_readme_embeds_the_default_page_and_every_example_diagram() -> None:
    readme = (ROOT / "README.md").read_text()
    assert d.to_markdown(DEFAULT_TABLE, title=False) in readme
    for table in MACHINES.values():
        assert d.to_mermaid(table) in readme, f"the README lacks the {table.name} diagram"


def test_mermaid_draws_nesting_history_timers_and_actions() -> None:
    confirm = d.to_mermaid(MACHINES["confirm"])
    assert 'state "responding (interruptible)" as responding {\n        [*] --> thinking\n' \
        '        state "H" as responding_history\n' in confirm
    assert "confirming --> responding_history : local_speech_stopped" in confirm
    assert "confirming --> interrupted : after 600 ms / speech_started / interrupt" in confirm
    assert "\n    responding : " not in confirm, "Mermaid refuses descriptions of a composite"
    assert "note right of responding\n        a response is being generated" in confirm
    thinking = d.to_mermaid(MACHINES["thinking"])
    assert "thinking --> thinking : after 1200 ms do play_cue" in thinking, \
        "an internal edge that does something is drawn"
    greeting = d.to_mermaid(MACHINES["greeting"])
    assert "greeting : entry / ask_for_greeting" in greeting
    assert "greeting : user speech - hold" in greeting


def test_the_page_lists_states_and_every_edge() -> None:
    page = d.to_markdown(MACHINES["confirm"])
    assert page.startswith("# The `confirm` machine\n\n```mermaid\nstateDiagram-v2\n")
    assert "| thinking | a response is under way; no audio yet (in responding; " \
        "interruptible) |" in page
    assert "| responding | a response is being generated and/or its audio is playing " \
        "(interruptible; enters thinking) |" in page
    assert "| confirming | after 600 ms |  | interrupted | long enough: barge in |  |" in page
    assert "| confirming | local_speech_stopped |  | responding (history) | too short: " \
        "resume |  |" in page
    assert "| responding | disconnected |  | idle | disconnected (automatic) |  |" in page
    assert "The program's own triggers" not in page, "local_speech_stopped is the core's now"
    assert "The program's own triggers: `tool_call`" in d.to_markdown(MACHINES["tools"])
    tools = d.to_markdown(MACHINES["tools"])
    assert "| tool_running | tool_result |  | responding | result in: follow-up asked | " \
        "ask_follow_up |" in tools


def test_dot_draws_clusters_history_and_dashed_timers() -> None:
    dot = d.to_dot(MACHINES["confirm"])
    assert 'subgraph "cluster_responding"' in dot and "compound=true;" in dot
    assert '"responding__anchor" -> "thinking"' in dot
    assert '"confirming" -> "responding_history" [label="local_speech_stopped"]' in dot
    assert 'ltail="cluster_responding"' in dot
    assert '"thinking" -> "thinking" [label="after 1200 ms do play_cue", style="dashed"]' in \
        d.to_dot(MACHINES["thinking"])


def test_cli_writes_a_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagram", "--format", "md"]) == 0
    assert capsys.readouterr().out == d.to_markdown(DEFAULT_TABLE)
