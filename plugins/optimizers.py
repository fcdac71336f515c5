"""Built-in optimizers: SGD, Adam, AdamW, AdamWAdv, AdamWSpam and AdamWPrune.

Declares every optimizer symbol, and builds the optimizer through
``pytest_sweep_make_optimizer`` (``trylast``: a plugin of yours wins).  torch is imported
only when a trial runs.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_sweep.matrix import Symbol, Trial
from pytest_sweep.plugins.choices import choices, select_symbols
from pytest_sweep.trainers.names import BASES, DEFAULT_OPTIMIZER, OPTIMIZERS, REFERENCE_ONLY_VARIANTS, VARIANTS


@pytest.hookimpl
def pytest_sweep_declare_symbols() -> list[Symbol]:
    return [
        Symbol("CONFIG_OPTIMIZER", "str", DEFAULT_OPTIMIZER, "Optimizer", choices=OPTIMIZERS),
        *select_symbols("CONFIG_OPTIMIZER", OPTIMIZERS, "optimizer"),
        Symbol(
            "CONFIG_LEARNING_RATE",
            "float",
            None,
            "Learning rate (default: ResNet-18 0.1 for SGD, 1e-4 for the Adam family; LeNet-5 1e-3)",
            low=0.0,
        ),
        Symbol(
            "CONFIG_REFERENCE_LR",
            "bool",
            False,
            "Read CONFIG_LEARNING_RATE as the reference's ResNet-18 script does: x0.001 for the Adam family "
            "(set for the reference's defconfigs, where 0.1 means 1e-4)",
        ),
        Symbol(
            "CONFIG_WEIGHT_DECAY",
            "float",
            None,
            "Weight decay of SGD/Adam/AdamW/AdamWAdv/AdamWSpam, on Conv/Linear weights only (default: Adam 0; "
            "the others 5e-4 on ResNet-18, 1e-4 on LeNet-5)",
            low=0.0,
        ),
        Symbol("CONFIG_SGD_MOMENTUM", "float", 0.9, "SGD momentum", low=0.0, high=1.0),
        Symbol("CONFIG_ADAM_BETA1", "float", 0.9, "beta1 of Adam/AdamW/AdamWAdv/AdamWSpam", low=0.0, high=1.0),
        Symbol("CONFIG_ADAM_BETA2", "float", 0.999, "beta2 of Adam/AdamW/AdamWAdv/AdamWSpam", low=0.0, high=1.0),
        Symbol(
            "CONFIG_SPAM_THETA",
            "float",
            50.0,
            "AdamWSpam: clip the update at sqrt(theta*v) (with CONFIG_SPAM_ENABLE_CLIP)",
            low=0.0,
        ),
        Symbol("CONFIG_SPAM_ENABLE_CLIP", "bool", False, "AdamWSpam: clip spikes at sqrt(theta*v)"),
        Symbol("CONFIG_SPAM_INTERVAL", "int", 0, "AdamWSpam: reset the moments every N steps (0: never)", low=0),
        Symbol("CONFIG_ADAMWPRUNE_BETA1", "float", 0.9, "AdamWPrune beta1", low=0.0, high=1.0),
        Symbol("CONFIG_ADAMWPRUNE_BETA2", "float", 0.999, "AdamWPrune beta2", low=0.0, high=1.0),
        Symbol(
            "CONFIG_ADAMWPRUNE_WEIGHT_DECAY", "float", 0.01, "AdamWPrune decoupled weight decay (weights only)", low=0.0
        ),
        Symbol(
            "CONFIG_ADAMWPRUNE_AMSGRAD",
            "bool",
            None,
            "AdamWPrune AMSGrad (default: on for the adamwadv/adamwspam bases)",
        ),
        Symbol("CONFIG_ADAMWPRUNE_BASE_OPTIMIZER", "str", "adamw", "AdamWPrune's update rule", choices=BASES),
        Symbol(
            "CONFIG_ADAMWPRUNE_VARIANT",
            "str",
            "bitter0",
            "AdamWPrune's pruning score (the reference's other variants are skipped)",
            choices=VARIANTS + REFERENCE_ONLY_VARIANTS,
        ),
    ]


@pytest.hookimpl
def pytest_sweep_validate_trial(trial: Trial) -> str | None:
    c = choices(trial)
    problems = c.problems_of("CONFIG_OPTIMIZER")
    variant = trial.get("CONFIG_ADAMWPRUNE_VARIANT")
    if c.optimizer == "adamwprune" and variant in REFERENCE_ONLY_VARIANTS:
        problems.append(f"AdamWPrune variant {variant} is the reference's; pytest-sweep has {', '.join(VARIANTS)}")
    return "; ".join(problems) or None


def settings(trial: Trial, steps_per_epoch: int) -> dict[str, Any]:
    """The keyword arguments of ``trainers.optimizers.build_optimizer`` for this trial."""
    c = choices(trial)
    name = c.optimizer
    kwargs: dict[str, Any] = {"lr": c.learning_rate}
    if name == "adamwprune":
        kwargs.update(
            weight_decay=trial["CONFIG_ADAMWPRUNE_WEIGHT_DECAY"],
            betas=(trial["CONFIG_ADAMWPRUNE_BETA1"], trial["CONFIG_ADAMWPRUNE_BETA2"]),
            amsgrad=trial.get("CONFIG_ADAMWPRUNE_AMSGRAD"),
        )
    else:
        kwargs.update(
            weight_decay=c.weight_decay,
            betas=(trial["CONFIG_ADAM_BETA1"], trial["CONFIG_ADAM_BETA2"]),
            momentum=trial["CONFIG_SGD_MOMENTUM"],
        )
    kwargs.update(
        spam_theta=trial["CONFIG_SPAM_THETA"],
        spam_interval=trial["CONFIG_SPAM_INTERVAL"],
        spam_clip=trial["CONFIG_SPAM_ENABLE_CLIP"],
    )
    return kwargs


@pytest.hookimpl(trylast=True)
def pytest_sweep_make_optimizer(trial: Trial, model: Any, steps_per_epoch: int) -> Any:
    from pytest_sweep.trainers.adamwprune import AdamWPruneSettings
    from pytest_sweep.trainers.optimizers import build_optimizer

    name, prune, kwargs = optimizer_spec(trial, steps_per_epoch)
    return build_optimizer(name, model, prune=None if prune is None else AdamWPruneSettings(**prune), **kwargs)


def optimizer_spec(trial: Trial, steps_per_epoch: int) -> tuple[str, dict[str, Any] | None, dict[str, Any]]:
    """The optimizer's name, AdamWPrune's settings (None for the others) and the keyword
    arguments of ``trainers.optimizers.build_optimizer``: plain data, so another process (the
    runtime estimate) can build the same optimizer."""
    c = choices(trial)
    prune = None
    if c.optimizer == "adamwprune":
        prune = {
            "steps_per_epoch": steps_per_epoch,
            "target_sparsity": trial["CONFIG_TARGET_SPARSITY"],
            "warmup": trial["CONFIG_PRUNING_WARMUP"],
            "frequency": trial["CONFIG_PRUNING_FREQUENCY"],
            "ramp_end_epoch": c.ramp_end_epoch,
            "variant": trial["CONFIG_ADAMWPRUNE_VARIANT"],
            "base": trial["CONFIG_ADAMWPRUNE_BASE_OPTIMIZER"],
            "enabled": c.pruning == "state",
            "ramp": trial.get("CONFIG_PRUNING_RAMP", "cubic"),
            "ramp_end_at_step": trial.get("CONFIG_PRUNING_RAMP_END_STEP"),
        }
    return c.optimizer, prune, settings(trial, steps_per_epoch)
