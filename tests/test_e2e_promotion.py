"""ASHA in promotion mode: trials pause at rungs (checkpointed) and the rung's best continue later (issue 21).

The trainer is a plugin whose accuracy is a known function of a swept value (10 x quality +
epoch) and which checkpoints through the trial context, so every decision is known in advance
and every epoch it trains is logged: a promoted trial must go on from its checkpoint, never
training an epoch twice.
"""

from __future__ import annotations

import importlib.util
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

# numpy before any in-process pytester run: pytester drops modules a test imported, and numpy's
# extension cannot be imported twice in one process (the trackers' readers below import it)
import numpy  # noqa: F401
import pytest

from sweep_helpers import XDIST_PLUGIN_ARGS, SweepPytester

HAVE_TB = importlib.util.find_spec("tensorboard") is not None
HAVE_MLFLOW = importlib.util.find_spec("mlflow") is not None

KNOWN = """
import os
from pathlib import Path

import pytest
from pytest_sweep.matrix import Symbol, TrialFailed

HERE = Path(__file__).parent


@pytest.hookimpl
def pytest_sweep_declare_symbols():
    return [Symbol("CONFIG_QUALITY", "int", 1, "How good the trial is")]


class Known:
    def run(self, trial, ctx):
        state = ctx.load_checkpoint() or {"epoch": 0, "acc": 0.0}
        epoch, acc = state["epoch"], state["acc"]
        while epoch < trial["CONFIG_NUM_EPOCHS"]:
            epoch += 1
            if str(epoch) == os.environ.get("FAIL_AT"):
                raise TrialFailed(f"failed at epoch {epoch}")
            acc = 10.0 * trial["CONFIG_QUALITY"] + epoch
            with open(HERE / "epochs.txt", "a") as fh:
                fh.write(f"{trial.name} {epoch} {os.getpid()}\\n")
            stop = ctx.epoch_ended({"epoch": epoch, "test_acc": acc})
            ctx.save_checkpoint({"epoch": epoch, "acc": acc})
            if stop:
                break
        return {"test_acc": acc, "epochs_run": epoch}


@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    return Known()
"""
#: Six trials in the order 5 1 9 2 8 3 (grid order), 9 epochs: rungs at 1 and 3 (eta 3), stages to 1, 3 and 9.
RANGE = "CONFIG_NUM_EPOCHS=9\nCONFIG_QUALITY=5|1|9|2|8|3\n"
PROMOTION = ("--sweep-scheduler=asha", "--sweep-asha-mode=promotion", "--sweep-progress=none")


def epochs_trained(path: Path, grid: tuple[int, ...] = (5, 1, 9, 2, 8, 3)) -> dict[int, list[int]]:
    """Quality -> the epochs trained, in order (config_00N has the N-th quality of the grid)."""
    quality = dict(zip(range(1, len(grid) + 1), grid, strict=True))
    found: dict[int, list[int]] = {}
    for line in (path / "epochs.txt").read_text().splitlines():
        name, epoch, _ = line.split()
        found.setdefault(quality[int(name[-3:])], []).append(int(epoch))
    return found


@pytest.fixture(scope="module")
def readers() -> None:
    """Import the trackers' readers before ``pytester`` snapshots ``sys.modules`` (see test_trackers.py)."""
    with warnings.catch_warnings():  # SQLAlchemy 2.1 deprecates a loader strategy MLflow's store uses
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        if HAVE_TB:
            import tensorboard.backend.event_processing.event_accumulator  # noqa: F401
        if HAVE_MLFLOW:
            import mlflow.store.db.utils
            import mlflow.store.tracking.sqlalchemy_store  # noqa: F401


@pytest.fixture
def sp(sweep_pytester: SweepPytester) -> SweepPytester:
    sweep_pytester.pytester.makeconftest(KNOWN)
    sweep_pytester.range_config(RANGE)
    return sweep_pytester


