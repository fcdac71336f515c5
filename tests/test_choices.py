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
    assert c.learning_rate == 1e-4 and c.steps_per_epoch == 391 and c.problems == ()
    assert (c.epochs, c.ramp_end_epoch, c.lr_schedule, c.eta_min) == (100, 75, "cosine", 0.0)
    lenet = choices(_trial(CONFIG_MODEL="lenet5"))
    assert (lenet.dataset, lenet.batch_size, lenet.steps_per_epoch) == ("mnist", 512, 118)
    assert (lenet.epochs, lenet.ramp_end_epoch) == (10, 8)


ADAM_FAMILY = ("adam", "adamw", "adamwadv", "adamwspam", "adamwprune")


@pytest.mark.parametrize(
    ("model", "optimizer", "lr", "wd", "schedule", "eta_min"),
    [
        # ResNet-18: the reference's script trains the Adam family at 0.001 x 0.1, cosine to 0 for all
        ("resnet18", "sgd", 0.1, 5e-4, "cosine", 0.0),
        ("resnet18", "adam", 1e-4, 0.0, "cosine", 0.0),
        ("resnet18", "adamw", 1e-4, 5e-4, "cosine", 0.0),
        ("resnet18", "adamwadv", 1e-4, 5e-4, "cosine", 0.0),
        ("resnet18", "adamwspam", 1e-4, 5e-4, "cosine", 0.0),
        ("resnet18", "adamwprune", 1e-4, 5e-4, "cosine", 0.0),
        # LeNet-5: 1e-3 for every optimizer, 1e-4 decay, cosine to 1e-6 only for AdamWAdv/AdamWSpam
        ("lenet5", "sgd", 1e-3, 1e-4, "constant", 0.0),
        ("lenet5", "adam", 1e-3, 0.0, "constant", 0.0),
        ("lenet5", "adamw", 1e-3, 1e-4, "constant", 0.0),
        ("lenet5", "adamwadv", 1e-3, 1e-4, "cosine", 1e-6),
        ("lenet5", "adamwspam", 1e-3, 1e-4, "cosine", 1e-6),
        ("lenet5", "adamwprune", 1e-3, 1e-4, "constant", 0.0),
    ],
)
def test_training_defaults_per_model_and_optimizer(
    model: str, optimizer: str, lr: float, wd: float, schedule: str, eta_min: float
) -> None:
    c = choices(_trial(CONFIG_MODEL=model, CONFIG_OPTIMIZER=optimizer))
    assert (c.learning_rate, c.weight_decay, c.lr_schedule, c.eta_min) == (lr, wd, schedule, eta_min)


def test_adamwprune_on_an_advanced_base_takes_its_schedule() -> None:
    c = choices(
        _trial(CONFIG_MODEL="lenet5", CONFIG_OPTIMIZER="adamwprune", CONFIG_ADAMWPRUNE_BASE_OPTIMIZER="adamwspam")
    )
    assert (c.lr_schedule, c.eta_min) == ("cosine", 1e-6)


def test_configured_values_win_over_the_defaults() -> None:
    c = choices(
        _trial(
            CONFIG_MODEL="lenet5",
            CONFIG_OPTIMIZER="adamw",
            CONFIG_LEARNING_RATE="0.004",
            CONFIG_WEIGHT_DECAY="0.05",
            CONFIG_LR_SCHEDULE="cosine",
            CONFIG_LR_ETA_MIN="1e-5",
            CONFIG_NUM_EPOCHS="3",
            CONFIG_PRUNING_RAMP_END_EPOCH="2",
        )
    )
    assert (c.learning_rate, c.weight_decay, c.lr_schedule, c.eta_min, c.epochs, c.ramp_end_epoch) == (
        0.004,
        0.05,
        "cosine",
        1e-5,
        3,
        2,
    )


@pytest.mark.parametrize("optimizer", ["sgd", *ADAM_FAMILY])
@pytest.mark.parametrize("model", ["resnet18", "lenet5"])
def test_reference_lr_scales_the_adam_family_on_resnet18_only(model: str, optimizer: str) -> None:
    """The reference's ResNet-18 script trains the Adam family at 0.001 x the configured rate."""
    raw = {"CONFIG_MODEL": model, "CONFIG_OPTIMIZER": optimizer, "CONFIG_LEARNING_RATE": "0.1"}
    plain = choices(_trial(**raw)).learning_rate
    reference = choices(_trial(**raw, CONFIG_REFERENCE_LR="y")).learning_rate
    assert plain == 0.1
    scaled = model == "resnet18" and optimizer != "sgd"
    assert reference == pytest.approx(1e-4 if scaled else 0.1)
    # without a configured rate the default stands (it already is the reference's effective one)
    assert choices(_trial(CONFIG_MODEL=model, CONFIG_OPTIMIZER=optimizer, CONFIG_REFERENCE_LR="y")).learning_rate == (
        choices(_trial(CONFIG_MODEL=model, CONFIG_OPTIMIZER=optimizer)).learning_rate
    )


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
