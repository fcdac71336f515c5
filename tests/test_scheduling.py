"""The early-stopping rules (ASHA, median) and the shared rung store, without pytest runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix.records import SCHEMA_VERSION, TrialRecord, assign_ranks, stopped
from pytest_sweep.matrix.rungs import SqliteRungStore, Verdict
from pytest_sweep.matrix.scheduling import (
    AshaScheduler,
    MedianScheduler,
    Objective,
    asha_verdict,
    median_verdict,
    rungs,
)
from pytest_sweep.matrix.trial import Trial, TrialFailed


def trial(name: str, epochs: int = 27) -> Trial:
    return Trial(name, 1, "sweep.rc", {"CONFIG_NUM_EPOCHS": epochs}, {}, {})


# -- rungs and cutoffs -------------------------------------------------------------------------
def test_rungs_are_grace_times_eta_powers_below_the_epochs() -> None:
    assert rungs(1, 3, 27) == [1, 3, 9]
    assert rungs(2, 2, 20) == [2, 4, 8, 16]
    assert rungs(1, 3, 1) == []
    assert rungs(1, 1.5, 6) == [1, 2, 3, 5]  # rounded, never the same rung twice
    assert len(rungs(1, 2, None, limit=5)) == 5


def test_asha_keeps_the_top_third_of_a_known_sequence() -> None:
    """Results arrive one by one at a rung (η = 3): each goes on only within the top max(1, n // 3)."""
    acc = Objective()
    seen: list[float] = []
    decisions = []
    for value in (50.0, 40.0, 60.0, 55.0, 10.0, 70.0, 58.0):
        decisions.append(asha_verdict(value, list(seen), 3, acc, 1).stop)
        seen.append(value)
    # 50 first: goes on; 40 < 50 (top 1 of 2); 60 best; 55 < 60 (top 1 of 4); 10; 70 best (top 2 of 6);
    # 58 against top 2 of 7 = [70, 60]: stops
    assert decisions == [False, True, False, True, True, False, True]


def test_asha_ties_go_on_and_the_reason_names_the_cutoff() -> None:
    assert asha_verdict(60.0, [60.0, 60.0], 3, Objective(), 3) == Verdict(False)
    verdict = asha_verdict(41.2, [86.0, 90.0], 3, Objective(), 3)
    assert verdict.stop
    assert verdict.reason == "stopped at epoch 3: test_acc 41.2% below the rung's top-1/3 cutoff 90.0% (3 results)"


def test_asha_minimises_a_loss() -> None:
    loss = Objective("test_loss", "min")
    assert not asha_verdict(0.1, [0.5, 0.9], 3, loss, 1).stop
    verdict = asha_verdict(0.9, [0.5, 0.1], 3, loss, 1)
    assert verdict.stop and "test_loss 0.9 above" in verdict.reason


def test_median_rule() -> None:
    acc = Objective()
    assert not median_verdict(10.0, [], acc, 2).stop  # nothing to compare with
    assert not median_verdict(50.0, [40.0, 50.0, 90.0], acc, 2).stop  # at the median: goes on
    verdict = median_verdict(45.0, [40.0, 50.0, 90.0, 95.0], acc, 2)
    assert verdict.stop and "below the median 70.0% of 4 other trials" in verdict.reason


# -- the schedulers over a store ---------------------------------------------------------------
def test_asha_scheduler_decides_only_at_rungs(tmp_path: Path) -> None:
    asha = AshaScheduler(SqliteRungStore(tmp_path / "r.sqlite"), grace=1, eta=3)
    good, bad = trial("config_001"), trial("config_002")
    assert asha.epoch_ended(good, {"epoch": 1, "test_acc": 90.0}) is None
    assert asha.epoch_ended(bad, {"epoch": 2, "test_acc": 5.0}) is None  # not a rung
    stop = asha.epoch_ended(bad, {"epoch": 1, "test_acc": 5.0})
    assert stop is not None and stop.rung == 1 and stop.reason.startswith("stopped at epoch 1: test_acc 5.0%")
    # the decision stands: asked again (a resumed trial), the same answer, nothing new recorded
    assert asha.epoch_ended(bad, {"epoch": 1, "test_acc": 99.0}) == stop
    assert SqliteRungStore(tmp_path / "r.sqlite").values("rung", 1) == {"config_001": 90.0, "config_002": 5.0}
    # the last epoch is never a rung
    assert asha.epoch_ended(trial("config_003", epochs=1), {"epoch": 1, "test_acc": 1.0}) is None


def test_median_scheduler_warms_up_on_epochs_and_completed_trials(tmp_path: Path) -> None:
    store = SqliteRungStore(tmp_path / "r.sqlite")
    median = MedianScheduler(store, grace=2, startup=2)
    for name, acc in (("a", 80.0), ("b", 90.0)):
        assert median.epoch_ended(trial(name), {"epoch": 2, "test_acc": acc}) is None
    assert median.epoch_ended(trial("c"), {"epoch": 2, "test_acc": 10.0}) is None  # no trial completed yet
    median.trial_finished(trial("a"), {"status": "passed"})
    median.trial_finished(trial("x"), {"status": "stopped"})  # a stopped trial did not complete
    assert store.finished() == 1
    median.trial_finished(trial("b"), {"status": "passed"})
    assert median.epoch_ended(trial("d"), {"epoch": 1, "test_acc": 10.0}) is None  # within the grace epochs
    stop = median.epoch_ended(trial("d"), {"epoch": 2, "test_acc": 10.0})
    assert stop is not None and "median" in stop.reason


def test_a_missing_metric_fails_the_trial_with_one_line(tmp_path: Path) -> None:
    asha = AshaScheduler(SqliteRungStore(tmp_path / "r.sqlite"), objective=Objective("val_f1"))
    with pytest.raises(TrialFailed, match=r"--sweep-metric=val_f1: .* no number val_f1 \(they have epoch, test_acc\)"):
        asha.epoch_ended(trial("a"), {"epoch": 1, "test_acc": 3.0})


# -- the store under several processes ---------------------------------------------------------
WRITER = textwrap.dedent(
    """
    import sys
    from pytest_sweep.matrix.rungs import SqliteRungStore, Verdict
    store = SqliteRungStore(__import__("pathlib").Path(sys.argv[1]))
    who = sys.argv[2]
    for i in range(int(sys.argv[3])):
        # every decision sees every value recorded before it: len(others) counts them
        store.decide("rung", 1, f"{who}-{i}", float(i), lambda v, others: Verdict(False, str(len(others))))
    """
)


def test_the_store_loses_no_update_under_processes_writing_at_once(tmp_path: Path) -> None:
    path = tmp_path / "rungs.sqlite"
    n, each = 4, 60
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"p{k}", str(each)], stderr=subprocess.PIPE)
        for k in range(n)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    store = SqliteRungStore(path)
    values = store.values("rung", 1)
    assert len(values) == n * each
    # each decision saw a different number of earlier results: the transactions were serial
    db = store._connect()
    seen = sorted(int(r) for (r,) in db.execute("SELECT reason FROM results"))
    assert seen == list(range(n * each))


