"""A trainer plugin for pytest-sweep: softmax regression on scikit-learn's digits, in NumPy.

The tutorial docs/tutorials/own-trainer.md builds this file step by step.  Next to
``softmax.rc``, ``pytest --range-config=softmax.rc`` sweeps it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from pytest_sweep.matrix import Symbol, Trial, TrialContext

LR = "CONFIG_SOFTMAX_LR"
L2 = "CONFIG_SOFTMAX_L2"
EPOCHS = "CONFIG_SOFTMAX_EPOCHS"


@pytest.hookimpl
def pytest_sweep_declare_symbols() -> list[Symbol]:
    """The keys a range config may set for this trainer, with their types, defaults and help."""
    return [
        Symbol(LR, "float", 0.1, "Learning rate of the softmax regression", low=0),
        Symbol(L2, "float", 0.0, "L2 penalty on the weights", low=0),
        Symbol(EPOCHS, "int", 10, "Passes over the training set", low=1, high=1000),
    ]


def load(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 1,797 8x8 digits scaled to 0..1, split 80/20 by ``seed``."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(0.8 * len(y))
    return x[order[:cut]] / 16.0, y[order[:cut]], x[order[cut:]] / 16.0, y[order[cut:]]


def one_epoch(w: np.ndarray, x: np.ndarray, y: np.ndarray, trial: Trial, rng: np.random.Generator) -> None:
    """One pass of minibatch gradient descent (batches of 64) on the cross-entropy, in place."""
    for batch in np.array_split(rng.permutation(len(y)), len(y) // 64):
        logits = x[batch] @ w
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(batch)), y[batch]] -= 1.0  # the gradient of the cross-entropy
        w -= trial[LR] * (x[batch].T @ p / len(batch) + trial[L2] * w)


class SoftmaxTrainer:
    """What ``pytest_sweep_make_trainer`` returns: ``run(trial, ctx)`` trains and returns metrics."""

    def run(self, trial: Trial, ctx: TrialContext) -> dict[str, Any]:
        started = time.perf_counter()
        x, y, x_test, y_test = load(trial.seed)
        rng = np.random.default_rng(trial.seed)
        w = np.zeros((x.shape[1], 10))
        accs: list[float] = []
        for epoch in range(1, trial[EPOCHS] + 1):
            one_epoch(w, x, y, trial, rng)
            test_acc = 100.0 * float(np.mean((x_test @ w).argmax(axis=1) == y_test))
            accs.append(test_acc)
            ctx.log(f"epoch {epoch}: test_acc {test_acc:.2f}%")  # to the trial's output.log
            if ctx.epoch_ended({"epoch": epoch, "test_acc": test_acc}):  # early stopping asked
                break
        return {
            "test_acc": accs[-1],
            "best_acc": max(accs),
            "training_time": time.perf_counter() - started,
            "epochs_run": len(accs),
        }


# --- the hooks that hand the trainer to pytest-sweep ---


@pytest.hookimpl
def pytest_sweep_make_trainer(trial: Trial, config: pytest.Config) -> SoftmaxTrainer | None:
    """Train the trials whose config sets our learning rate; leave the others (None)."""
    return SoftmaxTrainer() if LR in trial.raw else None


@pytest.hookimpl
def pytest_sweep_describe_trial(trial: Trial) -> str | None:
    """A short name for what trains the trial: the runtime estimate groups trials by it."""
    return f"softmax/digits e{trial[EPOCHS]}" if LR in trial.raw else None


@pytest.hookimpl
def pytest_sweep_estimate_trial(trial: Trial, config: pytest.Config) -> float | None:
    """Seconds one trial will take, for the estimate printed before the sweep: one epoch, timed."""
    if LR not in trial.raw:
        return None
    x, y, _, _ = load(trial.seed)
    started = time.perf_counter()
    one_epoch(np.zeros((x.shape[1], 10)), x, y, trial, np.random.default_rng(trial.seed))
    return (time.perf_counter() - started) * trial[EPOCHS]
