"""One xdist worker per GPU: the assignment rules, and real workers pinned before torch starts."""

from __future__ import annotations

import json

import pytest

from pytest_sweep.plugins.gpu import gpu_for_worker, parse_visible_devices, threads_for, visible_gpus
from pytest_sweep.plugins.trainer import cuda_index_problem

from sweep_helpers import XDIST_PLUGIN_ARGS


def test_visible_gpus_follow_the_parents_list() -> None:
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "3, 5,7"}) == ["3", "5", "7"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []


@pytest.mark.parametrize(
    ("value", "count", "expected"),
    [
        ("0,-1,2", None, ["0"]),  # CUDA stops at the first invalid entry: GPU 2 is hidden
        ("1,abc,3", None, ["1"]),
        ("2,,3", None, ["2"]),
        ("1gpu,2", None, ["1", "2"]),  # an index is its leading digits, as strtoul reads it
        ("0,1,0", None, []),  # a device named twice hides them all
        ("3,7,1", 4, ["3"]),  # 7: no such GPU on a 4-GPU machine
        ("GPU-8f2a,GPU-11b0,2", None, ["GPU-8f2a", "GPU-11b0"]),
        ("MIG-aa,MIG-bb", None, ["MIG-aa", "MIG-bb"]),
    ],
)
def test_cuda_visible_devices_is_read_as_cuda_reads_it(value: str, count: int | None, expected: list[str]) -> None:
    assert parse_visible_devices(value, count) == expected
    if count is None:  # no NVIDIA driver here: the same through the workers' assignment
        assert visible_gpus({"CUDA_VISIBLE_DEVICES": value}) == expected


def test_cuda_index_beyond_the_visible_gpus_is_one_line_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cuda_index_problem("cuda", 1, "gw1") is None
    assert cuda_index_problem("cuda:0", 1, "gw1") is None
    assert cuda_index_problem("cuda:3", 4) is None
    worker = cuda_index_problem("cuda:1", 1, "gw1")
    assert worker == (
        "CONFIG_DEVICE=cuda:1, but xdist worker gw1 sees only the GPU it was given, as cuda:0 "
        "(-n spreads the workers over the GPUs, --sweep-workers-per-gpu per GPU); use CONFIG_DEVICE=cuda"
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    serial = cuda_index_problem("cuda:2", 2)
    assert serial == (
        "CONFIG_DEVICE=cuda:2, but this process sees 2 GPUs (cuda:0..cuda:1; CUDA_VISIBLE_DEVICES=4,5, "
        "numbered from 0); use one of those or CONFIG_DEVICE=cuda"
    )


@pytest.mark.parametrize(
    ("index", "per_gpu", "expected"),
    [(0, 1, "3"), (1, 1, "5"), (2, 1, "3"), (3, 1, "5"), (0, 2, "3"), (1, 2, "3"), (2, 2, "5"), (5, 2, "3")],
)
def test_worker_i_gets_gpu_i_modulo_the_count(index: int, per_gpu: int, expected: str) -> None:
    assert gpu_for_worker(index, ["3", "5"], per_gpu) == expected


def test_no_gpus_means_no_pinning() -> None:
    assert gpu_for_worker(0, [], 1) is None


def test_threads_are_shared_between_workers() -> None:
    assert threads_for(2, cores=2) == 1
    assert threads_for(4, cores=16) == 4
    assert threads_for(8, cores=2) == 1  # never zero


RECORDER = """\
import json, os
import pytest
from pytest_sweep.matrix import Symbol

class Probe:
    def run(self, trial, ctx):
        return {"test_acc": 1.0, "device": os.environ.get("CUDA_VISIBLE_DEVICES")}

@pytest.hookimpl
def pytest_sweep_declare_symbols():
    return [Symbol("CONFIG_PROBE", "int", 0, "A trial that only reports its GPU")]

@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    return Probe()
"""


@pytest.mark.parametrize(("per_gpu", "expected"), [("1", {"gw0": "3", "gw1": "5"}), ("2", {"gw0": "3", "gw1": "3"})])
def test_real_workers_are_pinned_before_torch_starts(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, per_gpu: str, expected: dict[str, str]
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    pytester.makeconftest(RECORDER)
    pytester.makefile("", range="CONFIG_PROBE=1:1:8\n")
    result = pytester.runpytest_subprocess(
        *XDIST_PLUGIN_ARGS,
        "--range-config=range",
        "--sweep-output=out",
        "-n",
        "2",
        "--sweep-workers-per-gpu",
        per_gpu,
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=8)
    records = json.loads(next((pytester.path / "out").glob("sweep_*/sweep_summary.json")).read_text())
    seen = {r["worker"]: r["device"] for r in records}
    assert seen == {w: gpu for w, gpu in expected.items() if w in seen}
    assert len(seen) >= 1
