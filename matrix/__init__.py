"""pytest-sweep core: range configs become pytest items, results become a ranked sweep.

This package never imports torch: collection, expansion and reporting stay fast and work on
machines without a deep-learning stack.  Trainers reach the core only through the hooks in
:mod:`pytest_sweep.matrix.hookspecs` and the contracts in :mod:`pytest_sweep.matrix.contracts`.

Its public names are imported on first use (PEP 562): every pytest run imports
:mod:`~pytest_sweep.matrix.options` and :mod:`~pytest_sweep.matrix.hookspecs` through the entry
point, and that must not import the rest of the core.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_sweep.matrix.errors import RangeConfigError
    from pytest_sweep.matrix.symbols import Symbol, SymbolTable
    from pytest_sweep.matrix.trial import STOP_KEY, UNSAFE_KEY, Stop, Trial, TrialContext, TrialFailed

#: public name -> the module of this package that defines it
_EXPORTS = {
    "RangeConfigError": "errors",
    "Symbol": "symbols",
    "SymbolTable": "symbols",
    "STOP_KEY": "trial",
    "UNSAFE_KEY": "trial",
    "Stop": "trial",
    "Trial": "trial",
    "TrialContext": "trial",
    "TrialFailed": "trial",
}

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

if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all attribute

    def __getattr__(name: str) -> Any:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        # not cached in globals(): pytester's in-process runs drop modules they imported, and the
        # next import must hand out the class of the module then in sys.modules
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)
