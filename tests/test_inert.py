"""Installed anywhere, pytest-sweep changes nothing in a run without a sweep (issue 17, part 2).

An unrelated project's own tests under ``-n 2``: every xdist worker records what it sees (its
whole environment, the SIGTERM handler, frozen objects), once with our plugin loaded and once
without it; the two must be the same.  ``CUDA_VISIBLE_DEVICES`` lists four GPUs and no thread
count is set, which is where ``sweep.gpu`` used to narrow each worker to one GPU and one thread
(in a sweep it still does: ``tests/test_gpu.py``).
"""

from __future__ import annotations

import json

import pytest

from pytest_sweep import plugin_args

UNRELATED_TEST = """\
import gc
import json
import os
import signal

import pytest


@pytest.mark.parametrize("n", range(4))
def test_record_what_the_worker_sees(n):
    seen = {
        "env": {k: v for k, v in os.environ.items() if k not in ("PYTEST_CURRENT_TEST", "PYTEST_XDIST_TESTRUNUID", "SEEN_DIR")},
        "sigterm": repr(signal.getsignal(signal.SIGTERM)),
        "frozen": gc.get_freeze_count(),
        "gc_enabled": gc.isenabled(),
    }
    worker = os.environ["PYTEST_XDIST_WORKER"]
    with open(os.path.join(os.environ["SEEN_DIR"], f"{worker}-{n}.json"), "w") as fh:
        json.dump(seen, fh)
"""


def _workers_see(pytester: pytest.Pytester, tag: str, *plugins: str) -> dict[str, dict[str, object]]:
    out = pytester.path / f"seen-{tag}"
    out.mkdir()
    result = pytester.runpytest_subprocess(
        "-p", "xdist.plugin", *plugins, "-n", "2", "-p", "no:cacheprovider", "test_unrelated.py", timeout=300
    )
    result.assert_outcomes(passed=4)
    seen: dict[str, dict[str, object]] = {}
    for path in sorted(out.glob("*.json")):
        worker = path.stem.split("-")[0]
        record = json.loads(path.read_text(encoding="utf-8"))
        assert seen.setdefault(worker, record) == record, f"{worker} changed between its own tests"
    return seen


def test_an_unrelated_parallel_run_sees_its_own_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_unrelated=UNRELATED_TEST)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # exactly the plugins named below
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTEST_ADDOPTS", "PYTEST_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SEEN_DIR", str(pytester.path / "seen-without"))
    without = _workers_see(pytester, "without")
    monkeypatch.setenv("SEEN_DIR", str(pytester.path / "seen-with"))
    with_us = _workers_see(pytester, "with", *plugin_args())
    assert sorted(without) == sorted(with_us) == ["gw0", "gw1"]
    for worker, theirs in without.items():
        ours = with_us[worker]
        env, our_env = theirs["env"], ours["env"]
        assert isinstance(env, dict) and isinstance(our_env, dict)
        assert our_env.get("CUDA_VISIBLE_DEVICES") == env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"
        assert "OMP_NUM_THREADS" not in our_env and "MKL_NUM_THREADS" not in our_env
        assert our_env == env, f"{worker}: {sorted(set(our_env.items()) ^ set(env.items()))}"
        assert ours == theirs
