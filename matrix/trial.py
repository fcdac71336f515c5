"""The trial: one combination of a sweep, as a trainer sees it."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import pytest

_SAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_SAFE_LABEL = re.compile(r"[^A-Za-z0-9._+=-]+")


class TrialFailed(Exception):
    """A trial failed for a reason worth one line (NaN loss, impossible settings...).

    The item fails with this message alone, without a traceback.
    """


@lru_cache(maxsize=4096)
def short_key(key: str) -> str:
    return key[7:] if key.startswith("CONFIG_") else key


@lru_cache(maxsize=65536)
def _safe(value: str) -> str:
    return _SAFE.sub("_", value)


def trial_id(name: str, swept: dict[str, str], label: str = "") -> str:
    """``config_017[ADAMWPRUNE_BETA1=0.87-ADAMWPRUNE_WEIGHT_DECAY=0.05]``; with a run's label
    (a rewritten config's run list) ``config_003[resnet18_sgd_movement_70]``."""
    if label:
        return f"{name}[{_SAFE_LABEL.sub('_', label)}]"
    if not swept:
        return name
    parts = "-".join(f"{short_key(k)}={_safe(v)}" for k, v in swept.items())
    return f"{name}[{parts}]"


def folder_name(name: str, swept: dict[str, str], limit: int = 96, label: str = "") -> str:
    """``config_017_adamwprune_beta1-0.87_adamwprune_weight_decay-0.05`` (bounded length);
    with a run's label ``config_003_resnet18_sgd_movement_70``."""
    if label:
        desc = _safe(label.replace("=", "-"))
    elif not swept:
        return name
    else:
        desc = "_".join(f"{short_key(k).lower()}-{_safe(v)}" for k, v in swept.items())
    full = f"{name}_{desc}"
    if len(full) <= limit:
        return full
    digest = hashlib.sha1(desc.encode()).hexdigest()[:8]
    return f"{full[: limit - 9]}-{digest}"


@dataclass
class TrialContext:
    """What the process running a trial hands its trainer: the trial's folder, log and epoch hook.

    :ivar dir: the trial's output folder (``config.txt``, ``training_metrics.json``, ``output.log``).
    :ivar log: write one line to the trial's ``output.log`` (and the terminal in a serial run).
    :ivar epoch_ended: report an epoch's metrics; returns True when a plugin asks to stop early.
    """

    dir: Path
    log: Callable[[str], None]
    epoch_ended: Callable[[dict[str, Any]], bool]


#: The running trial's context, in ``trial.stash`` while it trains (factory hooks reach it there).
CONTEXT_KEY = pytest.StashKey[TrialContext]()


@dataclass(frozen=True)
class Stop:
    """Why a plugin stopped a trial early: its record gets status ``stopped`` with these.

    A plugin whose ``pytest_sweep_epoch_ended`` returns True puts one in ``trial.stash[STOP_KEY]``
    first; without it, a trial stopped early still passes as before.

    :ivar rung: the epoch at which it stopped.
    :ivar reason: one line, e.g. "stopped at epoch 3: 41.2% below the rung's top-1/3 cutoff 86.0%".
    """

    rung: int
    reason: str


#: Where a scheduler leaves its :class:`Stop` for the runner.
STOP_KEY = pytest.StashKey[Stop]()

#: Why the process that ran a trial cannot safely go on (an import cut short by the timeout), set
#: before ``pytest_sweep_trial_finished``: a clean-up must then leave the trial's objects alone
#: (a ``gc.collect()`` can crash on a half-initialised extension module).
UNSAFE_KEY = pytest.StashKey[str]()


@dataclass
class Trial:
    """What a trainer gets: typed values for every declared symbol, plus context.

    :ivar name: ``config_NNN``.
    :ivar values: every declared symbol, typed; defaults filled in where the config is silent.
    :ivar raw: the config's own ``KEY -> value`` strings (what ``config.txt`` holds).
    :ivar swept: the swept keys of this combination with their raw values.
    :ivar seed: the seed it trains with: ``CONFIG_SEED`` itself, the same for every trial unless the
        seed is swept (common random numbers: trials differ only in their swept values).
    :ivar worker: ``main`` or the worker that runs it (``gw0``).
    :ivar overrides: values forced from the command line (e.g. ``--sweep-epochs``).
    :ivar group: the source's name when one run sweeps several range files (keeps folders apart).
    :ivar label: the run's name when its config lists runs (e.g. a reference defconfig's
        ``resnet18_sgd_movement_70``); the id and folder show it instead of the swept values.
    :ivar stash: per-trial data of plugins (``pytest.Stash``), e.g. resolved choices.
    """

    name: str
    index: int
    source: str
    values: dict[str, Any]
    raw: dict[str, str]
    swept: dict[str, str]
    seed: int = 0
    worker: str = "main"
    group: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    stash: pytest.Stash = field(default_factory=pytest.Stash, repr=False, compare=False)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        value = self.values.get(key)
        return default if value is None else value

    @cached_property
    def id(self) -> str:
        return trial_id(self.name, self.swept, self.label)

    @cached_property
    def folder(self) -> str:
        """The trial's folder name; prefixed by its file's name when a run has several sources."""
        base = folder_name(self.name, self.swept, label=self.label)
        return f"{self.group}-{base}" if self.group else base

    @property
    def context(self) -> TrialContext | None:
        """The running trial's :class:`TrialContext` (None before it runs)."""
        return self.stash.get(CONTEXT_KEY, None)

    def log(self, message: str) -> None:
        """One line to the running trial's ``output.log`` (for factory hooks; trainers use the context)."""
        ctx = self.context
        if ctx is not None:
            ctx.log(message)
