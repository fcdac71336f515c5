"""``sweep_summary.csv`` rounds measured numbers to the precision they have; the JSON keeps every digit."""

from __future__ import annotations

import csv
import io

import pytest
from synthetic import grid_records

from pytest_sweep.plugins.csv_report import render_csv, rounded


@pytest.mark.parametrize(
    ("key", "value", "record", "expected"),
    [
        ("test_acc", 97.22222222222223, {"test_samples": 360}, 97.22),  # steps of 0.28 pp
        ("test_acc", 88.51234, {"test_samples": 10_000}, 88.512),  # steps of 0.01 pp
        ("best_acc", 40.0, {"test_samples": 10}, 40.0),  # steps of 10 pp
        ("test_acc", 88.51234, {}, 88.51),  # the trainer did not say: 2 decimals
        ("test_acc", 88.51234, {"test_samples": True}, 88.51),
        ("training_time", 12.345678, {}, 12.3),
        ("final_sparsity", 0.70001234, {}, 0.7),
        ("images_per_s", 1234.5678, {}, 1234.6),
        ("CONFIG_LEARNING_RATE", 0.00123456789, {}, 0.00123456789),  # a config value: as written
        ("epochs_run", 3, {}, 3),
        ("test_acc", None, {}, None),
    ],
)
def test_measured_numbers_are_rounded_to_their_precision(key: str, value: object, record: dict[str, object],
                                                         expected: object) -> None:  # fmt: skip
    assert rounded(key, value, record) == expected


def test_the_csv_holds_the_rounded_numbers() -> None:
    records = grid_records({"CONFIG_LEARNING_RATE": ["0.001", "0.003"]}, lambda v: 100 * 350 / 360)
    for r in records:
        r["test_samples"] = 360
        r["training_time"] = 12.345678
    rows = list(csv.DictReader(io.StringIO(render_csv(records))))
    assert [(row["test_acc"], row["training_time"], row["CONFIG_LEARNING_RATE"]) for row in rows] == [
        ("97.22", "12.3", "0.001"),
        ("97.22", "12.3", "0.003"),
    ]
    assert records[0]["test_acc"] == 100 * 350 / 360  # the records themselves are untouched
