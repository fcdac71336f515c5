"""``--sweep-trial-timeout``: a trial that runs too long fails, and the sweep goes on."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pytest_sweep.matrix.trial import TrialFailed


class TrialTimeout(TrialFailed):
    """Raised inside a trial that ran past ``--sweep-trial-timeout``."""


@contextmanager
def trial_timeout(seconds: float | None) -> Iterator[None]:
    """Raise :class:`TrialTimeout` in the running trial after ``seconds``.

    Uses ``SIGALRM`` (pytest and xdist workers run tests in the main thread), so it
    interrupts pure-Python work and returns as soon as a long torch kernel does.
    Without ``SIGALRM`` (Windows, a non-main thread) the limit is not enforced.
    """
    usable = (
        seconds is not None and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise TrialTimeout(f"timed out after {seconds:g} s (--sweep-trial-timeout)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))  # type: ignore[arg-type]
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
