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
    return _t(differences, max(statistics.stdev(differences), floor), n - 1, shift, alternative)


def paired_tests(
    groups: Sequence[Sequence[float]], shift: float = 0.0, alternative: str = "two-sided", floor: float = 0.0
) -> list[TTest | None]:
    """One t-test per group of paired differences, against one noise model: the standard deviation of
    the differences pooled over every group (degrees of freedom: the sum of each group's n - 1).

    With few seeds a group's own spread is a poor estimate (2 degrees of freedom at 3 seeds); the
    pooled one is the sweep's seed-to-seed noise.  A group significantly noisier than the others (an
    F-test of its variance against theirs, at alpha) is judged by its own spread and degrees of
    freedom instead, so no comparison is credited with much less noise than it shows.  Groups with
    fewer than two differences get None (not tested).
    """
    usable = [list(g) for g in groups if len(g) >= 2]
    df_pooled = sum(len(g) - 1 for g in usable)
    ss_pooled = sum(_ss(g) for g in usable)
    pooled = math.sqrt(ss_pooled / df_pooled) if df_pooled else 0.0
    out: list[TTest | None] = []
    for group in groups:
        if len(group) < 2:
            out.append(None)
            continue
        own_ss, own_df = _ss(group), len(group) - 1
        rest_df = df_pooled - own_df
        rest = math.sqrt((ss_pooled - own_ss) / rest_df) if rest_df > 0 else 0.0
        own = math.sqrt(own_ss / own_df)
        # noisier than the others: its own spread (and degrees of freedom) judge it
        noisier = rest_df == 0 or (
            own > rest and (rest == 0 or (own / rest) ** 2 > f_quantile(1 - ALPHA, own_df, rest_df))
        )
        sd, df = (own, own_df) if noisier else (max(pooled, 0.0), df_pooled)
        out.append(_t(group, max(sd, floor), df, shift, alternative))
    return out


def _ss(values: Sequence[float]) -> float:
    mean = statistics.fmean(values)
    return sum((v - mean) ** 2 for v in values)


def _t(differences: Sequence[float], sd: float, df: int, shift: float, alternative: str) -> TTest:
    n = len(differences)
    mean = statistics.fmean(differences)
    excess = mean - shift
    if sd == 0:  # no noise at all: the sign decides
        t = 0.0 if excess == 0 else math.copysign(math.inf, excess)
        if alternative == "greater":
            p = 0.0 if excess > 0 else 1.0
        else:
            p = 1.0 if excess == 0 else 0.0
        return TTest(n, mean, sd, t, df, p)
    t = excess / (sd / math.sqrt(n))
    p = t_sf(t, df) if alternative == "greater" else 2 * t_sf(abs(t), df)
    return TTest(n, mean, sd, t, df, min(1.0, p))


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


def f_quantile(q: float, dfn: int, dfd: int) -> float:
    """The ``q`` quantile of the F distribution (``scipy.stats.f.ppf``)."""
    return float(_special().fdtri(dfn, dfd, q))


def t95(df: int) -> float:
    """The two-sided 95% quantile of Student's t with ``df`` degrees of freedom (``scipy.stats.t.ppf(0.975, df)``)."""
    return float(_special().stdtrit(max(1, df), 0.975))


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
