"""Early stopping end to end: real digits sweeps (LeNet-5, a few epochs) with ``--sweep-scheduler``.

The grid puts two good learning rates first and hopeless ones (1e-5: about 10% after an epoch)
after them, so a hopeless trial reaches the first rung after a good one recorded its result there
(serially by the order; with ``-n 2`` a hopeless trial waits for it, see ``WAIT_FOR_A_RESULT``).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from sweep_helpers import XDIST_PLUGIN_ARGS, SweepPytester, assert_usage_error

GRID = "CONFIG_LEARNING_RATE=0.01|0.003|0.00001|0.00002"
#: in grid order (interleaved is the default with a scheduler): the good trials reach the rung first
ASHA = ("--sweep-scheduler=asha", "--sweep-progress=none", "--sweep-order=grid")


def rung_values(sweep_dir: Path) -> dict[str, float]:
    db = sqlite3.connect(sweep_dir / "rungs.sqlite")
    try:
        return {t: v for t, v in db.execute("SELECT trial, value FROM results WHERE kind = 'rung' AND step = 1")}
    finally:
        db.close()


def check_stopped(sp: SweepPytester, sweep_dir: Path, parallel: bool = False) -> dict[str, dict[str, object]]:
    """config_003 and config_004 (hopeless) stopped at the first rung; in a serial run the good
    ones pass.  In parallel runs config_001 and config_002 may reach the rung together, and the
    later of the two stops when the earlier one is better (a correct asynchronous decision)."""
    records = sp.records(sweep_dir)
    statuses = [records[n]["status"] for n in sorted(records)]
    if parallel:
        assert statuses[2:] == ["stopped", "stopped"] and "passed" in statuses[:2], statuses
    else:
        assert statuses == ["passed", "passed", "stopped", "stopped"]
    for name in ("config_003", "config_004"):
        rec = records[name]
        assert rec["schema_version"] == 2
        assert rec["epochs_run"] == 1 and rec["rung"] == 1
        assert str(rec["stop_reason"]).startswith("stopped at epoch 1: test_acc ")
        assert "below the rung's top-1/3 cutoff" in str(rec["stop_reason"])
    for rec in records.values():
        if rec["status"] == "passed":
            assert rec["epochs_run"] == 3 and rec["rung"] is None and rec["stop_reason"] is None
    analysis = (sweep_dir / "sweep_analysis.txt").read_text(encoding="utf-8")
    n_stopped = statuses.count("stopped")
    assert f"Passed: {4 - n_stopped} | Stopped early: {n_stopped} | Failed: 0" in analysis
    assert f"STOPPED EARLY (not ranked; last test accuracy): {n_stopped}" in analysis
    # the JSON ranks the completed trials first, then the stopped ones
    ranks = sorted((int(str(r["rank"])), r["status"]) for r in records.values())
    assert [status for _, status in ranks] == sorted(statuses, key=["passed", "stopped"].index)
    assert [rank for rank, _ in ranks] == [1, 2, 3, 4]
    metrics = json.loads((sweep_dir / "config_003_learning_rate-0.00001" / "training_metrics.json").read_text())
    assert metrics["status"] == "stopped" and len(metrics["epochs"]) == 1
    return records


def test_serial_asha_stops_the_hopeless_trials_and_they_pass(sweep_pytester: SweepPytester) -> None:
    sp = sweep_pytester
    rc = sp.range_config(sp.digits_config("CONFIG_NUM_EPOCHS=3", GRID).replace("CONFIG_NUM_EPOCHS=2\n", ""))
    result = sp.run_subprocess(f"--range-config={rc}", *ASHA)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        ["stopped early by --sweep-scheduler: 2", "  config_00[34]: *% after 1 epoch; stopped at epoch 1: *"]
    )
    sweep_dir = sp.only_sweep_dir(sp.path / "test_matrix_results")
    check_stopped(sp, sweep_dir)
    assert len(rung_values(sweep_dir)) == 4


#: xdist may hand a worker a hopeless trial first, while the other starts a good one: the hopeless
#: trial then waits to start until a result is at the first rung (only good trials put one there).
WAIT_FOR_A_RESULT = """
import sqlite3
import time

import pytest


@pytest.hookimpl
def pytest_sweep_trial_started(trial):
    if trial["CONFIG_LEARNING_RATE"] >= 1e-4:
        return
    path = trial.context.dir.parent / "rungs.sqlite"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            db = sqlite3.connect(path)
            try:
                if db.execute("SELECT COUNT(*) FROM results WHERE step = 1").fetchone()[0]:
                    return
            finally:
                db.close()
        except sqlite3.Error:
            pass
        time.sleep(0.1)
