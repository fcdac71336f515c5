"""Progress in the terminal: per-epoch lines in a serial run, a line per finished trial under xdist.

Under xdist a trial's per-epoch lines stay in its ``output.log`` (workers cannot write to the
controller's terminal), so the controller says what finished, how far the sweep is, the best
result so far and about how long the rest will take (a line from ``make sweep-parallel PARALLEL=2``)::

    sweep: config_002 passed 98.61% in 19.4 s (gw0) | 3 of 4 done | best config_001 98.89% | about 12-20 s left (from 3 finished trials)

The time left is an interval (:class:`~pytest_sweep.matrix.estimate.Clock`): the trials left times
the wall times of this run's passed and stopped trials (before the first one, the estimate printed
after collection), over the workers.  A failed trial's time never shortens it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from pytest_sweep.matrix.errors import printable
from pytest_sweep.matrix.estimate import Clock

if TYPE_CHECKING:
    from pytest_sweep.matrix.controller import Controller

#: How much of a failed trial's error the line shows.
ERROR_CHARS = 80


class TrialTicker:
    """Prints the line for each sweep item whose result arrives on the controller."""

    def __init__(self, config: pytest.Config, sweep: Controller, quiet: bool = False) -> None:
        """:param quiet: keep the time bookkeeping (and pytest's cache of timings), print nothing."""
        self.config = config
        self.sweep = sweep
        self.quiet = quiet
        self.clock = Clock(config, sweep.sources)
        self.workers = 0
        self.done: set[str] = set()  # passed, stopped or failed
        self.skipped: set[str] = set()
        self.failed = 0
        self.running: dict[str, float] = {}  # node id -> seconds so far (setup, call)
        self.best: tuple[float, str] | None = None

    def report(self, report: pytest.TestReport) -> None:
        nodeid = self.sweep.alias.get(report.nodeid, report.nodeid)  # a stage item: its trial
        if nodeid in self.done or nodeid in self.skipped or nodeid not in self.sweep.expected:
            return
        if not self.clock.started:
            self.clock.start(t for t, skip in self.sweep.expected.values() if not skip)
        self.running[nodeid] = self.running.get(nodeid, 0.0) + float(report.duration or 0.0)
        record = self.sweep.records.get(nodeid)
        if record is None or (report.when != "call" and report.passed):
            return  # a passed setup: the result comes with the call
        trial, skip = self.sweep.expected[nodeid]
        if record["status"] not in ("passed", "stopped", "failed"):
            self.skipped.add(nodeid)  # skipped by a plugin: not counted as a trial to run
            self.running.pop(nodeid, None)
            if not skip:
                self.clock.gone(trial)
            return
        if record.get("paused"):  # a stage ended: the trial waits for its promotion
            if not self.quiet:
                self._write(self._line(record))
            return
        self.done.add(nodeid)
        self.clock.finished(trial, record, self.running.pop(nodeid, 0.0))
        if not self.quiet:
            self._write(self._line(record))

    def _line(self, record: dict[str, Any]) -> str:
        name = str(record["config_file"])
        worker = record.get("worker") or "?"
        if record.get("node"):  # Ray: the node too
            worker += f" on {record['node']}"
        if record["status"] == "passed":
            acc = record.get("test_acc")
            what = f"{name} passed" + (f" {float(acc):.2f}%" if acc is not None else "")
            if acc is not None and (self.best is None or float(acc) > self.best[0]):
                self.best = (float(acc), name)
        elif record["status"] == "stopped":
            acc = record.get("test_acc")
            verb = "paused" if record.get("paused") else "stopped"
            what = f"{name} {verb} at epoch {record.get('rung')}" + (f" {float(acc):.2f}%" if acc is not None else "")
        else:
            self.failed += 1
            error = str(record.get("error") or "failed")
            if len(error) > ERROR_CHARS:
                error = error[: ERROR_CHARS - 3] + "..."
            what = f"{name} FAILED: {error}"
        time = record.get("training_time")
        where = f" in {float(time):.1f} s ({worker})" if time is not None else f" ({worker})"
        total = len(self.sweep.expected) - len(self.skipped)
        parts = [what + where, f"{len(self.done)} of {total} done" + (f", {self.failed} failed" if self.failed else "")]
        if self.best is not None:
            parts.append(f"best {self.best[1]} {self.best[0]:.2f}%")
        time_left = self.clock.left(self.workers)
        if time_left is not None:
            parts.append(time_left)
        return "sweep: " + " | ".join(parts)

    def _write(self, line: str) -> None:
        reporter = self.config.pluginmanager.getplugin("terminalreporter")
        if reporter is None:
            return
        writer = getattr(reporter, "_tw", None)  # xdist's progress dots leave the line open
        if writer is not None and int(getattr(writer, "width_of_current_line", 0)):
            reporter.write("\n")
        reporter.write_line(printable(line), red=" FAILED: " in line)


class TerminalEcho:
    """Prints a serial run's trial log lines past output capturing (the runner's ``echo``)."""

    def __init__(self, config: pytest.Config) -> None:
        self.reporter = config.pluginmanager.getplugin("terminalreporter")
        self.capman = config.pluginmanager.getplugin("capturemanager")
        self.fresh = True

    def reset(self) -> None:
        """A new item started: its first line goes below pytest's own line."""
        self.fresh = True

    def __call__(self, message: str) -> None:
        if self.reporter is None:
            return
        if self.capman is not None:
            with self.capman.global_and_fixture_disabled():
                self._write(message)
        else:
            self._write(message)

    def _write(self, message: str) -> None:
        if self.fresh:
            self.reporter.ensure_newline()
            self.fresh = False
        self.reporter.write_line(f"  {printable(message)}", cyan=True)
