"""Real process deaths and signals, serial and under ``-n 2``: the summary survives and the exit code tells.

Subprocesses (the faults end them): a torch-free plugin trainer whose trials kill their own
process in every way a process dies, or that a signal from outside ends.  What must hold: a
finished trial is in ``sweep_summary.json`` (or its folder, for a resume), and a run cut short
never exits 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from runtime_toy import TOY

from sweep_helpers import HERMETIC_ENV, PLUGIN_ARGS, XDIST_PLUGIN_ARGS, SweepTools

pytestmark = pytest.mark.slow


def _setup(tmp: Path, grid: str, conftest: str = "") -> None:
    (tmp / "conftest.py").write_text(TOY + conftest, encoding="utf-8")
    (tmp / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (tmp / "sweep.rc").write_text(grid, encoding="utf-8")


def _records(tmp: Path) -> dict[str, dict[str, Any]]:
    folder = SweepTools.only_sweep_dir(tmp / "out")
    data = json.loads((folder / "sweep_summary.json").read_text(encoding="utf-8"))
    return {str(r["config_file"]): r for r in data}


def _run(tmp: Path, *args: str) -> pytest.RunResult:
    return SweepTools.run_process(tmp, "--range-config=sweep.rc", "--sweep-output=out", "-p", "no:cacheprovider", *args)


# -- the trial's own process dies ---------------------------------------------------------------------------------
DEATHS = {
    "kill9": (-signal.SIGKILL, None),
    "abort": (-signal.SIGABRT, None),
    "segfault": (-signal.SIGSEGV, None),
    "exit:0": (1, "the trainer conftest.ToyTrainer ended the process with os._exit(0); the sweep stopped here"),
    "exit:3": (3, "the trainer conftest.ToyTrainer ended the process with os._exit(3); the sweep stopped here"),
    "hup": (-signal.SIGHUP, None),
}
DIE = """

import ctypes


