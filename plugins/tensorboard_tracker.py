"""``--sweep-tensorboard[=DIR]``: every trial live in TensorBoard, the sweep in its HParams dashboard.

- **Each trial is a run** whose event file the process that trains it writes while it trains (the
  serial run, an xdist worker, a Ray actor): one scalar per per-epoch metric (``test_acc``,
  ``train_loss``, ``lr``... at step = epoch), flushed after every epoch, then the final metrics
  (``final/test_acc``, ``final/best_acc``, ``final/sparsity``, ``final/training_time``) and the
  HParams session (the trial's swept values at its start; its status at its end).
- **The sweep is an HParams experiment**: the controller writes the experiment (each swept
  parameter with the values of the grid, the final metrics) into the sweep's log folder.
- **Where**: by default the sweep folder is the log folder and each trial's events sit in its own
  trial folder (``tensorboard --logdir test_matrix_results`` shows every sweep), so they go
  wherever the trial's files go: shipped back from a Ray node that cannot see the sweep folder,
  kept by ``--sweep-resume``.  With ``=DIR`` the log folder is ``DIR/<sweep folder name>/`` and
  each trial writes into ``DIR/<sweep folder name>/<trial folder>/``; an actor whose files are
  shipped writes into its trial folder instead, and the controller moves the events to DIR.

Written with the ``tensorboard`` package's own event writer and protocol buffers (no TensorFlow,
no torch), imported only when the option is on: ``pip install 'pytest-sweep[tensorboard]'``.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.checkpoints import FOLDER as CHECKPOINT_FOLDER
from pytest_sweep.matrix.controller import CONTROLLER_KEY
from pytest_sweep.matrix.options import sweep_options
from pytest_sweep.matrix.runner import RUNNER_KEY, one_line
from pytest_sweep.matrix.sources import SOURCES_KEY
from pytest_sweep.matrix.trial import STAGE_KEY, Trial, short_key
from pytest_sweep.plugins.options import TENSORBOARD_EXTRA, tensorboard_setting

if TYPE_CHECKING:
    from pytest_sweep.matrix.sources import Sources

EXTRA = TENSORBOARD_EXTRA  # the options are defined in plugins/options.py (light, at start-up)
EVENTS_GLOB = "events.out.tfevents.*"
SEED_KEY = "CONFIG_SEED"
#: The final metrics: record key -> (tag, what the HParams dashboard calls it).
FINAL_METRICS = {
    "test_acc": ("final/test_acc", "test accuracy (%)"),
    "best_acc": ("final/best_acc", "best test accuracy (%)"),
    "final_sparsity": ("final/sparsity", "final sparsity (0..1)"),
    "training_time": ("final/training_time", "training time (s)"),
}


def setting(config: pytest.Config) -> Path | bool | None:
    """False: off; None: on, into the sweep folder; a path: on, into that folder (resolved once)."""
    return tensorboard_setting(config)


def pytest_configure(config: pytest.Config) -> None:
    where = setting(config)
    if where is False or not sweep_options(config).active:
        return
    if importlib.util.find_spec("tensorboard") is None:
        raise pytest.UsageError(f"--sweep-tensorboard needs the tensorboard package, which is not installed: {EXTRA}")
    if isinstance(where, Path) and where.exists() and not where.is_dir():
        raise pytest.UsageError(f"--sweep-tensorboard={where}: exists and is not a folder; choose another folder")
    assert where is None or isinstance(where, Path)
    config.pluginmanager.register(TensorBoardTracker(config, where), "sweep-tensorboard")


# -- the protocol buffers ---------------------------------------------------------------------------


def _scalar(tag: str, value: float) -> Any:
    from tensorboard.compat.proto import summary_pb2

    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])


def _hparams_summary(tag: str, **data: Any) -> Any:
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    content = plugin_data_pb2.HParamsPluginData(version=metadata.PLUGIN_DATA_VERSION, **data)
    meta = metadata.create_summary_metadata(content)
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, metadata=meta)])


def _set_value(target: Any, value: Any) -> bool:
    """A ``google.protobuf.Value`` from a typed config value; False when it has no HParams type."""
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, (int, float)) and math.isfinite(float(value)):
        target.number_value = float(value)
    elif isinstance(value, str):
        target.string_value = value
    else:
        return False
    return True


def experiment_summary(domains: dict[str, list[Any]]) -> Any:
    """The HParams experiment: each swept parameter with the grid's values, the final metrics."""
    from google.protobuf import struct_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata

    infos = []
    for name, values in domains.items():
        kinds = {bool if isinstance(v, bool) else float if isinstance(v, (int, float)) else str for v in values}
        if kinds == {float}:
            kind, vals = "DATA_TYPE_FLOAT64", [struct_pb2.Value(number_value=float(v)) for v in values]
        elif kinds == {bool}:
            kind, vals = "DATA_TYPE_BOOL", [struct_pb2.Value(bool_value=bool(v)) for v in values]
        else:
            kind, vals = "DATA_TYPE_STRING", [struct_pb2.Value(string_value=str(v)) for v in values]
        infos.append(
            api_pb2.HParamInfo(
                name=name, type=api_pb2.DataType.Value(kind), domain_discrete=struct_pb2.ListValue(values=vals)
            )
        )
    metrics = [
        api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag), display_name=shown)
        for tag, shown in FINAL_METRICS.values()
    ]
    experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=metrics, time_created_secs=time.time())
    return _hparams_summary(metadata.EXPERIMENT_TAG, experiment=experiment)


