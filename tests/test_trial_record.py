"""``TrialRecord``: the one place that knows a record's schema (fields, checks, JSON, upgrade, wire key)."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest

from pytest_sweep.matrix import files
from pytest_sweep.matrix.records import (
    METRIC_KEYS,
    NUMERIC_METRICS,
    RESULT_METRICS,
    SCHEMA_VERSION,
    STATUSES,
    TEXT_METRICS,
    RecordError,
    TrialRecord,
)

#: A record of schema version 1 as an old sweep_summary.json held it: no ``rung``, ``stop_reason``,
#: ``paused``, ``interim``... and a status the schema no longer has.
VERSION_1 = {
    "schema_version": 1,
    "config_file": "config_004",
    "status": "error",
    "test_acc": 71.25,
    "config": {"CONFIG_LR": "0.01", "CONFIG_EPOCHS": "3"},
    "swept": ["CONFIG_LR"],
    "nodeid": "sweep.rc::config_004",
}


def full() -> TrialRecord:
    """A finished trial's record with a swept column and an occasional (Ray) field."""
    return TrialRecord.new(
        "config_002",
        {"CONFIG_LR": "0.003", "CONFIG_OPT": "adamw"},
        {"CONFIG_LR": "0.003"},
        status="passed",
        test_acc=97.5,
        best_acc=98.0,
        seed=7,
        torch_threads=2,
        trainer="lenet5/digits/adamw",
        node="10.0.0.2",
    )


# -- round trip ---------------------------------------------------------------------------------
def test_to_json_and_from_json_round_trip_through_a_file() -> None:
    record = full()
    data = record.to_json()
    assert list(data)[:3] == ["schema_version", "config_file", "status"]
    assert list(data)[-2:] == ["CONFIG_LR", "node"]  # the swept column, then the occasional field
    assert data["CONFIG_LR"] == 0.003 and data["config"] == {"CONFIG_LR": "0.003", "CONFIG_OPT": "adamw"}
    again = TrialRecord.from_json(json.loads(json.dumps(data)))
    assert again == record
    assert json.dumps(again.to_json()) == json.dumps(data)  # the same bytes, key order included
    assert record.extra == {"CONFIG_LR": 0.003, "node": "10.0.0.2"}


def test_to_json_gives_fresh_containers() -> None:
    record = full()
    first = record.to_json()
    first["config"]["CONFIG_X"] = "1"
    first["swept"].append("CONFIG_X")
    assert "CONFIG_X" not in record.to_json()["config"] and record.to_json()["swept"] == ["CONFIG_LR"]


def test_the_record_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        full().status = "failed"  # type: ignore[misc]


def test_the_wire_carries_the_last_record_of_a_report() -> None:
    data = full().to_json()
    key, value = TrialRecord.wire(data)
    assert key == TrialRecord.WIRE_KEY == "sweep_record"
    props: list[tuple[str, object]] = [("other", "x"), (key, json.dumps({"config_file": "older"})), (key, value)]
    assert TrialRecord.from_wire(props) == data
    assert TrialRecord.from_wire([("other", "x")]) is None


# -- normalize ----------------------------------------------------------------------------------
def test_normalize_upgrades_schema_version_1() -> None:
    out = TrialRecord.normalize(VERSION_1)
    assert out["schema_version"] == SCHEMA_VERSION == 2
    assert out["status"] == "failed"  # "error" is no status of this schema
    assert (out["rung"], out["stop_reason"], out["paused"], out["interim"]) == (None, None, False, False)
    assert out["CONFIG_LR"] == 0.01  # the swept column, typed as a new record types it
    assert "CONFIG_EPOCHS" not in out
    assert list(out) == [*TrialRecord().to_json(), "CONFIG_LR"]
    assert VERSION_1["schema_version"] == 1  # the input is left alone
    assert TrialRecord.from_json(VERSION_1).to_json() == out


# -- the field lists are read from the class ---------------------------------------------------
def test_the_field_lists_come_from_the_class() -> None:
    declared = [f.name for f in dataclasses.fields(TrialRecord) if f.name != "extra"]
    assert list(TrialRecord().to_json()) == declared
    assert set(METRIC_KEYS) <= set(declared) and set(RESULT_METRICS) <= set(NUMERIC_METRICS)
    assert METRIC_KEYS[: len(RESULT_METRICS)] == RESULT_METRICS
    assert set(NUMERIC_METRICS) | set(TEXT_METRICS) == set(METRIC_KEYS)
    assert TrialRecord().status in STATUSES
    assert all(TrialRecord.meaning(name) for name in declared)
    assert all(meaning for meaning in TrialRecord.OCCASIONAL.values())


def test_the_sweep_folder_names_are_spelled_once() -> None:
    assert files.SUMMARY_JSON == "sweep_summary.json"
    assert files.INTERIM_FILES == (files.SUMMARY_JSON, files.ANALYSIS_JSON, files.ANALYSIS_TXT, files.SUMMARY_CSV)


