"""``--sweep-tensorboard`` and ``--sweep-mlflow`` on real sweeps, read back with the libraries' own readers.

TensorBoard: ``EventAccumulator`` per run (the scalars, and the HParams plugin's data: the
experiment, each session's hyperparameters and status).  MLflow: ``MlflowClient`` (``search_runs``,
``get_metric_history``, ``list_artifacts``).  The trainer is the torch-free landscape of
``landscape.py``; the tests skip when the extras are not installed (``make venv`` installs them).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

# numpy before any in-process pytester run: pytester drops modules a test imported, and numpy's
# extension cannot be imported twice in one process (the readers below import it)
import numpy  # noqa: F401
import pytest
from landscape import CONFTEST, RANGE, RANGE_WITH_FAILURE, expected_acc

from sweep_helpers import XDIST_PLUGIN_ARGS, SweepPytester, assert_usage_error

HAVE_TB = importlib.util.find_spec("tensorboard") is not None
HAVE_MLFLOW = importlib.util.find_spec("mlflow") is not None
needs_tb = pytest.mark.skipif(not HAVE_TB, reason="needs the extra: pip install -e '.[tensorboard]'")
needs_mlflow = pytest.mark.skipif(not HAVE_MLFLOW, reason="needs the extra: pip install -e '.[mlflow]'")
#: SQLAlchemy 2.1 deprecates a loader strategy MLflow's store uses; reading the store back warns
mlflow_reads = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
LR = {"config_001": 0.001, "config_002": 0.01, "config_003": 0.1, "config_004": 0.5}
PID = re.compile(r"events\.out\.tfevents\.\d+\.[^.]+\.(\d+)\.\d+")


@pytest.fixture(scope="session")
def readers() -> None:
    """Import the readers before ``pytester`` snapshots ``sys.modules``: it drops what a test imported,
    and numpy's extension cannot be imported a second time in one process."""
    if HAVE_TB:
        import tensorboard.backend.event_processing.event_accumulator  # noqa: F401
    if HAVE_MLFLOW:  # with its SQL store, which brings SQLAlchemy's compiled modules
        import mlflow.store.db.utils
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401


def event_pids(folder: Path) -> set[str]:
    return {m.group(1) for p in folder.glob("events.out.tfevents.*") if (m := PID.fullmatch(p.name))}


def imported(root: Path, who: str) -> set[str]:
    return set((root / f"imported-{who}.txt").read_text().split())


# -- TensorBoard ---------------------------------------------------------------------------------------


