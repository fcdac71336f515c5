"""Repo-level pytest wiring.

The plugin loads through its one ``pytest11`` entry point, ``sweep`` (``pytest_sweep.entry``),
once the checkout is installed: ``make test`` and ``make sweep`` install it, and on a machine
without internet ``pip install --no-deps --no-build-isolation -e . --config-settings editable_mode=strict``
does.  A plain checkout cannot import ``pytest_sweep`` (the package is ``src/pytest_sweep``, its
subpackages are mapped from ``matrix/``, ``plugins/`` and ``trainers/`` at install time), so this
says how to install it instead of failing obscurely.
"""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("pytest_sweep") is None or importlib.util.find_spec("pytest_sweep.matrix") is None:
    raise pytest.UsageError(
        "pytest-sweep is not installed in this environment; run `make test`, or install the checkout "
        "with `pip install --no-deps --no-build-isolation -e . --config-settings editable_mode=strict`"
    )