def session_start_summary(hparams: dict[str, Any], group: str) -> Any:
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    info = plugin_data_pb2.SessionStartInfo(group_name=group, start_time_secs=time.time())
    for name, value in hparams.items():
        if not _set_value(info.hparams[name], value):
            del info.hparams[name]
    return _hparams_summary(metadata.SESSION_START_INFO_TAG, session_start_info=info)


def session_end_summary(status: str) -> Any:
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    code = {"passed": "STATUS_SUCCESS", "stopped": "STATUS_SUCCESS", "failed": "STATUS_FAILURE"}.get(
        status, "STATUS_UNKNOWN"
    )
    info = plugin_data_pb2.SessionEndInfo(status=api_pb2.Status.Value(code), end_time_secs=time.time())
    return _hparams_summary(metadata.SESSION_END_INFO_TAG, session_end_info=info)


class Events:
    """One run's event file (tensorboard's ``EventFileWriter``), flushed after every write."""

    def __init__(self, logdir: Path) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        logdir.mkdir(parents=True, exist_ok=True)
        self.writer = EventFileWriter(str(logdir))

    def add(self, summary: Any, step: int = 0) -> None:
        from tensorboard.compat.proto import event_pb2

        self.writer.add_event(event_pb2.Event(summary=summary, wall_time=time.time(), step=step))

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or key == "epoch":
            continue
        if math.isfinite(float(value)):
            out[key] = float(value)
    return out


def _clear_events(folder: Path) -> None:
    """An earlier attempt's events (a resumed trial trains again): its run starts afresh."""
    for old in folder.glob(EVENTS_GLOB):
        old.unlink(missing_ok=True)


_WRITER = pytest.StashKey[Events]()
_STEP = pytest.StashKey[int]()
#: An earlier attempt's event files, kept while this attempt may continue it (a checkpoint, a stage).
_EARLIER = pytest.StashKey[list[Path]]()


