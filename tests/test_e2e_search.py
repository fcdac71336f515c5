"""End-to-end runs of sampled searches and Pareto fronts on a plugin trainer whose accuracy and
sparsity are known functions of five swept values (no torch): serial, seeds as replicates,
``-n 2`` on one shared study, resume, early stopping, several objectives with a constraint,
comparison of two sampled sweeps, and every new option's hostile inputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import pytest

from pytest_sweep.matrix.study import JOURNAL_FILE

from sweep_helpers import XDIST_PLUGIN_ARGS, assert_usage_error

if TYPE_CHECKING:
    from sweep_helpers import SweepPytester

KNOWN = """
import pytest
from pytest_sweep.matrix import Symbol

OPT = {"CONFIG_A": 2, "CONFIG_B": 3, "CONFIG_C": 1, "CONFIG_D": 4, "CONFIG_E": 0}


@pytest.hookimpl
def pytest_sweep_declare_symbols():
    return [Symbol(k, "int", 0, "a known axis") for k in OPT]


class Known:
    def run(self, trial, ctx):
        miss = sum((trial[k] - v) ** 2 for k, v in OPT.items())
        sparsity = trial["CONFIG_A"] / 4
        acc = 0.0
        for epoch in range(1, trial["CONFIG_NUM_EPOCHS"] + 1):
            acc = 100.0 - miss - 2.0 * sparsity - (trial["CONFIG_NUM_EPOCHS"] - epoch) + (trial["CONFIG_SEED"] % 2) * 0.5
            if ctx.epoch_ended({"epoch": epoch, "test_acc": acc}):
                break
        return {"test_acc": acc, "final_sparsity": sparsity, "epochs_run": epoch}


