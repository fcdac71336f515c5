"""The smoke modes of issue 21's benchmarks run end to end (their figures are in docs/benchmarks.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _bench(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_checkpoints_smoke() -> None:
    out = _bench("bench/checkpoints.py", "--smoke")
    assert "| lenet5 | 21,430 |" in out
    (row,) = [line for line in out.splitlines() if line.startswith("| with | ")]
    kills, runs, trained = row.split(" | ")[1:4]
    assert int(runs) == int(kills) + 1 and trained.endswith(" of 3")  # each kill resumed, the sweep completed


@pytest.mark.slow
def test_asha_smoke() -> None:
    out = _bench("bench/asha.py", "--smoke")
    rows = [line for line in out.splitlines() if line.startswith("| ") and " | 1 | " in line]
    assert [row.split(" | ")[0] for row in rows] == ["| none", "| asha grid", "| asha promotion grid"]
    assert "| none | 1 | 12 | 100% |" in out
