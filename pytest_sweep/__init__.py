"""pytest-sweep: hyperparameter sweeps for PyTorch training, run as a pytest test matrix.

One import name for the whole distribution.  Its subpackages live in the repository's top-level
folders (``setuptools`` maps them, see ``pyproject.toml``):

- :mod:`pytest_sweep.matrix` (``matrix/``): the core: range configs, trials, records, the
  hookspecs and the pytest plugin; never imports torch;
- :mod:`pytest_sweep.plugins` (``plugins/``): the built-in plugins, every hook implementation;
- :mod:`pytest_sweep.trainers` (``trainers/``): pure torch: models, data, optimizers, pruning,
  the training loop; imports neither pytest nor the other two.
"""

from __future__ import annotations

import importlib.metadata

__version__ = "0.2.0"

#: Every built-in plugin: its ``pytest11`` entry-point name and its module.
BUILTIN_PLUGINS = {
    "sweep": "pytest_sweep.matrix.plugin",
    "sweep.reporters": "pytest_sweep.plugins.reporters",
    "sweep.optimizers": "pytest_sweep.plugins.optimizers",
    "sweep.pruning": "pytest_sweep.plugins.pruning",
    "sweep.gpu": "pytest_sweep.plugins.gpu",
    "sweep.trainer": "pytest_sweep.plugins.trainer",
    "sweep.reference": "pytest_sweep.plugins.reference",
    "sweep.importance": "pytest_sweep.plugins.importance",
    "sweep.refine": "pytest_sweep.plugins.refine",
    "sweep.plots": "pytest_sweep.plugins.plots",
    "sweep.html": "pytest_sweep.plugins.html_report",
    "sweep.csv": "pytest_sweep.plugins.csv_report",
    "sweep.compare": "pytest_sweep.plugins.compare",
    "sweep.schedulers": "pytest_sweep.plugins.schedulers",
    "sweep.ordering": "pytest_sweep.plugins.ordering",
    "sweep.pareto": "pytest_sweep.plugins.pareto_report",
    "sweep.environment": "pytest_sweep.plugins.environment",
    "sweep.tensorboard": "pytest_sweep.plugins.tensorboard_tracker",
    "sweep.mlflow": "pytest_sweep.plugins.mlflow_tracker",
}


def installed() -> bool:
    """Whether the plugins load through their ``pytest11`` entry points (the checkout is installed)."""
    try:
        eps = importlib.metadata.entry_points(group="pytest11")
    except Exception:  # pragma: no cover - broken metadata
        return False
    return any(ep.name == "sweep" and ep.value == BUILTIN_PLUGINS["sweep"] for ep in eps)


def plugin_args() -> list[str]:
    """``-p`` options that load every built-in plugin by module name (autoload disabled)."""
    return [arg for module in BUILTIN_PLUGINS.values() for arg in ("-p", module)]