def test_collected_as_stage_items_in_waves(sp: SweepPytester) -> None:
    result = sp.run("--range-config=sweep.rc", *PROMOTION, "--sweep-order=grid", "--collect-only", "-q")
    ids = [line.split("::")[1] for line in result.stdout.lines if "::config_" in line]
    assert ids[:7] == [
        "config_001[QUALITY=5-to_epoch1]",
        "config_002[QUALITY=1-to_epoch1]",
        "config_003[QUALITY=9-to_epoch1]",
        "config_004[QUALITY=2-to_epoch1]",
        "config_005[QUALITY=8-to_epoch1]",
        "config_006[QUALITY=3-to_epoch1]",
        "config_001[QUALITY=5-to_epoch3]",
    ]
    assert len(ids) == 18 and ids[-1] == "config_006[QUALITY=3-to_epoch9]"
    result.stdout.fnmatch_lines(["sweep: 6 combinations*"])  # the estimate counts trials, not stages
    # interleaved is the default order with a scheduler: within each wave
    default = sp.run("--range-config=sweep.rc", *PROMOTION, "--collect-only", "-q")
    names = [line.split("::")[1].split("[")[0] for line in default.stdout.lines if "::config_" in line]
    assert names[:6] == ["config_001", "config_005", "config_003", "config_002", "config_006", "config_004"]
    assert names[6:12] == names[:6]


def test_serial_promotion_in_grid_order_keeps_the_best_and_trains_each_epoch_once(
    sp: SweepPytester,
) -> None:
    """Rung 1 (51 11 91 21 81 31, all in): the top 2 of 6 go on, 9 and 8; rung 3 (93, 83): the top 1 of 2, 9."""
    result = sp.run("--range-config=sweep.rc", *PROMOTION, "--sweep-order=grid", "-rs", "--junitxml=junit.xml")
    result.assert_outcomes(passed=9, skipped=9)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED * config_001 not promoted at epoch 1: test_acc 51.0% below the rung's top-1/3 cutoff 81.0% (6 results)",
            "SKIPPED * config_002 stopped at epoch 1: not promoted at epoch 1: *",
            "SKIPPED * config_005 not promoted at epoch 3: test_acc 83.0% below the rung's top-1/3 cutoff 93.0% (2 results)",
        ]
    )
    sweep_dir = sp.only_sweep_dir(sp.path / "test_matrix_results")
    records = sp.records(sweep_dir)
    got = {r["CONFIG_QUALITY"]: (r["status"], r["epochs_run"], r["rung"], r["test_acc"]) for r in records.values()}
    assert got == {
        5: ("stopped", 1, 1, 51.0),
        1: ("stopped", 1, 1, 11.0),
        9: ("passed", 9, None, 99.0),
        2: ("stopped", 1, 1, 21.0),
        8: ("stopped", 3, 3, 83.0),
        3: ("stopped", 1, 1, 31.0),
    }
    assert not any(r["paused"] for r in records.values())
    assert records["config_003"]["resumed_from_epoch"] == 3  # its last stage went on from epoch 3
    trained = epochs_trained(sp.path)
    assert trained == {5: [1], 1: [1], 9: list(range(1, 10)), 2: [1], 8: [1, 2, 3], 3: [1]}  # 16 of 54 epochs
    assert sum(map(len, trained.values())) == 16
    for rec in records.values():  # every trial ended for good: no checkpoint left behind
        assert not (sweep_dir / rec["trial_dir"] / "checkpoints").exists()
    # junit: one test case per stage, the skipped ones with their reason
    cases = ET.parse(sp.path / "junit.xml").getroot().iter("testcase")
    skipped = {c.get("name"): c.find("skipped") for c in cases}
    assert len(skipped) == 18
    reason = skipped["config_005[QUALITY=8-to_epoch9]"]
    assert reason is not None and "not promoted at epoch 3" in str(reason.get("message"))
    assert skipped["config_003[QUALITY=9-to_epoch9]"] is None
    log = (sweep_dir / records["config_003"]["trial_dir"] / "output.log").read_text()
    assert log.count("started on main") == 3 and "promoted at epoch 3: continues to epoch 9" in log


