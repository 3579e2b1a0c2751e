"""``from bargein import ...``: every public name resolves, lazily, and ``import bargein`` is
light."""

from __future__ import annotations

import subprocess
import sys

import bargein


def test_all_lists_exactly_the_lazy_exports_and_each_resolves() -> None:
    assert set(bargein.__all__) == {"__version__", *bargein._EXPORTS}
    for name in bargein._EXPORTS:
        assert getattr(bargein, name) is not None, name
    assert sorted(dir(bargein)) == sorted(bargein.__all__)


def test_importing_bargein_loads_none_of_its_layers() -> None:
    code = "import sys, bargein; print(sorted(m for m in sys.modules if m.startswith('bargein')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "['bargein']"
