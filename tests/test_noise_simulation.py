"""Simulated sweeps of known landscapes and seed noise: do the tie set, importance and the CI gate
tell real differences from noise as often as they promise?

Each simulated sweep is a set of synthetic records (a configuration's true accuracy plus Gaussian
seed noise, drawn from a fixed random state, so every run of this module sees the same numbers)
fed to the same function that writes ``sweep_analysis.json``; the document is read back from JSON.
One real end-to-end sweep (a plugin trainer with a known landscape, in process) checks the file
itself.  The rates are printed (``-s``) for the notes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from synthetic import LANDSCAPE, grid_records

from pytest_sweep.plugins.compare import Threshold, compare
from pytest_sweep.plugins.reporters import analysis_doc

from sweep_helpers import SweepPytester

SIGMA = 0.5  # the seed noise: sd of one trial's test_acc [pp]
SIMULATIONS = 400


def _sweep(
    means: dict[str, float],
    seeds: int,
    rng: random.Random,
    extra: dict[str, list[str]] | None = None,
    effect: Callable[[dict[str, str]], float] | None = None,
    sigma: float = SIGMA,
) -> list[dict[str, Any]]:
    """One sweep: CONFIG_LS_A takes the keys of ``means`` (its true accuracy), each over ``seeds`` seeds
    (none: one trial per configuration); ``effect`` adds the other parameters' true effect."""
    axes = {"CONFIG_LS_A": list(means), **(extra or {})}
    if seeds:
        axes["CONFIG_SEED"] = [str(i) for i in range(1, seeds + 1)]
    return grid_records(axes, lambda v: means[v["CONFIG_LS_A"]] + (effect(v) if effect else 0.0) + rng.gauss(0, sigma))


def _doc(records: list[dict[str, Any]], threshold: float | None = None) -> dict[str, Any]:
    """``sweep_analysis.json`` as a reader sees it."""
    doc: dict[str, Any] = json.loads(json.dumps(analysis_doc(records, threshold), allow_nan=False))
    return doc


def _value(doc: dict[str, Any], records: list[dict[str, Any]], name: str) -> str:
    (rec,) = [r for r in records if r["config_file"] == name]
    return str(rec["config"]["CONFIG_LS_A"])


def test_ties_hold_what_is_identical_and_drop_what_is_3_sigma_worse() -> None:
    """Three configurations identical at the top, two 3 sigma worse, one far worse; 8 seeds each."""
    rng = random.Random(18)
    means = {"top1": 90.0, "top2": 90.0, "top3": 90.0, "worse1": 90 - 3 * SIGMA, "worse2": 90 - 3 * SIGMA, "far": 85.0}
    kept = identical = dropped = worse = 0
    for _ in range(SIMULATIONS):
        records = _sweep(means, 8, rng)
        doc = _doc(records)
        best = doc["best"]
        assert best["basis"] == "paired t over 8 seeds, Bonferroni" and doc["noise"]["kind"] == "seeds"
        tied = {_value(doc, records, t["config"]) for t in best["ties"]}
        winner = _value(doc, records, best["config"])
        for value in ("top1", "top2", "top3"):
            if value != winner:
                identical += 1
                kept += value in tied
        for value in ("worse1", "worse2"):
            worse += 1
            dropped += value not in tied and value != winner
    print(f"\nseeds: identical kept {kept / identical:.1%}, 3 sigma worse dropped {dropped / worse:.1%}")
    assert kept / identical >= 0.95
    assert dropped / worse >= 0.95


def test_without_seeds_the_tie_set_is_the_resolution() -> None:
    """No seeds: within 0.5 pp of the best is tied; 0.5 pp + 3 sigma worse is told apart."""
    rng = random.Random(19)
    sigma_note = 0.1  # the trainer's own noise, seen once per configuration
    kept = identical = dropped = worse = 0
    means = {"top1": 90.0, "top2": 90.0, "worse": 90.0 - 0.5 - 3 * SIGMA}
    for _ in range(SIMULATIONS):
        records = grid_records(
            {"CONFIG_LS_A": list(means)}, lambda v: means[v["CONFIG_LS_A"]] + rng.gauss(0, sigma_note)
        )
        doc = _doc(records)
        assert doc["best"]["basis"] == "within 0.50 pp resolution, no seeds swept"
        tied = {_value(doc, records, t["config"]) for t in doc["best"]["ties"]}
        winner = _value(doc, records, doc["best"]["config"])
        identical += 1
        kept += ({"top1", "top2"} - {winner}).pop() in tied
        worse += 1
        dropped += "worse" not in tied and winner != "worse"
    assert kept / identical >= 0.95 and dropped / worse >= 0.95


