"""No record is ever lost, corrupted or misreported (issue 8, part 1).

Each test reproduces a fault found in the landed product with its real inputs (files, folders,
flags) and a trivial trainer of the test's own (a plugin, as a user would write one), so the
sweeps are real but take milliseconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pytest_sweep.matrix import storage

from sweep_helpers import HERMETIC_ENV, PLUGIN_ARGS, SweepPytester, assert_usage_error

TOY = """\
import pytest
from pytest_sweep.matrix import Symbol


@pytest.hookimpl
def pytest_sweep_declare_symbols():
    return [
        Symbol("CONFIG_TOY_X", "float", 1.0, "A number the toy trainer reports back"),
        Symbol("CONFIG_TOY_RESULT", "str", "ok", "ok, nan or inf: what test_acc the trainer returns"),
    ]


class Toy:
    def run(self, trial, ctx):
        ctx.log(f"toy x={trial['CONFIG_TOY_X']}")
        kind = trial["CONFIG_TOY_RESULT"]
        acc = {"ok": 50.0 + trial["CONFIG_TOY_X"], "nan": float("nan"), "inf": float("inf")}[kind]
        return {"test_acc": acc, "epochs_run": 1}


@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    return Toy()
"""

GRID = "CONFIG_TOY_X=1|2|3|4\n"


@pytest.fixture
def toy(sweep_pytester: SweepPytester) -> SweepPytester:
    sweep_pytester.pytester.makeconftest(TOY)
    sweep_pytester.pytester.makeini("[pytest]\n")  # the rootdir is the test's folder
    return sweep_pytester


def _summary(folder: Path) -> list[dict[str, object]]:
    data = json.loads((folder / "sweep_summary.json").read_text(encoding="utf-8"))
    assert isinstance(data, list)
    return data


def _only_sweep(root: Path) -> Path:
    (found,) = storage.sweep_dirs(root)
    return found


# -- concurrent sweeps ------------------------------------------------------------------------
def test_sweeps_started_in_the_same_second_get_their_own_folders(tmp_path: Path) -> None:
    got: list[Path] = []
    threads = [threading.Thread(target=lambda: got.append(storage.claim_sweep_dir(tmp_path, now=0))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 3 and all(p.is_dir() for p in got)
    stamp = min(p.name for p in got)[len("sweep_") :]
    assert sorted(p.name for p in got) == [f"sweep_{stamp}", f"sweep_{stamp}_2", f"sweep_{stamp}_3"]


def test_three_sweeps_at_once_into_one_root_keep_three_summaries(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(TOY, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (tmp_path / "sweep.rc").write_text(GRID, encoding="utf-8")
    env = {**os.environ, **HERMETIC_ENV}
    cmd = [sys.executable, "-m", "pytest", *PLUGIN_ARGS, "--range-config=sweep.rc", "--sweep-output=out", "-q"]
    procs = [
        subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(3)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out.decode()
    folders = storage.sweep_dirs(tmp_path / "out")
    assert len(folders) == 3
    assert all(len(_summary(f)) == 4 for f in folders)


# -- node ids ----------------------------------------------------------------------------------
def test_range_files_outside_the_rootdir_keep_their_own_ids_and_records(toy: SweepPytester) -> None:
    project = toy.path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (project / "conftest.py").write_text(TOY, encoding="utf-8")
    for name in ("a", "b"):
        (toy.path / name).mkdir()
        (toy.path / name / "sweep.rc").write_text("CONFIG_TOY_X=1|2\n", encoding="utf-8")
    os.chdir(project)
    result = toy.run("--range-config=../a/sweep.rc", "--range-config=../b/sweep.rc", "--sweep-output=out",
                     f"--junitxml={project / 'junit.xml'}")  # fmt: skip
    result.assert_outcomes(passed=4)
    records = _summary(_only_sweep(project / "out"))
    assert sorted(str(r["nodeid"]) for r in records) == [
        "../a/sweep.rc::config_001[TOY_X=1]",
        "../a/sweep.rc::config_002[TOY_X=2]",
        "../b/sweep.rc::config_001[TOY_X=1]",
        "../b/sweep.rc::config_002[TOY_X=2]",
    ]
    assert 'classname=""' not in (project / "junit.xml").read_text(encoding="utf-8")


# -- resume --------------------------------------------------------------------------------------
def test_a_resume_of_one_trial_keeps_every_finished_record(toy: SweepPytester) -> None:
    toy.range_config(GRID)
    toy.run("--range-config=sweep.rc", "--sweep-output=out").assert_outcomes(passed=4)
    result = toy.run("--range-config=sweep.rc", "--sweep-output=out", "--sweep-resume", "-k", "config_002")
    result.assert_outcomes(passed=1)
    records = _summary(_only_sweep(toy.path / "out"))
    assert [(r["config_file"], r["status"]) for r in records] == [(f"config_00{i}", "passed") for i in (1, 2, 3, 4)]


def test_a_resume_with_another_grid_is_a_usage_error_unless_forced(toy: SweepPytester) -> None:
    toy.range_config(GRID)
    toy.run("--range-config=sweep.rc", "--sweep-output=out").assert_outcomes(passed=4)
    toy.range_config("CONFIG_TOY_X=7|8\n", name="other.rc")
    result = toy.run("--range-config=other.rc", "--sweep-output=out", "--sweep-resume")
    assert_usage_error(
        result, "ERROR: --sweep-resume=*: 4 of its 4 trials are not in this run's grid*--sweep-resume-force*"
    )
    forced = toy.run("--range-config=other.rc", "--sweep-output=out", "--sweep-resume", "--sweep-resume-force")
    forced.assert_outcomes(passed=2)
    assert len(_summary(_only_sweep(toy.path / "out"))) == 6  # the old records stay


@pytest.mark.parametrize("bad", ["NaN", '"abc"', "[1]", "1" + "0" * 400, "true"])
def test_an_invalid_reused_result_trains_again_with_a_line_saying_why(toy: SweepPytester, bad: str) -> None:
    toy.range_config(GRID)
    toy.run("--range-config=sweep.rc", "--sweep-output=out").assert_outcomes(passed=4)
    sweep = _only_sweep(toy.path / "out")
    metrics = next(sweep.glob("config_003*/training_metrics.json"))
    text = metrics.read_text(encoding="utf-8")
    metrics.write_text(text.replace('"test_acc": 53.0', f'"test_acc": {bad}'), encoding="utf-8")
    result = toy.run("--range-config=sweep.rc", "--sweep-output=out", "--sweep-resume")
    assert result.ret == 0
    records = {r["config_file"]: r for r in _summary(sweep)}
    assert records["config_003"]["reused"] is False and records["config_003"]["test_acc"] == 53.0
    assert all(records[f"config_00{i}"]["reused"] for i in (1, 2, 4))
    log = (metrics.parent / "output.log").read_text(encoding="utf-8")
    assert "not reused: its training_metrics.json is invalid (test_acc is" in log


# -- history -------------------------------------------------------------------------------------
@pytest.mark.parametrize("content", ["null", "5", '[{"status": "passed", "trainer": [1], "training_time": 2}]', "{"])
def test_unreadable_history_never_breaks_a_run(toy: SweepPytester, content: str) -> None:
    old = toy.path / "out" / "sweep_20200101_000000"
    old.mkdir(parents=True)
    (old / "sweep_summary.json").write_text(content, encoding="utf-8")
    toy.range_config(GRID)
    result = toy.run("--range-config=sweep.rc", "--sweep-output=out", "--collect-only", "-q")
    assert result.ret == 0, result.stdout.str()
    assert "INTERNALERROR" not in result.stdout.str()
    if content in ("null", "5", "{"):
        result.stdout.fnmatch_lines([f"sweep: history left out of the estimate, unreadable: {old}/sweep_summary.json*"])


def test_newest_sweep_is_by_the_time_in_the_name_then_the_counter(tmp_path: Path) -> None:
    for name in ("sweep_20260101_000000_2", "sweep_20260101_000000_10", "sweep_zzz", "sweep_20251231_235959"):
        (tmp_path / name).mkdir()
    assert [p.name for p in storage.sweep_dirs(tmp_path)] == [
        "sweep_20251231_235959",
        "sweep_20260101_000000_2",
        "sweep_20260101_000000_10",
    ]


# -- the output folder -------------------------------------------------------------------------
def test_an_output_folder_under_a_regular_file_is_a_usage_error(toy: SweepPytester) -> None:
    toy.range_config(GRID)
    (toy.path / "afile").write_text("x", encoding="utf-8")
    result = toy.run("--range-config=sweep.rc", "--sweep-output=afile/out")
    assert_usage_error(result, "ERROR: --sweep-output: cannot write the sweep folder under */afile/out (*)*")


def test_result_files_have_the_mode_of_the_trial_log(toy: SweepPytester) -> None:
    toy.range_config(GRID)
    toy.run("--range-config=sweep.rc", "--sweep-output=out").assert_outcomes(passed=4)
    sweep = _only_sweep(toy.path / "out")
    trial = next(sweep.glob("config_001*"))
    log_mode = (trial / "output.log").stat().st_mode & 0o777
    for path in (trial / "training_metrics.json", trial / "config.txt", sweep / "sweep_summary.json"):
        assert path.stat().st_mode & 0o777 == log_mode == storage.FILE_MODE


# -- results -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "error"), [("nan", "test_acc is NaN"), ("inf", "test_acc is infinite")])
def test_a_non_finite_result_fails_its_trial(toy: SweepPytester, kind: str, error: str) -> None:
    toy.range_config(f'CONFIG_TOY_X=1|2\nCONFIG_TOY_RESULT="{kind}"\n')
    result = toy.run("--range-config=sweep.rc", "--sweep-output=out")
    result.assert_outcomes(failed=2)
    records = _summary(_only_sweep(toy.path / "out"))
    assert [(r["status"], r["error"]) for r in records] == [("failed", error), ("failed", error)]


def test_range_config_and_test_paths_are_collected_together(toy: SweepPytester) -> None:
    toy.range_config(GRID)
    toy.pytester.makepyfile(test_mine="def test_mine():\n    pass\n")
    result = toy.run("test_mine.py", "--range-config=sweep.rc", "--sweep-output=out")
    result.assert_outcomes(passed=5)


# -- smaller usage errors -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--sweep-trial-timeout=inf"], "*--sweep-trial-timeout*inf is not a usable limit*"),
        (["--sweep-trial-timeout=1e20"], "*--sweep-trial-timeout*1e20 is not a usable limit*"),
        (["--sweep-resume="], "ERROR: --sweep-resume=: empty folder name*"),
        (["--sweep-generate="], "*--sweep-generate*empty folder name*"),
    ],
)
def test_bad_flag_values(toy: SweepPytester, args: list[str], expected: str) -> None:
    toy.range_config(GRID)
    result = toy.run("--range-config=sweep.rc", "--sweep-output=out", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines([expected])
    assert not (toy.path / "out").exists() or not storage.sweep_dirs(toy.path / "out")


def test_a_folder_that_is_not_a_sweep_cannot_be_resumed(toy: SweepPytester) -> None:
    toy.range_config(GRID)
    (toy.path / "notes").mkdir()
    result = toy.run("--range-config=sweep.rc", "--sweep-output=out", "--sweep-resume=notes")
    assert_usage_error(result, "ERROR: --sweep-resume=notes: not a sweep folder*")


@pytest.mark.parametrize("flag", ["--range-config", "--config-dir", "--sweep-resume"])
def test_a_symlink_loop_is_a_usage_error(toy: SweepPytester, flag: str) -> None:
    toy.range_config(GRID)
    os.symlink("loop", toy.path / "loop")
    args = ["--range-config=sweep.rc", f"{flag}=loop"] if flag != "--range-config" else ["--range-config=loop"]
    result = toy.run(*args, "--sweep-output=out")
    assert_usage_error(result, f"ERROR: {flag}=loop: cannot *")


@pytest.mark.parametrize("name", ["odd[1].rc", "a::b.rc"])
def test_a_range_file_name_pytest_cannot_hold_is_a_usage_error(toy: SweepPytester, name: str) -> None:
    toy.range_config(GRID, name=name)
    result = toy.run(f"--range-config={name}", "--sweep-output=out")
    assert_usage_error(result, "ERROR: --range-config=*: the name contains *; rename the file or folder")


def test_a_fifo_as_range_file_is_a_usage_error_not_a_hang(toy: SweepPytester) -> None:
    os.mkfifo(toy.path / "fifo.rc")
    result = toy.run("--range-config=fifo.rc", "--sweep-output=out")
    assert_usage_error(result, "ERROR: --range-config=fifo.rc: not a regular file*")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("CONFIG_TOY_X=1e-999999999", "*CONFIG_TOY_X=1e-999999999 is too small for a float (it would be 0.0)*"),
        ("CONFIG_TOY_X=0.001|1e-3", "*duplicate choice '1e-3' at positions 1 and 2; list each value once"),
        ("CONFIG_OPTIMIZER=" + "x" * 100_000, "*CONFIG_OPTIMIZER=xxxx*...(100017 characters) is not one of*"),
        ("CONFIG_OPTIMIZER=ad\x00am", "*CONFIG_OPTIMIZER=ad\\x00am is not one of*"),
    ],
    ids=["underflow", "equal-numbers", "huge-value", "nul"],
)
def test_value_mistakes(toy: SweepPytester, line: str, expected: str) -> None:
    toy.range_config(line + "\n")
    result = toy.run("--range-config=sweep.rc", "--sweep-output=out")
    assert_usage_error(result, expected)
    text = result.stderr.str()
    assert "\x00" not in text and max(len(x) for x in text.splitlines()) < 600
