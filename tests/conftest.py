"""Fixtures shared by the tests; the helpers behind them live in ``sweep_helpers.py``.

Tests that start pytest in process (``pytester``) or in a subprocess are marked ``slow`` here,
automatically, and run after the fast unit tests (``-m "not slow"`` runs the unit tests alone).
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep import BUILTIN_PLUGINS

import shared_nothing
from sweep_helpers import HERMETIC_ENV, SweepPytester, SweepTools

#: Not tests: the example plugin package and the golden files.
collect_ignore = ["plugin_pkg", "golden"]

# The built-in plugins are imported once for the session (the entry point imports them only in a
# sweep): pytester's in-process runs drop every module they import themselves, so each run would
# import them again, and a class kept from an earlier run would not be the class of the next one.
for _module in BUILTIN_PLUGINS.values():
    importlib.import_module(_module)


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
    "test_ray",
    "test_reference",
    "test_symbols_reach",
}


def _is_slow(item: pytest.Item) -> bool:
    fixtures = getattr(item, "fixturenames", ())
    return "pytester" in fixtures or item.get_closest_marker("slow") is not None or item.path.stem in SLOW_MODULES


#: Fixtures that import Ray into the test process or start the simulated cluster.
RAY_FIXTURES = {"ray_imported", "ray_cluster"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the end-to-end tests ``slow`` and run them after the unit tests (stable otherwise)."""
    slow = {id(item) for item in items if _is_slow(item)}
    for item in items:
        if id(item) in slow:
            item.add_marker(pytest.mark.slow)
        if RAY_FIXTURES & set(getattr(item, "fixturenames", ())):
            # under `-n N --dist loadgroup` (make test) every Ray test runs on one worker: one
            # simulated cluster (~1 GB) at a time, and Ray imported into one process only
            item.add_marker(pytest.mark.xdist_group("ray"))
    items[:] = [i for i in items if id(i) not in slow] + [i for i in items if id(i) in slow]


class RayCluster:
    """A Ray cluster of simulated nodes on this machine (``ray.cluster_utils.Cluster``).

    A head without GPUs and two nodes with ``num_gpus=1`` each (Ray hands out GPU ids; nothing
    touches a device), with short health checks so that a removed node is declared dead within
    seconds.  Inner pytest runs reach it through ``RAY_ADDRESS`` (:attr:`env`); their controller
    is on the head (Ray connects a driver to the head of a machine's nodes).  Each GPU node has
    a folder and a temp folder of its own and refuses the controller's disk (``shared_nothing.py``:
    :attr:`nodes_dir`, ``shared_nothing.violations``).
    """

    #: a node is dead after 5 missed checks 1 s apart (short, yet tolerant of a busy 2-core machine)
    HEALTH = {
        "health_check_initial_delay_ms": 0,
        "health_check_period_ms": 1000,
        "health_check_timeout_ms": 1000,
        "health_check_failure_threshold": 5,
    }

    def __init__(self, temp_dir: Path) -> None:
        from ray.cluster_utils import Cluster

        self.temp_dir = temp_dir
        self.nodes_dir = temp_dir / "nodes"
        self.added = 0
        self.cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 1, "num_gpus": 0, "include_dashboard": False, "_system_config": self.HEALTH},
        )
        self.gpu_nodes: list[Any] = []
        self.add_gpu_node()
        self.add_gpu_node()

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    @property
    def env(self) -> dict[str, str]:
        return {"RAY_ADDRESS": self.address}

    def add_gpu_node(self) -> Any:
        self.added += 1
        env = shared_nothing.node_env(self.nodes_dir, self.added)
        node = self.cluster.add_node(num_cpus=1, num_gpus=1, env_vars=env)
        self.gpu_nodes.append(node)
        return node

    @property
    def head_node_id(self) -> str:
        """The head's node id: where a controller's driver (and so the sweep's state actor) runs."""
        head: Any = self.cluster.head_node
        return str(head.node_id)

    def gpu_node_ids(self) -> set[str]:
        return {str(node.node_id) for node in self.gpu_nodes}

    def remove_gpu_node(self, node_id: str) -> None:
        """Kill a node's processes at once (no graceful shutdown): a machine that went away."""
        (node,) = [n for n in self.gpu_nodes if n.node_id == node_id]
        self.cluster.remove_node(node, allow_graceful=False)
        self.gpu_nodes.remove(node)

    def actor_nodes(self, class_name: str) -> list[str]:
        """The node id of every actor of ``class_name`` the cluster has seen (dead ones included)."""
        table = self.cluster.global_state.actor_table(None).values()
        return [
            str(info["Address"]["NodeID"])
            for info in table
            if str(info.get("ActorClassName", "")).rsplit(".", 1)[-1] == class_name
        ]

    def actor_states(self) -> list[str]:
        """The state of every actor the cluster has seen (``ALIVE``, ``DEAD``...)."""
        return [str(info["State"]) for info in self.cluster.global_state.actor_table(None).values()]

    def processes(self) -> list[int]:
        """Every process whose command line names this cluster's temp folder (raylets, workers...)."""
        found = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit() and int(proc.name) != os.getpid():
                try:
                    cmdline = (proc / "cmdline").read_bytes()
                except OSError:
                    continue
                if str(self.temp_dir).encode() in cmdline:
                    found.append(int(proc.name))
        return found

    def shutdown(self) -> list[int]:
        """Stop every node; kill what is left after 15 s; return the pids that had to be killed."""
        self.cluster.shutdown()  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + 15
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.2)
        stragglers = self.processes()
        for pid in stragglers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return stragglers


@pytest.fixture(scope="session")
def ray_imported() -> None:
    """Ray, imported into this process once, before any ``pytester`` starts.

    ``pytester`` drops at its teardown every module imported since it started, and Ray imported a
    second time into one process crashes it (SIGSEGV in ``get_all_node_info_until_retrieved`` when
    the session's cluster adds a node).  Every test that imports Ray here, itself or through an
    in-process run of ``--sweep-backend=ray``, asks for this fixture.
    """
    pytest.importorskip("ray", reason="the Ray tests need the extra: pip install -e '.[ray]'")


@pytest.fixture(scope="session")
def ray_cluster(ray_imported: None) -> Iterator[RayCluster]:
    """One simulated Ray cluster for every Ray test of the session; shut down, leaving no process."""
    # Ray's sockets live in its temp folder, whose path must stay short (Unix sockets: 107 bytes);
    # its own folder also keeps Ray's "current cluster" file away from any other Ray on the machine
    temp_dir = Path(tempfile.mkdtemp(prefix="sw-ray-", dir="/tmp"))
    previous = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = str(temp_dir)
    cluster = None
    try:
        cluster = RayCluster(temp_dir)
        yield cluster
    finally:
        stragglers = cluster.shutdown() if cluster is not None else []
        if previous is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = previous
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert not stragglers, f"the Ray cluster left processes behind (killed): {stragglers}"