@pytest.mark.parametrize("seeds", [3, 0])
def test_importance_is_below_the_noise_exactly_when_the_effect_is_zero(seeds: int) -> None:
    """A (2 pp) and B (1 pp) matter, Z has no effect: Z is below the noise, A and B beyond it, in >= 95%.

    With 3 seeds the seed sd is 0.5 pp (measured, F-tests); without seeds the trainer's noise is
    0.05 pp, well under the 0.5 pp resolution that stands in for it.
    """
    rng = random.Random(20 + seeds)
    means = {"0": 90.0, "2": 92.0}  # CONFIG_LS_A's effect
    extra = {"CONFIG_LS_B": ["0", "1"], "CONFIG_LS_Z": ["0", "1"]}
    right = {"CONFIG_LS_A": 0, "CONFIG_LS_B": 0, "CONFIG_LS_Z": 0}
    runs = SIMULATIONS // 2
    for _ in range(runs):
        records = _sweep(means, seeds, rng, extra, lambda v: float(v["CONFIG_LS_B"]), SIGMA if seeds else 0.05)
        doc = _doc(records)
        below = {p["name"]: p["below_noise"] for p in doc["importance"]["parameters"]}
        right["CONFIG_LS_A"] += below["CONFIG_LS_A"] is False
        right["CONFIG_LS_B"] += below["CONFIG_LS_B"] is False
        right["CONFIG_LS_Z"] += below["CONFIG_LS_Z"] is True
    rates = {k: v / runs for k, v in right.items()}
    print(f"\nimportance, {seeds} seeds: right verdicts {rates}")
    assert all(rate >= 0.95 for rate in rates.values()), rates


def _gate_run(rng: random.Random, shift: float, points: float, configs: int = 20, seeds: int = 5) -> bool:
    """One CI run: 20 configurations x 5 seeds, the baseline and the new sweep drawn afresh (the same
    seed does not give the same number after a change); ``shift``: how far one configuration really dropped."""
    means = {f"c{i:02d}": 90.0 + i * 0.1 for i in range(configs)}
    then = _sweep(means, seeds, rng)
    now = _sweep(means, seeds, rng)
    for r in now:
        if r["config"]["CONFIG_LS_A"] == "c00":
            r["test_acc"] -= shift
    return bool(compare(then, now, [Threshold("test_acc", points)]).regressions())


def _at_most(count: int, runs: int, rate: float) -> bool:
    """``count`` of ``runs`` is consistent with a true rate of at most ``rate`` (one-sided binomial, 1%)."""
    from scipy.stats import binom

    return bool(binom.sf(count - 1, runs, rate) > 0.01)


def test_the_gate_rarely_cries_wolf_and_catches_real_drops() -> None:
    """Same vs same at the strictest threshold (0: any drop) raises an alarm in at most 5% of runs;
    with test_acc:1, a configuration that really lost 1 + 6 sigma is caught in >= 80% of runs."""
    rng = random.Random(21)
    runs = 300
    alarms = sum(_gate_run(rng, 0.0, 0.0) for _ in range(runs))
    power = {drop: sum(_gate_run(rng, drop, 1.0) for _ in range(60)) / 60 for drop in (1 + 3 * SIGMA, 1 + 6 * SIGMA)}
    print(f"\ngate, 20 configurations x 5 seeds, seed sd {SIGMA} pp: false alarms {alarms / runs:.1%} of {runs} "
          f"(same vs same, test_acc:0); caught with test_acc:1: {power}")  # fmt: skip
    assert _at_most(alarms, runs, 0.05), alarms
    assert power[1 + 6 * SIGMA] >= 0.8


def test_a_real_sweep_writes_the_tie_set_and_importance_into_sweep_analysis_json(sweep_pytester: SweepPytester) -> None:
    """A plugin trainer: CONFIG_LS_A moves test_acc by 1.5 pp, CONFIG_LS_Z not at all; seed sd 0.3 pp."""
    sp = sweep_pytester
    sp.pytester.makeconftest(LANDSCAPE)
    sp.range_config("CONFIG_LS_A=0|1.5\nCONFIG_LS_Z=0|1\nCONFIG_LS_NOISE=0.3\nCONFIG_SEED=1|2|3|4|5|6\n")
    result = sp.run("--range-config=sweep.rc", "--sweep-output=out")
    result.assert_outcomes(passed=24)
    assert "warnings summary" not in result.stdout.str()
    doc = json.loads((sp.only_sweep_dir(sp.path / "out") / "sweep_analysis.json").read_text(encoding="utf-8"))
    best = doc["best"]
    assert best["values"]["CONFIG_LS_A"] == "1.5" and best["basis"] == "paired t over 6 seeds, Bonferroni"
    assert [t["config"] for t in best["ties"]] and all(t["p_adjusted"] >= 0.05 for t in best["ties"])
    tied_values = {json.dumps(t["trials"]) for t in best["ties"]}
    assert len(tied_values) == 1  # the other CONFIG_LS_Z at CONFIG_LS_A=1.5
    assert all(e["p_adjusted"] < 0.05 for e in best["excluded"]) and len(best["excluded"]) == 2
    below = {p["name"]: p["below_noise"] for p in doc["importance"]["parameters"]}
    assert below == {"CONFIG_LS_A": False, "CONFIG_LS_Z": True, "CONFIG_SEED": False}
    assert doc["noise"]["kind"] == "seeds" and doc["counts"]["passed"] == 24 and doc["failures"] == []
    result.stdout.fnmatch_lines(["best: config_* at *% test accuracy (mean over 6 of 6 seeds); tied with it "
                                 "(paired t over 6 seeds, Bonferroni): config_*"])  # fmt: skip
