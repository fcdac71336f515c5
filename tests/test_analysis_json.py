"""``sweep_analysis.json`` holds what the text says, as strict JSON, for every shape of sweep."""

from __future__ import annotations

import json
from typing import Any

import pytest
from synthetic import grid_records

from pytest_sweep.plugins.reporters import analysis_doc, finite


def _strict(doc: dict[str, Any]) -> dict[str, Any]:
    strict: dict[str, Any] = json.loads(json.dumps(finite(doc), allow_nan=False))
    return strict


def _seeded(acc: Any, failed: set[int] | None = None) -> list[dict[str, Any]]:
    return grid_records({"CONFIG_LR": ["1", "2"], "CONFIG_SEED": ["1", "2", "3"]}, acc, failed=failed)


@pytest.mark.parametrize(
    ("name", "records"),
    [
        ("every trial failed", _seeded(lambda v: 50.0, failed=set(range(1, 7)))),
        ("one trial passed", _seeded(lambda v: 50.0, failed={1, 2, 3, 4, 5})),
        ("every seed the same number", _seeded(lambda v: 90.0)),
        ("one seed each passed", _seeded(lambda v: 90.0 + float(v["CONFIG_LR"]), failed={2, 3, 5, 6})),
        ("nothing swept", grid_records({}, lambda v: 70.0)),
        ("no seeds, all equal", grid_records({"CONFIG_LR": ["1", "2", "3"]}, lambda v: 99.44)),
        ("no records", []),
    ],
)
def test_every_shape_of_sweep_gives_strict_json(name: str, records: list[dict[str, Any]]) -> None:
    doc = _strict(analysis_doc(records, None))
    assert doc["schema_version"] == 1 and doc["metric"] == "test_acc"
    passed = [r for r in records if r["status"] == "passed"]
    if not passed:
        assert doc["best"] is None
    else:
        assert doc["best"]["config"] and isinstance(doc["best"]["ties"], list)
    assert doc["counts"]["passed"] == len(passed)


def test_identical_seeds_are_one_tie_and_no_noise() -> None:
    doc = _strict(analysis_doc(_seeded(lambda v: 90.0), None))
    # zero spread everywhere: the two configurations cannot be told apart, nothing is below zero noise
    assert [t["config"] for t in doc["best"]["ties"]] == ["config_004"] and doc["best"]["ties"][0]["p"] == 1.0
    assert doc["noise"]["seed_sd"] == 0.0


def test_only_one_seed_each_falls_back_to_the_resolution() -> None:
    doc = _strict(analysis_doc(_seeded(lambda v: 90.0 + float(v["CONFIG_LR"]), failed={2, 3, 5, 6}), None))
    assert doc["noise"]["kind"] == "resolution"
    assert doc["noise"]["note"] == "seeds swept, but no configuration passed with two of them"
    assert doc["best"]["basis"] == (
        "within 0.50 pp resolution, seeds swept, but no configuration passed with two of them"
    )


def test_finite_turns_what_json_cannot_hold_into_null() -> None:
    assert finite({"a": [1.0, float("nan")], "b": (float("inf"),), "c": "x"}) == {
        "a": [1.0, None],
        "b": [None],
        "c": "x",
    }
