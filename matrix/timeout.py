"""``--sweep-trial-timeout``: a trial that runs too long fails, and the sweep goes on."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from pytest_sweep.matrix.options import MIN_TIMEOUT
from pytest_sweep.matrix.trial import TrialFailed

#: Seconds between repeats of an alarm that the trial's code swallowed (at most).
REARM_S = 1.0
#: Seconds between looks while a running import holds the alarm back.
IMPORT_POLL_S = 0.05
#: How long a due alarm waits for a running import before it interrupts it anyway.  An import cut
#: short can leave an extension module half initialised (torch's: a later ``gc.collect()`` or
#: import crashes the process), so the process that ran it cannot safely go on.
IMPORT_GRACE_S = 120.0

#: The module whose code runs imports: its frames on the stack mean an import is in progress.
_BOOTSTRAP = "importlib._bootstrap"
_IMPORT_FRAMES = frozenset({"_find_and_load", "_find_and_load_unlocked", "_load_unlocked", "_load", "_gcd_import"})


class TrialTimeout(TrialFailed):
    """Raised inside a trial that ran past ``--sweep-trial-timeout``.

    :ivar unsafe: why the process that ran the trial cannot safely run another one (an import was
        interrupted), or None.
    """

    def __init__(self, message: str, unsafe: str | None = None) -> None:
        super().__init__(message)
        self.unsafe = unsafe


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


def importing(frame: FrameType | None) -> str | None:
    """The module the outermost import running on ``frame``'s stack loads, or None.

    Every ``import`` statement (and ``importlib.import_module``, and an extension module's own
    imports) of a module not loaded yet runs ``importlib._bootstrap._find_and_load``.
    """
    found: str | None = None
    while frame is not None:
        if frame.f_code.co_name in _IMPORT_FRAMES and frame.f_globals.get("__name__") == _BOOTSTRAP:
            name = frame.f_locals.get("name")
            found = name if isinstance(name, str) else found or "a module"
        frame = frame.f_back
    return found


class _Alarm:
    """The state of one armed timeout (the ``SIGALRM`` handler's)."""

    def __init__(self, seconds: float) -> None:
        self.message = f"timed out after {seconds:g} s (--sweep-trial-timeout)"
        self.repeat = max(min(seconds, REARM_S), MIN_TIMEOUT)
        self.armed = True
        self.due = False  # the limit has passed
        self.held_since: float | None = None  # when an import first held the alarm back

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if not self.armed:
            return
        self.due = True
        handling = sys.exc_info()[1]
        if handling is not None and timeout_in_chain(handling) is not None:
            return  # cleanup code (an except, finally or __exit__) is already handling the timeout
        module = importing(frame)
        if module is None:
            raise TrialTimeout(self.message)
        now = time.monotonic()
        if self.held_since is None:
            self.held_since = now
        if now - self.held_since < IMPORT_GRACE_S:
            signal.setitimer(signal.ITIMER_REAL, IMPORT_POLL_S, self.repeat)  # look again soon
            return
        raise TrialTimeout(
            f"{self.message}; an import of {module} was still running {IMPORT_GRACE_S:g} s later and was interrupted",
            unsafe=f"an import of {module} was interrupted",
        )


@contextmanager
def trial_timeout(seconds: float | None) -> Iterator[None]:
    """Raise :class:`TrialTimeout` in the running trial after ``seconds``.

    Uses ``SIGALRM`` (pytest and xdist workers run tests in the main thread), so it
    interrupts pure-Python work and returns as soon as a long torch kernel does.  The alarm
    repeats every ``min(seconds, REARM_S)`` (never closer than :data:`MIN_TIMEOUT`) until the
    block ends: code that swallows the first one (a broad ``except`` in a compiler) gets another,
    and a block that still ends normally after the limit raises :class:`TrialTimeout` on the way
    out.  A repeat does not interrupt cleanup code that is handling the timeout already
    (``sys.exc_info()`` holds it, perhaps wrapped): raising in there could leave a library's state
    half torn down.  Nor does the alarm interrupt an import (``import torch`` takes seconds): it
    waits for the import to end, up to :data:`IMPORT_GRACE_S`; past that it interrupts the import
    and the :class:`TrialTimeout` says, in ``unsafe``, that the process cannot safely go on.
    Without ``SIGALRM`` (Windows, a non-main thread) the limit is not enforced.
    """
    usable = (
        seconds is not None and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    )
    if not usable or seconds is None:
        yield
        return
    alarm = _Alarm(seconds)
    started = time.monotonic()
    deadline = started + seconds
    previous: Any = signal.signal(signal.SIGALRM, alarm)
    outer = (0.0, 0.0)  # an enclosing timer (a nested limit): given back, less the time spent here
    try:  # armed inside: an alarm due at once still ends in the disarming below
        outer = signal.setitimer(signal.ITIMER_REAL, max(float(seconds), 1e-6), alarm.repeat)
        yield
    finally:
        while True:  # an alarm may land before it is disarmed; the block is over either way
            try:
                alarm.armed = False
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
                if outer[0] > 0:
                    left = outer[0] - (time.monotonic() - started)
                    signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), outer[1])
                break
            except TrialTimeout:
                continue
    # the block swallowed every alarm and still ended, ended while an import held the alarm back, or
    # ran past the limit with the alarm disarmed or ignored by its own code
    if alarm.due or time.monotonic() >= deadline:
        raise TrialTimeout(alarm.message)
