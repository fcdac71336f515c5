"""How many Ray actors a sweep gets, and what each reserves (no Ray import: unit-testable)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class ActorPlan:
    """How many actors to start, with which Ray resources each."""

    count: int
    resources: dict[str, float]

    def describe(self) -> str:
        parts = [f"{v:g} {k}" for k, v in self.resources.items()]
        return f"{self.count} worker{'s' if self.count != 1 else ''} ({' + '.join(parts)} each)"


#: Ray counts a resource in units of 1/10000: no actor can reserve less of a GPU.
RESOURCE_UNITS = 10_000


def gpu_share(per_gpu: int) -> float:
    """What each of ``per_gpu`` actors on one GPU reserves: ``1/per_gpu`` (Ray places all of them:
    seven actors of ``num_gpus=1/7`` share one GPU, measured on Ray 2.60)."""
    if per_gpu > RESOURCE_UNITS:
        raise pytest.UsageError(
            f"--sweep-workers-per-gpu {per_gpu}: Ray divides a GPU into at most {RESOURCE_UNITS} parts; use fewer"
        )
    return 1.0 / per_gpu


def plan_actors(cluster: dict[str, float], cpus_per_trial: float, items: int, per_gpu: int = 1) -> ActorPlan:
    """``per_gpu`` actors per GPU of the cluster, each reserving ``1/per_gpu`` of one (Ray's
    fractional GPUs: Ray packs them onto one GPU id); without GPUs, as many as ``cpus_per_trial``
    allows.

    Never more actors than items.  Each actor also reserves ``cpus_per_trial`` CPUs, which is the
    thread count its trials get.
    """
    gpus = int(cluster.get("GPU", 0))
    if gpus >= 1:
        return ActorPlan(max(1, min(gpus * per_gpu, items)), {"GPU": gpu_share(per_gpu), "CPU": cpus_per_trial})
    cpus = float(cluster.get("CPU", 0))
    fits = int(cpus // cpus_per_trial)
    if fits < 1:
        raise pytest.UsageError(
            f"the Ray cluster has no GPU and {cpus:g} CPUs: no room for a worker of "
            f"--sweep-ray-cpus-per-trial={cpus_per_trial:g}; lower it or add nodes"
        )
    return ActorPlan(max(1, min(fits, items)), {"CPU": cpus_per_trial})
