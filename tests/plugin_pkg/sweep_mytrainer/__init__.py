"""An example third-party pytest-sweep plugin (entry point ``mytrainer`` in group ``pytest11``).

It uses only pytest-sweep's public hooks, as any separate package would:

* declares ``CONFIG_MYTRAINER_DEPTH`` (``pytest_sweep_declare_symbols``);
* trains any trial whose config sets that symbol with a pure-Python perceptron
  (``pytest_sweep_make_trainer``; the built-in trainer is ``trylast``, so this one wins),
  one pass over the training data per unit of depth;
* names what trained the trial (``pytest_sweep_describe_trial``);
* writes its own report, ``mytrainer_report.json``, when the sweep ends (``pytest_sweep_finished``).
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_sweep.matrix import Symbol, Trial, TrialContext
from pytest_sweep.matrix.records import SweepResult

DEPTH = "CONFIG_MYTRAINER_DEPTH"
REPORT = "mytrainer_report.json"
Sample = tuple[tuple[float, float], int]


def make_data(n: int, seed: int) -> list[Sample]:
    """Two overlapping Gaussian blobs in 2-D, labels 0 and 1 (deterministic for a seed)."""
    rng = random.Random(seed)
    data: list[Sample] = []
    for i in range(n):
        label = i % 2
        centre = 1.0 if label else -1.0
        data.append(((rng.gauss(centre, 1.2), rng.gauss(centre * 0.5, 1.2)), label))
    rng.shuffle(data)
    return data


def _accuracy(w: list[float], data: list[Sample]) -> float:
    right = sum(1 for (x1, x2), y in data if (w[0] + w[1] * x1 + w[2] * x2 > 0) == bool(y))
    return 100.0 * right / len(data)


def fit(depth: int) -> Iterator[tuple[float, float]]:
    """Train a perceptron for ``depth`` passes; yield (train_acc, test_acc) in % after each pass."""
    train, test = make_data(300, seed=1), make_data(300, seed=2)
    w = [0.0, 0.0, 0.0]
    for _ in range(depth):
        for (x1, x2), y in train:
            predicted = 1 if w[0] + w[1] * x1 + w[2] * x2 > 0 else 0
            step = 0.1 * (y - predicted)
            w[0] += step
            w[1] += step * x1
            w[2] += step * x2
        yield _accuracy(w, train), _accuracy(w, test)


class PerceptronTrainer:
    """What ``pytest_sweep_make_trainer`` returns: an object with ``run(trial, ctx) -> metrics``."""

    def run(self, trial: Trial, ctx: TrialContext) -> dict[str, Any]:
        depth = int(trial[DEPTH])
        started = time.perf_counter()
        accs: list[float] = []
        for epoch, (train_acc, test_acc) in enumerate(fit(depth), 1):
            accs.append(test_acc)
            ctx.log(f"mytrainer pass {epoch}/{depth}  train_acc {train_acc:.2f}%  test_acc {test_acc:.2f}%")
            metrics = {"epoch": epoch, "train_acc": train_acc, "test_acc": test_acc, "sparsity": 0.0}
            if ctx.epoch_ended(metrics):
                break
        return {
            "test_acc": accs[-1],
            "best_acc": max(accs),
            "final_sparsity": 0.0,
            "training_time": time.perf_counter() - started,
            "epochs_run": len(accs),
            "device": "python",
        }


@pytest.hookimpl
def pytest_sweep_declare_symbols() -> list[Symbol]:
    return [Symbol(DEPTH, "int", 1, "Training passes of the mytrainer perceptron", low=1, high=50)]


@pytest.hookimpl
def pytest_sweep_make_trainer(trial: Trial, config: pytest.Config) -> PerceptronTrainer | None:
    return PerceptronTrainer() if DEPTH in trial.raw else None


@pytest.hookimpl
def pytest_sweep_describe_trial(trial: Trial) -> str | None:
    return f"mytrainer/perceptron d{trial[DEPTH]}" if DEPTH in trial.raw else None


@pytest.hookimpl
def pytest_sweep_finished(config: pytest.Config, sweep: SweepResult) -> None:
    best = sweep.best
    report = {
        "best": best["config_file"] if best else None,
        "torch_imported": "torch" in sys.modules,
        "records": [
            {
                "config_file": r["config_file"],
                "status": r["status"],
                "depth": r["config"].get(DEPTH),
                "test_acc": r["test_acc"],
                "trainer": r["trainer"],
            }
            for r in sweep.records
        ],
    }
    (sweep.dir / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
