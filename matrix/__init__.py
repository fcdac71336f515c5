"""pytest-sweep core: range configs become pytest items, results become a ranked sweep.

This package never imports torch: collection, expansion and reporting stay fast and work on
machines without a deep-learning stack.  Trainers reach the core only through the hooks in
:mod:`pytest_sweep.matrix.hookspecs` and the contracts in :mod:`pytest_sweep.matrix.contracts`.
"""

from __future__ import annotations

from pytest_sweep.matrix.errors import RangeConfigError
from pytest_sweep.matrix.symbols import Symbol, SymbolTable
from pytest_sweep.matrix.trial import STOP_KEY, UNSAFE_KEY, Stop, Trial, TrialContext, TrialFailed

__all__ = [
    "STOP_KEY",
    "UNSAFE_KEY",
    "RangeConfigError",
    "Stop",
    "Symbol",
    "SymbolTable",
    "Trial",
    "TrialContext",
    "TrialFailed",
]
