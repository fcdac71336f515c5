"""Collection: one collector per range file (or generated config dir), one item per trial."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix.files import OUTPUT_LOG
from pytest_sweep.matrix.records import TrialRecord
from pytest_sweep.matrix.runner import RUNNER_KEY
from pytest_sweep.matrix.sources import SOURCES_KEY, Source
from pytest_sweep.matrix.stages import make_stages
from pytest_sweep.matrix.trial import Stage, Trial, TrialFailed, stage_id


class SweepItem(pytest.Item):
    """One combination of a sweep; running it trains and evaluates one model.

    With ``stage`` (ASHA's promotion mode, :mod:`.stages`) it runs one stage of its trial.
    """

    def __init__(
        self, *, trial: Trial, skip_reason: str | None = None, stage: Stage | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.trial = trial
        self.skip_reason = skip_reason
        self.stage = stage
        self.trial_dir: Path | None = None
        self.keywords[trial.name] = True
        if skip_reason:
            self.add_marker(pytest.mark.skip(reason=skip_reason))

    def runtest(self) -> None:
        runner = self.config.stash[RUNNER_KEY]
        outcome = runner.run(self.trial, self.nodeid, self.stage)
        self.trial_dir = runner.dir / self.trial.folder
        self.user_properties.append(TrialRecord.wire(outcome.record))
        if outcome.stop_session:
            self.session.shouldstop = outcome.stop_session
        if outcome.unsafe is not None:
            runner.cannot_go_on(self.session, outcome)
        if outcome.error is not None:
            raise outcome.error
        if outcome.skip is not None:
            pytest.skip(outcome.skip)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, TrialFailed):
            where = f" (log: {self.trial_dir / OUTPUT_LOG})" if self.trial_dir else ""
            return f"{self.trial.name}: {excinfo.value}{where}"
        return super().repr_failure(excinfo, style="short")

    def reportinfo(self) -> tuple[Path, int | None, str]:
        # a line number is required: pytest reports a skip marker at the item's location
        # (``assert line is not None`` in TestReport.from_item_and_call -> INTERNALERROR)
        return self.path, 0, f"sweep trial {self.name}"


class SampledItem(SweepItem):
    """One trial of a sampled search (``trial_007``): its values are drawn when it starts."""

    def runtest(self) -> None:
        from pytest_sweep.matrix.search import SEARCH_KEY

        runner = self.config.stash[RUNNER_KEY]
        outcome = self.config.stash[SEARCH_KEY].run(self, runner)
        self.trial_dir = runner.dir / str(outcome.record.get("trial_dir") or self.trial.folder)
        self.user_properties.append(TrialRecord.wire(outcome.record))
        if outcome.stop_session:  # preempted (SIGTERM): the trial checkpointed, no further item starts
            self.session.shouldstop = outcome.stop_session
        if outcome.error is not None:
            raise outcome.error
        if outcome.skip is not None:
            pytest.skip(outcome.skip)


def _items(parent: pytest.Collector, source: Source) -> Iterator[SweepItem]:
    sources = parent.config.stash[SOURCES_KEY]
    hook = parent.config.hook
    kind = SampledItem if source.space is not None else SweepItem
    for combo in source.combinations:
        trial = sources.make_trial(source, combo)
        reason = None if source.space is not None else sources.validate(trial)
        # The node id is given as a string so that pytest parses "config_001[...]" into a name and
        # params, exactly as it parses the ids it stored; otherwise --lf/--sw/--nf never match.
        # a sampled trial's values are drawn when it starts: it is never split into stages
        # (promotion mode with a search is a usage error, plugins/schedulers.py)
        staged = not reason and source.space is None
        ends = hook.pytest_sweep_trial_stages(trial=trial, config=parent.config) if staged else None
        stages = make_stages(list(ends)) if ends else []
        if not stages:
            nodeid = f"{parent.nodeid}::{trial.id}"
            yield kind.from_parent(parent, name=trial.id, nodeid=nodeid, trial=trial, skip_reason=reason)
            continue
        for stage in stages:  # every stage its own Trial: the stash is per item
            name = stage_id(trial.id, stage)
            nodeid = f"{parent.nodeid}::{name}"
            yield SweepItem.from_parent(
                parent, name=name, nodeid=nodeid, trial=sources.make_trial(source, combo), stage=stage
            )


class SweepFile(pytest.File):
    """A range config file given with ``--range-config``."""

    source: Source

    def collect(self) -> Iterator[SweepItem]:
        yield from _items(self, self.source)


class SweepDir(pytest.Directory):
    """A folder of generated configs given with ``--config-dir``."""

    source: Source

    def collect(self) -> Iterator[SweepItem]:
        yield from _items(self, self.source)
