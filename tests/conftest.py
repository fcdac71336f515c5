"""Shared fixtures of the end-to-end tests: hermetic ``pytester`` runs of real sweeps.

Every inner run disables plugin autoloading (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``) and
loads exactly the sweep's own plugins with ``-p``, so a stray plugin installed next
to pytest-sweep cannot change what the tests see.  ``OMP_NUM_THREADS=1`` keeps a
trial subprocess from spinning two torch threads on a busy two-core machine.

Test modules reach the helpers through the ``sweep_tools`` and ``sweep_pytester``
fixtures (and import the classes only under ``TYPE_CHECKING``): a module named
``conftest`` also exists at the repository root, so ``import conftest`` is ambiguous.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep import plugin_args

#: Not tests: the example plugin package and the golden files.
collect_ignore = ["plugin_pkg", "golden"]

PLUGIN_ARGS = tuple(plugin_args())
HERMETIC_ENV = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
#: Generous: a trial subprocess imports torch and sklearn (about 10 s on a busy machine).
SUBPROCESS_TIMEOUT = 300.0


class SweepTools:
    """Helpers that need no ``pytester`` (so module-scoped fixtures can use them)."""

    #: LeNet-5 on scikit-learn's bundled digits: no download, a fraction of a second per epoch.
    DIGITS_BASE = (
        'CONFIG_MODEL="lenet5"\n'
        'CONFIG_DATASET="digits"\n'
        'CONFIG_DEVICE="cpu"\n'
        'CONFIG_OPTIMIZER="adamw"\n'
        "CONFIG_NUM_EPOCHS=2\n"
        "CONFIG_BATCH_SIZE=64\n"
    )
    plugin_args = PLUGIN_ARGS

    @classmethod
    def digits_config(cls, *extra_lines: str) -> str:
        """The digits base config plus ``extra_lines`` (the swept keys)."""
        return cls.DIGITS_BASE + "".join(line + "\n" for line in extra_lines)

    @staticmethod
    def sweep_dirs(root: Path) -> list[Path]:
        return sorted(p for p in root.glob("sweep_*") if p.is_dir())

    @classmethod
    def only_sweep_dir(cls, root: Path) -> Path:
        found = cls.sweep_dirs(root)
        assert len(found) == 1, f"expected one sweep folder under {root}, found {found}"
        return found[0]

    @staticmethod
    def summary(sweep_dir: Path) -> list[dict[str, Any]]:
        data = json.loads((sweep_dir / "sweep_summary.json").read_text(encoding="utf-8"))
        assert isinstance(data, list)
        return data

    @classmethod
    def records(cls, sweep_dir: Path) -> dict[str, dict[str, Any]]:
        """The records of ``sweep_summary.json`` by config name."""
        return {r["config_file"]: r for r in cls.summary(sweep_dir)}

    @staticmethod
    def run_process(cwd: Path, *args: str, env: dict[str, str] | None = None, plugins: bool = True) -> pytest.RunResult:
        """``python -m pytest ARGS`` in ``cwd``: ``runpytest_subprocess`` for a module-scoped
        fixture (``pytester`` is function-scoped), so one real sweep can feed several tests."""
        full_env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
        full_env.update(HERMETIC_ENV)
        full_env.update(env or {})
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", *(PLUGIN_ARGS if plugins else ()), *args],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
            check=False,
        )
        return pytest.RunResult(
            proc.returncode, proc.stdout.splitlines(), proc.stderr.splitlines(), time.monotonic() - started
        )


class SweepPytester(SweepTools):
    """``pytester`` with the sweep's plugins on every command line."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester

    @property
    def path(self) -> Path:
        return self.pytester.path

    def range_config(self, text: str, name: str = "sweep.rc") -> Path:
        path = self.path / name
        path.write_text(text, encoding="utf-8")
        return path

    def run(self, *args: str) -> pytest.RunResult:
        """In process: for collection and usage errors (nothing there imports torch)."""
        return self.pytester.runpytest(*PLUGIN_ARGS, *args)

    def run_subprocess(self, *args: str) -> pytest.RunResult:
        """In a fresh interpreter: for runs that train (torch stays out of this process)."""
        return self.pytester.runpytest_subprocess(*PLUGIN_ARGS, *args, timeout=SUBPROCESS_TIMEOUT)


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


class RayCluster:
    """A Ray cluster of simulated nodes on this machine (``ray.cluster_utils.Cluster``).

    A head without GPUs and two nodes with ``num_gpus=1`` each (Ray hands out GPU ids; nothing
    touches a device), with short health checks so that a removed node is declared dead within
    seconds.  Inner pytest runs reach it through ``RAY_ADDRESS`` (:attr:`env`).
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
        node = self.cluster.add_node(num_cpus=1, num_gpus=1)
        self.gpu_nodes.append(node)
        return node

    def gpu_node_ids(self) -> set[str]:
        return {str(node.node_id) for node in self.gpu_nodes}

    def remove_gpu_node(self, node_id: str) -> None:
        """Kill a node's processes at once (no graceful shutdown): a machine that went away."""
        (node,) = [n for n in self.gpu_nodes if n.node_id == node_id]
        self.cluster.remove_node(node, allow_graceful=False)
        self.gpu_nodes.remove(node)

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
        self.cluster.shutdown()
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
def ray_cluster() -> Iterator[RayCluster]:
    """One simulated Ray cluster for every Ray test of the session; shut down, leaving no process."""
    pytest.importorskip("ray", reason="the Ray tests need the extra: pip install -e '.[ray]'")
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
