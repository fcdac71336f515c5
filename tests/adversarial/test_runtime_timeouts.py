"""``--sweep-trial-timeout`` against trial code that fights the alarm, in process (``SIGALRM`` in the main thread).

Each hostile body is a test id; what must hold for all: the block ends with ``TrialTimeout`` soon
after the limit (never hangs, never kills the process), and afterwards the alarm is off and the
previous ``SIGALRM`` handler is back.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_sweep.matrix import timeout as timeout_module
from pytest_sweep.matrix.timeout import TrialTimeout, importing, trial_timeout

LIMIT = 0.2


def spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def disarms() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)
    spin(0.5)


def ignores() -> None:
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    spin(0.5)


def own_handler() -> None:
    signal.signal(signal.SIGALRM, lambda s, f: None)
    spin(0.5)


def swallows_base_exceptions() -> None:
    end = time.monotonic() + 0.8
    while time.monotonic() < end:
        try:
            spin(0.05)
        except BaseException:
            pass


def sleeps() -> None:
    time.sleep(5)  # interrupted by the handler's exception (PEP 475 retries only when it returns)


def sleeps_in_finally() -> None:
    try:
        spin(5)
    finally:
        time.sleep(0.4)  # cleanup of the timeout: the repeats leave it alone


def nested() -> None:
    with trial_timeout(10):  # a limit of its own inside the trial's: the trial's alarm comes back after it
        spin(0.3)
    spin(5)


def rearms_longer() -> None:
    signal.setitimer(signal.ITIMER_REAL, 100)
    spin(0.5)


def raises_its_own_error_from_the_timeout() -> None:
    try:
        spin(5)
    except TrialTimeout as exc:
        raise RuntimeError("a library's own error") from exc


def catches_and_returns() -> None:
    try:
        spin(5)
    except Exception:
        return


HOSTILE: dict[str, Callable[[], None]] = {
    "disarms": disarms,
    "ignores": ignores,
    "own_handler": own_handler,
    "swallows_base_exceptions": swallows_base_exceptions,
    "sleeps": sleeps,
    "sleeps_in_finally": sleeps_in_finally,
    "nested": nested,
    "rearms_longer": rearms_longer,
    "raises_its_own_error_from_the_timeout": raises_its_own_error_from_the_timeout,
    "catches_and_returns": catches_and_returns,
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_trial_code_still_times_out(name: str) -> None:
    before = signal.getsignal(signal.SIGALRM)
    started = time.monotonic()
    with pytest.raises((TrialTimeout, RuntimeError)):
        with trial_timeout(LIMIT):
            HOSTILE[name]()
    assert time.monotonic() - started < 3.0
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) == before


def test_a_block_that_ends_in_time_is_left_alone() -> None:
    with trial_timeout(2):
        spin(0.05)


# -- imports ------------------------------------------------------------------------------------------
def _module(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(body, encoding="utf-8")


@pytest.mark.parametrize(
    ("body", "finished"),
    [
        ("import time\ntime.sleep(0.6)\nDONE = True\n", True),  # sleeps: the handler returns, the sleep goes on
        ("import time\n_e = time.monotonic() + 0.6\nwhile time.monotonic() < _e:\n    pass\nDONE = True\n", True),
        ("import importlib\nimportlib.import_module('{inner}')\nDONE = True\n", True),  # nested imports
        ("try:\n    import time\n    time.sleep(0.6)\nexcept BaseException:\n    raise\nDONE = True\n", True),
    ],
    ids=["sleeps", "spins", "nested", "guarded"],
)
def test_an_import_finishes_before_the_timeout_fails_the_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, finished: bool
) -> None:
    name = f"adv_timeout_mod_{abs(hash(body)) % 10**8}"
    inner = f"{name}_inner"
    _module(tmp_path, inner, "import time\ntime.sleep(0.6)\n")
    _module(tmp_path, name, body.replace("{inner}", inner))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(TrialTimeout) as info:
            with trial_timeout(0.1):
                __import__(name)
                spin(5)
        assert info.value.unsafe is None
        assert getattr(sys.modules[name], "DONE", False) is finished
    finally:
        sys.modules.pop(name, None)
        sys.modules.pop(inner, None)


def test_an_import_past_its_grace_is_interrupted_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timeout_module, "IMPORT_GRACE_S", 0.3)
    _module(tmp_path, "adv_endless_import", "import time\nwhile True:\n    time.sleep(0.01)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    started = time.monotonic()
    with pytest.raises(TrialTimeout) as info:
        with trial_timeout(0.1):
            import adv_endless_import  # noqa: F401
    assert time.monotonic() - started < 3.0
    assert info.value.unsafe == "an import of adv_endless_import was interrupted"
    assert "adv_endless_import" not in sys.modules


def test_importing_names_the_outermost_module() -> None:
    assert importing(sys._getframe()) is None
