"""``--sweep-resume`` of damaged sweep folders: every damage is a usage line or a trial that trains again, never a traceback.

The readers are called on real damaged files (unit tests, one damage per test id); a few damages
go through a whole resumed run (in process, a torch-free plugin trainer).
"""

from __future__ import annotations

import fnmatch
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from runtime_toy import by_name, only_sweep, summary, write_toy

from pytest_sweep.matrix.records import new_record
from pytest_sweep.matrix.resume import ResumeError, finished_trials, previous_records
from pytest_sweep.matrix.rungs import SqliteRungStore

from sweep_helpers import SweepPytester, assert_usage_error


def _record(**fields: Any) -> dict[str, Any]:
    rec = new_record("config_001", {"CONFIG_X": "1"}, {"CONFIG_X": "1"}, status="passed", test_acc=50.0)
    rec["trial_dir"] = "config_001_x-1"
    rec.update(fields)
    return rec


# -- sweep_summary.json: unreadable or not records -> no previous records (the folders still count) -----------
@pytest.mark.parametrize(
    "content",
    [b"", b"null", b"0", b'"x"', b"{}", b"[]", b"[1, 2]", b"[null]", b"[[]]", b'[{"trial_dir": 1}]', b'[{"a":',
     b"\xff\xfe\x00garbage", b"\xef\xbb\xbf[]", b"[" * 100_000, b'{"a": ' * 50_000, b"NaN", b"[NaN]"],
)  # fmt: skip
def test_an_unusable_summary_gives_no_previous_records(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "sweep_summary.json").write_bytes(content)
    assert previous_records(tmp_path) is None


def test_a_summary_that_is_a_folder_gives_no_previous_records(tmp_path: Path) -> None:
    (tmp_path / "sweep_summary.json").mkdir()
    assert previous_records(tmp_path) is None


# -- records with fields of the wrong type -> one usage line naming the record and the field -----------------
@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"config": [1]}, "'config' is a list, not an object"),
        ({"config": "x"}, "'config' is a string, not an object"),
        ({"config": 3}, "'config' is a number, not an object"),
        ({"config": {"CONFIG_X": {"a": 1}}}, "'config' holds an object under CONFIG_X, not a value"),
        ({"swept": 3}, "'swept' is a number, not a list of config keys"),
        ({"swept": "CONFIG_X"}, "'swept' is a string, not a list of config keys"),
        ({"swept": {"CONFIG_X": 1}}, "'swept' is an object, not a list of config keys"),
        ({"swept": [None]}, "'swept' is not a list of config keys"),
        ({"CONFIG_X": [1]}, "'CONFIG_X' is a list, not a value"),
        ({"error": ["x"]}, "'error' is a list, not text"),
        ({"config_file": "x" * 10_000, "config": [1]}, "'config' is a list, not an object"),
        ({"worker": {"id": 1}}, "'worker' is an object, not text"),
        ({"status": 5}, "'status' is a number, not text"),
        ({"rung": "one"}, "'rung' is a string, not a whole number"),
        ({"seed": 1.5}, "'seed' is a number, not a whole number"),
        ({"status": "failed", "test_acc": "abc"}, "'test_acc' is a string, not a finite number"),
        ({"status": "not_run", "training_time": [1]}, "'training_time' is a list, not a finite number"),
        ({"status": "skipped", "final_sparsity": 1e999}, "'final_sparsity' is a number, not a finite number"),
    ],
)
def test_a_record_of_the_wrong_shape_is_named(tmp_path: Path, fields: dict[str, Any], problem: str) -> None:
    (tmp_path / "sweep_summary.json").write_text(json.dumps([_record(), _record(**fields)]), encoding="utf-8")
    with pytest.raises(ResumeError) as info:
        previous_records(tmp_path)
    name = fields.get("config_file", "config_001")
    shown = name if len(name) < 60 else f"{name[:50]}*"
    expected = f"{tmp_path / 'sweep_summary.json'}: record 2 ({shown}): {problem}"
    assert fnmatch.fnmatchcase(str(info.value), expected.replace("[", "[[]")), str(info.value)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


