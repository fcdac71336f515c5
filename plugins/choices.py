"""What a trial trains, resolved once from its config, without importing torch.

Kconfig-style selection (``CONFIG_MODEL_SELECT_RESNET18=y``, as the reference's configs write
it) and plain strings (``CONFIG_MODEL="resnet18"``) resolve to one name; a contradiction is a
reason to skip the trial rather than a silent choice.  Collection (validation, descriptions,
the runtime estimate) and the trainer read the same :class:`Choices`, so both always agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from pytest_sweep.matrix import Symbol, Trial
from pytest_sweep.trainers.names import (
    DATASETS,
    DEFAULT_BATCH,
    DEFAULT_DATASET,
    DEFAULT_OPTIMIZER,
    MODELS,
    OPTIMIZERS,
    TRAIN_SIZES,
)


@dataclass(frozen=True)
class Choices:
    """The resolved names and sizes of one trial.

    :ivar problems: ``(symbol, reason)`` for each selection that cannot be resolved (the trial
        is skipped with the reason; each plugin reports the symbols it declares).
    :ivar steps_per_epoch: ``None`` for a dataset whose size is unknown before loading.
    """

    model: str
    dataset: str
    optimizer: str
    pruning: str
    batch_size: int
    learning_rate: float
    steps_per_epoch: int | None
    problems: tuple[tuple[str, str], ...] = ()

    def problems_of(self, *symbols: str) -> list[str]:
        """The reasons for these selection symbols, in order."""
        return [reason for symbol, reason in self.problems if symbol in symbols]


_CHOICES = pytest.StashKey[Choices]()


def select_symbols(prefix: str, names: tuple[str, ...], what: str) -> list[Symbol]:
    """``PREFIX_SELECT_<NAME>`` booleans, one per name."""
    return [
        Symbol(f"{prefix}_SELECT_{n.upper()}", "bool", False, f'Select {n} as the {what} (same as {prefix}="{n}")')
        for n in names
    ]


def resolve(trial: Trial, prefix: str, names: tuple[str, ...]) -> tuple[str | None, str | None]:
    """``(name, None)`` or ``(None, reason)``; the name is None when nothing chose one."""
    values = trial.values
    chosen = [n for n in names if values.get(f"{prefix}_SELECT_{n.upper()}")]
    explicit = trial.raw.get(prefix)
    if len(chosen) > 1:
        return None, f"{' and '.join(f'{prefix}_SELECT_{n.upper()}' for n in chosen)} are both y; select one"
    if chosen and explicit is not None and explicit != chosen[0]:
        return None, f'{prefix}_SELECT_{chosen[0].upper()}=y contradicts {prefix}="{explicit}"'
    if chosen:
        return chosen[0], None
    value = values.get(prefix)
    return (str(value) if value is not None else None), None


def choices(trial: Trial) -> Choices:
    """The trial's :class:`Choices`, resolved on first use and kept in ``trial.stash``."""
    found = trial.stash.get(_CHOICES, None)
    if found is None:
        found = trial.stash[_CHOICES] = _resolve_all(trial)
    return found


def _resolve_all(trial: Trial) -> Choices:
    problems: list[tuple[str, str]] = []
    model, why = resolve(trial, "CONFIG_MODEL", MODELS)
    if why:
        problems.append(("CONFIG_MODEL", why))
    model = model or "resnet18"
    dataset, why = resolve(trial, "CONFIG_DATASET", DATASETS)
    if why:
        problems.append(("CONFIG_DATASET", why))
    dataset = dataset or DEFAULT_DATASET[model]
    optimizer, why = resolve(trial, "CONFIG_OPTIMIZER", OPTIMIZERS)
    if why:
        problems.append(("CONFIG_OPTIMIZER", why))
    optimizer = optimizer or DEFAULT_OPTIMIZER
    method = trial.get("CONFIG_PRUNING_METHOD")
    pruning = str(method) if method is not None else ("state" if optimizer == "adamwprune" else "none")
    value = trial.get("CONFIG_BATCH_SIZE")
    batch = int(value) if value is not None else DEFAULT_BATCH[model]
    lr = trial.get("CONFIG_LEARNING_RATE")
    learning_rate = float(lr) if lr is not None else (0.1 if optimizer == "sgd" else 1e-3)
    size = TRAIN_SIZES.get(dataset)
    steps = math.ceil(size / batch) if size is not None else None
    return Choices(model, dataset, optimizer, pruning, batch, learning_rate, steps, tuple(problems))
