"""Early stopping across the sweep: ``--sweep-scheduler=asha|median`` (plugin ``sweep.schedulers``).

The scheduler is built through ``pytest_sweep_make_scheduler`` (the built-in implementation here
is ``trylast``) on every process of an active sweep; on a process that trains, a
:class:`SchedulerPlugin` answers ``pytest_sweep_epoch_ended`` with its decision and leaves the
reason in ``trial.stash[STOP_KEY]``, so the trial's record says ``stopped``.  The rules are in
:mod:`pytest_sweep.matrix.scheduling`, the shared store in :mod:`pytest_sweep.matrix.rungs`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix.contracts import Scheduler
from pytest_sweep.matrix.controller import CONTROLLER_KEY
from pytest_sweep.matrix.errors import clip
from pytest_sweep.matrix.rungs import STORE_FILE, SqliteRungStore
from pytest_sweep.matrix.runner import RUNNER_KEY, one_line
from pytest_sweep.matrix.scheduling import AshaScheduler, MedianScheduler, Objective, PromotionAsha, stage_ends
from pytest_sweep.matrix.trial import STOP_KEY, Stage, Stop, Trial, TrialFailed
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


def _sweep_dir(config: pytest.Config) -> Path | None:
    runner = config.stash.get(RUNNER_KEY, None)
    if runner is not None:
        return runner.dir
    controller = config.stash.get(CONTROLLER_KEY, None)
    return controller.dir if controller is not None else None


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
    store = SqliteRungStore(sweep_dir / STORE_FILE)
    problem = store.problem()
    if problem is not None:
        raise pytest.UsageError(
            f"--sweep-scheduler: {store.path} is not a usable rung store ({problem}); remove it (the "
            f"scheduler's earlier decisions go with it) or run without --sweep-scheduler={s.name}"
        )
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


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    sweep_dir = _sweep_dir(config)
    if sweep_dir is None or config.option.collectonly:
        return  # no active sweep
    flag = f"--sweep-scheduler={config.stash[_SETTINGS].name if _SETTINGS in config.stash else '?'}"
    try:
        scheduler = config.hook.pytest_sweep_make_scheduler(config=config, sweep_dir=sweep_dir)
    except pytest.UsageError:
        raise
    except Exception as exc:
        raise pytest.UsageError(f"{flag}: pytest_sweep_make_scheduler failed: {one_line(exc)}") from None
    if scheduler is not None and not isinstance(scheduler, Scheduler):
        raise pytest.UsageError(
            f"{flag}: pytest_sweep_make_scheduler returned {type(scheduler).__name__} {clip(repr(scheduler))[:60]}, "
            "not a scheduler (an object with epoch_ended and trial_finished)"
        )
    if scheduler is not None and config.stash.get(RUNNER_KEY, None) is not None:
        config.pluginmanager.register(SchedulerPlugin(scheduler), "sweep-scheduler")


class SchedulerPlugin:
    """A process that trains: asks the scheduler after every epoch."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    @pytest.hookimpl
    def pytest_sweep_epoch_ended(self, trial: Trial, metrics: dict[str, Any]) -> bool | None:
        stop: Any = self.scheduler.epoch_ended(trial, metrics)  # a plugin's: any value at all
        if stop is None:
            return None
        if not (isinstance(stop, Stop) and isinstance(stop.rung, int) and isinstance(stop.reason, str)):
            kind = type(self.scheduler)
            raise TrialFailed(
                f"the scheduler {kind.__module__}.{kind.__qualname__} returned {clip(repr(stop))[:80]} from "
                "epoch_ended, not a Stop or None"
            )
        trial.stash[STOP_KEY] = stop
        return True

    @pytest.hookimpl
    def pytest_sweep_promote(self, trial: Trial, stage: Stage, metrics: dict[str, Any]) -> Stop | None:
        promote = getattr(self.scheduler, "promote", None)
        return promote(trial, stage, metrics) if promote is not None else None

    @pytest.hookimpl
    def pytest_sweep_trial_finished(self, trial: Trial, record: dict[str, Any]) -> None:
        self.scheduler.trial_finished(trial, record)