def test_a_record_whose_name_is_not_text_is_named_by_its_place(tmp_path: Path) -> None:
    (tmp_path / "sweep_summary.json").write_text(json.dumps([_record(config_file=7)]), encoding="utf-8")
    with pytest.raises(ResumeError, match=r"record 1: 'config_file' is a number, not text$"):
        previous_records(tmp_path)


@pytest.mark.parametrize(
    "fields",
    [
        {"config": None},
        {"swept": None},
        {"status": "PASSED"},
        {"rank": "first"},
        {"interim": "yes"},
        {"status": "passed", "test_acc": "high"},  # a finished trial with a bad metric trains again
        {"status": "stopped", "test_acc": None},
        {"unknown_field": object.__name__},
    ],
)
def test_a_harmless_oddity_is_taken(tmp_path: Path, fields: dict[str, Any]) -> None:
    (tmp_path / "sweep_summary.json").write_text(json.dumps([_record(**fields)]), encoding="utf-8")
    previous_records(tmp_path)  # no error


@pytest.mark.parametrize(
    ("statuses", "kept"),
    [
        (["passed", "failed"], "passed"),
        (["failed", "passed"], "passed"),
        (["not_run", "failed"], "failed"),
        (["passed", "passed"], "passed"),
        (["stopped", "not_run", "failed"], "stopped"),
    ],
)
def test_a_duplicated_record_is_kept_once(tmp_path: Path, statuses: list[str], kept: str) -> None:
    records = [_record(status=s, test_acc=50.0 if s in ("passed", "stopped") else None) for s in statuses]
    (tmp_path / "sweep_summary.json").write_text(json.dumps(records), encoding="utf-8")
    found = previous_records(tmp_path)
    assert found is not None and [r["status"] for r in found] == [kept]


# -- training_metrics.json: damaged -> the trial trains again ----------------------------------------------
@pytest.mark.parametrize(
    "content",
    [b"", b"garbage", b"[]", b"null", b'{"status": "passed"}', b"[" * 100_000, b'{"a": ' * 50_000, b"\xff\xfe",
     b'{"status": ["passed"], "config_file": "config_001"}'],
)  # fmt: skip
def test_a_damaged_trial_result_is_not_reused(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "config_001").mkdir()
    (tmp_path / "config_001" / "training_metrics.json").write_bytes(content)
    assert finished_trials(tmp_path) == {}


def test_a_trial_result_that_is_a_folder_is_not_reused(tmp_path: Path) -> None:
    (tmp_path / "config_001" / "training_metrics.json").mkdir(parents=True)
    assert finished_trials(tmp_path) == {}


