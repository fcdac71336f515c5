"""Stage items: a trial split at its pause points, one pytest item per stage (ASHA's promotion mode).

Why items, and why in waves: a pytest item must end with an outcome, and ``-k``, ``--lf``, ``-x``
and junit speak about items.  A trial that pauses at a rung and may be promoted later is
therefore not one item held open (its worker would wait) nor extra work hidden behind an item
that already passed (junit and ``-x`` would never see its result): each stage of its training is
an item of its own, ``config_007[LR=0.01-to_epoch3]``, collected on every process like any item.
The items run in waves (every trial's first stage, then every second stage...), so when a stage
asks whether its trial is promoted, the rung's results are (nearly) all in: the order of the
trials no longer decides which trials survive, which is what the stopping rule suffers from.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pytest_sweep.matrix import files, storage
from pytest_sweep.matrix.trial import Stage

#: The lock file a stage item holds in its trial's folder while it runs.
LOCK_FILE = files.STAGE_LOCK


def make_stages(ends: list[int]) -> list[Stage]:
    """The stages of a trial whose stages end at ``ends``: its pause points, then its last epoch.

    ``[1, 3, 9, 27]``: four stages, to epochs 1, 3, 9 and 27.  Pause points outside
    ``1 .. last - 1`` are dropped; with none left, no stages (the trial is one item).
    """
    if not ends:
        return []
    epochs = ends[-1]
    points = sorted({p for p in ends[:-1] if 0 < p < epochs})
    if not points:
        return []
    ends = [*points, epochs]
    return [
        Stage(index=i, until=end, after=ends[i - 1] if i else None, last=i == len(ends) - 1)
        for i, end in enumerate(ends)
    ]


@contextmanager
def stage_lock(folder: Path) -> Iterator[float]:
    """Hold the trial folder's stage lock; yields the seconds spent waiting for it.

    ``fcntl.flock``: the kernel releases it when its holder dies, so a killed worker never leaves
    it held.  Without ``fcntl`` (Windows) there is no lock.
    """
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield 0.0
        return
    fd = os.open(storage.sweep_path(folder, LOCK_FILE), os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        started = time.monotonic()
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield time.monotonic() - started
    finally:
        os.close(fd)
