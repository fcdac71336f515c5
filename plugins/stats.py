"""The statistics every section shares: paired t-tests, Holm's correction, F-tests, bootstrap intervals.

The t and F distributions are scipy's (``scipy.special.stdtr``, ``fdtrc`` and ``stdtrit``: the
functions ``scipy.stats.t`` and ``scipy.stats.f`` evaluate, called directly, 5 us a call instead
of 200 us); bootstrap intervals are ``scipy.stats.bootstrap``.  scipy is imported on first use:
never at collection, never in a run without a sweep.  Degenerate data, which scipy answers with
NaN and a warning, is decided here explicitly: differences that are all equal are no noise at
all, unless the metric is counted in whole test images (``floor``), where a difference is known
only to one image.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: The significance level of every test (tie sets, importance, the CI gate).
ALPHA = 0.05


def _scipy_stats() -> Any:
    import scipy.stats

    return scipy.stats


def _special() -> Any:
    import scipy.special

    return scipy.special


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom (``scipy.stats.t.sf``)."""
    return float(_special().stdtr(df, -t))


def p_is(p: float | None) -> str:
    """``= 0.035`` or ``< 0.001`` (after a ``p``)."""
    if p is None:
        return "n/a"
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def rounding_sd(granularity: float | None) -> float:
    """The smallest standard deviation a difference of two metrics counted in steps of
    ``granularity`` can be said to have: two roundings, each uniform over one step (step / sqrt(6))."""
    return granularity / math.sqrt(6) if granularity else 0.0


@dataclass(frozen=True)
class TTest:
    """A t-test of a mean difference: the statistic, degrees of freedom and p-value."""

    n: int
    mean: float
    sd: float
    t: float
    df: int
    p: float


def t_test(
    differences: Sequence[float], shift: float = 0.0, alternative: str = "two-sided", floor: float = 0.0
) -> TTest:
    """One-sample t-test of ``mean(differences) - shift`` (a paired test when the differences
    are paired): ``alternative`` is ``two-sided`` or ``greater`` (the mean exceeds ``shift``).

    :param floor: the least standard deviation the differences are taken to have (see
        :func:`rounding_sd`); 0: none.
    Needs two or more differences.
    """
    n = len(differences)
    if n < 2:
        raise ValueError("a t-test needs two or more differences")
    mean = statistics.fmean(differences)
    sd = max(statistics.stdev(differences), floor)
    excess = mean - shift
    if sd == 0:  # no noise at all: the sign decides
        t = 0.0 if excess == 0 else math.copysign(math.inf, excess)
        if alternative == "greater":
            p = 0.0 if excess > 0 else 1.0
        else:
            p = 1.0 if excess == 0 else 0.0
        return TTest(n, mean, sd, t, n - 1, p)
    t = excess / (sd / math.sqrt(n))
    p = t_sf(t, n - 1) if alternative == "greater" else 2 * t_sf(abs(t), n - 1)
    return TTest(n, mean, sd, t, n - 1, min(1.0, p))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order (familywise error at most alpha)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def bonferroni(pvalues: Sequence[float]) -> list[float]:
    """Bonferroni-adjusted p-values (each times the number of tests, at most 1)."""
    return [min(1.0, len(pvalues) * p) for p in pvalues]


def f_test(between: float, df_between: int, within: float, df_within: int) -> float | None:
    """The p-value of an F-test: ``between`` and ``within`` are sums of squares.  None without
    degrees of freedom; an exactly zero within-group variance decides by whether there is any
    between-group variance."""
    if df_between < 1 or df_within < 1:
        return None
    if within <= 0:
        return 0.0 if between > 0 else 1.0
    f = (between / df_between) / (within / df_within)
    return float(_special().fdtrc(df_between, df_within, f))  # scipy.stats.f.sf


def t_half_width(sd: float, n: int, confidence: float = 0.95) -> float | None:
    """Half the width of the t-interval of a mean of ``n`` values with standard deviation ``sd``."""
    if n < 1:
        return None
    df = max(1, n - 1)
    return float(_special().stdtrit(df, 0.5 + confidence / 2)) * sd / math.sqrt(n)  # scipy.stats.t.ppf


#: Resamples of a bootstrap interval (its figures are for display).
BOOTSTRAP_RESAMPLES = 2000


def bootstrap_mean(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """A percentile bootstrap interval of the mean (for display; fixed random state, so the same
    data give the same interval).  None with fewer than two values."""
    if len(values) < 2:
        return None
    if max(values) == min(values):
        return float(values[0]), float(values[0])
    import numpy as np

    stats = _scipy_stats()
    kwargs = {"n_resamples": BOOTSTRAP_RESAMPLES, "confidence_level": confidence, "method": "percentile"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on tiny samples; the interval is for display
        data = (np.asarray(values, dtype=float),)
        try:
            res = stats.bootstrap(data, np.mean, rng=np.random.default_rng(0), **kwargs)
        except TypeError:  # scipy before 1.15 calls it random_state
            res = stats.bootstrap(data, np.mean, random_state=np.random.default_rng(0), **kwargs)
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return low, high