def check_tensorboard(logroot: Path, records: dict[str, dict[str, Any]], epochs: int = 3) -> None:
    """Each trial a run with its per-epoch scalars, final metrics and HParams session; the experiment at the root."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    for name, rec in records.items():
        acc = EventAccumulator(str(logroot / rec["trial_dir"]))
        acc.Reload()
        lr = LR[name]
        trained = 1 if rec["status"] == "failed" else epochs
        got = [(e.step, e.value) for e in acc.Scalars("test_acc")]
        assert [s for s, _ in got] == list(range(1, trained + 1)), name
        assert [v for _, v in got] == pytest.approx([expected_acc(lr, e) for e in range(1, trained + 1)], abs=1e-4)
        assert [e.value for e in acc.Scalars("lr")] == pytest.approx([lr] * trained)
        assert {"train_loss", "test_acc", "lr"} <= set(acc.Tags()["scalars"])
        hp = acc.PluginTagToContent(metadata.PLUGIN_NAME)
        start = plugin_data_pb2.HParamsPluginData.FromString(hp[metadata.SESSION_START_INFO_TAG]).session_start_info
        assert dict(start.hparams)["LEARNING_RATE"].number_value == pytest.approx(lr)
        end = plugin_data_pb2.HParamsPluginData.FromString(hp[metadata.SESSION_END_INFO_TAG]).session_end_info
        if rec["status"] == "passed":
            assert end.status == api_pb2.STATUS_SUCCESS
            (final,) = acc.Scalars("final/test_acc")
            assert (final.step, final.value) == (3, pytest.approx(rec["test_acc"], abs=1e-4))
            assert acc.Scalars("final/best_acc")[0].value == pytest.approx(rec["best_acc"], abs=1e-4)
        else:
            assert end.status == api_pb2.STATUS_FAILURE
            assert "final/test_acc" not in acc.Tags()["scalars"]
    root = EventAccumulator(str(logroot))
    root.Reload()
    exp_bytes = root.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.EXPERIMENT_TAG]
    experiment = plugin_data_pb2.HParamsPluginData.FromString(exp_bytes).experiment
    (info,) = experiment.hparam_infos
    assert info.name == "LEARNING_RATE" and info.type == api_pb2.DATA_TYPE_FLOAT64
    assert [v.number_value for v in info.domain_discrete.values] == pytest.approx([LR[n] for n in sorted(records)])
    assert [m.name.tag for m in experiment.metric_infos] == [
        "final/test_acc",
        "final/best_acc",
        "final/sparsity",
        "final/training_time",
    ]


# -- MLflow --------------------------------------------------------------------------------------------


def mlflow_runs(db: Path, experiment: str) -> tuple[Any, Any, list[Any]]:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    return client, exp, runs


def check_mlflow(db: Path, sweep_dir: Path, records: dict[str, dict[str, Any]], attempts: int = 1) -> Any:
    """One parent run for the sweep; a nested run per trial with params, metrics, status and files."""
    client, exp, runs = mlflow_runs(db, "lr.rc")
    assert Path(exp.artifact_location.removeprefix("file://")).parent == db.parent / "artifacts"
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.tags["pytest_sweep.sweep_dir"] == str(sweep_dir)
    assert parent.data.tags["pytest_sweep.environment"].startswith("code: not in a git repository")
    assert parent.info.run_name == sweep_dir.name and parent.info.status == "FINISHED"
    assert parent.data.params == {"CONFIG_NUM_EPOCHS": "3"}
    passed = [r for r in records.values() if r["status"] == "passed"]
    assert parent.data.metrics["trials_passed"] == len(passed)
    assert parent.data.metrics["best_test_acc"] == max(r["test_acc"] for r in passed)
    parent_files = {f.path for f in client.list_artifacts(parent.info.run_id)}
    assert {"environment.json", "sweep_summary.json", "sweep_report.html", "plots"} <= parent_files
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    by_name: dict[str, list[Any]] = {}
    for run in children:
        by_name.setdefault(run.data.tags["pytest_sweep.config_file"], []).append(run)
    assert sorted(by_name) == sorted(records)
    for name, rec in records.items():
        runs_of = by_name[name]
        assert len(runs_of) == (attempts if rec["status"] == "failed" else 1), name
        child = runs_of[-1]
        assert child.info.run_name == rec["trial_dir"]
        assert child.data.params == {**rec["config"], "seed": "42"}
        assert child.data.tags["pytest_sweep.status"] == rec["status"]
        trained = 1 if rec["status"] == "failed" else 3
        history = client.get_metric_history(child.info.run_id, "train_loss")
        assert [(m.step, m.value) for m in history] == [(e, pytest.approx(1 / e)) for e in range(1, trained + 1)]
        if rec["status"] == "passed":
            assert child.info.status == "FINISHED"
            assert child.data.metrics["test_acc"] == rec["test_acc"] == pytest.approx(expected_acc(LR[name], 3))
            assert child.data.metrics["best_acc"] == rec["best_acc"]
            steps = [m.step for m in client.get_metric_history(child.info.run_id, "test_acc")]
            assert steps == [1, 2, 3, 3]  # per epoch, then the final value at the last step
        else:
            assert child.info.status == "FAILED"
            assert child.data.tags["pytest_sweep.error"] == rec["error"] == "diverged on purpose"
        files = {f.path for f in client.list_artifacts(child.info.run_id)}
        assert {"config.txt", "output.log", "training_metrics.json"} <= files
    return client


# -- end to end ----------------------------------------------------------------------------------------


@needs_tb
@needs_mlflow
@mlflow_reads
def test_a_serial_sweep_in_tensorboard_and_mlflow_and_its_resume(
    readers: None, sweep_pytester: SweepPytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    sp = sweep_pytester
    sp.pytester.makeconftest(CONFTEST)
    sp.range_config(RANGE_WITH_FAILURE, name="lr.rc")
    monkeypatch.setenv("LANDSCAPE_LIVE", "1")  # each epoch checks that the one before is in its event file
    args = ("--range-config=lr.rc", "--sweep-tensorboard", "--sweep-mlflow", "--sweep-progress=none")
    result = sp.run_subprocess(*args)
    result.assert_outcomes(passed=3, failed=1)
    out = sp.path / "test_matrix_results"
    sweep_dir = sp.only_sweep_dir(out)
    records = sp.records(sweep_dir)
    # every run's events sit in its trial folder, written by this (serial) process, as was the experiment
    check_tensorboard(sweep_dir, records)
    (pid,) = event_pids(sweep_dir)
    assert all(event_pids(sweep_dir / r["trial_dir"]) == {pid} for r in records.values())
    result.stdout.fnmatch_lines(["mlflow: 4 trial runs under parent run * in experiment 'lr.rc' at sqlite:///*"])
    check_mlflow(out / "mlruns" / "mlflow.db", sweep_dir, records)
    assert imported(sp.path, "main") >= {"mlflow", "tensorboard"}

    # --sweep-resume: the failed trial trains again (and fails again); the same parent run, no duplicate
    again = sp.run_subprocess(*args, f"--sweep-resume={sweep_dir}")
    again.assert_outcomes(passed=3, failed=1)
    again.stdout.fnmatch_lines(["mlflow: 1 trial run under parent run * in experiment 'lr.rc' *"])
    check_mlflow(out / "mlruns" / "mlflow.db", sweep_dir, sp.records(sweep_dir), attempts=2)
    check_tensorboard(sweep_dir, sp.records(sweep_dir))  # the retrained trial's run started afresh


@needs_tb
@needs_mlflow
@mlflow_reads
def test_n2_workers_write_their_trials_events_and_only_the_controller_writes_mlflow(
    readers: None, sweep_pytester: SweepPytester
) -> None:
    sp = sweep_pytester
    sp.pytester.makeconftest(CONFTEST)
    sp.range_config(RANGE, name="lr.rc")
    result = sp.pytester.runpytest_subprocess(
        *XDIST_PLUGIN_ARGS,
        "--range-config=lr.rc",
        "-n",
        "2",
        "--sweep-tensorboard=tb",
        "--sweep-mlflow=tracking",
        "--sweep-mlflow-experiment=lr.rc",
        timeout=300,
    )
    result.assert_outcomes(passed=3)
    sweep_dir = sp.only_sweep_dir(sp.path / "test_matrix_results")
    records = sp.records(sweep_dir)
    logroot = sp.path / "tb" / sweep_dir.name  # =DIR: DIR/<sweep folder name>/<trial folder>/
    check_tensorboard(logroot, records)
    assert not list(sweep_dir.rglob("events.out.tfevents.*"))
    controller_pid = event_pids(logroot)
    trial_pids = set().union(*(event_pids(logroot / r["trial_dir"]) for r in records.values()))
    assert trial_pids and not trial_pids & controller_pid  # written by the workers that trained them
    check_mlflow(sp.path / "tracking" / "mlflow.db", sweep_dir, records)
    # the workers wrote events (tensorboard) and never imported MLflow; the controller did
    workers = [p.stem.removeprefix("imported-") for p in sp.path.glob("imported-gw*.txt")]
    assert workers and all("mlflow" not in imported(sp.path, w) for w in workers)
    assert "mlflow" in imported(sp.path, "main")


def test_a_sweep_without_the_options_imports_neither_library(sweep_pytester: SweepPytester) -> None:
    sp = sweep_pytester
    sp.pytester.makeconftest(CONFTEST)
    sp.range_config(RANGE, name="lr.rc")
    sp.run_subprocess("--range-config=lr.rc", "--sweep-progress=none").assert_outcomes(passed=3)
    assert not imported(sp.path, "main") & {"mlflow", "tensorboard"}
    sweep_dir = sp.only_sweep_dir(sp.path / "test_matrix_results")
    assert (
        not list(sweep_dir.rglob("events.out.tfevents.*")) and not (sp.path / "test_matrix_results" / "mlruns").exists()
    )


@pytest.mark.parametrize(
    ("flag", "module", "extra"),
    [("--sweep-tensorboard", "tensorboard", "tensorboard package"), ("--sweep-mlflow", "mlflow", "MLflow")],
)
def test_a_missing_library_is_a_usage_error_naming_the_extra(
    sweep_pytester: SweepPytester, monkeypatch: pytest.MonkeyPatch, flag: str, module: str, extra: str
) -> None:
    sp = sweep_pytester
    sp.range_config(RANGE, name="lr.rc")
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: find_spec and import both fail
    result = sp.run("--range-config=lr.rc", flag)
    name = module if module == "tensorboard" else "mlflow"
    assert_usage_error(
        result,
        f"ERROR: {flag} needs {'the ' if module == 'tensorboard' else ''}{extra}, which is not installed: pip install 'pytest-sweep[{name}]'",
    )
    # without a sweep the option does nothing, so nothing is missing
    sp.pytester.makepyfile(test_plain="def test_x():\n    pass\n")
    sp.run("test_plain.py", flag).assert_outcomes(passed=1)


def test_a_tracker_folder_that_is_a_file_is_a_usage_error(sweep_pytester: SweepPytester) -> None:
    sp = sweep_pytester
    sp.range_config(RANGE, name="lr.rc")
    (sp.path / "afile").write_text("x")
    if HAVE_TB:
        assert_usage_error(
            sp.run("--range-config=lr.rc", "--sweep-tensorboard=afile"),
            "ERROR: --sweep-tensorboard=*afile: exists and is not a folder*",
        )
    if HAVE_MLFLOW:
        assert_usage_error(
            sp.run("--range-config=lr.rc", "--sweep-mlflow=afile"),
            "ERROR: --sweep-mlflow: *afile exists and is not a folder*",
        )


@needs_mlflow
def test_an_unreachable_mlflow_server_is_one_line_and_the_sweep_goes_on(
    sweep_pytester: SweepPytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    sp = sweep_pytester
    sp.pytester.makeconftest(CONFTEST)
    sp.range_config(RANGE, name="lr.rc")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    result = sp.run_subprocess("--range-config=lr.rc", "--sweep-mlflow=http://127.0.0.1:9", "--sweep-progress=none")
    result.assert_outcomes(passed=3)
    lines = [line for line in result.outlines if "MLflow (http://127.0.0.1:9)" in line]
    assert len(lines) == 1 and "cannot open the store" in lines[0] and "the sweep's files keep every result" in lines[0]
    assert "Traceback" not in result.stdout.str()
    assert len(sp.records(sp.only_sweep_dir(sp.path / "test_matrix_results"))) == 3


@pytest.mark.ray
@needs_tb
@needs_mlflow
@mlflow_reads
def test_on_ray_the_events_travel_with_the_shipped_trial_files_and_mlflow_needs_no_store_on_the_actors(
    readers: None, ray_cluster: Any, sweep_pytester: SweepPytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Actors writing node-local folders (--sweep-ray-ship-files): the events come back with the trial."""
    for key, value in ray_cluster.env.items():
        monkeypatch.setenv(key, value)
    sp = sweep_pytester
    sp.pytester.makeconftest(CONFTEST)
    sp.range_config(RANGE, name="lr.rc")
    result = sp.run_subprocess(
        "--range-config=lr.rc",
        "--sweep-backend=ray",
        "--sweep-ray-ship-files",
        "--sweep-tensorboard",
        "--sweep-mlflow",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["sweep: ray? ready on *; trial files shipped back*"])
    sweep_dir = sp.only_sweep_dir(sp.path / "test_matrix_results")
    records = sp.records(sweep_dir)
    assert {r["worker"] for r in records.values()} <= {"ray1", "ray2"}
    check_tensorboard(sweep_dir, records)
    controller = event_pids(sweep_dir)
    assert all(event_pids(sweep_dir / r["trial_dir"]) - controller for r in records.values())
    check_mlflow(sp.path / "test_matrix_results" / "mlruns" / "mlflow.db", sweep_dir, records)
    assert json.loads((sweep_dir / "environment.json").read_text())["resolved"]["ray"]["ship_files"] is True
    actors = [p.stem.removeprefix("imported-") for p in sp.path.glob("imported-ray*.txt")]
    assert actors and all("mlflow" not in imported(sp.path, a) for a in actors)  # only the controller logs
    # with =DIR the controller moves the shipped events from the trial folders to DIR
    sp.run_subprocess(
        "--range-config=lr.rc",
        "--sweep-backend=ray",
        "--sweep-ray-ship-files",
        "--sweep-tensorboard=tb",
        "--sweep-output=second",
        "-p",
        "no:cacheprovider",
    ).assert_outcomes(passed=3)
    second = sp.only_sweep_dir(sp.path / "second")
    check_tensorboard(sp.path / "tb" / second.name, sp.records(second))
    assert not list(second.rglob("events.out.tfevents.*"))


@pytest.mark.slow
@needs_tb
@needs_mlflow
def test_the_trackers_benchmark_runs_in_smoke_mode() -> None:
    bench = Path(__file__).resolve().parents[1] / "bench" / "trackers.py"
    done = subprocess.run(
        [sys.executable, str(bench), "--smoke"], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "### Trackers (--sweep-tensorboard, --sweep-mlflow)" in done.stdout
    for row in ("| plain |", "| tensorboard |", "| mlflow, new store |"):
        assert row in done.stdout, done.stdout
