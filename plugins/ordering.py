"""``--sweep-order=grid|interleaved|random``: the order in which a sweep's trials run.

An asynchronous rule (``--sweep-scheduler=asha``) compares a trial with those that reached its
rung before it, so the order matters: in grid order the first trials may all share one bad value
of the first swept key.  ``interleaved`` runs them in bit-reversed (van der Corput) order of
their grid index, so that every stretch of the run covers the whole grid; ``random`` shuffles
them with ``CONFIG_SEED``.  Without the option, the order is ``interleaved`` when a scheduler is
on (``--sweep-scheduler``) and ``grid`` otherwise.  Every process computes the same order
(xdist's workers must collect the same items in the same order).

A trial split into stage items (``--sweep-asha-mode=promotion``) runs in waves: every trial's
first stage in that order, then every trial's second stage, and so on.  A sampled search's items
(``--sweep-search``, ``trial_001``...) keep their order: they are slots the sampler fills, not grid
points.
"""

from __future__ import annotations

import random

import pytest

from pytest_sweep.matrix.collect import SampledItem, SweepItem
from pytest_sweep.plugins.options import sweep_order  # the option itself is defined there (light, at start-up)


def order(config: pytest.Config) -> str:
    """The run's order (resolved once, in plugins/options.py)."""
    return sweep_order(config)


def pytest_configure(config: pytest.Config) -> None:
    order(config)  # a bad ini value fails before collection


def bit_reversed(n: int) -> list[int]:
    """``0..n-1`` in van der Corput order: 0, n/2, n/4, 3n/4, ... (each index once)."""
    bits = max(1, (n - 1).bit_length())
    keys = [int(format(i, f"0{bits}b")[::-1], 2) for i in range(n)]
    return sorted(range(n), key=keys.__getitem__)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    how = order(config)
    slots = [i for i, item in enumerate(items) if isinstance(item, SweepItem)]
    sweep = [item for item in items if isinstance(item, SweepItem)]
    staged = any(item.stage is not None for item in sweep)
    if (how == "grid" and not staged) or any(isinstance(item, SampledItem) for item in sweep):
        return  # a sampled search's items are slots, not grid points: the sampler spreads them
    # the trials' order, over each trial's first item (a staged trial has several)
    firsts: dict[str, int] = {}
    for item in sweep:
        firsts.setdefault(item.trial.folder, len(firsts))
    n = len(firsts)
    if how == "interleaved":
        rank = {trial: i for i, trial in enumerate(bit_reversed(n))}
    elif how == "random":
        seed = sweep[0].trial.seed if sweep else 0
        shuffled = list(range(n))
        random.Random(seed).shuffle(shuffled)
        rank = {trial: i for i, trial in enumerate(shuffled)}
    else:
        rank = {i: i for i in range(n)}

    def key(item: SweepItem) -> tuple[int, int]:
        wave = item.stage.index if item.stage is not None else 0
        return wave, rank[firsts[item.trial.folder]]

    moved = sorted(sweep, key=key)
    for slot, item in zip(slots, moved, strict=True):
        items[slot] = item
