"""``--sweep-resume`` continues an unfinished trial from its checkpoint, bit-exactly (issue 21).

A LeNet-5/digits trial (AdamWPrune with state pruning: masks and moments in the state) is killed
with SIGKILL right after its epoch-4 checkpoint is written (a thread watches for the file, so the
kill lands early in epoch 5), then resumed: it trains epochs 5 and 6 only, and its accuracy and
history (timing fields aside) equal those of an uninterrupted run with the same seed and thread
count.  Serially (the whole pytest process dies) and with ``-n 2`` (the worker dies; xdist
records it as crashed and the sweep goes on).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep import cli
from pytest_sweep.matrix import storage

from sweep_helpers import XDIST_PLUGIN_ARGS, SweepPytester

WATCHER = """
import os
import signal
import threading
import time

import pytest


@pytest.hookimpl
def pytest_sweep_epoch_ended(trial, metrics):
    with open(os.environ["EPOCH_LOG"], "a") as fh:
        fh.write(f"{trial.name} {metrics['epoch']} {os.getpid()}\\n")


@pytest.hookimpl
def pytest_sweep_trial_started(trial):
    after = os.environ.get("KILL_AFTER_CHECKPOINT")
    if not after:
        return
    folder = trial.context.dir / "checkpoints"

    def watch():
        while not list(folder.glob(f"checkpoint-*-epoch{after}.ckpt")):
            time.sleep(0.002)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()
"""

RANGE = (
    'CONFIG_MODEL="lenet5"\nCONFIG_DATASET="digits"\nCONFIG_DEVICE="cpu"\nCONFIG_OPTIMIZER="adamwprune"\n'
    'CONFIG_PRUNING_METHOD="state"\nCONFIG_TARGET_SPARSITY=0.5\nCONFIG_PRUNING_WARMUP=20\n'
    "CONFIG_PRUNING_FREQUENCY=5\nCONFIG_PRUNING_RAMP_END_EPOCH=5\nCONFIG_NUM_EPOCHS=6\nCONFIG_BATCH_SIZE=64\n"
    "CONFIG_LEARNING_RATE=0.003\n"
)
TIMING = ("epoch_time", "images_per_s", "compile_s")


def _epochs(folder: Path) -> list[dict[str, Any]]:
    doc = json.loads((folder / "training_metrics.json").read_text())
    return [{k: v for k, v in e.items() if k not in TIMING} for e in doc["epochs"]]


def _trained(log: Path) -> dict[str, list[int]]:
    """Process id -> the epochs it trained."""
    found: dict[str, list[int]] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        _, epoch, pid = line.split()
        found.setdefault(pid, []).append(int(epoch))
    return found


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, sweep_tools: Any) -> dict[str, Any]:
    """The same trial, never interrupted (one thread, serial: an -n 2 worker trains it the same way)."""
    where = tmp_path_factory.mktemp("uninterrupted")
    (where / "sweep.rc").write_text(RANGE)
    result = sweep_tools.run_process(
        where, "--range-config=sweep.rc", "-p", "no:cacheprovider", "--sweep-progress=none"
    )
    assert result.ret == 0, result.outlines
    sweep_dir = sweep_tools.only_sweep_dir(where / "test_matrix_results")
    record = sweep_tools.records(sweep_dir)["config_001"]
    assert record["resumed_from_epoch"] is None and record["final_sparsity"] == 0.5
    return {"record": record, "epochs": _epochs(sweep_dir / record["trial_dir"])}


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "n2"])
def test_a_trial_killed_after_epoch_4_resumes_at_epoch_5_exactly(
    sweep_pytester: SweepPytester,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    uninterrupted: dict[str, Any],
    workers: tuple[str, ...],
) -> None:
    sp = sweep_pytester
    sp.pytester.makeconftest(WATCHER)
    sp.range_config(RANGE)
    log = sp.path / "epochs.log"
    monkeypatch.setenv("EPOCH_LOG", str(log))
    plugins = XDIST_PLUGIN_ARGS if workers else sp.plugin_args
    args = ("--range-config=sweep.rc", "-p", "no:cacheprovider", "--sweep-progress=none", *workers)

    monkeypatch.setenv("KILL_AFTER_CHECKPOINT", "4")
    killed = sp.pytester.runpytest_subprocess(*plugins, *args, timeout=300)
    assert killed.ret != 0
    sweep_dir = sp.only_sweep_dir(sp.path / "test_matrix_results")
    folder = sweep_dir / uninterrupted["record"]["trial_dir"]
    # the newest is epoch 4's (the kill may land before the older one is removed: keep 1)
    names = sorted(p.name for p in (folder / "checkpoints").iterdir())
    assert names[-1] == "checkpoint-000004-epoch4.ckpt" and len(names) <= 2, names
    ((first_pid, first),) = _trained(log).items()
    assert first[:4] == [1, 2, 3, 4] and len(first) <= 5  # killed early in epoch 5 (at most its end)

    monkeypatch.delenv("KILL_AFTER_CHECKPOINT")
    resumed = sp.pytester.runpytest_subprocess(*plugins, *args, f"--sweep-resume={sweep_dir}", timeout=300)
    resumed.assert_outcomes(passed=1)
    later = {pid: epochs for pid, epochs in _trained(log).items() if pid != first_pid}
    assert list(later.values()) == [[5, 6]]  # epochs 5 and 6 only
    record = sp.records(sweep_dir)["config_001"]
    assert record["resumed_from_epoch"] == 4 and record["status"] == "passed" and record["epochs_run"] == 6
    assert record["test_acc"] == uninterrupted["record"]["test_acc"]
    assert record["best_acc"] == uninterrupted["record"]["best_acc"]
    assert record["final_sparsity"] == uninterrupted["record"]["final_sparsity"]
    assert _epochs(folder) == uninterrupted["epochs"]
    assert not (folder / "checkpoints").exists()  # the trial completed: its checkpoint is gone
    text = (folder / "output.log").read_text()
    assert "continuing from checkpoint checkpoints/checkpoint-000004-epoch4.ckpt: 4 epochs done" in text
    assert text.index("epoch 4/6") < text.index("continuing from checkpoint")  # the killed run's lines stay

    if workers:
        return
    # pytest-sweep reproduce trains the resumed trial from scratch, in one go: the same result
    capfd.readouterr()
    code = cli.main(["reproduce", str(sweep_dir), "config_001", "--run"])
    out = capfd.readouterr().out
    assert code == 0, out
    assert f"REPRODUCED: config_001 test_acc {record['test_acc']!r}% then and now, exactly" in out
    (again,) = storage.sweep_dirs(sweep_dir / "reproduce")
    assert sp.records(again)["config_001"]["resumed_from_epoch"] is None
