"""How a sweep process ends: torch's objects are frozen for a fast exit, in-process runs leave gc alone."""

from __future__ import annotations

import gc

from _pytest import unraisableexception

from sweep_helpers import SweepPytester

#: Registered at conftest import, so it runs after the plugin's own atexit handler (atexit is LIFO).
EXIT_PROBE = """
import atexit, gc, pathlib, sys

HERE = pathlib.Path(__file__).parent

def _probe():
    state = f"{gc.get_freeze_count()} {'torch' in sys.modules}"
    (HERE / "exit-state.txt").write_text(state)

atexit.register(_probe)

# pytest's own end-of-run collections (unraisableexception: at unconfigure and in its cleanup)
_collect = gc.collect

def _logged_collect(*args, **kwargs):
    with open(HERE / "collects.txt", "a") as fh:
        fh.write(f"{gc.get_freeze_count()}\\n")
    return _collect(*args, **kwargs)

def pytest_sessionfinish(session):
    gc.collect = _logged_collect
"""


def test_a_sweep_process_freezes_torchs_objects_before_it_exits(sweep_pytester: SweepPytester) -> None:
    sweep_pytester.pytester.makeconftest(EXIT_PROBE)
    path = sweep_pytester.range_config(sweep_pytester.digits_config())
    result = sweep_pytester.run_subprocess(f"--range-config={path}")
    result.assert_outcomes(passed=1)
    frozen, torch_loaded = (sweep_pytester.path / "exit-state.txt").read_text().split()
    assert torch_loaded == "True"
    # the freezes of the run were undone by its last cleanup, so these are the objects frozen at
    # exit: torch, torch._dynamo and the trial's leftovers (about 300,000 objects)
    assert int(frozen) > 100_000
    # pytest's own full collections at the end of the run (unraisableexception's, since pytest 8.4;
    # the lowest pytest we support, 8.2, makes none) found torch's objects frozen too
    log = sweep_pytester.path / "collects.txt"
    during = [int(n) for n in log.read_text().split()] if log.exists() else []
    if hasattr(unraisableexception, "gc_collect_harder"):
        assert len(during) >= 2, during
    assert all(n > 100_000 for n in during), during


def test_an_in_process_run_leaves_nothing_frozen(sweep_pytester: SweepPytester) -> None:
    path = sweep_pytester.range_config(sweep_pytester.digits_config("CONFIG_LEARNING_RATE=0.001|0.002"))
    before = gc.get_freeze_count()
    result = sweep_pytester.run(f"--range-config={path}", "--collect-only", "-q")
    assert result.ret == 0 and "2 tests collected" in result.stdout.str()
    assert gc.get_freeze_count() == before
