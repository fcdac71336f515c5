"""The hooks of the built-in trainer (``sweep.trainer``): its dataset, model, optimizer and pruner factories.

These four hooks belong to the trainer plugin, not to the torch-free core
(:mod:`pytest_sweep.matrix.hookspecs`): only the built-in trainer calls them, once per trial it
trains, and what they return is torch (or the contracts of :mod:`pytest_sweep.trainers.contracts`).
A trainer of your own (``pytest_sweep_make_trainer``) does not go through them.

The entry point (``pytest_sweep.entry``) adds this module with ``pluginmanager.add_hookspecs``
in every run, next to the core's hookspecs, as pytest-xdist's plugin adds its ``newhooks``: a
``conftest.py`` that answers one of these hooks validates in a run without a sweep or with
``-p no:sweep.trainer`` too.  Like the core's, this module imports pluggy only.

Each is ``firstresult``; the built-in implementations (``sweep.trainer``, ``sweep.optimizers``,
``sweep.pruning``) are ``trylast``, so yours win.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pytest_sweep.matrix.trial import Trial
    from pytest_sweep.trainers.contracts import DataBundle, Pruner

hookspec = pluggy.HookspecMarker("pytest")


@hookspec(firstresult=True)
def pytest_sweep_make_dataset(trial: Trial) -> DataBundle | None:
    """Return the dataset bundle for a trial (built-in: digits, CIFAR-10, MNIST).

    :param trial: the running trial.

    ``firstresult``; the built-in implementation is ``trylast``.  The built-in trainer
    needs a :class:`~pytest_sweep.trainers.contracts.DataBundle`.
    """


@hookspec(firstresult=True)
def pytest_sweep_make_model(trial: Trial, data: Any) -> Any:
    """Return the ``torch.nn.Module`` for a trial, shaped for ``data``.

    :param trial: the running trial.
    :param data: what ``pytest_sweep_make_dataset`` returned.

    ``firstresult``; the built-in (ResNet-18, LeNet-5) is ``trylast``.
    """


@hookspec(firstresult=True)
def pytest_sweep_make_optimizer(trial: Trial, model: Any, steps_per_epoch: int) -> Any:
    """Return the ``torch.optim.Optimizer`` for a trial's model.

    :param trial: the running trial.
    :param model: the model, already on the trial's device.
    :param steps_per_epoch: optimizer steps in one epoch (for pruning schedules).

    ``firstresult``; the built-in (SGD, Adam, AdamW, AdamWAdv, AdamWSpam,
    AdamWPrune) is ``trylast``.
    """


@hookspec(firstresult=True)
def pytest_sweep_make_pruner(trial: Trial, model: Any, optimizer: Any, steps_per_epoch: int) -> Pruner | None:
    """Return the pruner for a trial (:class:`~pytest_sweep.trainers.contracts.Pruner`).

    :param trial: the running trial.
    :param model: the model being trained.
    :param optimizer: what ``pytest_sweep_make_optimizer`` returned.
    :param steps_per_epoch: optimizer steps in one epoch.

    ``firstresult``; the built-in methods (none, magnitude, movement, state) are
    ``trylast``.
    """
