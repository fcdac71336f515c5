"""Trial records (the rows of sweep_summary.json) and the atomic file writes that hold them."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.records import (
    SCHEMA_VERSION,
    SweepResult,
    TrialRecord,
    clean_number,
    json_value,
    load_summary,
    new_record,
    ranked,
)

OLD_RECORD = {  # what an older sweep_summary.json held: no schema_version, fewer fields
    "config_file": "config_017",
    "status": "passed",
    "test_acc": 88.51,
    "final_sparsity": 0.7,
    "training_time": 1842.3,
    "config": {"CONFIG_ADAMWPRUNE_BETA1": "0.87", "CONFIG_PRUNING_WARMUP": "7800"},
    "swept": ["CONFIG_ADAMWPRUNE_BETA1", "CONFIG_PRUNING_WARMUP"],
}


def rec(name: str, status: str = "passed", acc: float | None = 90.0) -> dict[str, Any]:
    return new_record(name, {}, {}, status=status, test_acc=acc)


# -- normalize --------------------------------------------------------------------------------
def test_normalize_fills_every_field_an_older_record_lacks() -> None:
    fresh = new_record("config_001", {}, {})
    out = TrialRecord.normalize(OLD_RECORD)
    assert set(fresh) <= set(out)
    assert out["schema_version"] == SCHEMA_VERSION
    assert out["reused"] is False
    assert out["error"] is None and out["best_acc"] is None and out["trainer"] is None
    # what the old record had is kept
    assert (out["config_file"], out["test_acc"], out["training_time"]) == ("config_017", 88.51, 1842.3)
    # swept parameters become columns, typed like new records make them
    assert out["CONFIG_ADAMWPRUNE_BETA1"] == 0.87
    assert out["CONFIG_PRUNING_WARMUP"] == 7800 and type(out["CONFIG_PRUNING_WARMUP"]) is int
    assert "schema_version" not in OLD_RECORD  # the input is not modified


def test_normalize_keeps_existing_columns_and_refuses_unknown_status() -> None:
    out = TrialRecord.normalize({**OLD_RECORD, "CONFIG_PRUNING_WARMUP": 11700, "status": "crashed"})
    assert out["CONFIG_PRUNING_WARMUP"] == 11700
    assert out["status"] == "failed"


def test_normalize_does_not_share_mutable_defaults() -> None:
    first, second = TrialRecord.normalize({"config_file": "a"}), TrialRecord.normalize({"config_file": "b"})
    first["config"]["CONFIG_X"] = "1"
    first["swept"].append("CONFIG_X")
    assert second["config"] == {} and second["swept"] == []
    assert new_record("c", {}, {})["config"] == {}


def test_new_record_has_swept_columns_as_numbers() -> None:
    raw = {"CONFIG_BETA1": "0.87", "CONFIG_METHOD": "state", "CONFIG_WARMUP": "7800"}
    out = new_record("config_003", raw, {"CONFIG_BETA1": "0.87", "CONFIG_WARMUP": "7800"}, seed=5)
    assert out["config"] == raw and out["config"] is not raw
    assert out["swept"] == ["CONFIG_BETA1", "CONFIG_WARMUP"]
    assert (out["CONFIG_BETA1"], out["CONFIG_WARMUP"]) == (0.87, 7800)
    assert "CONFIG_METHOD" not in out  # fixed keys stay in "config" only
    assert (out["seed"], out["status"]) == (5, "not_run")


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("7800", 7800),
        ("0.87", 0.87),
        ("1e10", 1e10),
        ("-3", -3),
        ("state", "state"),
        ("y", "y"),
        ("nan", "nan"),
        ("inf", "inf"),
        ("", ""),
    ],
)
def test_json_value(raw: str, value: Any) -> None:
    out = json_value(raw)
    assert out == value and type(out) is type(value)


def test_load_summary_normalizes_and_refuses_a_non_list(tmp_path: Path) -> None:
    path = tmp_path / "sweep_summary.json"
    path.write_text(json.dumps([OLD_RECORD]), encoding="utf-8")
    (loaded,) = load_summary(path)
    assert loaded == TrialRecord.normalize(OLD_RECORD)
    path.write_text(json.dumps({"config_file": "config_001"}), encoding="utf-8")
    with pytest.raises(ValueError, match="holds dict, not a list of records"):
        load_summary(path)


# -- ranking ----------------------------------------------------------------------------------
def test_ranking_ties_go_to_the_lower_config_name() -> None:
    records = [
        rec("config_010", acc=91.0),
        rec("config_002", acc=91.0),
        rec("config_001", acc=90.5),
        rec("config_003", acc=91.0),
    ]
    assert [r["config_file"] for r in ranked(records)] == ["config_002", "config_003", "config_010", "config_001"]
    # the input order does not matter
    assert ranked(list(reversed(records))) == ranked(records)


def test_ranking_takes_only_passed_trials_with_an_accuracy() -> None:
    records = [
        rec("config_001", "failed", None),
        rec("config_002", "skipped", None),
        rec("config_003", "passed", None),  # a trainer that reported no accuracy
        rec("config_004", "not_run", None),
        rec("config_005", "passed", 10.0),
        rec("config_006", "failed", 99.0),  # failed after an epoch: its accuracy does not rank
    ]
    assert [r["config_file"] for r in ranked(records)] == ["config_005"]


def test_sweep_result_counts_and_best(tmp_path: Path) -> None:
    result = SweepResult(
        tmp_path, [rec("config_001", acc=80.0), rec("config_002", "failed", None), rec("config_003", acc=85.0)]
    )
    assert (result.count("passed"), result.count("failed"), result.count("skipped")) == (2, 1, 0)
    assert result.best is not None and result.best["config_file"] == "config_003"
    assert SweepResult(tmp_path, [rec("config_001", "failed", None)]).best is None


# -- clean_number -----------------------------------------------------------------------------
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, float("nan")])
def test_clean_number_turns_non_finite_into_none(value: float) -> None:
    assert clean_number(value) is None


@pytest.mark.parametrize("value", [0.0, -1.5, 97.5, 3, 0, None, "x", True])
def test_clean_number_keeps_everything_else(value: Any) -> None:
    assert clean_number(value) is value


def test_cleaned_metrics_are_valid_json(tmp_path: Path) -> None:
    metrics = {"train_loss": math.nan, "test_acc": 12.5, "lr": math.inf}
    cleaned = {k: clean_number(v) for k, v in metrics.items()}
    path = storage.write_json_atomic(tmp_path / "m.json", cleaned)
    assert json.loads(path.read_text(encoding="utf-8")) == {"train_loss": None, "test_acc": 12.5, "lr": None}
    with pytest.raises(ValueError):  # uncleaned, it is refused rather than written as NaN
        storage.write_json_atomic(tmp_path / "bad.json", metrics)
    assert not (tmp_path / "bad.json").exists()


# -- atomic writes ----------------------------------------------------------------------------
def test_write_json_atomic_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "sweep_summary.json"
    for n in range(3):
        storage.write_json_atomic(target, [{"config_file": f"config_{n:03d}"}])
    assert [p.name for p in target.parent.iterdir()] == ["sweep_summary.json"]
    assert json.loads(target.read_text(encoding="utf-8")) == [{"config_file": "config_002"}]
    assert target.read_text(encoding="utf-8").endswith("]\n")


def test_write_json_atomic_replaces_the_file_rather_than_rewriting_it(tmp_path: Path) -> None:
    target = tmp_path / "sweep_summary.json"
    storage.write_json_atomic(target, ["old"])
    with open(target, encoding="utf-8") as reader:  # a reader that opened the old file...
        old_inode = os.fstat(reader.fileno()).st_ino
        storage.write_json_atomic(target, ["new"])
        assert json.load(reader) == ["old"]  # ...still reads the whole old file
    assert os.stat(target).st_ino != old_inode  # a new file took the name (rename)
    assert json.loads(target.read_text(encoding="utf-8")) == ["new"]


def test_a_failed_write_keeps_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "sweep_summary.json"
    storage.write_json_atomic(target, ["old"])
    with pytest.raises(TypeError):
        storage.write_json_atomic(target, [object()])  # not JSON
    assert json.loads(target.read_text(encoding="utf-8")) == ["old"]
    assert [p.name for p in tmp_path.iterdir()] == ["sweep_summary.json"]


def test_an_interrupted_write_keeps_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "sweep_analysis.txt"
    storage.write_text_atomic(target, "old\n")

    def interrupted_replace(src: str, dst: str) -> None:
        assert Path(src).read_text(encoding="utf-8") == "new\n"  # the temp file was complete
        assert Path(src).parent == target.parent  # same folder, so the rename is atomic
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted_replace)
    with pytest.raises(KeyboardInterrupt):
        storage.write_text_atomic(target, "new\n")
    monkeypatch.undo()
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["sweep_analysis.txt"]


def test_bytes_are_written_atomically_too(tmp_path: Path) -> None:
    """Trial files shipped back from a Ray node: any bytes, the same guarantees and mode as text."""
    target = tmp_path / "trial" / "model.pt"
    data = bytes(range(256)) * 3
    assert storage.write_bytes_atomic(target, data) == target  # its folder is made
    assert target.read_bytes() == data
    assert target.stat().st_mode & 0o777 == storage.FILE_MODE
    storage.write_bytes_atomic(target, b"")
    assert target.read_bytes() == b""
    assert [p.name for p in target.parent.iterdir()] == ["model.pt"]


def test_new_sweep_dir_names_by_time_and_never_reuses_a_folder(tmp_path: Path) -> None:
    now = time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1))
    first = storage.new_sweep_dir(tmp_path, now)
    assert first == tmp_path / "sweep_20260304_050607"
    assert not first.exists()  # named, not created
    first.mkdir()
    second = storage.new_sweep_dir(tmp_path, now)
    assert second.name == "sweep_20260304_050607_2"
    second.mkdir()
    assert storage.new_sweep_dir(tmp_path, now).name == "sweep_20260304_050607_3"
    (tmp_path / "sweep_notes.txt").write_text("a file, not a sweep", encoding="utf-8")
    assert storage.sweep_dirs(tmp_path) == [first, second]
    assert storage.sweep_dirs(tmp_path / "missing") == []
