"""``--sweep-mlflow[=TRACKING_URI]``: the sweep as one MLflow parent run, each trial a nested run.

Written by one process, the controller (the serial run, or the xdist/Ray controller), from what it
already has: each trial's record as it arrives and the per-epoch history in the trial's
``training_metrics.json``.  So ``-n`` workers and Ray actors need no MLflow store and there are
never concurrent writers.  Each nested run gets the trial's whole config as params, the per-epoch
metrics (step = epoch), the final metrics, its status (passed and stopped: FINISHED, failed:
FAILED) and the trial's files as artifacts; the parent gets the sweep's tags (folder, sources,
command line, the git commit from ``environment.json``), the fixed config as params, the counts and
best accuracy as metrics and the sweep files as artifacts at the end.  Skipped trials and trials
that did not run get no run.  ``--sweep-resume`` goes on in the same parent run and does not log a
reused trial twice.

The default store is ``mlruns/`` beside the sweep folders (``test_matrix_results/mlruns/``): an
SQLite database (``mlflow.db``, MLflow 3's default backend; its file store is refused unless
``MLFLOW_ALLOW_FILE_STORE`` is set) and the artifacts in ``mlruns/artifacts/``.  No server is
needed; ``mlflow ui --backend-store-uri sqlite:///.../mlflow.db`` shows it.  A bare folder is read
the same way; a URI with a scheme (``sqlite:///``, ``http://``, ``databricks``...) is used as it is.

MLflow is imported only when the option is on: ``pip install 'pytest-sweep[mlflow]'``.  A failing
store is one line in the terminal and the sweep goes on (its files keep every result).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix import environment, files, storage
from pytest_sweep.matrix.controller import CONTROLLER_KEY
from pytest_sweep.matrix.options import sweep_options
from pytest_sweep.matrix.records import METRIC_KEYS, STATUSES, SweepResult
from pytest_sweep.matrix.runner import one_line
from pytest_sweep.matrix.sources import SOURCES_KEY
from pytest_sweep.plugins.options import MLFLOW_EXTRA, mlflow_options

EXTRA = MLFLOW_EXTRA  # the options are defined in plugins/options.py (light, at start-up)
DEFAULT_FOLDER = "mlruns"
DB_NAME = "mlflow.db"
TAG = "pytest_sweep."
#: Records that become nested runs, and their MLflow status.
RUN_STATUS = {"passed": "FINISHED", "stopped": "FINISHED", "failed": "FAILED"}
#: Sweep files logged on the parent run at the end (those that exist).
SWEEP_FILES = (
    files.ENVIRONMENT_JSON,
    files.ENVIRONMENT_DIFF,
    files.SUMMARY_JSON,
    files.SUMMARY_CSV,
    files.ANALYSIS_TXT,
    files.ANALYSIS_JSON,
    files.IMPORTANCE_JSON,
    files.REPORT_HTML,
    files.REFINE_RANGE,
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_BAD_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")
PARAM_LIMIT = 6000


def store(config: pytest.Config) -> tuple[str, Path | None] | None:
    """``(tracking URI, artifact folder or None)``; None when the option is off."""
    given = mlflow_options(config)
    if given.uri is None:
        return None
    return resolve_uri(given.uri, sweep_options(config).output_root, given.base)


def resolve_uri(raw: str, output_root: Path, base: Path) -> tuple[str, Path | None]:
    """The tracking URI and where new experiments keep their artifacts (see the module docstring)."""
    if not raw:
        folder = output_root / DEFAULT_FOLDER
        return f"sqlite:///{folder / DB_NAME}", folder / "artifacts"
    if _SCHEME.match(raw):
        if raw.startswith("sqlite:///"):
            db = Path(raw.removeprefix("sqlite:///"))
            db = db if db.is_absolute() else base / db
            return f"sqlite:///{db}", db.parent / "artifacts"
        return raw, None
    path = (base / Path(raw).expanduser()).resolve()
    if path.suffix == ".db":
        return f"sqlite:///{path}", path.parent / "artifacts"
    return f"sqlite:///{path / DB_NAME}", path / "artifacts"


def experiment_name(config: pytest.Config) -> str:
    name = mlflow_options(config).experiment
    if name:
        return name
    sources = config.stash.get(SOURCES_KEY, None)
    names = list(dict.fromkeys(s.path.name for s in sources.sources)) if sources is not None else []
    return "+".join(names) or "pytest-sweep"


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return  # only the controller writes to MLflow
    if not sweep_options(config).active:
        return
    found = store(config)
    if found is None:
        return
    if importlib.util.find_spec("mlflow") is None:
        raise pytest.UsageError(f"--sweep-mlflow needs MLflow, which is not installed: {EXTRA}")
    uri, artifacts = found
    if uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).parent
        if folder.exists() and not folder.is_dir():
            raise pytest.UsageError(
                f"--sweep-mlflow: {folder} exists and is not a folder; give a folder or a tracking URI"
            )
    config.pluginmanager.register(MlflowTracker(config, uri, artifacts), "sweep-mlflow")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """MLflow's own deprecation warnings and INFO lines (database migrations) stay out of the run.

    Used on the controller's main thread only (``catch_warnings`` is not thread-safe).
    """
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
                warnings.simplefilter("ignore", category)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _key(name: str) -> str:
    return _BAD_KEY.sub("_", name)[:250]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def trial_metrics(record: dict[str, Any], history: list[dict[str, Any]], end_ms: int) -> list[Any]:
    """Per-epoch metrics (step = epoch), then the record's final metrics at the last step."""
    from mlflow.entities import Metric

    out = []
    last = 0
    for i, epoch in enumerate(history, 1):
        number = _number(epoch.get("epoch"))
        step = int(number) if number is not None else i
        last = max(last, step)
        for key, value in epoch.items():
            number = _number(value)
            if key != "epoch" and number is not None:
                out.append(Metric(_key(key), number, end_ms - 1, step))
    step = int(_number(record.get("epochs_run")) or last)
    for key in METRIC_KEYS:
        number = _number(record.get(key))
        if number is not None:
            out.append(Metric(key, number, end_ms, step))
    return out


