"""The trial: one combination of a sweep, as a trainer sees it."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Protocol

import pytest

_SAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_SAFE_LABEL = re.compile(r"[^A-Za-z0-9._+=-]+")


class TrialFailed(Exception):
    """A trial failed for a reason worth one line (NaN loss, impossible settings...).

    The item fails with this message alone, without a traceback.
    """


class TrialPreempted(BaseException):
    """The run was asked to stop (SIGTERM: a preemption): the trial ends here, not as a failure.

    Raised by ``ctx.save_checkpoint`` right after it wrote the checkpoint (and, for a trainer that
    keeps no checkpoints, by the SIGTERM handler itself).  A ``BaseException``, like
    ``KeyboardInterrupt``, so that a trainer's ``except Exception`` does not swallow it.  The
    record says ``not_run`` with this message; ``--sweep-resume`` continues the trial.
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


class Checkpoints(Protocol):
    """What a :class:`TrialContext` delegates its checkpoint calls to (``pytest_sweep.matrix.checkpoints``)."""

    def due(self, final: bool = False) -> bool: ...

    def save(self, state: Any, force: bool = False) -> bool: ...

    def load(self) -> Any | None: ...

    def discard(self, reason: str) -> None: ...


@dataclass
class TrialContext:
    """What the process running a trial hands its trainer: the trial's folder, log, epoch hook and checkpoints.

    :ivar dir: the trial's output folder (``config.txt``, ``training_metrics.json``, ``output.log``).
    :ivar log: write one line to the trial's ``output.log`` (and the terminal in a serial run).
    :ivar epoch_ended: report an epoch's metrics; returns True when a plugin asks to stop early.
    :ivar checkpoints: where the checkpoint methods below go (None: a context without checkpoints,
        where saving writes nothing and loading finds nothing).

    A trainer that can continue an interrupted trial calls :meth:`load_checkpoint` once, before it
    trains, and :meth:`save_checkpoint` after each ``epoch_ended`` (and, if its epochs are long, at
    step boundaries when :meth:`checkpoint_due` says so).  A trainer that calls neither behaves as
    before: resumed or re-queued, it trains from scratch.
    """

    dir: Path
    log: Callable[[str], None]
    epoch_ended: Callable[[dict[str, Any]], bool]
    checkpoints: Checkpoints | None = None

    def load_checkpoint(self) -> Any | None:
        """The state of this trial's newest usable checkpoint, or None to train from scratch.

        Call it once, before training: calling it also tells the run that this trainer checkpoints,
        so a SIGTERM lets it save at its next step boundary instead of interrupting it.  The state
        is what :meth:`save_checkpoint` was given (torch tensors come back on the CPU); the epochs
        reported before it are already in the trial's history, so go on with the epoch after it.
        A damaged checkpoint, or one of another trial, config or seed, is never returned: it is
        removed with one line in the log, and the next older one is tried.
        """
        return None if self.checkpoints is None else self.checkpoints.load()

    def save_checkpoint(self, state: Any, *, force: bool = False) -> bool:
        """Save ``state`` as this trial's checkpoint when one is due; True when it was written.

        Due: ``--sweep-checkpoint-every`` epochs (reported through ``epoch_ended``) or seconds have
        passed since the last one, or the run asks the trial to pause (a scheduler) or to stop
        (SIGTERM; then, once written, :class:`TrialPreempted` ends the trial).  ``force`` writes
        anyway.  ``state``: dicts, lists, tuples, numbers, strings, bytes, None and torch
        tensors; anything else fails the trial with a one-line reason.  The file is written
        atomically; only the newest ``--sweep-checkpoint-keep`` stay.
        """
        return False if self.checkpoints is None else self.checkpoints.save(state, force)

    def checkpoint_due(self, *, final: bool = False) -> bool:
        """Whether :meth:`save_checkpoint` would write now: call it at step boundaries to build the
        state only when needed.  ``final``: the trial's last epoch, due only with
        ``--sweep-keep-checkpoints`` (a completed trial's checkpoints are removed otherwise)."""
        return False if self.checkpoints is None else self.checkpoints.due(final)

    def discard_checkpoint(self, reason: str) -> None:
        """The state :meth:`load_checkpoint` returned does not fit (another model shape...): the
        trial trains from scratch; the history goes back to empty and one line says why."""
        if self.checkpoints is not None:
            self.checkpoints.discard(reason)


#: The running trial's context, in ``trial.stash`` while it trains (factory hooks reach it there).
CONTEXT_KEY = pytest.StashKey[TrialContext]()


@dataclass(frozen=True)
class Stop:
    """Why a plugin stopped a trial early: its record gets status ``stopped`` with these.

    A plugin whose ``pytest_sweep_epoch_ended`` returns True puts one in ``trial.stash[STOP_KEY]``
    first; without it, a trial stopped early still passes as before.

    :ivar rung: the epoch at which it stopped.
    :ivar reason: one line, e.g. "stopped at epoch 3: 41.2% below the rung's top-1/3 cutoff 86.0%".
    :ivar pause: a pause, not a stop: the trainer checkpoints the trial there (``save_checkpoint``
        is due) and a later stage item may continue it (ASHA's promotion mode).
    """

    rung: int
    reason: str
    pause: bool = False


#: Where a scheduler leaves its :class:`Stop` for the runner.
STOP_KEY = pytest.StashKey[Stop]()

#: Why the process that ran a trial cannot safely go on (an import cut short by the timeout), set
#: before ``pytest_sweep_trial_finished``: a clean-up must then leave the trial's objects alone
#: (a ``gc.collect()`` can crash on a half-initialised extension module).
UNSAFE_KEY = pytest.StashKey[str]()


@dataclass(frozen=True)
class Stage:
    """A slice of a trial's epochs that runs as an item of its own (ASHA's promotion mode).

    The first stage trains the trial up to its first rung and pauses it there (checkpointed); each
    later stage continues it from its checkpoint, if the trial is promoted at the rung the stage
    starts from, up to the next rung (the last stage: to the end).

    :ivar index: 0 for the first stage.
    :ivar until: the epoch the stage trains the trial up to.
    :ivar after: the rung (epoch) it continues from, where the promotion is decided (None: the first stage).
    :ivar last: the stage that trains to the trial's last epoch.
    """

    index: int
    until: int
    after: int | None
    last: bool

    @property
    def label(self) -> str:
        """What the item's id adds: ``to_epoch9``."""
        return f"to_epoch{self.until}"


#: The stage a stage item runs, in ``trial.stash`` while it trains (the scheduler reads it).
STAGE_KEY = pytest.StashKey[Stage]()
#: A stage label at the end of an item id: ``config_001[LR=0.1-to_epoch9]`` or ``config_001[to_epoch9]``.
STAGE_ID = re.compile(r"(?:-|\[)to_epoch(\d+)\]$")


def stage_id(trial_id: str, stage: Stage) -> str:
    """A stage item's id: the trial's id with the stage's label last in the brackets."""
    if trial_id.endswith("]"):
        return f"{trial_id[:-1]}-{stage.label}]"
    return f"{trial_id}[{stage.label}]"


def unstaged_id(item_id: str) -> str:
    """The trial's id of a stage item's id (any other id unchanged)."""
    match = STAGE_ID.search(item_id)
    if match is None:
        return item_id
    return item_id[: match.start()] + ("]" if match.group(0).startswith("-") else "")


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
