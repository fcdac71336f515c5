"""End to end: real digits sweeps through pytest, from the range config to the ranked summary.

One module-scoped sweep trains for real (LeNet-5 on the bundled digits, 2 epochs) and feeds
most tests here: 6 combinations, two of them with a learning rate of 1e10 whose loss
becomes NaN within a few steps, so a failed trial sits among passed ones.  The other
tests only collect, or run trials that fail in their first steps.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix import estimate
from pytest_sweep.plugins import importance, plots, refine
from pytest_sweep.plugins.analysis import render_analysis

from sweep_helpers import SweepPytester, SweepTools

MAIN_SWEPT = (
    "CONFIG_LEARNING_RATE=1e10|0.001|0.003  # 1e10: the loss becomes NaN in the first steps",
    "CONFIG_WEIGHT_DECAY=0.0|0.05",
)
NAMES = [f"config_{i:03d}" for i in range(1, 7)]
FAILED = {"config_001", "config_002"}
PASSED = {"config_003", "config_004", "config_005", "config_006"}
FOLDERS = {
    "config_001": "config_001_learning_rate-1e10_weight_decay-0.0",
    "config_002": "config_002_learning_rate-1e10_weight_decay-0.05",
    "config_003": "config_003_learning_rate-0.001_weight_decay-0.0",
    "config_004": "config_004_learning_rate-0.001_weight_decay-0.05",
    "config_005": "config_005_learning_rate-0.003_weight_decay-0.0",
    "config_006": "config_006_learning_rate-0.003_weight_decay-0.05",
}
SWEPT = {
    "config_001": (1e10, 0.0),
    "config_002": (1e10, 0.05),
    "config_003": (0.001, 0.0),
    "config_004": (0.001, 0.05),
    "config_005": (0.003, 0.0),
    "config_006": (0.003, 0.05),
}


@dataclass
class Sweep:
    cwd: Path
    result: pytest.RunResult
    dir: Path
    tools: SweepTools

    @property
    def records(self) -> dict[str, dict[str, Any]]:
        return self.tools.records(self.dir)


@pytest.fixture(scope="module")
def digits_sweep(tmp_path_factory: pytest.TempPathFactory, sweep_tools: SweepTools) -> Sweep:
    """The one sweep of this module that trains: 4 real trainings, 2 NaN failures."""
    cwd = tmp_path_factory.mktemp("digits_sweep")
    (cwd / "sweep.rc").write_text(sweep_tools.digits_config(*MAIN_SWEPT), encoding="utf-8")
    result = sweep_tools.run_process(cwd, "--range-config=sweep.rc", "--sweep-output=out", "--junitxml=junit.xml")
    return Sweep(cwd, result, sweep_tools.only_sweep_dir(cwd / "out"), sweep_tools)


def passed_ranked(records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    done = [r for r in records.values() if r["status"] == "passed"]
    return sorted(done, key=lambda r: (-r["test_acc"], r["config_file"]))


def test_each_combination_is_one_item_and_a_nan_fails_only_its_own(digits_sweep: Sweep) -> None:
    result = digits_sweep.result
    result.assert_outcomes(passed=4, failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            # the failure is one line and the log's path, not a traceback
            "config_001: loss became nan/inf at epoch 1, step *; lower the learning rate (log: *"
            f"{FOLDERS['config_001']}/output.log)",
            "config_002: loss became nan/inf at epoch 1, step *; lower the learning rate (log: *"
            f"{FOLDERS['config_002']}/output.log)",
            "*short test summary info*",
            "FAILED sweep.rc::config_001[[]LEARNING_RATE=1e10-WEIGHT_DECAY=0.0[]]*",
            "FAILED sweep.rc::config_002[[]LEARNING_RATE=1e10-WEIGHT_DECAY=0.05[]]*",
        ]
    )
    # a serial run shows each trial's epochs as they happen
    for name in PASSED:
        result.stdout.fnmatch_lines([f"*{name} epoch 1/2  train_loss*", f"*{name} epoch 2/2  train_loss*"])
    assert "Traceback" not in result.stdout.str()


def test_sweep_folder_has_one_folder_per_trial(digits_sweep: Sweep) -> None:
    assert re.fullmatch(r"sweep_\d{8}_\d{6}", digits_sweep.dir.name)
    trial_dirs = {p.name for p in digits_sweep.dir.iterdir() if p.is_dir()}
    assert trial_dirs == {*FOLDERS.values(), "plots"}  # plots/: the plots reporter's
    for folder in FOLDERS.values():
        names = {p.name for p in (digits_sweep.dir / folder).iterdir()}
        assert names == {"config.txt", "training_metrics.json", "output.log"}, folder
    files = {p.name for p in digits_sweep.dir.rglob("*") if p.is_file()}
    assert {"sweep_summary.json", "sweep_analysis.txt"} <= files
    # the other reporters' files (tests/test_e2e_report.py checks what they hold)
    assert {"sweep_summary.csv", "sweep_importance.json", "refine_range", "sweep_report.html"} <= files
    assert not [f for f in files if f.startswith(".") or f.endswith(".tmp")]  # no temp files left behind


def test_config_txt_is_the_exact_config_of_the_trial(digits_sweep: Sweep) -> None:
    text = (digits_sweep.dir / FOLDERS["config_004"] / "config.txt").read_text(encoding="utf-8")
    settings = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert settings == [
        "CONFIG_BATCH_SIZE=64",
        'CONFIG_DATASET="digits"',
        'CONFIG_DEVICE="cpu"',
        "CONFIG_LEARNING_RATE=0.001",
        'CONFIG_MODEL="lenet5"',
        "CONFIG_NUM_EPOCHS=2",
        'CONFIG_OPTIMIZER="adamw"',
        "CONFIG_WEIGHT_DECAY=0.05",
    ]
    assert text.startswith("# config_004 (")


def test_training_metrics_hold_the_history_of_each_epoch(digits_sweep: Sweep) -> None:
    records = digits_sweep.records
    for name in PASSED:
        doc = json.loads((digits_sweep.dir / FOLDERS[name] / "training_metrics.json").read_text(encoding="utf-8"))
        assert doc["config_file"] == name
        assert doc["status"] == "passed"
        assert doc["error"] is None
        assert [e["epoch"] for e in doc["epochs"]] == [1, 2]
        for epoch in doc["epochs"]:
            for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_time"):
                assert isinstance(epoch[key], float) and epoch[key] > 0, (name, key, epoch)
            assert epoch["sparsity"] == 0.0  # adamw without a pruning method
        first, last = doc["epochs"]
        assert last["lr"] == first["lr"]  # AdamW on LeNet-5: a constant rate, as the reference trains it
        assert last["train_loss"] < first["train_loss"]
        assert doc["test_acc"] == last["test_acc"]
        assert doc["best_acc"] == max(first["test_acc"], last["test_acc"])
        assert doc["total_time"] >= doc["training_time"] > 0
        assert doc["config"]["CONFIG_LEARNING_RATE"] == records[name]["config"]["CONFIG_LEARNING_RATE"]
        assert doc["test_acc"] == records[name]["test_acc"]
    for name in FAILED:
        doc = json.loads((digits_sweep.dir / FOLDERS[name] / "training_metrics.json").read_text(encoding="utf-8"))
        assert doc["status"] == "failed"
        assert "nan" in doc["error"]
        assert doc["test_acc"] is None


def test_output_log_is_the_trials_own_log(digits_sweep: Sweep) -> None:
    log = (digits_sweep.dir / FOLDERS["config_005"] / "output.log").read_text(encoding="utf-8")
    assert "lenet5 on digits (1437 train / 360 test), adamw, 2 epochs, batch 64, lr 0.003 (constant), device cpu" in log
    assert re.search(r"^epoch 1/2  train_loss \d", log, re.M)
    assert re.search(r"^epoch 2/2  train_loss \d", log, re.M)
    assert log.rstrip().endswith("status: passed")
    assert "config_003" not in log  # the log of one trial only
    failed = (digits_sweep.dir / FOLDERS["config_001"] / "output.log").read_text(encoding="utf-8")
    assert "Traceback" in failed  # the full story is in the log, not on the terminal
    assert failed.rstrip().splitlines()[-1].startswith("status: failed (loss became nan/inf at epoch 1")


def test_summary_json_is_a_list_of_flat_records(digits_sweep: Sweep) -> None:
    data = digits_sweep.tools.summary(digits_sweep.dir)
    assert [r["config_file"] for r in data] == NAMES
    assert len({frozenset(r) for r in data}) == 1  # the same columns in every row (a DataFrame)
    for rec in data:
        name = rec["config_file"]
        for column in (
            "config_file",
            "status",
            "test_acc",
            "final_sparsity",
            "training_time",
            "error",
            "CONFIG_LEARNING_RATE",
            "CONFIG_WEIGHT_DECAY",
        ):
            assert rec[column] is None or isinstance(rec[column], (str, int, float)), (name, column)
        # every swept parameter is a column, as a number
        assert (rec["CONFIG_LEARNING_RATE"], rec["CONFIG_WEIGHT_DECAY"]) == SWEPT[name]
        assert rec["swept"] == ["CONFIG_LEARNING_RATE", "CONFIG_WEIGHT_DECAY"]
        assert rec["trial_dir"] == FOLDERS[name]
        assert rec["trainer"] == "lenet5/digits/adamw/none e2 b64"
        if name in PASSED:
            assert rec["status"] == "passed"
            assert rec["error"] is None
            assert 50.0 < rec["test_acc"] <= 100.0  # a percentage, and it learned something
            assert rec["best_acc"] >= rec["test_acc"]
            assert rec["final_sparsity"] == 0.0
            assert rec["training_time"] > 0
            assert rec["epochs_run"] == 2
            assert rec["device"] == "cpu"
            assert rec["torch_threads"] == 1  # the tests' OMP_NUM_THREADS=1; CPU numerics depend on it
        else:
            assert rec["status"] == "failed"
            assert rec["test_acc"] is None
            assert "\n" not in rec["error"]
            assert rec["error"].startswith("loss became nan/inf at epoch 1, step ")
            assert rec["error"].endswith("; lower the learning rate")


def test_analysis_names_the_most_accurate_config_and_the_failures(digits_sweep: Sweep) -> None:
    records = digits_sweep.records
    text = (digits_sweep.dir / "sweep_analysis.txt").read_text(encoding="utf-8")
    best = passed_ranked(records)[0]
    assert best["test_acc"] == max(r["test_acc"] for r in records.values() if r["test_acc"] is not None)
    assert f"Config file: {best['config_file']}\nTest Accuracy: {best['test_acc']:.2f}%\n" in text
    assert "Total configurations tested: 6\nPassed: 4 | Failed: 2 | Skipped: 0 | Not run: 0\n" in text
    failed_block = text.split("FAILED TESTS: 2\n" + "-" * 40 + "\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split(":")[0] for line in failed_block] == ["config_001", "config_002"]
    assert all("loss became nan/inf" in line for line in failed_block)
    # the file is exactly what the renderers make of the JSON beside it: the guide's layout, then the
    # sections of the importance, refine and plots reporters
    summary = digits_sweep.tools.summary(digits_sweep.dir)
    imp = importance.compute(summary)
    sections = [
        importance.render_section(imp),
        refine.render_section(
            refine.refine(summary, imp, refine.builtin_symbols()), str(digits_sweep.dir / "refine_range")
        ),
        plots.render_section(plots.plan(summary, digits_sweep.dir)),
    ]
    assert text == render_analysis(summary, sections=sections)


def test_terminal_shows_the_ranked_table(digits_sweep: Sweep) -> None:
    ranked = passed_ranked(digits_sweep.records)
    lines = [
        "*= sweep results =*",
        "rank*config*test_acc %*sparsity*time*LEARNING_RATE*WEIGHT_DECAY",
        "------*----------*",
    ]
    for rank, rec in enumerate(ranked, 1):
        # the table prints the config's own strings, not re-parsed numbers
        lr, wd = (rec["config"][k] for k in ("CONFIG_LEARNING_RATE", "CONFIG_WEIGHT_DECAY"))
        lines.append(f"{rank} * {rec['config_file']} * {rec['test_acc']:.2f} * 0.0% * *s * {lr} * {wd}")
    lines += [
        f"best: {ranked[0]['config_file']} at {ranked[0]['test_acc']:.2f}% test accuracy; * (within 0.50 pp "
        "resolution, no seeds swept)*",
        "FAILED config_001: loss became nan/inf*",
        "FAILED config_002: loss became nan/inf*",
        # every file a person opens, named at the end of the run
        f"report: {digits_sweep.dir / 'sweep_report.html'}",
        f"analysis: {digits_sweep.dir / 'sweep_analysis.txt'}",
        f"table: {digits_sweep.dir / 'sweep_summary.csv'}",
        f"plots: {digits_sweep.dir / 'plots'}/ (5 PNG files)",
        f"next sweep: {digits_sweep.dir / 'refine_range'} (run it: pytest --range-config={digits_sweep.dir / 'refine_range'})",
        f"summary: {digits_sweep.dir / 'sweep_summary.json'}",
        f"for machines: {digits_sweep.dir / 'sweep_analysis.json'}",
    ]
    digits_sweep.result.stdout.fnmatch_lines(lines, consecutive=True)


def test_junitxml_reports_every_trial(digits_sweep: Sweep) -> None:
    suite = ET.parse(digits_sweep.cwd / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("6", "2", "0")
    cases = {case.get("name", ""): case for case in suite.iter("testcase")}
    assert sorted(cases) == [
        "config_001[LEARNING_RATE=1e10-WEIGHT_DECAY=0.0]",
        "config_002[LEARNING_RATE=1e10-WEIGHT_DECAY=0.05]",
        "config_003[LEARNING_RATE=0.001-WEIGHT_DECAY=0.0]",
        "config_004[LEARNING_RATE=0.001-WEIGHT_DECAY=0.05]",
        "config_005[LEARNING_RATE=0.003-WEIGHT_DECAY=0.0]",
        "config_006[LEARNING_RATE=0.003-WEIGHT_DECAY=0.05]",
    ]
    failure = cases["config_002[LEARNING_RATE=1e10-WEIGHT_DECAY=0.05]"].find("failure")
    assert failure is not None and "loss became nan/inf" in (failure.get("message") or "")
    assert cases["config_003[LEARNING_RATE=0.001-WEIGHT_DECAY=0.0]"].find("failure") is None


def test_last_failed_reruns_only_the_failed_combinations_and_x_stops_at_the_first(digits_sweep: Sweep) -> None:
    """``--lf`` selects exactly the 2 failed of 6; ``-x`` then stops after the first of them.

    (One run for both: every run that reaches a trial imports torch, about 10 s.)"""
    tools = digits_sweep.tools
    result = tools.run_process(digits_sweep.cwd, "--range-config=sweep.rc", "--sweep-output=out_lf", "--lf", "-x")
    result.assert_outcomes(failed=1, deselected=4)
    result.stdout.fnmatch_lines(["run-last-failure: rerun previous 2 failures", "*stopping after 1 failures*"])
    sweep_dir = tools.only_sweep_dir(digits_sweep.cwd / "out_lf")
    rerun = tools.records(sweep_dir)
    assert {n: (r["status"], r["error"]) for n, r in rerun.items()} == {
        "config_001": ("failed", rerun["config_001"]["error"]),
        "config_002": ("not_run", "not run"),
    }
    assert rerun["config_001"]["error"].startswith("loss became nan/inf")
    assert [p.name for p in sweep_dir.glob("config_*")] == [FOLDERS["config_001"]]  # config_002 never started


def test_collect_only_estimate_uses_the_measured_trial_time(digits_sweep: Sweep, sweep_pytester: SweepPytester) -> None:
    sweep_pytester.range_config(sweep_pytester.digits_config(*MAIN_SWEPT))
    out = digits_sweep.cwd / "out"
    before = sweep_pytester.sweep_dirs(out)
    result = sweep_pytester.run("--range-config=sweep.rc", f"--sweep-output={out}", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    times = [r["training_time"] for r in digits_sweep.records.values() if r["status"] == "passed"]
    span = estimate.Span.of(times)  # from the fastest x 0.9 to the slowest x 1.1
    assert span == estimate.Span(min(times) * 0.9, max(times) * 1.1)
    result.stdout.fnmatch_lines(
        [
            "sweep: 6 combinations; trainer: lenet5/digits/adamw/none e2 b64",
            f"sweep: estimated runtime {estimate.format_span(estimate.Span(6 * span.low, 6 * span.high))} "
            f"(6 x {estimate.format_span(span).removeprefix('about ')}; measured: 4 earlier trials, "
            f"newest in {digits_sweep.dir.name})",
        ]
    )
    assert sweep_pytester.sweep_dirs(out) == before  # collecting writes no sweep folder


# -- collection only ------------------------------------------------------------------------
SMOKE_SWEPT = ("CONFIG_LEARNING_RATE=0.001|0.003", "CONFIG_WEIGHT_DECAY=0.0|0.05")
SMOKE_IDS = [
    "sweep.rc::config_001[LEARNING_RATE=0.001-WEIGHT_DECAY=0.0]",
    "sweep.rc::config_002[LEARNING_RATE=0.001-WEIGHT_DECAY=0.05]",
    "sweep.rc::config_003[LEARNING_RATE=0.003-WEIGHT_DECAY=0.0]",
    "sweep.rc::config_004[LEARNING_RATE=0.003-WEIGHT_DECAY=0.05]",
]


def collected_ids(result: pytest.RunResult) -> list[str]:
    return [line for line in result.stdout.lines if "::config_" in line]


def test_collect_only_lists_one_item_per_combination_with_the_estimate(sweep_pytester: SweepPytester) -> None:
    sweep_pytester.range_config(sweep_pytester.digits_config(*SMOKE_SWEPT))
    result = sweep_pytester.run("--range-config=sweep.rc", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    assert collected_ids(result) == SMOKE_IDS
    result.stdout.fnmatch_lines(
        [
            "sweep: 4 combinations; trainer: lenet5/digits/adamw/none e2 b64",
            "sweep: estimated runtime not known yet (no timing of this trainer on this machine): the progress "
            "line gives the time left once a trial passes (--sweep-estimate times a few steps now; "
            "--sweep-minutes-per-trial=MIN sets it)",
            "4 tests collected*",
        ]
    )


def test_minutes_per_trial_sets_the_estimate(sweep_pytester: SweepPytester) -> None:
    sweep_pytester.range_config(sweep_pytester.digits_config(*SMOKE_SWEPT))
    result = sweep_pytester.run("--range-config=sweep.rc", "--collect-only", "-q", "--sweep-minutes-per-trial=2")
    result.stdout.fnmatch_lines(["sweep: estimated runtime 4 x 2.0 min = 8.0 min (--sweep-minutes-per-trial)"])


def test_keyword_selects_one_combination(sweep_pytester: SweepPytester) -> None:
    sweep_pytester.range_config(sweep_pytester.digits_config(*SMOKE_SWEPT))
    result = sweep_pytester.run("--range-config=sweep.rc", "--collect-only", "-q", "-k", "config_002")
    assert collected_ids(result) == [SMOKE_IDS[1]]
    result.stdout.fnmatch_lines(["1/4 tests collected (3 deselected)*"])
    # the swept values are part of the name ("=" is not allowed in a -k expression)
    result = sweep_pytester.run("--range-config=sweep.rc", "--collect-only", "-q", "-k", "0.05")
    assert collected_ids(result) == [SMOKE_IDS[1], SMOKE_IDS[3]]


def test_range_config_collects_only_the_sweep(sweep_pytester: SweepPytester) -> None:
    sweep_pytester.range_config(sweep_pytester.digits_config(*SMOKE_SWEPT))
    sweep_pytester.pytester.makepyfile(test_other="def test_other():\n    pass\n")
    plain = sweep_pytester.run("--collect-only", "-q")
    plain.stdout.fnmatch_lines(["test_other.py::test_other"])  # the file is collectable
    result = sweep_pytester.run("--range-config=sweep.rc", "--collect-only", "-q")
    assert collected_ids(result) == SMOKE_IDS
    assert "test_other" not in result.stdout.str()
    result.stdout.fnmatch_lines(["4 tests collected*"])


def test_rejected_combinations_are_skipped_with_the_plugins_reason(sweep_pytester: SweepPytester) -> None:
    sweep_pytester.range_config(
        sweep_pytester.digits_config('CONFIG_PRUNING_METHOD="state"|"magnitude"', "CONFIG_PRUNING_WARMUP=100000")
    )
    collect = sweep_pytester.run("--range-config=sweep.rc", "--collect-only", "-q")
    collect.stdout.fnmatch_lines(["sweep: 2 combinations (2 skipped by plugins)*"])
    state_reason = (
        "state pruning needs the AdamWPrune optimizer (this trial uses adamw); "
        "set CONFIG_OPTIMIZER_SELECT_ADAMWPRUNE=y or another CONFIG_PRUNING_METHOD"
    )
    warmup_reason = (
        "pruning warmup (100000 steps) is not shorter than the whole run (46 steps = "
        "2 epochs x 23); nothing would be pruned"
    )
    result = sweep_pytester.run("--range-config=sweep.rc", "--sweep-output=out", "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        [f"SKIPPED [[]1[]] sweep.rc: {state_reason}", f"SKIPPED [[]1[]] sweep.rc: {warmup_reason}"]
    )
    sweep_dir = sweep_pytester.only_sweep_dir(sweep_pytester.path / "out")
    records = sweep_pytester.records(sweep_dir)
    assert {n: (r["status"], r["error"]) for n, r in records.items()} == {
        "config_001": ("skipped", state_reason),
        "config_002": ("skipped", warmup_reason),
    }
    analysis = (sweep_dir / "sweep_analysis.txt").read_text(encoding="utf-8")
    assert f"config_001 (skipped): {state_reason}" in analysis
    assert "No configuration finished, so there is no best one." in analysis


def test_generated_configs_run_with_the_same_ids(sweep_pytester: SweepPytester) -> None:
    sweep_pytester.range_config(sweep_pytester.digits_config(*SMOKE_SWEPT))
    generate = sweep_pytester.run("--range-config=sweep.rc", "--sweep-generate=generated")
    assert generate.ret == pytest.ExitCode.OK
    generate.stdout.fnmatch_lines(
        ["wrote 4 configs and combinations_summary.txt to *generated", "run them with: pytest --config-dir=generated"]
    )
    gen = sweep_pytester.path / "generated"
    assert sorted(p.name for p in gen.iterdir()) == [
        "combinations_summary.txt",
        "config_001",
        "config_002",
        "config_003",
        "config_004",
    ]
    assert "CONFIG_LEARNING_RATE=0.003\n" in (gen / "config_004").read_text(encoding="utf-8")
    from_range = sweep_pytester.run("--range-config=sweep.rc", "--collect-only", "-q")
    from_dir = sweep_pytester.run("--config-dir=generated", "--collect-only", "-q")
    assert from_dir.ret == pytest.ExitCode.OK
    ids = [line.split("::", 1)[1] for line in collected_ids(from_range)]
    assert [line.split("::", 1)[1] for line in collected_ids(from_dir)] == ids
    assert [line.split("::", 1)[0] for line in collected_ids(from_dir)] == ["generated"] * 4
    from_dir.stdout.fnmatch_lines(["sweep: 4 combinations; trainer: lenet5/digits/adamw/none e2 b64"])


ESTIMATOR = """\
import pytest


