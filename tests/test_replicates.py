"""Replicates: trials that differ only in CONFIG_SEED form one configuration; the paired comparison."""

from __future__ import annotations

import math

import pytest
from synthetic import grid_records

from pytest_sweep.plugins.replicates import (
    T95,
    configurations,
    describe_paired,
    paired,
    pooled_sd,
    ranked_configurations,
    seed_swept,
    t95,
)


def _sweep(best: list[float], second: list[float], failed: set[int] | None = None) -> list[dict[str, object]]:
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
    assert (second.mean, second.sd) == (90.0, pytest.approx(math.sqrt(7)))
    assert pooled_sd(configs) == pytest.approx(math.sqrt((2 + 14) / 4))
    # the same config from another range file is another configuration
    other = [dict(r, source="/w/other.rc") for r in records[:3]]
    assert len(configurations(records + other)) == 3
    assert not seed_swept([dict(r, swept=["CONFIG_OPTIMIZER"]) for r in records])


def test_a_consistent_lead_within_the_seed_noise() -> None:
    # every seed favours the best (+1, +2, +3) but the spread is large: t = 2 / (1 / sqrt 3) = 3.46 < 4.30
    best, second = ranked_configurations(configurations(_sweep([91.0, 93.0, 95.0], [90.0, 91.0, 92.0])))
    result = paired(best, second)
    assert result.differences == (1.0, 2.0, 3.0) and (result.mean, result.sd) == (2.0, 1.0)
    assert result.t == pytest.approx(2 * math.sqrt(3)) and result.critical == 4.303
    assert result.exceeds_noise is False
    lines = describe_paired(best, second, result)
    assert (
        lines[-1] == "t = 3.46 with 2 degrees of freedom; 95% needs more than 4.30: the lead is within the seed noise."
    )


def test_a_lead_that_exceeds_the_seed_noise() -> None:
    best, second = ranked_configurations(configurations(_sweep([92.0, 93.1, 93.9], [90.0, 91.0, 92.0])))
    result = paired(best, second)  # differences 2.0, 2.1, 1.9: t = 2 / (0.1 / sqrt 3) = 34.6
    assert result.exceeds_noise is True and result.t == pytest.approx(34.64, abs=0.01)
    assert (
        describe_paired(best, second, result)[0] == "config_001 leads config_004 by 2.00 pp (means over their seeds)."
    )


def test_only_shared_seeds_are_paired() -> None:
    # seed 2 of the best configuration failed: pairs over seeds 1 and 3 only
    best, second = ranked_configurations(configurations(_sweep([92.0, 0.0, 94.0], [90.0, 91.0, 91.5], failed={2})))
    assert best.n == 2 and best.mean == 93.0
    result = paired(best, second)
    assert result.seeds == ("1", "3") and result.differences == (2.0, 2.5)
    assert result.critical == 12.706  # 1 degree of freedom
    one = paired(*ranked_configurations(configurations(_sweep([92.0, 0.0, 0.0], [90.0, 91.0, 92.0], failed={2, 3}))))
    assert one.exceeds_noise is None  # one shared seed: cannot tell
    # the same difference on every seed: no spread, the lead is real
    same = paired(*ranked_configurations(configurations(_sweep([91.0, 92.0, 93.0], [90.0, 91.0, 92.0]))))
    assert (same.sd, same.exceeds_noise) == (0.0, True)


def test_t_quantiles_are_conservative_between_table_entries() -> None:
    assert t95(1) == 12.706 and t95(30) == 2.042
    assert t95(35) == T95[30]  # the next lower entry: a larger quantile, never a smaller one
    assert t95(1000) == 1.980
