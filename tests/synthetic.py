"""Helpers of the reporters' tests: synthetic sweep records (grids whose answer is known exactly), PNG sizes."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_sweep.matrix.records import new_record


def grid_records(
    axes: dict[str, list[str]],
    acc: Callable[[dict[str, str]], float],
    fixed: dict[str, str] | None = None,
    failed: set[int] | None = None,
    source: str = "/w/grid.rc",
) -> list[dict[str, Any]]:
    """One passed record per combination of ``axes`` (keys sorted, the last fastest), as the grid names them.

    :param acc: ``test_acc`` from the combination's swept values.
    :param failed: 1-based indexes of trials that failed instead (no accuracy).
    """
    keys = sorted(axes)
    out = []
    for i, combo in enumerate(itertools.product(*(axes[k] for k in keys)), 1):
        swept = dict(zip(keys, combo, strict=True))
        raw = dict(sorted({**(fixed or {}), **swept}.items()))
        rec = new_record(
            f"config_{i:03d}",
            raw,
            swept,
            status="passed",
            test_acc=acc(swept),
            final_sparsity=0.7,
            training_time=10.0 + i,
            source=source,
            trial_dir=f"config_{i:03d}",
        )
        if failed and i in failed:
            rec.update(status="failed", test_acc=None, final_sparsity=None, error="loss became nan")
        out.append(rec)
    return out


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert data[-12:-4] == b"\x00\x00\x00\x00IEND"  # a complete file
    return width, height
