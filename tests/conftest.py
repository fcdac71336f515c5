"""Fixtures shared by the tests; the helpers behind them live in ``sweep_helpers.py``.

Tests that start pytest in process (``pytester``) or in a subprocess are marked ``slow`` here,
automatically, and run after the fast unit tests (``-m "not slow"`` runs the unit tests alone).
"""

from __future__ import annotations

from typing import Any

import pytest

from sweep_helpers import HERMETIC_ENV, SweepPytester, SweepTools

#: Not tests: the example plugin package and the golden files.
collect_ignore = ["plugin_pkg", "golden"]


@pytest.fixture
def torch_one_thread() -> Any:
    """Torch held to one thread for the test (unit tests of the torch code use it)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def sweep_tools() -> SweepTools:
    return SweepTools()


@pytest.fixture
def sweep_pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> SweepPytester:
    for key, value in HERMETIC_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    monkeypatch.delenv("PYTEST_PLUGINS", raising=False)
    return SweepPytester(pytester)


#: Modules whose tests run real sweeps in subprocesses through module-scoped fixtures.
SLOW_MODULES = {
    "test_e2e_sweep",
    "test_failed_trials",
    "test_gpu_check",
    "test_parallel",
    "test_process_exit",
    "test_pruning_sweep",
    "test_reference",
    "test_symbols_reach",
}


def _is_slow(item: pytest.Item) -> bool:
    fixtures = getattr(item, "fixturenames", ())
    return "pytester" in fixtures or item.get_closest_marker("slow") is not None or item.path.stem in SLOW_MODULES


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the end-to-end tests ``slow`` and run them after the unit tests (stable otherwise)."""
    slow = {id(item) for item in items if _is_slow(item)}
    for item in items:
        if id(item) in slow:
            item.add_marker(pytest.mark.slow)
    items[:] = [i for i in items if id(i) not in slow] + [i for i in items if id(i) in slow]
