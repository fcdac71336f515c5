"""The runner: runs one trial on the process that holds it and returns its record.

Used wherever trials train: a serial run, an xdist worker, and any other executor that hosts a
pytest worker config (the item calls :meth:`Runner.run`; the record rides on the item's
``user_properties`` to whoever aggregates).  It never writes sweep-level files.
"""

from __future__ import annotations

import gc
import json
import math
import numbers
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

import pytest

from pytest_sweep.matrix import rangewrite, storage
from pytest_sweep.matrix.checkpoints import FOLDER as CHECKPOINT_FOLDER
from pytest_sweep.matrix.checkpoints import PlainCodec, Policy, TrialCheckpoints, epochs, remove_checkpoints
from pytest_sweep.matrix.errors import clip, printable
from pytest_sweep.matrix.files import CONFIG_TXT, OUTPUT_LOG, TRAINING_METRICS
from pytest_sweep.matrix.preempt import Preemption
from pytest_sweep.matrix.records import METRIC_KEYS, NUMERIC_METRICS, TEXT_METRICS, clean_number
from pytest_sweep.matrix.resume import finished_trials, invalid_metrics, reusable
from pytest_sweep.matrix.sources import Sources
from pytest_sweep.matrix.stages import stage_lock
from pytest_sweep.matrix.timeout import TrialTimeout, timeout_in_chain, trial_timeout
from pytest_sweep.matrix.trial import (
    CONTEXT_KEY,
    STAGE_KEY,
    STOP_KEY,
    UNSAFE_KEY,
    Stage,
    Stop,
    Trial,
    TrialContext,
    TrialFailed,
    TrialPreempted,
)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one line of at most ``limit`` characters, safe for a terminal and a JSON file.

    Control, format (bidirectional overrides) and surrogate characters are escaped; an exception
    whose ``__str__`` itself raises is still named.
    """
    name = type(exc).__name__
    try:
        message = str(exc)
    except Exception as inner:
        return f"{name} (its message could not be shown: {type(inner).__name__})"
    text = message if isinstance(exc, (TrialFailed, TrialPreempted)) else f"{name}: {message}"
    lines = [line for line in text.strip().splitlines() if line.strip()]
    text = clip(lines[0].strip()) if lines and lines[0].strip() not in (f"{name}:", "") else name
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


def trainer_name(trainer: object) -> str:
    """What a trainer object is called in messages and records: ``package.module.Class``."""
    kind = type(trainer)
    return f"{kind.__module__}.{kind.__qualname__}"


def plain(value: Any) -> Any:
    """Numbers of other types (numpy's scalars, fractions) as ``int``/``float``, in lists and dicts too."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


def _json_problem(value: Any, where: str) -> str | None:
    """Why ``value`` cannot go into a JSON file as it is (``where``: its place, for the message)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            problem = _json_problem(item, f"{where}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"a key {clip(repr(key))[:40]} at {where or 'the top'}; the keys must be strings"
            problem = _json_problem(item, f"{where}[{key!r}]")
            if problem:
                return problem
        return None
    return f"{type(value).__name__} at {where}; give numbers, strings, lists or dicts"


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {clip(repr(value))[:40]}" if value is not None else "None"


def checked_result(result: Any, name: str) -> dict[str, Any]:
    """A trainer's ``run()`` result as the record takes it; a malformed one fails the trial in a
    sentence naming the trainer and the field (not "AttributeError" from deep in the runner)."""
    fix = "return a dict of metrics with test_acc"
    if result is None:
        raise TrialFailed(f"the trainer {name} returned None from run(); {fix}")
    if not isinstance(result, Mapping):
        raise TrialFailed(f"the trainer {name} returned a {type(result).__name__} from run(), not a dict of metrics")
    metrics = {k: plain(v) for k, v in result.items()}
    for key in metrics:
        if not isinstance(key, str):
            raise TrialFailed(f"the trainer {name} returned a key {clip(repr(key))[:40]}; the keys must be strings")
    for key in NUMERIC_METRICS:
        value = metrics.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise TrialFailed(f"the trainer {name} returned {key!r} as {_shown(value)}, not a number")
    for key in TEXT_METRICS:
        value = metrics.get(key)
        if value is not None and not isinstance(value, str):
            raise TrialFailed(f"the trainer {name} returned {key!r} as {_shown(value)}; give a string or null")
    if "history" in metrics:
        history = metrics["history"]
        need = "it must be a list of per-epoch dicts"
        if not isinstance(history, (list, tuple)):
            raise TrialFailed(f"the trainer {name} returned 'history' as {_shown(history)}; {need}")
        for i, epoch in enumerate(history):
            if not isinstance(epoch, Mapping):
                raise TrialFailed(f"the trainer {name} returned 'history' with {_shown(epoch)} at [{i}]; {need}")
        problem = _json_problem(list(history), "")
        if problem:
            raise TrialFailed(f"the trainer {name} returned 'history' with {problem}")
    if metrics.get("test_acc") is None:
        raise TrialFailed(f"the trainer {name} returned no test_acc; {fix}")
    return metrics


def json_safe(value: Any) -> Any:
    """``value`` if a JSON file can hold it (non-finite numbers become None), else None."""
    value = clean_number(value)
    return value if _json_problem(value, "") is None else None


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


def unwritable(folder: Path, exc: BaseException) -> str:
    """The error of a trial whose folder cannot hold its files (a full disk, a folder made read-only,
    replaced or linked elsewhere while the sweep runs)."""
    return f"cannot write its folder {folder.name}: {_why(exc)}"


def _write(log: IO[str], text: str) -> None:
    """A line of the runner's own in a trial's log, which a full disk must not turn into a crash."""
    try:
        log.write(text)
    except (OSError, ValueError):
        pass


@dataclass
class Outcome:
    """A run's record, and the exception that failed the trial (the item re-raises it).

    :ivar skip: the item is skipped with this reason (a preempted trial, a stage with nothing to do).
    :ivar stop_session: the process runs no further item (preemption), with this reason.
    :ivar unsafe: why the process cannot safely run another trial (an import the timeout had to
        cut short), or None.
    """

    record: dict[str, Any]
    error: BaseException | None = None
    unsafe: str | None = None
    skip: str | None = None
    stop_session: str | None = None


#: Why this process cannot safely run another trial (set once, never cleared), or None.
_unsafe: list[str] = []


def process_unsafe() -> str | None:
    """Why this process cannot safely go on (a trial's import was interrupted), or None."""
    return _unsafe[0] if _unsafe else None


#: The exit status of a serial run whose trainer ended the process with ``os._exit(0)``.
EXIT_TRAINER_ENDED = 1
#: The exit status of a worker that ends because it cannot safely run another trial.
EXIT_UNSAFE = 3


class Runner:
    """Runs trials into ``sweep_dir``; one per process that trains.

    :param echo: where a serial run prints each log line (None: the log file only).
    :param resume: reuse the trials finished in ``sweep_dir`` (``--sweep-resume``).
    :param policy: when trainers' checkpoints are written and how many are kept.
    :param preemption: whether the run was asked to stop (SIGTERM); see :mod:`.preempt`.
    :param run_id: this run's id, the same on every process of it (stage items tell their own
        run's results from a resumed sweep's).
    :param on_process_end: a serial run's controller: called with the node id and the record of a
        trial whose trainer ends the process (``os._exit``), before it ends, to write the summary.
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
        policy: Policy | None = None,
        preemption: Preemption | None = None,
        run_id: str | None = None,
        on_process_end: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.config = config
        self.on_process_end = on_process_end
        #: ``trainer_name`` of the trainer of the trial running now
        self._trainer: str | None = None
        self.sources = sources
        self.dir = sweep_dir
        self.timeout = timeout
        self.resume = resume
        self.echo = echo
        self.policy = policy or Policy()
        self.preemption = preemption or Preemption()
        self.run_id = run_id or uuid.uuid4().hex
        self.worker = sources.worker
        self._done: dict[str, dict[str, Any]] | None = None
        #: lines for the next trial's log (e.g. why its earlier result was not reused)
        self._notes: list[str] = []
        self._codecs: list[Any] | None = None
        #: the checkpoints of the trial training now (None between trials)
        self.current: TrialCheckpoints | None = None

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
        record["resumed_from_epoch"] = doc.get("resumed_from_epoch")
        return record

    def run(self, trial: Trial, nodeid: str, stage: Stage | None = None) -> Outcome:
        """Train ``trial`` (or reuse it) and write its folder; ``KeyboardInterrupt`` propagates.

        A stage item (``stage``, ASHA's promotion mode) moves the trial on by one stage: see
        :meth:`run_stage`.
        """
        if stage is not None:
            return self.run_stage(trial, nodeid, stage)
        record = self.reused(trial, nodeid)
        if record is not None:
            return Outcome(record)
        return self.train(trial, nodeid)

    def preempted_before_start(self, trial: Trial, nodeid: str, reason: str) -> Outcome:
        record = self.sources.base_record(trial, nodeid)
        message = f"preempted ({reason}) before it started; pytest --sweep-resume runs it"
        record.update(status="not_run", error=message, worker=self.worker)
        return Outcome(record, skip=message, stop_session=f"sweep preempted ({reason})")

    def train(self, trial: Trial, nodeid: str, stage: Stage | None = None) -> Outcome:
        """Train ``trial`` in its folder (continuing from its checkpoint when its trainer keeps them)."""
        reason = self.preemption.requested()
        if reason is not None:
            return self.preempted_before_start(trial, nodeid, reason)
        record = self.sources.base_record(trial, nodeid)
        record["worker"] = self.worker
        history: list[dict[str, Any]] = []
        self._trainer = None
        try:
            folder, log = self._open_folder(trial, stage)
        except (OSError, rangewrite.Unwritable) as exc:
            # an unwritable sweep folder (a full disk, a folder made read-only or replaced while
            # the sweep runs, a symbolic link in its place) fails this trial with one line
            record.update(status="failed", error=printable(unwritable(self.dir / trial.folder, exc)))
            failure: BaseException = TrialFailed(record["error"])
            try:
                self.config.hook.pytest_sweep_trial_finished(trial=trial, record=record)
            except Exception as hook_exc:  # a plugin's clean-up failed: the trial's record stands
                failure = hook_exc
            return Outcome(record, failure)
        skip = stop_session = None
        with log:
            trial.stash[CONTEXT_KEY] = ctx = self._context(trial, folder, log, history)
            checkpoints = ctx.checkpoints
            assert isinstance(checkpoints, TrialCheckpoints)
            if stage is not None:
                trial.stash[STAGE_KEY] = stage
            started = time.perf_counter()
            metrics: dict[str, Any] = {}
            error: BaseException | None = None
            unsafe: str | None = None

            def ended(code: int) -> None:  # the trainer (or a plugin) called os._exit(code) in a serial run
                who = f"the trainer {self._trainer}" if self._trainer else "a plugin (before the trainer ran)"
                record.update(
                    status="failed", error=f"{who} ended the process with os._exit({code}); the sweep stopped here"
                )
                self._settle(trial, folder, record, history, {}, started, log, checkpoints, stage)
                if self.on_process_end is not None:
                    self.on_process_end(nodeid, record)

            self.current = checkpoints
            try:
                for note in self._notes:
                    ctx.log(note)
                self._notes.clear()
                part = f", stage {stage.label}" if stage is not None else ""
                ctx.log(f"started on {self.worker} (seed {trial.seed}) from {trial.source}{part}")
                with self._exit_guard(ended):
                    self.config.hook.pytest_sweep_trial_started(trial=trial)
                    with trial_timeout(self.timeout):
                        metrics = self._train(trial, ctx)
                        check_metrics(metrics)
                record["status"] = "passed"
                stop = trial.stash.get(STOP_KEY, None)
                if stop is not None:
                    record.update(status="stopped", rung=stop.rung, stop_reason=stop.reason, paused=stop.pause)
                    ctx.log(stop.reason)
            except TrialPreempted as exc:
                self.current = None
                record.update(status="not_run", error=one_line(exc))
                ctx.log(str(exc))
                skip, stop_session = one_line(exc), f"sweep preempted ({self.preemption.requested() or 'SIGTERM'})"
                drop_frames(exc)
            except KeyboardInterrupt:
                self.current = None
                record.update(status="not_run", error="interrupted")
                self._settle(trial, folder, record, history, metrics, started, log, checkpoints, stage)
                self.config.hook.pytest_sweep_trial_finished(trial=trial, record=record)
                raise
            except BaseException as exc:
                self.current = None
                timeout = timeout_in_chain(exc)
                # a fresh one: a library may have appended its own lines to the one it caught
                error = exc if timeout is None else TrialTimeout(one_line(timeout))
                unsafe = timeout.unsafe if timeout is not None else None
                message = one_line(error)
                if unsafe is not None:
                    _unsafe.append(unsafe)
                    trial.stash[UNSAFE_KEY] = unsafe
                    message += "; the process that ran it cannot safely go on"
                record.update(status="failed", error=message)
                _write(log, traceback.format_exc())
                drop_frames(exc)
            finally:
                self.current = None
                del trial.stash[CONTEXT_KEY]
                if STOP_KEY in trial.stash:
                    del trial.stash[STOP_KEY]
                if STAGE_KEY in trial.stash:
                    del trial.stash[STAGE_KEY]
            problem = self._settle(trial, folder, record, history, metrics, started, log, checkpoints, stage)
            if problem is not None and record["status"] != "failed":  # its result stays in the record
                record.update(status="failed", error=unwritable(folder, problem))
                error = TrialFailed(record["error"])
        try:
            self.config.hook.pytest_sweep_trial_finished(trial=trial, record=record)
        except Exception as exc:  # a plugin's clean-up failed: the item fails, the trial's record stands
            error = error or exc
        return Outcome(record, error, unsafe, skip=skip, stop_session=stop_session)

    def _settle(
        self,
        trial: Trial,
        folder: Path,
        record: dict[str, Any],
        history: list[dict[str, Any]],
        metrics: dict[str, Any],
        started: float,
        log: IO[str],
        checkpoints: TrialCheckpoints,
        stage: Stage | None,
    ) -> OSError | None:
        """The trial's files after it ran: metrics, and its checkpoints gone once it completed (kept
        when its ``training_metrics.json`` could not be written: the error is returned)."""
        record["resumed_from_epoch"] = checkpoints.resumed_from
        record.setdefault("paused", False)
        problem = self._finish(trial, folder, record, history, metrics, started, log, stage)
        if problem is None and (
            record["status"] == "passed" or (record["status"] == "stopped" and not record["paused"])
        ):
            checkpoints.remove_all()
        return problem

    # -- stages (ASHA's promotion mode) ----------------------------------------------------
    def run_stage(self, trial: Trial, nodeid: str, stage: Stage) -> Outcome:
        """Move ``trial`` on by one stage: from where it is (its ``training_metrics.json``) to ``stage.until``.

        Under a lock on the trial's folder, so that under xdist a stage waits for its trial's
        previous stage when that one still runs on another worker (the only wait of the mode).

        - no result yet, or one that ended unfinished (interrupted, or failed in an earlier
          run): train it (from its checkpoint), pausing at ``stage.until``;
        - paused at ``stage.after``: promote it or not (``pytest_sweep_promote``); promoted, train
          it on; else it stops there for good and the item is skipped with the reason;
        - paused before ``stage.after`` (its earlier stage did not run here): train it on, the
          promotions on the way decided as it reaches them;
        - done already (passed, or paused at or past ``stage.until``): its record, reused;
        - stopped for good, or failed in an earlier stage of this run: skipped, with the reason.
        """
        with ExitStack() as held:
            try:
                folder = storage.sweep_path(self.dir, trial.folder)
                waited = held.enter_context(stage_lock(folder))
            except OSError:
                return self.train(trial, nodeid, stage)  # it fails there, with one line naming the folder
            if waited >= 1.0:
                self._notes.append(f"waited {waited:.1f} s for its previous stage to finish on another worker")
            doc = self._stage_doc(trial, folder)
            if doc is None:
                return self.train(trial, nodeid, stage)
            ours = doc.get("run") == self.run_id
            status = doc.get("status")
            paused_at = doc.get("rung") if doc.get("paused") else None
            if status == "passed" or (paused_at is not None and int(paused_at) >= stage.until):
                return Outcome(self._record_of(trial, nodeid, doc, reused=not ours))
            if status == "stopped" and paused_at is None:
                record = self._record_of(trial, nodeid, doc, reused=not ours)
                return Outcome(
                    record, skip=f"{trial.name} stopped at epoch {doc.get('rung')}: {doc.get('stop_reason')}"
                )
            if status == "failed" and ours:
                record = self._record_of(trial, nodeid, doc, reused=False)
                return Outcome(record, skip=f"{trial.name} failed in an earlier stage: {doc.get('error')}")
            if paused_at is not None and stage.after is not None and int(paused_at) == stage.after:
                return self._promote(trial, nodeid, stage, doc, folder)
            return self.train(trial, nodeid, stage)

    def _promote(self, trial: Trial, nodeid: str, stage: Stage, doc: dict[str, Any], folder: Path) -> Outcome:
        reason = self.preemption.requested()
        if reason is not None:
            return self.preempted_before_start(trial, nodeid, reason)
        epochs = doc.get("epochs") or [{}]
        last = dict(epochs[-1]) if isinstance(epochs[-1], dict) else {}
        stop: Stop | None = self.config.hook.pytest_sweep_promote(trial=trial, stage=stage, metrics=last)
        if stop is None:
            self._notes.append(f"promoted at epoch {stage.after}: continues to epoch {stage.until}")
            return self.train(trial, nodeid, stage)
        doc.update(status="stopped", paused=False, rung=stop.rung, stop_reason=stop.reason, run=self.run_id)
        record = self._record_of(trial, nodeid, doc, reused=False)
        error: BaseException | None = None
        try:
            storage.write_json_atomic(storage.sweep_path(folder, TRAINING_METRICS), doc)
            with open(storage.sweep_path(folder, OUTPUT_LOG), "a", encoding="utf-8") as log:
                _write(log, f"{stop.reason}\nstatus: stopped\n")
        except OSError as exc:
            record.update(status="failed", error=unwritable(folder, exc))
            error = TrialFailed(record["error"])
        if error is None and not self.policy.keep_after:
            remove_checkpoints(folder)
        try:
            self.config.hook.pytest_sweep_trial_finished(trial=trial, record=record)
        except Exception as exc:  # a plugin's clean-up failed: the item fails, the trial's record stands
            error = error or exc
        if error is not None:
            return Outcome(record, error)
        return Outcome(record, skip=f"{trial.name} {stop.reason}")

    def _stage_doc(self, trial: Trial, folder: Path) -> dict[str, Any] | None:
        """The trial's ``training_metrics.json`` when it is this trial's (same config and seed)."""
        try:
            doc = json.loads(storage.sweep_path(folder, TRAINING_METRICS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("config_file") != trial.name:
            return None
        if doc.get("config") != trial.raw or doc.get("seed") != trial.seed:
            return None
        if doc.get("status") in ("passed", "stopped") and invalid_metrics(doc) is not None:
            return None
        return doc

    def _record_of(self, trial: Trial, nodeid: str, doc: dict[str, Any], *, reused: bool) -> dict[str, Any]:
        """A trial's record from its ``training_metrics.json``."""
        record = self.sources.base_record(trial, nodeid)
        record.update({k: doc.get(k) for k in METRIC_KEYS if doc.get(k) is not None})
        status = doc.get("status") if doc.get("status") in ("passed", "stopped", "failed", "not_run") else "failed"
        record.update(
            status=status,
            error=doc.get("error"),
            rung=doc.get("rung"),
            stop_reason=doc.get("stop_reason"),
            paused=bool(doc.get("paused")),
            resumed_from_epoch=doc.get("resumed_from_epoch"),
            reused=reused,
            worker=self.worker,
        )
        return record

    def cannot_go_on(self, session: pytest.Session, outcome: Outcome) -> None:
        """After a trial that left this process unsafe: a worker ends (xdist or Ray starts another,
        and the controller takes the trial's error from its ``training_metrics.json``); a serial run
        stops after this trial, with the summary written and a non-zero exit."""
        name = outcome.record.get("config_file")
        if self.worker != "main":
            sys.stderr.write(f"sweep: worker {self.worker} ends after {name}: {outcome.unsafe}\n")
            sys.stderr.flush()
            sys.stdout.flush()
            os._exit(EXIT_UNSAFE)
        gc.freeze()  # from now on no collection walks the half-built objects
        session.shouldstop = (
            f"sweep: {name}: {outcome.unsafe}, so this process cannot safely run another trial; "
            f"the sweep stops here (resume it with --sweep-resume={self.dir})"
        )

    @contextmanager
    def _exit_guard(self, ended: Callable[[int], None]) -> Iterator[None]:
        """A serial run: a trainer calling ``os._exit`` ends the process after the summary is
        written, and never with exit status 0 (the sweep did not finish).

        Only this process's own calls are caught: a child forked by the trainer (a DataLoader
        worker) exits through the real ``os._exit``.  Not caught: ``posix._exit`` called directly,
        an ``_exit`` bound before the trial, a C library's ``exit()``.
        """
        if self.on_process_end is None:
            yield
            return
        real = os._exit
        pid = os.getpid()

        def guarded(status: int) -> NoReturn:
            if os.getpid() == pid:
                os._exit = real
                try:
                    ended(int(status))
                finally:
                    real(int(status) or EXIT_TRAINER_ENDED)
            real(status)

        os._exit = guarded
        try:
            yield
        finally:
            os._exit = real

    def _open_folder(self, trial: Trial, stage: Stage | None = None) -> tuple[Path, IO[str]]:
        """The trial's folder, its ``config.txt`` written and its ``output.log`` open; every path
        inside the sweep folder, with no symbolic link on the way (``--sweep-resume`` of a folder
        where a trial folder links elsewhere must not write there).

        A trial that goes on (a later stage, or from a checkpoint) keeps its log's earlier lines.
        """
        folder = storage.sweep_path(self.dir, trial.folder)
        folder.mkdir(parents=True, exist_ok=True)
        storage.write_text_atomic(storage.sweep_path(self.dir, trial.folder, CONFIG_TXT), render_trial_config(trial))
        goes_on = (stage is not None and stage.index > 0) or storage.sweep_path(folder, CHECKPOINT_FOLDER).is_dir()
        mode = "a" if goes_on else "w"
        log = open(storage.sweep_path(self.dir, trial.folder, OUTPUT_LOG), mode, encoding="utf-8", buffering=1)
        return folder, log

    def _train(self, trial: Trial, ctx: TrialContext) -> dict[str, Any]:
        # its own frame: the trainer object is gone when the trial_finished clean-up runs
        trainer = self.config.hook.pytest_sweep_make_trainer(trial=trial, config=self.config)
        if trainer is None:
            raise TrialFailed("no installed plugin provides a trainer for this trial")
        self._trainer = name = trainer_name(trainer)
        return checked_result(trainer.run(trial, ctx), name)

    def codecs(self) -> list[Any]:
        """The checkpoint codecs of the installed plugins, the core's plain one last."""
        if self._codecs is None:
            found = [c for answer in self.config.hook.pytest_sweep_checkpoint_codecs() for c in answer or ()]
            self._codecs = [*found, PlainCodec()]
        return self._codecs

    def _context(self, trial: Trial, folder: Path, log: IO[str], history: list[dict[str, Any]]) -> TrialContext:
        echo = self.echo
        hook = self.config.hook
        preemption = self.preemption

        def write_log(message: str) -> None:
            log.write(message.rstrip("\n") + "\n")
            if echo is not None:
                echo(f"{trial.name} {message}")

        def note(message: str) -> None:  # the log file only
            log.write(message.rstrip("\n") + "\n")

        def epoch_ended(metrics: dict[str, Any]) -> bool:
            if not isinstance(metrics, Mapping):
                raise TrialFailed(
                    f"the trainer {self._trainer or '?'} reported an epoch's metrics as {_shown(metrics)}; "
                    "ctx.epoch_ended takes a dict"
                )
            history.append({k: clean_number(plain(v)) for k, v in metrics.items()})
            stop = any(bool(a) for a in hook.pytest_sweep_epoch_ended(trial=trial, metrics=metrics))
            reason = preemption.requested()
            if reason is not None and not checkpoints.aware:  # it keeps no checkpoint: end it now
                raise TrialPreempted(
                    f"preempted ({reason}) after {epochs(len(history))}; its trainer keeps no checkpoints, "
                    "so pytest --sweep-resume trains it from scratch"
                )
            return stop

        def stopping() -> Stop | None:
            return trial.stash.get(STOP_KEY, None)

        checkpoints = TrialCheckpoints(
            folder,
            trial,
            self.policy,
            self.codecs(),
            log=write_log,
            note=note,
            history=history,
            stop=preemption.requested,
            pause=lambda: (s := stopping()) is not None and s.pause,
            final_stop=lambda: (s := stopping()) is not None and not s.pause,
            worker=self.worker,
            # a Ray actor without the sweep folder ships each checkpoint to the controller (ray/worker.py)
            shipped=getattr(self.config, "workerinput", {}).get("sweep_checkpoint_sink"),
        )
        return TrialContext(dir=folder, log=write_log, epoch_ended=epoch_ended, checkpoints=checkpoints)

    def on_sigterm(self, serial: bool) -> None:
        """SIGTERM in a process that trains (see :mod:`.preempt`); a second one interrupts at once."""
        if self.preemption.reason is not None:
            raise KeyboardInterrupt("SIGTERM")
        self.preemption.request("SIGTERM")
        current = self.current
        if current is not None and current.aware:
            return  # its trainer saves at its next step boundary, then ends the trial
        if current is not None:
            self.current = None
            raise TrialPreempted(
                "preempted (SIGTERM); its trainer keeps no checkpoints, so pytest --sweep-resume trains it from scratch"
            )
        if serial:
            raise KeyboardInterrupt("SIGTERM")
        # an idle xdist worker: its next item sees the request, is skipped and ends its session

    def _finish(
        self,
        trial: Trial,
        folder: Path,
        record: dict[str, Any],
        history: list[dict[str, Any]],
        metrics: dict[str, Any],
        started: float,
        log: IO[str],
        stage: Stage | None = None,
    ) -> OSError | None:
        """Write the trial's ``training_metrics.json`` and last log line; the error if they cannot be."""
        elapsed = time.perf_counter() - started
        for key in METRIC_KEYS:
            if key in metrics:
                record[key] = json_safe(metrics[key])
        if record.get("trainer") is None and self._trainer is not None:
            record["trainer"] = self._trainer  # no description from a plugin: the trainer that ran it
        if record.get("training_time") is None:
            record["training_time"] = round(elapsed, 3)
        if record.get("epochs_run") is None:
            record["epochs_run"] = len(history)
        epochs = metrics.get("history", history)
        if not isinstance(epochs, (list, tuple)) or not all(isinstance(e, Mapping) for e in epochs):
            epochs = history  # a malformed history failed the trial; the epochs reported stand
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
            "resumed_from_epoch": record.get("resumed_from_epoch"),
            "paused": bool(record.get("paused")),
            "stage": stage.until if stage is not None else None,
            "run": self.run_id,
            "epochs": [{str(k): json_safe(v) for k, v in e.items()} for e in epochs],
        }
        try:
            storage.write_json_atomic(storage.sweep_path(self.dir, trial.folder, TRAINING_METRICS), doc)
        except OSError as exc:
            return exc
        _write(log, f"status: {record['status']}" + (f" ({record['error']})" if record["error"] else "") + "\n")
        return None


RUNNER_KEY = pytest.StashKey[Runner]()
