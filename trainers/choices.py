"""What a trial trains, resolved from its config without importing torch.

Collection uses these (to validate schedules and describe trials); the trainer uses
the same functions, so both always agree.
"""
from __future__ import annotations

import math

from matrix import Trial
from plugins.selection import resolve

MODELS = ("resnet18", "lenet5")
DATASETS = ("cifar10", "mnist", "digits")
#: Training-set sizes, to know the steps per epoch before any data is loaded.
TRAIN_SIZES = {"cifar10": 50_000, "mnist": 60_000, "digits": 1_437}
DEFAULT_DATASET = {"resnet18": "cifar10", "lenet5": "mnist"}
DEFAULT_BATCH = {"resnet18": 128, "lenet5": 512}


def model_name(trial: Trial) -> str:
    name, _ = resolve(trial, "CONFIG_MODEL", MODELS)
    return name or "resnet18"


def dataset_name(trial: Trial) -> str:
    name, _ = resolve(trial, "CONFIG_DATASET", DATASETS)
    return name or DEFAULT_DATASET[model_name(trial)]


def batch_size(trial: Trial) -> int:
    value = trial.get("CONFIG_BATCH_SIZE")
    return int(value) if value is not None else DEFAULT_BATCH[model_name(trial)]


def steps_per_epoch(trial: Trial) -> int | None:
    """Optimizer steps per epoch (None for a dataset this module does not know)."""
    size = TRAIN_SIZES.get(dataset_name(trial))
    if size is None:
        return None
    return math.ceil(size / batch_size(trial))


def selection_problems(trial: Trial) -> list[str]:
    return [r for _, r in (resolve(trial, "CONFIG_MODEL", MODELS), resolve(trial, "CONFIG_DATASET", DATASETS)) if r]
