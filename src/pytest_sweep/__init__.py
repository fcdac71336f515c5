"""pytest-sweep: hyperparameter sweeps for PyTorch training, run as a pytest test matrix.

One import name for the whole distribution.  Its subpackages live in the repository's top-level
folders (``setuptools`` maps them, see ``pyproject.toml``), this package itself in ``src/``:

- :mod:`pytest_sweep.matrix` (``matrix/``): the core: range configs, trials, records, the
  hookspecs and the pytest plugin; never imports torch;
- :mod:`pytest_sweep.plugins` (``plugins/``): the built-in plugins, every hook implementation;
- :mod:`pytest_sweep.trainers` (``trainers/``): pure torch: models, data, optimizers, pruning,
  the training loop; imports neither pytest nor the other two.

pytest loads one entry point, ``sweep`` (:mod:`pytest_sweep.entry`); it registers the built-in
plugins of :data:`BUILTIN_PLUGINS` only in a run with a sweep.
"""

from __future__ import annotations

import importlib.metadata

__version__ = "0.2.0"

#: The one ``pytest11`` entry point: its name and module.
ENTRY_POINT = ("sweep", "pytest_sweep.entry")

#: Every built-in plugin, registered under its name (``-p no:NAME`` turns it off) in this order,
#: and imported only when a sweep is active (``pytest_sweep.entry``).  A new plugin is one line here;
#: its options go to ``plugins/options.py`` (or ``matrix/options.py``), since pytest reads them
#: before the plugin is imported.
BUILTIN_PLUGINS = {
    "sweep.core": "pytest_sweep.matrix.plugin",
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
    """Whether pytest loads the plugin through its ``pytest11`` entry point (the checkout is installed)."""
    try:
        eps = importlib.metadata.entry_points(group="pytest11")
    except Exception:  # pragma: no cover - broken metadata
        return False
    return any((ep.name, ep.value) == ENTRY_POINT for ep in eps)


def plugin_args() -> list[str]:
    """``-p`` options that load the plugin by module name (plugin autoload disabled)."""
    return ["-p", ENTRY_POINT[1]]
