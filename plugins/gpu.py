"""One xdist worker per GPU, and a fair share of CPU threads per worker.

The controller hands each worker its GPU list before the worker starts; the worker
sets ``CUDA_VISIBLE_DEVICES`` to its own GPU in ``pytest_configure``, before torch
(imported only when a trial runs) initialises CUDA.  Worker ``gwI`` gets entry
``(I // workers_per_gpu) % len(gpus)`` of the parent's ``CUDA_VISIBLE_DEVICES`` (or
of every GPU the driver lists).  Without GPUs nothing changes but the thread count:
each worker gets ``cores // workers`` torch threads (at least 1), because two
workers with all cores each ran 3x slower than with one thread each.

Ray actors (``--sweep-backend=ray``) get no GPU list from here: Ray already sets each actor's
``CUDA_VISIBLE_DEVICES`` and thread count, and nothing re-pins them (``--sweep-workers-per-gpu K``
starts K actors per GPU there, each reserving ``num_gpus=1/K``, as ``matrix/ray/plan.py`` plans them).

Only in a sweep: another project's ``pytest -n 2`` keeps its workers' environment as it was, even
where this plugin is registered (the entry point registers it only in a sweep anyway).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix.options import sweep_options, sweep_requested


def visible_gpus(environ: dict[str, str] | None = None) -> list[str]:
    """The parent's GPUs: ``CUDA_VISIBLE_DEVICES`` as CUDA reads it (:func:`parse_visible_devices`)
    if set, else those the NVIDIA driver lists."""
    env = os.environ if environ is None else environ
    count = _driver_gpu_count()
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return parse_visible_devices(listed, count)
    return [str(i) for i in range(count or 0)]


def _driver_gpu_count() -> int | None:
    proc = Path("/proc/driver/nvidia/gpus")
    return len(list(proc.iterdir())) if proc.is_dir() else None


_INDEX = re.compile(r"[+-]?\d+")


def parse_visible_devices(value: str, count: int | None = None) -> list[str]:
    """The devices a ``CUDA_VISIBLE_DEVICES`` value makes visible, read the way CUDA reads it.

    Entries count from the left up to the first invalid one: an empty or non-numeric entry, a
    negative index (``-1``), an index of a GPU the driver does not have (when ``count`` is known),
    or, in a list of UUIDs (``GPU-...``/``MIG-...``), an entry of another kind.  Like ``strtoul``
    an index is its leading digits (``1gpu`` is 1).  A device named twice hides all of them.
    ``"0,-1,2"`` is ``["0"]``, not ``["0", "2"]``: worker 1 must not be sent to a GPU CUDA hides.
    """
    entries = [e.strip() for e in value.split(",")]
    prefix = next((p for p in ("GPU-", "MIG-") if entries[0].startswith(p)), None)
    seen: list[str] = []
    for entry in entries:
        if prefix is not None:
            if not entry.startswith(prefix):
                break
            name = entry
        else:
            match = _INDEX.match(entry)
            if match is None or int(match.group()) < 0 or (count is not None and int(match.group()) >= count):
                break
            name = str(int(match.group()))
        if name in seen:
            return []
        seen.append(name)
    return seen


def gpu_for_worker(index: int, gpus: list[str], per_gpu: int) -> str | None:
    if not gpus:
        return None
    return gpus[(index // max(per_gpu, 1)) % len(gpus)]


def threads_for(workers: int, cores: int | None = None) -> int:
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(workers, 1))


def pytest_configure(config: pytest.Config) -> None:
    if not sweep_requested(config.option):
        return  # another project's run: its workers keep their GPUs and threads
    per_gpu = sweep_options(config).workers_per_gpu  # checked when resolved
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
    if not sweep_requested(node.config.option):
        return
    node.workerinput["sweep_gpus"] = visible_gpus()
