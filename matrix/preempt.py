"""Preemption: SIGTERM ends the run gently, with every running trial checkpointed (issue 21).

A cluster that takes the machine back (Slurm's ``--signal=TERM@60``, Kubernetes' termination,
a spot instance's notice) sends SIGTERM and, some seconds later, SIGKILL.  On SIGTERM:

- a process that trains (a serial run, an xdist worker) lets a trial whose trainer checkpoints
  (it called ``ctx.load_checkpoint()``) save at its next step boundary, then end: its item is
  skipped as "preempted" and the process runs no further trial.  A trial whose trainer keeps no
  checkpoints is interrupted at once (as Ctrl-C would); resumed, it trains from scratch;
- a controller that runs no trial itself (xdist's, Ray's) asks its workers to stop, and waits for
  them; after :data:`GRACE_SECONDS`, or at a second SIGTERM, it stops the run as Ctrl-C would.
  Its workers look at trial start and (at most once a second, :data:`POLL_SECONDS`) at each step
  boundary.  An xdist worker, and a Ray actor that sees the sweep folder, looks for
  :data:`FLAG_FILE` there; a Ray actor also asks the controller through Ray (its :attr:`Preemption.probe`,
  which asks the checkpoint inbox, an actor on the controller's node: :mod:`.ray.inbox`), so that an
  actor on a node that shares no disk with the controller hears the request too;
- the run ends with the sweep summary written and exit code :data:`EXIT_PREEMPTED` (75,
  ``EX_TEMPFAIL``: "try again"), which a requeue script tests before it starts the same command
  with ``--sweep-resume``.  Ctrl-C keeps pytest's 2.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_sweep.matrix import storage

#: The exit code of a run that SIGTERM ended (sysexits.h's EX_TEMPFAIL).
EXIT_PREEMPTED = 75
#: The file in the sweep folder by which a controller asks its workers to stop.
FLAG_FILE = ".sweep-preempt"
#: Seconds a controller waits for its workers to checkpoint before it stops the run at once.
GRACE_SECONDS = 20.0
#: At most one look at the flag file (a stat on a shared filesystem) and the probe per this many seconds.
POLL_SECONDS = 1.0
#: The key of the ``workerinput`` entry that gives a worker session its :attr:`Preemption.probe` (a Ray actor's).
PROBE_KEY = "sweep_stop_probe"


class Preemption:
    """Whether this process was asked to stop: by its own SIGTERM, its controller's flag file, or its probe.

    :param flag: the controller's flag file (:data:`FLAG_FILE`), or None.
    :param probe: asks the controller (a Ray actor's way, through Ray): the reason it stops the run,
        or None.  It must return quickly; if it raises, the request is taken as not made (the
        cluster's own SIGTERM, or the grace period, still ends the trial).
    """

    def __init__(self, flag: Path | None = None, probe: Callable[[], str | None] | None = None) -> None:
        self.flag = flag
        self.probe = probe
        self.reason: str | None = None
        self._next_poll = 0.0

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def requested(self) -> str | None:
        """The reason the run stops (``SIGTERM``...), or None; looks at the flag file and asks the
        probe at most once a second."""
        if self.reason is not None or (self.flag is None and self.probe is None):
            return self.reason
        now = time.monotonic()
        if now >= self._next_poll:
            self._next_poll = now + POLL_SECONDS
            if self.flag is not None and self.flag.exists():
                self.reason = "SIGTERM"
            elif self.probe is not None:
                try:
                    self.reason = self.probe()
                except Exception:  # an unreachable controller is never an error in the trial
                    self.reason = None
        return self.reason


#: The process's :class:`Preemption` (an active sweep's every process).
PREEMPTION_KEY = pytest.StashKey[Preemption]()


def raise_flag(sweep_dir: Path) -> None:
    """Ask the workers to stop (the controller's side)."""
    try:
        storage.write_text_atomic(storage.sweep_path(sweep_dir, FLAG_FILE), "SIGTERM\n")
    except OSError:
        pass  # the workers still get SIGTERM from the cluster, or the grace period ends the run


def clear_flag(sweep_dir: Path) -> None:
    """No stale request from an earlier run may stop this one (the controller, at start and end)."""
    try:
        storage.sweep_path(sweep_dir, FLAG_FILE).unlink(missing_ok=True)
    except OSError:  # a link in its place (storage.UnsafePath) is left alone too
        pass
