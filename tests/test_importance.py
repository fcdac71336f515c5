"""Parameter importance on synthetic grids whose answer is known exactly."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import pytest
from synthetic import grid_records

from pytest_sweep.matrix.records import new_record
from pytest_sweep.plugins.importance import DEFAULT_THRESHOLD, compute, render_section

if TYPE_CHECKING:
    from sweep_helpers import SweepPytester


ALPHA = {"0.85": 0.0, "0.87": 3.0, "0.89": 6.0}  # deviations -3, 0, +3: variance 6
BETA = {"y": -1.0, "n": 1.0}  # deviations -1, +1: variance 1


def additive(values: dict[str, str]) -> float:
    """90 + alpha(BETA1) + beta(AMSGRAD); the optimizer has no effect at all."""
    return 90.0 + ALPHA[values["CONFIG_ADAMWPRUNE_BETA1"]] + BETA[values["CONFIG_ADAMWPRUNE_AMSGRAD"]]


AXES = {
    "CONFIG_ADAMWPRUNE_BETA1": ["0.85", "0.87", "0.89"],  # numbers
    "CONFIG_ADAMWPRUNE_AMSGRAD": ["y", "n"],  # y/n
    "CONFIG_OPTIMIZER": ["sgd", "adamw"],  # strings
}


def test_full_additive_grid_gives_the_exact_main_effect_shares() -> None:
    imp = compute(grid_records(AXES, additive))
    assert imp.complete_grid and (imp.combinations, imp.combinations_passed, imp.passed) == (12, 12, 12)
    assert imp.variance == pytest.approx(7.0, abs=1e-12)  # 6 + 1, nothing else
    by_name = {p.name: p for p in imp.parameters}
    assert [p.name for p in imp.parameters] == [
        "CONFIG_ADAMWPRUNE_BETA1",
        "CONFIG_ADAMWPRUNE_AMSGRAD",
        "CONFIG_OPTIMIZER",
    ]  # ranked by share
    assert by_name["CONFIG_ADAMWPRUNE_BETA1"].share == pytest.approx(6 / 7, abs=1e-12)
    assert by_name["CONFIG_ADAMWPRUNE_AMSGRAD"].share == pytest.approx(1 / 7, abs=1e-12)
    assert by_name["CONFIG_OPTIMIZER"].share == pytest.approx(0.0, abs=1e-12)
    assert imp.interactions == pytest.approx(0.0, abs=1e-12)
    beta1 = by_name["CONFIG_ADAMWPRUNE_BETA1"]
    assert [v.value for v in beta1.values] == ["0.85", "0.87", "0.89"]  # numeric order
    low = beta1.values[0]  # 89 and 91 for AMSGRAD, twice (optimizer)
    assert (low.passed, low.mean, low.best, low.worst) == (4, 90.0, 91.0, 89.0)
    assert low.sd == pytest.approx(math.sqrt(4 / 3), abs=1e-12)
    assert beta1.effect == pytest.approx(6.0) and beta1.best_value == "0.89" and beta1.important is True
    amsgrad = by_name["CONFIG_ADAMWPRUNE_AMSGRAD"]
    assert [v.value for v in amsgrad.values] == ["y", "n"]  # first-seen order for y/n
    assert amsgrad.effect == pytest.approx(2.0) and amsgrad.best_value == "n"
    optimizer = by_name["CONFIG_OPTIMIZER"]
    assert [v.value for v in optimizer.values] == ["sgd", "adamw"]
    # no effect at all: below the default noise of 0.5 pp, fix it (equal means: the first value)
    assert optimizer.effect == 0.0 and optimizer.important is False and optimizer.best_value == "sgd"
    assert optimizer.tied and not beta1.tied
    assert "  CONFIG_OPTIMIZER=sgd  (value means span 0.00 pp; equal means: the first value)\n" in render_section(imp)
    assert (imp.noise, imp.noise_source) == (DEFAULT_THRESHOLD, "resolution")


def test_pure_interaction_has_no_main_effect() -> None:
    axes = {"CONFIG_ADAMWPRUNE_AMSGRAD": ["y", "n"], "CONFIG_OPTIMIZER": ["sgd", "adamw"]}
    xor = {("y", "sgd"): 90.0, ("y", "adamw"): 92.0, ("n", "sgd"): 92.0, ("n", "adamw"): 90.0}
    imp = compute(grid_records(axes, lambda v: xor[(v["CONFIG_ADAMWPRUNE_AMSGRAD"], v["CONFIG_OPTIMIZER"])]))
    assert imp.complete_grid and imp.variance == pytest.approx(1.0)
    assert [p.share for p in imp.parameters] == [0.0, 0.0]
    assert imp.interactions == pytest.approx(1.0)
    assert "Interactions: 100.0% of the variance" in render_section(imp)


def test_incomplete_grid_is_computed_on_what_is_there_and_says_so() -> None:
    axes = {"CONFIG_ADAMWPRUNE_AMSGRAD": ["y", "n"], "CONFIG_OPTIMIZER": ["sgd", "adamw"]}
    table = {("y", "sgd"): 90.0, ("y", "adamw"): 92.0, ("n", "sgd"): 94.0, ("n", "adamw"): 0.0}
    records = grid_records(axes, lambda v: table[(v["CONFIG_ADAMWPRUNE_AMSGRAD"], v["CONFIG_OPTIMIZER"])], failed={4})
    imp = compute(records)
    # passed: 90, 92, 94 (mean 92, variance 8/3); AMSGRAD y: 91 (2), n: 94 (1) -> between 2 -> 3/4
    assert not imp.complete_grid and (imp.combinations, imp.combinations_passed, imp.passed) == (4, 3, 3)
    by_name = {p.name: p for p in imp.parameters}
    assert by_name["CONFIG_ADAMWPRUNE_AMSGRAD"].share == pytest.approx(0.75, abs=1e-12)
    assert by_name["CONFIG_OPTIMIZER"].share == pytest.approx(0.0, abs=1e-12)  # sgd 92 (2), adamw 92 (1)
    assert imp.interactions is None  # not an exact decomposition
    text = render_section(imp)
    assert "Incomplete grid: 3 of 4 combinations passed; the shares are computed on the 3 passed trials" in text
    assert "Interactions" not in text


def test_the_threshold_decides_what_to_fix() -> None:
    records = grid_records(AXES, additive)
    assert [p.name for p in compute(records, threshold=2.5).parameters if p.important is False] == [
        "CONFIG_ADAMWPRUNE_AMSGRAD",  # effect 2.0 < 2.5
        "CONFIG_OPTIMIZER",
    ]
    # an effect equal to the noise is not below it
    assert [p.name for p in compute(records, threshold=2.0).parameters if p.important is False] == ["CONFIG_OPTIMIZER"]
    text = render_section(compute(records, threshold=2.5))
    assert "FIX THESE (effect below the noise):\n" in text
    assert "  CONFIG_ADAMWPRUNE_AMSGRAD=n  (value means span 2.00 pp; best mean at n)\n" in text
    assert "resolution 2.50 pp, --sweep-importance-threshold (one test image's step is unknown" in text
    assert (
        "2. CONFIG_ADAMWPRUNE_AMSGRAD: value means span 2.00 pp; below the noise (the resolution of 2.50 pp)\n" in text
    )


def _seeded(accs: dict[tuple[str, str], float]) -> list[dict[str, object]]:
    axes = {"CONFIG_OPTIMIZER": ["sgd", "adamw"], "CONFIG_SEED": ["1", "2", "3"]}
    return grid_records(axes, lambda v: accs[(v["CONFIG_OPTIMIZER"], v["CONFIG_SEED"])])


def test_a_swept_seed_measures_the_noise() -> None:
    accs = {("sgd", "1"): 90.0, ("sgd", "2"): 91.0, ("sgd", "3"): 92.0}
    accs |= {("adamw", "1"): 91.0, ("adamw", "2"): 93.0, ("adamw", "3"): 95.0}
    imp = compute(_seeded(accs))
    # within-configuration variances 1 and 4 (2 df each): pooled sd sqrt(10 / 4)
    assert imp.noise_source == "seed" and imp.noise == pytest.approx(math.sqrt(2.5), abs=1e-12)
    by_name = {p.name: p for p in imp.parameters}
    optimizer = by_name["CONFIG_OPTIMIZER"]
    # means 91 and 93: between 6 (1 df) against within 10 (4 df): F = 2.4, p = 0.196: below the seed noise
    assert optimizer.effect == pytest.approx(2.0) and optimizer.p == pytest.approx(0.1963, abs=1e-4)
    assert optimizer.important is False and not imp.beyond_noise
    seed = by_name["CONFIG_SEED"]
    assert seed.replicate and seed.important is None  # never "fix the seed"
    text = render_section(imp)
    assert "CONFIG_SEED (replicates)" in text
    assert "Noise: measured over 3 seeds: seed-to-seed sd 1.58 pp (pooled, 4 degrees of freedom)" in text
    assert "Below the noise: no two configurations differ beyond the seed noise" in text
    assert "CONFIG_OPTIMIZER: value means span 2.00 pp; below the noise (no two configurations differ" in text
    assert "% of the variance" not in text.split("CONFIG_OPTIMIZER")[1].split("\n")[0]  # no share for noise


def test_an_effect_beyond_the_seed_noise_is_important() -> None:
    accs = {("sgd", "1"): 90.0, ("sgd", "2"): 90.5, ("sgd", "3"): 91.0}
    accs |= {("adamw", "1"): 93.0, ("adamw", "2"): 93.5, ("adamw", "3"): 94.0}
    imp = compute(_seeded(accs))
    (optimizer,) = [p for p in imp.parameters if p.name == "CONFIG_OPTIMIZER"]
    # between 13.5 (1 df) against within 1 (4 df): F = 54, p = 0.0018
    assert optimizer.important and optimizer.p == pytest.approx(0.00183, abs=1e-5) and imp.beyond_noise
    assert "beyond the seed noise (F-test p = 0.002, Holm p = 0.002)" in render_section(imp)
    # with a threshold above its effect (3 pp) it is significant, yet below what the user cares about
    strict = compute(_seeded(accs), 3.5)
    (optimizer,) = [p for p in strict.parameters if p.name == "CONFIG_OPTIMIZER"]
    assert optimizer.important is False
    assert "below the threshold of 3.50 pp" in render_section(strict)


def test_too_few_trials_and_nothing_swept() -> None:
    one = grid_records(AXES, additive, failed=set(range(2, 13)))
    imp = compute(one)
    assert imp.reason == "importance needs at least two passed trials (1 passed)"
    assert all(p.share is None and p.important is None for p in imp.parameters)
    assert "No shares: importance needs at least two passed trials (1 passed)." in render_section(imp)
    flat = [new_record("config_001", {"CONFIG_SEED": "1"}, {}, status="passed", test_acc=90.0)]
    assert "Nothing was swept: no parameter to rank." in render_section(compute(flat))


def test_importance_json_is_plain_data() -> None:
    doc = compute(grid_records(AXES, additive)).to_json()
    again = json.loads(json.dumps(doc, allow_nan=False))
    assert again["schema_version"] == 2 and again["complete_grid"] is True
    assert again["model"]["kind"] == "resolution" and again["model"]["resolution"] == 0.5
    assert again["parameters"][0]["name"] == "CONFIG_ADAMWPRUNE_BETA1"
    assert again["parameters"][0]["values"][0] == {
        "value": "0.85",
        "passed": 4,
        "mean": 90.0,
        "best": 91.0,
        "worst": 89.0,
        "sd": pytest.approx(math.sqrt(4 / 3)),
    }
    assert again["interactions"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf"])
def test_a_bad_threshold_is_a_usage_error(sweep_pytester: SweepPytester, value: str) -> None:
    path = sweep_pytester.range_config(sweep_pytester.digits_config("CONFIG_LEARNING_RATE=0.001|0.002"))
    result = sweep_pytester.run(f"--range-config={path}", f"--sweep-importance-threshold={value}", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.errlines if line] == [
        f"ERROR: --sweep-importance-threshold={value}: use a number of percentage points, 0 or more "
        "(e.g. --sweep-importance-threshold=0.5)"
    ]