"""


def test_xdist_workers_share_the_rungs(sweep_pytester: SweepPytester) -> None:
    sp = sweep_pytester
    sp.pytester.makeconftest(WAIT_FOR_A_RESULT)
    rc = sp.range_config(sp.digits_config("CONFIG_NUM_EPOCHS=3", GRID).replace("CONFIG_NUM_EPOCHS=2\n", ""))
    result = sp.pytester.runpytest_subprocess(*XDIST_PLUGIN_ARGS, "-n", "2", f"--range-config={rc}", *ASHA)
    result.assert_outcomes(passed=4)
    sweep_dir = sp.only_sweep_dir(sp.path / "test_matrix_results")
    records = check_stopped(sp, sweep_dir, parallel=True)
    assert {records[n]["worker"] for n in records} == {"gw0", "gw1"}
    assert len(rung_values(sweep_dir)) == 4  # both workers' results in the one store


KILLER = """
import os, signal, pytest

@pytest.hookimpl
def pytest_sweep_trial_finished(trial, record):
    if os.environ.get("KILL_AFTER") == trial.name:
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_resume_after_kill_keeps_the_decisions(sweep_pytester: SweepPytester, monkeypatch: pytest.MonkeyPatch) -> None:
    sp = sweep_pytester
    sp.pytester.makeconftest(KILLER)
    rc = sp.range_config(sp.digits_config("CONFIG_NUM_EPOCHS=3", GRID).replace("CONFIG_NUM_EPOCHS=2\n", ""))
    monkeypatch.setenv("KILL_AFTER", "config_003")
    killed = sp.run_subprocess(f"--range-config={rc}", *ASHA)
    assert killed.ret != 0
    sweep_dir = sp.only_sweep_dir(sp.path / "test_matrix_results")
    before = rung_values(sweep_dir)
    assert set(before) == {"config_001_learning_rate-0.01", "config_002_learning_rate-0.003"} | {
        "config_003_learning_rate-0.00001"
    }
    monkeypatch.delenv("KILL_AFTER")
    resumed = sp.run_subprocess(f"--range-config={rc}", f"--sweep-resume={sweep_dir}", *ASHA)
    resumed.assert_outcomes(passed=4)
    records = check_stopped(sp, sweep_dir)
    assert records["config_003"]["reused"] is True  # stopped before the kill: stays stopped, not retrained
    assert records["config_004"]["reused"] is False
    after = rung_values(sweep_dir)
    assert {k: after[k] for k in before} == before and len(after) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--sweep-scheduler=hyperband",),
            "*--sweep-scheduler=hyperband: no installed plugin provides this scheduler*",
        ),
        (("--sweep-reduction=1",), "*--sweep-reduction: 1 must be from 1.1 to 100*"),
        (("--sweep-grace-epochs=0",), "*--sweep-grace-epochs: 0 must be at least 1*"),
        (
            ("--sweep-metric=test_acc:up",),
            "*--sweep-metric: 'test_acc:up': the direction after ':' must be max or min*",
        ),
        (("--sweep-startup-trials=-1",), "*--sweep-startup-trials: -1 must be 0 or more*"),
        (("--sweep-order=zigzag",), "*--sweep-order: 'zigzag': use grid, interleaved or random*"),
    ],
)
def test_bad_option_values_are_usage_errors(sweep_pytester: SweepPytester, args: tuple[str, ...], message: str) -> None:
    rc = sweep_pytester.range_config(sweep_pytester.digits_config("CONFIG_LEARNING_RATE=0.01|0.001"))
    assert_usage_error(sweep_pytester.run(f"--range-config={rc}", *args), message)


@pytest.mark.parametrize(
    ("ini", "message"),
    [
        ("sweep_reduction = 0.5", "*ini value sweep_reduction = '0.5': 0.5 must be from 1.1 to 100*"),
        ("sweep_metric = 3x", "*ini value sweep_metric = '3x': give an epoch metric*"),
        ("sweep_order = up", "*ini value sweep_order = 'up': use grid, interleaved or random*"),
    ],
)
def test_bad_ini_values_are_usage_errors(sweep_pytester: SweepPytester, ini: str, message: str) -> None:
    sweep_pytester.pytester.makeini(f"[pytest]\n{ini}\n")
    rc = sweep_pytester.range_config(sweep_pytester.digits_config("CONFIG_LEARNING_RATE=0.01|0.001"))
    assert_usage_error(sweep_pytester.run(f"--range-config={rc}"), message)


def test_interleaved_order_spreads_the_grid(sweep_pytester: SweepPytester) -> None:
    rc = sweep_pytester.range_config(sweep_pytester.digits_config("CONFIG_LEARNING_RATE=1|2|3|4|5|6|7|8"))

    def order(*args: str) -> list[str]:
        result = sweep_pytester.run(f"--range-config={rc}", "--collect-only", "-q", *args)
        return [line.split("::")[1].split("[")[0] for line in result.stdout.lines if "::config_" in line]

    interleaved = [f"config_00{i}" for i in (1, 5, 3, 7, 2, 6, 4, 8)]
    assert order("--sweep-order=interleaved") == interleaved
    assert order("--sweep-scheduler=asha") == interleaved  # the default with a scheduler
    assert order("--sweep-scheduler=median", "--sweep-order=grid") == sorted(interleaved)
    assert order() == sorted(interleaved)  # without a scheduler: grid order


