"""``bench/plugin_startup.py --smoke``: the start-up benchmark of issue 17 runs end to end.

One round of each measurement (a one-test project collected with and without pytest-sweep,
hermetic and with autoloading); the figures themselves live in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def test_the_smoke_mode_measures_both_ways() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "plugin_startup.py"), "--smoke"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for row in ("hermetic with", "hermetic without", "autoload with", "autoload without"):
        assert re.search(rf"^\| {row} \| \d+ \| \d+ \| \d+ \|", out, re.M), out
    assert re.search(r"`hermetic` \(1 rounds\), with / without, medians: wall \*\*\d+\.\d{3}x\*\*", out), out
    assert "entry points: sweep (1)" in out