@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    return Known()
"""
FIVE = "CONFIG_NUM_EPOCHS=1\n" + "".join(f"CONFIG_{k}=0:1:4\n" for k in "ABCDE")
QUIET = ("-p", "no:cacheprovider", "--sweep-progress=none")
#: the plots take most of a tiny run's time; the tests of the reports keep them
NO_PLOTS = ("-p", "no:pytest_sweep.plugins.plots")


@pytest.fixture
def sp(sweep_pytester: SweepPytester) -> SweepPytester:
    sweep_pytester.pytester.makeconftest(KNOWN)
    return sweep_pytester


def _run(
    sp: SweepPytester, rc: str, *args: str, out: str = "out"
) -> tuple[pytest.RunResult, list[dict[str, Any]], Path]:
    path = sp.range_config(rc)
    result = sp.run(f"--range-config={path}", f"--sweep-output={out}", *QUIET, *NO_PLOTS, *args)
    dirs = sp.sweep_dirs(sp.path / out)
    done = [d for d in dirs if (d / "sweep_summary.json").exists()]
    return result, (sp.summary(done[-1]) if done else []), (done[-1] if done else sp.path)


def _study(sweep_dir: Path) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(sweep_dir / JOURNAL_FILE)))
    return optuna.load_study(study_name="sweep", storage=storage)


def _configs(records: list[dict[str, Any]]) -> list[str]:
    return [json.dumps({k: r["config"][k] for k in r["swept"] if k != "CONFIG_SEED"}, sort_keys=True) for r in records]


def test_tpe_runs_n_items_each_with_drawn_values_and_the_same_seed_repeats_them(sp: SweepPytester) -> None:
    result, records, sweep_dir = _run(sp, FIVE, "--sweep-search=tpe", "--sweep-trials=8", "--sweep-sampler-seed=7")
    result.assert_outcomes(passed=8)
    assert [r["config_file"] for r in records] == [f"trial_{i:03d}" for i in range(1, 9)]
    assert all(r["search"] == "tpe" and sorted(r["swept"]) == [f"CONFIG_{k}" for k in "ABCDE"] for r in records)
    assert all(r["trial_dir"].startswith(r["config_file"] + "_a-") for r in records)
    assert len(set(_configs(records))) == 8
    study = _study(sweep_dir)
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE"] * 8
    assert sorted(t.values[0] for t in study.trials) == sorted(r["test_acc"] for r in records)
    again, records2, _ = _run(sp, FIVE, "--sweep-search=tpe", "--sweep-trials=8", "--sweep-sampler-seed=7", out="again")
    again.assert_outcomes(passed=8)
    assert _configs(records2) == _configs(records)


def test_swept_seeds_are_replicates_and_the_sampler_is_told_the_mean(sp: SweepPytester) -> None:
    result, records, sweep_dir = _run(sp, FIVE + "CONFIG_SEED=1|2\n", "--sweep-search=random", "--sweep-trials=3")
    result.assert_outcomes(passed=6)
    by_trial: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_trial.setdefault(r["config_file"], []).append(r)
    study = _study(sweep_dir)
    for name, recs in by_trial.items():
        assert sorted(r["seed"] for r in recs) == [1, 2]
        assert len(set(_configs(recs))) == 1  # both seeds ran the same configuration
        (trial,) = [t for t in study.trials if t.user_attrs.get("slot") == name]
        assert trial.values[0] == pytest.approx(sum(r["test_acc"] for r in recs) / 2)


def test_resume_continues_the_same_study(sp: SweepPytester) -> None:
    result, first, sweep_dir = _run(sp, FIVE, "--sweep-search=tpe", "--sweep-trials=4")
    result.assert_outcomes(passed=4)
    result, records, again_dir = _run(sp, FIVE, "--sweep-search=tpe", "--sweep-trials=6", f"--sweep-resume={sweep_dir}")
    result.assert_outcomes(passed=6)
    assert again_dir == sweep_dir
    assert [r["reused"] for r in records] == [True] * 4 + [False] * 2
    assert _configs(records)[:4] == _configs(first)
    assert len(set(_configs(records))) == 6
    assert len([t for t in _study(sweep_dir).trials if "slot" in t.user_attrs]) == 6


def test_a_damaged_journal_on_resume_is_a_usage_error(sp: SweepPytester) -> None:
    result, _, sweep_dir = _run(sp, FIVE, "--sweep-search=random", "--sweep-trials=2")
    result.assert_outcomes(passed=2)
    journal = sweep_dir / JOURNAL_FILE
    lines = journal.read_text().splitlines(True)
    journal.write_text(lines[0] + "{not json\n" + "".join(lines[1:]))
    result, _, _ = _run(sp, FIVE, "--sweep-search=random", "--sweep-trials=2", f"--sweep-resume={sweep_dir}")
    assert_usage_error(
        result, f"ERROR: --sweep-resume={sweep_dir}: the study * cannot be read (JSONDecodeError*; start a new sweep*"
    )
    result, _, _ = _run(sp, FIVE, "--sweep-search=tpe", "--sweep-trials=2", f"--sweep-resume={sweep_dir}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_a_small_space_is_used_up_and_the_rest_are_skipped_as_repeats(sp: SweepPytester) -> None:
    result, records, sweep_dir = _run(
        sp, "CONFIG_NUM_EPOCHS=1\nCONFIG_A=0|1\nCONFIG_B=0|4\n", "--sweep-search=tpe", "--sweep-trials=6"
    )
    result.assert_outcomes(passed=4, skipped=2)
    ran = [r for r in records if r["status"] == "passed"]
    assert len(set(_configs(ran))) == 4
    repeats = [r for r in records if r["status"] == "skipped"]
    assert all(r["duplicate_of"] in {x["config_file"] for x in ran} for r in repeats)
    assert "RUNNING" not in {t.state.name for t in _study(sweep_dir).trials}


def test_early_stopping_combines_with_a_sampler(sp: SweepPytester) -> None:
    rc = FIVE.replace("CONFIG_NUM_EPOCHS=1", "CONFIG_NUM_EPOCHS=3")
    result, records, sweep_dir = _run(
        sp, rc, "--sweep-search=random", "--sweep-trials=8", "--sweep-scheduler=asha", "--sweep-reduction=2"
    )
    result.assert_outcomes(passed=8)
    stopped = [r for r in records if r["status"] == "stopped"]
    assert stopped and len(stopped) < 8
    states = {t.user_attrs["slot"]: t.state.name for t in _study(sweep_dir).trials}
    assert {states[r["config_file"]] for r in stopped} == {"PRUNED"}


def test_two_objectives_and_a_constraint_give_optunas_front(sp: SweepPytester) -> None:
    result, records, sweep_dir = _run(
        sp,
        FIVE,
        "--sweep-search=nsga2",
        "--sweep-trials=24",
        "--sweep-objective=test_acc:max,final_sparsity:max",
        "--sweep-constraint=final_sparsity>=0.5",
    )
    result.assert_outcomes(passed=24)
    assert {r["feasible"] for r in records if r["final_sparsity"] >= 0.5} == {True}
    assert {r["feasible"] for r in records if r["final_sparsity"] < 0.5} == {False}
    front = json.loads((sweep_dir / "sweep_pareto.json").read_text())
    study = _study(sweep_dir)
    # independent: Optuna's own non-dominated feasible trials of the study
    optuna_front = {t.user_attrs["slot"] for t in study.best_trials}
    assert {p["config"] for p in front["front"]} == optuna_front
    assert front["objectives"] == ["test_acc:max", "final_sparsity:max"] and front["hypervolume"] > 0
    assert (sweep_dir / "sweep_pareto.png").stat().st_size > 1000
    assert (
        "PARETO FRONT (test_acc:max, final_sparsity:max; constraints final_sparsity>=0.5)"
        in (sweep_dir / "sweep_analysis.txt").read_text()
    )
    assert "Pareto front (test_acc:max, final_sparsity:max)" in (sweep_dir / "sweep_report.html").read_text()
    result.stdout.fnmatch_lines(["*sweep pareto front*", "* of 24 configurations are not dominated; * infeasible"])


def test_compare_of_sampled_sweeps_is_best_found_and_hypervolume(sp: SweepPytester) -> None:
    objectives = "--sweep-objective=test_acc:max,final_sparsity:max"
    result, _, base = _run(sp, FIVE, "--sweep-search=tpe", "--sweep-trials=12", objectives, out="base")
    result.assert_outcomes(passed=12)
    result, _, _ = _run(
        sp,
        FIVE,
        "--sweep-search=random",
        "--sweep-trials=2",
        objectives,
        f"--sweep-compare={base}",
        "--sweep-compare-fail=hypervolume:0",
    )
    result.stdout.fnmatch_lines(
        [
            "*sampled sweeps: the best configuration found then and now",
            "Pareto front (test_acc:max, final_sparsity:max): * configurations, hypervolume * -> * (one reference point for both)",
            "*best found (trial_* then, trial_* now)*",
            "REGRESSION Pareto front: hypervolume * -> * (-*%, more than 0%)",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_two_workers_share_one_study_without_a_repeat_or_a_lost_tell(sp: SweepPytester) -> None:
    rc = sp.range_config(FIVE + "CONFIG_SEED=1|2\n")
    result = sp.pytester.runpytest_subprocess(
        *XDIST_PLUGIN_ARGS,
        f"--range-config={rc}",
        "--sweep-output=out",
        *QUIET,
        *NO_PLOTS,
        "-n",
        "2",
        "--sweep-search=tpe",
        "--sweep-trials=12",
        timeout=300,
    )
    result.assert_outcomes(passed=24)
    sweep_dir = sp.only_sweep_dir(sp.path / "out")
    records = sp.summary(sweep_dir)
    assert {r["worker"] for r in records} == {"gw0", "gw1"}
    slots = [t for t in _study(sweep_dir).trials if "slot" in t.user_attrs]
    assert len(slots) == 12 and {t.state.name for t in slots} == {"COMPLETE"}
    assert len({t.user_attrs["key"] for t in slots}) == 12  # no configuration twice
    assert len(set(_configs(records))) == 12


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--sweep-search=tpe", "--sweep-trials=0"), "*--sweep-trials: 0 must be at least 1*"),
        (("--sweep-search=tpe", "--sweep-trials=-1"), "*--sweep-trials: -1 must be at least 1*"),
        (("--sweep-search=tpe", "--sweep-trials=abc"), "*--sweep-trials: 'abc' is not a whole number of trials*"),
        (
            ("--sweep-search=tpe", f"--sweep-trials={10**30}"),
            "ERROR: --sweep-trials=1000000000000000000000000000000: * items exceed the limit of 10000*",
        ),
        (
            ("--sweep-search=annealing", "--sweep-trials=3"),
            "*'annealing' is not a search; use one of grid, random, qmc, tpe, gp, cmaes, nsga2*",
        ),
        (("--sweep-search=tpe",), "ERROR: --sweep-search=tpe needs --sweep-trials=N*"),
        (("--sweep-trials=5",), "ERROR: --sweep-trials applies to a sampled search*"),
        (
            ("--sweep-objective=accuracy:max",),
            "*'accuracy' is not a numeric metric of the record; use one of test_acc*",
        ),
        (("--sweep-objective=test_acc:up",), "*the direction of test_acc must be max or min, not 'up'*"),
        (("--sweep-constraint=final_sparsity>0.7",), "*use >= or <=*"),
        (("--sweep-constraint=final_sparsity",), "*'final_sparsity' is not METRIC>=NUMBER or METRIC<=NUMBER*"),
        (("--sweep-sampler-seed=-3",), "*--sweep-sampler-seed: -3 must be from 0 to 4294967295*"),
        (
            ("--sweep-search=cmaes", "--sweep-trials=3", "--sweep-objective=test_acc,final_sparsity"),
            "ERROR: --sweep-search=cmaes optimises one objective; with 2 objectives use nsga2, tpe, gp, random or qmc",
        ),
    ],
)
def test_hostile_options_are_one_line_usage_errors(sp: SweepPytester, args: tuple[str, ...], expected: str) -> None:
    result, _, _ = _run(sp, FIVE, *args)
    assert_usage_error(result, expected)


def test_nothing_to_search_and_several_sources_are_usage_errors(sp: SweepPytester) -> None:
    result, _, _ = _run(
        sp, "CONFIG_NUM_EPOCHS=1\nCONFIG_A=1\nCONFIG_SEED=1|2\n", "--sweep-search=tpe", "--sweep-trials=2"
    )
    assert_usage_error(result, "ERROR: *: --sweep-search=tpe has nothing to search: no key other than CONFIG_SEED*")
    a, b = sp.range_config(FIVE, "a.rc"), sp.range_config(FIVE, "b.rc")
    result = sp.run(f"--range-config={a}", f"--range-config={b}", "--sweep-search=tpe", "--sweep-trials=2")
    assert_usage_error(result, "ERROR: --sweep-search=tpe samples one range config*")


def test_a_missing_package_is_named(sp: SweepPytester) -> None:
    sp.pytester.makeconftest(KNOWN + "\nimport sys\nsys.modules['cmaes'] = None\n")
    result, _, _ = _run(sp, FIVE, "--sweep-search=cmaes", "--sweep-trials=2")
    assert_usage_error(result, "ERROR: --sweep-search=cmaes needs cmaes: pip install 'pytest-sweep[search]' cmaes")
    sys.modules.pop("cmaes", None)
