"""Unit tests of the sampled search and the Pareto front: the space, the options' parsers, the
study store (real Optuna journal files), the front against an independent computation, and the
hypervolume against Optuna's own."""

from __future__ import annotations

import itertools
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from optuna._hypervolume import compute_hypervolume  # private: used here only as an independent check

from pytest_sweep.matrix.objectives import Objective, SpecError, parse_constraint, parse_objectives
from pytest_sweep.matrix.rangeconfig import parse_text
from pytest_sweep.matrix.space import SearchSpace
from pytest_sweep.matrix.study import JOURNAL_FILE, JournalSearchStore, SeedResult, StudyError, worker_index
from pytest_sweep.plugins import pareto

# -- the space ---------------------------------------------------------------------------------------


def test_space_kinds_order_and_seeds() -> None:
    rc = parse_text('A=0.1|0.001|0.01\nB=1:1:3\nC="x"|"y"\nCONFIG_SEED=1|2\nD=5\n')
    space = SearchSpace.from_range(rc)
    assert [(d.key, d.kind, d.values) for d in space.dims] == [
        ("A", "ordinal", ("0.001", "0.01", "0.1")),
        ("B", "ordinal", ("1", "2", "3")),
        ("C", "categorical", ("x", "y")),
    ]
    assert space.seeds == ("1", "2")
    assert space.size == 18
    assert space.raw({"A": 2, "B": 0, "C": "y"}) == {"A": "0.1", "B": "1", "C": "y"}


def test_continuous_ranges_become_intervals() -> None:
    rc = parse_text("A=0.1:0.1:0.5\nB=32:32:128\nC=1|2\n")
    space = SearchSpace.from_range(rc, continuous=True)
    kinds = {d.key: (d.kind, d.values) for d in space.dims}
    assert kinds == {"A": ("float", ("0.1", "0.5")), "B": ("int", ("32", "128")), "C": ("ordinal", ("1", "2"))}
    assert space.size == float("inf")
    assert space.raw({"A": 0.123456789, "B": 77, "C": 1}) == {"A": "0.123457", "B": "77", "C": "2"}


# -- option parsers ------------------------------------------------------------------------------------


def test_objectives_parse_and_refuse() -> None:
    assert parse_objectives("test_acc:max, final_sparsity") == (
        Objective("test_acc", "max"),
        Objective("final_sparsity", "max"),
    )
    for bad, why in [
        ("", "give METRIC"),
        ("accuracy:max", "not a numeric metric"),
        ("test_acc:up", "must be max or min"),
        ("test_acc,test_acc", "named twice"),
        ("test_acc,", "give METRIC"),
        ("test_acc,best_acc,final_sparsity,peak_memory_mb", "at most three"),
    ]:
        with pytest.raises(SpecError, match=why):
            parse_objectives(bad)


def test_constraints_parse_and_refuse() -> None:
    (c,) = parse_constraint("final_sparsity >= 0.7")
    assert (c.metric, c.op, c.bound) == ("final_sparsity", ">=", 0.7)
    assert c.holds(0.7) and not c.holds(0.69) and not c.holds(None)
    assert [str(x) for x in parse_constraint("test_acc=>90,peak_memory_mb<=512")] == [
        "test_acc>=90",
        "peak_memory_mb<=512",
    ]
    for bad, why in [
        ("final_sparsity", "is not METRIC>=NUMBER"),
        ("final_sparsity>0.7", "use >= or <="),
        ("sparsity>=0.7", "not a numeric metric"),
        ("final_sparsity>=abc", "not a finite number"),
        ("final_sparsity>=nan", "not a finite number"),
        ("", "give METRIC"),
    ]:
        with pytest.raises(SpecError, match=why):
            parse_constraint(bad)


# -- the Pareto front ----------------------------------------------------------------------------------


def _rec(name: str, acc: float, sparsity: float, seed: int | None = None, status: str = "passed") -> dict[str, Any]:
    config = {"X": name} if seed is None else {"X": name, "CONFIG_SEED": str(seed)}
    swept = ["X"] if seed is None else ["X", "CONFIG_SEED"]
    return {
        "config_file": name,
        "status": status,
        "test_acc": acc,
        "final_sparsity": sparsity,
        "config": config,
        "swept": swept,
        "X": name,
        "source": "r.rc",
    }


