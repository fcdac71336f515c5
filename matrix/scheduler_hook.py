"""The core's call of ``pytest_sweep_make_scheduler``, and the plugin that asks its answer.

The core owns the factory hook and calls it (as xdist's ``DSession`` calls
``pytest_xdist_make_scheduler``); the built-in schedulers (``sweep.schedulers``:
``--sweep-scheduler=asha|median``) only answer it, so ``-p no:sweep.schedulers`` leaves a
``conftest.py``'s or another plugin's scheduler working.  On a process that trains,
:class:`SchedulerPlugin` answers ``pytest_sweep_epoch_ended`` with the scheduler's decision and
leaves the reason in ``trial.stash[STOP_KEY]``, so the trial's record says ``stopped``, and
``pytest_sweep_promote`` with the scheduler's ``promote`` where it has one (ASHA's promotion mode).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix.contracts import Scheduler
from pytest_sweep.matrix.errors import clip
from pytest_sweep.matrix.options import sweep_options
from pytest_sweep.matrix.runner import one_line
from pytest_sweep.matrix.trial import STOP_KEY, Stage, Stop, Trial, TrialFailed

#: The registration name of :class:`SchedulerPlugin`.
NAME = "sweep-scheduler"


def scheduler_name(config: pytest.Config) -> str:
    """The name ``--sweep-scheduler`` (else the ini value ``sweep_scheduler``) asks for."""
    return sweep_options(config).scheduler


def start(config: pytest.Config, sweep_dir: Path, trains: bool) -> Scheduler | None:
    """Ask ``pytest_sweep_make_scheduler`` for the sweep's scheduler; on a process that trains,
    register :class:`SchedulerPlugin` with it.  A failing or wrong answer, or a name no plugin
    answers, is a usage error naming ``--sweep-scheduler``."""
    name = scheduler_name(config)
    flag = f"--sweep-scheduler={name}"
    try:
        scheduler: object = config.hook.pytest_sweep_make_scheduler(config=config, sweep_dir=sweep_dir)
    except pytest.UsageError:
        raise
    except Exception as exc:
        raise pytest.UsageError(f"{flag}: pytest_sweep_make_scheduler failed: {one_line(exc)}") from None
    if scheduler is None:
        if name == "none":
            return None
        off = " (sweep.schedulers, which provides asha and median, is off: -p no:sweep.schedulers)"
        raise pytest.UsageError(
            f"{flag}: no installed plugin provides this scheduler"
            + (off if config.pluginmanager.is_blocked("sweep.schedulers") else "")
        )
    if not isinstance(scheduler, Scheduler):
        raise pytest.UsageError(
            f"{flag}: pytest_sweep_make_scheduler returned {type(scheduler).__name__} {clip(repr(scheduler))[:60]}, "
            "not a scheduler (an object with epoch_ended and trial_finished)"
        )
    if trains:
        config.pluginmanager.register(SchedulerPlugin(scheduler), NAME)
    return scheduler


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
