"""The runtime estimate: intervals, pytest's cache of timings, no child process unless asked.

The end-to-end tests run a toy plugin trainer (no torch) in process: its trials take a known
time (``time.sleep``), fail on request, and the estimate after collection and the line after each
trial are read from the terminal.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix import estimate
from pytest_sweep.matrix.estimate import Clock, Span, format_span

from sweep_helpers import SweepPytester

SLEEPY = """\
import time
import pytest
from pytest_sweep.matrix import Symbol, TrialFailed


@pytest.hookimpl
def pytest_sweep_declare_symbols():
    return [
        Symbol("CONFIG_NAP", "float", 0.0, "Seconds the toy trainer sleeps"),
        Symbol("CONFIG_FAIL", "str", "n", "y: the trial fails at once"),
    ]


@pytest.hookimpl
def pytest_sweep_describe_trial(trial):
    return "sleepy"


class Sleepy:
    def run(self, trial, ctx):
        if trial["CONFIG_FAIL"] == "y":
            raise TrialFailed("failed on purpose")
        time.sleep(trial["CONFIG_NAP"])
        return {"test_acc": 50.0, "training_time": trial["CONFIG_NAP"]}


@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    return Sleepy()
"""


@pytest.fixture
def sleepy(sweep_pytester: SweepPytester) -> SweepPytester:
    sweep_pytester.pytester.makeconftest(SLEEPY)
    return sweep_pytester


# -- intervals -------------------------------------------------------------------------------------


def test_one_measured_time_stands_for_an_interval_around_it() -> None:
    assert Span.of([100.0]) == Span(70.0, 150.0)
    assert Span.of([10.0, 20.0, 15.0]) == Span(9.0, 22.0)


@pytest.mark.parametrize(
    ("low", "high", "text"),
    [
        (42.0, 71.0, "about 42-71 s"),
        (0.12, 0.38, "under 1 s"),
        (0.5, 1.7, "about 0.5-2 s"),
        (156.0, 290.0, "about 2-5 min"),  # 2.6-4.8 min, rounded outward
        (45 * 60.0, 80 * 60.0, "about 45-80 min"),
        (2.3 * 3600, 4.1 * 3600, "about 2-5 h"),
        (60.0, 60.0, "1.0 min"),  # a user's own figure: a number
        (30.0, 30.2, "about 30-31 s"),  # never a zero-width interval
    ],
)
def test_an_interval_reads_as_about_low_to_high(low: float, high: float, text: str) -> None:
    assert format_span(Span(low, high)) == text


# -- the clock: what re-estimates the time left ------------------------------------------------------


class _Sources:
    """What the clock asks the sweep's sources: the trainer description of a trial."""

    def describe(self, trial: Any) -> str:
        return "toy"


def _trial(name: str) -> Any:
    from pytest_sweep.matrix.trial import Trial

    return Trial(name=name, index=0, source="s", values={"CONFIG_DEVICE": "cpu"}, raw={}, swept={})


