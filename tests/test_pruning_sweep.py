"""A pruning sweep through the real sweep path reaches its accuracy and exactly its sparsity.

One subprocess run, two range configs, read back from ``sweep_summary.json`` and each
trial's ``training_metrics.json``:

* ``state.rc``: AdamWPrune state pruning, target sparsity 0.5 | 0.7 x beta1 0.85 | 0.9
  (the grid of ``defconfigs/resnet18-digits-smoke``, same schedule);
* ``schedule.rc``: AdamW with magnitude | movement pruning to 0.7 on the same schedule.

Why LeNet-5 and not ``defconfigs/resnet18-digits-smoke`` itself: with OMP_NUM_THREADS=1
on this busy 2-core machine its 4 trials took 105 s (ResNet-18 width 16, 22-29 s each),
over this file's 90 s budget; LeNet-5 trains the same grid and schedule in about 2.5 s a
trial.  The defconfig's collection and grid are checked in ``test_defconfigs.py``.
Measured (CPU, deterministic, digits split of trainers/digits.py): state 97.2 / 97.8 % at 50 %
(beta1 0.85 / 0.9), 95.8 / 93.9 % at 70 %; magnitude 92.5 %, movement 96.4 % at 70 %; every
final sparsity exactly on target.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sweep_helpers import SweepTools

#: The schedule of resnet18-digits-smoke: 23 steps per epoch at batch 64, pruning from step
#: 46 (after epoch 2) every 5 steps, at the target from epoch 8 (step 184) on.
COMMON = """\
CONFIG_MODEL="lenet5"
CONFIG_DATASET="digits"
CONFIG_DEVICE="cpu"
CONFIG_NUM_EPOCHS=10
CONFIG_BATCH_SIZE=64
CONFIG_LEARNING_RATE=0.002
CONFIG_PRUNING_WARMUP=46
CONFIG_PRUNING_FREQUENCY=5
CONFIG_PRUNING_RAMP_END_EPOCH=8
"""
STATE = (
    COMMON
    + """\
CONFIG_OPTIMIZER="adamwprune"
CONFIG_PRUNING_METHOD="state"
CONFIG_TARGET_SPARSITY=0.5|0.7
CONFIG_ADAMWPRUNE_BETA1=0.85|0.9
"""
)
SCHEDULE = (
    COMMON
    + """\
CONFIG_OPTIMIZER="adamw"
CONFIG_TARGET_SPARSITY=0.7
CONFIG_PRUNING_METHOD="magnitude"|"movement"
"""
)
TOLERANCE = 0.005  # 0.5 percentage points
MIN_ACC_AT_50 = 90.0
#: A floor for every trial: pruning must not wreck the model (all measured above 92 %; above 89 % with the earlier split).
MIN_ACC = 80.0


@dataclass
class Sweep:
    result: pytest.RunResult
    dir: Path
    #: (range config, config name) -> record
    records: dict[tuple[str, str], dict[str, Any]]

    def of(self, source: str) -> list[dict[str, Any]]:
        return [r for (s, _), r in sorted(self.records.items()) if s == source]

    def history(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        doc = json.loads((self.dir / record["trial_dir"] / "training_metrics.json").read_text(encoding="utf-8"))
        assert doc["config"] == record["config"]  # this trial's own folder
        epochs: list[dict[str, Any]] = doc["epochs"]
        return epochs


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory, sweep_tools: SweepTools) -> Sweep:
    cwd = tmp_path_factory.mktemp("pruning_sweep")
    (cwd / "state.rc").write_text(STATE, encoding="utf-8")
    (cwd / "schedule.rc").write_text(SCHEDULE, encoding="utf-8")
    result = sweep_tools.run_process(
        cwd, "--range-config=state.rc", "--range-config=schedule.rc", "--sweep-output=out", "--sweep-progress=none"
    )
    folder = sweep_tools.only_sweep_dir(cwd / "out")
    records = {(r["nodeid"].split("::")[0], r["config_file"]): r for r in sweep_tools.summary(folder)}
    return Sweep(result, folder, records)


def target(record: dict[str, Any]) -> float:
    return float(record["config"]["CONFIG_TARGET_SPARSITY"])


def test_every_trial_passed(sweep: Sweep) -> None:
    sweep.result.assert_outcomes(passed=6)
    assert len(sweep.of("state.rc")) == 4 and len(sweep.of("schedule.rc")) == 2
    assert all(r["status"] == "passed" and r["epochs_run"] == 10 for r in sweep.records.values())


def test_state_pruning_grid_is_the_swept_grid(sweep: Sweep) -> None:
    grid = {
        (r["config"]["CONFIG_TARGET_SPARSITY"], r["config"]["CONFIG_ADAMWPRUNE_BETA1"]) for r in sweep.of("state.rc")
    }
    assert grid == {("0.5", "0.85"), ("0.5", "0.9"), ("0.7", "0.85"), ("0.7", "0.9")}
    assert {r["trainer"] for r in sweep.of("state.rc")} == {"lenet5/digits/adamwprune/state e10 b64"}


def test_state_pruning_reaches_90_percent_at_half_sparsity(sweep: Sweep) -> None:
    half = [r for r in sweep.of("state.rc") if target(r) == 0.5]
    assert len(half) == 2
    for r in half:
        assert r["test_acc"] >= MIN_ACC_AT_50, (r["config_file"], r["test_acc"])


@pytest.mark.parametrize("source", ["state.rc", "schedule.rc"])
def test_final_sparsity_is_the_target(sweep: Sweep, source: str) -> None:
    for r in sweep.of(source):
        assert abs(r["final_sparsity"] - target(r)) <= TOLERANCE, (source, r["config_file"], r["final_sparsity"])
        assert r["test_acc"] >= MIN_ACC, (source, r["config_file"], r["test_acc"])


def test_schedule_trials_are_magnitude_and_movement_with_adamw(sweep: Sweep) -> None:
    trainers = sorted(r["trainer"] for r in sweep.of("schedule.rc"))
    assert trainers == ["lenet5/digits/adamw/magnitude e10 b64", "lenet5/digits/adamw/movement e10 b64"]


@pytest.mark.parametrize("source", ["state.rc", "schedule.rc"])
def test_sparsity_follows_the_schedule(sweep: Sweep, source: str) -> None:
    """Nothing pruned during the 2-epoch warmup; rising after it; at the target from epoch 8."""
    for r in sweep.of(source):
        sparsity = [e["sparsity"] for e in sweep.history(r)]
        assert len(sparsity) == 10
        assert sparsity[:2] == [0.0, 0.0], (r["nodeid"], sparsity)
        assert 0.0 < sparsity[2] < target(r) - TOLERANCE, (r["nodeid"], sparsity)
        assert sparsity == sorted(sparsity), (r["nodeid"], sparsity)  # masks only grow sparser
        for s in sparsity[7:]:
            assert abs(s - target(r)) <= TOLERANCE, (r["nodeid"], sparsity)