# -- records -----------------------------------------------------------------------------------
def test_schema_2_upgrades_a_version_1_record_and_ranks_stopped_apart() -> None:
    old: dict[str, Any] = {"schema_version": 1, "config_file": "config_001", "status": "passed", "test_acc": 9.0}
    out = TrialRecord.normalize(old)
    assert out["schema_version"] == SCHEMA_VERSION == 2
    assert out["rung"] is None and out["stop_reason"] is None
    recs = [
        TrialRecord.normalize({"config_file": "b", "status": "stopped", "test_acc": 20.0, "rung": 1}),
        TrialRecord.normalize({"config_file": "a", "status": "stopped", "test_acc": 30.0, "rung": 3}),
        out,
    ]
    assert [r["config_file"] for r in stopped(recs)] == ["a", "b"]
    assert TrialRecord.normalize({"status": "stopped"})["status"] == "stopped"


def test_ranks_put_completed_trials_first_then_stopped_ones() -> None:
    recs = [
        TrialRecord.normalize({"config_file": "config_001", "status": "stopped", "test_acc": 95.0, "rung": 3}),
        TrialRecord.normalize({"config_file": "config_002", "status": "passed", "test_acc": 80.0}),
        TrialRecord.normalize({"config_file": "config_003", "status": "failed", "rank": 7}),
        TrialRecord.normalize({"config_file": "config_004", "status": "passed", "test_acc": 90.0}),
        TrialRecord.normalize({"config_file": "config_005", "status": "stopped", "test_acc": 10.0, "rung": 1}),
    ]
    assign_ranks(recs)
    assert [r["rank"] for r in recs] == [3, 2, None, 1, 4]


def test_the_analysis_and_table_list_stopped_trials_apart() -> None:
    from pytest_sweep.plugins.analysis import render_analysis, render_table

    reason = "stopped at epoch 1: test_acc 10.0% below the rung's top-1/3 cutoff 83.6% (3 results)"
    recs = [
        TrialRecord.normalize({"config_file": "config_001", "status": "passed", "test_acc": 96.0, "epochs_run": 3}),
        TrialRecord.normalize(
            {
                "config_file": "config_002",
                "status": "stopped",
                "test_acc": 10.0,
                "epochs_run": 1,
                "rung": 1,
                "stop_reason": reason,
            }
        ),
    ]
    text = render_analysis(recs)
    assert "Passed: 1 | Stopped early: 1 | Failed: 0 | Skipped: 0 | Not run: 0" in text
    assert "Total configurations tested: 2" in text
    assert (
        f"STOPPED EARLY (not ranked; last test accuracy): 1\n{'-' * 40}\nconfig_002: 10.00% after 1 epoch; {reason}"
        in text
    )
    assert "config_002" not in text.split("STOPPED EARLY")[0]  # not among the best or the top 10
    assert "config_002" not in render_table(recs)