def test_failed_trials_never_shorten_the_time_left(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure()
    clock = Clock(config, _Sources())  # type: ignore[arg-type]
    trials = [_trial(f"config_00{i}") for i in range(1, 6)]
    clock.start(trials)
    assert clock.left(1) == "time left not known until a trial passes"
    clock.finished(trials[0], {"status": "failed"}, 0.5)
    assert clock.left(1) == "time left not known until a trial passes"
    clock.finished(trials[1], {"status": "passed"}, 100.0)
    # 3 left x 70-150 s
    assert clock.left(1) == "about 3-8 min left (from the first finished trial)"
    clock.finished(trials[2], {"status": "failed"}, 0.1)
    assert clock.left(1) == "about 2-5 min left (from the first finished trial)"  # 2 left, same per trial
    clock.finished(trials[3], {"status": "stopped"}, 60.0)
    assert clock.left(2) == "about 27-55 s left (from 2 finished trials)"  # 1 left: 54-110 s, 2 workers
    clock.finished(trials[4], {"status": "passed"}, 100.0)
    assert clock.left(1) is None


def test_a_process_first_trial_leaves_the_estimate_once_others_finished(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure()
    clock = Clock(config, _Sources())  # type: ignore[arg-type]
    trials = [_trial(f"config_{i:03d}") for i in range(1, 12)]
    clock.start(trials)
    clock.finished(trials[0], {"status": "passed", "worker": "main"}, 40.0)  # imports torch, loads the data
    clock.finished(trials[1], {"status": "passed", "worker": "main"}, 10.0)
    assert clock.left(1) == "about 1-7 min left (from 2 finished trials)"  # 9 x 9-44 s: the first still counts
    clock.finished(trials[2], {"status": "passed", "worker": "main"}, 12.0)
    assert clock.left(1) == "about 1-2 min left (from 3 finished trials)"  # 8 x 9-13.2 s: 72-106 s


def test_a_reused_trial_took_no_time(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure()
    clock = Clock(config, _Sources())  # type: ignore[arg-type]
    trials = [_trial("a"), _trial("b")]
    clock.start(trials)
    clock.finished(trials[0], {"status": "passed", "reused": True}, 0.01)
    assert clock.left(1) == "time left not known until a trial passes"


def test_passed_times_go_to_pytests_cache_and_hostile_entries_are_ignored(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure()
    key = estimate.timing_key("toy", "cpu")
    assert key.startswith("sweep/timings/") and key != estimate.timing_key("toy", "cuda")
    for value in ("abc", None, [1, "x", True, -3, float("inf")], {"seconds": "12"}, {"seconds": [True, -1, "3"]}):
        config.cache.set(key, value)
        assert estimate.cached_seconds(config, key) == []
    config.cache.set(key, {"seconds": [5, "x", 7.5]})
    assert estimate.cached_seconds(config, key) == [5.0, 7.5]
    for i in range(12):
        estimate.remember(config, key, float(i), "toy", "cpu")
    assert estimate.cached_seconds(config, key) == [float(i) for i in range(2, 12)]  # the newest 10
    estimate.remember(config, key, float("nan"), "toy", "cpu")  # never stored
    assert len(estimate.cached_seconds(config, key)) == 10


def test_a_run_without_the_cache_plugin_still_estimates(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure("-p", "no:cacheprovider")
    assert estimate.cached_seconds(config, "sweep/timings/x") == []
    estimate.remember(config, "sweep/timings/x", 3.0, "toy", "cpu")  # nothing to write to: no error


# -- end to end ------------------------------------------------------------------------------------


def test_collection_never_starts_a_child_process_unless_asked(
    sweep_pytester: SweepPytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The built-in trainer times a few steps in a child process only with --sweep-estimate."""
    sweep_pytester.range_config(sweep_pytester.digits_config("CONFIG_LEARNING_RATE=0.001|0.003"))
    started: list[Any] = []

    def run(*args: Any, **kwargs: Any) -> Any:
        started.append(args)
        raise OSError("no child process in this test")

    monkeypatch.setattr(subprocess, "run", run)
    result = sweep_pytester.run("--range-config=sweep.rc", "--collect-only", "-q")
    assert result.ret == 0 and started == []
    result.stdout.fnmatch_lines(["sweep: estimated runtime not known yet (no timing of this trainer on this machine)*"])
    result = sweep_pytester.run("--range-config=sweep.rc", "--collect-only", "-q", "--sweep-estimate")
    assert result.ret == 0 and len(started) == 1  # asked: one timing per trainer (it failed here: no figure)
    result.stdout.fnmatch_lines(["sweep: estimated runtime not known yet*"])


def test_the_first_passed_trial_sets_the_time_left_and_the_next_run_starts_from_the_cache(
    sleepy: SweepPytester,
) -> None:
    sleepy.range_config('CONFIG_NAP=0.2\nCONFIG_FAIL="y"|"n"\nCONFIG_SEED=1|2\n')
    result = sleepy.run("--range-config=sweep.rc", "--sweep-output=out")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "sweep: estimated runtime not known yet (no timing of this trainer on this machine)*",
            # the two failures come first: they never make a time left
            "sweep: config_001 FAILED: failed on purpose in * s (main) | 1 of 4 done, 1 failed | time left not known until a trial passes",
            "sweep: config_002 FAILED: failed on purpose in * s (main) | 2 of 4 done, 2 failed | time left not known until a trial passes",
            "sweep: config_003 passed 50.00% in 0.2 s (main) | 3 of 4 done, 2 failed | best config_003 50.00% "
            "| * s left (from the first finished trial)",
            "sweep: config_004 passed 50.00% in 0.2 s (main) | 4 of 4 done, 2 failed | best config_003 50.00%",
        ]
    )
    cached = [p for p in (sleepy.path / ".pytest_cache" / "v" / "sweep" / "timings").iterdir()]
    assert len(cached) == 1
    seconds = json.loads(cached[0].read_text())["seconds"]
    assert len(seconds) == 2 and all(0.2 <= s < 30 for s in seconds)  # the passed trials only
    again = sleepy.run("--range-config=sweep.rc", "--collect-only", "-q")
    again.stdout.fnmatch_lines(["sweep: estimated runtime * (4 x *; measured: 2 earlier trials on this machine)"])
    # another device is another key: no figure for it yet
    other = sleepy.run("--range-config=sweep.rc", "--collect-only", "-q", "--sweep-set", "CONFIG_DEVICE=cuda")
    other.stdout.fnmatch_lines(["sweep: estimated runtime not known yet*"])


def test_a_corrupt_cache_entry_is_no_figure_and_no_error(sleepy: SweepPytester) -> None:
    sleepy.range_config("CONFIG_NAP=0|0.01\n")
    sleepy.run("--range-config=sweep.rc", "--sweep-output=out").assert_outcomes(passed=2)
    (entry,) = (sleepy.path / ".pytest_cache" / "v" / "sweep" / "timings").iterdir()
    for garbage in ("{not json", '"text"', '{"seconds": [NaN, -1, true]}', ""):
        entry.write_text(garbage)
        result = sleepy.run("--range-config=sweep.rc", "--collect-only", "-q")
        assert result.ret == 0, garbage
        result.stdout.fnmatch_lines(["sweep: estimated runtime not known yet*"])
    entry.unlink()
    entry.mkdir()  # a folder where the entry should be: unreadable and unwritable
    result = sleepy.run("--range-config=sweep.rc", "--sweep-output=out2")
    result.assert_outcomes(passed=2)
    assert "Traceback" not in result.stdout.str()


def test_the_estimate_names_earlier_sweep_folders_when_the_cache_is_off(sleepy: SweepPytester) -> None:
    sleepy.range_config("CONFIG_NAP=0|0.01\n")
    sleepy.run("--range-config=sweep.rc", "--sweep-output=out", "-p", "no:cacheprovider").assert_outcomes(passed=2)
    result = sleepy.run(
        "--range-config=sweep.rc", "--sweep-output=out", "--collect-only", "-q", "-p", "no:cacheprovider"
    )
    (folder,) = [p.name for p in Path(sleepy.path / "out").iterdir()]
    result.stdout.fnmatch_lines([f"sweep: estimated runtime * (2 x *; measured: 2 earlier trials, newest in {folder})"])


# -- hostile input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["maybe", "2", "yes please"])
def test_a_bad_sweep_estimate_ini_value_is_a_usage_error(sweep_pytester: SweepPytester, value: str) -> None:
    sweep_pytester.pytester.makeini(f"[pytest]\nsweep_estimate = {value}\n")
    sweep_pytester.range_config(sweep_pytester.digits_config("CONFIG_LEARNING_RATE=0.001|0.003"))
    result = sweep_pytester.run("--range-config=sweep.rc", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.errlines if line] == [
        f"ERROR: ini value sweep_estimate: invalid truth value {value!r}; use true or false"
    ]


def test_the_ini_value_asks_for_the_timing_as_the_flag_does(
    sweep_pytester: SweepPytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep_pytester.pytester.makeini("[pytest]\nsweep_estimate = true\n")
    sweep_pytester.range_config(sweep_pytester.digits_config("CONFIG_LEARNING_RATE=0.001|0.003"))
    started: list[Any] = []

    def run(*args: Any, **kwargs: Any) -> Any:
        started.append(args)
        raise OSError("no child process in this test")

    monkeypatch.setattr(subprocess, "run", run)
    assert sweep_pytester.run("--range-config=sweep.rc", "--collect-only", "-q").ret == 0
    assert len(started) == 1


def test_a_run_without_a_sweep_writes_no_timing(sweep_pytester: SweepPytester) -> None:
    """Inert unless asked: a plain test run leaves pytest's cache without our key."""
    sweep_pytester.pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    sweep_pytester.run().assert_outcomes(passed=1)
    assert not (sweep_pytester.path / ".pytest_cache" / "v" / "sweep").exists()