# -- a plugin trainer whose accuracy is a known function of a swept value --------------------------
KNOWN = """
import pytest
from pytest_sweep.matrix import Stop, Symbol


@pytest.hookimpl
def pytest_sweep_declare_symbols():
    return [Symbol("CONFIG_QUALITY", "int", 1, "How good the trial is")]


class Known:
    def run(self, trial, ctx):
        acc = 0.0
        for epoch in range(1, trial["CONFIG_NUM_EPOCHS"] + 1):
            acc = 10.0 * trial["CONFIG_QUALITY"] + epoch
            if ctx.epoch_ended({"epoch": epoch, "test_acc": acc}):
                break
        return {"test_acc": acc, "epochs_run": epoch}


@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    return Known()


class EveryTwo:
    def epoch_ended(self, trial, metrics):
        return Stop(2, "stopped at epoch 2: every trial stops there") if metrics["epoch"] == 2 else None

    def trial_finished(self, trial, record):
        pass


@pytest.hookimpl
def pytest_sweep_make_scheduler(config, sweep_dir):
    if config.getoption("sweep_scheduler") == "every2":
        return EveryTwo()
"""
KNOWN_RANGE = "CONFIG_NUM_EPOCHS=4\nCONFIG_QUALITY=5|1|9|2|8|3\n"


def test_asha_on_a_known_function_stops_the_hopeless_half_at_the_first_rung(sweep_pytester: SweepPytester) -> None:
    """η = 2, rungs at epochs 1 and 2; accuracy = 10 × quality + epoch, trials in the order 5 1 9 2 8 3.

    Rung 1: 5 (first) goes on; 1 (top 1 of 2 is 51) stops; 9 best; 2 (top 2 of 4 from 51) stops;
    8 (top 2 of 5: 91, 81) goes on; 3 (top 3 of 6 from 51) stops.  Rung 2: 5 first, 9 best, 8 (top 1
    of 3 is 92) stops.
    """
    sp = sweep_pytester
    sp.pytester.makeconftest(KNOWN)
    rc = sp.range_config(KNOWN_RANGE)
    result = sp.run(f"--range-config={rc}", *ASHA, "--sweep-reduction=2")
    result.assert_outcomes(passed=6)
    records = sp.records(sp.only_sweep_dir(sp.path / "test_matrix_results"))
    got = {r["CONFIG_QUALITY"]: (r["status"], r["epochs_run"], r["rung"]) for r in records.values()}
    assert got == {
        5: ("passed", 4, None),
        1: ("stopped", 1, 1),
        9: ("passed", 4, None),
        2: ("stopped", 1, 1),
        8: ("stopped", 2, 2),
        3: ("stopped", 1, 1),
    }
    stop_reason = {r["CONFIG_QUALITY"]: r["stop_reason"] for r in records.values()}
    assert stop_reason[2] == "stopped at epoch 1: test_acc 21.0% below the rung's top-1/2 cutoff 51.0% (4 results)"
    assert stop_reason[8] == "stopped at epoch 2: test_acc 82.0% below the rung's top-1/2 cutoff 92.0% (3 results)"


def test_a_plugin_scheduler_wins_over_the_built_in(sweep_pytester: SweepPytester) -> None:
    sp = sweep_pytester
    sp.pytester.makeconftest(KNOWN)
    rc = sp.range_config(KNOWN_RANGE)
    result = sp.run(f"--range-config={rc}", "--sweep-scheduler=every2", "--sweep-progress=none", "--sweep-order=grid")
    result.assert_outcomes(passed=6)
    records = sp.records(sp.only_sweep_dir(sp.path / "test_matrix_results"))
    assert {(r["status"], r["epochs_run"], r["rung"], r["stop_reason"]) for r in records.values()} == {
        ("stopped", 2, 2, "stopped at epoch 2: every trial stops there")
    }


def test_median_on_a_known_function(sweep_pytester: SweepPytester) -> None:
    """One completed trial warms the rule up; then each trial below the others' median stops."""
    sp = sweep_pytester
    sp.pytester.makeconftest(KNOWN)
    rc = sp.range_config(KNOWN_RANGE)
    result = sp.run(
        f"--range-config={rc}",
        "--sweep-scheduler=median",
        "--sweep-startup-trials=1",
        "--sweep-progress=none",
        "--sweep-order=grid",
    )
    result.assert_outcomes(passed=6)
    records = sp.records(sp.only_sweep_dir(sp.path / "test_matrix_results"))
    got = {r["CONFIG_QUALITY"]: (r["status"], r["epochs_run"]) for r in records.values()}
    assert got == {
        5: ("passed", 4),
        1: ("stopped", 1),
        9: ("passed", 4),
        2: ("stopped", 1),
        8: ("passed", 4),
        3: ("stopped", 1),
    }
    reasons = {r["CONFIG_QUALITY"]: r["stop_reason"] for r in records.values()}
    assert reasons[2] == "stopped at epoch 1: test_acc 21.0% below the median 51.0% of 3 other trials at this epoch"
