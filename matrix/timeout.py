"""``--sweep-trial-timeout``: a trial that runs too long fails, and the sweep goes on."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pytest_sweep.matrix.trial import TrialFailed

#: Seconds between repeats of an alarm that the trial's code swallowed (at most).
REARM_S = 1.0


class TrialTimeout(TrialFailed):
    """Raised inside a trial that ran past ``--sweep-trial-timeout``."""


def timeout_in_chain(exc: BaseException) -> TrialTimeout | None:
    """The :class:`TrialTimeout` that ``exc`` is, or wraps (``__cause__``/``__context__``).

    Libraries with a broad ``except`` re-raise the alarm as their own error (torch.compile: as
    ``InductorError`` or ``TorchRuntimeError``); the trial still timed out.
    """
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, TrialTimeout):
            return current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
    return None


@contextmanager
def trial_timeout(seconds: float | None) -> Iterator[None]:
    """Raise :class:`TrialTimeout` in the running trial after ``seconds``.

    Uses ``SIGALRM`` (pytest and xdist workers run tests in the main thread), so it
    interrupts pure-Python work and returns as soon as a long torch kernel does.  The alarm
    repeats every ``min(seconds, REARM_S)`` until the block ends: code that swallows the first
    one (a broad ``except`` in a compiler) gets another, and a block that still ends normally
    after an alarm raises :class:`TrialTimeout` on the way out.  A repeat does not interrupt
    cleanup code that is handling the timeout already (``sys.exc_info()`` holds it, perhaps
    wrapped): raising in there could leave a library's state half torn down.  Without ``SIGALRM`` (Windows,
    a non-main thread) the limit is not enforced.
    """
    usable = (
        seconds is not None and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    )
    if not usable or seconds is None:
        yield
        return
    message = f"timed out after {seconds:g} s (--sweep-trial-timeout)"
    state = {"armed": True, "fired": False}

    def on_alarm(signum: int, frame: Any) -> None:
        if not state["armed"]:
            return
        state["fired"] = True
        handling = sys.exc_info()[1]
        if handling is not None and timeout_in_chain(handling) is not None:
            return  # cleanup code (an except, finally or __exit__) is already handling the timeout
        raise TrialTimeout(message)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds), min(float(seconds), REARM_S))
    try:
        yield
    finally:
        while True:  # an alarm may land before it is disarmed; the block is over either way
            try:
                state["armed"] = False
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
                break
            except TrialTimeout:
                continue
    if state["fired"]:  # the block swallowed every alarm and still ended
        raise TrialTimeout(message)
