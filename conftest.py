"""Repo-level pytest wiring.

The plugins load through their ``pytest11`` entry points once the project is
installed (``make test`` / ``make sweep`` install it).  Run from a plain checkout
with ``PYTHONPATH=.`` (the GPU machine does), they are loaded from here instead.
"""
from __future__ import annotations

import importlib.metadata

_PLUGINS = [
    "matrix.plugin",
    "plugins.reporters",
    "plugins.optimizers",
    "plugins.pruning",
    "plugins.gpu",
    "trainers.plugin",
]


def _installed() -> bool:
    try:
        eps = importlib.metadata.entry_points(group="pytest11")
    except Exception:  # pragma: no cover - broken metadata
        return False
    return any(ep.name == "matrix.plugin" for ep in eps)


# Defined only when needed: pytest refuses `pytest_plugins` in a conftest that is not the
# rootdir's (e.g. `pytest --range-config=/path/to/this/repo/defconfigs/X` run from elsewhere).
if not _installed():
    pytest_plugins = _PLUGINS