def test_one_wave_then_resume_promotes_the_paused_trials(sp: SweepPytester) -> None:
    """``-k to_epoch1`` runs the first wave only: every trial pauses at epoch 1, checkpointed; a resume goes on."""
    first = sp.run("--range-config=sweep.rc", *PROMOTION, "--sweep-order=grid", "-k", "to_epoch1")
    first.assert_outcomes(passed=6, deselected=12)
    sweep_dir = sp.only_sweep_dir(sp.path / "test_matrix_results")
    records = sp.records(sweep_dir)
    assert {(r["status"], r["paused"], r["rung"]) for r in records.values()} == {("stopped", True, 1)}
    assert all(str(r["stop_reason"]).startswith("paused at epoch 1 with test_acc ") for r in records.values())
    for rec in records.values():
        assert [p.name for p in (sweep_dir / rec["trial_dir"] / "checkpoints").iterdir()] == [
            "checkpoint-000001-epoch1.ckpt"
        ]
    resumed = sp.run("--range-config=sweep.rc", *PROMOTION, "--sweep-order=grid", f"--sweep-resume={sweep_dir}")
    resumed.assert_outcomes(passed=9, skipped=9)  # the first wave's items pass: done already (reused)
    records = sp.records(sweep_dir)
    assert [records[n]["status"] for n in sorted(records)] == ["stopped", "stopped", "passed"] + ["stopped"] * 3
    assert sum(map(len, epochs_trained(sp.path).values())) == 16  # nothing trained twice


