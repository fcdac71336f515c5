"""Built-in pruning methods: none, magnitude, movement and state (AdamWPrune).

Declares the pruning symbols, skips impossible combinations at collection (with the
reason on the skipped item) and builds the pruner through ``pytest_sweep_make_pruner``
(``trylast``).  torch is imported only when a trial runs.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_sweep.matrix import Symbol, Trial
from pytest_sweep.plugins.choices import choices
from pytest_sweep.trainers.names import PRUNING_METHODS, RAMPS


@pytest.hookimpl
def pytest_sweep_declare_symbols() -> list[Symbol]:
    return [
        Symbol(
            "CONFIG_PRUNING_METHOD",
            "str",
            None,
            "Pruning method (default: state with AdamWPrune, none otherwise)",
            choices=PRUNING_METHODS,
        ),
        Symbol(
            "CONFIG_TARGET_SPARSITY",
            "float",
            0.7,
            "Fraction of Conv/Linear weights pruned at the ramp end",
            low=0.0,
            high=0.99,
        ),
        Symbol(
            "CONFIG_PRUNING_WARMUP",
            "int",
            100,
            "Optimizer steps before pruning starts (390 steps = 1 CIFAR-10 epoch at batch 128)",
            low=0,
        ),
        Symbol("CONFIG_PRUNING_FREQUENCY", "int", 50, "Update the masks every N steps", low=1),
        Symbol(
            "CONFIG_PRUNING_RAMP_END_EPOCH",
            "int",
            None,
            "Epoch at which the sparsity reaches its target (default: 75 ResNet-18, 8 LeNet-5)",
            low=1,
        ),
        Symbol(
            "CONFIG_PRUNING_RAMP_END_STEP",
            "int",
            None,
            "Optimizer step at which the sparsity reaches its target, instead of CONFIG_PRUNING_RAMP_END_EPOCH "
            "(the reference's ResNet-18 magnitude/movement pruners end at step 3000)",
            low=1,
        ),
        Symbol(
            "CONFIG_PRUNING_RAMP",
            "str",
            None,
            "Shape of the sparsity ramp (default: cubic for magnitude and state, linear for movement, as at the "
            "reference's HEAD; its published commit ramped magnitude and state linearly)",
            choices=RAMPS,
        ),
    ]


@pytest.hookimpl
def pytest_sweep_validate_trial(trial: Trial) -> str | None:
    c = choices(trial)
    method, opt = c.pruning, c.optimizer
    if method == "state" and opt != "adamwprune":
        return (
            f"state pruning needs the AdamWPrune optimizer (this trial uses {opt}); "
            "set CONFIG_OPTIMIZER_SELECT_ADAMWPRUNE=y or another CONFIG_PRUNING_METHOD"
        )
    if opt == "adamwprune" and method in ("magnitude", "movement"):
        return f'AdamWPrune prunes by its own state, not by {method}; use CONFIG_PRUNING_METHOD="state" or "none"'
    if method == "none":
        return None
    steps = c.steps_per_epoch
    if steps is None:
        return None
    total = steps * c.epochs
    warmup = int(trial["CONFIG_PRUNING_WARMUP"])
    if warmup >= total:
        return (
            f"pruning warmup ({warmup} steps) is not shorter than the whole run ({total} steps = "
            f"{c.epochs} epochs x {steps}); nothing would be pruned"
        )
    return None


@pytest.hookimpl(trylast=True)
def pytest_sweep_make_pruner(trial: Trial, model: Any, optimizer: Any, steps_per_epoch: int) -> Any:
    from pytest_sweep.trainers.pruning import build_pruner

    c = choices(trial)
    ramp_end_step = trial.get("CONFIG_PRUNING_RAMP_END_STEP")
    end = ramp_end_step if ramp_end_step is not None else steps_per_epoch * c.ramp_end_epoch
    total = steps_per_epoch * c.epochs
    if c.pruning != "none" and end > total:
        where = f"step {end}" if ramp_end_step is not None else f"epoch {c.ramp_end_epoch}"
        trial.log(
            f"note: the pruning ramp ends at {where} but the run has {c.epochs} epochs ({total} steps); "
            "the final sparsity will stay below the target"
        )
    return build_pruner(
        c.pruning,
        model,
        optimizer,
        target_sparsity=trial["CONFIG_TARGET_SPARSITY"],
        warmup=trial["CONFIG_PRUNING_WARMUP"],
        frequency=trial["CONFIG_PRUNING_FREQUENCY"],
        ramp_end_epoch=c.ramp_end_epoch,
        steps_per_epoch=steps_per_epoch,
        ramp=trial.get("CONFIG_PRUNING_RAMP"),
        ramp_end_step=ramp_end_step,
    )
