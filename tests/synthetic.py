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


#: A plugin trainer with a known landscape and seed noise (no torch): ``test_acc`` is
#: ``80 + CONFIG_LS_A + CONFIG_LS_B + CONFIG_LS_C`` plus Gaussian noise of sd ``CONFIG_LS_NOISE``
#: drawn from the trial's seed and values (the same trial gives the same number); ``CONFIG_LS_Z``
#: has no effect at all.  ``LS_SKIP=1`` in the environment makes every trial a skip (a plugin's
#: reason), ``LS_FAIL=1`` a failure: what a broken change does to a sweep.
LANDSCAPE = """\
import os
import random

import pytest
from pytest_sweep.matrix import Symbol, TrialFailed


@pytest.hookimpl
def pytest_sweep_declare_symbols():
    return [
        Symbol("CONFIG_LS_A", "float", 0.0, "Adds itself to test_acc"),
        Symbol("CONFIG_LS_B", "float", 0.0, "Adds itself to test_acc"),
        Symbol("CONFIG_LS_C", "float", 0.0, "Adds itself to test_acc"),
        Symbol("CONFIG_LS_Z", "float", 0.0, "No effect"),
        Symbol("CONFIG_LS_NOISE", "float", 0.0, "Seed noise: sd of test_acc in pp", low=0),
    ]


@pytest.hookimpl
def pytest_sweep_describe_trial(trial):
    return "landscape"


@pytest.hookimpl
def pytest_sweep_validate_trial(trial):
    return "skipped on purpose (LS_SKIP)" if os.environ.get("LS_SKIP") else None


class Landscape:
    def run(self, trial, ctx):
        if os.environ.get("LS_FAIL"):
            raise TrialFailed("failed on purpose (LS_FAIL)")
        keys = ("CONFIG_LS_A", "CONFIG_LS_B", "CONFIG_LS_C", "CONFIG_LS_Z")
        rng = random.Random(repr((trial.seed, *(trial[k] for k in keys))))
        acc = 80.0 + trial["CONFIG_LS_A"] + trial["CONFIG_LS_B"] + trial["CONFIG_LS_C"]
        acc += rng.gauss(0.0, trial["CONFIG_LS_NOISE"])
        return {"test_acc": acc, "best_acc": acc, "training_time": 0.01, "epochs_run": 1}


@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    return Landscape()
"""