class TensorBoardTracker:
    """Registered when ``--sweep-tensorboard`` is on: the runner's side and the controller's."""

    def __init__(self, config: pytest.Config, base: Path | None) -> None:
        self.config = config
        self.base = base

    def logroot(self, sweep_dir: Path) -> Path:
        """The sweep's TensorBoard log folder: the sweep folder, or ``DIR/<sweep folder name>``."""
        return sweep_dir if self.base is None else self.base / sweep_dir.name

    def _warn(self, text: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and not hasattr(self.config, "workerinput"):
            reporter.write_line(f"sweep: TensorBoard: {text}", yellow=True)

    # -- the controller: the HParams experiment ---------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        controller = self.config.stash.get(CONTROLLER_KEY, None)
        if controller is None or self.config.option.collectonly:
            return
        root = self.logroot(controller.dir)
        try:
            if root.is_dir():
                _clear_events(root)
            events = Events(root)
            events.add(experiment_summary(domains(self.config.stash[SOURCES_KEY])))
            events.close()
        except Exception as exc:
            self._warn(f"the HParams experiment was not written: {one_line(exc)}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Events shipped back inside a trial folder (a Ray node without the sweep folder) go to DIR."""
        if self.base is None or report.when != "teardown":
            return
        controller = self.config.stash.get(CONTROLLER_KEY, None)
        expected = controller.expected.get(report.nodeid) if controller is not None else None
        if controller is None or expected is None:
            return
        try:
            trial_dir = storage.sweep_path(controller.dir, expected[0].folder)
            shipped = sorted(trial_dir.glob(EVENTS_GLOB)) if trial_dir.is_dir() else []
            if shipped:
                target = storage.sweep_path(self.logroot(controller.dir), expected[0].folder)
                target.mkdir(parents=True, exist_ok=True)
                for path in shipped:
                    shutil.move(str(path), storage.sweep_path(target, path.name))
        except OSError as exc:  # a linked trial folder, a full disk: the trial's result stands
            self._warn(f"the events of {expected[0].folder} were not moved: {one_line(exc)}")

    # -- the process that trains: one run per trial ------------------------------------------------
    def _trial_logdir(self, trial: Trial) -> Path | None:
        runner = self.config.stash.get(RUNNER_KEY, None)
        if runner is None:
            return None
        if self.base is not None and not _shipped(self.config, runner.dir):
            return storage.sweep_path(self.logroot(runner.dir), trial.folder)
        return storage.sweep_path(runner.dir, trial.folder)  # never through a linked trial folder

    def pytest_sweep_trial_started(self, trial: Trial) -> None:
        try:
            logdir = self._trial_logdir(trial)
        except storage.UnsafePath as exc:
            trial.log(f"TensorBoard: not logging this trial: {one_line(exc)}")
            return
        if logdir is None:
            return
        runner = self.config.stash[RUNNER_KEY]
        stage = trial.stash.get(STAGE_KEY, None)
        # a trial that may go on (a later stage, a checkpoint in its folder) keeps its earlier
        # events until its first epoch shows whether it continued (see pytest_sweep_epoch_ended)
        goes_on = (stage is not None and stage.index > 0) or (runner.dir / trial.folder / CHECKPOINT_FOLDER).is_dir()
        try:
            earlier = sorted(logdir.glob(EVENTS_GLOB)) if logdir.is_dir() else []
            if not goes_on:
                _clear_events(logdir)
                earlier = []
            events = Events(logdir)
            # replicates (a swept seed) share a session group: the swept values without the seed
            others = [k for k in trial.swept if k != SEED_KEY]
            group = ", ".join(f"{short_key(k)}={trial.swept[k]}" for k in others) if SEED_KEY in trial.swept else ""
            events.add(session_start_summary({short_key(k): trial.values.get(k) for k in trial.swept}, group))
            events.flush()
        except Exception as exc:  # a log that cannot be written must not fail the trial
            trial.log(f"TensorBoard: not logging this trial: {one_line(exc)}")
            return
        trial.stash[_WRITER] = events
        trial.stash[_STEP] = 0
        trial.stash[_EARLIER] = earlier

    def pytest_sweep_epoch_ended(self, trial: Trial, metrics: dict[str, Any]) -> None:
        events = trial.stash.get(_WRITER, None)
        if events is None:
            return
        step = metrics.get("epoch")
        step = int(step) if isinstance(step, (int, float)) and not isinstance(step, bool) else trial.stash[_STEP] + 1
        trial.stash[_STEP] = step
        earlier = trial.stash.get(_EARLIER, [])
        if earlier:  # this attempt's first epoch: an earlier attempt's events stay only if it continued
            trial.stash[_EARLIER] = []
            if step <= 1:  # it started over (no usable checkpoint): its run starts afresh
                for old in earlier:
                    old.unlink(missing_ok=True)
        try:
            for key, value in _numbers(metrics).items():
                events.add(_scalar(key, value), step)
            events.flush()  # live: TensorBoard shows the epoch now
        except Exception as exc:
            trial.log(f"TensorBoard: epoch {step} not logged: {one_line(exc)}")

    def pytest_sweep_trial_finished(self, trial: Trial, record: dict[str, Any]) -> None:
        events = trial.stash.get(_WRITER, None)
        if events is None:
            return
        del trial.stash[_WRITER]
        step = trial.stash.get(_STEP, 0)
        try:
            for key, (tag, _) in FINAL_METRICS.items():
                value = record.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    events.add(_scalar(tag, float(value)), step)
            events.add(session_end_summary(str(record.get("status"))), step)
        except Exception as exc:
            trial.log(f"TensorBoard: the final metrics were not logged: {one_line(exc)}")
        finally:
            events.close()


def _shipped(config: pytest.Config, sweep_dir: Path) -> bool:
    """Whether this process is a Ray actor writing into a node-local folder that is shipped back."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is None or not str(workerinput.get("workerid", "")).startswith("ray"):
        return False
    from pytest_sweep.matrix.ray.worker import TOKEN_FILE

    return not (sweep_dir / TOKEN_FILE).exists()


def domains(sources: Sources) -> dict[str, list[Any]]:
    """Each swept parameter's values over the grid, typed, in order of appearance (short names)."""
    found: dict[str, dict[Any, None]] = {}
    for source in sources.sources:
        for combo in source.combinations:
            for key, raw in combo.swept.items():
                value = source.typed.get((key, raw), raw)
                found.setdefault(short_key(key), {})[value if value is not None else raw] = None
    return {k: list(v) for k, v in found.items()}
