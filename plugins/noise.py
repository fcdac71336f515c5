"""One noise model for every answer a sweep gives: the ranking, the tie set, importance, plots.

- **Seeds swept** (``CONFIG_SEED=1|2|3``): the noise is the seed-to-seed spread, measured: the
  pooled standard deviation of ``test_acc`` over the seeds of each configuration.  A configuration
  is told apart from the best by a two-sided paired t-test over the seeds both passed with, the
  differences' spread pooled over every comparison (:func:`~pytest_sweep.plugins.stats.paired_tests`),
  corrected for the number of comparisons (Bonferroni: see :func:`best_set` for why not Holm's
  step-down here).
- **No seeds swept**: there is nothing to measure the noise with, so a stated *resolution* stands
  in for it: the larger of the test set's granularity (one test image: 100 / ``test_samples`` pp,
  0.28 pp on digits' 360 images) and ``--sweep-importance-threshold`` (default 0.5 pp).  Two
  configurations closer than that are not told apart.

"Best" is a set: the configuration with the best mean and every configuration not
distinguishable from it (:func:`best_set`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_sweep.matrix.records import ranked
from pytest_sweep.plugins import stats
from pytest_sweep.plugins.options import DEFAULT_IMPORTANCE_THRESHOLD
from pytest_sweep.plugins.replicates import (
    SEED_KEY,
    Configuration,
    configurations,
    origin,
    pooled_sd,
    ranked_configurations,
    seed_swept,
)

#: The resolution's floor when no seeds are swept and no threshold is given [pp].
DEFAULT_THRESHOLD = DEFAULT_IMPORTANCE_THRESHOLD  # --sweep-importance-threshold's default (plugins/options.py)


def focus(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """The records to analyse: all of them, or those of the best trial's origin when a run swept several files."""
    origins = list(dict.fromkeys(origin(r) for r in records))
    if len(origins) <= 1:
        return records, None
    top = ranked(records)
    keep = origin(top[0]) if top else origins[0]
    return [r for r in records if origin(r) == keep], keep


def _test_samples(records: list[dict[str, Any]]) -> int | None:
    """The smallest test set a passed trial reports (its image is the coarsest step); None if none do."""
    sizes = []
    for r in records:
        n = r.get("test_samples")
        if r.get("status") == "passed" and isinstance(n, int) and not isinstance(n, bool) and n > 0:
            sizes.append(n)
    return min(sizes) if sizes else None


@dataclass(frozen=True)
class Noise:
    """What a difference must exceed before the sweep calls it real.

    :ivar kind: ``seeds`` (measured over swept seeds) or ``resolution`` (stated).
    :ivar threshold: ``--sweep-importance-threshold``, or the default 0.5 pp.
    :ivar threshold_given: the user gave the threshold.
    :ivar granularity: one test image in pp (None: the trainer does not report its test set size).
    :ivar seed_sd: the pooled standard deviation over seeds [pp] (seeds only).
    :ivar seed_df: its degrees of freedom.
    :ivar seeds: how many seeds were swept (0: none).
    :ivar note: why seeds were swept but could not measure the noise.
    """

    kind: str
    threshold: float
    threshold_given: bool
    granularity: float | None
    test_samples: int | None
    seed_sd: float | None = None
    seed_df: int = 0
    seeds: int = 0
    note: str | None = None

    @property
    def resolution(self) -> float:
        """The stated resolution [pp]: the larger of one test image and the threshold."""
        return max(self.granularity or 0.0, self.threshold)

    @property
    def floor(self) -> float:
        """The least standard deviation a paired difference is taken to have (rounding to whole images)."""
        return stats.rounding_sd(self.granularity)

    @property
    def value(self) -> float:
        """The noise as one number [pp]: the seed spread, or the resolution."""
        return self.seed_sd if self.kind == "seeds" and self.seed_sd is not None else self.resolution

    def describe(self) -> str:
        """One line: what the noise is and where it comes from."""
        if self.kind == "seeds":
            image = f"; one test image is {self.granularity:.2f} pp" if self.granularity is not None else ""
            return (
                f"Noise: measured over {self.seeds} seeds: seed-to-seed sd {self.seed_sd:.2f} pp (pooled, "
                f"{self.seed_df} degrees of freedom); configurations are compared by paired t-tests over shared "
                f"seeds (alpha {stats.ALPHA:g}, corrected for the number of comparisons){image}"
            )
        why = self.note or f"no seeds swept; sweep {SEED_KEY}=1|2|3 to measure it"
        given = "--sweep-importance-threshold" if self.threshold_given else "the default threshold"
        if self.granularity is None:
            source = f"{given} (one test image's step is unknown: the trainer does not report test_samples)"
        else:
            source = (
                f"the larger of one test image ({self.granularity:.2f} pp of {self.test_samples}) and {given} "
                f"({self.threshold:.2f} pp)"
            )
        return f"Noise: not measured ({why}): resolution {self.resolution:.2f} pp, {source}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "value": self.value,
            "seed_sd": self.seed_sd,
            "seed_df": self.seed_df,
            "seeds": self.seeds,
            "resolution": self.resolution,
            "granularity": self.granularity,
            "test_samples": self.test_samples,
            "threshold": self.threshold,
            "threshold_given": self.threshold_given,
            "alpha": stats.ALPHA,
            "note": self.note,
            "describe": self.describe(),
        }


