"""The live checks and defaults of the built-in plugins, on trials built as collection builds them.

These are the checks a sweep runs (``pytest_sweep_validate_trial``) and the names and sizes the
trainer uses (:func:`pytest_sweep.plugins.choices.choices`); no torch is imported.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_sweep.matrix import SymbolTable, Trial
from pytest_sweep.plugins import optimizers, pruning, trainer
from pytest_sweep.plugins.choices import choices


def _trial(**raw: Any) -> Trial:
    table = SymbolTable()
    for plugin in (optimizers, pruning, trainer):
        for sym in plugin.pytest_sweep_declare_symbols():
            table.add(sym)
    values = table.defaults()
    values.update({k: table[k].coerce(str(v)) for k, v in raw.items()})
    return Trial(
        name="config_001", index=1, source="test", values=values, raw={k: str(v) for k, v in raw.items()}, swept={}
    )


def _reasons(trial: Trial) -> list[str]:
    found = [p.pytest_sweep_validate_trial(trial) for p in (optimizers, pruning, trainer)]
    return [r for r in found if r]


def test_defaults_are_the_reference_trial() -> None:
    c = choices(_trial())
    assert (c.model, c.dataset, c.optimizer, c.pruning, c.batch_size) == (
        "resnet18",
        "cifar10",
        "adamwprune",
        "state",
        128,
    )
    assert c.learning_rate == 1e-3 and c.steps_per_epoch == 391 and c.problems == ()
    lenet = choices(_trial(CONFIG_MODEL="lenet5"))
    assert (lenet.dataset, lenet.batch_size, lenet.steps_per_epoch) == ("mnist", 512, 118)


def test_learning_rate_defaults() -> None:
    assert choices(_trial(CONFIG_OPTIMIZER="sgd")).learning_rate == 0.1
    assert choices(_trial(CONFIG_OPTIMIZER="adamw")).learning_rate == 1e-3
    assert choices(_trial(CONFIG_OPTIMIZER="adamw", CONFIG_LEARNING_RATE="0.004")).learning_rate == 0.004


def test_choices_are_resolved_once_per_trial() -> None:
    trial = _trial()
    assert choices(trial) is choices(trial)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"CONFIG_OPTIMIZER": "adamw", "CONFIG_PRUNING_METHOD": "state"}, "state pruning needs the AdamWPrune"),
        ({"CONFIG_PRUNING_METHOD": "magnitude"}, 'use CONFIG_PRUNING_METHOD="state" or "none"'),
        ({"CONFIG_OPTIMIZER_SELECT_SGD": "y", "CONFIG_OPTIMIZER_SELECT_ADAM": "y"}, "are both y; select one"),
        ({"CONFIG_MODEL_SELECT_LENET5": "y", "CONFIG_MODEL": "resnet18"}, "contradicts CONFIG_MODEL"),
        (
            {
                "CONFIG_OPTIMIZER": "sgd",
                "CONFIG_PRUNING_METHOD": "movement",
                "CONFIG_DATASET": "digits",
                "CONFIG_NUM_EPOCHS": "1",
                "CONFIG_PRUNING_WARMUP": "1000",
            },
            "pruning warmup (1000 steps) is not shorter",
        ),
    ],
    ids=[
        "state-without-adamwprune",
        "adamwprune-with-magnitude",
        "two-selects",
        "select-contradicts",
        "warmup-too-long",
    ],
)
def test_impossible_combinations_are_skipped_with_the_reason(raw: dict[str, str], reason: str) -> None:
    reasons = _reasons(_trial(**raw))
    assert len(reasons) == 1 and reason in reasons[0], reasons


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"CONFIG_OPTIMIZER": "sgd", "CONFIG_PRUNING_METHOD": "movement"},
        {"CONFIG_PRUNING_METHOD": "none"},
        {"CONFIG_OPTIMIZER_SELECT_ADAMWPRUNE": "y", "CONFIG_MODEL_SELECT_LENET5": "y"},
    ],
)
def test_possible_combinations_pass(raw: dict[str, str]) -> None:
    assert _reasons(_trial(**raw)) == []
