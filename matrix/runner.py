"""The runner: runs one trial on the process that holds it and returns its record.

Used wherever trials train: a serial run, an xdist worker, and any other executor that hosts a
pytest worker config (the item calls :meth:`Runner.run`; the record rides on the item's
``user_properties`` to whoever aggregates).  It never writes sweep-level files.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from pytest_sweep.matrix import rangewrite, storage
from pytest_sweep.matrix.errors import clip
from pytest_sweep.matrix.records import METRIC_KEYS, clean_number
from pytest_sweep.matrix.resume import finished_trials, reusable
from pytest_sweep.matrix.sources import Sources
from pytest_sweep.matrix.timeout import TrialTimeout, timeout_in_chain, trial_timeout
from pytest_sweep.matrix.trial import CONTEXT_KEY, STOP_KEY, Trial, TrialContext, TrialFailed

#: The ``user_properties`` key under which a trial's record (JSON) travels.
RECORD_PROPERTY = "sweep_record"


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one line of at most ``limit`` characters."""
    if isinstance(exc, TrialFailed):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}".strip()
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_trial_config(trial: Trial) -> str:
    """The exact config a trial ran with: every key it set (overrides included), a range config
    that reads back as ``trial.raw`` (a string symbol's value quoted)."""
    lines = [rangewrite.comment(f"{trial.name} ({trial.source})"), rangewrite.comment(f"seed {trial.seed}")]
    for key, raw in trial.raw.items():
        lines.append(rangewrite.assignment(key, [raw], string=isinstance(trial.values.get(key), str)))
    return "\n".join(lines) + "\n"


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({exc.filename})" if exc.filename else exc.strerror
    return str(exc)


#: Metrics that must be finite numbers when a trainer returns them.
NUMERIC_METRICS = (
    "test_acc",
    "best_acc",
    "final_sparsity",
    "training_time",
    "epochs_run",
    "images_per_s",
    "peak_memory_mb",
    "test_samples",
)


def check_metrics(metrics: dict[str, Any]) -> None:
    """A trainer's non-finite or non-numeric result fails its trial ("test_acc is NaN")."""
    for key in NUMERIC_METRICS:
        value = metrics.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TrialFailed(f"{key} is {type(value).__name__} {clip(repr(value))[:40]}, not a number")
        try:
            number = float(value)
        except OverflowError:
            raise TrialFailed(f"{key} is too large for a number") from None
        if math.isnan(number):
            raise TrialFailed(f"{key} is NaN")
        if math.isinf(number):
            raise TrialFailed(f"{key} is infinite")


def drop_frames(exc: BaseException) -> None:
    """Clear the local variables of every frame in ``exc``'s tracebacks (its chain included).

    A failed trial's exception travels on (the item re-raises it, pytest keeps it as
    ``sys.last_value`` until the next test), and its traceback would keep the trial's model,
    optimizer and batches alive with it: on a GPU shared by several workers, memory the next
    trials need.  The tracebacks keep their file and line entries.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        todo += [current.__cause__, current.__context__]


@dataclass
class Outcome:
    """A run's record, and the exception that failed the trial (the item re-raises it)."""

    record: dict[str, Any]
    error: BaseException | None = None