def model(records: list[dict[str, Any]], threshold: float | None = None) -> Noise:
    """The noise of these records (one source's); ``threshold`` is the user's option (None: not given)."""
    n_images = _test_samples(records)
    granularity = 100.0 / n_images if n_images else None
    given = threshold is not None
    floor = threshold if threshold is not None else DEFAULT_THRESHOLD
    if not seed_swept(records):
        return Noise("resolution", floor, given, granularity, n_images)
    seeds = len({str((r.get("config") or {}).get(SEED_KEY)) for r in records})
    configs = configurations(records)
    sd = pooled_sd(configs)
    df = sum(max(0, c.n - 1) for c in configs)
    if sd is None:
        note = "seeds swept, but no configuration passed with two of them"
        return Noise("resolution", floor, given, granularity, n_images, None, 0, seeds, note)
    sd = max(sd, stats.rounding_sd(granularity) / math.sqrt(2))  # one value's rounding: a step / sqrt(12)
    return Noise("seeds", floor, given, granularity, n_images, sd, df, seeds)


# -- the best configuration and its ties -----------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    """A configuration compared with the best one.

    :ivar difference: the best one's mean minus this one's [pp] (0 or more).
    :ivar shared: the seeds both passed with (seeds only).
    :ivar p: the paired t-test's two-sided p-value (None: not tested); ``p_adjusted`` corrected for
        the number of comparisons (Bonferroni).
    :ivar tied: not distinguishable from the best (in the tie set).
    :ivar why: in words, why it is tied or not.
    """

    config: Configuration
    difference: float
    shared: int
    p: float | None
    p_adjusted: float | None
    tied: bool
    why: str

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config.label,
            "trials": self.config.names,
            "mean": self.config.mean,
            "n": self.config.n,
            "difference": self.difference,
            "shared_seeds": self.shared,
            "p": self.p,
            "p_adjusted": self.p_adjusted,
            "why": self.why,
        }


@dataclass(frozen=True)
class BestSet:
    """The best configuration and the ones the data cannot tell from it."""

    best: Configuration | None
    contenders: tuple[Contender, ...]
    noise: Noise
    ranked: tuple[Configuration, ...]

    @property
    def ties(self) -> list[Contender]:
        return [c for c in self.contenders if c.tied]

    @property
    def excluded(self) -> list[Contender]:
        return [c for c in self.contenders if not c.tied]

    @property
    def basis(self) -> str:
        """How the tie set was decided, in a few words."""
        if self.noise.kind == "seeds" and self.best is not None:
            return f"paired t over {self.best.n} seeds, Bonferroni"
        seeds = self.noise.note or "no seeds swept"
        return f"within {self.noise.resolution:.2f} pp resolution, {seeds}"

    def names(self) -> list[str]:
        """The tie set's labels, the best first."""
        return ([self.best.label] if self.best else []) + [c.config.label for c in self.ties]

    def to_json(self) -> dict[str, Any] | None:
        if self.best is None:
            return None
        best = self.best
        interval = stats.bootstrap_mean([float(r["test_acc"]) for r in best.passed]) if best.n >= 2 else None
        swept = best.first.get("swept") or []
        values = {k: v for k, v in (best.first.get("config") or {}).items() if k in swept and k != SEED_KEY}
        return {
            "config": best.label,
            "trials": best.names,
            "values": values,
            "mean": best.mean,
            "sd": best.sd,
            "n": best.n,
            "ci95_bootstrap": list(interval) if interval else None,
            "ties": [c.to_json() for c in self.ties],
            "excluded": [c.to_json() for c in self.excluded],
            "basis": self.basis,
        }


