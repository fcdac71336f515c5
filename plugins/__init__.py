"""Built-in plugins of pytest-sweep.

Each module is a pytest plugin registered through its own ``pytest11`` entry point and
uses only the hooks of :mod:`matrix.hookspecs`, exactly as a third-party plugin would;
``-p no:plugins.reporters`` (for example) turns one off.
"""
from __future__ import annotations

import importlib.metadata

#: Every built-in plugin module, as registered under its own ``pytest11`` entry point.
BUILTIN_PLUGINS = (
    "matrix.plugin",
    "plugins.reporters",
    "plugins.optimizers",
    "plugins.pruning",
    "plugins.gpu",
    "trainers.plugin",
)


def installed() -> bool:
    """Whether the plugins load through their ``pytest11`` entry points (``pip install -e .``)."""
    try:
        eps = importlib.metadata.entry_points(group="pytest11")
    except Exception:  # pragma: no cover - broken metadata
        return False
    return any(ep.name == "matrix.plugin" for ep in eps)


def plugin_args() -> list[str]:
    """``-p`` options that load every built-in plugin by module name."""
    return [arg for name in BUILTIN_PLUGINS for arg in ("-p", name)]
