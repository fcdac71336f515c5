"""``--sweep-backend=ray``: the controller's side, one long-lived Ray actor per GPU.

:class:`RayBackend` is the backend loop (:class:`~..remote.loop.BackendLoop`, registered by
:mod:`..plugin`) with Ray actors as its workers: :mod:`.pool` starts them and reports on them;
each actor hosts a pytest worker session (:mod:`.worker`) and answers with the item's reports in
xdist's wire format.  This module checks the command line and says what each actor is started
with (its spec).

Ray itself is imported only when this backend runs (:func:`check_usage`, :mod:`.pool`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sweep.matrix.options import WORKERINPUT_KEY, RayOptions, sweep_options
from pytest_sweep.matrix.ray.plan import gpu_share
from pytest_sweep.matrix.remote.loop import BackendLoop

if TYPE_CHECKING:
    from pytest_sweep.matrix.controller import Controller
    from pytest_sweep.matrix.progress import TrialTicker
    from pytest_sweep.matrix.remote.protocol import Dispatcher, PutEvent

INSTALL_HINT = "pip install pytest-sweep[ray]"
#: Variables of the controller's environment that a worker session must share with it (set there
#: as here, unset there where unset here): plugin loading and the import path.
FORWARDED_ENV = ("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_PLUGINS", "PYTEST_ADDOPTS", "PYTHONPATH")
#: Ray sets these to the actor's CPU count; a value set here wins, as it does for xdist workers.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def check_usage(config: pytest.Config) -> None:
    """Bad combinations are usage errors before anything starts (xdist's own wording for --pdb)."""
    if getattr(config.option, "numprocesses", None):
        raise pytest.UsageError(
            "-n and --sweep-backend=ray do not go together: Ray starts one worker per GPU itself; drop -n"
        )
    if config.option.usepdb:
        raise pytest.UsageError("--pdb is incompatible with distributing tests; try --sweep-backend=serial")
    gpu_share(sweep_options(config).workers_per_gpu)  # the Ray settings were checked when resolved
    try:
        import ray  # noqa: F401
    except ImportError:
        raise pytest.UsageError(f"--sweep-backend=ray needs Ray, which is not installed: {INSTALL_HINT}") from None


def worker_env(environ: Mapping[str, str], cpus_per_trial: float) -> dict[str, str | None]:
    """What each worker session's environment must say (None: unset there)."""
    env: dict[str, str | None] = {name: environ.get(name) for name in FORWARDED_ENV}
    threads = environ.get("OMP_NUM_THREADS") or environ.get("MKL_NUM_THREADS") or str(max(1, int(cpus_per_trial)))
    env.update(dict.fromkeys(THREAD_ENV, threads))
    return env


def worker_sys_path(invocation_dir: Path, environ: Mapping[str, str]) -> list[str]:
    """The import path entries a worker puts first: the invocation folder (as ``python -m pytest``
    and xdist's remote workers do), then ``PYTHONPATH``."""
    extra = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return [str(invocation_dir), *(str((invocation_dir / p).resolve()) for p in extra)]


def ray_options(config: pytest.Config) -> RayOptions:
    """The run's ``--sweep-ray-*`` settings (resolved with the other options: a bad value failed before this)."""
    ray = sweep_options(config).ray
    assert ray is not None, "--sweep-backend=ray resolves the Ray settings"
    return ray


def worker_spec(
    config: pytest.Config, sweep_dir: Path, worker_id: str, count: int, token: str, testrunuid: str
) -> dict[str, Any]:
    """What the actor ``worker_id`` is started with (``SweepWorker``'s ``spec``)."""
    invocation = config.invocation_params.dir
    basetemp = config.option.basetemp
    return {
        "args": [*map(str, config.invocation_params.args), f"--rootdir={config.rootpath}"],
        # each worker its own basetemp below the controller's, as xdist gives its popen workers
        "options": {"basetemp": str(Path(basetemp) / worker_id)} if basetemp else {},
        "invocation_dir": str(invocation),
        "sys_path": worker_sys_path(invocation, os.environ),
        "env": worker_env(os.environ, ray_options(config).cpus_per_trial),
        "workerinput": {
            "workerid": worker_id,
            "workercount": count,
            "testrunuid": testrunuid,
            "sweep_dir": str(sweep_dir),
            WORKERINPUT_KEY: sweep_options(config).to_dict(),
        },
        "token": token,
        "ship": ray_options(config).ship_files,
    }


class RayBackend(BackendLoop):
    """The controller's run loop on Ray (registered by :mod:`..plugin` when the backend is ``ray``)."""

    def __init__(self, config: pytest.Config, controller: Controller, ticker: TrialTicker | None) -> None:
        retries = (ray_options(config).node_retries, "--sweep-ray-node-retries")
        super().__init__(config, controller, ticker, self.actor_pool, label="Ray", node_retries=retries)

    def actor_pool(self, putevent: PutEvent) -> Dispatcher:
        from pytest_sweep.matrix.ray.pool import ActorPool  # imports ray

        spec = functools.partial(worker_spec, self.config, self.controller.dir)
        return ActorPool(self.config, self.controller.dir, putevent, spec)
