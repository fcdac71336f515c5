"""Early stopping across the sweep: ``--sweep-scheduler=asha|median`` (plugin ``sweep.schedulers``).

The core builds the scheduler through ``pytest_sweep_make_scheduler`` on every process of an
active sweep (:mod:`pytest_sweep.matrix.scheduler_hook`, which also asks it after every epoch);
this plugin only answers the hook (``trylast``) for ``none``, ``asha`` and ``median``.  The
rules are in :mod:`pytest_sweep.matrix.scheduling`, the shared store in :mod:`pytest_sweep.matrix.rungs`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.contracts import Scheduler
from pytest_sweep.matrix.files import RUNGS_SQLITE
from pytest_sweep.matrix.ray.state import RayRungStore, worker_state  # no Ray import
from pytest_sweep.matrix.rungs import PromotionStore, SqliteRungStore
from pytest_sweep.matrix.scheduling import AshaScheduler, MedianScheduler, Objective, PromotionAsha, stage_ends
from pytest_sweep.matrix.trial import Trial
from pytest_sweep.plugins.choices import choices
from pytest_sweep.plugins.options import SCHEDULER_OPTIONS, option_dest

BUILTIN = ("none", "asha", "median")
#: the options, defined (light, at start-up) in plugins/options.py
OPTIONS = SCHEDULER_OPTIONS


@dataclass(frozen=True)
class Settings:
    """The scheduler options, parsed (command line first, then the ini value)."""

    name: str
    grace: int
    eta: float
    objective: Objective
    startup: int
    asha_mode: str = "stopping"

    @property
    def promotion(self) -> bool:
        return self.name == "asha" and self.asha_mode == "promotion"


def settings(config: pytest.Config) -> Settings:
    """The options' values; a bad ini value is a usage error naming it."""
    values: list[Any] = []
    for flag, (parse, ini, _, _) in OPTIONS.items():
        value = config.getoption(option_dest(flag), None)
        if value is None:
            raw = str(config.getini(ini)).strip()
            try:
                value = parse(raw)
            except argparse.ArgumentTypeError as exc:
                why = str(exc).removeprefix(f"{raw!r}: ")
                raise pytest.UsageError(f"ini value {ini} = {raw!r}: {why}") from None
        values.append(value)
    found = Settings(*values)
    if found.asha_mode == "promotion" and found.name != "asha":
        raise pytest.UsageError(
            f"--sweep-asha-mode=promotion needs --sweep-scheduler=asha (the scheduler is {found.name}); "
            "add --sweep-scheduler=asha or drop the mode"
        )
    if found.promotion:
        from pytest_sweep.matrix import search_options

        search = search_options.settings(config).search
        if search != "grid":
            raise pytest.UsageError(
                f"--sweep-asha-mode=promotion works on a grid sweep (--sweep-search is {search}: a sampled "
                "trial's values are drawn when it starts, so it cannot be split into stages); "
                "use --sweep-asha-mode=stopping with a sampler"
            )
    return found


_SETTINGS = pytest.StashKey[Settings]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SETTINGS] = settings(config)  # every process: a bad value fails before collection


@pytest.hookimpl(trylast=True)
def pytest_sweep_make_scheduler(config: pytest.Config, sweep_dir: Path) -> Scheduler | None:
    s = config.stash[_SETTINGS] if _SETTINGS in config.stash else settings(config)
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


def _scheduler(s: Settings, store: PromotionStore) -> Scheduler:
    if s.promotion:
        return PromotionAsha(store, s.grace, s.eta, s.objective)
    if s.name == "asha":
        return AshaScheduler(store, s.grace, s.eta, s.objective)
    return MedianScheduler(store, s.grace, s.startup, s.objective)


@pytest.hookimpl(trylast=True)
def pytest_sweep_trial_stages(trial: Trial, config: pytest.Config) -> list[int] | None:
    """``--sweep-asha-mode=promotion``: a stage per rung (the trial's epochs from ``CONFIG_NUM_EPOCHS``,
    else the built-in trainer's default for its model)."""
    s = config.stash[_SETTINGS] if _SETTINGS in config.stash else settings(config)
    if not s.promotion:
        return None
    epochs = trial.get("CONFIG_NUM_EPOCHS")
    total = int(epochs) if epochs is not None else choices(trial).epochs
    return stage_ends(s.grace, s.eta, total)
