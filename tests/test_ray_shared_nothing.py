"""``--sweep-backend=ray`` on nodes that share no disk with the controller (``shared_nothing.py``).

The session's GPU nodes each have their own temp folder and refuse (and record) every file access
under a ``controller-disk`` folder, where these tests put the sweep output; the actors ship their
trial files back (``--sweep-ray-ship-files``: on one machine they would otherwise see the folder).
The scheduler's rung store and the sampler's study live on the controller's node
(``matrix/ray/state.py``): the tests check that the decisions are a serial run's for the same order
of results, that the draws are a serial run's, that ``--sweep-resume`` continues both, and that no
actor touched the controller's disk.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from landscape import CONFTEST

from pytest_sweep.matrix.rungs import Rule, SqliteRungStore, Verdict
from pytest_sweep.matrix.scheduling import Objective, asha_verdict

import shared_nothing

if TYPE_CHECKING:
    from conftest import RayCluster

    from sweep_helpers import SweepPytester

pytestmark = pytest.mark.ray

RAY = ("--sweep-backend=ray", "--sweep-ray-ship-files", "-p", "no:cacheprovider")
#: Six learning rates, nine epochs: ASHA (grace 1, η 3) decides at epochs 1 and 3.
GRID = "CONFIG_NUM_EPOCHS=9\nCONFIG_LEARNING_RATE=0.0001|0.001|0.003|0.01|0.03|0.1\n"
#: Added to the landscape trainer's conftest: a Ray actor's first trial waits for the other actor's
#: first trial, so that both nodes train and their results interleave (through the project folder,
#: which every node has; the output folder is the controller's alone).
BOTH_NODES = """

import time as _time


@pytest.hookimpl
def pytest_sweep_trial_started(trial):
    if not trial.worker.startswith("ray"):
        return
    here = Path(__file__).parent
    mine = here / f"started-{trial.worker}"
    if mine.exists():
        return
    mine.write_text(trial.name)
    deadline = _time.monotonic() + 60
    while len(list(here.glob("started-ray*"))) < 2 and _time.monotonic() < deadline:
        _time.sleep(0.05)
"""
#: 8 x 4 configurations to sample from.
SPACE = "CONFIG_NUM_EPOCHS=4\nCONFIG_LEARNING_RATE=0.0001|0.0003|0.001|0.003|0.01|0.03|0.1|0.3\nCONFIG_BATCH_SIZE=16|32|64|128\n"


@pytest.fixture
def sn_sweep(sweep_pytester: SweepPytester, ray_cluster: RayCluster, monkeypatch: pytest.MonkeyPatch) -> SweepPytester:
    for key, value in ray_cluster.env.items():
        monkeypatch.setenv(key, value)
    sweep_pytester.pytester.makeconftest(CONFTEST + BOTH_NODES)
    shared_nothing.clear(ray_cluster.nodes_dir)
    return sweep_pytester


def run(sweep: SweepPytester, *args: str, out: str = shared_nothing.OUTPUT_ARG) -> tuple[pytest.RunResult, Path]:
    result = sweep.run_subprocess("--range-config=range", out, *args)
    root = sweep.path / out.split("=", 1)[1]
    return result, sweep.sweep_dirs(root)[-1]


def rung_rows(sweep_dir: Path) -> list[tuple[str, int, str, float, bool, str]]:
    """The rung store's decisions in the order they were made (kind, step, trial, value, stop, reason)."""
    with sqlite3.connect(sweep_dir / "rungs.sqlite") as db:
        rows = db.execute("SELECT kind, step, trial, value, stop, reason FROM results ORDER BY rowid").fetchall()
    return [(str(k), int(s), str(t), float(v), bool(x), str(r)) for k, s, t, v, x, r in rows]


