"""A sampled sweep's items: ask the study for a configuration, run it, tell the result.

``--sweep-search=random|qmc|tpe|gp|cmaes|nsga2`` turns a range config into ``--sweep-trials`` items
(``trial_001 ...``, one per seed when ``CONFIG_SEED`` is swept).  When one starts it asks the
:class:`~pytest_sweep.matrix.study.SearchStore` for its values; the trial is then made, typed,
validated and run exactly like a grid trial, so its record carries the drawn values as swept keys
and every report and ``--sweep-resume`` work unchanged.  When it ends, the store is told.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sweep.matrix.files import SUMMARY_JSON
from pytest_sweep.matrix.objectives import METRICS, metric_value
from pytest_sweep.matrix.records import METRIC_KEYS
from pytest_sweep.matrix.runner import Outcome, one_line
from pytest_sweep.matrix.sources import Source, Sources
from pytest_sweep.matrix.space import SEED_KEY
from pytest_sweep.matrix.study import (
    JOURNAL_FILE,
    JournalSearchStore,
    SearchStore,
    SeedResult,
    StudyError,
    worker_index,
)
from pytest_sweep.matrix.trial import TrialFailed

if TYPE_CHECKING:
    from pytest_sweep.matrix.collect import SampledItem
    from pytest_sweep.matrix.runner import Runner

#: Record fields a reused result takes from the study.
_KEPT = (*METRIC_KEYS, "trial_dir", "rung", "stop_reason", "feasible")


def _result(record: dict[str, Any]) -> SeedResult:
    status = str(record.get("status"))
    return SeedResult(
        status,
        {m: metric_value(record, m) for m in METRICS},
        {k: record.get(k) for k in _KEPT if record.get(k) is not None},
    )


class Search:
    """The sampled search of a process that runs trials (serial run, xdist worker, Ray actor)."""

    def __init__(self, sources: Sources, source: Source, store: SearchStore, name: str) -> None:
        self.sources = sources
        self.source = source
        self.store = store
        self.name = name

    def run(self, item: SampledItem, runner: Runner) -> Outcome:
        slot = item.trial
        seed = slot.swept.get(SEED_KEY, "")
        try:
            proposal = self.store.propose(slot.name, seed)
        except Exception as exc:  # a damaged study: this item fails, the sweep goes on
            record = self.sources.base_record(slot, item.nodeid)
            error = TrialFailed(f"the search study could not propose a configuration: {one_line(exc)}")
            record.update(status="failed", error=str(error), worker=runner.worker, search=self.name)
            return Outcome(record, error)
        fields = {"search": self.name, "study_trial": proposal.number}
        try:
            trial = self.sources.sampled_trial(self.source, slot, proposal.raw)
        except TrialFailed as exc:
            record = self.sources.base_record(slot, item.nodeid)
            record.update(status="failed", error=str(exc), worker=runner.worker, **fields)
            self._tell(slot.name, seed, proposal.number, record)
            return Outcome(record, exc)
        record = self.sources.base_record(trial, item.nodeid)
        record.update(worker=runner.worker, **fields)
        if proposal.duplicate_of is not None:
            why = (
                f"the sampler proposed {proposal.duplicate_of}'s configuration again (every draw repeated a "
                "finished one); its result was reused"
            )
            earlier = proposal.reuse or {}
            record.update({k: v for k, v in (earlier.get("record") or {}).items() if k != "trial_dir"})
            record.update(status="skipped", error=why, duplicate_of=proposal.duplicate_of)
            return Outcome(record, pytest.skip.Exception(why))
        if proposal.reuse is not None:
            record.update(proposal.reuse.get("record") or {})
            record.update(status=proposal.reuse["status"], reused=True)
            return Outcome(record)
        reason = self.sources.validate(trial)
        if reason:
            record.update(status="skipped", error=reason)
            self._tell(slot.name, seed, proposal.number, record)
            return Outcome(record, pytest.skip.Exception(reason))
        outcome = runner.run(trial, item.nodeid)
        outcome.record.update(fields)
        problem = self._tell(slot.name, seed, proposal.number, outcome.record)
        if problem is not None and outcome.error is None:
            return Outcome(outcome.record, TrialFailed(problem))
        return outcome

    def _tell(self, slot: str, seed: str, number: int, record: dict[str, Any]) -> str | None:
        try:
            self.store.report(slot, seed, number, _result(record))
        except Exception as exc:
            return f"trained, but the search study could not be told ({one_line(exc)}); the record is kept"
        return None


SEARCH_KEY = pytest.StashKey[Search]()
#: The controller's study (every process that is not a worker), for a backend that holds it itself.
STUDY_KEY = pytest.StashKey[JournalSearchStore]()


def configure(config: pytest.Config, sources: Sources, sweep_dir: Path, *, runs_trials: bool) -> None:
    """Check a sampled search before anything runs, and give a process that runs trials its :class:`Search`."""
    settings = sources.search
    if not settings.sampled:
        return
    source = sources.sources[0]
    assert source.space is not None
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    store = JournalSearchStore(
        sweep_dir,
        source.space,
        settings.search,
        seed=settings.seed,
        objectives=settings.objectives,
        constraints=settings.constraints,
        trials=settings.trials or 1,
        worker_index=worker_index(sources.worker),
    )
    if workerinput is None and sources.options.resume is not None and not config.option.collectonly:
        _check_resumed(store, sweep_dir)
    if workerinput is None:
        config.stash[STUDY_KEY] = store  # a Ray controller hands it to the actor that holds it (ray/state.py)
    if runs_trials:
        from pytest_sweep.matrix.ray.state import RaySearchStore, worker_state  # no Ray import here

        held = worker_state(config)  # a Ray actor's session: the study lives with the controller
        config.stash[SEARCH_KEY] = Search(
            sources, source, RaySearchStore(held) if held is not None else store, settings.search
        )


def _check_resumed(store: JournalSearchStore, sweep_dir: Path) -> None:
    journal = sweep_dir / JOURNAL_FILE
    if not journal.exists():
        if (sweep_dir / SUMMARY_JSON).exists():
            raise pytest.UsageError(
                f"--sweep-resume={sweep_dir}: it holds no search study ({JOURNAL_FILE}): it was a grid sweep; "
                "resume it without --sweep-search, or start a new sampled sweep"
            )
        return
    try:
        store.check()
    except StudyError as exc:
        raise pytest.UsageError(
            f"--sweep-resume={sweep_dir}: {exc}; start a new sweep (this one's records and trial folders stay as they are)"
        ) from None