# -- the checks of a record read from a file ------------------------------------------------------
@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ([1], "is list, not an object"),
        ({"error": "\ud800"}, "error is not valid Unicode text (a lone surrogate); no file can hold it"),
        ({"test_acc": "high"}, 'test_acc is "high", not a number'),
        ({"best_acc": True}, "best_acc is true, not a number"),
        ({"seed": math.inf}, "seed is inf, not a finite number"),
        ({"rank": 10**400}, "rank is 1" + "0" * 36 + "..., not a finite number"),
        ({"status": 3}, "status is 3, not text"),
        ({"stop_reason": ["x"]}, 'stop_reason is ["x"], not text'),
        ({"config": []}, "config is [], not an object"),
        ({"config": {"CONFIG_X": {"a": 1}}}, 'config["CONFIG_X"] is {"a": 1}, not a value'),
        ({"swept": "CONFIG_X"}, 'swept is "CONFIG_X", not a list of keys'),
        ({"swept": ["CONFIG_X"], "CONFIG_X": [1]}, "CONFIG_X is [1], not a value"),
    ],
)
def test_each_problem_of_a_summary_record_is_named(record: Any, problem: str) -> None:
    assert TrialRecord.problem(record) == problem
    with pytest.raises(RecordError) as info:
        TrialRecord.from_json(record)
    assert str(info.value) == problem


def test_a_record_with_missing_fields_is_no_problem() -> None:
    assert TrialRecord.problem({}) is None
    assert TrialRecord.problem(full().to_json()) is None
    assert TrialRecord.problem({"config": None, "swept": None}) is None
    # a null config with a swept key: the column is filled in as empty text, not a crash
    assert TrialRecord.from_json({"config": None, "swept": ["CONFIG_X"]}).extra == {"CONFIG_X": ""}


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"config": [1]}, "'config' is a list, not an object"),
        ({"config": {"CONFIG_X": [1]}}, "'config' holds a list under CONFIG_X, not a value"),
        ({"swept": {"a": 1}}, "'swept' is an object, not a list of config keys"),
        ({"swept": [1]}, "'swept' is not a list of config keys"),
        ({"swept": ["CONFIG_X"], "CONFIG_X": {}}, "'CONFIG_X' is an object, not a value"),
        ({"error": 5}, "'error' is a number, not text"),
        ({"status": False}, "'status' is a boolean, not text"),
        ({"seed": 1.5}, "'seed' is a number, not a whole number"),
        ({"rung": True}, "'rung' is a boolean, not a whole number"),
        ({"status": "failed", "test_acc": "x"}, "'test_acc' is a string, not a finite number"),
        ({"status": "failed", "torch_threads": math.nan}, "'torch_threads' is a number, not a finite number"),
    ],
)
def test_each_problem_of_a_resumed_record_is_named(record: dict[str, Any], problem: str) -> None:
    assert TrialRecord.resume_problem(record) == problem


def test_a_finished_record_is_left_to_the_metrics_check() -> None:
    assert TrialRecord.resume_problem({"status": "passed", "test_acc": "x"}) is None
    assert TrialRecord.resume_problem(full().to_json()) is None


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({}, "test_acc is null, not a number"),
        ({"test_acc": "97"}, 'test_acc is "97", not a number'),
        ({"test_acc": math.nan}, "test_acc is NaN"),
        ({"test_acc": 90.0, "best_acc": -math.inf}, "best_acc is infinite"),
        ({"test_acc": 90.0, "training_time": 10**400}, "training_time is too large for a number"),
        ({"test_acc": 90.0, "test_samples": False}, "test_samples is false, not a number"),
        ({"test_acc": 90.0, "device": 0}, "device is not text"),
    ],
)
def test_each_problem_of_reused_metrics_is_named(doc: dict[str, Any], problem: str) -> None:
    assert TrialRecord.metrics_problem(doc) == problem


def test_valid_metrics_are_reusable() -> None:
    assert TrialRecord.metrics_problem({"test_acc": 90, "best_acc": None, "device": "cpu"}) is None


def test_no_module_but_files_spells_a_sweep_folder_name() -> None:
    """``"sweep_summary.json"`` (and every other name of :mod:`pytest_sweep.matrix.files`) is spelled
    as a string literal only there; messages and docstrings may still mention them."""
    import ast
    from pathlib import Path

    import pytest_sweep

    # the names that are not also plain words ("plots" is a label the end of a run shows, too)
    names = {v for k, v in vars(files).items() if k.isupper() and isinstance(v, str) and ("." in v or "_" in v)}
    assert files.SUMMARY_JSON in names and len(names) > 12
    root = Path(pytest_sweep.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "files.py" and path.parent.name == "matrix":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.relative_to(root)}:{node.lineno}: {node.value!r}")
    assert not found, found
