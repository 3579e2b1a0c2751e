"""``check_table``: one clear line per problem, and what it verified on a good table."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bargein.cli import main
from bargein.states import DEFAULT_TABLE, State, StateTable, Transition, after
from bargein.states.check import check_table
from bargein.testing import check_machine
from examples.machines import MACHINES
from tests.support import REPO

STAY_ON_BARGE_IN = [Transition(t, "x", None) for t in ("speech_started",
                                                          "local_speech_started", "interrupt")]


@pytest.mark.parametrize("name", ["default", *MACHINES])
def test_every_shipped_machine_passes(name: str) -> None:
    report = check_table(MACHINES.get(name, DEFAULT_TABLE))
    assert report.ok, report.problems
    assert any("can return to listening" in line for line in report.verified)


@pytest.mark.parametrize(
    ("states", "transitions", "triggers", "problem"),
    [
        ([State("limbo")], [Transition("speech_stopped", "listening", "limbo")], [],
         "state 'limbo' cannot return to listening without a disconnect or a stop"),
        ([State("orphan")], [Transition("response_done", "orphan", "listening")], [],
         "state 'orphan' cannot be reached from 'idle'"),
        ([State("a"), State("b")],
         [Transition("speech_stopped", "listening", "a", conditions=("playing",)),
          Transition("speech_stopped", "listening", "b", conditions=("generating",)),
          Transition("response_done", "a", "listening"),
          Transition("response_done", "b", "listening")], [],
         "edges 'speech_stopped' out of 'listening' -> a [playing] and -> b [generating] can "
         "both fire (when generating, playing)"),
        ([], [Transition("speech_stopped", "responding", "listening", unless=("playing",)),
              Transition("speech_stopped", "responding", "interrupted",
                         unless=("playing",))], [],
         "edge 'speech_stopped' out of 'responding' -> interrupted [not playing] can never fire"),
        ([State("x", interruptible=True)],
         [Transition("speech_stopped", "listening", "x"),
          Transition("response_done", "x", "listening"), *STAY_ON_BARGE_IN], [],
         "interruptible state 'x' has no way into interrupted"),
        ([State("wait")], [Transition("speech_stopped", "listening", "wait"),
                           after(500, "wait", "listening")], [],
         "state 'wait' can be left only by its timed edge"),
        ([], [after(500, "idle", None)], [], "the initial state is never entered"),
        ([], [], ["never_sent"], "trigger 'never_sent' is declared but no edge uses it"),
    ],
)
def test_each_problem_is_one_line_naming_what_is_wrong(
    states: list[State], transitions: list[Transition], triggers: list[str], problem: str
) -> None:
    report = check_table(DEFAULT_TABLE.extend(states, transitions, triggers=triggers))
    assert not report.ok and report.verified == ()
    assert any(problem in p for p in report.problems), report.problems
    assert all("\n" not in line and line.startswith("problem: ") for line in report.lines())


def test_a_guarded_edge_before_its_fallback_is_not_a_problem() -> None:
    table = DEFAULT_TABLE.extend([], [
        Transition("speech_stopped", "listening", "responding", conditions=("generating",)),
        Transition("speech_stopped", "listening", "responding",
                   conditions=("playing",), unless=("generating",)),
    ])
    assert check_table(table).ok


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(
        "from bargein.states import DEFAULT_TABLE, State, Transition\n" + body)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])


def test_cli_rejects_a_state_that_cannot_get_back_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _module(tmp_path, monkeypatch, "stuck_machine",
            "TABLE = DEFAULT_TABLE.extend([State('limbo')],"
            " [Transition('speech_stopped', 'listening', 'limbo')])\n")
    assert main(["check", "--machine", "stuck_machine:TABLE"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "problem: state 'limbo' cannot return to listening without a disconnect or a stop" \
        in out
    assert any(line.startswith("problem: stuck in 'limbo'") for line in out), \
        "the generated tests find it too, with the events that lead there"
    assert all(line.startswith("problem: ") for line in out)


def test_cli_lists_every_reason_a_table_cannot_be_built(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _module(tmp_path, monkeypatch, "broken_machine",
            "TABLE = DEFAULT_TABLE.extend([State('x', parent='ghost')],"
            " [Transition('go', 'x', 'nowhere', conditions=('sunny',))])\n")
    assert main(["check", "--machine", "broken_machine:TABLE"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and all(line.startswith("problem: ") for line in out)
    assert any("unknown trigger 'go'" in line for line in out)


def test_cli_accepts_the_default_machine_and_says_what_it_verified(
    capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "ok: every state can return to listening without a disconnect or a stop" in out
    assert "ok: generated tests: all 73 edges fired and all 5 states reached" in out


def test_the_readmes_extension_example_runs_and_passes_its_checks() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Extending the machine"):]
    code = section[section.index("```python\n") + 10:section.index("```\n", 10)]
    scope: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), scope)
    machine = scope["MACHINE"]
    assert isinstance(machine, StateTable) and check_table(machine).ok
    check_machine(machine)


@pytest.mark.parametrize("name", list(MACHINES))
def test_cli_accepts_every_example_machine(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--machine", f"examples.machines.{name}:{name.upper()}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out and all(line.startswith("ok: ") for line in out)