def _naive_front(pts: dict[str, tuple[float, ...]]) -> set[str]:
    """Non-dominated (all objectives maximised), by brute force."""
    out = set()
    for a, pa in pts.items():
        dominated = any(
            all(x >= y for x, y in zip(pb, pa, strict=True)) and any(x > y for x, y in zip(pb, pa, strict=True))
            for b, pb in pts.items()
            if b != a
        )
        if not dominated:
            out.add(a)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_the_front_equals_an_independent_non_dominated_set(seed: int) -> None:
    rng = random.Random(seed)
    records = [
        _rec(f"c{i:02d}", rng.choice(range(80, 100)), rng.choice([0.1 * k for k in range(10)])) for i in range(40)
    ]
    records.append(_rec("bad", 99.0, 0.9, status="failed"))
    objectives = (Objective("test_acc", "max"), Objective("final_sparsity", "min"))
    found = pareto.front(records, objectives)
    naive = _naive_front(
        {r["config_file"]: (r["test_acc"], -r["final_sparsity"]) for r in records if r["status"] == "passed"}
    )
    assert {p.label for p in found.front} == naive
    firsts = [p.means[0] for p in found.front]
    assert firsts == sorted(firsts, reverse=True)


def test_constraints_remove_infeasible_configurations() -> None:
    records = [_rec("a", 99, 0.5), _rec("b", 95, 0.8), _rec("c", 90, 0.9)]
    objectives = (Objective("test_acc", "max"), Objective("final_sparsity", "max"))
    found = pareto.front(records, objectives, parse_constraint("final_sparsity>=0.7"))
    assert [p.label for p in found.front] == ["b", "c"]
    assert [p.label for p in found.infeasible] == ["a"]


def test_with_seeds_a_difference_within_the_noise_does_not_dominate() -> None:
    objectives = (Objective("test_acc", "max"), Objective("final_sparsity", "max"))
    # a is 0.5 pp better on accuracy, equal sparsity, but its seeds spread by 2 pp: b stays
    noisy = [_rec("a", 91.0, 0.5, 1), _rec("a", 89.0, 0.5, 2), _rec("a", 90.5, 0.5, 3)]
    noisy += [_rec("b", 89.5, 0.5, 1), _rec("b", 90.5, 0.5, 2), _rec("b", 89.0, 0.5, 3)]
    assert {p.label for p in pareto.front(noisy, objectives).front} == {"a", "b"}
    # the same means with a tight spread: a dominates b beyond the noise
    tight = [_rec("a", 90.2, 0.5, 1), _rec("a", 90.1, 0.5, 2), _rec("a", 90.2, 0.5, 3)]
    tight += [_rec("b", 89.7, 0.5, 1), _rec("b", 89.6, 0.5, 2), _rec("b", 89.7, 0.5, 3)]
    found = pareto.front(tight, objectives)
    assert [p.label for p in found.front] == ["a"]
    assert found.front[0].n == 3


def test_a_missing_metric_is_counted_not_guessed() -> None:
    records = [_rec("a", 99, 0.5), {**_rec("b", 95, 0.8), "final_sparsity": None}]
    found = pareto.front(records, (Objective("test_acc", "max"), Objective("final_sparsity", "max")))
    assert [p.label for p in found.front] == ["a"]
    assert found.missing == {"final_sparsity": 1}
    assert pareto.front([], (Objective("test_acc", "max"),)).hypervolume() is None


@pytest.mark.parametrize("dims", [2, 3])
def test_hypervolume_equals_optunas(dims: int) -> None:
    rng = np.random.default_rng(dims)
    for _ in range(20):
        pts = rng.random((rng.integers(1, 25), dims))
        ref = np.zeros(dims) - 0.05
        ours = pareto.hypervolume(pts.tolist(), ref.tolist())
        theirs = compute_hypervolume(-pts, -ref)  # Optuna minimises
        assert ours == pytest.approx(theirs, rel=1e-9)


def test_hypervolume_by_hand() -> None:
    assert pareto.hypervolume([(2, 1), (1, 2)], (0, 0)) == 3
    assert pareto.hypervolume([(1, 1, 1)], (0, 0, 0)) == 1
    assert pareto.hypervolume([(-1, 5)], (0, 0)) == 0  # not better than the reference on every objective


# -- the study store -----------------------------------------------------------------------------------

SPACE = SearchSpace.from_range(parse_text("A=1|2|3\nB=1|2\n"))


def _store(folder: Path, **kw: Any) -> JournalSearchStore:
    space = kw.pop("space", SPACE)
    args: dict[str, Any] = {"seed": 0, "objectives": (Objective("test_acc", "max"),), "trials": 10}
    args.update(kw)
    return JournalSearchStore(folder, space, "random", **args)


def _passed(value: float) -> SeedResult:
    return SeedResult("passed", {"test_acc": value}, {"test_acc": value, "trial_dir": "x"})


def test_the_store_never_repeats_a_finished_configuration(tmp_path: Path) -> None:
    store = _store(tmp_path)
    seen = []
    for i in range(1, 7):  # the space holds six configurations
        prop = store.propose(f"trial_{i:03d}", "")
        assert prop.duplicate_of is None and prop.reuse is None
        seen.append(json.dumps(prop.raw, sort_keys=True))
        store.report(f"trial_{i:03d}", "", prop.number, _passed(float(i)))
    assert len(set(seen)) == 6
    extra = store.propose("trial_007", "")  # the space is used up: the item reuses a finished result
    assert extra.duplicate_of is not None and extra.reuse is not None
    counts = store.counts()
    assert counts["slots"] == 7 and counts.get("RUNNING", 0) == 0