class Runner:
    """Runs trials into ``sweep_dir``; one per process that trains.

    :param echo: where a serial run prints each log line (None: the log file only).
    :param resume: reuse the trials finished in ``sweep_dir`` (``--sweep-resume``).
    """

    def __init__(
        self,
        config: pytest.Config,
        sources: Sources,
        sweep_dir: Path,
        *,
        timeout: float | None = None,
        resume: bool = False,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.sources = sources
        self.dir = sweep_dir
        self.timeout = timeout
        self.resume = resume
        self.echo = echo
        self.worker = sources.worker
        self._done: dict[str, dict[str, Any]] | None = None
        #: lines for the next trial's log (e.g. why its earlier result was not reused)
        self._notes: list[str] = []

    def reused(self, trial: Trial, nodeid: str) -> dict[str, Any] | None:
        """``--sweep-resume``: the record of a finished trial, instead of training it again."""
        if not self.resume:
            return None
        if self._done is None:
            self._done = finished_trials(self.dir)
        doc, why = reusable(trial, self._done)
        if why is not None:
            self._notes.append(why)
        if doc is None:
            return None
        record = self.sources.base_record(trial, nodeid)
        record.update({k: doc.get(k) for k in METRIC_KEYS if doc.get(k) is not None})
        status = "stopped" if doc.get("status") == "stopped" else "passed"
        record.update(status=status, reused=True, worker=self.worker, trial_dir=doc["_folder"])
        if status == "stopped":  # a stopped trial stays stopped: the decision does not change
            record.update(rung=doc.get("rung"), stop_reason=doc.get("stop_reason"))
        return record

    def run(self, trial: Trial, nodeid: str) -> Outcome:
        """Train ``trial`` (or reuse it) and write its folder; ``KeyboardInterrupt`` propagates."""
        record = self.reused(trial, nodeid)
        if record is not None:
            return Outcome(record)
        record = self.sources.base_record(trial, nodeid)
        record["worker"] = self.worker
        history: list[dict[str, Any]] = []
        try:
            folder, log = self._open_folder(trial)
        except (OSError, rangewrite.Unwritable) as exc:
            # an unwritable sweep folder (a full disk, a folder made read-only or replaced while
            # the sweep runs, a symbolic link in its place) fails this trial with one line
            unwritable = TrialFailed(f"cannot write its folder {trial.folder}: {_why(exc)}")
            record.update(status="failed", error=one_line(unwritable))
            self.config.hook.pytest_sweep_trial_finished(trial=trial, record=record)
            return Outcome(record, unwritable)
        with log:
            trial.stash[CONTEXT_KEY] = ctx = self._context(trial, folder, log, history)
            started = time.perf_counter()
            metrics: dict[str, Any] = {}
            error: BaseException | None = None
            try:
                for note in self._notes:
                    ctx.log(note)
                self._notes.clear()
                ctx.log(f"started on {self.worker} (seed {trial.seed}) from {trial.source}")
                self.config.hook.pytest_sweep_trial_started(trial=trial)
                with trial_timeout(self.timeout):
                    metrics = self._train(trial, ctx)
                    check_metrics(metrics)
                record["status"] = "passed"
                stop = trial.stash.get(STOP_KEY, None)
                if stop is not None:
                    record.update(status="stopped", rung=stop.rung, stop_reason=stop.reason)
                    ctx.log(stop.reason)
            except KeyboardInterrupt:
                record.update(status="not_run", error="interrupted")
                self._finish(trial, folder, record, history, metrics, started, log)
                self.config.hook.pytest_sweep_trial_finished(trial=trial, record=record)
                raise
            except BaseException as exc:
                timeout = timeout_in_chain(exc)
                # a fresh one: a library may have appended its own lines to the one it caught
                error = exc if timeout is None else TrialTimeout(one_line(timeout))
                record.update(status="failed", error=one_line(error))
                log.write(traceback.format_exc())
                drop_frames(exc)
            finally:
                del trial.stash[CONTEXT_KEY]
                if STOP_KEY in trial.stash:
                    del trial.stash[STOP_KEY]
            self._finish(trial, folder, record, history, metrics, started, log)
        self.config.hook.pytest_sweep_trial_finished(trial=trial, record=record)
        return Outcome(record, error)

    def _open_folder(self, trial: Trial) -> tuple[Path, IO[str]]:
        """The trial's folder, its ``config.txt`` written and its ``output.log`` open; every path
        inside the sweep folder, with no symbolic link on the way (``--sweep-resume`` of a folder
        where a trial folder links elsewhere must not write there)."""
        folder = storage.sweep_path(self.dir, trial.folder)
        folder.mkdir(parents=True, exist_ok=True)
        storage.write_text_atomic(storage.sweep_path(self.dir, trial.folder, "config.txt"), render_trial_config(trial))
        log = open(storage.sweep_path(self.dir, trial.folder, "output.log"), "w", encoding="utf-8", buffering=1)
        return folder, log

    def _train(self, trial: Trial, ctx: TrialContext) -> dict[str, Any]:
        # its own frame: the trainer object is gone when the trial_finished clean-up runs
        trainer = self.config.hook.pytest_sweep_make_trainer(trial=trial, config=self.config)
        if trainer is None:
            raise TrialFailed("no installed plugin provides a trainer for this trial")
        return dict(trainer.run(trial, ctx) or {})

    def _context(self, trial: Trial, folder: Path, log: IO[str], history: list[dict[str, Any]]) -> TrialContext:
        echo = self.echo
        hook = self.config.hook

        def write_log(message: str) -> None:
            log.write(message.rstrip("\n") + "\n")
            if echo is not None:
                echo(f"{trial.name} {message}")

        def epoch_ended(metrics: dict[str, Any]) -> bool:
            history.append({k: clean_number(v) for k, v in metrics.items()})
            return any(bool(a) for a in hook.pytest_sweep_epoch_ended(trial=trial, metrics=metrics))

        return TrialContext(dir=folder, log=write_log, epoch_ended=epoch_ended)

    def _finish(
        self,
        trial: Trial,
        folder: Path,
        record: dict[str, Any],
        history: list[dict[str, Any]],
        metrics: dict[str, Any],
        started: float,
        log: IO[str],
    ) -> None:
        elapsed = time.perf_counter() - started
        for key in METRIC_KEYS:
            if key in metrics:
                record[key] = clean_number(metrics[key])
        if record.get("training_time") is None:
            record["training_time"] = round(elapsed, 3)
        if record.get("epochs_run") is None:
            record["epochs_run"] = len(history)
        epochs = metrics.get("history", history)
        doc = {
            "config_file": trial.name,
            "status": record["status"],
            "error": record["error"],
            "rung": record.get("rung"),
            "stop_reason": record.get("stop_reason"),
            "seed": trial.seed,
            "config": trial.raw,
            **{k: record.get(k) for k in METRIC_KEYS},
            "total_time": round(elapsed, 3),
            "epochs": [{k: clean_number(v) for k, v in e.items()} for e in epochs],
        }
        try:
            storage.write_json_atomic(storage.sweep_path(self.dir, trial.folder, "training_metrics.json"), doc)
        except OSError as exc:  # the record still travels to the controller, which keeps it in memory
            log.write(f"training_metrics.json not written: {_why(exc)}\n")
        log.write(f"status: {record['status']}" + (f" ({record['error']})" if record["error"] else "") + "\n")


RUNNER_KEY = pytest.StashKey[Runner]()
