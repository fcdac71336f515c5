"""One xdist worker per GPU, and a fair share of CPU threads per worker.

The controller hands each worker its GPU list before the worker starts; the worker
sets ``CUDA_VISIBLE_DEVICES`` to its own GPU in ``pytest_configure``, before torch
(imported only when a trial runs) initialises CUDA.  Worker ``gwI`` gets entry
``(I // workers_per_gpu) % len(gpus)`` of the parent's ``CUDA_VISIBLE_DEVICES`` (or
of every GPU the driver lists).  Without GPUs nothing changes but the thread count:
each worker gets ``cores // workers`` torch threads (at least 1), because two
workers with all cores each ran 3x slower than with one thread each.

Ray actors (``--sweep-backend=ray``) get no GPU list from here: Ray already sets each actor's
``CUDA_VISIBLE_DEVICES`` and thread count, and nothing re-pins them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sweep")
    group.addoption(
        "--sweep-workers-per-gpu",
        type=int,
        default=1,
        metavar="K",
        help="Pack K xdist workers onto each GPU (small models); default 1",
    )


def visible_gpus(environ: dict[str, str] | None = None) -> list[str]:
    """The parent's GPUs: ``CUDA_VISIBLE_DEVICES`` if set, else those the NVIDIA driver lists."""
    env = os.environ if environ is None else environ
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    proc = Path("/proc/driver/nvidia/gpus")
    if proc.is_dir():
        return [str(i) for i in range(len(list(proc.iterdir())))]
    return []


def gpu_for_worker(index: int, gpus: list[str], per_gpu: int) -> str | None:
    if not gpus:
        return None
    return gpus[(index // max(per_gpu, 1)) % len(gpus)]


def threads_for(workers: int, cores: int | None = None) -> int:
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(workers, 1))


def pytest_configure(config: pytest.Config) -> None:
    per_gpu = config.getoption("sweep_workers_per_gpu")
    if per_gpu < 1:
        raise pytest.UsageError(f"--sweep-workers-per-gpu {per_gpu}: use a whole number of at least 1")
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is None:
        return
    # torch reads these when it is first imported, inside the first trial; it follows
    # MKL_NUM_THREADS over OMP_NUM_THREADS, so a user's setting of either wins for both
    threads = os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS")
    if not threads:
        threads = str(threads_for(int(workerinput.get("workercount", 1))))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, threads)
    gpus = workerinput.get("sweep_gpus")
    if gpus is None:
        return
    index = int(str(workerinput["workerid"]).removeprefix("gw") or 0)
    gpu = gpu_for_worker(index, list(gpus), per_gpu)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    node.workerinput["sweep_gpus"] = visible_gpus()
