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
    ADVANCED,
    DATASETS,
    DEFAULT_BATCH,
    DEFAULT_DATASET,
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    DEFAULT_OPTIMIZER,
    DEFAULT_RAMP_END_EPOCH,
    DEFAULT_WEIGHT_DECAY,
    MODELS,
    OPTIMIZERS,
    REFERENCE_ADAM_LR_SCALE,
    TRAIN_SIZES,
)


@dataclass(frozen=True)
class Choices:
    """The resolved names, sizes and training defaults of one trial.

    Where the config is silent, the defaults are what the reference's code trains for the
    model (its ResNet-18 and LeNet-5 scripts differ; see ``trainers/names.py``).

    :ivar problems: ``(symbol, reason)`` for each selection that cannot be resolved (the trial
        is skipped with the reason; each plugin reports the symbols it declares).
    :ivar steps_per_epoch: ``None`` for a dataset whose size is unknown before loading.
    :ivar learning_rate: what the optimizer starts with (``CONFIG_REFERENCE_LR`` applied).
    :ivar weight_decay: of SGD, Adam and the AdamW family (AdamWPrune has its own symbol).
    :ivar lr_schedule: ``cosine`` or ``constant``; ``eta_min`` the cosine floor.
    """

    model: str
    dataset: str
    optimizer: str
    pruning: str
    batch_size: int
    learning_rate: float
    steps_per_epoch: int | None
    problems: tuple[tuple[str, str], ...] = ()
    epochs: int = 100
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"
    eta_min: float = 0.0
    ramp_end_epoch: int = 75

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
    # a model only the reference has (resnet50, gpt2: the trial is skipped) gets ResNet-18's defaults
    family = model if model in MODELS else "resnet18"
    dataset, why = resolve(trial, "CONFIG_DATASET", DATASETS)
    if why:
        problems.append(("CONFIG_DATASET", why))
    dataset = dataset or DEFAULT_DATASET[family]
    optimizer, why = resolve(trial, "CONFIG_OPTIMIZER", OPTIMIZERS)
    if why:
        problems.append(("CONFIG_OPTIMIZER", why))
    optimizer = optimizer or DEFAULT_OPTIMIZER
    method = trial.get("CONFIG_PRUNING_METHOD")
    pruning = str(method) if method is not None else ("state" if optimizer == "adamwprune" else "none")
    value = trial.get("CONFIG_BATCH_SIZE")
    batch = int(value) if value is not None else DEFAULT_BATCH[family]
    size = TRAIN_SIZES.get(dataset)
    steps = math.ceil(size / batch) if size is not None else None
    return Choices(
        model,
        dataset,
        optimizer,
        pruning,
        batch,
        _learning_rate(trial, family, optimizer),
        steps,
        tuple(problems),
        epochs=int(trial.get("CONFIG_NUM_EPOCHS", DEFAULT_EPOCHS[family])),
        weight_decay=_weight_decay(trial, family, optimizer),
        lr_schedule=_schedule(trial, family, optimizer),
        eta_min=_eta_min(trial, family, optimizer),
        ramp_end_epoch=int(trial.get("CONFIG_PRUNING_RAMP_END_EPOCH", DEFAULT_RAMP_END_EPOCH[family])),
    )


def _advanced(trial: Trial, optimizer: str) -> bool:
    """AdamWAdv, AdamWSpam, or AdamWPrune on one of them (AMSGrad, gradient clipping, a cosine floor)."""
    base = trial.get("CONFIG_ADAMWPRUNE_BASE_OPTIMIZER") if optimizer == "adamwprune" else None
    return optimizer in ADVANCED or base in ADVANCED


def _learning_rate(trial: Trial, family: str, optimizer: str) -> float:
    family_lr = DEFAULT_LR[family]["sgd" if optimizer == "sgd" else "adam"]
    lr = trial.get("CONFIG_LEARNING_RATE")
    if lr is None:
        return family_lr
    if trial.get("CONFIG_REFERENCE_LR") and family == "resnet18" and optimizer != "sgd":
        return float(lr) * REFERENCE_ADAM_LR_SCALE  # the reference's ResNet-18 script: lr x 0.001
    return float(lr)


def _weight_decay(trial: Trial, family: str, optimizer: str) -> float:
    wd = trial.get("CONFIG_WEIGHT_DECAY")
    if wd is not None:
        return float(wd)
    return DEFAULT_WEIGHT_DECAY[family]["sgd" if optimizer == "sgd" else "adam" if optimizer == "adam" else "adamw"]


def _schedule(trial: Trial, family: str, optimizer: str) -> str:
    """ResNet-18: cosine for every optimizer; LeNet-5: cosine only for the advanced ones, else constant."""
    chosen = trial.get("CONFIG_LR_SCHEDULE")
    if chosen is not None:
        return str(chosen)
    return "cosine" if family == "resnet18" or _advanced(trial, optimizer) else "constant"


def _eta_min(trial: Trial, family: str, optimizer: str) -> float:
    """ResNet-18: cosine to 0; LeNet-5: to 1e-6 (its advanced optimizers' own schedule)."""
    chosen = trial.get("CONFIG_LR_ETA_MIN")
    if chosen is not None:
        return float(chosen)
    return 1e-6 if family == "lenet5" and _advanced(trial, optimizer) else 0.0
