"""The schedulers against a plugin trainer whose epoch metrics are hostile, and plugin schedulers that misbehave.

One real sweep per scheduler (a subprocess, module-scoped), one trial per hostile epoch report;
each is a test id.  A bad report fails its own trial in a sentence (never SQLite's or Python's
own error), and the rung store stays free of it.
"""

from __future__ import annotations

import fnmatch
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from runtime_toy import TOY, by_name, only_sweep, write_toy

from sweep_helpers import SweepPytester, SweepTools, assert_usage_error

NO_EPOCH = "the trainer's epoch metrics have no whole-number 'epoch'; the scheduler needs it"
NO_METRIC = "--sweep-metric=test_acc: the trainer's epoch metrics have no number test_acc (they have *)"
REPORTS = {
    "no_epoch": ("failed", NO_EPOCH),
    "float_epoch": ("failed", NO_EPOCH),
    "bool_epoch": ("failed", NO_EPOCH),
    "str_epoch": ("failed", NO_EPOCH),
    "neg_epoch": ("passed", None),
    "zero_epoch": ("passed", None),
    "huge_epoch": ("failed", "the trainer's epoch metrics have epoch 1000*, not an epoch number (0 to 2**62)"),
    "big_epoch": ("failed", "the trainer's epoch metrics have epoch 9223372036854775809, not an epoch number*"),
    "repeat_epoch": ("passed", None),
    "missing_metric": ("failed", NO_METRIC),
    "none_metric": ("failed", NO_METRIC),
    "str_metric": ("failed", NO_METRIC),
    "bool_metric": ("failed", NO_METRIC),
    "list_metric": ("failed", NO_METRIC),
    "huge_metric": ("failed", "--sweep-metric=test_acc: the trainer's epoch metric test_acc is too large for a number"),
    "nan_metric": ("failed", "test_acc is NaN at epoch 1 (the trainer's epoch metrics); the * scheduler cannot *"),
    "inf_metric": ("failed", "test_acc is infinite at epoch 1 (the trainer's epoch metrics); the * scheduler *"),
    "neg_inf_metric": ("failed", "test_acc is infinite at epoch 1 *"),
    "tiny_metric": ("passed|stopped", None),
    "not_dict": ("failed", "the trainer conftest.ToyTrainer reported an epoch's metrics as list *; ctx.epoch_ended takes a dict"),
    "int_keys": ("passed|stopped", None),
}  # fmt: skip