@pytest.hookimpl
def pytest_sweep_estimate_trial(trial, config):
    return 90.0 * trial["CONFIG_NUM_EPOCHS"]
"""


def test_a_plugin_can_answer_the_estimate(sweep_pytester: SweepPytester) -> None:
    sweep_pytester.pytester.makeconftest(ESTIMATOR)
    sweep_pytester.range_config(sweep_pytester.digits_config(*SMOKE_SWEPT))
    result = sweep_pytester.run("--range-config=sweep.rc", "--collect-only", "-q")
    # one answer stands for an interval: x 0.7 to x 1.5 (126-270 s per trial)
    result.stdout.fnmatch_lines(
        ["sweep: estimated runtime about 8-18 min (4 x 2-5 min; pytest_sweep_estimate_trial's answer)"]
    )


def test_a_timed_estimate_is_close_to_the_real_time_of_a_digits_trial(sweep_pytester: SweepPytester) -> None:
    """The built-in estimate times LeNet-5 steps; a real 2-epoch digits trial takes the same order."""
    from pytest_sweep.matrix.plugin import pytest_configure  # noqa: F401  (the plugin is importable)

    sweep_pytester.range_config(sweep_pytester.digits_config())
    config = sweep_pytester.pytester.parseconfigure(
        *sweep_pytester.plugin_args, "--range-config=sweep.rc", "--sweep-estimate"
    )
    from pytest_sweep.matrix.sources import SOURCES_KEY

    sources = config.stash[SOURCES_KEY]
    trial = sources.make_trial(sources.sources[0], sources.sources[0].combinations[0])
    seconds = config.hook.pytest_sweep_estimate_trial(trial=trial, config=config)
    # 2 epochs x 23 steps of LeNet-5 at batch 64 on 8x8 images: well under a second, never zero
    assert 0.0 < seconds < 30.0
    # without --sweep-estimate the built-in trainer does not time anything (collection never waits)
    config = sweep_pytester.pytester.parseconfigure(*sweep_pytester.plugin_args, "--range-config=sweep.rc")
    assert config.hook.pytest_sweep_estimate_trial(trial=trial, config=config) is None


def test_a_serial_run_revises_the_time_left_after_each_trial(sweep_pytester: SweepPytester) -> None:
    sweep_pytester.range_config(sweep_pytester.digits_config("CONFIG_LEARNING_RATE=0.001|0.003"))
    result = sweep_pytester.run_subprocess("--range-config=sweep.rc", "--sweep-output=out", "--sweep-epochs=1")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "sweep: config_001 passed *% in * s (main) | 1 of 2 done | best config_001 *% "
            "| about *-* * left (from the first finished trial)",
            "sweep: config_002 passed *% in * s (main) | 2 of 2 done | best *",
        ]
    )
