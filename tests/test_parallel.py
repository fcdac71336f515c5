"""Parallel sweeps that survive faults: real xdist workers, real crashes, real signals.

Each test runs pytest in a subprocess on real (tiny) digits trainings.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sweep_helpers import XDIST_PLUGIN_ARGS

BASE = """\
CONFIG_MODEL="lenet5"
CONFIG_DATASET="digits"
CONFIG_DEVICE="cpu"
CONFIG_OPTIMIZER="adamw"
CONFIG_BATCH_SIZE=64
"""

# A plugin of the test's own: declares CONFIG_FAULT_CRASH and counts trainings.
FAULTS = """\
import os
import signal
import time
from pathlib import Path

import pytest
from pytest_sweep.matrix import Symbol


@pytest.hookimpl
def pytest_sweep_declare_symbols():
    return [
        Symbol("CONFIG_FAULT_CRASH", "bool", False, "Kill the worker inside the trial"),
        Symbol("CONFIG_FAULT_CRASH_ONCE", "bool", False, "Kill -9 the process inside the first such trial only"),
        Symbol("CONFIG_FAULT_SPIN", "float", 0.0, "Seconds of pure-Python work instead of training (-1: forever)"),
    ]


class Spinner:
    # a user's own trainer: busy Python work for a while (or forever: a hung trial)

    def __init__(self, seconds):
        self.seconds = seconds

    def run(self, trial, ctx):
        start = time.monotonic()
        total = 0
        while self.seconds < 0 or time.monotonic() - start < self.seconds:
            total += sum(range(10_000))
        return {"test_acc": 50.0 + trial.index, "training_time": time.monotonic() - start}


@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    if trial["CONFIG_FAULT_SPIN"]:
        return Spinner(trial["CONFIG_FAULT_SPIN"])
    return None


@pytest.hookimpl
def pytest_sweep_trial_started(trial):
    with open(Path(__file__).parent / "trainings.txt", "a") as fh:
        fh.write(trial.name + "\\n")
    if trial["CONFIG_FAULT_CRASH"]:
        os._exit(1)
    marker = Path(__file__).parent / "crashed-once"
    if trial["CONFIG_FAULT_CRASH_ONCE"] and not marker.exists():
        marker.write_text(trial.name)
        os.kill(os.getpid(), signal.SIGKILL)  # a hard death (a serial run catches os._exit)


def pytest_unconfigure(config):
    # how many objects a worker has frozen when pytest's own end-of-run collections start
    if hasattr(config, "workerinput"):
        import gc
        (Path(__file__).parent / f"frozen-{config.workerinput['workerid']}.txt").write_text(str(gc.get_freeze_count()))
