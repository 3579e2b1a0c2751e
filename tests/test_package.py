"""The package as a user gets it: the sdist carries what the README points at and can run its
own tests; the wheel carries the library, its data and its types, and no tests."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

from tests.support import REPO

pytestmark = pytest.mark.e2e

BUILD = "import sys, setuptools.build_meta as b; getattr(b, sys.argv[1])(sys.argv[2])"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[set[str], set[str]]:
    """The files of the sdist (without its top folder) and of the wheel."""
    src, dist = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    for name in tracked:  # a clean tree: no venv, no caches, no build leftovers
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    for hook in ("build_sdist", "build_wheel"):
        done = subprocess.run([sys.executable, "-c", BUILD, hook, str(dist)], cwd=src,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    (sdist_path,), (wheel_path,) = dist.glob("*.tar.gz"), dist.glob("*.whl")
    with tarfile.open(sdist_path) as sdist:
        in_sdist = {name.partition("/")[2] for name in sdist.getnames()}
    with zipfile.ZipFile(wheel_path) as wheel:
        in_wheel = set(wheel.namelist())
    return in_sdist, in_wheel


def test_every_path_the_readme_names_is_in_the_sdist(built: tuple[set[str], set[str]]) -> None:
    in_sdist, _ = built
    named = set(re.findall(r"`((?:bargein|examples|diagrams|scripts|tests|bench|requirements)"
                           r"/[\w./-]*)`", (REPO / "README.md").read_text()))
    assert named, "the README names no paths: this test would check nothing"
    for path in named:
        path = path.rstrip("/")
        assert path in in_sdist or any(n.startswith(path + "/") for n in in_sdist), path


def test_the_sdist_can_run_its_tests(built: tuple[set[str], set[str]]) -> None:
    in_sdist, _ = built
    tracked_tests = subprocess.run(["git", "ls-files", "tests"], cwd=REPO, capture_output=True,
                                   text=True, check=True).stdout.split()
    assert set(tracked_tests) <= in_sdist
    for needed in ("Makefile", "requirements/dev.txt", "scripts/start-pulse.sh",
                   "scripts/install-system-deps.sh", "LICENSE"):
        assert needed in in_sdist


def test_the_wheel_is_the_library_with_its_data_and_no_tests(
    built: tuple[set[str], set[str]],
) -> None:
    _, in_wheel = built
    assert not any(n.startswith(("tests/", "examples/", "bench/")) for n in in_wheel)
    for needed in ("bargein/py.typed", "bargein/data/demo_user.wav", "bargein/pytest_plugin.py"):
        assert needed in in_wheel
    assert any(n.endswith("licenses/LICENSE") for n in in_wheel)
