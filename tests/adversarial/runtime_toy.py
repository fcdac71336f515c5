"""A torch-free plugin trainer for the runtime tests: each trial does what ``CONFIG_TOY_DO`` says.

``TOY`` is the text of an inner run's ``conftest.py``.  Its accuracy is a known function of the
swept quality (``10 x CONFIG_TOY_Q + epoch``), so the schedulers' decisions are known too, and its
actions plant one fault per trial: a hard death (``kill9``, ``exit0``), a hang, a bad return value,
a NaN at a rung, a slow import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

TOY = r"""
import importlib
import math
import os
import signal
import sys
import time

import pytest
from pytest_sweep.matrix import Symbol


@pytest.hookimpl
def pytest_sweep_declare_symbols():
    return [
        Symbol("CONFIG_TOY_Q", "int", 1, "Quality: the accuracy is 10 x Q + epoch"),
        Symbol("CONFIG_TOY_DO", "str", "ok", "What the trial does (see runtime_toy.py)"),
    ]


def _spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


class ToyTrainer:
    def run(self, trial, ctx):
        do = trial["CONFIG_TOY_DO"]
        action, _, arg = do.partition(":")
        epochs = trial.get("CONFIG_NUM_EPOCHS") or 2
        if action == "kill9":
            os.kill(os.getpid(), signal.SIGKILL)
        if action == "exit":
            os._exit(int(arg or 0))
        if action == "sysexit":
            sys.exit(int(arg or 0))
        if action == "sleep":
            time.sleep(float(arg))
        if action == "spin":
            _spin(float(arg))
        if action == "import":
            importlib.import_module(arg)
        if action == "none":
            return None
        if action == "empty":
            return {}
        if action == "list":
            return [("test_acc", 1.0)]
        acc = 0.0
        history = []
        epoch = 0
        for epoch in range(1, epochs + 1):
            acc = 10.0 * trial["CONFIG_TOY_Q"] + epoch
            metrics = {"epoch": epoch, "test_acc": acc}
            if action == "nan_epoch" and epoch == int(arg or 1):
                metrics["test_acc"] = float("nan")
            if action == "inf_epoch" and epoch == int(arg or 1):
                metrics["test_acc"] = float("inf")
            if action == "str_epoch":
                metrics["test_acc"] = "high"
            history.append(metrics)
            if ctx.epoch_ended(metrics):
                break
        out = {"test_acc": acc, "epochs_run": epoch}
        if action == "history":
            out["history"] = {"str": "abc", "none": None, "ints": [1, 2], "dict": {"a": 1},
                              "keys": [{1: 2}], "obj": [{"loss": object()}]}[arg]
        if action == "object":
            out[arg or "test_acc"] = object()
        if action == "set":
            out["device"] = {1, 2}
        if action == "bigint":
            out["training_time"] = 10**400
        if action == "nometric":
            del out["test_acc"]
        return out


@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    return ToyTrainer()
"""


def write_toy(pytester: pytest.Pytester, grid: str, *, extra_conftest: str = "", name: str = "sweep.rc") -> Path:
    """The toy trainer as the inner run's ``conftest.py``, an empty ini (rootdir there) and ``grid``."""
    pytester.makeconftest(TOY + extra_conftest)
    pytester.makeini("[pytest]\n")
    path = pytester.path / name
    path.write_text(grid, encoding="utf-8")
    return path


def only_sweep(root: Path) -> Path:
    found = sorted(p for p in root.glob("sweep_*") if p.is_dir())
    assert len(found) == 1, found
    return found[0]


def summary(folder: Path) -> list[dict[str, Any]]:
    data = json.loads((folder / "sweep_summary.json").read_text(encoding="utf-8"))
    assert isinstance(data, list)
    return data


def by_name(folder: Path) -> dict[str, dict[str, Any]]:
    return {str(r["config_file"]): r for r in summary(folder)}
