"""Comparing two sweeps: the table, the fail threshold, and the usage errors (pytest and the console script)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from synthetic import grid_records

from pytest_sweep.plugins.compare import Threshold, compare, parse_threshold, render

if TYPE_CHECKING:
    from sweep_helpers import SweepPytester

AXES = {"CONFIG_LEARNING_RATE": ["0.001", "0.003"], "CONFIG_WEIGHT_DECAY": ["0.0", "0.05"]}


def _sweep(accs: list[float], failed: set[int] | None = None) -> list[dict[str, Any]]:
    table = dict(zip([("0.001", "0.0"), ("0.001", "0.05"), ("0.003", "0.0"), ("0.003", "0.05")], accs, strict=True))
    return grid_records(AXES, lambda v: table[(v["CONFIG_LEARNING_RATE"], v["CONFIG_WEIGHT_DECAY"])], failed=failed)


def test_thresholds_parse_as_metric_and_points() -> None:
    assert parse_threshold("test_acc:1.0") == Threshold("test_acc", 1.0)
    assert parse_threshold("best_acc:0") == Threshold("best_acc", 0.0)
    for bad in ("test_acc", "accuracy:1", "test_acc:-1", "test_acc:x", "test_acc:inf", ":1"):
        with pytest.raises(ValueError, match=r"--sweep-compare-fail=.*METRIC:POINTS"):
            parse_threshold(bad)


def test_a_drop_beyond_the_threshold_is_a_regression() -> None:
    then = _sweep([90.0, 91.0, 92.0, 93.0])
    now = _sweep([90.5, 89.5, 92.0, 90.0], failed=None)
    result = compare(then, now, [Threshold("test_acc", 1.0)], "base")
    assert [(r.label, r.drop("test_acc")) for r in result.rows] == [
        ("config_001", -0.5),
        ("config_002", 1.5),
        ("config_003", 0.0),
        ("config_004", 3.0),
    ]
    found = [(f.label, f.why) for f in result.regressions()]
    assert found == [
        ("config_002", "test_acc 91.00% -> 89.50% (-1.50 pp, more than 1)"),
        ("config_004", "test_acc 93.00% -> 90.00% (-3.00 pp, more than 1)"),
    ]
    # exactly at the threshold is not more than it
    assert not compare(then, _sweep([89.0, 90.0, 91.0, 92.0]), [Threshold("test_acc", 1.0)]).regressions()
    lines = render(result)
    assert lines[0] == (
        "baseline: base; 4 configurations in both (same config name and config); only now: 0; only in the baseline: 0"
    )
    assert lines[1].split() == ["config", "test_acc", "then", "%", "test_acc", "now", "%", "change", "pp"]
    assert lines[3].split() == ["config_001", "90.00", "90.50", "+0.50"]
    assert lines[5].split() == ["config_003", "92.00", "92.00", "+0.00"]  # no change: not "-0.00"
    assert lines[-4:] == [
        "gate test_acc:1: no seeds swept in both sweeps: each trial's single number against the threshold "
        "(no noise model: sweep CONFIG_SEED=1|2|3 in both for a statistical gate)",
        "regressions (test_acc:1): 2",
        "REGRESSION config_002: test_acc 91.00% -> 89.50% (-1.50 pp, more than 1)",
        "REGRESSION config_004: test_acc 93.00% -> 90.00% (-3.00 pp, more than 1)",
    ]


def test_only_identical_configs_are_matched_and_a_new_failure_counts() -> None:
    then = _sweep([90.0, 91.0, 92.0, 93.0])
    now = _sweep([90.0, 91.0, 92.0, 93.0], failed={3})
    now[1]["config"] = dict(now[1]["config"], CONFIG_NUM_EPOCHS="5")  # same name, another config: not matched
    result = compare(then, now, [Threshold("test_acc", 1.0)])
    assert [r.label for r in result.rows] == ["config_001", "config_003", "config_004"]
    assert (result.only_now, result.only_then) == (1, 1)
    assert [(f.kind, f.label, f.why) for f in result.regressions()] == [
        ("lost", "config_003", "passed in the baseline (92.00%), failed now (loss became nan)")
    ]
    assert render(compare(then, now, []))[-1].split()[:3] == ["config_004", "93.00", "93.00"]  # no threshold line


def _write_sweep(folder: Path, records: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True)
    (folder / "sweep_summary.json").write_text(json.dumps(records))
    return folder


def _console(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("pytest-sweep")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pytest_sweep.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120, check=False)


def test_console_script_compare(tmp_path: Path) -> None:
    a = _write_sweep(tmp_path / "a", _sweep([90.0, 91.0, 92.0, 93.0]))
    b = _write_sweep(tmp_path / "b", _sweep([90.0, 91.0, 92.0, 91.5]))
    ok = _console("compare", str(a), str(b), "--fail", "test_acc:2.0")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[-1] == "no regression (test_acc:2)"
    bad = _console("compare", str(a), str(b), "--fail", "test_acc:1.0")
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[-1] == "REGRESSION config_004: test_acc 93.00% -> 91.50% (-1.50 pp, more than 1)"
    missing = _console("compare", str(a), str(tmp_path / "nope"))
    assert missing.returncode == 4
    assert missing.stderr.splitlines() == [
        f"pytest-sweep: error: sweep={tmp_path / 'nope'}: no such folder; "
        "pass the sweep_YYYYMMDD_HHMMSS folder of a finished sweep"
    ]
    threshold = _console("compare", str(a), str(b), "--fail", "test_acc")
    assert threshold.returncode == 4 and len(threshold.stderr.splitlines()) == 1
    assert "--fail=test_acc: use METRIC:POINTS" in threshold.stderr
    assert _console("compare", str(a)).returncode == 4  # argparse's own errors: usage errors too


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sweep-compare=nope"], "--sweep-compare=nope: no such folder; pass the sweep_YYYYMMDD_HHMMSS folder"),
        (["--sweep-compare=empty"], "--sweep-compare=empty: no sweep_summary.json in it; pass the"),
        (
            ["--sweep-compare=broken"],
            "--sweep-compare=broken: sweep_summary.json is not readable: holds NoneType, not a list of records; pass",
        ),
        (["--sweep-compare=base", "--sweep-compare-fail=test_acc:x"], "--sweep-compare-fail=test_acc:x: the points"),
        (["--sweep-compare-fail=test_acc:1.0"], "--sweep-compare-fail needs a baseline: add --sweep-compare="),
    ],
    ids=["no-folder", "no-summary", "null-summary", "bad-threshold", "threshold-without-baseline"],
)
def test_compare_usage_errors(sweep_pytester: SweepPytester, args: list[str], message: str) -> None:
    root = sweep_pytester.path
    (root / "empty").mkdir()
    (root / "broken").mkdir()
    (root / "broken" / "sweep_summary.json").write_text("null")
    _write_sweep(root / "base", _sweep([90.0, 91.0, 92.0, 93.0]))
    path = sweep_pytester.range_config(sweep_pytester.digits_config("CONFIG_LEARNING_RATE=0.001|0.003"))
    result = sweep_pytester.run(f"--range-config={path}", "--collect-only", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line]
    assert len(errors) == 1 and errors[0].startswith("ERROR: " + message), errors
