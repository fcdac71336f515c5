"""The CI gate (``--sweep-compare-fail``, ``pytest-sweep compare --fail``): lost results fail it.

A configuration that passed in the baseline and is now stopped, skipped, not run, or passed
without its metric has lost its result: the gate fails and names it.  A baseline with nothing
in common with the sweep fails too.  A trial stopped in both sweeps by the same scheduler is
compared at its rung.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from synthetic import LANDSCAPE, grid_records

from sweep_helpers import SweepPytester

AXES = {"CONFIG_LEARNING_RATE": ["0.001", "0.003"], "CONFIG_WEIGHT_DECAY": ["0.0", "0.05"]}
ASHA_REASON = "stopped at epoch {rung}: test_acc {acc:.2f}% below the rung's top-1/3 cutoff 90.00% (4 results)"
MEDIAN_REASON = "stopped at epoch {rung}: test_acc {acc:.2f}% below the median 90.00% of 3 other trials at this epoch"


def _sweep(accs: list[float]) -> list[dict[str, Any]]:
    table = dict(zip([("0.001", "0.0"), ("0.001", "0.05"), ("0.003", "0.0"), ("0.003", "0.05")], accs, strict=True))
    return grid_records(AXES, lambda v: table[(v["CONFIG_LEARNING_RATE"], v["CONFIG_WEIGHT_DECAY"])])


def _write(folder: Path, records: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True)
    (folder / "sweep_summary.json").write_text(json.dumps(records))
    return folder


def _compare(tmp_path: Path, then: list[dict[str, Any]], now: list[dict[str, Any]], *fails: str) -> Any:
    a, b = _write(tmp_path / "a", then), _write(tmp_path / "b", now)
    script = Path(sys.executable).with_name("pytest-sweep")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pytest_sweep.cli"]
    args = [arg for fail in fails for arg in ("--fail", fail)]
    return subprocess.run([*command, "compare", str(a), str(b), *args], capture_output=True, text=True, timeout=120)


def test_every_lost_result_fails_the_gate_and_is_named(tmp_path: Path) -> None:
    then = _sweep([90.0, 91.0, 92.0, 93.0])
    now = _sweep([90.0, 91.0, 92.0, 93.0])
    now[0].update(status="stopped", rung=1, stop_reason=ASHA_REASON.format(rung=1, acc=40.0), test_acc=40.0)
    now[1].update(status="skipped", test_acc=None, error="no GPU")
    now[2].update(status="not_run", test_acc=None, error="sweep interrupted")
    now[3].update(test_acc=None)  # passed, but without its metric
    result = _compare(tmp_path, then, now, "test_acc:1.0")
    assert result.returncode == 1, result.stdout
    lost = [line for line in result.stdout.splitlines() if line.startswith("LOST ")]
    assert lost == [
        "LOST config_001: passed in the baseline (90.00%), stopped early now (at epoch 1)",
        "LOST config_002: passed in the baseline (91.00%), skipped now (no GPU)",
        "LOST config_003: passed in the baseline (92.00%), not run now (sweep interrupted)",
        "LOST config_004: passed in the baseline (93.00%), passed now without test_acc",
    ]


def test_a_baseline_with_nothing_in_common_fails_the_gate(tmp_path: Path) -> None:
    then = _sweep([90.0, 91.0, 92.0, 93.0])
    now = grid_records({"CONFIG_LEARNING_RATE": ["0.1", "0.2"]}, lambda v: 95.0)
    result = _compare(tmp_path, then, now, "test_acc:1.0")
    assert result.returncode == 1, result.stdout
    assert result.stdout.splitlines()[-1] == (
        "NOTHING IN COMMON: no configuration of this sweep is in the baseline (same config name and config); "
        "the gate has nothing to compare"
    )


def test_a_trial_stopped_in_both_by_the_same_scheduler_is_compared_at_its_rung(tmp_path: Path) -> None:
    then = _sweep([90.0, 91.0, 92.0, 93.0])
    now = _sweep([90.0, 91.0, 92.0, 93.0])
    for recs, accs in ((then, (40.0, 50.0, 60.0)), (now, (39.5, 45.0, 60.0))):
        for rec, acc in zip(recs[:3], accs, strict=True):
            rec.update(status="stopped", rung=1, stop_reason=ASHA_REASON.format(rung=1, acc=acc), test_acc=acc)
    now[2].update(rung=3, stop_reason=ASHA_REASON.format(rung=3, acc=60.0))  # went further: no loss
    ok = _compare(tmp_path, then, now, "test_acc:1.0")
    assert ok.returncode == 1, ok.stdout
    failing = [line for line in ok.stdout.splitlines() if line.startswith(("REGRESSION ", "LOST "))]
    assert failing == ["REGRESSION config_002: test_acc 50.00% -> 45.00% at epoch 1 (-5.00 pp, more than 1)"]


def test_stopped_now_by_another_scheduler_or_earlier_is_lost(tmp_path: Path) -> None:
    then = _sweep([90.0, 91.0, 92.0, 93.0])
    now = _sweep([90.0, 91.0, 92.0, 93.0])
    then[0].update(status="stopped", rung=3, stop_reason=ASHA_REASON.format(rung=3, acc=60.0), test_acc=60.0)
    now[0].update(status="stopped", rung=1, stop_reason=ASHA_REASON.format(rung=1, acc=55.0), test_acc=55.0)
    then[1].update(status="stopped", rung=1, stop_reason=ASHA_REASON.format(rung=1, acc=60.0), test_acc=60.0)
    now[1].update(status="stopped", rung=1, stop_reason=MEDIAN_REASON.format(rung=1, acc=60.0), test_acc=60.0)
    result = _compare(tmp_path, then, now, "test_acc:1.0")
    assert result.returncode == 1, result.stdout
    lost = [line for line in result.stdout.splitlines() if line.startswith("LOST ")]
    assert lost == [
        "LOST config_001: stopped at epoch 3 in the baseline, at epoch 1 now",
        "LOST config_002: stopped by another scheduler now (median rule; the baseline's: ASHA)",
    ]


def test_a_sweep_whose_trials_all_skip_fails_the_gate(
    sweep_pytester: SweepPytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    sp = sweep_pytester
    sp.pytester.makeconftest(LANDSCAPE)
    sp.range_config("CONFIG_LS_A=0|1\nCONFIG_LS_B=0|2\n")
    sp.run("--range-config=sweep.rc", "--sweep-output=base").assert_outcomes(passed=4)
    base = sp.only_sweep_dir(sp.path / "base")
    monkeypatch.setenv("LS_SKIP", "1")
    result = sp.run(
        "--range-config=sweep.rc", "--sweep-output=now", f"--sweep-compare={base}", "--sweep-compare-fail=test_acc:1"
    )
    result.assert_outcomes(skipped=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["LOST config_00[1-4]: passed in the baseline (*), skipped now (skipped on purpose*"] * 4
    )
    # and a baseline with nothing in common
    monkeypatch.delenv("LS_SKIP")
    sp.range_config("CONFIG_LS_A=5|6\n", name="other.rc")
    other = sp.run("--range-config=other.rc", "--sweep-output=other", f"--sweep-compare={base}",
                   "--sweep-compare-fail=test_acc:1")  # fmt: skip
    other.assert_outcomes(passed=2)
    assert other.ret == pytest.ExitCode.TESTS_FAILED
    other.stdout.fnmatch_lines(["NOTHING IN COMMON: no configuration of this sweep is in the baseline*"])
