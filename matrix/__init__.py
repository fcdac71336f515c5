"""pytest-sweep core: range configs become pytest items, results become a ranked sweep.

This package never imports torch: collection, expansion and reporting stay fast and
work on machines without a deep-learning stack.  Trainers live in ``trainers/`` and
reach the core only through the hooks in :mod:`matrix.hookspecs`.
"""
from __future__ import annotations

from matrix.errors import RangeConfigError
from matrix.symbols import Symbol, SymbolTable
from matrix.trial import Trial, TrialFailed

__all__ = ["RangeConfigError", "Symbol", "SymbolTable", "Trial", "TrialFailed"]
__version__ = "0.1.0"