def _sweep(tmp: Path, scheduler: str) -> dict[str, Any]:
    (tmp / "conftest.py").write_text(TOY, encoding="utf-8")
    (tmp / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    actions = ['"ok"', *(f'"epochs:{k}"' for k in REPORTS)]
    (tmp / "sweep.rc").write_text(f"CONFIG_NUM_EPOCHS=3\nCONFIG_TOY_DO={'|'.join(actions)}\n", encoding="utf-8")
    result = SweepTools.run_process(
        tmp,
        "--range-config=sweep.rc",
        "--sweep-output=out",
        "-p",
        "no:cacheprovider",
        f"--sweep-scheduler={scheduler}",
        "--sweep-startup-trials=0",
    )
    folder = SweepTools.only_sweep_dir(tmp / "out")
    records = json.loads((folder / "sweep_summary.json").read_text(encoding="utf-8"))
    return {"result": result, "records": {r["CONFIG_TOY_DO"].partition(":")[2]: r for r in records}, "dir": folder}


@pytest.fixture(scope="module", params=["asha", "median"])
def reports(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _sweep(tmp_path_factory.mktemp(request.param), request.param)


@pytest.mark.parametrize(("name", "expected"), REPORTS.items(), ids=list(REPORTS))
def test_a_hostile_epoch_report_fails_its_trial_alone(
    reports: dict[str, Any], name: str, expected: tuple[str, str | None]
) -> None:
    status, error = expected
    rec = reports["records"][name]
    assert rec["status"] in status.split("|"), rec
    if error is None:
        assert rec["error"] is None
    else:
        assert fnmatch.fnmatchcase(str(rec["error"]), error.replace("[", "[[]")), rec["error"]


def test_the_sweep_ends_in_one_piece_and_the_store_holds_only_numbers(reports: dict[str, Any]) -> None:
    result = reports["result"]
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == 1 and "INTERNALERROR" not in out and "IntegrityError" not in out, out
    assert reports["records"][""]["status"] == "passed"  # the good trial
    db = sqlite3.connect(reports["dir"] / "rungs.sqlite")
    try:
        values = [v for (v,) in db.execute("SELECT value FROM results")]
    finally:
        db.close()
    assert values and all(isinstance(v, float) and v == v and abs(v) != float("inf") for v in values)


# -- plugin schedulers that misbehave ---------------------------------------------------------------------
BAD_SCHEDULERS = """

from pytest_sweep.matrix import Stop


class Odd:
    def __init__(self, kind):
        self.kind = kind

    def epoch_ended(self, trial, metrics):
        if self.kind == "true":
            return True
        if self.kind == "text":
            return "stop"
        if self.kind == "raises":
            raise ValueError("the scheduler broke")
        if self.kind == "bad_rung":
            return Stop("one", 5)
        return None

    def trial_finished(self, trial, record):
        if self.kind == "finish_raises":
            raise RuntimeError("the scheduler's bookkeeping broke")


@pytest.hookimpl
def pytest_sweep_make_scheduler(config, sweep_dir):
    kind = config.getoption("sweep_scheduler")
    if kind == "string":
        return "asha"
    if kind == "make_raises":
        raise RuntimeError("cannot build it")
    if kind in ("true", "text", "raises", "bad_rung", "finish_raises"):
        return Odd(kind)
    return None
"""


@pytest.mark.parametrize(
    ("kind", "status", "error"),
    [
        ("true", "failed", "the scheduler conftest.Odd returned True from epoch_ended, not a Stop or None"),
        ("text", "failed", "the scheduler conftest.Odd returned 'stop' from epoch_ended, not a Stop or None"),
        ("raises", "failed", "ValueError: the scheduler broke"),
        (
            "bad_rung",
            "failed",
            "the scheduler conftest.Odd returned Stop(rung='one', *) from epoch_ended, not a Stop or None",
        ),
        ("finish_raises", "passed", None),
    ],
)
def test_a_misbehaving_plugin_scheduler_fails_the_trials_in_a_sentence(
    sweep_pytester: SweepPytester, kind: str, status: str, error: str | None
) -> None:
    sp = sweep_pytester
    rc = write_toy(sp.pytester, 'CONFIG_NUM_EPOCHS=2\nCONFIG_TOY_DO="ok"|"ok2"\n', extra_conftest=BAD_SCHEDULERS)
    result = sp.run(f"--range-config={rc}", f"--sweep-scheduler={kind}")
    assert "INTERNALERROR" not in result.stdout.str()
    records = by_name(only_sweep(sp.path / "test_matrix_results"))
    for rec in records.values():
        assert rec["status"] == status, rec
        assert rec["error"] is None if error is None else fnmatch.fnmatchcase(str(rec["error"]), error), rec
    if kind == "finish_raises":  # the results stand; the plugin's failure is on the item
        result.assert_outcomes(failed=2)
        result.stdout.fnmatch_lines(["*RuntimeError: the scheduler's bookkeeping broke*"])


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("string", "ERROR: --sweep-scheduler=string: pytest_sweep_make_scheduler returned str 'asha', not a scheduler*"),
        ("make_raises", "ERROR: --sweep-scheduler=make_raises: pytest_sweep_make_scheduler failed: RuntimeError: cannot*"),
    ],
)  # fmt: skip
def test_a_scheduler_that_cannot_be_built_is_one_usage_line(
    sweep_pytester: SweepPytester, kind: str, expected: str
) -> None:
    rc = write_toy(sweep_pytester.pytester, 'CONFIG_TOY_DO="ok"|"ok2"\n', extra_conftest=BAD_SCHEDULERS)
    assert_usage_error(sweep_pytester.run(f"--range-config={rc}", f"--sweep-scheduler={kind}"), expected)


@pytest.mark.parametrize(
    ("args", "statuses"),
    [
        (["--sweep-scheduler=asha", "--sweep-grace-epochs=1000000000000000000000000000000"], ["passed"] * 3),
        (["--sweep-scheduler=asha", "--sweep-reduction=100"], ["passed", "stopped", "passed"]),
        (["--sweep-scheduler=asha", "--sweep-reduction=1.1"], ["passed", "stopped", "passed"]),
        (["--sweep-scheduler=median", "--sweep-startup-trials=1000000"], ["passed"] * 3),
        (["--sweep-scheduler=median", "--sweep-metric=test_acc:min", "--sweep-startup-trials=0"], ["passed", "passed", "stopped"]),
        (["--sweep-scheduler=asha", "--sweep-metric=epoch"], ["passed"] * 3),
    ],
)  # fmt: skip
def test_extreme_scheduler_settings_decide_as_documented(
    sweep_pytester: SweepPytester, args: list[str], statuses: list[str]
) -> None:
    """Quality 5, 1, 9 (accuracy 10 x Q + epoch), three epochs."""
    sp = sweep_pytester
    rc = write_toy(sp.pytester, "CONFIG_NUM_EPOCHS=3\nCONFIG_TOY_Q=5|1|9\n")
    result = sp.run(f"--range-config={rc}", *args)
    result.assert_outcomes(passed=3)
    records = by_name(only_sweep(sp.path / "test_matrix_results"))
    assert [records[n]["status"] for n in sorted(records)] == statuses
