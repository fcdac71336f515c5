"""``--sweep-order=grid|interleaved|random``: the order in which a sweep's trials run.

An asynchronous rule (``--sweep-scheduler=asha``) compares a trial with those that reached its
rung before it, so the order matters: in grid order the first trials may all share one bad value
of the first swept key.  ``interleaved`` runs them in bit-reversed (van der Corput) order of
their grid index, so that every stretch of the run covers the whole grid; ``random`` shuffles
them with ``CONFIG_SEED``.  Every process computes the same order (xdist's workers must collect
the same items in the same order).
"""

from __future__ import annotations

import random

import pytest

from pytest_sweep.matrix.collect import SweepItem
from pytest_sweep.plugins.options import ORDERS  # the option itself is defined there (light, at start-up)


def order(config: pytest.Config) -> str:
    value = config.getoption("sweep_order", None)
    if value is None:
        value = str(config.getini("sweep_order")).strip()
        if value not in ORDERS:
            raise pytest.UsageError(f"ini value sweep_order = {value!r}: use grid, interleaved or random")
    return str(value)


def pytest_configure(config: pytest.Config) -> None:
    order(config)  # a bad ini value fails before collection


def bit_reversed(n: int) -> list[int]:
    """``0..n-1`` in van der Corput order: 0, n/2, n/4, 3n/4, ... (each index once)."""
    bits = max(1, (n - 1).bit_length())
    keys = [int(format(i, f"0{bits}b")[::-1], 2) for i in range(n)]
    return sorted(range(n), key=keys.__getitem__)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    how = order(config)
    if how == "grid":
        return
    slots = [i for i, item in enumerate(items) if isinstance(item, SweepItem)]
    trials = [items[i] for i in slots]
    if how == "interleaved":
        moved = [trials[i] for i in bit_reversed(len(trials))]
    else:
        seed = trials[0].trial.seed if trials and isinstance(trials[0], SweepItem) else 0
        moved = list(trials)
        random.Random(seed).shuffle(moved)
    for slot, item in zip(slots, moved, strict=True):
        items[slot] = item
