"""A torch-free plugin trainer for the runtime tests: each trial does what ``CONFIG_TOY_DO`` says.

``TOY`` is the text of an inner run's ``conftest.py``.  Its accuracy is a known function of the
swept quality (``10 x CONFIG_TOY_Q + epoch``), so the schedulers' decisions are known too, and its
actions plant one fault per trial: a hard death (``kill9``, ``exit0``), a hang, a bad return value,
a NaN at a rung, a slow import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sweep_helpers import HERMETIC_ENV, PLUGIN_ARGS

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


class Stubborn(BaseException):
    pass


class BadStr(Exception):
    def __str__(self):
        raise RuntimeError("no words")


def _recurse(n):
    return _recurse(n + 1) + 1


def _exception(kind):
    from pytest_sweep.matrix import TrialFailed

    if kind == "recursion":
        _recurse(0)
    return {
        "sysexit0": SystemExit(0),
        "sysexit_str": SystemExit("bye"),
        "generatorexit": GeneratorExit(),
        "base": Stubborn("a BaseException of the trainer's own"),
        "memory": MemoryError(),
        "badstr": BadStr(),
        "huge": ValueError("x" * 1_000_000),
        "newlines": ValueError("\n\n\n"),
        "empty_trialfailed": TrialFailed(""),
        "unicode": ValueError("bad \u202e\u0000 text \udcff"),
        "oserror": OSError(28, "No space left on device"),
    }[kind]


def _returned(kind):
    import fractions
    import types

    import numpy

    def gen():
        yield 1

    return {
        "generator": gen(),
        "mappingproxy": types.MappingProxyType({"test_acc": 50.0}),
        "numpy": {"test_acc": numpy.float32(50.5), "epochs_run": numpy.int64(2), "best_acc": numpy.float64(51.0)},
        "numpy_history": {"test_acc": 50.0, "history": [{"epoch": numpy.int64(1), "loss": numpy.float32(0.5)}]},
        "fraction": {"test_acc": fractions.Fraction(101, 2)},
        "negative": {"test_acc": -5.0},
        "decimal": {"test_acc": __import__("decimal").Decimal("50.5")},
        "complex": {"test_acc": 1 + 2j},
        "str_acc": {"test_acc": "95.0"},
        "bool_acc": {"test_acc": True},
        "nan_best": {"test_acc": 50.0, "best_acc": float("nan")},
        "nested_history": {"test_acc": 50.0, "history": [{"epoch": 1, "per_class": [1.0, [2.0, {"a": None}]]}]},
        "long_history": {"test_acc": 50.0, "history": [{"epoch": i, "loss": 1.0 / i} for i in range(1, 5001)]},
        "int_key": {"test_acc": 50.0, 7: "seven"},
        "tuple_history": {"test_acc": 50.0, "history": ({"epoch": 1},)},
        "inf_epochs": {"test_acc": 50.0, "epochs_run": float("inf")},
        "str_time": {"test_acc": 50.0, "training_time": "fast"},
        "list_threads": {"test_acc": 50.0, "torch_threads": [1]},
        "int_device": {"test_acc": 50.0, "device": 0},
        "own_trainer": {"test_acc": 50.0, "trainer": "toy v2"},
        "none": None,
        "empty": {},
        "list": [("test_acc", 1.0)],
    }[kind]


def _damage(kind, folder):
    import shutil

    if kind == "rm_trial":
        shutil.rmtree(folder)
    elif kind == "file_trial":
        shutil.rmtree(folder)
        folder.write_text("not a folder")
    elif kind == "dir_metrics":
        (folder / "training_metrics.json").mkdir()
    elif kind == "rm_sweep":
        shutil.rmtree(folder.parent)
    elif kind == "file_sweep":
        shutil.rmtree(folder.parent)
        folder.parent.write_text("not a folder")


def _epoch_metrics(kind, epoch, acc):
    metric = {"none_metric": None, "str_metric": "high", "bool_metric": True, "huge_metric": 10**400,
              "nan_metric": float("nan"), "inf_metric": float("inf"), "neg_inf_metric": float("-inf"),
              "tiny_metric": 1e-320, "list_metric": [acc]}
    if kind in metric:
        return {"epoch": epoch, "test_acc": metric[kind]}
    return {
        "no_epoch": {"test_acc": acc},
        "float_epoch": {"epoch": float(epoch), "test_acc": acc},
        "bool_epoch": {"epoch": True, "test_acc": acc},
        "str_epoch": {"epoch": str(epoch), "test_acc": acc},
        "neg_epoch": {"epoch": -epoch, "test_acc": acc},
        "zero_epoch": {"epoch": 0, "test_acc": acc},
        "huge_epoch": {"epoch": 10**400, "test_acc": acc},
        "big_epoch": {"epoch": 2**63 + epoch, "test_acc": acc},
        "repeat_epoch": {"epoch": 1, "test_acc": acc},
        "missing_metric": {"epoch": epoch, "loss": 0.5},
        "not_dict": [epoch, acc],
        "int_keys": {"epoch": epoch, "test_acc": acc, 3: "three"},
    }[kind]


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
        if action == "raise":
            raise _exception(arg)
        if action == "return":
            return _returned(arg)
        if action == "folder":
            _damage(arg, ctx.dir)
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
            if action == "epochs":
                metrics = _epoch_metrics(arg, epoch, acc)
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


def run_sweep_process(cwd: Path, *args: str, timeout: float = 300.0) -> pytest.RunResult:
    """``python -m pytest`` with the sweep's plugins in ``cwd``, hermetic; output decoded leniently
    (a trainer's message may hold bytes that are not UTF-8, and pytest prints it raw)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    env.update(HERMETIC_ENV)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *PLUGIN_ARGS, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    out = proc.stdout.decode("utf-8", "replace").splitlines()
    err = proc.stderr.decode("utf-8", "replace").splitlines()
    return pytest.RunResult(proc.returncode, out, err, time.monotonic() - started)


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