def best_set(
    records: list[dict[str, Any]], noise: Noise, label: Callable[[dict[str, Any]], str] | None = None
) -> BestSet:
    """The best configuration (best mean over its seeds, or best trial) and its tie set.

    With seeds: each other configuration is compared with the best by a two-sided paired t-test
    over the seeds both passed with, its differences' spread pooled with every other comparison's
    (one noise model: with 3 seeds a pair alone has 2 degrees of freedom; a pair noisier than the
    pool keeps its own spread); the p-values are multiplied by the number of comparisons
    (Bonferroni), and a configuration stays tied unless its adjusted p-value is below alpha.  One
    with fewer than two shared seeds cannot be tested, so it stays tied (the data cannot tell it
    apart).  Without seeds: a configuration within the resolution of the best is tied.

    Why Bonferroni and not Holm's step-down: the best is picked from the same data, so a
    configuration truly as good as the best is compared with whichever of them came out on top.
    Holm's step-down relaxes the correction as clearly worse configurations are rejected, down
    to alpha itself for the last comparison; with a tied configuration last, it is then dropped
    in alpha (5%) of sweeps exactly, and more where several are tied at the top.  Bonferroni
    bounds that by alpha times (tied ones) / (comparisons) whatever the others do (measured in
    ``tests/test_noise_simulation.py`` and ``docs/explanation/statistics.md``).
    """
    ranked = ranked_configurations(configurations(records, label))
    if not ranked:
        return BestSet(None, (), noise, ())
    best, others = ranked[0], ranked[1:]
    best_mean = best.mean or 0.0
    if noise.kind != "seeds":
        out = []
        for c in others:
            diff = best_mean - (c.mean or 0.0)
            tied = diff <= noise.resolution + 1e-9
            verb = "within" if tied else "beyond"
            out.append(Contender(c, diff, 0, None, None, tied, f"{diff:.2f} pp behind: {verb} the resolution"))
        return BestSet(best, tuple(out), noise, tuple(ranked))
    mine = best.by_seed()
    differences = []
    for c in others:
        theirs = c.by_seed()
        differences.append([mine[s] - theirs[s] for s in mine if s in theirs])
    results = stats.paired_tests(differences, floor=noise.floor)
    tests: list[tuple[Configuration, float, int, float | None]] = [
        (c, best_mean - (c.mean or 0.0), len(d), None if r is None else r.p)
        for c, d, r in zip(others, differences, results, strict=True)
    ]
    tested = [p for _, _, _, p in tests if p is not None]
    adjusted = iter(stats.bonferroni(tested))
    out = []
    for c, diff, shared, p in tests:
        if p is None:
            why = f"{diff:.2f} pp behind; {shared} shared seed{'s' if shared != 1 else ''} with the best: cannot be told apart"
            out.append(Contender(c, diff, shared, None, None, True, why))
            continue
        p_adjusted = next(adjusted)
        tied = p_adjusted >= stats.ALPHA
        verdict = "not distinguishable" if tied else "worse"
        why = (
            f"{diff:.2f} pp behind over {shared} shared seeds: p {stats.p_is(p)}"
            + (f", over {len(tested)} comparisons p {stats.p_is(p_adjusted)}" if len(tested) > 1 else "")
            + f": {verdict}"
        )
        out.append(Contender(c, diff, shared, p, p_adjusted, tied, why))
    return BestSet(best, tuple(out), noise, tuple(ranked))


def spread(records: list[dict[str, Any]]) -> float | None:
    """The spread of the configurations' means [pp] (best minus worst); None with fewer than two."""
    means = [c.mean for c in ranked_configurations(configurations(records)) if c.mean is not None]
    return max(means) - min(means) if len(means) >= 2 else None


def configurations_differ(records: list[dict[str, Any]], noise: Noise) -> tuple[bool, float | None]:
    """Whether any configuration differs from another beyond the noise, and the test's p-value.

    With seeds: a one-way F-test of the configurations' means against the seed-to-seed variance.
    Without: whether the spread of the means reaches the resolution (no p-value).
    """
    configs = [c for c in configurations(records) if c.n]
    if len(configs) < 2:
        return False, None
    if noise.kind != "seeds":
        width = spread(records)
        return width is not None and width >= noise.resolution - 1e-9, None
    accs = [float(r["test_acc"]) for c in configs for r in c.passed]
    grand = statistics.fmean(accs)
    between = sum(c.n * ((c.mean or 0.0) - grand) ** 2 for c in configs)
    within = sum(sum((float(r["test_acc"]) - (c.mean or 0.0)) ** 2 for r in c.passed) for c in configs)
    df_within = sum(c.n - 1 for c in configs)
    within = max(within, noise.floor**2 / 2 * df_within)
    p = stats.f_test(between, len(configs) - 1, within, df_within)
    return (p is not None and p < stats.ALPHA), p
