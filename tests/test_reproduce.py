"""``pytest-sweep reproduce SWEEP_DIR TRIAL [--run]``: a trial trained again from its record, and compared."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from landscape import CONFTEST, RANGE
from synthetic import grid_records

from pytest_sweep import cli
from pytest_sweep.matrix import storage
from pytest_sweep.plugins import reproduce as rep

from sweep_helpers import SweepPytester


def reproduce(capfd: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, list[str], list[str]]:
    capfd.readouterr()  # what came before
    code = cli.main(["reproduce", *map(str, args)])
    out, err = capfd.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_reproduce_run_of_a_digits_lenet5_trial_gives_its_test_acc_exactly(
    sweep_pytester: SweepPytester, capfd: pytest.CaptureFixture[str]
) -> None:
    sp = sweep_pytester
    sp.range_config(sp.digits_config("CONFIG_LEARNING_RATE=0.001|0.003").replace("EPOCHS=2", "EPOCHS=1"), "lenet.rc")
    sp.run_subprocess("--range-config=lenet.rc", "--sweep-progress=none").assert_outcomes(passed=2)
    sweep_dir = sp.only_sweep_dir(sp.path / "test_matrix_results")
    then = sp.records(sweep_dir)["config_002"]
    assert then["device"] == "cpu" and then["torch_threads"] == 1

    code, out, err = reproduce(capfd, sweep_dir, "config_002")
    assert code == 0 and err == []
    *notes, command = out
    assert notes == [], notes
    config_dir = sweep_dir / "reproduce" / then["trial_dir"]
    assert command.startswith(f"cd {sp.path} && ") and " OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 " in command
    assert f"--config-dir={config_dir} --sweep-output={sweep_dir / 'reproduce'} --sweep-backend=serial" in command
    assert " -p pytest_sweep.entry " in command and "--range-config" not in command  # the recorded -p
    written = (config_dir / "config_002").read_text()
    assert "CONFIG_LEARNING_RATE=0.003\n" in written and "CONFIG_SEED=42\n" in written
    assert 'CONFIG_MODEL="lenet5"\n' in written

    code, out, _ = reproduce(capfd, sweep_dir, "config_002", "--run")
    assert code == 0, out
    assert (
        f"REPRODUCED: config_002 test_acc {then['test_acc']!r}% then and now, exactly (CPU, 1 torch thread(s))" in out
    )
    (again,) = storage.sweep_dirs(sweep_dir / "reproduce")
    now = sp.records(again)["config_002"]
    assert now["test_acc"] == then["test_acc"] and now["seed"] == then["seed"] == 42
    assert now["config"] == {**then["config"], "CONFIG_SEED": "42"}  # the seed, explicit
    assert now["trial_dir"] == "config_002"  # its own name, nothing swept


@pytest.fixture
def landscape_sweep(sweep_pytester: SweepPytester) -> tuple[SweepPytester, Path]:
    """A finished sweep of the torch-free landscape trainer (three trials), run in process."""
    sp = sweep_pytester
    sp.pytester.makeconftest(CONFTEST)
    sp.range_config(RANGE, name="lr.rc")
    sp.run("--range-config=lr.rc", "--sweep-progress=none").assert_outcomes(passed=3)
    return sp, sp.only_sweep_dir(sp.path / "test_matrix_results")


def test_a_record_that_the_rerun_does_not_match_is_not_reproduced(
    landscape_sweep: tuple[SweepPytester, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    sp, sweep_dir = landscape_sweep
    records = sp.summary(sweep_dir)
    records[1]["test_acc"] += 0.01  # as if config_002 had trained differently then
    (sweep_dir / "sweep_summary.json").write_text(json.dumps(records))
    code, out, _ = reproduce(capfd, sweep_dir, "config_002", "--run")
    assert code == 1
    assert any(
        line.startswith("NOT REPRODUCED: config_002 test_acc 93.34333") and "(-0.0100 pp)" in line for line in out
    ), out


def test_unknown_and_ambiguous_trials_and_damaged_records_are_usage_errors(
    landscape_sweep: tuple[SweepPytester, Path], capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, sweep_dir = landscape_sweep
    code, out, err = reproduce(capfd, sweep_dir, "config_009")
    assert (code, out) == (4, [])
    assert err == [
        f"pytest-sweep: error: {sweep_dir}: no trial 'config_009' in it; its trials: config_001, config_002, config_003"
    ]
    # the trial's folder and node id name it too
    assert reproduce(capfd, sweep_dir, "config_003_learning_rate-0.1")[0] == 0
    assert reproduce(capfd, sweep_dir, "lr.rc::config_003[LEARNING_RATE=0.1]")[0] == 0
    # two range files with a config_001 each: the folder must say which
    two = tmp_path / "two"
    two.mkdir()
    recs = grid_records({"CONFIG_X": ["1"]}, lambda s: 50.0, source="/w/a.rc")
    recs += [{**r, "trial_dir": "b.rc-config_001", "source": "/w/b.rc"} for r in recs]
    (two / "sweep_summary.json").write_text(json.dumps(recs))
    code, _, err = reproduce(capfd, two, "config_001")
    assert code == 4 and err[0].endswith(
        "2 trials are named 'config_001' (one per range file); name its folder: config_001, b.rc-config_001"
    )
    for damage, why in (("{not json", "not JSON (Expecting property name"), ('{"a": 1}', "holds dict, not a list")):
        (two / "sweep_summary.json").write_text(damage)
        code, _, err = reproduce(capfd, two, "config_001")
        assert code == 4 and len(err) == 1
        assert f"{two}: sweep_summary.json is not readable ({why}" in err[0]
        assert "; the trial folders still hold each result" in err[0]
    code, _, err = reproduce(capfd, tmp_path / "nowhere", "config_001")
    assert (code, err) == (
        4,
        [f"pytest-sweep: error: {tmp_path / 'nowhere'}: no such folder; pass a sweep_YYYYMMDD_HHMMSS folder"],
    )
    (tmp_path / "empty").mkdir()
    assert "no sweep_summary.json in it" in reproduce(capfd, tmp_path / "empty", "config_001")[2][0]


def test_an_older_sweep_without_environment_and_a_range_file_that_changed_or_moved(
    landscape_sweep: tuple[SweepPytester, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    sp, sweep_dir = landscape_sweep
    rc = sp.path / "lr.rc"
    rc.write_text(RANGE.replace("0.1\n", "0.3\n"))
    code, out, _ = reproduce(capfd, sweep_dir, "config_003")
    assert code == 0
    assert f"note: the range file {rc} changed since the sweep; using the recorded config" in out
    assert (
        "CONFIG_LEARNING_RATE=0.1\n"
        in (sweep_dir / "reproduce" / "config_003_learning_rate-0.1" / "config_003").read_text()
    )
    rc.rename(sp.path / "moved.rc")
    code, out, _ = reproduce(capfd, sweep_dir, "config_003", "--run")
    assert code == 0
    assert f"note: the range file {rc} is gone (moved or deleted) since the sweep; using the recorded config" in out
    assert any(line.startswith("REPRODUCED: config_003 test_acc 83.33") for line in out), out
    # a sweep folder from before environment.json: the record alone, said so
    (sweep_dir / "environment.json").unlink()
    code, out, _ = reproduce(capfd, sweep_dir, "config_001")
    assert code == 0
    assert out[0] == (
        "note: no environment.json (a sweep from before pytest-sweep recorded its environment): the command is "
        "built from the record alone; the code version, the plugins (-p) and the options of that run are unknown"
    )
    assert " -p " not in out[-1] and "--config-dir=" in out[-1]


def test_an_unwritable_output_is_a_usage_error(
    landscape_sweep: tuple[SweepPytester, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    sp, sweep_dir = landscape_sweep
    (sp.path / "afile").write_text("x")
    code, _, err = reproduce(capfd, sweep_dir, "config_001", "--output", sp.path / "afile")
    assert code == 4 and err[0].startswith("pytest-sweep: error: cannot write the trial's config under ")
    assert err[0].endswith("; pass --output=DIR")


# -- the verdict on CUDA (no GPU here: records as a CUDA sweep writes them) ------------------------------


def cuda_case(tmp_path: Path, then_acc: float, now_acc: float, seeds: bool) -> rep.Verdict:
    axes = {"CONFIG_LR": ["0.1", "0.2"], **({"CONFIG_SEED": ["1", "2", "3"]} if seeds else {})}
    spread = {"1": -0.5, "2": 0.0, "3": 0.5}
    records = grid_records(axes, lambda s: 90.0 + spread.get(s.get("CONFIG_SEED", "2"), 0.0))
    for r in records:
        r["device"] = "cuda:0"
    record = {**records[0], "test_acc": then_acc}
    new_dir = tmp_path / "new"
    new_dir.mkdir(exist_ok=True)
    (new_dir / "sweep_summary.json").write_text(json.dumps([{**record, "test_acc": now_acc}]))
    plan = rep.Plan(record, tmp_path, tmp_path, tmp_path, tmp_path, [], {})
    return rep.compare(plan, new_dir, records)


@pytest.mark.parametrize(
    ("then", "now", "seeds", "reproduced", "start"),
    [
        (90.0, 90.0, False, True, "REPRODUCED: config_001 test_acc 90.00% then, 90.00% now (+0.00 pp) on CUDA"),
        (90.0, 90.4, True, True, "REPRODUCED: "),
        (90.0, 92.0, True, False, "NOT REPRODUCED: "),
        (90.0, 90.4, False, True, "REPRODUCED? "),
    ],
    ids=["equal", "within-noise", "beyond-noise", "noise-unknown"],
)
def test_on_cuda_a_difference_is_judged_against_the_seed_noise(
    tmp_path: Path, then: float, now: float, seeds: bool, reproduced: bool, start: str
) -> None:
    verdict = cuda_case(tmp_path, then, now, seeds)
    (line,) = verdict.lines
    assert verdict.reproduced is reproduced and line.startswith(start), line
    if seeds:
        assert "(2 x 0.50 pp, the pooled sd over seeds)" in line
    elif now != then:
        assert "its seed noise is unknown and this difference cannot be judged" in line


def test_a_stopped_trial_is_compared_at_its_rung(tmp_path: Path) -> None:
    record: dict[str, Any] = {**grid_records({"CONFIG_X": ["1"]}, lambda s: 40.0)[0], "status": "stopped", "rung": 1}
    new_dir = tmp_path / "new"
    (new_dir / "config_001").mkdir(parents=True)
    (new_dir / "sweep_summary.json").write_text(json.dumps([{**record, "status": "passed", "test_acc": 80.0}]))
    metrics = {"epochs": [{"epoch": 1, "test_acc": 40.0}, {"epoch": 2, "test_acc": 80.0}]}
    (new_dir / "config_001" / "training_metrics.json").write_text(json.dumps(metrics))
    verdict = rep.compare(rep.Plan(record, tmp_path, tmp_path, tmp_path, tmp_path, [], {}), new_dir, [record])
    assert verdict.reproduced and verdict.lines[0].startswith(
        "REPRODUCED: config_001 test_acc at epoch 1 40.0% then and now"
    )
    shutil.rmtree(new_dir / "config_001")
    assert not rep.compare(
        rep.Plan(record, tmp_path, tmp_path, tmp_path, tmp_path, [], {}), new_dir, [record]
    ).reproduced
