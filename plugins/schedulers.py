"""Early stopping across the sweep: ``--sweep-scheduler=asha|median`` (plugin ``sweep.schedulers``).

The core builds the scheduler through ``pytest_sweep_make_scheduler`` on every process of an
active sweep (:mod:`pytest_sweep.matrix.scheduler_hook`, which also asks it after every epoch);
this plugin only answers the hook (``trylast``) for ``none``, ``asha`` and ``median``.  The
rules are in :mod:`pytest_sweep.matrix.scheduling`, the shared store in :mod:`pytest_sweep.matrix.rungs`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.contracts import Scheduler
from pytest_sweep.matrix.files import RUNGS_SQLITE
from pytest_sweep.matrix.ray.state import RayRungStore, worker_state  # no Ray import
from pytest_sweep.matrix.rungs import PromotionStore, SqliteRungStore
from pytest_sweep.matrix.scheduling import AshaScheduler, MedianScheduler, PromotionAsha, stage_ends
from pytest_sweep.matrix.trial import Trial
from pytest_sweep.plugins.choices import choices
from pytest_sweep.plugins.options import SCHEDULER_OPTIONS, SchedulerOptions, scheduler_options

BUILTIN = ("none", "asha", "median")
#: the options, defined (light, at start-up) in plugins/options.py
OPTIONS = SCHEDULER_OPTIONS


def pytest_configure(config: pytest.Config) -> None:
    scheduler_options(config)  # every process: a bad value fails before collection


@pytest.hookimpl(trylast=True)
def pytest_sweep_make_scheduler(config: pytest.Config, sweep_dir: Path) -> Scheduler | None:
    s = scheduler_options(config)
    if s.name == "none":
        return None
    if s.name not in BUILTIN:
        raise pytest.UsageError(
            f"--sweep-scheduler={s.name}: no installed plugin provides this scheduler; use none, asha or median"
        )
    held = worker_state(config)
    if held is not None:  # a Ray actor's session: the store lives with the controller (ray/state.py)
        return _scheduler(s, RayRungStore(held))
    try:  # in the sweep folder, never through a link (a resumed folder's store may point elsewhere)
        store = SqliteRungStore(storage.sweep_path(sweep_dir, RUNGS_SQLITE))
        problem = store.problem()
    except storage.UnsafePath as exc:
        store, problem = SqliteRungStore(sweep_dir / RUNGS_SQLITE), exc.strerror or str(exc)
    if problem is not None:
        raise pytest.UsageError(
            f"--sweep-scheduler: {store.path} is not a usable rung store ({problem}); remove it (the "
            f"scheduler's earlier decisions go with it) or run without --sweep-scheduler={s.name}"
        )
    return _scheduler(s, store)


def _scheduler(s: SchedulerOptions, store: PromotionStore) -> Scheduler:
    if s.promotion:
        return PromotionAsha(store, s.grace, s.eta, s.objective)
    if s.name == "asha":
        return AshaScheduler(store, s.grace, s.eta, s.objective)
    return MedianScheduler(store, s.grace, s.startup, s.objective)


@pytest.hookimpl(trylast=True)
def pytest_sweep_trial_stages(trial: Trial, config: pytest.Config) -> list[int] | None:
    """``--sweep-asha-mode=promotion``: a stage per rung (the trial's epochs from ``CONFIG_NUM_EPOCHS``,
    else the built-in trainer's default for its model)."""
    s = scheduler_options(config)
    if not s.promotion:
        return None
    epochs = trial.get("CONFIG_NUM_EPOCHS")
    total = int(epochs) if epochs is not None else choices(trial).epochs
    return stage_ends(s.grace, s.eta, total)