def test_seeds_are_told_their_mean_once_all_reported(tmp_path: Path) -> None:
    space = SearchSpace.from_range(parse_text("A=1|2|3\nCONFIG_SEED=1|2\n"))
    store = JournalSearchStore(tmp_path, space, "tpe", seed=0, objectives=(Objective("test_acc", "max"),), trials=3)
    a = store.propose("trial_001", "1")
    b = store.propose("trial_001", "2")
    assert a.raw == b.raw and a.number == b.number
    store.report("trial_001", "1", a.number, _passed(80.0))
    assert store.counts().get("RUNNING") == 1  # seed 2 still to come
    store.report("trial_001", "2", a.number, _passed(90.0))
    study = store.open()
    assert study.trials[a.number].values == [85.0]


def test_resume_reuses_finished_seeds_and_reruns_a_failed_configuration(tmp_path: Path) -> None:
    store = _store(tmp_path)
    one = store.propose("trial_001", "")
    store.report("trial_001", "", one.number, _passed(70.0))
    two = store.propose("trial_002", "")
    store.report("trial_002", "", two.number, SeedResult("failed", {"test_acc": None}))
    three = store.propose("trial_003", "")  # never told: the process died
    again = _store(tmp_path, worker_index=1)  # a new process on the same study
    assert again.propose("trial_001", "").reuse == _passed(70.0).to_json()
    rerun = again.propose("trial_002", "")
    assert rerun.raw == two.raw and rerun.number != two.number and rerun.reuse is None
    assert again.propose("trial_003", "").number == three.number


def test_a_damaged_or_foreign_journal_is_a_study_error(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.propose("trial_001", "")
    journal = tmp_path / JOURNAL_FILE
    lines = journal.read_text().splitlines(True)
    journal.write_text(lines[0] + '{"op_code": 5, broken\n' + "".join(lines[1:]))
    with pytest.raises(StudyError, match="cannot be read"):
        _store(tmp_path).check()
    other = tmp_path / "other"
    _store(other).check()
    with pytest.raises(StudyError, match="made by another search"):
        _store(other, space=SearchSpace.from_range(parse_text("A=1|2\n"))).check()


def test_worker_index() -> None:
    assert [worker_index(w) for w in ("main", "gw0", "gw3", "ray2")] == [0, 0, 3, 2]
    assert 0 <= worker_index("node") < 1000


def test_every_small_space_is_covered_without_repeats() -> None:
    # the ordinal dimensions' index maps back to every value
    space = SearchSpace.from_range(parse_text("A=0.5|0.25\nB=y|n\n"))
    raws = {json.dumps(space.raw({"A": a, "B": b})) for a, b in itertools.product(range(2), ("y", "n"))}
    assert len(raws) == 4


def test_the_search_benchmark_smoke_mode() -> None:
    """``bench/search.py --smoke``: the benchmark still runs (its figures are in docs/benchmarks.md)."""
    import subprocess
    import sys

    bench = Path(__file__).resolve().parents[1] / "bench" / "search.py"
    proc = subprocess.run(
        [sys.executable, str(bench), "--smoke"], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["shared_study_two_processes"] == {
        "items": 10,
        "distinct_configurations": 10,
        "running_after": 0,
        "told": 10,
    }
    assert set(summary) >= {"random", "qmc", "tpe"}


def test_the_digits_search_benchmark_smoke_mode() -> None:
    """``bench/search_digits.py --smoke``: trains a real 4-configuration digits grid, replays the samplers on it."""
    import subprocess
    import sys

    bench = Path(__file__).resolve().parents[1] / "bench" / "search_digits.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(bench), "--smoke"], capture_output=True, text=True, timeout=300, check=False, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["grid"] == 4 and 0 < summary["grid_best"] <= 100
    for search in ("random", "qmc", "tpe"):
        assert all(n is not None and 1 <= n <= 4 for n in summary[search]["needed"]), summary[search]
    assert not Path(summary["summary"]).exists()  # the smoke run's trained grid is removed


def test_a_store_ships_without_its_opened_study_and_draws_as_the_original(tmp_path: Path) -> None:
    """The Ray backend hands the controller's store to the actor holding the study (ray/state.py):
    pickled after the controller opened it (a resume's check), the copy opens the journal itself
    and draws what the original draws."""
    import pickle

    store = _store(tmp_path / "a")
    assert store.check() == 0  # opened here
    copy = pickle.loads(pickle.dumps(store))
    assert copy._study is None and store._study is not None
    again = _store(tmp_path / "b")
    assert [copy.propose(f"trial_00{i}", "").raw for i in range(1, 5)] == [
        again.propose(f"trial_00{i}", "").raw for i in range(1, 5)
    ]