# -- rungs.sqlite ---------------------------------------------------------------------------------------------------
def _damage_store(path: Path, kind: str) -> None:
    if kind == "garbage":
        path.write_bytes(b"SQLite format 2\x00" + b"\x01" * 4000)
    elif kind == "header-only":
        path.write_bytes(b"SQLite format 3\x00" + b"\x00" * 84)
    elif kind == "folder":
        path.mkdir()
    elif kind == "symlink-loop":
        path.symlink_to(path)
    elif kind == "symlink-to-folder":
        path.symlink_to(path.parent)
    elif kind == "device":
        path.symlink_to("/dev/null")
    elif kind in ("results-columns", "finished-columns"):
        db = sqlite3.connect(path)
        table = "results" if kind == "results-columns" else "finished"
        db.execute(f"CREATE TABLE {table} (a, b)")
        db.commit()
        db.close()
    elif kind == "truncated":
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE results (kind TEXT NOT NULL, step INTEGER NOT NULL, trial TEXT NOT NULL, "
                   "value REAL NOT NULL, stop INTEGER NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (kind, step, trial))")  # fmt: skip
        db.executemany("INSERT INTO results VALUES ('rung', ?, 't', 1.0, 0, '')", [(i,) for i in range(3000)])
        db.commit()
        db.close()
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize(
    "kind",
    ["garbage", "header-only", "folder", "symlink-loop", "symlink-to-folder", "device", "results-columns",
     "finished-columns", "truncated"],
)  # fmt: skip
def test_a_damaged_rung_store_is_found_before_the_first_trial(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "rungs.sqlite"
    _damage_store(path, kind)
    store = SqliteRungStore(path)
    problem = store.problem()
    assert problem is not None and "\n" not in problem, problem
    store.close()


@pytest.mark.parametrize("kind", ["missing", "empty-file", "other-tables"])
def test_a_usable_rung_store_passes_the_check(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "rungs.sqlite"
    if kind == "empty-file":
        path.write_bytes(b"")
    elif kind == "other-tables":
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE notes (x)")
        db.commit()
        db.close()
    store = SqliteRungStore(path)
    assert store.problem() is None
    store.close()


# -- whole resumed runs --------------------------------------------------------------------------------------------------
def _finished(sp: SweepPytester) -> tuple[Path, Path]:
    rc = write_toy(sp.pytester, 'CONFIG_TOY_DO="ok"|"ok2"|"ok3"\n')
    sp.run(f"--range-config={rc}", "-k", "not config_003").assert_outcomes(passed=2, deselected=1)
    return rc, only_sweep(sp.path / "test_matrix_results")


@pytest.mark.parametrize(
    "damage",
    ["summary-garbage", "summary-folder", "metrics-garbage", "metrics-folder", "trial-folder-is-a-file", "config-txt-folder",
     "output-log-folder", "summary-deep"],
)  # fmt: skip
def test_a_damaged_sweep_folder_resumes_and_keeps_every_result_it_can(
    sweep_pytester: SweepPytester, damage: str
) -> None:
    sp = sweep_pytester
    rc, folder = _finished(sp)
    trial = next(folder.glob("config_001*"))
    summary_path = folder / "sweep_summary.json"
    if damage == "summary-garbage":
        summary_path.write_text("{{{", encoding="utf-8")
    elif damage == "summary-folder":
        summary_path.unlink()
        summary_path.mkdir()
    elif damage == "summary-deep":
        summary_path.write_text("[" * 100_000, encoding="utf-8")
    elif damage == "metrics-garbage":
        (trial / "training_metrics.json").write_text("garbage", encoding="utf-8")
    elif damage == "metrics-folder":
        (trial / "training_metrics.json").unlink()
        (trial / "training_metrics.json").mkdir()
    elif damage == "trial-folder-is-a-file":
        for child in trial.iterdir():
            child.unlink()
        trial.rmdir()
        trial.write_text("not a folder", encoding="utf-8")
    elif damage in ("config-txt-folder", "output-log-folder"):
        name = "config.txt" if damage == "config-txt-folder" else "output.log"
        (trial / "training_metrics.json").write_text("garbage", encoding="utf-8")  # so that it trains again
        (trial / name).unlink()
        (trial / name).mkdir()
    result = sp.run(f"--range-config={rc}", f"--sweep-resume={folder}")
    out = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in out and "Traceback" not in out, out
    if damage == "summary-folder":  # the summary cannot be written there: one red line, the results stay
        result.stdout.fnmatch_lines(["*could not write its files*"])
        return
    records = by_name(folder)
    assert records["config_002"]["status"] == "passed" and records["config_003"]["status"] == "passed"
    first = records["config_001"]
    if damage in ("trial-folder-is-a-file", "config-txt-folder", "output-log-folder", "metrics-folder"):
        assert first["status"] == "failed" and str(first["error"]).startswith("cannot write its folder ")
    else:
        assert first["status"] == "passed"


def test_resume_of_an_unreadable_folder_is_one_usage_line(sweep_pytester: SweepPytester) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads and writes any folder")
    sp = sweep_pytester
    rc, folder = _finished(sp)
    folder.chmod(0o500)
    try:
        assert_usage_error(
            sp.run(f"--range-config={rc}", f"--sweep-resume={folder}"), "ERROR: --sweep-output: cannot *"
        )
    finally:
        folder.chmod(0o700)


def test_resume_with_a_deep_summary_keeps_the_folders_results(sweep_pytester: SweepPytester) -> None:
    sp = sweep_pytester
    rc, folder = _finished(sp)
    (folder / "sweep_summary.json").write_text("[" * 100_000, encoding="utf-8")
    sp.run(f"--range-config={rc}", f"--sweep-resume={folder}").assert_outcomes(passed=3)
    assert [r["reused"] for r in summary(folder)] == [True, True, False]