def _params(config: dict[str, Any], extra: dict[str, Any] | None = None) -> list[Any]:
    from mlflow.entities import Param

    items = {**{str(k): v for k, v in config.items()}, **(extra or {})}
    return [Param(_key(k), str(v)[:PARAM_LIMIT]) for k, v in items.items()]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class MlflowTracker:
    """The controller's MLflow writer: the parent run at the start, a nested run per finished trial."""

    def __init__(self, config: pytest.Config, uri: str, artifacts: Path | None) -> None:
        self.config = config
        self.uri = uri
        self.artifacts = artifacts
        self.client: Any = None
        self.experiment_id: str | None = None
        self.experiment_name = ""
        self.parent_id: str | None = None
        self.sweep_dir: Path | None = None
        self.logged: set[str] = set()  # node ids (this run)
        self.earlier: dict[str, str] = {}  # trial folder -> status of a nested run from an earlier run
        self.count = 0
        self.failed: str | None = None
        self.seconds = 0.0
        self.summary = ""

    def _line(self, text: str, **markup: bool) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()  # progress dots may leave the line open
            reporter.write_line(text, **markup)

    def _guarded(self, what: str, fn: Any, *args: Any) -> None:
        """Run one MLflow step; the first failure turns the tracker off with one line (the sweep goes on)."""
        if self.failed is not None:
            return
        started = time.perf_counter()
        try:
            with quiet():
                fn(*args)
        except Exception as exc:
            self.failed = f"{what}: {one_line(exc)}"
            self._line(
                f"sweep: MLflow ({self.uri}): {self.failed}; nothing more is logged to MLflow, and the sweep's "
                "files keep every result",
                red=True,
            )
        finally:
            self.seconds += time.perf_counter() - started

    # -- hooks (controller only) ------------------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        controller = self.config.stash.get(CONTROLLER_KEY, None)
        if controller is None or self.config.option.collectonly:
            return
        self.sweep_dir = controller.dir
        self._guarded("cannot open the store", self._start)

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown" or self.parent_id is None:
            return
        controller = self.config.stash.get(CONTROLLER_KEY, None)
        if controller is None:
            return
        nodeid = controller.alias.get(report.nodeid, report.nodeid)  # a stage item: its trial
        record = controller.records.get(nodeid)
        if record is not None and not record.get("paused"):  # a paused trial may be promoted later
            self._trial(nodeid, record, ran=not record.get("reused"))

    @pytest.hookimpl(trylast=True)
    def pytest_sweep_finished(self, config: pytest.Config, sweep: SweepResult) -> None:
        """Trials whose last report was not a teardown (a crashed worker), and the resumed sweep's."""
        if self.parent_id is None:
            return
        controller = self.config.stash.get(CONTROLLER_KEY, None)
        reported = controller.records if controller is not None else {}
        alias = controller.alias if controller is not None else {}
        for record in sweep.records:
            nodeid = str(record.get("nodeid") or record.get("trial_dir"))
            nodeid = alias.get(nodeid, nodeid)  # a stage item's record: its trial's
            self._trial(nodeid, record, ran=nodeid in reported and not record.get("reused"))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # trylast: after the controller's sessionfinish, which wrote the sweep files
        if self.parent_id is None or self.client is None:
            return
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        self._guarded("cannot close the parent run", self._end, interrupted)
        if self.failed is None:
            self.summary = (
                f"mlflow: {self.count} trial run{'s' if self.count != 1 else ''} under parent run {self.parent_id} "
                f"in experiment {self.experiment_name!r} at {self.uri} ({self.seconds:.1f} s)"
            )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.summary:
            terminalreporter.write_line(self.summary)

    # -- the work ------------------------------------------------------------------------------------
    def _trial(self, nodeid: str, record: dict[str, Any], ran: bool) -> None:
        """Log one trial's nested run, once.

        :param ran: it trained in this run; otherwise (reused, or a record kept from the resumed
            sweep) it is logged only when no earlier run of this sweep logged it.
        """
        status = str(record.get("status"))
        if nodeid in self.logged or status not in RUN_STATUS:
            return
        self.logged.add(nodeid)
        if not ran and str(record.get("trial_dir")) in self.earlier:
            return  # logged by the run that trained it
        self._guarded(f"cannot log {record.get('config_file')}", self._log_trial, dict(record))

    def _start(self) -> None:
        import mlflow

        assert self.sweep_dir is not None
        self.client = mlflow.MlflowClient(tracking_uri=self.uri)
        self.experiment_name = experiment_name(self.config)
        self.experiment_id = self._experiment(self.experiment_name)
        env, _ = environment.load(self.sweep_dir)
        tags = {
            f"{TAG}sweep_dir": str(self.sweep_dir),
            f"{TAG}sources": ", ".join(str(s.path) for s in self.config.stash[SOURCES_KEY].sources),
            f"{TAG}command": " ".join(map(str, self.config.invocation_params.args))[:5000],
            "mlflow.source.name": "pytest-sweep",
        }
        if env is not None:
            commit = (env.get("code") or {}).get("commit")
            if commit:
                tags["mlflow.source.git.commit"] = str(commit)
            tags[f"{TAG}environment"] = environment.summary_line(env)[:5000]
        existing = self._existing_parent()
        if existing is not None:
            self.parent_id = existing
            self.client.update_run(existing, status="RUNNING")
            for run in self._children(existing):
                self.earlier[str(run.data.tags.get(f"{TAG}trial_dir"))] = str(run.data.tags.get(f"{TAG}status"))
        else:
            run = self.client.create_run(self.experiment_id, run_name=self.sweep_dir.name, tags=tags)
            self.parent_id = run.info.run_id
            fixed = shared_config(self.config)
            for chunk in _chunks(_params(fixed), 100):
                self.client.log_batch(self.parent_id, params=chunk)

    def _experiment(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        location = None
        if self.artifacts is not None:
            self.artifacts.mkdir(parents=True, exist_ok=True)
            location = (self.artifacts / re.sub(r"[^A-Za-z0-9._-]+", "_", name)).as_uri()
        try:
            return str(self.client.create_experiment(name, artifact_location=location))
        except MlflowException:  # another sweep created it just now
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return str(found.experiment_id)

    def _existing_parent(self) -> str | None:
        """``--sweep-resume``: the parent run an earlier run of this sweep folder made."""
        if "'" in str(self.sweep_dir):
            return None
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{TAG}sweep_dir` = '{self.sweep_dir}'", max_results=1
        )
        return str(runs[0].info.run_id) if runs else None

    def _children(self, parent: str) -> list[Any]:
        return list(
            self.client.search_runs([self.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
        )

    def _log_trial(self, record: dict[str, Any]) -> None:
        assert self.sweep_dir is not None and self.parent_id is not None
        end_ms = int(time.time() * 1000)
        seconds = _number(record.get("training_time")) or 0.0
        folder = _inside(self.sweep_dir, str(record.get("trial_dir") or ""))
        history = _history(folder) if folder is not None else []
        tags = {
            "mlflow.parentRunId": self.parent_id,
            f"{TAG}status": str(record.get("status")),
            f"{TAG}config_file": str(record.get("config_file")),
            f"{TAG}trial_dir": str(record.get("trial_dir")),
            f"{TAG}nodeid": str(record.get("nodeid")),
        }
        kept = ("worker", "node", "trainer", "device", "error", "stop_reason", "reused", "resumed_from_epoch", "source")
        for key in kept:
            if record.get(key) not in (None, "", False):
                tags[f"{TAG}{key}"] = str(record[key])[:5000]
        run = self.client.create_run(
            self.experiment_id,
            run_name=str(record.get("trial_dir") or record.get("config_file")),
            start_time=end_ms - int(seconds * 1000),
            tags=tags,
        )
        run_id = run.info.run_id
        params = list(_chunks(_params(record.get("config") or {}, {"seed": record.get("seed")}), 100))
        metrics = list(_chunks(trial_metrics(record, history, end_ms), 1000))
        for i in range(
            max(len(params), len(metrics))
        ):  # one call per batch (MLflow's limits: 100 params, 1000 metrics)
            self.client.log_batch(
                run_id, params=params[i] if i < len(params) else [], metrics=metrics[i] if i < len(metrics) else []
            )
        if folder is not None and folder.is_dir():
            self.client.log_artifacts(run_id, str(folder))
        self.client.set_terminated(run_id, status=RUN_STATUS[str(record["status"])], end_time=end_ms)
        self.count += 1

    def _end(self, interrupted: bool) -> None:
        from mlflow.entities import Metric

        assert self.sweep_dir is not None and self.parent_id is not None
        controller = self.config.stash.get(CONTROLLER_KEY, None)
        result = controller.result if controller is not None else None
        records = result.records if result is not None else []
        now = int(time.time() * 1000)
        metrics = [
            Metric(f"trials_{status}", float(sum(1 for r in records if r.get("status") == status)), now, 0)
            for status in STATUSES
        ]
        best = [
            float(r["test_acc"])
            for r in records
            if r.get("status") == "passed" and _number(r.get("test_acc")) is not None
        ]
        if best:
            metrics.append(Metric("best_test_acc", max(best), now, 0))
        self.client.log_batch(self.parent_id, metrics=metrics)
        for name in SWEEP_FILES:
            path = _inside(self.sweep_dir, name)
            if path is not None and path.is_file():
                self.client.log_artifact(self.parent_id, str(path))
        plots = _inside(self.sweep_dir, files.PLOTS_DIR)
        if plots is not None and plots.is_dir() and any(plots.iterdir()):
            self.client.log_artifacts(self.parent_id, str(plots), files.PLOTS_DIR)
        self.client.set_terminated(self.parent_id, status="KILLED" if interrupted else "FINISHED")


def _inside(sweep_dir: Path, name: str) -> Path | None:
    """``sweep_dir/name``, or None where ``name`` is empty, not one plain name (a record's
    ``trial_dir`` of ``../..``) or a symbolic link: nothing outside the sweep folder is uploaded."""
    if not name:
        return None
    try:
        return storage.sweep_path(sweep_dir, name)
    except storage.UnsafePath:
        return None


def _history(folder: Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads(storage.sweep_path(folder, files.TRAINING_METRICS).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return []
    epochs = doc.get("epochs") if isinstance(doc, dict) else None
    return [e for e in epochs if isinstance(e, dict)] if isinstance(epochs, list) else []


def shared_config(config: pytest.Config) -> dict[str, str]:
    """The config every trial of the sweep shares (the parent run's params)."""
    sources = config.stash.get(SOURCES_KEY, None)
    shared: dict[str, str] | None = None
    if sources is None:
        return {}
    for source in sources.sources:
        if not source.combinations:
            continue
        combo = source.combinations[0]
        fixed = {k: v for k, v in combo.values.items() if k not in combo.swept}
        fixed.update(sources.overrides)
        if len(source.combinations) > 1 and source.kind == "dir":  # a generated folder: the keys equal in every file
            fixed = {k: v for k, v in fixed.items() if all(c.values.get(k) == v for c in source.combinations)}
        shared = fixed if shared is None else {k: v for k, v in shared.items() if fixed.get(k) == v}
    return dict(sorted((shared or {}).items()))
