"""The command line's own options, in process: no sockets, no devices."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import bargein
from bargein.cli import main


def test_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"bargein {bargein.__version__}"


def test_machine_is_found_in_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "mymachine.py").write_text(
        "from bargein.states import DEFAULT_TABLE, State\n"
        "WITH_NAP = DEFAULT_TABLE.extend(states=[State('napping')], name='nap')\n"
    )
    # a fresh process, as a user runs it: the console script puts its own folder on the
    # path, not the directory it was started in
    done = subprocess.run(
        [str(Path(sys.executable).parent / "bargein"), "diagram",
         "--machine", "mymachine:WITH_NAP"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "napping" in done.stdout


def test_a_machine_that_is_not_there_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["diagram", "--machine", "nosuchmodule:T"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bargein: cannot import 'nosuchmodule'") and err.count("\n") == 1