def replay(rows: list[tuple[str, int, str, float, bool, str]], folder: Path) -> list[Verdict]:
    """What a serial run's store decides for the same results in the same order (ASHA's defaults)."""
    store = SqliteRungStore(folder / "rungs.sqlite")
    objective = Objective("test_acc", "max")

    def rule(epoch: int) -> Rule:
        return lambda value, others: asha_verdict(value, others, 3.0, objective, epoch)

    try:
        return [store.decide(kind, step, trial, value, rule(step)) for kind, step, trial, value, _, _ in rows]
    finally:
        store.close()


def test_asha_on_nodes_without_the_controllers_disk_decides_as_a_serial_run(
    sn_sweep: SweepPytester, ray_cluster: RayCluster, tmp_path: Path
) -> None:
    sn_sweep.range_config(GRID, name="range")
    result, sweep_dir = run(sn_sweep, *RAY, "--sweep-scheduler=asha")
    result.assert_outcomes(passed=6)
    assert shared_nothing.violations(ray_cluster.nodes_dir) == []
    records = sn_sweep.records(sweep_dir)
    assert {r["worker"] for r in records.values()} == {"ray1", "ray2"}
    assert {r["node_id"] for r in records.values()} == ray_cluster.gpu_node_ids()
    # one store, on the controller's disk, holds both nodes' results: each decision is the one a
    # serial run's store makes when the same results arrive in the same order
    rows = rung_rows(sweep_dir)
    assert {trial for _, _, trial, *_ in rows} == {r["trial_dir"] for r in records.values()}
    made = [Verdict(stop, reason) for *_, stop, reason in rows]
    assert replay(rows, tmp_path) == made
    assert any(v.stop for v in made) and not all(v.stop for v in made)
    stopped = {trial for _, _, trial, _, stop, _ in rows if stop}
    assert {r["trial_dir"] for r in records.values() if r["status"] == "stopped"} == stopped
    for record in records.values():
        last = max(step for _, step, trial, *_ in rows if trial == record["trial_dir"])
        assert record["epochs_run"] == (last if record["trial_dir"] in stopped else 9)
    result.stdout.fnmatch_lines(["sweep: ray? ready on *: 6 items collected in * s; trial files shipped back*"])
    # the store's actor ran on the controller's node, the head (every earlier test's too)
    assert set(ray_cluster.actor_nodes("SweepState")) == {ray_cluster.head_node_id}


def test_the_median_rule_on_nodes_without_the_controllers_disk_counts_every_nodes_finished_trials(
    sn_sweep: SweepPytester, ray_cluster: RayCluster
) -> None:
    sn_sweep.range_config(GRID, name="range")
    result, sweep_dir = run(sn_sweep, *RAY, "--sweep-scheduler=median", "--sweep-startup-trials=2")
    result.assert_outcomes(passed=6)
    assert shared_nothing.violations(ray_cluster.nodes_dir) == []
    records = sn_sweep.records(sweep_dir)
    assert {r["worker"] for r in records.values()} == {"ray1", "ray2"}
    # one store for both nodes: every epoch but the last of every trial, and each completed trial
    rows = rung_rows(sweep_dir)
    assert sorted((trial, step) for kind, step, trial, *_ in rows if kind == "epoch") == sorted(
        (r["trial_dir"], epoch) for r in records.values() for epoch in range(1, min(r["epochs_run"] + 1, 9))
    )
    with sqlite3.connect(sweep_dir / "rungs.sqlite") as db:
        finished = {str(t) for (t,) in db.execute("SELECT trial FROM finished")}
    assert finished == {r["trial_dir"] for r in records.values() if r["status"] == "passed"}
    for row in rows:
        assert not row[4] or "the median" in row[5], row