"""

#: The ``sweep`` fixture: runs a sweep of ``BASE + body`` and gives the result and the summary records.
Run = Callable[..., tuple[pytest.RunResult, list[dict[str, Any]]]]


@pytest.fixture
def sweep(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # serial runs too: this box runs other tests at once
    pytester.makeconftest(FAULTS)

    def run(body: str, *args: str, timeout: float = 240) -> tuple[pytest.RunResult, list[dict[str, Any]]]:
        pytester.path.joinpath("range").write_text(BASE + body)
        result = pytester.runpytest_subprocess(
            *XDIST_PLUGIN_ARGS,
            "--range-config=range",
            "--sweep-output=out",
            "-p",
            "no:cacheprovider",
            *args,
            timeout=timeout,
        )
        return result, summary(pytester.path / "out")

    return run


def summary(out: Path) -> list[dict[str, Any]]:
    found = sorted(out.glob("sweep_*/sweep_summary.json"))
    return json.loads(found[-1].read_text()) if found else []


def trainings(pytester: pytest.Pytester) -> list[str]:
    path = pytester.path / "trainings.txt"
    return sorted(path.read_text().split()) if path.exists() else []


STABLE = (
    "config_file",
    "status",
    "test_acc",
    "best_acc",
    "final_sparsity",
    "epochs_run",
    "seed",
    "config",
    "error",
    "CONFIG_LEARNING_RATE",
    "CONFIG_WEIGHT_DECAY",
    "trial_dir",
    "trainer",
)


def test_serial_and_parallel_give_the_same_records(sweep: Run, pytester: pytest.Pytester) -> None:
    body = "CONFIG_NUM_EPOCHS=3\nCONFIG_LEARNING_RATE=0.001|0.003\nCONFIG_WEIGHT_DECAY=0.0|0.05\n"
    serial, serial_records = sweep(body)
    serial.assert_outcomes(passed=4)
    parallel, parallel_records = sweep(body, "-n", "2", "--sweep-progress=none")
    parallel.assert_outcomes(passed=4)
    assert not [line for line in parallel.outlines if line.startswith("sweep: config_")]
    assert len(serial_records) == len(parallel_records) == 4
    for a, b in zip(serial_records, parallel_records, strict=False):
        assert {k: a[k] for k in STABLE} == {k: b[k] for k in STABLE}
    assert {r["worker"] for r in serial_records} == {"main"}
    assert {r["seed"] for r in serial_records + parallel_records} == {42}  # CONFIG_SEED, in every trial
    assert {r["worker"] for r in parallel_records} <= {"gw0", "gw1"}
    # each worker froze torch's objects at sessionfinish, so its exit skips collecting them
    frozen = [int(p.read_text()) for p in sorted(pytester.path.glob("frozen-gw*.txt"))]
    assert len(frozen) == 2 and min(frozen) > 100_000, frozen


def test_crash_and_nan_fail_only_their_own_items(sweep: Run) -> None:
    body = "CONFIG_NUM_EPOCHS=2\nCONFIG_LEARNING_RATE=0.001|1e9\nCONFIG_FAULT_CRASH=n|y\n"
    # interim summaries after every result: on the controller, between crashed workers too
    result, records = sweep(
        body, "-n", "2", "--dist=worksteal", "--sweep-set", "CONFIG_OPTIMIZER=sgd", "--sweep-summary-interval=0"
    )
    result.assert_outcomes(passed=1, failed=3)
    by_name = {r["config_file"]: r for r in records}
    assert by_name["config_001"]["status"] == "passed"  # no crash, lr 0.001
    assert "nan" in by_name["config_002"]["error"]  # lr 1e9: a real NaN loss
    assert by_name["config_003"]["error"].startswith("worker crashed")
    assert by_name["config_004"]["error"].startswith("worker crashed")
    result.stdout.fnmatch_lines(["*FAILED config_002: loss became nan*", "*FAILED config_003: worker crashed*"])
    out = result.stdout.str()
    assert "interim summary not written" not in out
    # the controller's line per finished trial (per-epoch lines stay in the workers' logs)
    ticks = [line for line in result.outlines if line.startswith("sweep: config_")]
    assert len(ticks) == 4, ticks
    assert sum("FAILED: worker crashed" in t for t in ticks) == 2
    assert any(t.startswith("sweep: config_001 passed ") and "(gw" in t for t in ticks)
    assert ticks[-1].endswith("| 4 of 4 done, 3 failed | best config_001 " + ticks[-1].rsplit(" ", 1)[-1])
    assert all("left" in t for t in ticks[:-1]) and "left" not in ticks[-1]
    sweep_dir = Path(out.split("summary: ", 1)[1].split()[0]).parent
    assert "still running" not in (sweep_dir / "sweep_analysis.txt").read_text()  # the final one replaced it
    assert not list(sweep_dir.glob(".*.tmp"))


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_trial_timeout_fails_the_hung_trial_only(sweep: Run, workers: list[str]) -> None:
    # config_001 spins forever (a hung trial), config_002 works for 0.2 s
    result, records = sweep("CONFIG_FAULT_SPIN=-1|0.2\n", "--sweep-trial-timeout=3", *workers)
    result.assert_outcomes(passed=1, failed=1)
    hung, fine = records
    assert hung["status"] == "failed"
    assert hung["error"] == "timed out after 3 s (--sweep-trial-timeout)"
    assert 3 <= hung["training_time"] < 30
    assert fine["status"] == "passed" and fine["test_acc"] == 52.0


def test_resume_trains_only_the_missing_trials(sweep: Run, pytester: pytest.Pytester) -> None:
    body = "CONFIG_NUM_EPOCHS=2\nCONFIG_LEARNING_RATE=0.001|0.002|0.003\n"
    first, _ = sweep(body, "-k", "config_001 or config_003")
    first.assert_outcomes(passed=2)
    assert trainings(pytester) == ["config_001", "config_003"]
    resumed, records = sweep(body, "--sweep-resume")
    resumed.assert_outcomes(passed=3)
    assert trainings(pytester) == ["config_001", "config_002", "config_003"]  # only config_002 trained again
    assert [(r["config_file"], r["reused"]) for r in records] == [
        ("config_001", True),
        ("config_002", False),
        ("config_003", True),
    ]
    assert len(list((pytester.path / "out").glob("sweep_*"))) == 1  # continued in the same folder
    assert {r["seed"] for r in records} == {42}
    # a changed config under the same names runs again instead of being reused
    changed, records = sweep(body.replace("CONFIG_NUM_EPOCHS=2", "CONFIG_NUM_EPOCHS=1"), "--sweep-resume")
    changed.assert_outcomes(passed=3)
    assert not any(r["reused"] for r in records)
    assert trainings(pytester).count("config_001") == 2


def test_a_serial_run_that_dies_leaves_a_summary_of_its_finished_trials(sweep: Run, pytester: pytest.Pytester) -> None:
    # config_001/002 finish, config_003 kills the whole (serial) pytest process, config_004 never starts:
    # nothing reaches pytest_sessionfinish, so only the summaries written along the way are left
    body = "CONFIG_FAULT_SPIN=0.2\nCONFIG_FAULT_CRASH_ONCE=n|y\nCONFIG_LEARNING_RATE=0.001|0.002\n"
    died, records = sweep(body, "--sweep-summary-interval=0")
    assert died.ret == -signal.SIGKILL and "passed" not in died.stdout.str().splitlines()[-1]
    assert [(r["config_file"], r["status"], r["error"]) for r in records] == [
        ("config_001", "passed", None),
        ("config_002", "passed", None),
        ("config_003", "not_run", "not finished when this summary was written"),
        ("config_004", "not_run", "not finished when this summary was written"),
    ]
    analysis = next((pytester.path / "out").glob("sweep_*/sweep_analysis.txt")).read_text()
    assert "The sweep was still running when this file was written" in analysis
    assert "BEST CONFIGURATION" in analysis and "Passed: 2 | Failed: 0 | Skipped: 0 | Not run: 2" in analysis
    # --sweep-resume finishes it in the same folder and replaces the interim files
    resumed, records = sweep(body, "--sweep-resume")
    resumed.assert_outcomes(passed=4)
    assert trainings(pytester) == ["config_001", "config_002", "config_003", "config_003", "config_004"]
    assert [(r["status"], r["reused"]) for r in records] == [
        ("passed", True),
        ("passed", True),
        ("passed", False),
        ("passed", False),
    ]
    analysis = next((pytester.path / "out").glob("sweep_*/sweep_analysis.txt")).read_text()
    assert "still running" not in analysis


def test_a_long_interval_still_writes_the_first_result_at_once(sweep: Run, pytester: pytest.Pytester) -> None:
    # an hour's interval (no timing involved): the summary is written after the first result, then
    # not again before the run dies (issue 16: a hard death in the first seconds left no summary)
    died, records = sweep("CONFIG_FAULT_SPIN=0.2\nCONFIG_FAULT_CRASH_ONCE=n|y\n", "--sweep-summary-interval=3600")
    assert died.ret == -signal.SIGKILL
    assert [(r["config_file"], r["status"]) for r in records] == [("config_001", "passed"), ("config_002", "not_run")]
    assert trainings(pytester) == ["config_001", "config_002"]


def test_a_failing_interim_summary_does_not_stop_the_sweep(sweep: Run, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        broken_reporter="""
        def pytest_sweep_progress(config, sweep):
            raise OSError(28, "No space left on device")
    """
    )
    result, records = sweep(
        "CONFIG_FAULT_SPIN=0.1\nCONFIG_LEARNING_RATE=0.001|0.002\n",
        "--sweep-summary-interval=0",
        "-p",
        "broken_reporter",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["sweep: interim summary not written: *No space left on device*; the sweep goes on*"])
    assert [r["status"] for r in records] == ["passed", "passed"]  # the final summary is complete


def test_resume_without_an_earlier_sweep_is_a_usage_error(sweep: Run) -> None:
    result, _ = sweep("CONFIG_LEARNING_RATE=0.001\n", "--sweep-resume")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --sweep-resume: no sweep folder under *; run a sweep first or pass --sweep-resume=DIR"]
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_controller_still_writes_the_summary(pytester: pytest.Pytester, sig: int) -> None:
    # config_001: 1 epoch; config_002: 300 epochs (interrupted); config_003/004 never start
    pytester.path.joinpath("range").write_text(BASE + "CONFIG_LEARNING_RATE=0.001|0.002\nCONFIG_NUM_EPOCHS=1|300\n")
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            *XDIST_PLUGIN_ARGS,
            "--range-config=range",
            "--sweep-output=out",
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        out = pytester.path / "out"
        while time.monotonic() < deadline and not list(out.glob("sweep_*/config_002_*/output.log")):
            time.sleep(0.2)
        assert list(out.glob("sweep_*/config_001_*/training_metrics.json"))
        time.sleep(0.5)
        proc.send_signal(sig)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    records = summary(pytester.path / "out")
    statuses = {r["config_file"]: r["status"] for r in records}
    assert statuses == {
        "config_001": "passed",
        "config_002": "not_run",
        "config_003": "not_run",
        "config_004": "not_run",
    }
    analysis = next((pytester.path / "out").glob("sweep_*/sweep_analysis.txt")).read_text()
    assert "The sweep was interrupted" in analysis
    assert not list((pytester.path / "out").glob("sweep_*/.*.tmp"))  # no half-written file left behind


def test_two_range_files_with_the_same_names_keep_separate_folders(sweep: Run, pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("other").write_text("CONFIG_FAULT_SPIN=0.01|0.02\n")
    result, records = sweep("CONFIG_FAULT_SPIN=0.01|0.02\n", "--range-config=other")
    result.assert_outcomes(passed=4)
    assert sorted(r["trial_dir"] for r in records) == [
        "other-config_001_fault_spin-0.01",
        "other-config_002_fault_spin-0.02",
        "range-config_001_fault_spin-0.01",
        "range-config_002_fault_spin-0.02",
    ]
    assert {Path(r["source"]).name for r in records} == {"range", "other"}
    out = next((pytester.path / "out").glob("sweep_*"))
    assert all((out / r["trial_dir"] / "training_metrics.json").is_file() for r in records)
    # a resume reuses each file's own trials, not the other file's namesakes
    resumed, records = sweep("CONFIG_FAULT_SPIN=0.01|0.02\n", "--range-config=other", "--sweep-resume")
    resumed.assert_outcomes(passed=4)
    assert all(r["reused"] for r in records)
