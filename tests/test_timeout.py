"""``--sweep-trial-timeout`` against code that swallows or wraps the alarm (issue 13, item 3).

torch.compile caught the alarm in a broad ``except`` of its cache-key code (the trial then ran
to its end, 33.6 s against a 3 s limit) or re-raised it as its own error.  The alarm now repeats
until the block ends, a block that swallowed every alarm still times out, and the report finds
the timeout anywhere in the exception chain.  In process: ``SIGALRM`` in pytest's main thread.
"""

from __future__ import annotations

import signal
import time

import pytest

from pytest_sweep.matrix.timeout import TrialTimeout, timeout_in_chain, trial_timeout


def spin(seconds: float) -> None:
    """Pure-Python work, interruptible between bytecodes."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_an_alarm_swallowed_once_fires_again() -> None:
    swallowed = []
    started = time.monotonic()
    with pytest.raises(TrialTimeout, match=r"^timed out after 0.2 s \(--sweep-trial-timeout\)$"):
        with trial_timeout(0.2):
            try:
                spin(2.0)  # the alarm lands in here ...
            except Exception as exc:  # ... and a broad except swallows it
                swallowed.append(exc)
            spin(5.0)
    assert len(swallowed) == 1 and isinstance(swallowed[0], TrialTimeout)
    assert time.monotonic() - started < 2.0


def test_a_block_that_swallows_every_alarm_still_times_out() -> None:
    swallowed = 0
    with pytest.raises(TrialTimeout):
        with trial_timeout(0.1):
            for _ in range(8):
                try:
                    spin(0.1)
                except Exception:
                    swallowed += 1
    assert swallowed >= 2


def test_a_repeat_leaves_cleanup_code_that_handles_the_timeout_alone() -> None:
    cleaned = []
    with pytest.raises(TrialTimeout):
        with trial_timeout(0.1):
            try:
                try:
                    spin(2.0)
                except RuntimeError:
                    pass
            finally:
                spin(0.5)  # five repeats come due in here
                cleaned.append("finally")
            spin(2.0)
    assert cleaned == ["finally"]
    wrapped = []
    with pytest.raises(RuntimeError, match="InductorError"):
        with trial_timeout(0.1):
            try:
                spin(2.0)
            except TrialTimeout as exc:
                try:
                    raise RuntimeError("InductorError: TrialTimeout") from exc
                finally:
                    spin(0.5)  # handling the wrapper of a timeout: left alone too
                    wrapped.append("finally")
    assert wrapped == ["finally"]


def test_the_alarm_is_disarmed_after_the_block() -> None:
    before = signal.getsignal(signal.SIGALRM)
    with trial_timeout(0.3):
        spin(0.05)
    with pytest.raises(TrialTimeout):
        with trial_timeout(0.1):
            spin(2.0)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) == before
    spin(0.4)  # no late alarm


def test_a_timeout_is_found_anywhere_in_the_chain() -> None:
    def wrapped_by(kind: str) -> BaseException:
        try:
            try:
                raise TrialTimeout("timed out after 3 s (--sweep-trial-timeout)")
            except TrialTimeout as inner:
                if kind == "cause":
                    raise RuntimeError("InductorError: TrialTimeout ...") from inner
                raise ValueError("TorchRuntimeError: failed running call_function")  # noqa: B904
        except Exception as outer:
            try:
                raise KeyError("a third layer") from outer
            except KeyError as top:
                return top

    for kind in ("cause", "context"):
        found = timeout_in_chain(wrapped_by(kind))
        assert isinstance(found, TrialTimeout) and str(found) == "timed out after 3 s (--sweep-trial-timeout)"
    assert timeout_in_chain(RuntimeError("no timeout here")) is None
