"""The sweep's shared state on Ray: one actor on the controller's node holds it, the trials call it.

A scheduler's decisions (the rung store, :mod:`pytest_sweep.matrix.rungs`) and a sampled search's
study (:mod:`pytest_sweep.matrix.study`) depend on every trial's results.  On one machine every
process opens the same files in the sweep folder; on a Ray cluster whose nodes share no disk with
the controller that would give each node a store of its own.  So on Ray both live in
:class:`SweepState`, a Ray actor the controller starts on its own node (``NodeAffinitySchedulingStrategy``
on the driver's node id, no CPU reserved) and owns (it ends with the run), and the trials reach it
through actor calls only (:class:`RayRungStore`, :class:`RaySearchStore`), never through a path:

- the state actor opens the same files a serial run opens, ``rungs.sqlite`` and
  ``search_study.journal`` in the controller's sweep folder: they stay the durable copy that
  ``--sweep-resume`` reopens, and only the controller's node writes them;
- an actor runs one call at a time, in the order the calls arrive, and each call is the serial
  store's own method: the decisions are the ones a serial run makes for the same order of results;
- the study is the controller's (worker index 0, as a serial run's), so a sampler draws what a
  serial run draws.

The trials find the actor by name: the controller puts ``{"name", "namespace"}`` in each worker
session's ``workerinput`` (``sweep_state``); :func:`worker_state` reads it.  Importing this module
imports no Ray.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.files import RUNGS_SQLITE
from pytest_sweep.matrix.rungs import Rule, SqliteRungStore, Verdict

if TYPE_CHECKING:
    from pytest_sweep.matrix.study import JournalSearchStore, Proposal, SeedResult

#: The ``workerinput`` key that names the state actor.
WORKERINPUT_KEY = "sweep_state"
#: Seconds the controller waits for the state actor to start.
START_SECONDS = 120.0


class SweepState:
    """The Ray actor holding the rung store and the search study (see the module docstring).

    :param sweep_dir: the controller's sweep folder (on this actor's node, the controller's).
    :param study: the controller's study (its settings; opened here on the first call), or None.
    """

    def __init__(self, sweep_dir: str, study: JournalSearchStore | None) -> None:
        self.sweep_dir = Path(sweep_dir)
        self.study = study
        self._rungs: SqliteRungStore | None = None
        self.calls = 0

    def _store(self) -> SqliteRungStore:
        if self._rungs is None:  # in the sweep folder, never through a link (as the scheduler plugin)
            self._rungs = SqliteRungStore(storage.sweep_path(self.sweep_dir, RUNGS_SQLITE))
        self.calls += 1
        return self._rungs

    def _search(self) -> JournalSearchStore:
        if self.study is None:
            raise RuntimeError("this sweep has no sampled search (--sweep-search): the controller started no study")
        self.calls += 1
        return self.study

    def ping(self) -> dict[str, Any]:
        """Where the actor runs (the controller checks it started)."""
        import os

        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    # -- the rung store (RungStore and PromotionStore) -----------------------------------------
    def decide(self, kind: str, step: int, trial: str, value: float, rule: Rule) -> Verdict:
        return self._store().decide(kind, step, trial, value, rule)

    def finish(self, trial: str) -> None:
        self._store().finish(trial)

    def finished(self) -> int:
        return self._store().finished()

    def record(self, kind: str, step: int, trial: str, value: float) -> None:
        self._store().record(kind, step, trial, value)

    def promote(self, kind: str, step: int, trial: str, value: float, rule: Rule) -> Verdict:
        return self._store().promote(kind, step, trial, value, rule)

    # -- the search study (SearchStore) --------------------------------------------------------
    def propose(self, slot: str, seed: str) -> Proposal:
        return self._search().propose(slot, seed)

    def report(self, slot: str, seed: str, number: int, result: SeedResult) -> None:
        self._search().report(slot, seed, number, result)

    # -- end -----------------------------------------------------------------------------------
    def close(self) -> int:
        """Close the store (its WAL is folded into ``rungs.sqlite``); how many calls were answered."""
        if self._rungs is not None:
            self._rungs.close()
        return self.calls


class _Client:
    """Calls the state actor and waits for its answer (the trial's thread blocks, as on SQLite's lock)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def call(self, method: str, *args: Any) -> Any:
        import ray

        return ray.get(getattr(self.handle, method).remote(*args))


class RayRungStore(_Client):
    """:class:`~pytest_sweep.matrix.rungs.PromotionStore` through the state actor."""

    def decide(self, kind: str, step: int, trial: str, value: float, rule: Rule) -> Verdict:
        verdict: Verdict = self.call("decide", kind, step, trial, value, rule)
        return verdict

    def finish(self, trial: str) -> None:
        self.call("finish", trial)

    def finished(self) -> int:
        return int(self.call("finished"))

    def record(self, kind: str, step: int, trial: str, value: float) -> None:
        self.call("record", kind, step, trial, value)

    def promote(self, kind: str, step: int, trial: str, value: float, rule: Rule) -> Verdict:
        verdict: Verdict = self.call("promote", kind, step, trial, value, rule)
        return verdict


class RaySearchStore(_Client):
    """:class:`~pytest_sweep.matrix.study.SearchStore` through the state actor."""

    def propose(self, slot: str, seed: str) -> Proposal:
        proposal: Proposal = self.call("propose", slot, seed)
        return proposal

    def report(self, slot: str, seed: str, number: int, result: SeedResult) -> None:
        self.call("report", slot, seed, number, result)


def worker_state(config: pytest.Config) -> Any | None:
    """On a Ray actor's worker session: the state actor's handle; elsewhere None (no Ray import)."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    where = (workerinput or {}).get(WORKERINPUT_KEY)
    if not where:
        return None
    import ray

    return ray.get_actor(where["name"], namespace=where["namespace"])


def start(
    actor_class: Callable[..., Any], sweep_dir: Path, study: JournalSearchStore | None
) -> tuple[Any, dict[str, str]]:
    """Start the state actor on this driver's node; its handle and the ``workerinput`` entry naming it.

    ``actor_class`` is :class:`SweepState` made a Ray actor class (by the pool, which imports Ray).
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ctx = ray.get_runtime_context()
    name = f"pytest-sweep-state-{ctx.get_job_id()}-{time.monotonic_ns()}"
    handle = actor_class.options(  # type: ignore[attr-defined]
        name=name,
        num_cpus=0,
        max_restarts=0,
        max_task_retries=0,
        max_concurrency=1,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=ctx.get_node_id(), soft=False),
    ).remote(str(sweep_dir), study)
    return handle, {"name": name, "namespace": ctx.namespace}
