"""The controller: aggregates the trials' records, writes interim and final summaries.

Lives where results arrive: a serial run, or the xdist controller (which runs no trial).  It
learns the collected trials, turns each test report into the trial's record (the runner's own
record when one was shipped, else one built from the report: skipped, a setup error, a crashed
worker), and hands the sweep to the reporter hooks.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.errors import printable
from pytest_sweep.matrix.files import INTERIM_FILES, SUMMARY_JSON, TRAINING_METRICS
from pytest_sweep.matrix.hookcall import call_each
from pytest_sweep.matrix.records import SweepResult, TrialRecord, assign_ranks
from pytest_sweep.matrix.runner import one_line
from pytest_sweep.matrix.sources import Sources
from pytest_sweep.matrix.trial import Trial

#: The error of a trial that an interim summary (``pytest_sweep_progress``) lists as not run.
NOT_FINISHED_YET = "not finished when this summary was written"


def _last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("E "):
            return line[1:].strip()
    return lines[-1] if lines else "unknown error"


def _reason(exc: Exception) -> str:
    """Why a write failed, in one line; a failed temp file is named by its folder, so that every
    reporter refused by one unwritable folder gives the same reason."""
    if isinstance(exc, OSError) and exc.strerror:
        where = str(exc.filename or "")
        name = os.path.basename(where)
        if name.startswith(".") and name.endswith(".tmp"):
            where = os.path.dirname(where)
        return f"{type(exc).__name__}: {exc.strerror}" + (f": {where}" if where else "")
    return one_line(exc)


def reporters_failed(failures: list[tuple[str, Exception]]) -> str:
    """``NAME could not write its files: REASON``: the reporters whose ``pytest_sweep_finished``
    raised (:func:`~pytest_sweep.matrix.hookcall.call_each`), in one line, as a sweep and
    ``pytest-sweep report`` name them."""
    names = [name for name, _ in failures]
    who = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    reasons = list(dict.fromkeys(_reason(exc) for _, exc in failures))
    why = "; ".join(reasons[:2]) + (f" (and {len(reasons) - 2} more reasons)" if len(reasons) > 2 else "")
    return f"{who} could not write {'its' if len(names) == 1 else 'their'} files: {why}"


def _grid_order(current: list[dict[str, Any]]) -> Callable[[dict[str, Any]], tuple[int, int, str]]:
    """Sort key: the source's place among this run's sources, then the config number."""
    sources: dict[Any, int] = {}
    for rec in current:
        sources.setdefault(rec.get("source"), len(sources))

    def key(rec: dict[str, Any]) -> tuple[int, int, str]:
        name = str(rec.get("config_file", ""))
        digits = name.rpartition("_")[2]
        return sources.get(rec.get("source"), len(sources)), int(digits) if digits.isdigit() else 0, name

    return key


def _signature(path: Path) -> tuple[int, int, int] | None:
    """Which file ``path`` is now (an atomic write makes a new one): inode, mtime and size."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class Controller:
    """Every record of the sweep, in collection order; the summaries."""

    def __init__(
        self,
        config: pytest.Config,
        sources: Sources,
        sweep_dir: Path,
        summary_interval: float,
        previous: list[dict[str, Any]] | None = None,
    ) -> None:
        """:param previous: the records of the sweep being resumed (``--sweep-resume``): they are
        kept, unless this run gives a trial a new result."""
        self.config = config
        self.previous = previous or []
        self.sources = sources
        self.dir = sweep_dir
        self.records: dict[str, dict[str, Any]] = {}
        #: collected sweep items, in order: node id -> (trial, skip reason); records are built lazily
        self.expected: dict[str, tuple[Trial, str | None]] = {}
        #: node id -> the executor's message, for trials whose worker process died
        self.crashed: dict[str, str] = {}
        #: a stage item's node id -> its trial's first stage item's (where the trial's record is kept)
        self.alias: dict[str, str] = {}
        self._by_folder: dict[str, str] = {}
        #: SIGTERM asked the run to stop (set by the plugin's handlers; see :mod:`.preempt`)
        self.preempted = False
        self.interrupted = False
        self.finished = False
        self.result: SweepResult | None = None
        self.summary_interval = summary_interval
        self.started = time.time()
        # the first result is written at once: a process killed seconds later still leaves a summary
        self._next_summary = -math.inf
        self._interim_written = False
        self._interim_failed = False
        #: each of ``INTERIM_FILES`` as the last interim write left it (inode, mtime, size)
        self._interim_files: dict[str, tuple[int, int, int]] = {}

    # -- what was collected ------------------------------------------------------------
    def expect(self, nodeid: str, trial: Trial, skip_reason: str | None = None) -> None:
        """A collected sweep item; a trial's later stage items keep their record under its first."""
        key = self._by_folder.setdefault(trial.folder, nodeid)
        if key != nodeid:
            self.alias[nodeid] = key
            return
        self.expected[nodeid] = (trial, skip_reason)

    def expect_nodeid(self, nodeid: str) -> None:
        """Learn a collected sweep item from its node id alone (xdist controller)."""
        trial = self.sources.trial_for_nodeid(nodeid)
        if trial is not None:
            self.expect(nodeid, trial)

    def expected_record(self, nodeid: str) -> dict[str, Any] | None:
        found = self.expected.get(nodeid)
        if found is None:
            return None
        trial, skip_reason = found
        rec = self.sources.base_record(trial, nodeid)
        if skip_reason:
            rec.update(status="skipped", error=skip_reason)
        return rec

    # -- results -------------------------------------------------------------------------
    def crash(self, nodeid: str, message: str) -> None:
        """The process running ``nodeid`` died (xdist's ``pytest_handlecrashitem``)."""
        self.crashed[nodeid] = message

    def on_report(self, report: pytest.TestReport) -> None:
        before = self.records.get(report.nodeid)
        self.take_report(report)
        if self.records.get(report.nodeid) is not before and self.summary_due():
            self.write_interim_summary()  # only when a result arrived or changed

    def take_report(self, report: pytest.TestReport) -> None:
        """Turn one test report into (or onto) its trial's record (a stage item's: its trial's)."""
        key = self.alias.get(report.nodeid, report.nodeid)
        shipped = TrialRecord.from_wire(report.user_properties)
        if shipped is not None:
            self.records[key] = shipped
            return
        base = self.expected_record(key)
        if base is None:
            return
        known = self.records.get(key)
        later_stage = key != report.nodeid and report.when == "call"
        if report.skipped and known is None:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            self.records[key] = {**base, "status": "skipped", "error": reason.removeprefix("Skipped: ")}
        elif report.failed and (known is None or known["status"] != "failed"):
            if known is not None and known["status"] in ("passed", "stopped") and not later_stage:
                return  # a teardown error does not undo a trained result
            crash = self.crashed.get(report.nodeid)
            if crash is not None:
                words = self._last_words(str(base.get("trial_dir") or ""))
                error = f"{words} (its worker ended: {crash})" if words else f"worker crashed: {crash}"
            else:
                error = f"{report.when} failed: " + _last_error_line(str(report.longrepr or ""))
            self.records[key] = {**base, "status": "failed", "error": error}

    def _last_words(self, trial_dir: str) -> str | None:
        """The error a worker wrote into a trial's folder before it ended (a worker that could not
        safely go on), if written in this run."""
        try:
            if not trial_dir:
                return None
            path = storage.sweep_path(self.dir, trial_dir, TRAINING_METRICS)
            if path.stat().st_mtime < self.started:
                return None
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return None
        error = doc.get("error") if isinstance(doc, dict) and doc.get("status") == "failed" else None
        return error if isinstance(error, str) and error else None

    # -- summaries -------------------------------------------------------------------------
    def finish(self, interrupted: bool) -> SweepResult | None:
        """Aggregate and hand the sweep to the reporters (once)."""
        if self.finished:
            return self.result
        self.finished = True
        interrupted = interrupted or self.interrupted
        why = "sweep preempted (SIGTERM); pytest --sweep-resume runs it" if self.preempted else "sweep interrupted"
        result = self.result_so_far(why if interrupted else "not run", interrupted=interrupted)
        if result is None:
            return None
        self.result = result
        failures = self._call_reporters(result)
        if failures:
            self._drop_stale_interim_summary()
        return result

    def _call_reporters(self, result: SweepResult) -> int:
        """Every ``pytest_sweep_finished``, each on its own, through pluggy (wrappers run once around
        them all, :func:`~pytest_sweep.matrix.hookcall.call_each`): failing reporters (a full disk,
        a folder made read-only) are named in one red line, and the others still write their files."""
        kwargs: dict[str, Any] = {"config": self.config, "sweep": result}
        _, failures = call_each(self.config.pluginmanager, "pytest_sweep_finished", kwargs, isolate=True)
        if failures:
            self._line(
                f"sweep: {reporters_failed(failures)}; every trial's folder keeps its results, and "
                f"pytest --sweep-resume={self.dir} writes the summary again",
                red=True,
            )
        return len(failures)

    def process_ends(self, nodeid: str, record: dict[str, Any]) -> None:
        """A serial run's trainer ends the process (``os._exit``): the final summary first, with
        that trial's record (failed) and the rest not run."""
        self.records[nodeid] = record
        self.finish(interrupted=True)
        self._line(
            f"sweep: {record.get('config_file')}: {record.get('error')}; summary: {self.dir / SUMMARY_JSON}",
            red=True,
        )

    def _drop_stale_interim_summary(self) -> None:
        """An interim file must not outlive a failed final write: it would call trials that
        finished since "not finished".  Each of ``INTERIM_FILES`` goes only if it is known to be
        interim (:meth:`_is_interim`): a final file (this run's, or a resumed sweep's) is never
        deleted."""
        removed = [name for name in INTERIM_FILES if self._is_interim(name)]
        try:
            for name in removed:
                (self.dir / name).unlink(missing_ok=True)
        except OSError as exc:  # a folder that cannot be changed any more keeps them
            self._line(
                f"sweep: the interim summary files ({', '.join(removed)}) no longer describe the sweep and could "
                f"not be removed ({exc.strerror or exc}); the results above are the sweep's",
                red=True,
            )
            return
        if removed:
            self._line(
                f"sweep: removed the interim summary files ({', '.join(removed)}), which no longer describe the sweep",
                red=True,
            )

    def _is_interim(self, name: str) -> bool:
        """Whether ``name`` in the sweep folder is an interim file this run left: a JSON file by its
        field (``"interim": true`` in a summary record, ``"running": true`` in the analysis), any
        other by being unchanged since this run's last interim write."""
        if not self._interim_written:
            return False
        path = self.dir / name
        if name.endswith(".json"):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError, RecursionError):
                return False  # unreadable: not known to be interim, so kept
            if isinstance(data, list):
                return any(isinstance(r, dict) and r.get("interim") is True for r in data)
            return isinstance(data, dict) and data.get("running") is True
        mark = self._interim_files.get(name)
        return mark is not None and _signature(path) == mark

    def say(self, text: str, **markup: bool) -> None:
        """One line in the terminal (after pytest's own output of the moment)."""
        self._line(text, **markup)

    def _line(self, text: str, **markup: bool) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(printable(text), **markup)

    def summary_due(self) -> bool:
        return not self.finished and time.monotonic() >= self._next_summary

    def write_interim_summary(self) -> None:
        """Hand the sweep so far to ``pytest_sweep_progress`` while trials run."""
        started = time.monotonic()
        result = self.result_so_far(NOT_FINISHED_YET, running=True)
        if result is None:
            return
        try:
            self.config.hook.pytest_sweep_progress(config=self.config, sweep=result)
            self._interim_written = True
            self._interim_files = {
                name: mark for name in INTERIM_FILES if (mark := _signature(self.dir / name)) is not None
            }
        except Exception as exc:  # a full disk or a broken reporter must not stop the sweep
            if not self._interim_failed:  # once: every later interim summary would say the same
                self._line(
                    f"sweep: interim summary not written: {one_line(exc)}; "
                    "the sweep goes on and writes the final summary at the end",
                    yellow=True,
                )
            self._interim_failed = True
        now = time.monotonic()
        # an interval of 0 means after every trial, as asked; otherwise the writes may take at
        # most a tenth of the time, so a huge sweep does not spend it rewriting files
        interval = self.summary_interval
        self._next_summary = now + (max(interval, 10 * (now - started)) if interval > 0 else 0.0)

    def result_so_far(
        self, not_run_error: str, *, interrupted: bool = False, running: bool = False
    ) -> SweepResult | None:
        """Every expected trial's record, in collection order; those without a result are not run."""
        earlier = {str(r["trial_dir"]): r for r in self.previous}
        # a sampled search's items are known by node id: their folders hold the values drawn
        search = getattr(self.sources, "search", None)  # a test's stand-in may have none
        sampled = search is not None and search.sampled
        by_node = {str(r.get("nodeid")): r for r in self.previous} if sampled else {}
        rows: list[dict[str, Any]] = []
        for nodeid, (trial, _) in self.expected.items():
            rec = self.records.get(nodeid)
            if rec is None:
                rec = self.expected_record(nodeid)
                assert rec is not None
                kept = earlier.get(trial.folder) or by_node.get(nodeid)
                same = kept is not None and (kept.get("config") == trial.raw or nodeid in by_node)
                if kept is not None and kept.get("status") in ("passed", "stopped") and same:
                    rec = kept  # finished in the resumed sweep; this run did not get to it
                elif rec["status"] != "skipped":
                    rec.update(status="not_run", error=not_run_error)
            rows.append(rec)
        rows.extend(r for n, r in self.records.items() if n not in self.expected)
        if self.previous:  # a resume: every record of the resumed sweep stays
            field = "nodeid" if by_node else "trial_dir"
            fresh = {str(r.get(field)): r for r in rows}
            rows = [fresh.pop(str(r.get(field)), r) for r in self.previous] + list(fresh.values())
        # in grid order, whatever order they ran in (--sweep-order, stage waves)
        rows = sorted(rows, key=_grid_order(rows))
        if not rows:
            return None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # gone or replaced while the sweep ran: the reporters say so, the results stay in memory
        # copies that say which kind of summary holds them (never the records themselves: an
        # interim write must not mark what the final one writes)
        rows = [{**r, "interim": running} for r in rows]
        if not running:
            for rec in rows:  # a resumed sweep's interim record, carried into a final summary
                if rec["status"] == "not_run" and rec.get("error") == NOT_FINISHED_YET:
                    rec["error"] = not_run_error
        assign_ranks(rows)
        return SweepResult(
            dir=self.dir,
            records=rows,
            interrupted=interrupted,
            running=running,
            sources=[str(s.path) for s in self.sources.sources],
        )


CONTROLLER_KEY = pytest.StashKey[Controller]()
