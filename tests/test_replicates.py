"""Replicates: trials that differ only in CONFIG_SEED form one configuration; paired tests over shared seeds."""

from __future__ import annotations

import math
from typing import Any

import pytest
from synthetic import grid_records

from pytest_sweep.plugins.noise import Contender, best_set, model
from pytest_sweep.plugins.replicates import configurations, pooled_sd, ranked_configurations, seed_swept


def _sweep(best: list[float], second: list[float], failed: set[int] | None = None) -> list[dict[str, Any]]:
    """Two configurations (optimizer adamw / sgd) over seeds 1, 2, 3 (config_001..003 adamw)."""
    accs = {("adamw", str(i + 1)): a for i, a in enumerate(best)} | {
        ("sgd", str(i + 1)): a for i, a in enumerate(second)
    }
    return grid_records(
        {"CONFIG_OPTIMIZER": ["adamw", "sgd"], "CONFIG_SEED": ["1", "2", "3"]},
        lambda v: accs[(v["CONFIG_OPTIMIZER"], v["CONFIG_SEED"])],
        fixed={"CONFIG_DATASET": "digits"},
        failed=failed,
    )


def test_trials_that_differ_only_in_the_seed_are_one_configuration() -> None:
    records = _sweep([90.0, 91.0, 92.0], [88.0, 89.0, 93.0])
    assert seed_swept(records)
    configs = configurations(records)
    assert [c.names for c in configs] == [
        ["config_001", "config_002", "config_003"],
        ["config_004", "config_005", "config_006"],
    ]
    best, second = ranked_configurations(configs)
    assert (best.label, best.n, best.mean, best.sd) == ("config_001", 3, 91.0, 1.0)
    assert second.mean == 90.0 and second.sd == pytest.approx(math.sqrt(7))
    assert pooled_sd(configs) == pytest.approx(math.sqrt((2 + 14) / 4))
    # the same config from another range file is another configuration
    other = [dict(r, source="/w/other.rc") for r in records[:3]]
    assert len(configurations(records + other)) == 3
    assert not seed_swept([dict(r, swept=["CONFIG_OPTIMIZER"]) for r in records])


def _second(records: list[dict[str, Any]]) -> Contender:
    bests = best_set(records, model(records))
    assert bests.best is not None and bests.best.label == "config_001"
    (second,) = bests.contenders
    return second


def test_a_consistent_lead_within_the_seed_noise_is_a_tie() -> None:
    # every seed favours the best (+1, +2, +3) but the spread is large: t = 2 / (1 / sqrt 3) = 3.46, 2 df: p = 0.074
    second = _second(_sweep([91.0, 93.0, 95.0], [90.0, 91.0, 92.0]))
    assert second.tied and second.p == pytest.approx(0.0742, abs=1e-4) and second.p_adjusted == second.p
    assert second.why == "2.00 pp behind over 3 shared seeds: p = 0.074: not distinguishable"


def test_a_lead_beyond_the_seed_noise_is_told_apart() -> None:
    second = _second(_sweep([92.0, 93.1, 93.9], [90.0, 91.0, 92.0]))  # differences 2.0, 2.1, 1.9: t = 34.6
    assert not second.tied and second.p is not None and second.p < 0.001


def test_only_shared_seeds_are_paired() -> None:
    # seed 2 of the best configuration failed: pairs over seeds 1 and 3 only (differences 2.0, 2.5; 1 df)
    second = _second(_sweep([92.0, 0.0, 94.0], [90.0, 91.0, 91.5], failed={2}))
    assert second.shared == 2 and second.tied
    # t = 2.25 / (0.354 / sqrt 2) = 9.0 with 1 df: p = 0.070, not below 0.05
    assert second.p == pytest.approx(0.0704, abs=1e-3)
    one = _second(_sweep([92.0, 0.0, 0.0], [90.0, 91.0, 92.0], failed={2, 3}))
    assert one.tied and one.p is None and "1 shared seed with the best: cannot be told apart" in one.why
    # the same difference on every seed: no spread at all, the lead is real
    same = _second(_sweep([91.0, 92.0, 93.0], [90.0, 91.0, 92.0]))
    assert (same.p, same.tied) == (0.0, False)


def test_counted_accuracies_are_known_only_to_one_test_image() -> None:
    """On 360 test images, two seeds that each favour the best by exactly one image are no proof."""
    step = 100 / 360
    records = _sweep([90.0 + step, 91.0 + step, 0.0], [90.0, 91.0, 0.0])
    for r in records:
        r["test_samples"] = 360
    records = [r for r in records if r["config"]["CONFIG_SEED"] != "3"]
    second = _second(records)
    assert second.tied and second.p is not None and second.p > 0.05
