"""``bench/estimate.py --smoke``: the estimate benchmark runs end to end (one repeat, one trial)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_smoke_mode_prints_its_block() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "estimate.py"), "--smoke"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "### Collection with and without the timed estimate (smoke.rc)" in proc.stdout
    assert "| without --sweep-estimate |" in proc.stdout and "| with --sweep-estimate |" in proc.stdout
    # the plain collection never timed anything; the other one did
    assert "sweep: estimated runtime not known yet" in proc.stderr
    assert "timed: a few optimizer steps on its device" in proc.stderr