def test_a_sampler_on_nodes_without_the_controllers_disk_draws_as_a_serial_run(
    sn_sweep: SweepPytester, ray_cluster: RayCluster
) -> None:
    sn_sweep.range_config(SPACE, name="range")
    search = ("--sweep-search=random", "--sweep-trials=6")
    serial, serial_dir = run(sn_sweep, *search, "-p", "no:cacheprovider", out="--sweep-output=serial")
    serial.assert_outcomes(passed=6)
    result, sweep_dir = run(sn_sweep, *RAY, *search)
    result.assert_outcomes(passed=6)
    assert shared_nothing.violations(ray_cluster.nodes_dir) == []
    records = sn_sweep.records(sweep_dir)
    assert {r["worker"] for r in records.values()} == {"ray1", "ray2"}

    def configs(found: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
        return sorted((str(r["CONFIG_LEARNING_RATE"]), str(r["CONFIG_BATCH_SIZE"])) for r in found.values())

    # one sampler, seeded as a serial run's, asked six times: the same six configurations
    assert configs(records) == configs(sn_sweep.records(serial_dir))
    assert len(set(configs(records))) == 6
    assert (sweep_dir / "search_study.journal").is_file()


def test_resume_of_a_shared_nothing_sweep_continues_its_study_and_its_rungs(
    sn_sweep: SweepPytester, ray_cluster: RayCluster
) -> None:
    sn_sweep.range_config(SPACE, name="range")
    sweep = ("--sweep-search=random", "--sweep-trials=4", "--sweep-scheduler=asha")
    first, sweep_dir = run(sn_sweep, *RAY, *sweep, "-k", "not trial_004")
    first.assert_outcomes(passed=3, deselected=1)
    before = rung_rows(sweep_dir)
    drawn = {n: r["CONFIG_LEARNING_RATE"] for n, r in sn_sweep.records(sweep_dir).items() if r["status"] != "not_run"}
    assert sorted(drawn) == ["trial_001", "trial_002", "trial_003"]

    resumed, again = run(sn_sweep, *RAY, *sweep, f"--sweep-resume={sweep_dir}")
    resumed.assert_outcomes(passed=4)
    assert again == sweep_dir
    assert shared_nothing.violations(ray_cluster.nodes_dir) == []
    records = sn_sweep.records(sweep_dir)
    assert [(n, r.get("reused", False)) for n, r in records.items()] == [
        ("trial_001", True),
        ("trial_002", True),
        ("trial_003", True),
        ("trial_004", False),
    ]
    assert {n: records[n]["CONFIG_LEARNING_RATE"] for n in drawn} == drawn
    # the resumed run's store is the first run's file, reopened: its decisions stay, trial_004's follow
    after = rung_rows(sweep_dir)
    assert after[: len(before)] == before
    assert {trial for _, _, trial, *_ in after[len(before) :]} == {records["trial_004"]["trial_dir"]}
    key = (records["trial_004"]["CONFIG_LEARNING_RATE"], records["trial_004"]["CONFIG_BATCH_SIZE"])
    assert key not in {(r["CONFIG_LEARNING_RATE"], r["CONFIG_BATCH_SIZE"]) for n, r in records.items() if n in drawn}


def test_the_nodes_refuse_the_controllers_disk_and_say_so(sn_sweep: SweepPytester, ray_cluster: RayCluster) -> None:
    """The harness can fail: without --sweep-ray-ship-files each actor looks for the controller's
    visibility token in the sweep folder; the node refuses (as one without that disk would) and
    records the attempt, and the actor ships its files back."""
    sn_sweep.range_config("CONFIG_NUM_EPOCHS=1\nCONFIG_LEARNING_RATE=0.001|0.01\n", name="range")
    result, sweep_dir = run(sn_sweep, "--sweep-backend=ray", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["sweep: ray? ready on *: 2 items collected in * s; trial files shipped back*"])
    refused = [line.split(" ", 2)[1:] for line in shared_nothing.violations(ray_cluster.nodes_dir)]
    assert refused == [["open", str(sweep_dir / ".sweep-ray-token")]] * 2
    assert sorted(sn_sweep.records(sweep_dir)) == ["config_001", "config_002"]