def test_x_stops_at_a_failed_stage_and_lf_goes_on_from_the_checkpoint(
    sp: SweepPytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    sp.range_config("CONFIG_NUM_EPOCHS=9\nCONFIG_QUALITY=5|9\n")
    monkeypatch.setenv("FAIL_AT", "5")
    failed = sp.run("--range-config=sweep.rc", *PROMOTION, "--sweep-order=grid", "-x")
    # both to epoch 1; 5 is not promoted; 9 to epoch 3, then fails at epoch 5 on its way to 9
    failed.assert_outcomes(passed=3, skipped=2, failed=1)
    failed.stdout.fnmatch_lines(["sweep.rc ..s.sF", "config_002: failed at epoch 5 (log: *"])
    sweep_dir = sp.only_sweep_dir(sp.path / "test_matrix_results")
    record = sp.records(sweep_dir)["config_002"]
    assert record["status"] == "failed" and record["error"] == "failed at epoch 5"
    assert (sweep_dir / record["trial_dir"] / "checkpoints").is_dir()  # a failed trial keeps its checkpoint

    monkeypatch.delenv("FAIL_AT")
    again = sp.run("--range-config=sweep.rc", *PROMOTION, "--sweep-order=grid", "--lf", f"--sweep-resume={sweep_dir}")
    again.assert_outcomes(passed=1, deselected=5)
    record = sp.records(sweep_dir)["config_002"]
    assert (record["status"], record["epochs_run"], record["resumed_from_epoch"]) == ("passed", 9, 4)
    assert epochs_trained(sp.path, (5, 9))[9] == list(range(1, 10))  # the failed run's 1-4, the rerun's 5-9


@pytest.mark.parametrize("order", ["grid", "interleaved"])
def test_two_workers_promote_across_workers(sp: SweepPytester, order: str) -> None:
    """A trial's stages may run on either worker; each goes on from the checkpoint the other left."""
    result = sp.pytester.runpytest_subprocess(
        *XDIST_PLUGIN_ARGS, "-n", "2", "--range-config=sweep.rc", *PROMOTION, f"--sweep-order={order}", timeout=300
    )
    assert result.ret == 0, result.outlines
    records = sp.records(sp.only_sweep_dir(sp.path / "test_matrix_results"))
    assert {r["status"] for r in records.values()} <= {"passed", "stopped"}
    assert not any(r["paused"] for r in records.values())
    best = records["config_003"]
    assert (best["status"], best["epochs_run"], best["test_acc"]) == ("passed", 9, 99.0)
    trained = epochs_trained(sp.path)
    for epochs in trained.values():
        assert epochs == list(range(1, len(epochs) + 1))  # each epoch once, in order, across workers
    assert sum(map(len, trained.values())) <= 54 // 2


def test_promotion_with_a_sampled_search_is_a_usage_error(sp: SweepPytester) -> None:
    """A sampled trial's values are drawn when it starts: it cannot be split into stage items."""
    result = sp.run("--range-config=sweep.rc", *PROMOTION, "--sweep-search=random", "--sweep-trials=3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.outlines + result.errlines
    output = "\n".join(result.outlines + result.errlines)
    assert "Traceback" not in output and "INTERNALERROR" not in output
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert errors == [
        "ERROR: --sweep-asha-mode=promotion works on a grid sweep (--sweep-search is random: a sampled trial's "
        "values are drawn when it starts, so it cannot be split into stages); use --sweep-asha-mode=stopping "
        "with a sampler"
    ]
    assert not (sp.path / "test_matrix_results").exists()  # nothing written


@pytest.mark.skipif(not HAVE_TB, reason="needs pip install -e '.[tensorboard]'")
def test_tensorboard_shows_each_trial_once_across_its_stages(readers: None, sp: SweepPytester) -> None:
    """A later stage goes on from the checkpoint: its events join the earlier stages' (one step per epoch)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = sp.run_subprocess("--range-config=sweep.rc", *PROMOTION, "--sweep-order=grid", "--sweep-tensorboard")
    assert result.ret == 0, result.outlines
    sweep_dir = sp.only_sweep_dir(sp.path / "test_matrix_results")
    records = sp.records(sweep_dir)
    trained = epochs_trained(sp.path)
    for name, quality in zip(sorted(records), (5, 1, 9, 2, 8, 3), strict=True):
        acc = EventAccumulator(str(sweep_dir / records[name]["trial_dir"]))
        acc.Reload()
        steps = [(e.step, e.value) for e in acc.Scalars("test_acc")]
        assert steps == [(e, 10.0 * quality + e) for e in trained[quality]], name
    assert len(trained[9]) == 9  # the best went through all three stages


@pytest.mark.skipif(not HAVE_MLFLOW, reason="needs pip install -e '.[mlflow]'")
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_mlflow_logs_each_trial_once_with_its_last_stage(readers: None, sp: SweepPytester) -> None:
    """A paused stage is not the trial's result: the nested run comes when the trial is done (or the run ends)."""
    import mlflow

    result = sp.run_subprocess("--range-config=sweep.rc", *PROMOTION, "--sweep-order=grid", "--sweep-mlflow")
    assert result.ret == 0, result.outlines
    out = sp.path / "test_matrix_results"
    records = sp.records(sp.only_sweep_dir(out))
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{out / 'mlruns' / 'mlflow.db'}")
    (exp,) = [e for e in client.search_experiments() if e.name != "Default"]
    runs = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    by_name = {r.data.tags["pytest_sweep.config_file"]: r for r in runs}
    assert len(runs) == len(by_name) == len(records) == 6  # one nested run per trial, none per stage
    for name, rec in records.items():
        run = by_name[name]
        assert run.data.tags["pytest_sweep.status"] == rec["status"]
        assert run.data.metrics["test_acc"] == rec["test_acc"]
        history = client.get_metric_history(run.info.run_id, "epochs_run")
        assert [m.value for m in history] == [rec["epochs_run"]]
    assert records["config_003"]["epochs_run"] == 9
