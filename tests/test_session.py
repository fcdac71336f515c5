"""Sources.make_trial: the per-file fast path for range files builds exactly the generic trial."""

from __future__ import annotations

import dataclasses

import pytest

from pytest_sweep.matrix.controller import CONTROLLER_KEY
from pytest_sweep.matrix.resume import reusable
from pytest_sweep.matrix.sources import SOURCES_KEY

from sweep_helpers import SweepPytester


@pytest.mark.parametrize(
    "overrides",
    [[], ["--sweep-set", "CONFIG_LEARNING_RATE=0.5", "--sweep-epochs=3", "--sweep-set", "CONFIG_SEED=7"]],
    ids=["plain", "overrides-on-swept-and-fixed-keys"],
)
def test_range_fast_path_matches_the_generic_path(sweep_pytester: SweepPytester, overrides: list[str]) -> None:
    path = sweep_pytester.range_config(
        sweep_pytester.digits_config(
            "CONFIG_LEARNING_RATE=0.001|0.002",
            "CONFIG_WEIGHT_DECAY=0.0:0.05:0.1",
            "CONFIG_OPTIMIZER_SELECT_ADAMW=y",
        )
    )
    config = sweep_pytester.pytester.parseconfigure(*sweep_pytester.plugin_args, f"--range-config={path}", *overrides)
    session = config.stash[SOURCES_KEY]
    (source,) = session.sources
    assert source.kind == "range" and len(source.combinations) == 6
    generic = dataclasses.replace(source, kind="dir", shared=None)
    for combo in source.combinations:
        fast, slow = session.make_trial(source, combo), session.make_trial(generic, combo)
        assert fast.values == slow.values
        assert list(fast.raw.items()) == list(slow.raw.items())  # same keys, same order
        assert (fast.swept, fast.seed, fast.overrides) == (slow.swept, slow.seed, slow.overrides)
    trial = session.make_trial(source, source.combinations[-1])
    if overrides:
        assert trial["CONFIG_LEARNING_RATE"] == 0.5 and trial.raw["CONFIG_LEARNING_RATE"] == "0.5"
        assert trial["CONFIG_NUM_EPOCHS"] == 3 and trial.raw["CONFIG_NUM_EPOCHS"] == "3"
    else:
        assert trial["CONFIG_LEARNING_RATE"] == 0.002 and trial["CONFIG_NUM_EPOCHS"] == 2
    assert trial["CONFIG_WEIGHT_DECAY"] == 0.1
    # one seed for every trial: CONFIG_SEED itself (the default 42, or the override)
    seeds = {session.make_trial(source, combo).seed for combo in source.combinations}
    assert seeds == ({7} if overrides else {42})


def test_a_swept_seed_is_each_trials_own_seed_and_a_resume_reuses_only_the_same_seed(
    sweep_pytester: SweepPytester,
) -> None:
    path = sweep_pytester.range_config(
        sweep_pytester.digits_config("CONFIG_SEED=1|2|3", "CONFIG_WEIGHT_DECAY=0.0|0.05")
    )
    config = sweep_pytester.pytester.parseconfigure(*sweep_pytester.plugin_args, f"--range-config={path}")
    session = config.stash[SOURCES_KEY]
    (source,) = session.sources
    trials = [session.make_trial(source, combo) for combo in source.combinations]
    assert [(t.name, t.seed) for t in trials] == [
        ("config_001", 1),
        ("config_002", 1),
        ("config_003", 2),
        ("config_004", 2),
        ("config_005", 3),
        ("config_006", 3),
    ]
    trial = trials[0]
    finished = {"config_file": trial.name, "config": dict(trial.raw), "seed": 1, "test_acc": 97.5}
    done = {trial.folder: {**finished, "_folder": trial.folder}}
    assert reusable(trial, done) == (done[trial.folder], None)
    done[trial.folder]["seed"] = 7  # trained with another seed: it runs again
    assert reusable(trial, done) == (None, None)


def test_the_summary_interval_defaults_to_ten_seconds(sweep_pytester: SweepPytester) -> None:
    path = sweep_pytester.range_config(sweep_pytester.digits_config())
    args = (*sweep_pytester.plugin_args, f"--range-config={path}")
    assert sweep_pytester.pytester.parseconfigure(*args).stash[CONTROLLER_KEY].summary_interval == 10.0
    ini = sweep_pytester.pytester.parseconfigure(*args, "-o", "sweep_summary_interval=2.5")
    assert ini.stash[CONTROLLER_KEY].summary_interval == 2.5
    flag = sweep_pytester.pytester.parseconfigure(
        *args, "-o", "sweep_summary_interval=2.5", "--sweep-summary-interval=0"
    )
    assert flag.stash[CONTROLLER_KEY].summary_interval == 0.0
