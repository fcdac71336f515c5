"""Repo-level pytest wiring.

The plugins load through their ``pytest11`` entry points once the project is
installed (``make test`` / ``make sweep`` install it).  Run from a plain checkout
with ``PYTHONPATH=.`` (the GPU machine does), they are loaded from here instead.
"""
from __future__ import annotations

from plugins import BUILTIN_PLUGINS, installed

# Defined only when needed: pytest refuses `pytest_plugins` in a conftest that is not the
# rootdir's (e.g. `pytest --range-config=/path/to/this/repo/defconfigs/X` run from elsewhere).
if not installed():
    pytest_plugins = list(BUILTIN_PLUGINS)