@pytest.hookimpl(tryfirst=True)
def pytest_sweep_trial_started(trial):
    do = trial["CONFIG_TOY_DO"]
    if do == "abort":
        os.abort()
    if do == "segfault":
        ctypes.string_at(0)
    if do == "hup":
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(5)
"""


@pytest.mark.parametrize("death", list(DEATHS))
def test_a_serial_run_that_dies_in_its_second_trial_keeps_the_first(tmp_path: Path, death: str) -> None:
    _setup(tmp_path, f'CONFIG_TOY_DO="ok"|"{death}"|"ok3"\n', DIE)
    result = _run(tmp_path)
    code, error = DEATHS[death]
    assert result.ret == code, result.stdout.str() + result.stderr.str()
    records = _records(tmp_path)
    assert records["config_001"]["status"] == "passed"
    if error is not None:  # os._exit: the summary was finished first
        assert records["config_002"]["error"] == error
        assert records["config_003"]["status"] == "not_run" and records["config_003"]["error"] == "sweep interrupted"


def test_sys_exit_in_a_trial_fails_that_trial_and_the_sweep_goes_on(tmp_path: Path) -> None:
    _setup(tmp_path, 'CONFIG_TOY_DO="ok"|"sysexit:0"|"ok3"\n')
    result = _run(tmp_path)
    assert result.ret == 1
    assert [r["status"] for r in _records(tmp_path).values()] == ["passed", "failed", "passed"]


# -- a signal from outside ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sig", "workers"),
    [(signal.SIGTERM, []), (signal.SIGINT, []), (signal.SIGTERM, ["-n", "2"])],
    ids=["SIGTERM-serial", "SIGINT-serial", "SIGTERM-xdist"],
)
def test_a_signal_mid_sweep_writes_the_summary_and_exits_non_zero(
    tmp_path: Path, sig: signal.Signals, workers: list[str]
) -> None:
    # SIGTERM is a preemption (matrix/preempt.py): summary written, exit 75 for a requeue script;
    # Ctrl-C keeps pytest's 2 (interrupted)
    code = 75 if sig == signal.SIGTERM else 2
    _setup(tmp_path, 'CONFIG_TOY_DO="ok"|"sleep:60"|"sleep:61"|"ok4"\n')
    plugins = XDIST_PLUGIN_ARGS if workers else PLUGIN_ARGS
    cmd = [sys.executable, "-m", "pytest", *plugins, "--range-config=sweep.rc", "--sweep-output=out", "-p",
           "no:cacheprovider", *workers]  # fmt: skip
    env = {**os.environ, **HERMETIC_ENV}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until a sleeping trial has started
            if any(tmp_path.glob("out/sweep_*/config_00[23]*/output.log")):
                break
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, out
    assert "INTERNALERROR" not in out
    records = _records(tmp_path)
    assert len(records) == 4
    assert records["config_001"]["status"] == "passed" and records["config_001"]["interim"] is False


# -- -n 2: faults in the workers ---------------------------------------------------------------------------------------------
XDIST_FAULTS = {
    "ok": ("passed", None),
    "exit:0": ("failed", "worker crashed: *"),
    "kill9": ("failed", "worker crashed: *"),
    "spin:30": ("failed", "timed out after 1 s (--sweep-trial-timeout)"),
    "nan_epoch:1": ("failed", "test_acc is NaN at epoch 1 (the trainer's epoch metrics); the asha scheduler *"),
    "return:none": ("failed", "the trainer conftest.ToyTrainer returned None from run(); *"),
    "history:str": ("failed", "the trainer conftest.ToyTrainer returned 'history' as str 'abc'; *"),
    "ok8": ("passed", None),
}


@pytest.fixture(scope="module")
def xdist_faults(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("xdist")
    grid = "CONFIG_NUM_EPOCHS=2\nCONFIG_TOY_DO=" + "|".join(f'"{k}"' for k in XDIST_FAULTS) + "\n"
    _setup(tmp, grid)
    result = SweepTools.run_process(
        tmp, *XDIST_PLUGIN_ARGS[len(PLUGIN_ARGS) :], "--range-config=sweep.rc", "--sweep-output=out", "-p",
        "no:cacheprovider", "-n", "2", "--sweep-trial-timeout=1", "--sweep-scheduler=asha",
    )  # fmt: skip
    records = {r["CONFIG_TOY_DO"]: r for r in _records(tmp).values()}
    return {"result": result, "records": records}


@pytest.mark.parametrize(("fault", "expected"), XDIST_FAULTS.items(), ids=list(XDIST_FAULTS))
def test_a_fault_in_an_xdist_worker_fails_its_trial_alone(
    xdist_faults: dict[str, Any], fault: str, expected: tuple[str, str | None]
) -> None:
    import fnmatch

    status, error = expected
    rec = xdist_faults["records"][fault]
    assert rec["status"] == status, rec
    assert rec["error"] is None if error is None else fnmatch.fnmatchcase(str(rec["error"]), error), rec


def test_an_xdist_run_with_faults_exits_1_with_a_final_summary(xdist_faults: dict[str, Any]) -> None:
    result = xdist_faults["result"]
    assert result.ret == 1, result.stdout.str()
    assert all(r["interim"] is False for r in xdist_faults["records"].values())


# -- an import that never ends: the process cannot go on ---------------------------------------------------------------------
HUNG_IMPORT = """

from pytest_sweep.matrix import timeout as _timeout

_timeout.IMPORT_GRACE_S = 1.0  # the test's own: an import may hold the alarm back 1 s
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_an_import_past_its_grace_ends_the_process_that_ran_it_not_the_sweep(
    tmp_path: Path, workers: list[str]
) -> None:
    (tmp_path / "endless_import_mod.py").write_text("import time\nwhile True:\n    time.sleep(0.01)\n")
    _setup(tmp_path, 'CONFIG_TOY_DO="ok"|"import:endless_import_mod"|"ok3"|"ok4"\n', HUNG_IMPORT)
    plugins = XDIST_PLUGIN_ARGS[len(PLUGIN_ARGS) :] if workers else ()
    result = _run(tmp_path, *plugins, "--sweep-trial-timeout=0.5", *workers)
    out = result.stdout.str() + result.stderr.str()
    records = _records(tmp_path)
    hung = records["config_002"]
    assert hung["status"] == "failed"
    assert str(hung["error"]).startswith(
        "timed out after 0.5 s (--sweep-trial-timeout); an import of endless_import_mod was still running 1 s "
        "later and was interrupted; the process that ran it cannot safely go on"
    ), hung
    assert "Segmentation" not in out and result.ret != 0
    if workers:  # the worker ended, xdist started another, and the sweep went on
        assert result.ret == 1
        assert [records[n]["status"] for n in ("config_001", "config_003", "config_004")] == ["passed"] * 3
    else:  # the serial run stopped after it, with the summary written
        assert result.ret == 2, out
        assert records["config_003"]["error"] == "sweep interrupted"
        assert all(r["interim"] is False for r in records.values())
        result.stdout.fnmatch_lines(["*config_002: an import of endless_import_mod was interrupted*"])
